//! Leadership terms for fencing (docs/architecture.md#operator-loops): each runtime a leader
//! starts takes, per Redis endpoint, a number greater than any taken before (`INCR
//! jobqueue:term`). Provisioning a queue records it in the queue's `<prefix>:epoch`; the
//! janitor's and scheduler's scripts of an older term then do nothing on that queue, so a
//! deposed leader still running (cut off from Kubernetes, or with a clock far off) cannot act
//! for a queue the new leader serves.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::queue::conn::RedisConn;
use crate::queue::error::QueueError;

use super::{Runtime, lock};

/// The key every leader increments for its term on an endpoint (any slot: a plain command).
pub const TERM_KEY: &str = "jobqueue:term";

/// Terms taken, by endpoint.
#[derive(Default)]
pub(super) struct Terms(Mutex<HashMap<String, u64>>);

impl Runtime {
    /// This runtime's term on the endpoint `redis_url`, taken on first use.
    pub(super) async fn term(
        &self,
        redis_url: &str,
        conn: &mut RedisConn,
    ) -> Result<u64, QueueError> {
        if let Some(t) = lock(&self.inner.terms.0).get(redis_url) {
            return Ok(*t);
        }
        let taken: u64 = redis::cmd("INCR")
            .arg(TERM_KEY)
            .query_async(conn)
            .await
            .map_err(QueueError::during("taking a leadership term"))?;
        // Two reconciles may race here: the first term stored wins, the other number is unused.
        Ok(*lock(&self.inner.terms.0)
            .entry(redis_url.to_string())
            .or_insert(taken))
    }
}

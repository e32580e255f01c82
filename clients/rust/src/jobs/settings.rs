//! The parts of a queue's stored settings (`<prefix>:settings`, written by the operator) that
//! a worker reads.

use std::time::Duration;

use crate::conn::RedisConn;
use crate::error::{QueueError, Result};
use crate::keys::QueueKeys;

/// What a worker needs from the stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// The consumer group, when stored.
    pub group: Option<String>,
    /// The visibility timeout, when stored.
    pub visibility_timeout: Option<Duration>,
}

/// Reads the parts of the settings hash a worker uses (absent fields stay `None`).
pub async fn read_worker_settings(
    conn: &mut RedisConn,
    keys: &QueueKeys,
) -> Result<WorkerSettings> {
    let (group, vt): (Option<String>, Option<u64>) = redis::cmd("HMGET")
        .arg(keys.settings())
        .arg("group")
        .arg("visibility_timeout_ms")
        .query_async(conn)
        .await
        .map_err(QueueError::during("reading queue settings"))?;
    Ok(WorkerSettings {
        group: group.filter(|g| !g.is_empty()),
        visibility_timeout: vt.filter(|v| *v > 0).map(Duration::from_millis),
    })
}

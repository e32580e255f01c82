//! Job records of the served queues (docs/architecture.md#provisioning): the `jobqueue`
//! function library, loaded once per Redis endpoint, and each queue's settings hash, written
//! whenever the queue is provisioned.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::operator::reasons::JOB_TRACKING_UNAVAILABLE;
use crate::queue::conn::{RedisConn, mask_password};
use crate::queue::error::QueueError;
use crate::queue::jobs::{ensure_library, functions_unsupported, store_settings};

use super::{Inner, QueueEntry, RuntimeEvent, is_connection_error, lock};

/// Endpoints whose Redis has the library loaded. A Redis that lost its data (the stream or
/// group had vanished) is checked again: the library went with it.
#[derive(Default)]
pub(super) struct Libraries(Mutex<HashSet<String>>);

impl Libraries {
    fn knows(&self, url: &str) -> bool {
        lock(&self.0).contains(url)
    }

    fn set(&self, url: &str, loaded: bool) {
        let mut urls = lock(&self.0);
        if loaded {
            urls.insert(url.to_string());
        } else {
            urls.remove(url);
        }
    }
}

/// Loads the library on the queue's Redis unless it is known there (`recheck`: the Redis
/// lost its data) and stores the queue's settings. A Redis that cannot run the library does
/// not stop the queue: it is served without job records, and `announce` says so in an Event.
/// Only a connection error is returned, with any error storing the settings.
pub(super) async fn provision(
    inner: &Inner,
    conn: &mut RedisConn,
    entry: &QueueEntry,
    recheck: bool,
    announce: bool,
) -> Result<(), QueueError> {
    let url = &entry.redis_url;
    if recheck {
        inner.libraries.set(url, false);
    }
    let tracking = inner.libraries.knows(url)
        || match ensure_library(conn).await {
            Ok(_) => {
                inner.libraries.set(url, true);
                true
            }
            Err(e) if is_connection_error(&e) => return Err(e),
            Err(e) => {
                let why = if functions_unsupported(&e) {
                    "it has no Functions (Redis 7.0 or newer is needed)".to_string()
                } else {
                    format!("the jobqueue function library could not be loaded: {e}")
                };
                let message = format!(
                    "Redis at {}: {why}; the queue is served without job records",
                    mask_password(url)
                );
                tracing::warn!(queue = %entry.id, "{message}");
                if announce {
                    let event = RuntimeEvent::warning(JOB_TRACKING_UNAVAILABLE, message);
                    inner.reporter.queue_event(&entry.id, event);
                }
                false
            }
        };
    let mut settings = entry.config.jobs;
    settings.tracking &= tracking;
    store_settings(conn, &entry.config, &settings).await
}

/// [`provision`] after the scaler recreated a queue's stream or group (the Redis may have
/// restarted empty); a failure is logged, the next reconcile retries.
pub(super) async fn repaired(inner: &Inner, conn: &mut RedisConn, entry: &QueueEntry) {
    if let Err(e) = provision(inner, conn, entry, true, true).await {
        tracing::warn!(queue = %entry.id, error = %e, "could not restore the queue's job settings");
    }
}

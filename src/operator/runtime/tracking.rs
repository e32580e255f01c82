//! Redis client tracking, one connection per standalone endpoint (docs/architecture.md#operator-loops).
//!
//! Native queues' metrics are read on this connection with `CLIENT TRACKING ON`, so Redis
//! remembers the keys each reading touched and pushes an invalidation (RESP3) when one of them
//! is next written: an `XADD` to the stream, a `ZADD` to the delayed set, a job counter, the
//! stream deleted, a flush. The runtime counts these per queue ([`super::Inner::queues_changed`]);
//! a queue whose last reading was idle and unchanged is not read again (see [`super::quiet`]),
//! and an idle queue that is written to is polled at once.
//!
//! Losing the connection loses every promise Redis made on it: every queue of the endpoint
//! counts as changed and the next poll connects again. Where tracking cannot be had (a Redis
//! Cluster, a server or user that refuses `CLIENT TRACKING`), queues are read at every poll as
//! before, and the connection is tried again after [`RETRY_AFTER`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};

use crate::queue::conn::{Endpoint, mask_password, single_client};
use crate::queue::jobs::stats_key;

use super::{Inner, ObjectId, QueueEntry, QueueSlot, lock, quiet};

/// How long an endpoint that could not give a tracking connection is read without one.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The tracking connection's name in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "jobqueue-operator-tracking";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The tracking connections of every endpoint, and the keys each one's readings touched.
#[derive(Default)]
pub(super) struct Tracking {
    endpoints: Mutex<HashMap<String, EndpointTracking>>,
    generations: AtomicU64,
}

#[derive(Default)]
struct EndpointTracking {
    /// The connection and its generation (pushes of an older connection are ignored).
    conn: Option<(MultiplexedConnection, u64)>,
    /// No tracking connection before this (the last attempt failed).
    retry_at: Option<Instant>,
    /// Keys read on the connection and not invalidated since, with the queues they belong to.
    keys: HashMap<String, Vec<ObjectId>>,
}

/// What a push said changed.
enum Changed {
    Queues(Vec<ObjectId>),
    All,
}

impl Tracking {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, EndpointTracking>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tracking connection of `endpoint` and its generation, connecting when there is
    /// none; `None` where tracking is unavailable.
    pub(super) async fn connection(
        inner: &Arc<Inner>,
        endpoint: &str,
    ) -> Option<(MultiplexedConnection, u64)> {
        if inner.options.quiet_read_interval.is_zero() {
            return None;
        }
        let tracking = &inner.tracking;
        {
            let endpoints = tracking.lock();
            if let Some(e) = endpoints.get(endpoint) {
                if let Some(c) = &e.conn {
                    return Some(c.clone());
                }
                if e.retry_at.is_some_and(|t| Instant::now() < t) {
                    return None;
                }
            }
        }
        let generation = tracking.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let result = connect(inner, endpoint, generation).await;
        let mut endpoints = tracking.lock();
        let state = endpoints.entry(endpoint.to_string()).or_default();
        match result {
            Ok(conn) => {
                state.retry_at = None;
                state.keys.clear();
                state.conn = Some((conn, generation));
                state.conn.clone()
            }
            Err(reason) => {
                tracing::warn!(
                    endpoint = %mask_password(endpoint),
                    reason,
                    retry_in = ?RETRY_AFTER,
                    "no client tracking on this Redis: its idle queues are read at every poll"
                );
                state.retry_at = Some(Instant::now() + RETRY_AFTER);
                None
            }
        }
    }

    /// Remembers that `entries` are about to be read on the tracking connection.
    pub(super) fn reading(&self, endpoint: &str, entries: &[Arc<QueueEntry>]) {
        let mut endpoints = self.lock();
        let Some(state) = endpoints.get_mut(endpoint) else {
            return;
        };
        for entry in entries {
            let keys = &entry.config.keys;
            let (delayed, stats) = (keys.delayed(), stats_key(keys));
            for key in [
                entry.config.stream(),
                &delayed,
                &entry.config.dead_letter,
                &stats,
            ] {
                // Looked up by reference first: a busy queue is read every poll, and its keys
                // stay registered until an invalidation names them.
                match state.keys.get_mut(key) {
                    Some(ids) if ids.contains(&entry.id) => {}
                    Some(ids) => ids.push(entry.id.clone()),
                    None => {
                        state.keys.insert(key.to_string(), vec![entry.id.clone()]);
                    }
                }
            }
        }
    }

    /// The connection of `generation` failed: drop it, and with it every promise it carried.
    pub(super) fn lost(inner: &Inner, endpoint: &str, generation: u64) {
        if inner.tracking.forget(endpoint, generation) {
            inner.queues_changed(endpoint, None);
        }
    }

    /// Drops the connection when it is still of `generation`; whether it was.
    fn forget(&self, endpoint: &str, generation: u64) -> bool {
        let mut endpoints = self.lock();
        match endpoints.get_mut(endpoint) {
            Some(state) if state.conn.as_ref().is_some_and(|c| c.1 == generation) => {
                state.conn = None;
                state.keys.clear();
                true
            }
            _ => false,
        }
    }

    /// What a push of the connection of `generation` means.
    fn on_push(&self, endpoint: &str, generation: u64, push: &PushInfo) -> Option<Changed> {
        match push.kind {
            PushKind::Disconnection => self.forget(endpoint, generation).then_some(Changed::All),
            PushKind::Invalidate => {
                let mut endpoints = self.lock();
                let state = endpoints
                    .get_mut(endpoint)
                    .filter(|s| s.conn.as_ref().is_some_and(|c| c.1 == generation))?;
                match push.data.first() {
                    Some(Value::Array(keys)) => {
                        let mut ids = Vec::new();
                        for key in keys {
                            let key = match key {
                                Value::BulkString(b) => String::from_utf8_lossy(b),
                                Value::SimpleString(s) => s.as_str().into(),
                                _ => continue,
                            };
                            // Redis forgets an invalidated key until it is read again.
                            ids.extend(state.keys.remove(key.as_ref()).unwrap_or_default());
                        }
                        Some(Changed::Queues(ids))
                    }
                    // FLUSHALL / FLUSHDB: every key at once.
                    _ => {
                        state.keys.clear();
                        Some(Changed::All)
                    }
                }
            }
            _ => None,
        }
    }
}

/// A RESP3 connection to `endpoint` with client tracking on, whose pushes reach `inner`.
async fn connect(
    inner: &Arc<Inner>,
    endpoint: &str,
    generation: u64,
) -> Result<MultiplexedConnection, String> {
    let (url, tls) = inner.pool.target(endpoint);
    match Endpoint::parse(&url).map_err(|e| e.to_string())? {
        Endpoint::Single(_) => {}
        Endpoint::Cluster(_) => {
            return Err("a Redis Cluster is read at every poll (tracking is per node)".into());
        }
    }
    let client = single_client(&url, &tls).map_err(|e| e.to_string())?;
    let info = client.get_connection_info().clone();
    let redis_settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client =
        redis::Client::open(info.set_redis_settings(redis_settings)).map_err(|e| e.to_string())?;
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let key = endpoint.to_string();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_push_sender(move |push: PushInfo| {
            let Some(inner) = weak.upgrade() else {
                return Err(redis::aio::SendError);
            };
            match inner.tracking.on_push(&key, generation, &push) {
                Some(Changed::Queues(ids)) => inner.queues_changed(&key, Some(&ids)),
                Some(Changed::All) => inner.queues_changed(&key, None),
                None => {}
            }
            Ok(())
        });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .exec_async(&mut conn)
        .await
        .map_err(|e| format!("CLIENT TRACKING ON: {e}"))?;
    // Named, so that CLIENT LIST tells it from the workers' connections.
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(CLIENT_NAME)
        .exec_async(&mut conn)
        .await
        .map_err(|e| format!("CLIENT SETNAME: {e}"))?;
    Ok(conn)
}

impl Inner {
    /// Redis reported writes to the keys of queues `ids` of `endpoint` (`None`: every queue
    /// of the endpoint, e.g. the tracking connection was lost). Their last readings no longer
    /// stand in for a poll, and one without backlog is polled at once (see
    /// [`quiet::wake_early`]).
    fn queues_changed(&self, endpoint: &str, ids: Option<&[ObjectId]>) {
        let mut wake = false;
        {
            let mut queues = lock(&self.queues);
            let mut mark = |slot: &mut QueueSlot| {
                if slot.entry.redis_url != endpoint {
                    return;
                }
                slot.changes += 1;
                let at_zero = slot.entry.scaling.is_some() && slot.replicas == Some(0);
                if quiet::wake_early(slot.last_metrics.as_ref(), slot.woken_early, at_zero) {
                    slot.early_due = true;
                    slot.woken_early = true;
                    wake = true;
                }
            };
            match ids {
                Some(ids) => {
                    for id in ids {
                        if let Some(slot) = queues.get_mut(id) {
                            mark(slot);
                        }
                    }
                }
                None => queues.values_mut().for_each(&mut mark),
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }
}

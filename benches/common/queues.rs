//! Queues for the benchmarks, set up the way the operator sets them up, and filled through the
//! library's enqueue.

use futures::{StreamExt, stream};
use jobqueue_operator::queue::jobs::{ensure_library, store_settings};
use jobqueue_operator::queue::keys::QueueKeys;
use jobqueue_operator::queue::provision::provision;
use jobqueue_operator::queue::{EnqueueOptions, QueueConfig, RedisConn, enqueue};
use serde_json::json;

/// Enqueue calls in flight at once (pipelined on the multiplexed connection).
pub const IN_FLIGHT: usize = 64;

/// A queue on `stream` provisioned as the operator does: stream and group, stored settings
/// (job records on when `tracking`), the function library.
pub async fn provisioned(conn: &mut RedisConn, stream: &str, tracking: bool) -> QueueConfig {
    let mut cfg = QueueConfig::new(stream);
    cfg.jobs.tracking = tracking;
    provision(conn, &cfg, false).await.expect("provision");
    store_settings(conn, &cfg, &cfg.jobs)
        .await
        .expect("store settings");
    ensure_library(conn)
        .await
        .expect("load the jobqueue library");
    cfg
}

/// Enqueues `n` jobs (`{"n": i}`), `IN_FLIGHT` at a time; their ids.
pub async fn enqueue_many(conn: &RedisConn, keys: &QueueKeys, n: usize) -> Vec<String> {
    let options = EnqueueOptions::default();
    let options = &options;
    stream::iter(0..n)
        .map(|i| {
            let mut conn = conn.clone();
            async move {
                enqueue(&mut conn, keys, &json!({ "n": i }), options)
                    .await
                    .expect("enqueue")
                    .job_id
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

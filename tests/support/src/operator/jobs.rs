//! Jobs the operator wrote, read back from a stream with a plain Redis connection (not the
//! operator's code path).

use std::time::Duration;

use crate::wait::eventually;

/// A plain connection to the test's Redis (not the operator's code path).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test's redis-server")
}

/// A job read back from a stream.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry_id: String,
    pub id: String,
    pub enqueued_at: i64,
    pub schedule: Option<String>,
    pub scheduled_for: Option<i64>,
}

/// Waits (bounded by `within`) until `stream` holds at least `n` jobs; returns how many.
pub async fn jobs_at_least(
    conn: &redis::aio::MultiplexedConnection,
    stream: &str,
    n: usize,
    within: Duration,
) -> usize {
    eventually(within, &format!("{n} jobs in {stream}"), || {
        let mut conn = conn.clone();
        async move {
            match jobs(&mut conn, stream).await.len() {
                seen if seen >= n => Ok(seen),
                seen => Err(format!("{seen}")),
            }
        }
    })
    .await
}

/// Every entry of `stream`, oldest first.
pub async fn jobs(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<Job> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let field = |name: &str| -> Option<String> {
                e.map
                    .get(name)
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
            };
            Job {
                id: field("id").unwrap_or_default(),
                enqueued_at: field("enqueued_at")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default(),
                schedule: field("schedule"),
                scheduled_for: field("scheduled_for").and_then(|v| v.parse().ok()),
                entry_id: e.id,
            }
        })
        .collect()
}

//! Read-only listings for people looking at a queue (the operator's dashboard): the jobs
//! workers hold, the delayed jobs and when they are due, and one job's events. Plain reads;
//! nothing here changes a key.

use std::collections::HashMap;

use redis::streams::StreamRangeReply;

use super::config::QueueConfig;
use super::conn::RedisConn;
use super::error::{QueueError, Result};
use super::keys::QueueKeys;

/// A job delivered to a consumer and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingJob {
    pub entry_id: String,
    /// The job id (`None` when the entry was trimmed or has no `id` field).
    pub job_id: Option<String>,
    pub consumer: String,
    /// Time since it was last delivered.
    pub idle_ms: u64,
    /// Times it has been delivered.
    pub deliveries: u64,
}

/// The oldest `count` pending jobs of the queue's group.
pub async fn pending_jobs(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    count: usize,
) -> Result<Vec<PendingJob>> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(cfg.stream())
        .arg(&cfg.group)
        .arg("-")
        .arg("+")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(QueueError::during("listing pending jobs"))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Every key of a queue shares one slot, so one pipeline reads all entries (Cluster too).
    let mut pipe = redis::pipe();
    for (entry, ..) in &rows {
        pipe.cmd("XRANGE").arg(cfg.stream()).arg(entry).arg(entry);
    }
    let entries: Vec<StreamRangeReply> = pipe
        .query_async(conn)
        .await
        .map_err(QueueError::during("reading pending jobs"))?;
    Ok(rows
        .into_iter()
        .zip(entries)
        .map(
            |((entry_id, consumer, idle_ms, deliveries), e)| PendingJob {
                job_id: e.ids.first().and_then(|e| e.get::<String>("id")),
                entry_id,
                consumer,
                idle_ms,
                deliveries,
            },
        )
        .collect())
}

/// A job waiting in the delayed set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayedJob {
    /// The job id (`None` for a member that is not a job).
    pub job_id: Option<String>,
    /// Unix ms it becomes available.
    pub due_ms: i64,
    /// The attempt it will be (a retry waiting out its backoff has attempt > 1).
    pub attempt: Option<u32>,
}

/// The `count` delayed jobs due soonest.
pub async fn delayed_jobs(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    count: usize,
) -> Result<Vec<DelayedJob>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(cfg.keys.delayed())
        .arg(0)
        .arg(count - 1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .map_err(QueueError::during("listing delayed jobs"))?;
    Ok(members
        .into_iter()
        .map(|(member, score)| {
            let fields: HashMap<String, serde_json::Value> =
                serde_json::from_str(&member).unwrap_or_default();
            let text = |k: &str| match fields.get(k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            DelayedJob {
                job_id: text("id"),
                due_ms: score as i64,
                attempt: text("attempt").and_then(|a| a.parse().ok()),
            }
        })
        .collect())
}

/// One state change of a job, from the queue's events stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    pub state: String,
    pub attempt: Option<u32>,
    /// Unix ms (Redis clock).
    pub at_ms: Option<i64>,
    /// Progress JSON text, for a progress report.
    pub progress: Option<String>,
}

/// Job `id`'s events still in the capped events stream, oldest first. Reads at most `scan`
/// of the newest events (the stream holds every job's events).
pub async fn job_events(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    id: &str,
    scan: usize,
) -> Result<Vec<JobEvent>> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut end = "+".to_string();
    let mut read = 0;
    while read < scan {
        let page: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(keys.events())
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(PAGE.min(scan - read))
            .query_async(conn)
            .await
            .map_err(QueueError::during("reading job events"))?;
        let Some(last) = page.ids.last() else { break };
        end = format!("({}", last.id);
        read += page.ids.len();
        for e in &page.ids {
            if e.get::<String>("job").as_deref() != Some(id) {
                continue;
            }
            out.push(JobEvent {
                state: e.get("state").unwrap_or_default(),
                attempt: e.get::<String>("attempt").and_then(|a| a.parse().ok()),
                at_ms: e.get::<String>("at").and_then(|a| a.parse().ok()),
                progress: e.get("progress"),
            });
        }
    }
    out.reverse();
    Ok(out)
}

//! Following jobs from the outside: read one record, cancel, list recent jobs, and wait for a
//! job to end by blocking on the events stream rather than polling the record.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::streams::{StreamRangeReply, StreamReadReply};

use super::ops::fcall;
use super::record::{JobRecord, JobState};
use crate::conn::RedisConn;
use crate::error::{QueueError, Result};
use crate::keys::QueueKeys;

/// Longest single block on the events stream (stays well under the connection's reply
/// timeout, and bounds how late a deadline is noticed).
const BLOCK_SLICE: Duration = Duration::from_secs(1);

/// Reads job `id`'s record (`None` when there is none: unknown, expired, or not tracked).
/// `group` is the consumer group whose deliveries derive the state of XACK-only workers.
pub async fn get_job(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    group: &str,
    id: &str,
) -> Result<Option<JobRecord>> {
    let fields: Option<HashMap<String, String>> = fcall(
        conn,
        "reading a job",
        "jobqueue_get",
        keys,
        id,
        &[id, group],
    )
    .await?;
    fields
        .map(|f| JobRecord::from_fields(id, f))
        .transpose()
        .map_err(|e| QueueError::Protocol {
            op: "reading a job",
            detail: e.to_string(),
        })
}

/// What [`cancel_job`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was waiting and is now cancelled: no worker using the operations will run it.
    Cancelled,
    /// The job is running; its worker is asked to stop (it sees the flag on its next
    /// heartbeat or progress report).
    Requested,
    /// The job had already ended in this state.
    AlreadyFinal(String),
    /// No record of this job.
    Missing,
}

impl CancelOutcome {
    /// The outcome's name in the function library's reply: `cancelled`, `requested`, `final`
    /// or `missing`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::Requested => "requested",
            CancelOutcome::AlreadyFinal(_) => "final",
            CancelOutcome::Missing => "missing",
        }
    }
}

/// Cancels job `id` (see [`CancelOutcome`]).
pub async fn cancel_job(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    group: &str,
    id: &str,
) -> Result<CancelOutcome> {
    let (status, state): (String, String) = fcall(
        conn,
        "cancelling a job",
        "jobqueue_cancel",
        keys,
        id,
        &[id, group],
    )
    .await?;
    Ok(match status.as_str() {
        "cancelled" => CancelOutcome::Cancelled,
        "requested" => CancelOutcome::Requested,
        "final" => CancelOutcome::AlreadyFinal(state),
        _ => CancelOutcome::Missing,
    })
}

/// The most recently changed jobs (newest first), optionally only those in `state`, at most
/// `limit`. Jobs are found through the events stream, so only jobs with an event still in
/// its capped window are listed.
pub async fn list_jobs(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    group: &str,
    state: Option<JobState>,
    limit: usize,
) -> Result<Vec<JobRecord>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut end = "+".to_string();
    while out.len() < limit {
        let page: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(keys.events())
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await
            .map_err(QueueError::during("reading job events"))?;
        let Some(last) = page.ids.last() else { break };
        end = format!("({}", last.id);
        for event in &page.ids {
            let Some(id) = event.get::<String>("job") else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(rec) = get_job(conn, keys, group, &id).await?
                && state.is_none_or(|s| s == rec.state)
                && out.len() < limit
            {
                out.push(rec);
            }
        }
    }
    Ok(out)
}

/// Waits until job `id` ends or `timeout` passes; returns its last record (`None` when it has
/// none). Blocks on the events stream between reads, so an ending is seen at once.
pub async fn wait_job(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    group: &str,
    id: &str,
    timeout: Option<Duration>,
) -> Result<Option<JobRecord>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    // Note the stream's end before reading the record: no event can fall between the two.
    let mut after = last_event_id(conn, keys).await?;
    loop {
        let rec = get_job(conn, keys, group, id).await?;
        if rec.as_ref().is_none_or(|r| r.state.is_final()) {
            return Ok(rec);
        }
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(rec);
                }
                left.min(BLOCK_SLICE)
            }
            None => BLOCK_SLICE,
        };
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(slice.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(keys.events())
            .arg(&after)
            .query_async(conn)
            .await
            .map_err(QueueError::during("waiting for job events"))?;
        if let Some(last) = reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().last())
        {
            after = last.id;
        }
    }
}

async fn last_event_id(conn: &mut RedisConn, keys: &QueueKeys) -> Result<String> {
    let page: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(keys.events())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .map_err(QueueError::during("reading job events"))?;
    Ok(page
        .ids
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_string(), |e| e.id))
}

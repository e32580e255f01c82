//! The dead-letter stream: jobs that failed `maxDeliveries` times (and delayed-set members that
//! were not valid jobs). Each entry keeps the job's fields plus `reason`, `last_failure`,
//! `last_consumer`, `original_id` and `dead_at` (unix ms); `attempt` is the failed attempt.

use std::collections::BTreeMap;

use redis::streams::StreamRangeReply;

use super::config::QueueConfig;
use super::conn::RedisConn;
use super::error::{QueueError, Result};
use super::scripts::{DEAD_PURGE, DEAD_REPLAY, map_error};

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Entry id in the dead-letter stream.
    pub dead_id: String,
    /// All fields of the entry (job fields and dead-letter fields).
    pub fields: BTreeMap<String, String>,
}

impl DeadLetter {
    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Fails with [`QueueError::NoSuchStream`] unless the queue's stream exists: a typo in a
/// queue name must not look like an empty dead-letter stream.
async fn require_queue(conn: &mut RedisConn, cfg: &QueueConfig) -> Result<()> {
    let kind: String = redis::cmd("TYPE")
        .arg(cfg.stream())
        .query_async(conn)
        .await
        .map_err(QueueError::during("checking the queue's stream"))?;
    match kind.as_str() {
        "stream" => Ok(()),
        "none" => Err(QueueError::NoSuchStream {
            stream: cfg.stream().to_string(),
        }),
        other => Err(QueueError::WrongType {
            key: cfg.stream().to_string(),
            expected: "stream",
            actual: other.to_string(),
        }),
    }
}

/// Up to `count` dead letters, oldest first.
pub async fn list(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    count: usize,
) -> Result<Vec<DeadLetter>> {
    require_queue(conn, cfg).await?;
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&cfg.dead_letter)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(|e| map_error("listing dead letters", &cfg.dead_letter, &cfg.group, e))?;
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let mut fields = BTreeMap::new();
            for (k, v) in entry.map {
                let v: String = redis::from_redis_value(v).map_err(|e| QueueError::Protocol {
                    op: "listing dead letters",
                    detail: e.to_string(),
                })?;
                fields.insert(k, v);
            }
            Ok(DeadLetter {
                dead_id: entry.id,
                fields,
            })
        })
        .collect()
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// New stream entry ids of the replayed jobs.
    pub entry_ids: Vec<String>,
    /// Entries left in place because they are not jobs (malformed delayed members).
    pub skipped: u64,
}

/// Moves dead letters back into the queue with `attempt` reset to 1; each one exactly once
/// (the XADD and the XDEL of one entry are one atomic step). `ids` selects entries; empty
/// means all of them.
pub async fn replay(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    ids: &[String],
    batch: u32,
) -> Result<Replayed> {
    require_queue(conn, cfg).await?;
    let batch = batch.max(1) as usize;
    let all;
    let ids = if ids.is_empty() {
        // Replay what is there now; dead letters arriving meanwhile stay for the next replay.
        all = all_ids(conn, cfg, batch).await?;
        &all[..]
    } else {
        ids
    };
    let mut out = Replayed::default();
    for chunk in ids.chunks(batch) {
        let mut inv = DEAD_REPLAY.key(&cfg.dead_letter);
        inv.key(cfg.stream()).key(cfg.keys.settings()).arg(batch);
        for id in chunk {
            inv.arg(id);
        }
        let (_replayed, skipped, _remaining, new_ids): (u64, u64, u64, Vec<String>) = inv
            .invoke_async(conn)
            .await
            .map_err(|e| map_error("replaying dead letters", cfg.stream(), &cfg.group, e))?;
        out.entry_ids.extend(new_ids);
        out.skipped += skipped;
    }
    Ok(out)
}

async fn all_ids(conn: &mut RedisConn, cfg: &QueueConfig, page: usize) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut start = "-".to_string();
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&cfg.dead_letter)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(page)
            .query_async(conn)
            .await
            .map_err(|e| map_error("listing dead letters", &cfg.dead_letter, &cfg.group, e))?;
        let n = reply.ids.len();
        ids.extend(reply.ids.into_iter().map(|e| e.id));
        match ids.last() {
            Some(last) if n == page => start = format!("({last}"),
            _ => return Ok(ids),
        }
    }
}

/// Deletes the dead-letter stream. Returns the number of dead letters removed.
pub async fn purge(conn: &mut RedisConn, cfg: &QueueConfig) -> Result<u64> {
    DEAD_PURGE
        .key(&cfg.dead_letter)
        .invoke_async(conn)
        .await
        .map_err(|e| map_error("purging dead letters", &cfg.dead_letter, &cfg.group, e))
}

//! The worker operations: thin FCALL wrappers around the `jobqueue` library, so that Rust
//! workers make exactly the calls a worker in any other language makes.

use redis::FromRedisValue;

use super::library::{ensure_library, is_missing_function};
use crate::conn::RedisConn;
use crate::error::{QueueError, Result};
use crate::keys::QueueKeys;

/// Calls library function `name` with the three standard keys of job `job_id` and `args`.
/// A node that lacks the library (restarted, or added to a Cluster later) gets it loaded and
/// the call is made once more.
pub(crate) async fn fcall<T: FromRedisValue>(
    conn: &mut RedisConn,
    op: &'static str,
    name: &str,
    keys: &QueueKeys,
    job_id: &str,
    args: &[&str],
) -> Result<T> {
    // The read is flagged no-writes in the library: FCALL_RO lets it run where writes may not.
    let mut cmd = redis::cmd(if name == "jobqueue_get" {
        "FCALL_RO"
    } else {
        "FCALL"
    });
    cmd.arg(name)
        .arg(3)
        .arg(&keys.stream)
        .arg(keys.settings())
        .arg(keys.job(job_id));
    for a in args {
        cmd.arg(*a);
    }
    match cmd.query_async::<T>(conn).await {
        Err(e) if is_missing_function(&e) => {
            ensure_library(conn).await?;
            cmd.query_async(conn).await.map_err(|e| map(op, keys, e))
        }
        other => other.map_err(|e| map(op, keys, e)),
    }
}

fn map(op: &'static str, keys: &QueueKeys, e: redis::RedisError) -> QueueError {
    crate::error::map_error(op, &keys.stream, "", e)
}

/// One job as handed to a worker by XREADGROUP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// The stream entry id.
    pub entry_id: String,
    /// The job id (`id` field).
    pub job_id: String,
    /// The attempt (`attempt` field).
    pub attempt: u32,
    /// The payload (JSON text).
    pub payload: String,
    /// The Schedule that fired this run (`schedule` field), for scheduled jobs.
    pub schedule: Option<String>,
    /// The run's scheduled time, unix ms (`scheduled_for` field), for scheduled jobs.
    pub scheduled_for_ms: Option<i64>,
}

impl Delivery {
    /// The job of stream entry `entry_id` with `fields` (flat name/value pairs, as XREADGROUP
    /// gives them); absent fields read as the protocol's defaults.
    pub fn from_entry(entry_id: String, fields: &[(String, String)]) -> Delivery {
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        Delivery {
            job_id: get("id").cloned().unwrap_or_else(|| entry_id.clone()),
            attempt: get("attempt").and_then(|a| a.parse().ok()).unwrap_or(1),
            payload: get("payload").cloned().unwrap_or_else(|| "{}".into()),
            schedule: get("schedule").cloned(),
            scheduled_for_ms: get("scheduled_for").and_then(|t| t.parse().ok()),
            entry_id,
        }
    }
}

/// What a worker operation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The worker holds the job: run it.
    Run,
    /// It was cancelled while queued (and is now acknowledged): skip it.
    Cancelled,
    /// The delivery is no longer this consumer's (reclaimed meanwhile): skip it.
    Stale,
}

/// The answer of a heartbeat or a progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Still this consumer's; `cancel_requested` says whether someone asked it to stop.
    Held {
        /// A cancel was requested.
        cancel_requested: bool,
    },
    /// No longer this consumer's.
    Stale,
}

/// What completing or failing a job did: its new state (as stored) and attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// `succeeded`, `queued`, `retrying`, `dead`, `cancelled` or `stale`.
    pub state: String,
    /// The attempt the record now shows.
    pub attempt: u32,
}

/// The worker operations of one consumer on one queue.
#[derive(Debug, Clone)]
pub struct JobOps {
    /// The queue's keys.
    pub keys: QueueKeys,
    /// The consumer group.
    pub group: String,
    /// This worker's consumer name.
    pub consumer: String,
}

impl JobOps {
    /// Reads and starts up to `count` new jobs in one call (`jobqueue_take`); jobs cancelled
    /// while queued are left out. Empty when none is waiting: functions cannot block, so the
    /// caller then blocks in XREADGROUP and [`start`](Self::start)s what that hands it.
    pub async fn take(&self, conn: &mut RedisConn, count: usize) -> Result<Vec<Delivery>> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("jobqueue_take")
            .arg(2)
            .arg(&self.keys.stream)
            .arg(self.keys.settings())
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(count.max(1));
        let entries: Vec<(String, Vec<String>)> = match cmd.query_async(conn).await {
            Err(e) if is_missing_function(&e) => {
                ensure_library(conn).await?;
                cmd.query_async(conn).await
            }
            other => other,
        }
        .map_err(|e| crate::error::map_error("taking jobs", &self.keys.stream, &self.group, e))?;
        Ok(entries
            .into_iter()
            .map(|(entry, flat)| {
                let pairs: Vec<(String, String)> = flat
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                Delivery::from_entry(entry, &pairs)
            })
            .collect())
    }

    /// Marks `d` active, unless it was cancelled or reclaimed meanwhile.
    pub async fn start(&self, conn: &mut RedisConn, d: &Delivery) -> Result<Started> {
        let (status, _attempt): (String, i64) = fcall(
            conn,
            "starting a job",
            "jobqueue_start",
            &self.keys,
            &d.job_id,
            &[&self.group, &self.consumer, &d.entry_id, &d.job_id],
        )
        .await?;
        Ok(match status.as_str() {
            "active" => Started::Run,
            "cancelled" => Started::Cancelled,
            _ => Started::Stale,
        })
    }

    /// Reports progress (any JSON) and extends the visibility timeout.
    pub async fn progress(
        &self,
        conn: &mut RedisConn,
        d: &Delivery,
        progress: &str,
    ) -> Result<Liveness> {
        self.liveness(conn, d, "jobqueue_progress", Some(progress))
            .await
    }

    /// Extends the visibility timeout (resets the entry's idle time).
    pub async fn heartbeat(&self, conn: &mut RedisConn, d: &Delivery) -> Result<Liveness> {
        self.liveness(conn, d, "jobqueue_heartbeat", None).await
    }

    async fn liveness(
        &self,
        conn: &mut RedisConn,
        d: &Delivery,
        name: &str,
        progress: Option<&str>,
    ) -> Result<Liveness> {
        let mut args = vec![self.group.as_str(), &self.consumer, &d.entry_id, &d.job_id];
        args.extend(progress);
        let (status, cancel): (String, i64) =
            fcall(conn, "extending a job", name, &self.keys, &d.job_id, &args).await?;
        Ok(if status == "active" {
            Liveness::Held {
                cancel_requested: cancel == 1,
            }
        } else {
            Liveness::Stale
        })
    }

    /// Completes `d` with an optional result (JSON text; other text is stored as a string).
    pub async fn complete(
        &self,
        conn: &mut RedisConn,
        d: &Delivery,
        result: Option<&str>,
    ) -> Result<Settled> {
        let attempt = d.attempt.to_string();
        let args = [
            self.group.as_str(),
            &d.entry_id,
            &d.job_id,
            result.unwrap_or(""),
            &attempt,
        ];
        let reply = fcall(
            conn,
            "completing a job",
            "jobqueue_complete",
            &self.keys,
            &d.job_id,
            &args,
        );
        Ok(settled(reply.await?))
    }

    /// Fails `d`: retried with the queue's backoff, or dead-lettered at `maxDeliveries` or at
    /// once when `permanent`.
    pub async fn fail(
        &self,
        conn: &mut RedisConn,
        d: &Delivery,
        error: &str,
        permanent: bool,
    ) -> Result<Settled> {
        let args = [
            self.group.as_str(),
            &d.entry_id,
            &d.job_id,
            error,
            if permanent { "1" } else { "0" },
        ];
        let reply = fcall(
            conn,
            "failing a job",
            "jobqueue_fail",
            &self.keys,
            &d.job_id,
            &args,
        );
        Ok(settled(reply.await?))
    }
}

fn settled((state, attempt): (String, i64)) -> Settled {
    Settled {
        state,
        attempt: u32::try_from(attempt).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_delivery_reads_the_job_fields_and_the_protocol_defaults() {
        let scheduled = Delivery::from_entry(
            "1-0".into(),
            &pairs(&[
                ("id", "sched-nightly-1700000000000"),
                ("payload", r#"{"n":1}"#),
                ("attempt", "2"),
                ("schedule", "nightly"),
                ("scheduled_for", "1700000000000"),
            ]),
        );
        assert_eq!(scheduled.job_id, "sched-nightly-1700000000000");
        assert_eq!(
            (scheduled.attempt, scheduled.payload.as_str()),
            (2, r#"{"n":1}"#)
        );
        assert_eq!(scheduled.schedule.as_deref(), Some("nightly"));
        assert_eq!(scheduled.scheduled_for_ms, Some(1_700_000_000_000));
        let bare = Delivery::from_entry("2-0".into(), &[]);
        assert_eq!(
            bare,
            Delivery {
                entry_id: "2-0".into(),
                job_id: "2-0".into(),
                attempt: 1,
                payload: "{}".into(),
                schedule: None,
                scheduled_for_ms: None,
            }
        );
    }
}

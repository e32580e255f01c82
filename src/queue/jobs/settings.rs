//! A queue's rules for job records and worker operations, stored in Redis (`<prefix>:settings`)
//! so that the scripts, the worker functions and clients in any language read one source.

use std::time::Duration;

use crate::queue::config::QueueConfig;
use crate::queue::conn::RedisConn;
use crate::queue::error::{QueueError, Result};

/// Record retention and limits of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// Keep a record per job (off for fire-and-forget queues).
    pub tracking: bool,
    /// How long the record of a succeeded job is kept.
    pub succeeded_ttl: Duration,
    /// How long the record of a dead or cancelled job is kept.
    pub dead_ttl: Duration,
    /// Bound of a record whose job is still waiting or running (plus a delayed job's delay):
    /// a job that never ends cannot keep its record forever.
    pub waiting_ttl: Duration,
    /// Largest result (and progress) stored, in bytes of JSON text.
    pub max_result_size: u64,
    /// Approximate cap of the events stream.
    pub events_max_length: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            tracking: true,
            succeeded_ttl: Duration::from_secs(24 * 3600),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
            waiting_ttl: Duration::from_secs(7 * 24 * 3600),
            max_result_size: 64 * 1024,
            events_max_length: 10_000,
        }
    }
}

/// The settings hash's fields for `cfg` and `jobs` (names as the Lua side reads them).
pub fn settings_fields(cfg: &QueueConfig, jobs: &JobSettings) -> Vec<(&'static str, String)> {
    let ms = |d: Duration| d.as_millis().max(1).to_string();
    let backoff = cfg
        .backoff
        .map(|b| b.table_ms(cfg.max_deliveries))
        .unwrap_or_default()
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("group", cfg.group.clone()),
        ("max_deliveries", cfg.max_deliveries.max(1).to_string()),
        ("visibility_timeout_ms", ms(cfg.visibility_timeout)),
        ("backoff_ms", backoff),
        ("dead_letter", cfg.dead_letter.clone()),
        (
            "dead_letter_max_length",
            cfg.dead_letter_max_length.unwrap_or(0).to_string(),
        ),
        (
            "tracking",
            if jobs.tracking { "1" } else { "0" }.to_string(),
        ),
        ("succeeded_ttl_ms", ms(jobs.succeeded_ttl)),
        ("dead_ttl_ms", ms(jobs.dead_ttl)),
        ("waiting_ttl_ms", ms(jobs.waiting_ttl)),
        ("max_result_size", jobs.max_result_size.to_string()),
        (
            "events_max_length",
            jobs.events_max_length.max(1).to_string(),
        ),
    ]
}

/// Writes the queue's settings hash (all fields at once, so readers never see a mix).
pub async fn store_settings(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    jobs: &JobSettings,
) -> Result<()> {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(cfg.keys.settings());
    for (k, v) in settings_fields(cfg, jobs) {
        cmd.arg(k).arg(v);
    }
    let _: i64 = cmd
        .query_async(conn)
        .await
        .map_err(QueueError::during("storing queue settings"))?;
    Ok(())
}

pub use jobqueue_client::jobs::{WorkerSettings, read_worker_settings};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::config::Backoff;

    #[test]
    fn fields_carry_the_queue_rules_and_the_record_limits() {
        let mut cfg = QueueConfig::new("jobqueue:{ns/q}");
        cfg.max_deliveries = 3;
        cfg.backoff = Some(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        });
        let f: std::collections::HashMap<_, _> = settings_fields(&cfg, &JobSettings::default())
            .into_iter()
            .collect();
        assert_eq!(f["backoff_ms"], "100,200");
        assert_eq!(f["max_deliveries"], "3");
        assert_eq!(f["succeeded_ttl_ms"], "86400000");
        assert_eq!(f["dead_ttl_ms"], "604800000");
        assert_eq!(f["max_result_size"], "65536");
        assert_eq!(f["tracking"], "1");
        assert_eq!(f["dead_letter"], "jobqueue:{ns/q}:dead");
    }
}

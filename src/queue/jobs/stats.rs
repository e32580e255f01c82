//! Job counters of one queue, kept by the Lua side in `<prefix>:jobstats` whenever a record
//! changes state (`job_count` in `clients/rust/lua/common.lua`) and read by the metrics snapshot
//! (docs/architecture.md#redis-data-model). Counted only for tracked jobs: a plain XACK worker's
//! successes have no state change to count.

use std::time::Duration;

use redis::Value;

use crate::queue::keys::QueueKeys;

/// Upper bounds (ms) of the duration histogram's buckets, the same list as
/// `JOB_DURATION_BUCKETS_MS` in `lua/common.lua`.
pub const JOB_DURATION_BUCKETS_MS: [u64; 14] = [
    10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000,
];

/// The counters hash of a queue.
pub fn stats_key(keys: &QueueKeys) -> String {
    keys.aux("jobstats")
}

/// Totals since the counters hash was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Attempts that failed and were retried.
    pub failed: u64,
    /// Jobs that went dead (dead-lettered).
    pub dead: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Run time of succeeded jobs' last attempt.
    pub duration: DurationCounts,
}

/// A histogram kept as totals: per bucket of [`JOB_DURATION_BUCKETS_MS`] (not cumulative; a
/// missing one is 0), then the ones above the last bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurationCounts {
    pub buckets: Vec<u64>,
    pub above: u64,
    pub count: u64,
    pub sum: Duration,
}

impl DurationCounts {
    /// `(upper bound in seconds, count)` per bucket, `+Inf` last, as a Prometheus encoder takes
    /// them (it adds them up).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        JOB_DURATION_BUCKETS_MS
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                let n = self.buckets.get(i).copied().unwrap_or(0);
                (*bound as f64 / 1000.0, n)
            })
            .chain([(f64::INFINITY, self.above)])
            .collect()
    }
}

impl JobCounts {
    /// Reads the hash's fields (a flat list, as HGETALL answers); unknown fields are ignored.
    pub fn from_fields(v: Option<&Value>) -> Self {
        let mut c = JobCounts::default();
        let Some(Value::Array(items)) = v else {
            return c;
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            _ => String::new(),
        };
        for pair in items.chunks_exact(2) {
            let n: u64 = text(&pair[1]).parse().unwrap_or(0);
            match text(&pair[0]).as_str() {
                "succeeded" => c.succeeded = n,
                "failed" => c.failed = n,
                "dead" => c.dead = n,
                "cancelled" => c.cancelled = n,
                "duration_sum_ms" => c.duration.sum = Duration::from_millis(n),
                "duration_le_inf" => c.duration.above = n,
                field => {
                    let bound = field
                        .strip_prefix("duration_le_")
                        .and_then(|b| b.parse().ok());
                    if let Some(i) = bound
                        .and_then(|b: u64| JOB_DURATION_BUCKETS_MS.iter().position(|x| *x == b))
                    {
                        c.duration.buckets.resize(JOB_DURATION_BUCKETS_MS.len(), 0);
                        c.duration.buckets[i] = n;
                    }
                }
            }
        }
        // Every run lands in exactly one bucket: their sum is the count (no field of its own,
        // one write less per job).
        c.duration.count = c.duration.buckets.iter().sum::<u64>() + c.duration.above;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lua_side_uses_the_same_buckets() {
        let list = JOB_DURATION_BUCKETS_MS.map(|b| b.to_string()).join(", ");
        let lua: String = jobqueue_client::lua::COMMON
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            lua.contains(&format!("JOB_DURATION_BUCKETS_MS = {{ {list} }}")),
            "lua/common.lua's JOB_DURATION_BUCKETS_MS differs from {list}"
        );
    }

    #[test]
    fn counters_are_read_from_the_hash_fields() {
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let fields = Value::Array(
            [
                ("succeeded", "3"),
                ("failed", "2"),
                ("dead", "1"),
                ("duration_le_10", "1"),
                ("duration_le_1000", "2"),
                ("duration_le_inf", "0"),
                ("duration_sum_ms", "1505"),
                ("other", "9"),
            ]
            .iter()
            .flat_map(|(k, v)| [s(k), s(v)])
            .collect(),
        );
        let c = JobCounts::from_fields(Some(&fields));
        assert_eq!((c.succeeded, c.failed, c.dead, c.cancelled), (3, 2, 1, 0));
        assert_eq!(c.duration.count, 3);
        assert_eq!(c.duration.sum, Duration::from_millis(1505));
        let b = c.duration.buckets();
        assert_eq!(b[0], (0.01, 1));
        assert_eq!(b[5], (1.0, 2));
        assert_eq!(b.len(), JOB_DURATION_BUCKETS_MS.len() + 1);
        assert_eq!(b.last(), Some(&(f64::INFINITY, 0)));
        assert_eq!(JobCounts::from_fields(None), JobCounts::default());
    }
}

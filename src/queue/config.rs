//! The engine's view of one queue: plain values, no Kubernetes types. Built from a JobQueue
//! resource by `crate::plan` (operator, `-f manifest` in the CLI) or directly (stream key on
//! the command line).

use std::time::Duration;

use super::adopted::Adopted;
use super::error::{QueueError, Result};
use super::jobs::JobSettings;
use super::keys::QueueKeys;

/// Where a newly created consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Only entries added after the group was created (`$`).
    #[default]
    Latest,
    /// Every entry already in the stream (`0`).
    Beginning,
}

impl StartFrom {
    /// The id given to XGROUP CREATE.
    pub fn group_start_id(self) -> &'static str {
        match self {
            StartFrom::Latest => "$",
            StartFrom::Beginning => "0",
        }
    }
}

/// Exponential delay before a retry: `initial * multiplier^(n-1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the second attempt.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth factor per failed attempt (>= 1).
    pub multiplier: f64,
}

impl Backoff {
    /// Delay after failed attempt `attempt` (1-based) before the next one.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let factor = self.multiplier.max(1.0).powi(exp);
        let ms = self.initial.as_millis() as f64 * factor;
        let max_ms = self.max.as_millis() as f64;
        Duration::from_millis(ms.min(max_ms).max(0.0) as u64)
    }

    /// The delays (ms) after attempts `1..max_deliveries-1`, the table the retry script
    /// indexes by attempt (no delay is needed after the last attempt: it dead-letters).
    pub fn table_ms(&self, max_deliveries: u32) -> Vec<u64> {
        (1..max_deliveries)
            .map(|a| self.delay_after(a).as_millis() as u64)
            .collect()
    }
}

/// Retention of acknowledged entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Keep at most this many entries (never trimming unread or pending ones).
    pub max_length: Option<u64>,
    /// Remove entries older than this (never unread or pending ones).
    pub max_age: Option<Duration>,
}

/// Everything the engine needs to know about one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The queue's keys (stream, delayed set, ...).
    pub keys: QueueKeys,
    /// Consumer group of the workers.
    pub group: String,
    /// Where a new group starts.
    pub start_from: StartFrom,
    /// Idle time after which an unacknowledged job is handed out again.
    pub visibility_timeout: Duration,
    /// Deliveries before a job goes to the dead-letter stream (>= 1).
    pub max_deliveries: u32,
    /// Delay retries through the delayed set; `None` re-enqueues at once.
    pub backoff: Option<Backoff>,
    /// Trimming of acknowledged entries.
    pub retention: Retention,
    /// Dead-letter stream key (same Cluster slot as the stream).
    pub dead_letter: String,
    /// Cap of the dead-letter stream (oldest dead letters are dropped beyond it).
    pub dead_letter_max_length: Option<u64>,
    /// Job records: tracking, retention, result size (stored in the settings hash).
    pub jobs: JobSettings,
    /// Another system's queue, only read (`None`: a native queue the operator provisions).
    pub source: Option<Adopted>,
    /// The JobQueue the stream is claimed for when provisioned (`None`: no claim, e.g. a
    /// stream named on the command line).
    pub claim: Option<Claim>,
    /// The operator leadership term acting on the queue (0: none, never fenced): provisioning
    /// records it, and janitor passes of an older term than the one recorded do nothing.
    pub term: u64,
}

/// A JobQueue's claim on its stream: one stream serves one JobQueue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    /// `namespace/name`: who owns the stream.
    pub owner: String,
    /// The JobQueue's uid (recorded; a JobQueue recreated under its name keeps the claim).
    pub uid: String,
}

/// The default consumer group name.
pub const DEFAULT_GROUP: &str = "workers";

impl QueueConfig {
    /// A queue on `stream` with the JobQueue defaults (group `workers`, start from latest,
    /// 5m visibility timeout, 5 deliveries, no backoff, no retention, default dead-letter key).
    pub fn new(stream: impl Into<String>) -> Self {
        let keys = QueueKeys::new(stream);
        let dead_letter = keys.dead();
        QueueConfig {
            keys,
            group: DEFAULT_GROUP.to_string(),
            start_from: StartFrom::Latest,
            visibility_timeout: Duration::from_secs(300),
            max_deliveries: 5,
            backoff: None,
            retention: Retention::default(),
            dead_letter,
            dead_letter_max_length: None,
            jobs: JobSettings::default(),
            source: None,
            claim: None,
            term: 0,
        }
    }

    /// Another system's queue: read to scale its workers, never provisioned or written.
    pub fn adopted(source: Adopted) -> Self {
        QueueConfig {
            source: Some(source.clone()),
            ..QueueConfig::new(source.slot_key())
        }
    }

    /// Whether the queue belongs to another system (nothing of it may be written).
    pub fn is_adopted(&self) -> bool {
        self.source.is_some()
    }

    /// The stream key.
    pub fn stream(&self) -> &str {
        &self.keys.stream
    }

    /// Checks what the engine relies on: a non-empty stream and group, at least one delivery,
    /// a dead-letter key in the stream's Cluster slot (the janitor moves jobs atomically).
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(QueueError::InvalidConfig { field, reason });
        if self.keys.stream.is_empty() {
            return invalid("stream", "must not be empty".into());
        }
        if self.group.is_empty() {
            return invalid("consumerGroup", "must not be empty".into());
        }
        if self.max_deliveries == 0 {
            return invalid("delivery.maxDeliveries", "must be at least 1".into());
        }
        if self.visibility_timeout.is_zero() {
            return invalid(
                "delivery.visibilityTimeout",
                "must be greater than zero".into(),
            );
        }
        if let Some(b) = &self.backoff
            && !(b.multiplier.is_finite() && b.multiplier >= 1.0)
        {
            return invalid(
                "delivery.retryBackoff.multiplier",
                format!("{} is not allowed; use a number >= 1", b.multiplier),
            );
        }
        if !self.keys.is_slot_consistent() {
            return invalid(
                "stream",
                format!(
                    "{:?} contains '}}' but no hash tag, so its auxiliary keys cannot share its Redis Cluster slot; \
                     add a hash tag, e.g. {:?}",
                    self.keys.stream,
                    format!("{{{}}}", self.keys.stream.replace(['{', '}'], ""))
                ),
            );
        }
        if self.dead_letter == self.keys.stream {
            return invalid(
                "deadLetter.stream",
                "must differ from the queue's stream".into(),
            );
        }
        if !self.keys.same_slot(&self.dead_letter) {
            return invalid(
                "deadLetter.stream",
                format!(
                    "{:?} is not in the queue's Redis Cluster slot; use a key like {:?} (same hash tag)",
                    self.dead_letter,
                    self.keys.dead()
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_valid_and_match_the_crd_defaults() {
        let cfg = QueueConfig::new("jobqueue:{ns/q}");
        cfg.validate().unwrap();
        assert_eq!(cfg.group, "workers");
        assert_eq!(cfg.dead_letter, "jobqueue:{ns/q}:dead");
        assert_eq!(cfg.max_deliveries, 5);
    }

    #[test]
    fn dead_letter_outside_the_slot_is_rejected_with_the_field_named() {
        let mut cfg = QueueConfig::new("jobqueue:{ns/q}");
        cfg.dead_letter = "elsewhere".into();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.starts_with("invalid deadLetter.stream"), "{err}");
        cfg.dead_letter = "jobqueue:{ns/q}".into();
        assert!(cfg.validate().is_err());
        cfg.dead_letter = "other:{ns/q}:dlq".into();
        cfg.validate().unwrap();
    }

    #[test]
    fn zero_deliveries_and_bad_multiplier_are_rejected() {
        let mut cfg = QueueConfig::new("q");
        cfg.max_deliveries = 0;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("delivery.maxDeliveries")
        );
        let mut cfg = QueueConfig::new("q");
        cfg.backoff = Some(Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
            multiplier: f64::NAN,
        });
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("multiplier")
        );
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        };
        assert_eq!(b.table_ms(6), vec![1000, 2000, 4000, 8000, 10000]);
        assert!(b.table_ms(1).is_empty());
    }

    proptest! {
        #[test]
        fn backoff_is_monotone_and_bounded(
            initial in 0u64..100_000,
            max in 0u64..1_000_000,
            multiplier in 1.0f64..100.0,
            attempt in 1u32..2000,
        ) {
            let b = Backoff {
                initial: Duration::from_millis(initial),
                max: Duration::from_millis(max),
                multiplier,
            };
            let d = b.delay_after(attempt);
            prop_assert!(d <= b.max);
            prop_assert!(b.delay_after(attempt + 1) >= d);
            prop_assert_eq!(b.delay_after(1), Duration::from_millis(initial.min(max)));
        }
    }
}

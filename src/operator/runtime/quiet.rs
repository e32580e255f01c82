//! Which reads and janitor steps an idle queue can go without (docs/architecture.md#operator-loops).
//!
//! A reading made on the endpoint's tracking connection (Redis client tracking) stays true
//! until Redis says one of the keys it read was written. Nothing a worker does to a queue with
//! nothing waiting and nothing pending goes unseen: new work is an `XADD` or `ZADD`, which
//! invalidates; `XREADGROUP` and `XACK` have nothing to act on. So such a queue's last reading
//! stands in for a new one until an invalidation, a lost tracking connection, or the safety
//! interval. Pure: the runtime gives the reading and the clock.

use std::time::{Duration, Instant};

use crate::queue::config::QueueConfig;
use crate::queue::metrics::{LagSource, QueueMetrics};

/// The last reading of a queue, as the runtime keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub metrics: &'a QueueMetrics,
    /// When the reading was started.
    pub read_at: Instant,
    /// It was made on the tracking connection and no key it read has been written since.
    pub unchanged: bool,
}

/// Nothing waiting, delayed or pending: no worker can have anything of this queue in hand.
pub fn idle(m: &QueueMetrics) -> bool {
    m.lag == 0 && m.lag_source != LagSource::AtLeast && m.pending == 0 && m.delayed == 0
}

/// The reading can stand in for a poll: the queue was idle and nothing changed since, and the
/// reading is younger than `safety` (which bounds what tracking cannot see: consumers that
/// joined, idle times that grew).
pub fn may_skip_read(r: Reading<'_>, now: Instant, safety: Duration) -> bool {
    r.unchanged && idle(r.metrics) && now.saturating_duration_since(r.read_at) < safety
}

/// The delayed set was empty and nothing wrote to it since: no promotion pass is needed.
pub fn may_skip_promotion(r: Option<Reading<'_>>) -> bool {
    r.is_some_and(|r| r.unchanged && r.metrics.delayed == 0)
}

/// No job can have waited past the visibility timeout: nothing was pending at a reading that is
/// unchanged since, or younger than the timeout (a job read since has been held for less).
pub fn may_skip_redelivery(r: Option<Reading<'_>>, now: Instant, visibility: Duration) -> bool {
    r.is_some_and(|r| {
        r.metrics.pending == 0
            && (r.unchanged || now.saturating_duration_since(r.read_at) < visibility)
    })
}

/// Housekeeping (idle consumers, retention) has nothing to do: no consumer can have been idle
/// for `consumer_idle` yet, and retention has nothing to remove.
pub fn may_skip_housekeeping(
    r: Option<Reading<'_>>,
    cfg: &QueueConfig,
    now: Instant,
    consumer_idle: Duration,
) -> bool {
    let Some(r) = r.filter(|r| r.unchanged) else {
        return false;
    };
    let age = now.saturating_duration_since(r.read_at);
    // A consumer that joined after the reading has been idle at most `age`.
    let reap = age >= consumer_idle
        || r.metrics
            .consumers
            .iter()
            .any(|c| c.pending == 0 && c.idle.saturating_add(age) >= consumer_idle);
    let length = r.metrics.length;
    let trim = match (cfg.retention.max_length, cfg.retention.max_age) {
        (None, None) => false,
        // Entries grow old without anyone writing.
        (_, Some(_)) => length > 0,
        (Some(max), None) => length > max,
    };
    !reap && !trim
}

/// Whether a write seen on a queue should poll it before its next turn: only a queue that
/// had no backlog (the case where new work would otherwise wait a whole interval to be seen).
/// Once per interval while workers run, so a queue whose workers keep it empty is read at
/// most twice as often; every time while it is scaled to zero, where nothing takes the work
/// and the reading that follows sees a backlog (no further wake-ups until it is idle again).
pub fn wake_early(last: Option<&QueueMetrics>, already_woken: bool, at_zero: bool) -> bool {
    (at_zero || !already_woken)
        && last.is_some_and(|m| m.backlog() == 0 && m.lag_source != LagSource::AtLeast)
}

/// Whether the status loop reads a schedule's stored state now. Its state changes when its
/// armed run comes due (fired, skipped or missed: the next run moves on) or when it is written;
/// between those, the last reading stands (a run triggered by hand elsewhere shows within
/// `safety`; zero reads every time). `written_since`: this process wrote the definition after
/// the last read began.
pub fn schedule_read_due(
    last_read: Option<Instant>,
    written_since: bool,
    next_run_ms: Option<i64>,
    now: Instant,
    now_ms: i64,
    safety: Duration,
) -> bool {
    let Some(at) = last_read else { return true };
    written_since
        || safety.is_zero()
        || now.saturating_duration_since(at) >= safety
        || next_run_ms.is_some_and(|ms| ms <= now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::jobs::JobCounts;
    use crate::queue::metrics::ConsumerInfo;
    use crate::queue::{QueueConfig, Retention};

    fn metrics(lag: u64, pending: u64, delayed: u64) -> QueueMetrics {
        QueueMetrics {
            length: lag + pending,
            lag,
            lag_source: LagSource::Reported,
            pending,
            oldest_pending_age: None,
            consumers: Vec::new(),
            delayed,
            dead_letter_length: 0,
            last_delivered_id: "0-0".into(),
            server_time_ms: 0,
            jobs: JobCounts::default(),
        }
    }

    const SAFETY: Duration = Duration::from_secs(30);

    fn reading(m: &QueueMetrics, read_at: Instant, unchanged: bool) -> Option<Reading<'_>> {
        Some(Reading {
            metrics: m,
            read_at,
            unchanged,
        })
    }

    #[test]
    fn only_an_idle_unchanged_recent_reading_stands_in_for_a_poll() {
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        for (lag, pending, delayed) in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 2, 1)] {
            let m = metrics(lag, pending, delayed);
            for unchanged in [false, true] {
                let r = Reading {
                    metrics: &m,
                    read_at: t0,
                    unchanged,
                };
                let expect = unchanged && lag + pending + delayed == 0;
                assert_eq!(
                    may_skip_read(r, later(1), SAFETY),
                    expect,
                    "{m:?} {unchanged}"
                );
                assert_eq!(may_skip_read(r, later(29), SAFETY), expect);
                assert!(!may_skip_read(r, later(30), SAFETY));
                assert!(!may_skip_read(r, later(3600), SAFETY));
            }
        }
    }

    #[test]
    fn a_lag_known_only_as_a_lower_bound_is_never_idle() {
        let mut m = metrics(0, 0, 0);
        m.lag_source = LagSource::AtLeast;
        assert!(!idle(&m));
        m.lag_source = LagSource::Estimated;
        assert!(idle(&m));
    }

    #[test]
    fn promotion_is_skipped_only_when_the_delayed_set_was_empty_and_untouched() {
        let t0 = Instant::now();
        let (empty, one) = (metrics(5, 5, 0), metrics(0, 0, 1));
        let r = |m, unchanged| Reading {
            metrics: m,
            read_at: t0,
            unchanged,
        };
        assert!(may_skip_promotion(Some(r(&empty, true))));
        assert!(!may_skip_promotion(Some(r(&empty, false))));
        assert!(!may_skip_promotion(Some(r(&one, true))));
        assert!(!may_skip_promotion(None));
    }

    #[test]
    fn redelivery_is_skipped_while_nothing_pending_can_have_expired() {
        let t0 = Instant::now();
        let vt = Duration::from_secs(30);
        let (none, some) = (metrics(3, 0, 0), metrics(0, 1, 0));
        let r = |m, unchanged| Reading {
            metrics: m,
            read_at: t0,
            unchanged,
        };
        let at = |s| t0 + Duration::from_secs(s);
        assert!(may_skip_redelivery(Some(r(&none, false)), at(29), vt));
        assert!(!may_skip_redelivery(Some(r(&none, false)), at(30), vt));
        assert!(may_skip_redelivery(Some(r(&none, true)), at(3600), vt));
        assert!(!may_skip_redelivery(Some(r(&some, true)), at(0), vt));
        assert!(!may_skip_redelivery(None, at(0), vt));
    }

    #[test]
    fn housekeeping_runs_when_a_consumer_may_have_gone_idle_or_retention_may_trim() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let at = |s| t0 + Duration::from_secs(s);
        let plain = QueueConfig::new("q");
        let mut m = metrics(0, 0, 0);
        assert!(may_skip_housekeeping(
            reading(&m, t0, true),
            &plain,
            at(10),
            hour
        ));
        assert!(!may_skip_housekeeping(
            reading(&m, t0, false),
            &plain,
            at(10),
            hour
        ));
        assert!(!may_skip_housekeeping(None, &plain, at(10), hour));
        // Any consumer that joined since has been idle for at most the reading's age.
        assert!(!may_skip_housekeeping(
            reading(&m, t0, true),
            &plain,
            at(3600),
            hour
        ));
        m.consumers.push(ConsumerInfo {
            name: "w".into(),
            pending: 0,
            idle: Duration::from_secs(3590),
        });
        assert!(may_skip_housekeeping(
            reading(&m, t0, true),
            &plain,
            at(9),
            hour
        ));
        assert!(!may_skip_housekeeping(
            reading(&m, t0, true),
            &plain,
            at(10),
            hour
        ));
        m.consumers[0].pending = 1; // never reaped while it holds jobs
        assert!(may_skip_housekeeping(
            reading(&m, t0, true),
            &plain,
            at(10),
            hour
        ));
    }

    #[test]
    fn housekeeping_runs_when_retention_may_trim() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let at = |s| t0 + Duration::from_secs(s);
        let mut m = metrics(0, 0, 0);
        let by_length = QueueConfig {
            retention: Retention {
                max_length: Some(10),
                max_age: None,
            },
            ..QueueConfig::new("q")
        };
        let by_age = QueueConfig {
            retention: Retention {
                max_length: None,
                max_age: Some(hour),
            },
            ..QueueConfig::new("q")
        };
        for (length, length_skips, age_skips) in
            [(0, true, true), (10, true, false), (11, false, false)]
        {
            m.length = length;
            assert_eq!(
                may_skip_housekeeping(reading(&m, t0, true), &by_length, at(1), hour),
                length_skips
            );
            assert_eq!(
                may_skip_housekeeping(reading(&m, t0, true), &by_age, at(1), hour),
                age_skips
            );
        }
    }

    #[test]
    fn a_write_wakes_a_queue_without_backlog_once_per_interval_or_always_at_zero() {
        let (empty, delayed, busy) = (metrics(0, 0, 0), metrics(0, 0, 3), metrics(1, 0, 0));
        let mut bound = metrics(0, 0, 0);
        bound.lag_source = LagSource::AtLeast;
        for at_zero in [false, true] {
            assert!(wake_early(Some(&empty), false, at_zero));
            assert!(
                wake_early(Some(&delayed), false, at_zero),
                "a due job is new work"
            );
            assert_eq!(wake_early(Some(&empty), true, at_zero), at_zero);
            assert!(!wake_early(Some(&busy), false, at_zero));
            assert!(!wake_early(Some(&bound), false, at_zero));
            assert!(!wake_early(None, false, at_zero));
        }
    }

    #[test]
    fn a_schedule_is_read_first_when_due_written_or_after_the_safety_interval() {
        let (t0, safety) = (Instant::now(), Duration::from_secs(30));
        let later = |s| t0 + Duration::from_secs(s);
        let due = |last, written, next, now, now_ms, safety| {
            schedule_read_due(last, written, next, now, now_ms, safety)
        };
        assert!(
            due(None, false, Some(9_000), t0, 1_000, safety),
            "never read"
        );
        assert!(
            !due(Some(t0), false, Some(9_000), later(5), 1_000, safety),
            "not due yet"
        );
        assert!(
            due(Some(t0), false, Some(9_000), later(5), 9_000, safety),
            "came due"
        );
        assert!(
            due(Some(t0), false, Some(9_000), later(5), 9_001, safety),
            "overdue"
        );
        assert!(
            due(Some(t0), true, Some(9_000), later(5), 1_000, safety),
            "written"
        );
        assert!(
            !due(Some(t0), false, None, later(29), 1_000, safety),
            "suspended"
        );
        assert!(
            due(Some(t0), false, None, later(30), 1_000, safety),
            "safety interval"
        );
        assert!(
            due(Some(t0), false, Some(9_000), t0, 1_000, Duration::ZERO),
            "0s reads always"
        );
        // A reading newer than `now` (clocks read in another order) is not a reason to read.
        assert!(!due(Some(later(1)), false, Some(9_000), t0, 1_000, safety));
    }
}

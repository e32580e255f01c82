//! One metrics reading of a queue, as the metrics loop hands it to the policy.

use std::time::Instant;

use super::policy::Metric;

/// The consumer group's lag (entries not yet delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// As Redis reported it (XINFO GROUPS `lag`).
    Exact(u64),
    /// Redis reported nil (after XDEL or XGROUP SETID); the engine counted the entries after the
    /// group's last-delivered id instead (a bounded count, so possibly a lower bound).
    Estimated(u64),
    /// Neither Redis nor the engine could say: Lag and Backlog are unreadable.
    Unknown,
}

impl Lag {
    fn value(self) -> Option<u64> {
        match self {
            Lag::Exact(n) | Lag::Estimated(n) => Some(n),
            Lag::Unknown => None,
        }
    }
}

/// What the metrics read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// The group's lag and pending count.
    Ok { lag: Lag, pending: u64 },
    /// The read failed (Redis unreachable, group missing, ...); the text says why.
    Failed(String),
}

/// A reading and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub at: Instant,
    pub reading: Reading,
}

impl Sample {
    /// A successful reading.
    pub fn ok(at: Instant, lag: Lag, pending: u64) -> Self {
        Sample {
            at,
            reading: Reading::Ok { lag, pending },
        }
    }

    /// A failed reading.
    pub fn failed(at: Instant, why: impl Into<String>) -> Self {
        Sample {
            at,
            reading: Reading::Failed(why.into()),
        }
    }
}

/// The metric value of a reading, with what the reason needs to explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Which metric `value` is.
    pub metric: Metric,
    /// The metric's value in the reading.
    pub value: u64,
    /// Jobs pending in the reading (whatever the metric).
    pub pending: u64,
    /// The value includes an estimated lag.
    pub lag_estimated: bool,
}

impl Observed {
    /// No work at all: nothing counted by the metric and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.value == 0 && self.pending == 0
    }
}

/// The value of `metric` in `reading`, or why it cannot be read.
pub(crate) fn observe(metric: Metric, reading: &Reading) -> Result<Observed, String> {
    let (lag, pending) = match reading {
        Reading::Failed(why) => return Err(why.clone()),
        Reading::Ok { lag, pending } => (*lag, *pending),
    };
    let lag_value = if metric.uses_lag() {
        lag.value()
            .ok_or_else(|| "lag unknown and no estimate".to_string())?
    } else {
        0
    };
    let value = match metric {
        Metric::Backlog => lag_value.saturating_add(pending),
        Metric::Lag => lag_value,
        Metric::Pending => pending,
    };
    Ok(Observed {
        metric,
        value,
        pending,
        lag_estimated: metric.uses_lag() && matches!(lag, Lag::Estimated(_)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(lag: Lag, pending: u64) -> Reading {
        Reading::Ok { lag, pending }
    }

    #[test]
    fn each_metric_reads_its_part() {
        let r = ok(Lag::Exact(30), 7);
        assert_eq!(observe(Metric::Backlog, &r).unwrap().value, 37);
        assert_eq!(observe(Metric::Lag, &r).unwrap().value, 30);
        assert_eq!(observe(Metric::Pending, &r).unwrap().value, 7);
    }

    #[test]
    fn backlog_saturates_instead_of_overflowing() {
        let r = ok(Lag::Exact(u64::MAX), 5);
        assert_eq!(observe(Metric::Backlog, &r).unwrap().value, u64::MAX);
    }

    #[test]
    fn an_estimate_stands_in_for_nil_lag_and_is_flagged() {
        let r = ok(Lag::Estimated(12), 3);
        let o = observe(Metric::Backlog, &r).unwrap();
        assert_eq!((o.value, o.lag_estimated), (15, true));
        assert!(!observe(Metric::Pending, &r).unwrap().lag_estimated);
    }

    #[test]
    fn unknown_lag_makes_lag_metrics_unreadable_but_not_pending() {
        let r = ok(Lag::Unknown, 4);
        assert_eq!(
            observe(Metric::Backlog, &r),
            Err("lag unknown and no estimate".to_string())
        );
        assert!(observe(Metric::Lag, &r).is_err());
        assert_eq!(observe(Metric::Pending, &r).unwrap().value, 4);
    }

    #[test]
    fn a_failed_read_carries_its_cause() {
        let r = Reading::Failed("connection refused".into());
        assert_eq!(
            observe(Metric::Pending, &r),
            Err("connection refused".to_string())
        );
    }

    #[test]
    fn idle_needs_both_the_metric_and_pending_at_zero() {
        let idle = |lag, pending| observe(Metric::Lag, &ok(Lag::Exact(lag), pending)).unwrap();
        assert!(idle(0, 0).is_idle());
        assert!(!idle(0, 1).is_idle());
        assert!(!idle(1, 0).is_idle());
    }
}

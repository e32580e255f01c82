//! Why a decision came out as it did, typed for tests and rendered as one short sentence for a
//! Kubernetes Event or a status condition.

use std::{fmt, time::Duration};

use super::{policy::Metric, sample::Observed};

/// The rule that produced a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `paused`: the current count is kept.
    Paused,
    /// No usable reading (read error, no reading yet, lag unknown): the current count is kept.
    MetricUnavailable(String),
    /// At zero replicas, the metric has not exceeded the activation threshold.
    BelowActivation { observed: Observed, threshold: u64 },
    /// The metric needs `need` replicas of `target` each.
    Demand {
        observed: Observed,
        need: u64,
        target: u64,
    },
    /// The metric needs fewer replicas, but a higher recommendation is still inside the
    /// stabilization window.
    Stabilizing {
        observed: Observed,
        need: u64,
        target: u64,
        highest: u32,
        window: Duration,
    },
    /// The metric needs fewer replicas, but recommendations have not been made for a whole
    /// window yet (operator start, or the end of a pause), so nothing is removed.
    Observing {
        observed: Observed,
        need: u64,
        target: u64,
        seen: Duration,
        window: Duration,
    },
    /// No work, but not yet for the whole cooldown: one replica stays.
    CoolingDown {
        metric: Metric,
        idle_for: Duration,
        cooldown: Duration,
    },
    /// No work for the whole cooldown: scaling to zero.
    CooledDown {
        metric: Metric,
        idle_for: Duration,
        cooldown: Duration,
    },
}

/// A bound that cut the change short (or forced one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MinReplicas(u32),
    MaxReplicas(u32),
    ScaleUpStep(u32),
    ScaleDownStep(u32),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Paused => f.write_str("scaling is paused"),
            Reason::MetricUnavailable(why) => write!(f, "metric unavailable ({why})"),
            Reason::BelowActivation {
                observed,
                threshold,
            } => {
                if observed.value == 0 {
                    f.write_str(no_work(observed.metric))
                } else {
                    write!(f, "{} ≤ activation threshold {threshold}", Value(observed))
                }
            }
            Reason::Demand {
                observed,
                need,
                target,
            } => write_demand(f, observed, *need, *target),
            Reason::Stabilizing {
                observed,
                need,
                target,
                highest,
                window,
            } => {
                write_demand(f, observed, *need, *target)?;
                write!(
                    f,
                    ", but {highest} recommended within the last {}",
                    Human(*window)
                )
            }
            Reason::Observing {
                observed,
                need,
                target,
                seen,
                window,
            } => {
                write_demand(f, observed, *need, *target)?;
                write!(
                    f,
                    ", but readings cover only {} of the {} window",
                    Human(*seen),
                    Human(*window)
                )
            }
            Reason::CoolingDown {
                metric,
                idle_for,
                cooldown,
            } => write!(
                f,
                "{} for {} of {} cooldown",
                idle_phrase(*metric),
                Human(*idle_for),
                Human(*cooldown)
            ),
            Reason::CooledDown {
                metric,
                idle_for,
                cooldown,
            } => write!(
                f,
                "{} for {} (cooldown {})",
                idle_phrase(*metric),
                Human(*idle_for),
                Human(*cooldown)
            ),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::MinReplicas(n) => write!(f, "minReplicas {n}"),
            Limit::MaxReplicas(n) => write!(f, "maxReplicas {n}"),
            Limit::ScaleUpStep(n) => write!(f, "scaleUp.maxStep {n}"),
            Limit::ScaleDownStep(n) => write!(f, "scaleDown.maxStep {n}"),
        }
    }
}

fn write_demand(f: &mut fmt::Formatter<'_>, o: &Observed, need: u64, target: u64) -> fmt::Result {
    if o.value == 0 {
        f.write_str(no_work(o.metric))?;
    } else {
        write!(f, "{} needs {need} × {target}", Value(o))?;
    }
    // Pending keeps a replica even when the metric itself does not count it.
    if o.pending > 0 && o.metric == Metric::Lag {
        write!(f, ", {} pending", o.pending)?;
    }
    Ok(())
}

fn no_work(metric: Metric) -> &'static str {
    match metric {
        Metric::Backlog => "no backlog",
        Metric::Lag => "no lag",
        Metric::Pending => "nothing pending",
    }
}

fn idle_phrase(metric: Metric) -> &'static str {
    match metric {
        Metric::Backlog => "no backlog",
        Metric::Lag => "no lag and nothing pending",
        Metric::Pending => "nothing pending",
    }
}

/// `backlog 3400` or `backlog 3400 (lag estimated)`.
struct Value<'a>(&'a Observed);

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.metric.name(), self.0.value)?;
        if self.0.lag_estimated {
            f.write_str(" (lag estimated)")?;
        }
        Ok(())
    }
}

/// A duration as a person reads it: `5m`, `1m30s`, `2h`, `250ms` (whole seconds from 1s up).
pub(crate) struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if secs == 0 {
            return write!(f, "{}ms", self.0.subsec_millis());
        }
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubernetes_ones() {
        let cases = [
            (Duration::from_millis(0), "0ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1999), "1s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3661), "1h1m1s"),
        ];
        for (d, text) in cases {
            assert_eq!(Human(d).to_string(), text);
        }
    }
}

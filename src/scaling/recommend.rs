//! The decision: from the latest reading, the recent recommendations and the current replica
//! count to the replica count to set, and why.

use std::{fmt, time::Instant};

use super::{
    history::History,
    policy::Policy,
    reason::{Limit, Reason},
    sample::{Observed, observe},
};

/// What to do with the workers after one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// When the decision was made (the `now` passed to [`recommend`]).
    pub at: Instant,
    /// The replica count the decision started from.
    pub current: u32,
    /// The replica count to set.
    pub replicas: u32,
    /// What the metric alone asks for (clamped to the bounds), before stabilization, cooldown
    /// and step limits; `None` when the metric was not used (paused, unavailable).
    /// [`History::record`] keeps it for the stabilization window.
    pub recommendation: Option<u32>,
    /// The rule that decided.
    pub reason: Reason,
    /// The bound that cut the change short, if any.
    pub limit: Option<Limit>,
}

/// The reasons of scaling decisions, as the operator writes them into Events and the
/// `Scaling` condition (listed with every other reason in `operator::reasons`).
pub mod event_reasons {
    /// The replica count went up.
    pub const SCALED_UP: &str = "ScaledUp";
    /// The replica count went down to zero.
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    /// The replica count went down, not to zero.
    pub const SCALED_DOWN: &str = "ScaledDown";
    /// Scaling is paused; the count is held.
    pub const SCALING_PAUSED: &str = "ScalingPaused";
    /// The metric could not be read; the count is held, never dropped.
    pub const METRIC_UNAVAILABLE: &str = "MetricUnavailable";
    /// Nothing to change.
    pub const HOLDING: &str = "Holding";
}

impl Decision {
    /// Whether the scale target must be written.
    pub fn changed(&self) -> bool {
        self.replicas != self.current
    }

    /// A CamelCase reason for a Kubernetes Event or condition.
    pub fn event_reason(&self) -> &'static str {
        match (&self.reason, self.replicas.cmp(&self.current)) {
            (_, std::cmp::Ordering::Greater) => event_reasons::SCALED_UP,
            (_, std::cmp::Ordering::Less) if self.replicas == 0 => event_reasons::SCALED_TO_ZERO,
            (_, std::cmp::Ordering::Less) => event_reasons::SCALED_DOWN,
            (Reason::Paused, _) => event_reasons::SCALING_PAUSED,
            (Reason::MetricUnavailable(_), _) => event_reasons::METRIC_UNAVAILABLE,
            _ => event_reasons::HOLDING,
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(at: Instant, recommendation: u32) -> Self {
        Decision {
            at,
            current: 0,
            replicas: recommendation,
            recommendation: Some(recommendation),
            reason: Reason::Paused,
            limit: None,
        }
    }
}

impl fmt::Display for Decision {
    /// `scaled 2 → 7: backlog 3400 needs 7 × 500` / `holding 3: metric unavailable (timeout)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changed() {
            write!(f, "scaled {} → {}: ", self.current, self.replicas)?;
        } else {
            write!(f, "holding {}: ", self.current)?;
        }
        write!(f, "{}", self.reason)?;
        if let Some(limit) = self.limit {
            write!(f, " ({limit})")?;
        }
        Ok(())
    }
}

/// The replica count for one queue at `now`, given its policy, its history (with the latest
/// reading already observed) and the replicas it has. Pure: `now` is the only clock.
pub fn recommend(policy: &Policy, history: &History, current: u32, now: Instant) -> Decision {
    let (min, max) = policy.bounds();
    let mut decision = Decision {
        at: now,
        current,
        replicas: current,
        recommendation: None,
        reason: Reason::Paused,
        limit: None,
    };
    if policy.paused {
        return decision;
    }
    let reading = match history.latest() {
        Some(sample) => observe(policy.metric, &sample.reading),
        None => Err("no reading yet".to_string()),
    };
    let observed = match reading {
        Ok(observed) => observed,
        Err(why) => {
            // Missing data never moves the count, except back inside the configured bounds.
            decision.reason = Reason::MetricUnavailable(why);
            decision.replicas = clamp(current, min, max, &mut decision.limit);
            return decision;
        }
    };

    let target = policy.target();
    let need = observed.value.div_ceil(target);
    decision.reason = Reason::Demand {
        observed,
        need,
        target,
    };
    let wanted = if observed.pending > 0 {
        // Work in flight: never zero, and wake from zero so it gets finished.
        need.max(1)
    } else if current == 0 && observed.value <= policy.activation_threshold {
        decision.reason = Reason::BelowActivation {
            observed,
            threshold: policy.activation_threshold,
        };
        0
    } else {
        need
    };
    let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
    let recommendation = clamp(wanted, min, max, &mut decision.limit);
    decision.recommendation = Some(recommendation);

    if recommendation >= current {
        scale_up(policy, &mut decision, recommendation);
    } else {
        let demand = Demand {
            observed,
            need,
            target,
        };
        scale_down(policy, history, &mut decision, recommendation, demand);
    }
    decision
}

/// What the latest reading asks for.
#[derive(Clone, Copy)]
struct Demand {
    observed: Observed,
    need: u64,
    target: u64,
}

/// Scale-up (or holding at the recommendation).
fn scale_up(policy: &Policy, decision: &mut Decision, recommendation: u32) {
    let (min, max) = policy.bounds();
    let current = decision.current;
    // Scale-up is immediate, bounded by the step; the bounds win over the step.
    let mut to = recommendation;
    if let Some(step) = policy.scale_up_max_step.map(|s| s.max(1))
        && current.saturating_add(step) < to
    {
        to = current.saturating_add(step);
        decision.limit = Some(Limit::ScaleUpStep(step));
    }
    decision.replicas = clamp(to, min, max, &mut decision.limit);
}

/// Scale-down, held back by the window, the cooldown and the step.
fn scale_down(
    policy: &Policy,
    history: &History,
    decision: &mut Decision,
    recommendation: u32,
    demand: Demand,
) {
    let (min, max) = policy.bounds();
    let (current, now) = (decision.current, decision.at);
    let Demand {
        observed,
        need,
        target,
    } = demand;
    // Scale-down: never below the highest recommendation still inside the window.
    let window = policy.scale_down_window;
    let highest = history
        .highest_recommendation(now, window)
        .unwrap_or(0)
        .max(recommendation);
    if highest > recommendation {
        decision.reason = Reason::Stabilizing {
            observed,
            need,
            target,
            highest,
            window,
        };
    }
    let seen = history
        .recommending_since()
        .map_or(std::time::Duration::ZERO, |since| {
            now.saturating_duration_since(since)
        });
    let mut floor = highest;
    if seen < window && highest < current {
        floor = current;
        decision.reason = Reason::Observing {
            observed,
            need,
            target,
            seen,
            window,
        };
    }
    if floor == 0 {
        // Only reachable when nothing is counted and nothing is pending, with minReplicas 0.
        let idle_for = history.idle_for(policy.metric).unwrap_or_default();
        let (metric, cooldown) = (policy.metric, policy.cooldown);
        if idle_for < cooldown {
            floor = 1;
            decision.reason = Reason::CoolingDown {
                metric,
                idle_for,
                cooldown,
            };
        } else {
            decision.reason = Reason::CooledDown {
                metric,
                idle_for,
                cooldown,
            };
        }
    }
    let mut to = floor.min(current);
    if to != recommendation {
        // The bound that clamped the recommendation is not what stopped this decision.
        decision.limit = None;
    }
    if let Some(step) = policy.scale_down_max_step.map(|s| s.max(1))
        && current - to > step
    {
        to = current - step;
        decision.limit = Some(Limit::ScaleDownStep(step));
    }
    decision.replicas = clamp(to, min, max, &mut decision.limit);
}

/// `value` within `[min, max]`, noting the bound that applied.
fn clamp(value: u32, min: u32, max: u32, limit: &mut Option<Limit>) -> u32 {
    if value > max {
        *limit = Some(Limit::MaxReplicas(max));
        max
    } else if value < min {
        *limit = Some(Limit::MinReplicas(min));
        min
    } else {
        value
    }
}

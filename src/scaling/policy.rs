//! The scaling policy of one queue as plain values (no CRD or serde types), so the decision logic
//! can be driven and tested without Kubernetes.

use std::time::Duration;

/// What is divided by [`Policy::target_per_replica`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Metric {
    /// Lag plus pending: every job not yet finished.
    #[default]
    Backlog,
    /// Jobs not yet delivered to the consumer group. It reads about 0 whenever the workers keep
    /// up, so the count drops until lag builds up again: expect a sawtooth with a period of
    /// about one stabilization window (see `tests/scaling_simulation.rs`). Backlog settles.
    Lag,
    /// Jobs delivered and not yet acknowledged (work in flight).
    Pending,
}

impl Metric {
    /// The word used in reasons: `backlog`, `lag`, `pending`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Backlog => "backlog",
            Metric::Lag => "lag",
            Metric::Pending => "pending",
        }
    }

    /// Whether the metric needs the group's lag (and so is unreadable when lag is unknown).
    pub fn uses_lag(self) -> bool {
        matches!(self, Metric::Backlog | Metric::Lag)
    }
}

/// How one queue's workers are scaled. See the module documentation for the semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Fewest replicas; 0 allows scale to zero after [`Policy::cooldown`].
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// What is divided by `target_per_replica`.
    pub metric: Metric,
    /// Metric value one replica is expected to handle (at least 1).
    pub target_per_replica: u64,
    /// At zero replicas, the metric must exceed this before the first replica starts.
    pub activation_threshold: u64,
    /// Time with no work (metric and pending both 0) before scaling to zero.
    pub cooldown: Duration,
    /// Scale-down never goes below the highest recommendation made within this window.
    pub scale_down_window: Duration,
    /// At most this many replicas removed per decision (`None`: unbounded).
    pub scale_down_max_step: Option<u32>,
    /// At most this many replicas added per decision (`None`: unbounded).
    pub scale_up_max_step: Option<u32>,
    /// Keep the current replica count, whatever the metric says.
    pub paused: bool,
}

impl Default for Policy {
    /// The CRD's defaults: 0..=1 replicas, backlog / 100, 5m cooldown and window.
    fn default() -> Self {
        Policy {
            min_replicas: 0,
            max_replicas: 1,
            metric: Metric::Backlog,
            target_per_replica: 100,
            activation_threshold: 0,
            cooldown: Duration::from_secs(300),
            scale_down_window: Duration::from_secs(300),
            scale_down_max_step: None,
            scale_up_max_step: None,
            paused: false,
        }
    }
}

/// A policy the decision logic would have to reinterpret; each names the spec field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "spec.scaling.maxReplicas: must be at least 1 (got 0); set spec.scaling.paused to stop scaling"
    )]
    ZeroMaxReplicas,
    #[error(
        "spec.scaling.maxReplicas: must be greater than or equal to minReplicas ({min}), got {max}"
    )]
    MaxBelowMin { min: u32, max: u32 },
    #[error("spec.scaling.targetPerReplica: must be at least 1 (got 0)")]
    ZeroTarget,
    #[error("spec.scaling.scaleUp.maxStep: must be at least 1 when set (got 0)")]
    ZeroScaleUpStep,
    #[error("spec.scaling.scaleDown.maxStep: must be at least 1 when set (got 0)")]
    ZeroScaleDownStep,
    #[error(
        "spec.scaling.metric: Pending with minReplicas 0 can never scale up from zero (a job is \
         only pending once a worker has read it); use Backlog or Lag, or minReplicas >= 1"
    )]
    PendingFromZero,
}

impl Policy {
    /// Rejects values the decision logic would otherwise silently reinterpret.
    ///
    /// [`super::recommend`] never panics on an invalid policy: it treats a target or step of 0
    /// as 1 and `max < min` as `max = min`. This check exists so a person is told instead.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_replicas == 0 {
            return Err(PolicyError::ZeroMaxReplicas);
        }
        if self.max_replicas < self.min_replicas {
            return Err(PolicyError::MaxBelowMin {
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        if self.target_per_replica == 0 {
            return Err(PolicyError::ZeroTarget);
        }
        if self.scale_up_max_step == Some(0) {
            return Err(PolicyError::ZeroScaleUpStep);
        }
        if self.scale_down_max_step == Some(0) {
            return Err(PolicyError::ZeroScaleDownStep);
        }
        if self.metric == Metric::Pending && self.min_replicas == 0 {
            return Err(PolicyError::PendingFromZero);
        }
        Ok(())
    }

    /// `(min, max)` with `max >= min`, whatever was configured.
    pub(crate) fn bounds(&self) -> (u32, u32) {
        (self.min_replicas, self.max_replicas.max(self.min_replicas))
    }

    /// The target per replica, never 0.
    pub(crate) fn target(&self) -> u64 {
        self.target_per_replica.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Policy {
        Policy {
            max_replicas: 10,
            ..Policy::default()
        }
    }

    #[test]
    fn default_with_a_max_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Policy, &str)> = vec![
            (
                Policy {
                    max_replicas: 0,
                    ..valid()
                },
                "spec.scaling.maxReplicas: must be at least 1",
            ),
            (
                Policy {
                    min_replicas: 4,
                    max_replicas: 3,
                    ..valid()
                },
                "spec.scaling.maxReplicas: must be greater than or equal to minReplicas (4), got 3",
            ),
            (
                Policy {
                    target_per_replica: 0,
                    ..valid()
                },
                "spec.scaling.targetPerReplica: must be at least 1",
            ),
            (
                Policy {
                    scale_up_max_step: Some(0),
                    ..valid()
                },
                "spec.scaling.scaleUp.maxStep: must be at least 1",
            ),
            (
                Policy {
                    scale_down_max_step: Some(0),
                    ..valid()
                },
                "spec.scaling.scaleDown.maxStep: must be at least 1",
            ),
            (
                Policy {
                    metric: Metric::Pending,
                    ..valid()
                },
                "spec.scaling.metric: Pending with minReplicas 0",
            ),
        ];
        for (policy, expected) in cases {
            let err = policy.validate().expect_err(expected).to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn pending_metric_is_fine_with_a_floor() {
        let p = Policy {
            metric: Metric::Pending,
            min_replicas: 1,
            ..valid()
        };
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn bounds_and_target_are_normalised() {
        let p = Policy {
            min_replicas: 5,
            max_replicas: 2,
            target_per_replica: 0,
            ..valid()
        };
        assert_eq!(p.bounds(), (5, 5));
        assert_eq!(p.target(), 1);
    }
}

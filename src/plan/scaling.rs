//! The CRD's `spec.scaling` as a [`Policy`] plus the poll interval that paces the loop calling
//! it. Out-of-range numbers (which the CRD schema already rejects at the API server) become 0
//! here, so [`Policy::validate`] still names them.

use std::time::Duration;

use crate::api::{FieldError, FieldErrorKind, ScalingMetric, ScalingSpec};
use crate::scaling::{Metric, Policy};

/// How a queue's workers are scaled: the policy and how often it is consulted.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPlan {
    pub policy: Policy,
    pub poll_interval: Duration,
}

/// The engine's metric for the CRD's.
fn metric(m: ScalingMetric) -> Metric {
    match m {
        ScalingMetric::Backlog => Metric::Backlog,
        ScalingMetric::Lag => Metric::Lag,
        ScalingMetric::Pending => Metric::Pending,
    }
}

/// `spec.scaling` as a policy, unchecked (see [`plan`]).
pub fn policy(spec: &ScalingSpec) -> Policy {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    let amount = |n: i64| u64::try_from(n).unwrap_or(0);
    Policy {
        min_replicas: count(spec.min_replicas),
        max_replicas: count(spec.max_replicas),
        metric: metric(spec.metric),
        target_per_replica: amount(spec.target_per_replica),
        activation_threshold: amount(spec.activation_threshold),
        cooldown: spec.cooldown.as_std(),
        scale_down_window: spec.scale_down.stabilization_window.as_std(),
        scale_down_max_step: spec.scale_down.max_step.map(count),
        scale_up_max_step: spec.scale_up.max_step.map(count),
        paused: spec.paused,
    }
}

/// `spec.scaling` as a checked policy and poll interval; what the policy rejects is reported
/// on `spec.scaling`.
pub fn plan(spec: &ScalingSpec) -> Result<ScalingPlan, FieldError> {
    let policy = policy(spec);
    policy.validate().map_err(|e| {
        FieldError::new("spec.scaling", FieldErrorKind::Invalid, None, e.to_string())
    })?;
    Ok(ScalingPlan {
        policy,
        poll_interval: spec.poll_interval.as_std(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scaling::PolicyError;

    fn spec(yaml: &str) -> ScalingSpec {
        serde_yaml::from_str(yaml).expect("test spec parses")
    }

    #[test]
    fn defaults_follow_the_crd() {
        let p = policy(&spec("maxReplicas: 10"));
        assert_eq!(
            p,
            Policy {
                min_replicas: 0,
                max_replicas: 10,
                metric: Metric::Backlog,
                target_per_replica: 100,
                activation_threshold: 0,
                cooldown: Duration::from_secs(300),
                scale_down_window: Duration::from_secs(300),
                scale_down_max_step: None,
                scale_up_max_step: None,
                paused: false,
            }
        );
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn every_field_is_carried() {
        let p = policy(&spec(
            "minReplicas: 1\nmaxReplicas: 20\nmetric: Lag\ntargetPerReplica: 500\n\
             activationThreshold: 10\npollInterval: 2s\ncooldown: 90s\n\
             scaleDown: {stabilizationWindow: 1m, maxStep: 2}\nscaleUp: {maxStep: 4}\npaused: true",
        ));
        assert_eq!(
            p,
            Policy {
                min_replicas: 1,
                max_replicas: 20,
                metric: Metric::Lag,
                target_per_replica: 500,
                activation_threshold: 10,
                cooldown: Duration::from_secs(90),
                scale_down_window: Duration::from_secs(60),
                scale_down_max_step: Some(2),
                scale_up_max_step: Some(4),
                paused: true,
            }
        );
    }

    #[test]
    fn negative_numbers_become_zero_and_are_then_named() {
        let p = policy(&spec("maxReplicas: 3\ntargetPerReplica: -5"));
        assert_eq!(p.target_per_replica, 0);
        assert_eq!(p.validate(), Err(PolicyError::ZeroTarget));
        let p = policy(&spec("maxReplicas: 3\nscaleUp: {maxStep: -1}"));
        assert_eq!(p.validate(), Err(PolicyError::ZeroScaleUpStep));
    }
}

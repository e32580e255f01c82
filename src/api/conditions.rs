//! Status conditions in the standard `metav1.Condition` shape.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `Ready`: the resource is provisioned and working.
pub const READY: &str = "Ready";
/// `RedisReachable`: the operator can talk to the queue's Redis.
pub const REDIS_REACHABLE: &str = "RedisReachable";
/// `Scaling`: the autoscaler is active and can read its metric.
pub const SCALING: &str = "Scaling";

/// Sets condition `type_` in `conditions`, keeping `lastTransitionTime` when the status did not
/// change (so `kubectl describe` shows how long a condition has held).
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Whether condition `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-01T00:02:00Z".parse().unwrap();
        let mut cs = Vec::new();
        set(
            &mut cs,
            READY,
            false,
            "RedisDown",
            "connection refused",
            Some(1),
            t0,
        );
        set(
            &mut cs,
            READY,
            false,
            "RedisDown",
            "still refused",
            Some(1),
            t1,
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, Time(t0));
        assert_eq!(cs[0].message, "still refused");
        set(&mut cs, READY, true, "Provisioned", "ok", Some(2), t2);
        assert_eq!(cs[0].last_transition_time, Time(t2));
        assert!(is_true(&cs, READY));
        assert!(!is_true(&cs, SCALING));
    }
}

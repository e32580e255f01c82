//! A Schedule's plan: the definition the scheduler stores in its queue's Redis.

use std::time::Duration;

use crate::api::{self, FieldError, FieldErrorKind, Schedule, ScheduleSpec};
use crate::queue::schedules::{ConcurrencyPolicy, ScheduleDefinition, ScheduleError};
use crate::schedule::MisfirePolicy;

use super::validate;

/// Everything needed to arm a Schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulePlan {
    /// Name of the JobQueue (same namespace) that receives the jobs.
    pub queue: String,
    pub definition: ScheduleDefinition,
}

/// The plan of `s`, its definition at `metadata.generation` (1 when unset), or every field
/// error found.
pub fn schedule(s: &Schedule) -> Result<SchedulePlan, Vec<FieldError>> {
    validate::schedule(s)?;
    let name = s.metadata.name.clone().unwrap_or_default();
    let generation = s.metadata.generation.unwrap_or(1);
    let definition = definition(&name, &s.spec, generation)
        .and_then(|d| d.compile().map(|_| d))
        .map_err(|e| {
            vec![FieldError::new(
                "spec",
                FieldErrorKind::Invalid,
                None,
                e.to_string(),
            )]
        })?;
    Ok(SchedulePlan {
        queue: s.spec.queue_ref.name.clone(),
        definition,
    })
}

fn misfire(p: api::MisfirePolicy) -> MisfirePolicy {
    match p {
        api::MisfirePolicy::Skip => MisfirePolicy::Skip,
        api::MisfirePolicy::FireOnce => MisfirePolicy::FireOnce,
    }
}

fn concurrency(p: api::ConcurrencyPolicy) -> ConcurrencyPolicy {
    match p {
        api::ConcurrencyPolicy::Allow => ConcurrencyPolicy::Allow,
        api::ConcurrencyPolicy::Forbid => ConcurrencyPolicy::Forbid,
    }
}

/// Longest `spec.startingDeadlineSeconds` (a year), as the schema says.
pub const MAX_STARTING_DEADLINE_SECONDS: i64 = 31_536_000;

/// The definition of a Schedule resource called `name` at `generation`.
pub fn definition(
    name: &str,
    spec: &ScheduleSpec,
    generation: i64,
) -> Result<ScheduleDefinition, ScheduleError> {
    let starting_deadline = match spec.starting_deadline_seconds {
        None => None,
        Some(s) if (0..=MAX_STARTING_DEADLINE_SECONDS).contains(&s) => {
            Some(Duration::from_secs(s as u64))
        }
        Some(s) => {
            return Err(ScheduleError::Invalid {
                name: name.into(),
                field: "spec.startingDeadlineSeconds",
                reason: format!(
                    "{s} is out of range; use 0 to {MAX_STARTING_DEADLINE_SECONDS} seconds (a year)"
                ),
            });
        }
    };
    Ok(ScheduleDefinition {
        name: name.into(),
        cron: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        payload: spec
            .payload
            .as_ref()
            .map_or_else(|| "{}".to_string(), |p| p.to_string()),
        generation,
        suspend: spec.suspend,
        misfire_policy: misfire(spec.misfire_policy),
        concurrency_policy: concurrency(spec.concurrency_policy),
        starting_deadline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_spec_rejects_a_deadline_out_of_range() {
        for (seconds, ok) in [
            (-1, false),
            (0, true),
            (31_536_000, true),
            (31_536_001, false),
        ] {
            let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
                "schedule": "* * * * *", "queueRef": {"name": "q"},
                "startingDeadlineSeconds": seconds
            }))
            .unwrap();
            match definition("s", &spec, 3) {
                Ok(_) => assert!(ok, "{seconds} accepted"),
                Err(e) => {
                    assert!(!ok, "{seconds}: {e}");
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "schedule \"s\": spec.startingDeadlineSeconds: {seconds} is out of \
                             range; use 0 to 31536000 seconds (a year)"
                        )
                    );
                }
            }
        }
        let huge: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "* * * * *", "queueRef": {"name": "q"},
            "startingDeadlineSeconds": i64::MAX
        }))
        .unwrap();
        assert!(
            definition("s", &huge, 1).is_err(),
            "no overflow into a short deadline"
        );
    }

    #[test]
    fn from_spec_carries_every_field() {
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "queueRef": {"name": "q"},
            "payload": {"report": "daily"}, "suspend": true, "startingDeadlineSeconds": 30,
            "misfirePolicy": "Skip", "concurrencyPolicy": "Forbid"
        }))
        .unwrap();
        let def = definition("s", &spec, 7).unwrap();
        assert_eq!(def.payload, r#"{"report":"daily"}"#);
        assert_eq!(def.generation, 7);
        assert!(def.suspend);
        assert_eq!(def.misfire_policy, MisfirePolicy::Skip);
        assert_eq!(def.concurrency_policy, ConcurrencyPolicy::Forbid);
        assert_eq!(def.starting_deadline, Some(Duration::from_secs(30)));
        assert_eq!(def.time_zone, "Europe/Berlin");
    }
}

//! The last step of a JobQueue reconcile: what its outcome shows in status and Events. The
//! outcome → conditions mapping is pure; [`write`] records it.

use k8s_openapi::jiff::Timestamp;

use crate::api::{JobQueue, conditions};
use crate::operator::reasons;
use crate::operator::runtime::ObjectId;
use crate::plan::{PlanError, QueuePlan};
use crate::queue::adopted::Adopted;
use crate::queue::provision::Provisioned;

use super::super::context::{Context, publish};

/// One condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What a reconcile's outcome changes in status, and the Event it publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Report {
    pub conditions: Vec<Cond>,
    /// The stream and group now served.
    pub served: Option<(String, String)>,
    pub event: Option<Note>,
}

/// The `Ready=False` reason of a plan that cannot run.
pub(super) fn refused_reason(e: &PlanError) -> &'static str {
    match e {
        PlanError::Invalid(_) => reasons::INVALID_SPEC,
        PlanError::SecretMissing { .. } | PlanError::SecretNotText { .. } => {
            reasons::REDIS_SECRET_MISSING
        }
        PlanError::InvalidRedisUrl(_) => reasons::INVALID_REDIS_URL,
        PlanError::ScaleTargetNotFound(_) => reasons::SCALE_TARGET_NOT_FOUND,
    }
}

/// A queue that cannot be served as specified: `Ready=False` and a Warning saying why.
pub(super) fn refused(e: &PlanError) -> Report {
    refusal(refused_reason(e), e.to_string())
}

/// `Ready=False` with `reason` and a Warning Event with the same message.
pub(super) fn refusal(reason: &'static str, message: String) -> Report {
    Report {
        conditions: vec![Cond {
            type_: conditions::READY,
            status: false,
            reason,
            message: message.clone(),
        }],
        served: None,
        event: Some(Note {
            warning: true,
            reason,
            message,
        }),
    }
}

/// A queue provisioned and served; `first` when it was not `Ready` before (the Event then says
/// whether the stream was created or adopted).
pub(super) fn provisioned(plan: &QueuePlan, p: &Provisioned, first: bool) -> Report {
    if let Some(source) = &plan.config.source {
        return adopted(source, p, first);
    }
    let (stream, group) = (plan.config.stream(), &plan.config.group);
    let event = first.then(|| {
        let how = if p.stream_existed {
            "adopted existing"
        } else {
            "created"
        };
        Note {
            warning: false,
            reason: reasons::PROVISIONED,
            message: format!(
                "{how} stream {stream:?} and group {group:?} ({} entries)",
                p.length
            ),
        }
    });
    Report {
        conditions: vec![
            reachable(),
            Cond {
                type_: conditions::READY,
                status: true,
                reason: reasons::PROVISIONED,
                message: format!("stream {stream:?} with group {group:?} is ready"),
            },
        ],
        served: Some((stream.to_string(), group.clone())),
        event,
    }
}

/// Another system's queue, read (never written) to scale its workers.
fn adopted(source: &Adopted, p: &Provisioned, first: bool) -> Report {
    let what = source.describe();
    let busy = if source.system.knows_busy_workers() {
        "busy workers are spared on scale-in"
    } else {
        "the system does not record which worker is busy: scale-in relies on graceful shutdown"
    };
    Report {
        conditions: vec![
            reachable(),
            Cond {
                type_: conditions::READY,
                status: true,
                reason: reasons::ADOPTED,
                message: format!("reads {what} (read only); {busy}"),
            },
        ],
        // No stream or group of the operator's: status.stream stays empty.
        served: None,
        event: first.then(|| Note {
            warning: false,
            reason: reasons::ADOPTED,
            message: format!("adopted {what} ({} queued), read only", p.length),
        }),
    }
}

/// `RedisReachable=True`.
pub(super) fn reachable() -> Cond {
    Cond {
        type_: conditions::REDIS_REACHABLE,
        status: true,
        reason: reasons::CONNECTED,
        message: "Redis answers".into(),
    }
}

/// Redis did not answer: `RedisReachable=False`, `Ready=False` and a Warning.
pub(super) fn unreachable(message: String) -> Report {
    let cond = |type_| Cond {
        type_,
        status: false,
        reason: reasons::REDIS_UNREACHABLE,
        message: message.clone(),
    };
    Report {
        conditions: vec![cond(conditions::REDIS_REACHABLE), cond(conditions::READY)],
        served: None,
        event: Some(Note {
            warning: true,
            reason: reasons::REDIS_UNREACHABLE,
            message,
        }),
    }
}

/// Records `report` in the queue's status (at the object's generation) and publishes its Event.
pub(super) async fn write(ctx: &Context, jq: &JobQueue, id: &ObjectId, report: Report) {
    let generation = jq.metadata.generation;
    ctx.status.update_jobqueue(id, |s| {
        let now = Timestamp::now();
        s.observed_generation = generation;
        if let Some((stream, group)) = &report.served {
            s.stream = Some(stream.clone());
            s.consumer_group = Some(group.clone());
        }
        for c in &report.conditions {
            conditions::set(
                &mut s.conditions,
                c.type_,
                c.status,
                c.reason,
                c.message.clone(),
                generation,
                now,
            );
        }
    });
    if let Some(note) = report.event {
        publish(ctx, jq, note.warning, note.reason, note.message).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FieldError;
    use crate::plan::MissingSecret;

    #[test]
    fn every_plan_error_has_its_ready_false_reason() {
        let missing = MissingSecret::KeyMissing {
            name: "redis".into(),
            key: "url".into(),
        };
        for (e, reason) in [
            (
                PlanError::Invalid(vec![FieldError::required("spec.x", "")]),
                "InvalidSpec",
            ),
            (
                PlanError::SecretMissing {
                    field: "spec.redis.urlSecretRef",
                    source: missing,
                },
                "RedisSecretMissing",
            ),
            (
                PlanError::InvalidRedisUrl(FieldError::invalid("f", "x", "bad")),
                "InvalidRedisUrl",
            ),
            (
                PlanError::ScaleTargetNotFound("gone".into()),
                "ScaleTargetNotFound",
            ),
        ] {
            let r = refused(&e);
            assert_eq!(r.conditions[0].reason, reason);
            assert!(!r.conditions[0].status);
            assert!(reasons::READY_FALSE_REASONS.contains(&reason));
            assert!(r.event.unwrap().warning);
        }
    }

    #[test]
    fn unreachable_sets_both_conditions() {
        let r = unreachable("connection refused".into());
        let types: Vec<_> = r.conditions.iter().map(|c| (c.type_, c.status)).collect();
        assert_eq!(types, vec![("RedisReachable", false), ("Ready", false)]);
        assert_eq!(r.served, None);
    }
}

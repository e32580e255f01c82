//! A JobQueue's plan: its queue config, scaling policy, workers and Redis target.

use crate::api::{FieldError, JobQueue, ScaleTargetRef};
use crate::queue::config::QueueConfig;

use super::redis::{RedisInputs, RedisTarget, target_checked_between};
use super::scaling::{self, ScalingPlan};
use super::{PlanError, config, validate};

/// Who runs the queue's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkersPlan {
    /// No `spec.workers`: workers are run by someone else.
    None,
    /// `spec.workers.template`: the operator runs them (a Deployment, or local processes).
    Managed,
    /// `spec.workers.scaleTargetRef`: an existing workload the operator only scales.
    Referenced(ScaleTargetRef),
}

/// What the spec alone determines.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpecPlan {
    pub config: QueueConfig,
    pub scaling: Option<ScalingPlan>,
    pub workers: WorkersPlan,
}

/// What was read for a JobQueue outside its spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueInputs {
    pub redis: RedisInputs,
    /// Whether `spec.workers.scaleTargetRef` can be scaled (`Err`: why not); `None` when it
    /// was not looked up.
    pub scale_target: Option<Result<(), String>>,
}

/// Everything needed to serve a JobQueue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePlan {
    pub config: QueueConfig,
    pub scaling: Option<ScalingPlan>,
    pub workers: WorkersPlan,
    pub redis: RedisTarget,
}

/// The spec's part of the plan: every semantic rule, the engine's config and the scaling
/// policy, or every field error found.
pub fn queue_spec(jq: &JobQueue) -> Result<QueueSpecPlan, Vec<FieldError>> {
    validate::jobqueue(jq)?;
    let config = config::queue_config(jq).map_err(|e| vec![config::field_error(e)])?;
    let scaling = match &jq.spec.scaling {
        None => None,
        Some(spec) => Some(scaling::plan(spec).map_err(|e| vec![e])?),
    };
    let workers = match jq.spec.workers.as_ref() {
        None => WorkersPlan::None,
        Some(w) => match &w.scale_target_ref {
            Some(target) if w.template.is_none() => WorkersPlan::Referenced(target.clone()),
            _ => WorkersPlan::Managed,
        },
    };
    Ok(QueueSpecPlan {
        config,
        scaling,
        workers,
    })
}

/// The whole plan of a JobQueue. Problems are reported in a fixed order: the spec, the Redis
/// URL, the scale target, the TLS settings.
pub fn jobqueue(jq: &JobQueue, inputs: &QueueInputs) -> Result<QueuePlan, PlanError> {
    let spec = queue_spec(jq)?;
    let scale_target = || match (&spec.workers, &inputs.scale_target) {
        (WorkersPlan::Referenced(_), Some(Err(why))) => {
            Err(PlanError::ScaleTargetNotFound(why.clone()))
        }
        _ => Ok(()),
    };
    let redis = target_checked_between(jq, &inputs.redis, scale_target)?;
    Ok(QueuePlan {
        config: spec.config,
        scaling: spec.scaling,
        workers: spec.workers,
        redis,
    })
}

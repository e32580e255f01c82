//! The planning step shared by cluster and local mode (docs/architecture.md#planning): from a
//! JobQueue or Schedule, plus the few things read for it from the cluster or the files (Secret
//! values, whether the scale target exists), to a validated plan for the engine, or the reasons
//! it cannot run. Pure: the callers do the reading and the applying.
//!
//! The conversions from the custom resources to the engine's types live here, so the engine
//! (`queue`, `schedule`, `scaling`) knows nothing of `crate::api` or Kubernetes.

mod config;
mod jobqueue;
mod redis;
mod scaling;
mod schedule;
pub mod validate;

#[cfg(test)]
mod tests;

pub use config::{field_error, queue_config};
pub use jobqueue::{QueueInputs, QueuePlan, QueueSpecPlan, WorkersPlan, jobqueue, queue_spec};
pub use redis::{
    MissingSecret, RedisInputs, RedisTarget, SecretValue, UrlSource, secret_refs, target,
};
pub use scaling::{ScalingPlan, policy as scaling_policy};
pub use schedule::{SchedulePlan, schedule};

use crate::api::{FieldError, join_field_errors};

/// Why a resource cannot run as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec breaks a rule (each bad field named); it waits for a change of the spec.
    #[error("{}", join_field_errors(.0))]
    Invalid(Vec<FieldError>),
    /// A Secret key the spec names is missing; it waits for the Secret.
    #[error("{source} ({field}.{})", missing_part(.source))]
    SecretMissing {
        field: &'static str,
        #[source]
        source: MissingSecret,
    },
    /// A Secret key holds bytes that are not text.
    #[error("Secret {name:?} key {key:?} is not UTF-8 text ({field})")]
    SecretNotText {
        field: &'static str,
        name: String,
        key: String,
    },
    /// The URL read from a Secret is not a Redis URL.
    #[error("{0}")]
    InvalidRedisUrl(#[source] FieldError),
    /// `spec.workers.scaleTargetRef` names nothing that can be scaled.
    #[error("{0}")]
    ScaleTargetNotFound(String),
}

fn missing_part(m: &MissingSecret) -> &'static str {
    match m {
        MissingSecret::NotFound { .. } => "name",
        MissingSecret::KeyMissing { .. } => "key",
    }
}

impl From<Vec<FieldError>> for PlanError {
    fn from(errors: Vec<FieldError>) -> Self {
        PlanError::Invalid(errors)
    }
}

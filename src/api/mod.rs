//! The custom resources (API group `jobqueue.io`, version `v1alpha1`) and their schema; the
//! semantic rules live in `crate::plan::validate`.

use kube::CustomResourceExt;

pub mod conditions;
mod duration;
mod jobqueue;
pub mod openapi;
mod schedule;

pub use crate::crd_validation::{FieldError, FieldErrorKind, join_field_errors};
pub use duration::{DURATION_PATTERN, Duration, DurationError};
pub use jobqueue::*;
pub use schedule::*;

/// The API group of both resources.
pub const GROUP: &str = "jobqueue.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Both CRDs as a multi-document YAML stream, exactly as `crds/*.yaml` hold them.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "{}---\n{}",
        crd_yaml_jobqueue()?,
        crd_yaml_schedule()?
    ))
}

/// The JobQueue CRD as YAML (`crds/jobqueue.yaml`).
pub fn crd_yaml_jobqueue() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&JobQueue::crd())
}

/// The Schedule CRD as YAML (`crds/schedule.yaml`).
pub fn crd_yaml_schedule() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&Schedule::crd())
}

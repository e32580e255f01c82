//! Our resources through the CRD-schema validator ([`crate::crd_validation`]): what a cluster
//! with our CRDs installed would accept on create, for local mode and tests.

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::crd_validation::{self, FieldError, FieldErrorKind};

/// Validates one of our resources (JobQueue or Schedule, picked by `kind`) exactly as a cluster
/// with our CRDs installed would on create, with strict field validation (kubectl's default):
/// `apiVersion`, `kind` and `metadata` are checked, `status` is dropped (the status subresource
/// owns it), then the schema with its defaults ([`crd_validation::validate_create`]).
pub fn validate_resource(object: &mut Value) -> Result<(), Vec<FieldError>> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(crd) = our_crd(kind) else {
        let shown = object
            .get("kind")
            .map(crd_validation::display_value)
            .unwrap_or_else(|| "\"\"".into());
        return Err(vec![FieldError::new(
            "kind",
            FieldErrorKind::Unsupported,
            Some(shown),
            "supported values: \"JobQueue\", \"Schedule\"",
        )]);
    };
    crd_validation::validate_create(crd, object)
}

/// Our CRDs as JSON, built once: local mode and tests validate many manifests.
fn our_crd(kind: &str) -> Option<&'static Value> {
    static JOBQUEUE: OnceLock<Value> = OnceLock::new();
    static SCHEDULE: OnceLock<Value> = OnceLock::new();
    let as_json = |crd| serde_json::to_value(crd).unwrap_or(Value::Null);
    match kind {
        "JobQueue" => Some(JOBQUEUE.get_or_init(|| as_json(super::JobQueue::crd()))),
        "Schedule" => Some(SCHEDULE.get_or_init(|| as_json(super::Schedule::crd()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

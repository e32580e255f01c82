//! `x-kubernetes-validations` (CEL rules), evaluated client-side by kube's CEL engine
//! (`kube::core::cel`, the kube-cel crate) and reported as the API server reports them:
//! `spec.scaling: Invalid value: "object": maxReplicas must be >= minReplicas`.

use kube::core::cel::{ErrorKind, ValidationError, Validator};
use serde_json::Value;

use super::{path, schema, validate};
use crate::api::{FieldError, FieldErrorKind};

thread_local! {
    // Registering every Kubernetes CEL function is not free; do it once per thread.
    static VALIDATOR: Validator = Validator::new();
}

/// One failed rule. `unevaluable` is set when the rule could not run at all (for example it read
/// a field that is absent or malformed), rather than evaluating to false.
pub(crate) struct RuleError {
    pub error: FieldError,
    pub unevaluable: bool,
}

/// Evaluates every rule of `schema` against `object` (already pruned and defaulted). With `old`,
/// transition rules (`oldSelf`) run wherever the old object has a value at the same path.
pub(crate) fn evaluate(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<RuleError> {
    // No root context (`kind`, `apiVersion` as free variables): the API server declares only
    // `self` and `oldSelf`, so rules read `self.kind` there and here alike.
    let result = VALIDATOR.with(|v| v.validate(schema, object, old));
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| RuleError {
                error: to_field_error(e, object),
                unevaluable: e.kind != ErrorKind::ValidationFailure,
            })
            .collect(),
    }
}

fn to_field_error(e: &ValidationError, object: &Value) -> FieldError {
    let at = validate::field(&e.field_path);
    // The API server shows the type of the value the rule is about, not the value.
    let type_name = path::lookup(object, &e.field_path)
        .map(schema::json_type)
        .unwrap_or("object");
    let shown = Some(format!("\"{type_name}\""));
    if e.kind != ErrorKind::ValidationFailure {
        // Evaluation errors (no such key, unsupported function) reject the object too.
        return FieldError::new(at, FieldErrorKind::Invalid, shown, e.message.clone());
    }
    match e.reason.as_deref() {
        Some("FieldValueRequired") => FieldError::required(at, e.message.clone()),
        Some("FieldValueDuplicate") => {
            FieldError::new(at, FieldErrorKind::Duplicate, shown, e.message.clone())
        }
        Some("FieldValueForbidden") => {
            FieldError::new(at, FieldErrorKind::Forbidden, None, e.message.clone())
        }
        _ => FieldError::new(at, FieldErrorKind::Invalid, shown, e.message.clone()),
    }
}

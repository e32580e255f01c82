//! Validation of objects against a CRD's `openAPIV3Schema`, behaving like the Kubernetes API
//! server for what our CRDs use, so the test API server, local mode and tests reject exactly what
//! a cluster would reject, with the same field errors.
//!
//! The order is the API server's: unknown fields are pruned (and reported under strict field
//! validation), defaults are applied, the value validations run (types, formats, enum, bounds,
//! lengths, patterns, items, required, allOf/anyOf/oneOf/not), and then the CEL rules
//! (`x-kubernetes-validations`) — unless an earlier error makes them meaningless (a type error, a
//! missing required field, an unsupported enum value, a too long string or list), as in the API
//! server.
//!
//! Also as the API server: `x-kubernetes-list-type` `set`/`map` entries are unique, and embedded
//! resources name their `apiVersion` and `kind`. Not covered: CEL cost limits, validation
//! ratcheting (an update keeping an already-invalid value is rejected here; the API server since
//! 1.30 lets it through), and transition rules correlate list items by index rather than by
//! list-map key.

mod cel;
mod defaults;
mod format;
mod lists;
mod metadata;
mod path;
mod prune;
mod schema;
mod structural;
mod validate;

use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde_json::Value;

use super::{FieldError, FieldErrorKind};

pub use structural::check_structural;

/// Validates `object` against `schema` (a CRD version's `openAPIV3Schema`) the way the API server
/// does on create (`old` = `None`) or update (`old` = the stored object, for CEL transition
/// rules). On success `object` has been pruned and defaulted, as the API server would store it.
///
/// With `strict`, every pruned field is an error of kind [`FieldErrorKind::Unknown`] (like
/// `fieldValidation=Strict`, kubectl's default); without it, unknown fields are dropped silently.
pub fn validate_and_default(
    schema: &Value,
    object: &mut Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<(), Vec<FieldError>> {
    check(schema, object, old, strict, Vec::new())
}

/// [`validate_and_default`] after `prior` errors found on the same object (its metadata), which
/// count when deciding whether the CEL rules may run.
fn check(
    schema: &Value,
    object: &mut Value,
    old: Option<&Value>,
    strict: bool,
    mut errors: Vec<FieldError>,
) -> Result<(), Vec<FieldError>> {
    if !object.is_object() {
        errors.push(FieldError::new(
            validate::ROOT,
            FieldErrorKind::Invalid,
            Some(validate::render(object)),
            "the object must be a JSON/YAML mapping",
        ));
        return Err(errors);
    }
    let unknown = prune::prune(schema, object);
    if strict {
        errors.extend(
            unknown
                .into_iter()
                .map(|f| FieldError::new(f, FieldErrorKind::Unknown, None, "")),
        );
    }
    defaults::apply(schema, object);

    let mut outcome = validate::Outcome::default();
    validate::validate(schema, object, "", true, &mut outcome);
    errors.extend(outcome.errors);
    if outcome.type_errors || errors.iter().any(|e| blocks_cel(e.kind)) {
        errors.push(FieldError::new(
            validate::ROOT,
            FieldErrorKind::Invalid,
            Some("\"null\"".into()),
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else {
        let old = old.filter(|o| o.is_object()).map(|o| {
            let mut o = o.clone();
            prune::prune(schema, &mut o);
            defaults::apply(schema, &mut o);
            o
        });
        // A rule that could not run because of a field the schema already rejected adds only
        // noise (`no such key`, a parse error): the schema error is the one to act on.
        let schema_errors: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        errors.extend(
            cel::evaluate(schema, object, old.as_ref())
                .into_iter()
                .filter(|r| {
                    !(r.unevaluable && schema_errors.iter().any(|f| related(f, &r.error.field)))
                })
                .map(|r| r.error),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The API server skips the CEL rules after errors that break the bounds its cost estimate
/// relies on (a missing required field, an enum, length and size limits) and after type errors.
fn blocks_cel(kind: FieldErrorKind) -> bool {
    matches!(
        kind,
        FieldErrorKind::Required
            | FieldErrorKind::Unsupported
            | FieldErrorKind::TooLong
            | FieldErrorKind::TooMany
    )
}

/// Whether one field path is the other or lies inside it.
fn related(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    a == b || inside(a, b) || inside(b, a) || a == validate::ROOT || b == validate::ROOT
}

/// The message the API server answers a strict request with when fields are unknown
/// (`strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`), or `None` when
/// `errors` name no unknown field.
pub fn strict_decoding_message(errors: &[FieldError]) -> Option<String> {
    let unknown: Vec<String> = errors
        .iter()
        .filter(|e| e.kind == FieldErrorKind::Unknown)
        .map(|e| format!("unknown field {:?}", e.field))
        .collect();
    (!unknown.is_empty()).then(|| format!("strict decoding error: {}", unknown.join(", ")))
}

/// The ObjectMeta errors the API server reports for a custom resource on create: a missing or
/// malformed name, a malformed namespace, bad label keys or values, bad annotation keys.
/// ([`validate_resource`] includes them; a server validating other CRDs can call this.)
pub fn check_metadata(object: &Value) -> Vec<FieldError> {
    metadata::errors(object)
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition given as JSON.
pub fn crd_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// Validates one of our resources (JobQueue or Schedule, picked by `kind`) exactly as a cluster
/// with our CRDs installed would on create, with strict field validation (kubectl's default):
/// `apiVersion`, `kind` and `metadata` are checked, `status` is dropped (the status subresource
/// owns it), then [`validate_and_default`].
pub fn validate_resource(object: &mut Value) -> Result<(), Vec<FieldError>> {
    let shown = |key: &str| {
        object
            .get(key)
            .map(validate::render)
            .unwrap_or_else(|| "\"\"".into())
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(crd) = our_crd(kind) else {
        return Err(vec![FieldError::new(
            "kind",
            FieldErrorKind::Unsupported,
            Some(shown("kind")),
            "supported values: \"JobQueue\", \"Schedule\"",
        )]);
    };
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = api_version
        .strip_prefix(super::GROUP)
        .and_then(|v| v.strip_prefix('/'))
        .and_then(|v| crd_schema(crd, v));
    let Some(schema) = schema else {
        let expected = format!("{}/{}", super::GROUP, super::VERSION);
        return Err(vec![FieldError::new(
            "apiVersion",
            FieldErrorKind::Unsupported,
            Some(shown("apiVersion")),
            format!("supported values: {expected:?}"),
        )]);
    };
    // With a status subresource the API server ignores `status` on create; so do we.
    let version = api_version.rsplit('/').next().unwrap_or_default();
    if has_status_subresource(crd, version)
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let prior = metadata::errors(object);
    check(schema, object, None, true, prior)
}

fn has_status_subresource(crd: &Value, version: &str) -> bool {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
        .is_some_and(|v| v.pointer("/subresources/status").is_some())
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

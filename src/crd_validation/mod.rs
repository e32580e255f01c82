//! The CRD-schema validator: checks an object against a CustomResourceDefinition version's
//! `openAPIV3Schema` the way the Kubernetes API server does, so that local mode and the test API
//! server reject exactly what a cluster would reject, with the same field errors
//! ([`FieldError`], also the vocabulary of the rest of the crate's validation). Pure: JSON in,
//! field errors out; it knows no CRD of this crate (`api` feeds it ours).
//!
//! # What it covers
//! - Structural schemas ([`check_structural`]): what the API server requires of a CRD's schema
//!   before serving it (types everywhere, no structure inside junctors, valid extensions, list
//!   and map types, metadata restrictions, defaults that survive pruning, CEL rules compiling).
//! - Pruning of unknown fields (reported under strict field validation, kubectl's default),
//!   `x-kubernetes-preserve-unknown-fields`, embedded resources.
//! - Defaults, applied before validation as the API server does.
//! - Value validation: types, `nullable`, formats (`int32`, `int64`, `date-time`, `date`,
//!   `byte`, `uuid*`, `ipv4`, `ipv6`, `cidr`, `mac`, `hostname`), `enum`, numeric bounds and
//!   `multipleOf`, lengths, patterns, items, `required`, `allOf`/`anyOf`/`oneOf`/`not`,
//!   `x-kubernetes-int-or-string`.
//! - `x-kubernetes-list-type` `set`/`map` entries are unique; embedded resources name their
//!   `apiVersion` and `kind`.
//! - The ObjectMeta checks of a custom resource ([`check_metadata`]): name, namespace, labels,
//!   annotation keys.
//! - CEL rules (`x-kubernetes-validations`) in the subset kube's `cel` feature evaluates,
//!   including transition rules (`oldSelf`), `messageExpression`, `reason` and `fieldPath`; they
//!   are skipped after an error that makes them meaningless (a type error, a missing required
//!   field, an unsupported enum value, a too long string or list), as in the API server.
//! - Create as the API server does it for a custom resource ([`validate_create`]): `apiVersion`,
//!   `status` dropped under a status subresource, metadata, then the schema.
//!
//! The order is the API server's: prune, default, validate values, then the CEL rules.
//!
//! # What it does not cover
//! CEL cost limits; validation ratcheting (an update keeping an already-invalid value is
//! rejected here; the API server since 1.30 lets it through); transition rules correlate list
//! items by index rather than by list-map key; conversion between versions; the built-in kinds'
//! own validation.

mod cel;
mod defaults;
mod field_error;
mod format;
mod lists;
mod metadata;
mod path;
mod prune;
mod schema;
mod structural;
mod validate;

use serde_json::Value;

pub use field_error::{FieldError, FieldErrorKind, join as join_field_errors};
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
/// ([`validate_create`] includes them.)
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

/// A value as the API server shows it in a field error (`Invalid value: <this>`).
pub fn display_value(value: &Value) -> String {
    validate::render(value)
}

/// Validates a new object of the custom resource `crd` (a CustomResourceDefinition as JSON) as
/// the API server does on create, with strict field validation (kubectl's default):
/// `apiVersion` must name one of the CRD's versions, `status` is dropped when that version has
/// a status subresource, `metadata` is checked, then [`validate_and_default`] against that
/// version's schema. The caller has matched `kind` to `crd`.
pub fn validate_create(crd: &Value, object: &mut Value) -> Result<(), Vec<FieldError>> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = api_version
        .strip_prefix(group)
        .and_then(|v| v.strip_prefix('/'));
    let Some((version, schema)) = version.and_then(|v| Some((v, crd_schema(crd, v)?))) else {
        let shown = object
            .get("apiVersion")
            .map(validate::render)
            .unwrap_or_else(|| "\"\"".into());
        let supported: Vec<String> = versions(crd)
            .map(|v| format!("{:?}", format!("{group}/{v}")))
            .collect();
        return Err(vec![FieldError::new(
            "apiVersion",
            FieldErrorKind::Unsupported,
            Some(shown),
            format!("supported values: {}", supported.join(", ")),
        )]);
    };
    // With a status subresource the API server ignores `status` on create; so do we.
    if has_status_subresource(crd, version)
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let prior = metadata::errors(object);
    check(schema, object, None, true, prior)
}

fn versions(crd: &Value) -> impl Iterator<Item = &str> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
}

fn has_status_subresource(crd: &Value, version: &str) -> bool {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
        .is_some_and(|v| v.pointer("/subresources/status").is_some())
}

#[cfg(test)]
mod tests;

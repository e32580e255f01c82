//! Value validation of one (pruned, defaulted) object against its schema, with the API server's
//! error kinds and messages (`spec.x in body should be greater than or equal to 0`).

use std::{
    cmp::Ordering,
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use regex::Regex;
use serde_json::{Number, Value};

use super::{FieldError, FieldErrorKind};
use super::{
    format, lists, path,
    schema::{self, Additional},
};

/// The errors found, and whether any is a type (or format) error, after which the API server
/// skips the CEL rules: they would run on values of the wrong type.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub errors: Vec<FieldError>,
    pub type_errors: bool,
}

impl Outcome {
    fn invalid(&mut self, at: &str, value: &Value, message: String) {
        self.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::Invalid,
            Some(render(value)),
            message,
        ));
    }

    fn type_error(&mut self, at: &str, expected: &str, value: &Value) {
        let actual = schema::json_type(value);
        let shown = render(&Value::String(actual.into()));
        self.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::Invalid,
            Some(shown.clone()),
            format!("{} in body must be of type {expected}: {shown}", field(at)),
        ));
        self.type_errors = true;
    }

    /// A `format` mismatch: the API server reports it as a type error showing the value.
    fn type_error_with_value(&mut self, at: &str, format: &str, value: &Value) {
        let shown = render(value);
        self.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::Invalid,
            Some(shown.clone()),
            format!("{} in body must be of type {format}: {shown}", field(at)),
        ));
        self.type_errors = true;
    }

    fn merge(&mut self, other: Outcome) {
        self.errors.extend(other.errors);
        self.type_errors |= other.type_errors;
    }
}

/// How the API server names the root (a nil field path).
pub(super) const ROOT: &str = "<nil>";

/// The field as shown in errors; the root has no name.
pub(super) fn field(at: &str) -> String {
    if at.is_empty() {
        ROOT.to_string()
    } else {
        at.to_string()
    }
}

/// A value as the API server shows it in `Invalid value: ...`.
pub(super) fn render(value: &Value) -> String {
    match value {
        Value::Object(_) | Value::Array(_) => {
            // A whole object is noise in one line; the API server shows its type.
            format!("\"{}\"", schema::json_type(value))
        }
        Value::Number(n) => number(n),
        other => other.to_string(),
    }
}

/// Numbers as Go prints them: `0`, not `0.0`.
fn number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if !(n.is_i64() || n.is_u64()) && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

/// Validates `value` (found at path `at`) against `schema`. `resource` is true at the root and
/// for `x-kubernetes-embedded-resource` values, which carry apiVersion/kind/metadata.
pub(super) fn validate(schema: &Value, value: &Value, at: &str, resource: bool, out: &mut Outcome) {
    if matches!(schema, Value::Bool(true)) {
        return;
    }
    if !check_type(schema, value, at, out) {
        return;
    }
    check_enum(schema, value, at, out);
    match value {
        Value::String(s) => check_string(schema, s, value, at, out),
        Value::Number(n) => check_number(schema, n, value, at, out),
        Value::Array(items) => check_array(schema, items, value, at, out),
        Value::Object(_) => check_object(schema, value, at, resource, out),
        _ => {}
    }
    check_junctors(schema, value, at, out);
}

/// Returns whether the value's type allows further checks.
fn check_type(schema: &Value, value: &Value, at: &str, out: &mut Outcome) -> bool {
    let int_or_string = schema::flag(schema, schema::INT_OR_STRING);
    if value.is_null() {
        if schema::nullable(schema) {
            return false;
        }
        if int_or_string {
            out.type_error(at, "integer,string", value);
        } else if let Some(t) = schema::type_of(schema) {
            out.type_error(at, t, value);
        }
        return false;
    }
    if int_or_string {
        let ok = value.is_string() || schema::json_type(value) == "integer";
        if !ok {
            out.type_error(at, "integer,string", value);
        }
        return ok;
    }
    let Some(expected) = schema::type_of(schema) else {
        return true;
    };
    let ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => schema::json_type(value) == "integer",
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.type_error(at, expected, value);
        return false;
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str)
        && !format::conforms(f, value)
    {
        out.type_error_with_value(at, f, value);
        return false;
    }
    true
}

fn check_enum(schema: &Value, value: &Value, at: &str, out: &mut Outcome) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.iter().any(|a| equal(a, value)) {
        return;
    }
    let listed: Vec<String> = allowed.iter().map(render).collect();
    out.errors.push(FieldError::new(
        field(at),
        FieldErrorKind::Unsupported,
        Some(render(value)),
        format!("supported values: {}", listed.join(", ")),
    ));
}

fn check_string(schema: &Value, s: &str, value: &Value, at: &str, out: &mut Outcome) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        out.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::TooLong,
            None,
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        out.invalid(
            at,
            value,
            format!("{} in body should be at least {min} chars long", field(at)),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match compiled(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => out.invalid(
                at,
                value,
                format!("{} in body should match '{pattern}'", field(at)),
            ),
            Err(e) => out.invalid(
                at,
                value,
                format!("the schema's pattern '{pattern}' does not compile: {e}"),
            ),
        }
    }
}

/// Compiled `pattern`s, kept because the same few schemas are checked over and over.
fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(pattern) {
        return Ok(re.clone());
    }
    let re = Regex::new(pattern)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pattern.to_string(), re.clone());
    Ok(re)
}

fn check_number(schema: &Value, n: &Number, value: &Value, at: &str, out: &mut Outcome) {
    let name = field(at);
    if let Some(min) = schema.get("minimum").and_then(Value::as_number) {
        let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        match (compare(n, min), exclusive) {
            (Some(Ordering::Less), _) | (Some(Ordering::Equal), true) => {
                let rel = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.invalid(
                    at,
                    value,
                    format!("{name} in body should be {rel} {}", number(min)),
                );
            }
            _ => {}
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_number) {
        let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        match (compare(n, max), exclusive) {
            (Some(Ordering::Greater), _) | (Some(Ordering::Equal), true) => {
                let rel = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.invalid(
                    at,
                    value,
                    format!("{name} in body should be {rel} {}", number(max)),
                );
            }
            _ => {}
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_number)
        && !is_multiple(n, m)
    {
        out.invalid(
            at,
            value,
            format!("{name} in body should be a multiple of {}", number(m)),
        );
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Numeric order, exact for integers of any size serde_json holds.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn is_multiple(n: &Number, m: &Number) -> bool {
    match (as_int(n), as_int(m)) {
        (Some(_), Some(0)) => true,
        (Some(x), Some(y)) => x % y == 0,
        _ => match (n.as_f64(), m.as_f64()) {
            (Some(x), Some(y)) if y != 0.0 => {
                let q = x / y;
                (q - q.round()).abs() < 1e-9
            }
            _ => true,
        },
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn check_array(schema: &Value, items: &[Value], value: &Value, at: &str, out: &mut Outcome) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        out.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::TooMany,
            Some(len.to_string()),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        out.invalid(
            at,
            value,
            format!("{} in body should have at least {min} items", field(at)),
        );
    }
    if let Some(item_schema) = schema.get("items").filter(|s| !s.is_array()) {
        let embedded = schema::flag(item_schema, schema::EMBEDDED_RESOURCE);
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &path::index(at, i), embedded, out);
        }
    }
    out.errors.extend(lists::duplicates(schema, items, at));
}

fn check_object(schema: &Value, value: &Value, at: &str, resource: bool, out: &mut Outcome) {
    let Some(map) = value.as_object() else {
        return;
    };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                out.errors
                    .push(FieldError::required(path::child(at, name), ""));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        out.errors.push(FieldError::new(
            field(at),
            FieldErrorKind::TooMany,
            Some(count.to_string()),
            format!("must have at most {max} items"),
        ));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        out.invalid(
            at,
            value,
            format!(
                "{} in body should have at least {min} properties",
                field(at)
            ),
        );
    }
    if resource && !at.is_empty() {
        check_embedded_type_meta(map, at, out);
    }
    let declared = schema::properties(schema);
    for (key, child) in map {
        let child_at = path::child(at, key);
        if let Some(s) = declared.and_then(|p| p.get(key)) {
            validate(
                s,
                child,
                &child_at,
                schema::flag(s, schema::EMBEDDED_RESOURCE),
                out,
            );
        } else if resource && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            // Type and object metadata are checked by the API machinery (see check_embedded_type_meta).
        } else {
            match schema::additional(schema) {
                Additional::Schema(s) => validate(
                    s,
                    child,
                    &child_at,
                    schema::flag(s, schema::EMBEDDED_RESOURCE),
                    out,
                ),
                Additional::Forbidden => out.errors.push(FieldError::new(
                    child_at,
                    FieldErrorKind::Forbidden,
                    None,
                    "additional properties are not allowed here",
                )),
                Additional::Any | Additional::Unset => {}
            }
        }
    }
}

/// An embedded resource names its type, as any Kubernetes object does (the API server's
/// embedded-resource check, with its messages).
fn check_embedded_type_meta(map: &serde_json::Map<String, Value>, at: &str, out: &mut Outcome) {
    for key in ["apiVersion", "kind"] {
        let field = path::child(at, key);
        match map.get(key) {
            None => out
                .errors
                .push(FieldError::required(field, "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                out.invalid(&field, &Value::from(""), "must not be empty".into())
            }
            Some(Value::String(_)) => {}
            Some(other) => out.invalid(&field, other, "must be a string".into()),
        }
    }
    if let Some(m) = map.get("metadata")
        && !m.is_object()
    {
        out.type_error(&path::child(at, "metadata"), "object", m);
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not`: value validations over the same value.
fn check_junctors(schema: &Value, value: &Value, at: &str, out: &mut Outcome) {
    let name = field(at);
    let branches = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    };
    // Type meta of an embedded resource is checked once, by the structural part, not per branch.
    let run = |branch: &Value| {
        let mut o = Outcome::default();
        validate(branch, value, at, false, &mut o);
        o
    };
    for branch in branches("allOf") {
        out.merge(run(branch));
    }
    let any_of = branches("anyOf");
    if !any_of.is_empty() {
        let results: Vec<Outcome> = any_of.iter().map(run).collect();
        if results.iter().all(|o| !o.errors.is_empty()) {
            out.invalid(
                at,
                value,
                format!("{name} in body must validate at least one schema (anyOf)"),
            );
            results.into_iter().for_each(|o| out.merge(o));
        }
    }
    let one_of = branches("oneOf");
    if !one_of.is_empty() {
        let results: Vec<Outcome> = one_of.iter().map(run).collect();
        let valid = results.iter().filter(|o| o.errors.is_empty()).count();
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.invalid(
                at,
                value,
                format!("{name} in body must validate one and only one schema (oneOf). {found}"),
            );
            if valid == 0 {
                results.into_iter().for_each(|o| out.merge(o));
            }
        }
    }
    if let Some(not) = schema.get("not")
        && run(not).errors.is_empty()
    {
        out.invalid(
            at,
            value,
            format!("{name} in body must not validate the schema (not)"),
        );
    }
}

//! Read-only accessors over a raw OpenAPI v3 schema node (`serde_json::Value`), so the passes
//! (pruning, defaulting, validation, structural checks) read keywords one way.

use serde_json::{Map, Value};

pub(super) const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
pub(super) const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
pub(super) const EMBEDDED_RESOURCE: &str = "x-kubernetes-embedded-resource";
pub(super) const VALIDATIONS: &str = "x-kubernetes-validations";

/// Whether boolean keyword `key` is set to `true`.
pub(super) fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// The node's `type`, if any.
pub(super) fn type_of(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

/// Whether `null` is an accepted value of this node.
pub(super) fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

/// The node's declared `properties`.
pub(super) fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// What `additionalProperties` allows for keys not in `properties`.
pub(super) enum Additional<'a> {
    /// Not set: unknown keys are pruned (unless preserve-unknown-fields).
    Unset,
    /// `true`: any value under any key.
    Any,
    /// `false`: no other key (not structural, but handled).
    Forbidden,
    /// A schema every other key's value must satisfy (a map).
    Schema(&'a Value),
}

pub(super) fn additional(schema: &Value) -> Additional<'_> {
    match schema.get("additionalProperties") {
        None => Additional::Unset,
        Some(Value::Bool(true)) => Additional::Any,
        Some(Value::Bool(false)) => Additional::Forbidden,
        Some(s) => Additional::Schema(s),
    }
}

/// The name the API server gives the JSON type of a value (`"object"`, `"integer"`, ...).
pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

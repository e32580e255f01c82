//! Each rule of the validator, good and bad, on hand-written schemas: value keywords
//! ([`values`]), fields and structure ([`fields`]), CEL and list rules ([`rules`]).

use serde_json::{Value, json};

use super::*;

mod fields;
mod rules;
mod values;

/// A schema shaped like our CRDs, small enough to read.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["queueRef"],
                "properties": {
                    "queueRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 10}}
                    },
                    "metric": {"type": "string", "enum": ["Backlog", "Lag", "Pending"], "default": "Backlog"},
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
                    "ratio": {"type": "number", "minimum": 1.0, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true, "multipleOf": 0.5},
                    "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$", "default": "1s"},
                    "enabled": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"},
                    "size": {"type": "integer", "format": "int64"},
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "maxLength": 5}},
                    "labels": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
                    "payload": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "note": {"type": "string", "nullable": true},
                    "raw": {
                        "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                        "anyOf": [{"required": ["spec"]}, {"required": ["data"]}]
                    },
                    "scaling": {
                        "type": "object",
                        "properties": {
                            "min": {"type": "integer", "default": 0},
                            "max": {"type": "integer"}
                        },
                        "x-kubernetes-validations": [
                            {"rule": "!has(self.max) || self.min <= self.max", "message": "max must be greater than or equal to min", "fieldPath": ".max"}
                        ]
                    },
                    "workers": {
                        "type": "object",
                        "properties": {
                            "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "ref": {"type": "string"}
                        },
                        "oneOf": [{"required": ["template"]}, {"required": ["ref"]}]
                    },
                    "redis": {
                        "type": "object",
                        "properties": {"url": {"type": "string"}, "secret": {"type": "string"}},
                        "anyOf": [{"required": ["url"]}, {"required": ["secret"]}],
                        "not": {"required": ["url", "secret"]}
                    },
                    "window": {
                        "type": "object",
                        "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}},
                        "allOf": [{"properties": {"from": {"minimum": 0}}}, {"properties": {"to": {"maximum": 24}}}]
                    },
                    "name": {
                        "type": "string",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]
                    }
                }
            }
        }
    })
}

/// What the API server adds when an error keeps it from running the CEL rules.
const NOTE: &str = r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#;

fn object(spec: Value) -> Value {
    json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec})
}

/// A valid spec with `patch` merged in at the top level.
fn spec_with(patch: Value) -> Value {
    let mut spec = json!({"queueRef": {"name": "q"}});
    for (k, v) in patch.as_object().expect("patch is an object") {
        spec[k] = v.clone();
    }
    object(spec)
}

fn check(patch: Value) -> Result<Value, Vec<FieldError>> {
    let mut obj = spec_with(patch);
    validate_and_default(&schema(), &mut obj, None, true).map(|()| obj)
}

/// The errors of an invalid spec, rendered like the API server.
fn errors(patch: Value) -> Vec<String> {
    match check(patch.clone()) {
        Ok(_) => panic!("expected {patch} to be rejected"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn accepts(patch: Value) {
    if let Err(e) = check(patch.clone()) {
        panic!(
            "expected {patch} to be accepted, got {}",
            join_field_errors(&e)
        );
    }
}

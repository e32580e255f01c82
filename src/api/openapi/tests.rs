//! Each rule of the validator, good and bad, on hand-written schemas.

use serde_json::{Value, json};

use super::*;

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
            super::super::join_field_errors(&e)
        );
    }
}

#[test]
fn a_minimal_object_is_accepted_and_defaulted() {
    let obj = check(json!({})).expect("valid");
    assert_eq!(obj["spec"]["metric"], json!("Backlog"));
    assert_eq!(obj["spec"]["interval"], json!("1s"));
}

#[test]
fn types_are_checked_and_block_cel() {
    assert_eq!(
        errors(json!({"replicas": "three"})),
        vec![
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    accepts(json!({"enabled": true, "ratio": 2, "replicas": 3}));
    assert!(errors(json!({"enabled": "yes"}))[0].contains("must be of type boolean"));
    assert!(errors(json!({"replicas": 1.5}))[0].contains("must be of type integer: \"number\""));
    assert!(errors(json!({"ratio": "2"}))[0].contains("must be of type number"));
    assert!(errors(json!({"tags": "a"}))[0].contains("must be of type array"));
    assert!(
        errors(json!({"labels": ["a"]}))[0].contains("spec.labels in body must be of type object")
    );
    assert!(
        errors(json!({"queueRef": "q"}))[0]
            .contains("spec.queueRef in body must be of type object")
    );
}

#[test]
fn required_fields() {
    let mut obj = object(json!({}));
    let e = validate_and_default(&schema(), &mut obj, None, false).unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].to_string(), "spec.queueRef: Required value");
    assert_eq!(e[0].kind, FieldErrorKind::Required);
    assert_eq!(e[1].to_string(), NOTE);
    assert_eq!(
        errors(json!({"queueRef": {}})),
        vec!["spec.queueRef.name: Required value", NOTE]
    );
}

#[test]
fn enum_lists_the_supported_values() {
    assert_eq!(
        errors(json!({"metric": "Fast"})),
        vec![
            r#"spec.metric: Unsupported value: "Fast": supported values: "Backlog", "Lag", "Pending""#,
            NOTE
        ]
    );
    accepts(json!({"metric": "Lag"}));
}

#[test]
fn numeric_bounds() {
    assert_eq!(
        errors(json!({"replicas": -1})),
        vec![
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
        ]
    );
    assert_eq!(
        errors(json!({"replicas": 101})),
        vec![
            "spec.replicas: Invalid value: 101: spec.replicas in body should be less than or equal to 100"
        ]
    );
    accepts(json!({"replicas": 0}));
    accepts(json!({"replicas": 100}));
    assert_eq!(
        errors(json!({"ratio": 1})),
        vec!["spec.ratio: Invalid value: 1: spec.ratio in body should be greater than 1"]
    );
    assert_eq!(
        errors(json!({"ratio": 10.0})),
        vec!["spec.ratio: Invalid value: 10: spec.ratio in body should be less than 10"]
    );
    assert_eq!(
        errors(json!({"ratio": 2.25})),
        vec!["spec.ratio: Invalid value: 2.25: spec.ratio in body should be a multiple of 0.5"]
    );
    accepts(json!({"ratio": 9.5}));
}

#[test]
fn integer_formats() {
    assert_eq!(
        errors(json!({"replicas": 3_000_000_000_i64}))[0],
        "spec.replicas: Invalid value: 3000000000: spec.replicas in body must be of type int32: 3000000000"
    );
    accepts(json!({"size": 3_000_000_000_i64}));
    assert!(errors(json!({"size": u64::MAX}))[0].contains("must be of type int64"));
}

#[test]
fn date_time_format() {
    accepts(json!({"at": "2026-01-02T03:04:05Z"}));
    assert_eq!(
        errors(json!({"at": "tomorrow"}))[0],
        r#"spec.at: Invalid value: "tomorrow": spec.at in body must be of type date-time: "tomorrow""#
    );
}

#[test]
fn string_lengths_and_patterns() {
    assert_eq!(
        errors(json!({"queueRef": {"name": ""}})),
        vec![
            r#"spec.queueRef.name: Invalid value: "": spec.queueRef.name in body should be at least 1 chars long"#
        ]
    );
    let e = check(json!({"queueRef": {"name": "elevenchars"}})).unwrap_err();
    assert_eq!(e[0].kind, FieldErrorKind::TooLong);
    assert_eq!(
        e[0].to_string(),
        "spec.queueRef.name: Too long: may not be more than 10 bytes"
    );
    // Characters, not bytes.
    accepts(json!({"queueRef": {"name": "ééééééééé"}}));
    assert_eq!(
        errors(json!({"interval": "5 minutes"})),
        vec![
            r#"spec.interval: Invalid value: "5 minutes": spec.interval in body should match '^[0-9]+(ms|s|m|h)$'"#
        ]
    );
    accepts(json!({"interval": "250ms"}));
}

#[test]
fn list_sizes_and_items() {
    let e = check(json!({"tags": ["a", "b", "c", "d"]})).unwrap_err();
    assert_eq!(e[0].kind, FieldErrorKind::TooMany);
    assert_eq!(
        e[0].to_string(),
        "spec.tags: Too many: 4: must have at most 3 items"
    );
    assert!(
        errors(json!({"tags": []}))[0].contains("spec.tags in body should have at least 1 items")
    );
    assert_eq!(
        errors(json!({"tags": ["ok", "toolong"]})),
        vec!["spec.tags[1]: Too long: may not be more than 5 bytes", NOTE]
    );
    accepts(json!({"tags": ["a", "b", "c"]}));
}

#[test]
fn maps_check_every_value_and_their_size() {
    accepts(json!({"labels": {"a": "1", "b": "2"}}));
    assert!(
        errors(json!({"labels": {}}))[0]
            .contains("spec.labels in body should have at least 1 properties")
    );
    assert_eq!(
        errors(json!({"labels": {"a": "1", "b": "2", "c": "3"}})),
        vec!["spec.labels: Too many: 3: must have at most 2 items", NOTE]
    );
    assert!(
        errors(json!({"labels": {"a": 1}}))[0]
            .starts_with("spec.labels.a: Invalid value: \"integer\"")
    );
}

#[test]
fn int_or_string() {
    accepts(json!({"port": 8080}));
    accepts(json!({"port": "http"}));
    assert!(
        errors(json!({"port": true}))[0]
            .contains("spec.port in body must be of type integer,string: \"boolean\"")
    );
    assert!(errors(json!({"port": 1.5}))[0].contains("must be of type integer,string"));
}

#[test]
fn nullable_and_nulls() {
    // A nullable field keeps its null; a non-nullable null is dropped (or defaulted).
    let obj = check(json!({"note": null, "enabled": null, "metric": null})).expect("valid");
    assert_eq!(obj["spec"]["note"], Value::Null);
    assert!(obj["spec"].get("enabled").is_none());
    assert_eq!(obj["spec"]["metric"], json!("Backlog"));
    // A null list item is not a string.
    assert!(
        errors(json!({"tags": [null]}))[0]
            .contains("spec.tags[0] in body must be of type string: \"null\"")
    );
}

#[test]
fn unknown_fields_are_pruned_or_reported_when_strict() {
    let mut obj = spec_with(json!({"foo": 1, "queueRef": {"name": "q", "bar": 2}}));
    validate_and_default(&schema(), &mut obj, None, false).expect("non-strict drops them");
    assert!(obj["spec"].get("foo").is_none());
    assert!(obj["spec"]["queueRef"].get("bar").is_none());

    let e = check(json!({"foo": 1, "queueRef": {"name": "q", "bar": 2}})).unwrap_err();
    assert_eq!(
        e.iter()
            .map(|e| (e.field.as_str(), e.kind))
            .collect::<Vec<_>>(),
        vec![
            ("spec.foo", FieldErrorKind::Unknown),
            ("spec.queueRef.bar", FieldErrorKind::Unknown)
        ]
    );
    assert_eq!(
        strict_decoding_message(&e).as_deref(),
        Some(
            r#"strict decoding error: unknown field "spec.foo", unknown field "spec.queueRef.bar""#
        )
    );
    assert_eq!(
        strict_decoding_message(&[FieldError::required("spec.x", "")]),
        None
    );
}

#[test]
fn metadata_fields_object_meta_lacks_are_unknown() {
    let mut obj = spec_with(json!({}));
    obj["metadata"]["lables"] = json!({"a": "b"});
    let e = validate_and_default(&schema(), &mut obj.clone(), None, true).unwrap_err();
    assert_eq!(
        e.iter()
            .map(|e| (e.field.as_str(), e.kind))
            .collect::<Vec<_>>(),
        vec![("metadata.lables", FieldErrorKind::Unknown)]
    );
    validate_and_default(&schema(), &mut obj, None, false).expect("pruned when not strict");
    assert_eq!(obj["metadata"], json!({"name": "t"}));
}

#[test]
fn preserve_unknown_fields_keeps_anything() {
    let obj = check(json!({"payload": {"any": {"thing": [1, "two"]}}})).expect("valid");
    assert_eq!(
        obj["spec"]["payload"],
        json!({"any": {"thing": [1, "two"]}})
    );
}

#[test]
fn embedded_resources_need_their_type() {
    accepts(
        json!({"raw": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}}),
    );
    assert_eq!(
        errors(json!({"raw": {"metadata": {}, "data": {}}})),
        vec![
            "spec.raw.apiVersion: Required value: must not be empty",
            "spec.raw.kind: Required value: must not be empty",
            NOTE
        ]
    );
    assert_eq!(
        errors(json!({"raw": {"apiVersion": "v1", "kind": 3, "data": {}}})),
        vec!["spec.raw.kind: Invalid value: 3: must be a string"]
    );
    assert_eq!(
        errors(json!({"raw": {"apiVersion": "", "kind": "Pod", "spec": {}}})),
        vec![r#"spec.raw.apiVersion: Invalid value: "": must not be empty"#]
    );
    // The value validations of an embedded resource apply to it like to any object.
    let neither = errors(json!({"raw": {"apiVersion": "v1", "kind": "Pod"}}));
    assert!(
        neither[0].contains("spec.raw in body must validate at least one schema (anyOf)"),
        "{neither:?}"
    );
}

#[test]
fn one_of_means_exactly_one() {
    accepts(json!({"workers": {"template": {}}}));
    accepts(json!({"workers": {"ref": "deploy"}}));
    let both = errors(json!({"workers": {"template": {}, "ref": "deploy"}}));
    assert_eq!(
        both,
        vec![
            r#"spec.workers: Invalid value: "object": spec.workers in body must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    let neither = errors(json!({"workers": {}}));
    assert!(
        neither[0].contains("must validate one and only one schema (oneOf). Found none valid"),
        "{neither:?}"
    );
    assert!(neither.contains(&"spec.workers.template: Required value".to_string()));
    assert!(neither.contains(&"spec.workers.ref: Required value".to_string()));
}

#[test]
fn any_of_and_not() {
    accepts(json!({"redis": {"url": "redis://x"}}));
    accepts(json!({"redis": {"secret": "s"}}));
    let neither = errors(json!({"redis": {}}));
    assert!(
        neither[0].contains("spec.redis in body must validate at least one schema (anyOf)"),
        "{neither:?}"
    );
    assert_eq!(
        errors(json!({"redis": {"url": "u", "secret": "s"}})),
        vec![
            r#"spec.redis: Invalid value: "object": spec.redis in body must not validate the schema (not)"#
        ]
    );
}

#[test]
fn all_of_applies_every_branch() {
    accepts(json!({"window": {"from": 0, "to": 24}}));
    assert_eq!(
        errors(json!({"window": {"from": -1, "to": 25}})),
        vec![
            "spec.window.from: Invalid value: -1: spec.window.from in body should be greater than or equal to 0",
            "spec.window.to: Invalid value: 25: spec.window.to in body should be less than or equal to 24",
        ]
    );
}

#[test]
fn cel_rules_run_after_defaults_with_field_path_and_message() {
    accepts(json!({"scaling": {"max": 0}}));
    assert_eq!(
        errors(json!({"scaling": {"max": -1}})),
        vec![
            r#"spec.scaling.max: Invalid value: "integer": max must be greater than or equal to min"#
        ]
    );
    assert!(
        errors(json!({"scaling": {"min": 5, "max": 2}}))[0]
            .starts_with("spec.scaling.max: Invalid value")
    );
}

#[test]
fn cel_message_expression_and_reason() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "self.a < 10", "messageExpression": "'a is ' + string(self.a) + ', at most 9'"},
                {"rule": "!has(self.b)", "message": "b may not be set", "reason": "FieldValueForbidden", "fieldPath": ".b"},
                {"rule": "has(self.a)", "message": "a is needed", "reason": "FieldValueRequired", "fieldPath": ".a"}
            ]
        }}
    });
    let mut obj = json!({"spec": {"a": 12, "b": "x"}});
    let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
    let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            r#"spec: Invalid value: "object": a is 12, at most 9"#.to_string(),
            "spec.b: Forbidden: b may not be set".to_string(),
        ]
    );
    let mut obj = json!({"spec": {}});
    let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
    let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
    // A rule that reads an absent field fails with an evaluation error, as in the API server.
    assert_eq!(
        shown,
        vec![
            r#"spec: Invalid value: "object": rule evaluation error: No such key: a"#,
            "spec.a: Required value: a is needed",
        ]
    );
}

#[test]
fn cel_rules_at_the_root_see_the_whole_object() {
    let schema = json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.kind == 'Thing' && self.apiVersion.startsWith('jobqueue.io/') && self.metadata.name == 't'", "message": "wrong type"}],
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
    });
    let mut good = object(json!({}));
    validate_and_default(&schema, &mut good, None, true)
        .expect("the root rule sees type and object meta");
    let mut bad = good.clone();
    bad["kind"] = json!("Other");
    let e = validate_and_default(&schema, &mut bad, None, true).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        r#"<nil>: Invalid value: "object": wrong type"#
    );
}

#[test]
fn transition_rules_need_the_old_object() {
    let mut created = spec_with(json!({"name": "a"}));
    validate_and_default(&schema(), &mut created, None, true).expect("no oldSelf on create");

    let old = spec_with(json!({"name": "a"}));
    let mut same = spec_with(json!({"name": "a"}));
    validate_and_default(&schema(), &mut same, Some(&old), true).expect("unchanged");

    let mut changed = spec_with(json!({"name": "b"}));
    let e = validate_and_default(&schema(), &mut changed, Some(&old), true).unwrap_err();
    assert_eq!(
        e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![r#"spec.name: Invalid value: "string": name is immutable"#]
    );

    // A field the old object did not have is not a transition.
    let mut added = spec_with(json!({"name": "b"}));
    validate_and_default(&schema(), &mut added, Some(&spec_with(json!({}))), true)
        .expect("new field");
}

#[test]
fn errors_name_list_items_kubernetes_style() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"containers": {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}
        }}}}
    });
    let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"image": "x"}]}});
    let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
    assert_eq!(e[0].to_string(), "spec.containers[1].name: Required value");
}

#[test]
fn a_non_object_is_rejected_not_panicked_on() {
    for bad in [json!(null), json!([1]), json!("text"), json!(3)] {
        let mut v = bad;
        let e = validate_and_default(&schema(), &mut v, None, true).unwrap_err();
        assert_eq!(e[0].field, "<nil>");
    }
}

#[test]
fn crd_schema_finds_the_version() {
    let crd = json!({"spec": {"versions": [
        {"name": "v1alpha1", "schema": {"openAPIV3Schema": {"type": "object"}}},
        {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "description": "one"}}}
    ]}});
    assert_eq!(
        crd_schema(&crd, "v1").and_then(|s| s.get("description")),
        Some(&json!("one"))
    );
    assert!(crd_schema(&crd, "v2").is_none());
}

#[test]
fn rules_that_cannot_run_on_a_rejected_field_add_no_noise() {
    // `duration()` cannot parse what the pattern rejected; the pattern error says all there is.
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"timeout": {"type": "string", "pattern": "^[0-9]+[smh]$"}},
            "x-kubernetes-validations": [
                {"rule": "!has(self.timeout) || duration(self.timeout) > duration('0s')", "message": "timeout must be positive"}
            ]
        }}
    });
    let mut obj = json!({"spec": {"timeout": "5 minutes"}});
    let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
    assert_eq!(
        e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"spec.timeout: Invalid value: "5 minutes": spec.timeout in body should match '^[0-9]+[smh]$'"#
        ]
    );
    // A rule that runs and fails is always reported.
    let mut obj = json!({"spec": {"timeout": "0s"}});
    let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        r#"spec: Invalid value: "object": timeout must be positive"#
    );
}

#[test]
fn errors_that_break_cost_bounds_stop_the_rules_but_invalid_values_do_not() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "e": {"type": "string", "enum": ["a"]}
            },
            "x-kubernetes-validations": [{"rule": "false", "message": "rule ran"}]
        }}
    });
    let run = |spec: Value| -> Vec<String> {
        let mut obj = json!({ "spec": spec });
        let e = validate_and_default(&schema, &mut obj, None, true).unwrap_err();
        e.iter().map(ToString::to_string).collect()
    };
    let ran = r#"spec: Invalid value: "object": rule ran"#;
    assert_eq!(run(json!({"n": -1}))[1], ran);
    assert_eq!(run(json!({"e": "b"}))[1], NOTE);
    assert_eq!(run(json!({"n": "x"}))[1], NOTE);
}

#[test]
fn list_type_map_entries_are_unique_by_key() {
    let schema = json!({
        "type": "object",
        "properties": {"status": {"type": "object", "properties": {"conditions": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string"}, "status": {"type": "string"}
            }}
        }}}}
    });
    let mut ok = json!({"status": {"conditions": [{"type": "Ready"}, {"type": "Scaling"}]}});
    validate_and_default(&schema, &mut ok, None, true).expect("distinct keys");
    let mut dup =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready"}]}});
    let e = validate_and_default(&schema, &mut dup, None, true).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, FieldErrorKind::Duplicate);
    assert_eq!(
        e[0].to_string(),
        r#"status.conditions[1]: Duplicate value: {"type":"Ready"}"#
    );
}

mod properties {
    use kube::CustomResourceExt;
    use proptest::prelude::*;

    use super::*;

    fn jobqueue_schema() -> Value {
        let crd = serde_json::to_value(crate::api::JobQueue::crd()).expect("CRD serializes");
        crd_schema(&crd, crate::api::VERSION)
            .expect("served version")
            .clone()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..12).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-2.0f64..3.0).prop_map(Value::from),
            prop::sample::select(vec![
                "5m",
                "0s",
                "1h30m",
                "Lag",
                "Fast",
                "redis://r",
                "",
                "x y",
                "w"
            ])
            .prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "url",
            "name",
            "key",
            "maxReplicas",
            "minReplicas",
            "metric",
            "template",
            "spec",
            "containers",
            "scaleTargetRef",
            "maxLength",
            "maxAge",
            "foo",
        ]);
        leaf().prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn overrides() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
        let paths = prop::sample::select(vec![
            "/spec/redis",
            "/spec/redis/url",
            "/spec/scaling",
            "/spec/scaling/maxReplicas",
            "/spec/scaling/minReplicas",
            "/spec/scaling/metric",
            "/spec/workers",
            "/spec/workers/scaleTargetRef",
            "/spec/delivery",
            "/spec/delivery/visibilityTimeout",
            "/spec/retention",
            "/spec/foo",
            "/spec/consumerGroup",
            "/spec/deadLetter",
            "/spec",
        ]);
        prop::collection::vec((paths, value()), 0..4)
    }

    fn build(overrides: &[(&str, Value)]) -> Value {
        let mut obj = json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue", "metadata": {"name": "q"},
            "spec": {
                "redis": {"url": "redis://r"},
                "workers": {"scaleTargetRef": {"name": "w"}},
                "scaling": {"maxReplicas": 3}
            }
        });
        for (path, v) in overrides {
            let (parent, key) = path.rsplit_once('/').expect("absolute pointer");
            if let Some(Value::Object(m)) = obj.pointer_mut(parent) {
                m.insert(key.to_string(), v.clone());
            }
        }
        obj
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the input, the validator answers (no panic); what it accepts it stores in a
        /// form it accepts again unchanged, with no unknown field left.
        #[test]
        fn accepted_objects_are_a_fixpoint(ov in overrides()) {
            let schema = jobqueue_schema();
            let mut obj = build(&ov);
            if validate_and_default(&schema, &mut obj, None, false).is_ok() {
                let mut again = obj.clone();
                prop_assert!(validate_and_default(&schema, &mut again, None, true).is_ok(), "{obj}");
                prop_assert_eq!(&again, &obj);
            }
        }

        /// Strict validation rejects exactly what non-strict validation would prune (plus what
        /// both reject).
        #[test]
        fn strict_differs_only_by_unknown_fields(ov in overrides()) {
            let schema = jobqueue_schema();
            let strict = validate_and_default(&schema, &mut build(&ov), None, true);
            let lenient = validate_and_default(&schema, &mut build(&ov), None, false);
            let without_unknown = |r: Result<(), Vec<FieldError>>| -> Vec<FieldError> {
                r.err().unwrap_or_default().into_iter().filter(|e| e.kind != FieldErrorKind::Unknown).collect()
            };
            prop_assert_eq!(without_unknown(strict), without_unknown(lenient));
        }
    }
}

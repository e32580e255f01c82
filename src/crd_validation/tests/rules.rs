//! CEL rules, when they run, and list-type uniqueness.

use serde_json::json;

use super::*;

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

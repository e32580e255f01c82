//! Pruning, metadata, embedded resources, junctors, field paths.

use serde_json::json;

use super::*;

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

//! Types, formats, bounds, lengths, sizes, enums, nullability.

use serde_json::json;

use super::*;

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

//! The ObjectMeta checks the API server applies to every custom resource, for the fields a
//! hand-written manifest can get wrong: the name, the namespace, labels and annotations. (A CRD
//! schema may not describe metadata; fields ObjectMeta lacks are pruned like unknown fields.)

use serde_json::{Map, Value};

use super::validate;
use super::{FieldError, FieldErrorKind};

/// ObjectMeta's fields; anything else under `metadata` is unknown to the API server (and pruned).
pub(super) const FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

const LABEL_NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc'), at most 63 characters, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', or '12345'), at most 63 characters";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'), at most 253 characters";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), at most 63 characters";

/// The metadata errors of `object` (a resource about to be created).
pub(super) fn errors(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let meta = match object.get("metadata") {
        None => &Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            errors.push(invalid("metadata", other, "must be an object"));
            return errors;
        }
    };
    let text = |key: &str| meta.get(key).and_then(Value::as_str);
    for key in ["name", "generateName", "namespace"] {
        if let Some(v) = meta.get(key).filter(|v| !v.is_string()) {
            errors.push(invalid(&format!("metadata.{key}"), v, "must be a string"));
        }
    }
    match (text("name"), text("generateName")) {
        (None | Some(""), None | Some("")) => errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        (Some(name), _) if !name.is_empty() && !is_dns_subdomain(name) => {
            errors.push(FieldError::invalid("metadata.name", name, SUBDOMAIN_RULE))
        }
        _ => {}
    }
    if let Some(ns) = text("namespace")
        && !is_dns_label(ns)
    {
        errors.push(FieldError::invalid("metadata.namespace", ns, LABEL_RULE));
    }
    check_map(meta, "labels", true, &mut errors);
    check_map(meta, "annotations", false, &mut errors);
    errors
}

/// Labels and annotations: string maps with qualified-name keys; label values are restricted too.
fn check_map(
    meta: &Map<String, Value>,
    key: &str,
    label_values: bool,
    errors: &mut Vec<FieldError>,
) {
    let at = format!("metadata.{key}");
    let map = match meta.get(key) {
        None | Some(Value::Null) => return,
        Some(Value::Object(m)) => m,
        Some(other) => {
            errors.push(invalid(&at, other, "must be a map of strings"));
            return;
        }
    };
    for (k, v) in map {
        if !is_qualified_name(k) {
            errors.push(FieldError::invalid(&at, k, LABEL_NAME_RULE));
        }
        match v {
            Value::String(s) if label_values && !is_label_value(s) => errors.push(
                FieldError::invalid(format!("{at}.{k}"), s, LABEL_VALUE_RULE),
            ),
            Value::String(_) => {}
            other => errors.push(invalid(&format!("{at}.{k}"), other, "must be a string")),
        }
    }
}

fn invalid(at: &str, value: &Value, message: &str) -> FieldError {
    FieldError::new(
        at,
        FieldErrorKind::Invalid,
        Some(validate::render(value)),
        message,
    )
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `[prefix/]name`, as label and annotation keys.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

fn is_label_value(s: &str) -> bool {
    let edge = |c: Option<u8>| c.is_none_or(|b| b.is_ascii_alphanumeric());
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && edge(s.bytes().next())
        && edge(s.bytes().last())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(meta: Value) -> Vec<String> {
        errors(&json!({"metadata": meta}))
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_good_metadata_passes() {
        let meta = json!({
            "name": "thumbnails.v2", "namespace": "media-1",
            "labels": {"app.kubernetes.io/name": "thumbnails", "tier": "", "a_b": "c.d-e"},
            "annotations": {"example.com/note": "anything at all: {}"},
            "finalizers": ["jobqueue.io/cleanup"], "uid": "x", "resourceVersion": "1"
        });
        assert_eq!(fields(meta), Vec::<String>::new());
        assert_eq!(
            fields(json!({"generateName": "job-"})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_name_is_required_and_well_formed() {
        assert_eq!(
            fields(json!({})),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(fields(json!({"name": ""})).len(), 1);
        assert!(fields(json!({"name": "My_Queue"}))[0].starts_with(
            r#"metadata.name: Invalid value: "My_Queue": a lowercase RFC 1123 subdomain"#
        ));
        assert!(
            fields(json!({"name": "x".repeat(254)}))[0].starts_with("metadata.name: Invalid value")
        );
        assert!(
            fields(json!({"name": 7}))[0]
                .starts_with("metadata.name: Invalid value: 7: must be a string")
        );
    }

    #[test]
    fn the_namespace_is_a_dns_label() {
        assert!(
            fields(json!({"name": "a", "namespace": "a.b"}))[0]
                .starts_with("metadata.namespace: Invalid value")
        );
    }

    #[test]
    fn labels_and_annotations() {
        assert!(
            fields(json!({"name": "a", "labels": {"bad key!": "v"}}))[0]
                .starts_with(r#"metadata.labels: Invalid value: "bad key!""#)
        );
        assert!(
            fields(json!({"name": "a", "labels": {"k": "-v"}}))[0]
                .starts_with(r#"metadata.labels.k: Invalid value: "-v""#)
        );
        assert!(
            fields(json!({"name": "a", "labels": {"k": 1}}))[0]
                .starts_with("metadata.labels.k: Invalid value: 1: must be a string")
        );
        assert!(
            fields(json!({"name": "a", "labels": ["k"]}))[0]
                .starts_with("metadata.labels: Invalid value")
        );
        assert!(
            fields(json!({"name": "a", "annotations": {"k": true}}))[0]
                .contains("must be a string")
        );
        assert_eq!(
            fields(json!({"name": "a", "annotations": {"k": "-not a label value-"}})),
            Vec::<String>::new()
        );
    }
}

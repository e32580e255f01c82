//! `x-kubernetes-list-type`: a `set` holds each value once and a `map` each key once, as the API
//! server enforces (so server-side apply can merge list entries by value or key).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{FieldError, FieldErrorKind};
use super::{path, schema};

pub(super) const LIST_TYPE: &str = "x-kubernetes-list-type";
pub(super) const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
pub(super) const MAP_TYPE: &str = "x-kubernetes-map-type";

/// The `Duplicate value` errors of the list `items` (at `at`) under `schema`'s list type.
pub(super) fn duplicates(schema: &Value, items: &[Value], at: &str) -> Vec<FieldError> {
    let identity: Box<dyn Fn(&Value) -> Value> = match schema.get(LIST_TYPE).and_then(Value::as_str)
    {
        Some("set") => Box::new(Value::clone),
        Some("map") => {
            let keys: Vec<&str> = schema
                .get(LIST_MAP_KEYS)
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            Box::new(move |item| {
                let picked: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| Some((k.to_string(), item.get(*k)?.clone())))
                    .collect();
                Value::Object(picked)
            })
        }
        _ => return Vec::new(),
    };
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        // serde_json maps are ordered, so equal values serialize equally.
        if !seen.insert(id.to_string()) {
            errors.push(FieldError::new(
                path::index(at, i),
                FieldErrorKind::Duplicate,
                Some(id.to_string()),
                "",
            ));
        }
    }
    errors
}

/// `x-kubernetes-list-type`, `-list-map-keys` and `-map-type` fit the node they are on.
pub(super) fn schema_problems(s: &Value, at: &str, problems: &mut Vec<String>) {
    let ty = schema::type_of(s);
    let list_type = s.get(LIST_TYPE).map(|v| v.as_str().unwrap_or_default());
    if let Some(lt) = list_type {
        let key = LIST_TYPE;
        if ty != Some("array") {
            problems.push(format!(
                "{at}.{key}: Invalid value: must only be used if type is array"
            ));
        }
        if !["atomic", "set", "map"].contains(&lt) {
            problems.push(format!("{at}.{key}: Unsupported value: {lt:?}: supported values: \"atomic\", \"set\", \"map\""));
        }
        let items = s.get("items").unwrap_or(&Value::Null);
        let item_type = schema::type_of(items);
        let atomic_item = items.get(MAP_TYPE).and_then(Value::as_str) == Some("atomic")
            || items.get(LIST_TYPE).and_then(Value::as_str) == Some("atomic");
        if lt == "set" && matches!(item_type, Some("object" | "array")) && !atomic_item {
            problems.push(format!("{at}.items: Invalid value: must only be scalars or atomic lists/maps if x-kubernetes-list-type is set"));
        }
        if lt == "map" {
            list_map_keys(s, items, at, problems);
        }
    }
    if s.get(LIST_MAP_KEYS).is_some() && list_type != Some("map") {
        problems.push(format!(
            "{at}.{}: Forbidden: must only be used if x-kubernetes-list-type is map",
            LIST_MAP_KEYS
        ));
    }
    if let Some(mt) = s.get(MAP_TYPE) {
        if ty != Some("object") {
            problems.push(format!(
                "{at}.{}: Invalid value: must only be used if type is object",
                MAP_TYPE
            ));
        }
        if !matches!(mt.as_str(), Some("granular" | "atomic")) {
            problems.push(format!(
                "{at}.{}: Unsupported value: {mt}: supported values: \"granular\", \"atomic\"",
                MAP_TYPE
            ));
        }
    }
}

/// The keys of a list-type map name scalar, always-present properties of its object items.
fn list_map_keys(s: &Value, items: &Value, at: &str, problems: &mut Vec<String>) {
    let key = LIST_MAP_KEYS;
    let keys: Vec<&str> = s
        .get(key)
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if keys.is_empty() {
        problems.push(format!(
            "{at}.{key}: Required value: must not be empty if x-kubernetes-list-type is map"
        ));
    }
    if schema::type_of(items) != Some("object") {
        problems.push(format!(
            "{at}.items.type: Invalid value: must be object if x-kubernetes-list-type is map"
        ));
        return;
    }
    let required: Vec<&str> = items
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for k in keys {
        match schema::properties(items).and_then(|p| p.get(k)) {
            None => problems.push(format!(
                "{at}.{key}: Invalid value: {k:?}: entries must all be names of item properties"
            )),
            Some(p) => {
                if matches!(schema::type_of(p), Some("object" | "array")) {
                    problems.push(format!("{at}.items.properties[{k}].type: Invalid value: must be a scalar type if used as x-kubernetes-list-map-keys"));
                }
                if !required.contains(&k) && p.get("default").is_none() {
                    problems.push(format!("{at}.items.properties[{k}]: Required value: a x-kubernetes-list-map-keys entry must be required or have a default"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_hold_each_value_once() {
        let schema =
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert!(duplicates(&schema, &[json!("a"), json!("b")], "spec.tags").is_empty());
        let e = duplicates(&schema, &[json!("a"), json!("b"), json!("a")], "spec.tags");
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![r#"spec.tags[2]: Duplicate value: "a""#]
        );
    }

    #[test]
    fn maps_hold_each_key_once() {
        let schema = json!({
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type", "port"],
            "items": {"type": "object"}
        });
        let items = [
            json!({"type": "Ready", "port": 1, "status": "True"}),
            json!({"type": "Ready", "port": 2}),
            json!({"type": "Ready", "port": 1, "status": "False"}),
        ];
        let e = duplicates(&schema, &items, "status.conditions");
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![r#"status.conditions[2]: Duplicate value: {"port":1,"type":"Ready"}"#]
        );
    }

    #[test]
    fn atomic_and_untyped_lists_allow_repeats() {
        for schema in [
            json!({"type": "array"}),
            json!({"type": "array", "x-kubernetes-list-type": "atomic"}),
        ] {
            assert!(duplicates(&schema, &[json!(1), json!(1)], "l").is_empty());
        }
    }
}

//! `x-kubernetes-list-type`: a `set` holds each value once and a `map` each key once, as the API
//! server enforces (so server-side apply can merge list entries by value or key).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::path;
use crate::api::{FieldError, FieldErrorKind};

pub(crate) const LIST_TYPE: &str = "x-kubernetes-list-type";
pub(crate) const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
pub(crate) const MAP_TYPE: &str = "x-kubernetes-map-type";

/// The `Duplicate value` errors of the list `items` (at `at`) under `schema`'s list type.
pub(crate) fn duplicates(schema: &Value, items: &[Value], at: &str) -> Vec<FieldError> {
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

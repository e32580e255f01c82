//! Pruning: like the API server, fields the schema does not declare are dropped before an object
//! is stored (unless `x-kubernetes-preserve-unknown-fields`). The dropped paths are returned so
//! strict field validation can name them.

use serde_json::Value;

use super::{
    metadata, path,
    schema::{self, Additional},
};

/// Keys every resource (the root, and any `x-kubernetes-embedded-resource`) carries implicitly.
const TYPE_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Removes every field of `value` that `schema` does not declare; returns their paths, sorted.
pub(super) fn prune(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(schema, value, "", true, &mut pruned);
    pruned.sort();
    pruned
}

fn walk(schema: &Value, value: &mut Value, at: &str, resource: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if matches!(schema, Value::Bool(true)) {
                return;
            }
            let preserve = schema::flag(schema, schema::PRESERVE_UNKNOWN);
            let mut unknown = Vec::new();
            for (key, child) in map.iter_mut() {
                let child_at = path::child(at, key);
                let declared = schema::properties(schema).and_then(|p| p.get(key));
                if resource && TYPE_META.contains(&key.as_str()) {
                    // Type and object meta are decoded by the API machinery, not pruned by the
                    // schema (which may only restrict metadata.name and generateName): what goes
                    // is a field ObjectMeta does not have.
                    if key == "metadata"
                        && let Value::Object(meta) = child
                    {
                        let unknown: Vec<String> = meta
                            .keys()
                            .filter(|k| !metadata::FIELDS.contains(&k.as_str()))
                            .cloned()
                            .collect();
                        for k in unknown {
                            meta.remove(&k);
                            pruned.push(path::child(&child_at, &k));
                        }
                    }
                    continue;
                }
                if let Some(s) = declared {
                    let embedded = schema::flag(s, schema::EMBEDDED_RESOURCE);
                    walk(s, child, &child_at, embedded, pruned);
                    continue;
                }
                match schema::additional(schema) {
                    Additional::Schema(s) => {
                        let embedded = schema::flag(s, schema::EMBEDDED_RESOURCE);
                        walk(s, child, &child_at, embedded, pruned);
                    }
                    Additional::Any => {}
                    Additional::Unset | Additional::Forbidden if preserve => {}
                    Additional::Unset | Additional::Forbidden => {
                        unknown.push((key.clone(), child_at))
                    }
                }
            }
            for (key, child_at) in unknown {
                map.remove(&key);
                pruned.push(child_at);
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| !s.is_array()) {
                let embedded = schema::flag(s, schema::EMBEDDED_RESOURCE);
                for (i, item) in items.iter_mut().enumerate() {
                    walk(s, item, &path::index(at, i), embedded, pruned);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "items": {"type": "array", "items": {
                            "type": "object", "properties": {"a": {"type": "integer"}}
                        }},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "half": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"inner": {"type": "object", "properties": {}}}
                        },
                        "raw": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {}}}
                        }
                    }
                }
            }
        })
    }

    #[test]
    fn drops_undeclared_fields_and_reports_their_paths() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}, "anything": 1},
            "extra": true,
            "spec": {
                "name": "a", "nope": 1,
                "labels": {"k": "v"},
                "items": [{"a": 1}, {"a": 2, "b": 3}],
                "free": {"whatever": {"deep": 1}},
                "half": {"kept": 1, "inner": {"gone": 1}},
                "raw": {"apiVersion": "v1", "kind": "Pod", "metadata": {"nmae": "p"}, "spec": {"x": 1}, "y": 2}
            }
        });
        let pruned = prune(&schema(), &mut obj);
        assert_eq!(
            pruned,
            vec![
                "extra",
                "metadata.anything",
                "spec.half.inner.gone",
                "spec.items[1].b",
                "spec.nope",
                "spec.raw.metadata.nmae",
                "spec.raw.spec.x",
                "spec.raw.y",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
                "spec": {
                    "name": "a",
                    "labels": {"k": "v"},
                    "items": [{"a": 1}, {"a": 2}],
                    "free": {"whatever": {"deep": 1}},
                    "half": {"kept": 1, "inner": {}},
                    "raw": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}
                }
            })
        );
    }

    #[test]
    fn a_schema_for_metadata_name_does_not_prune_the_rest_of_metadata() {
        let schema = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}
        }});
        let mut obj = json!({"metadata": {"name": "n", "labels": {"a": "b"}, "finalizers": ["f"]}});
        assert_eq!(prune(&schema, &mut obj), Vec::<String>::new());
        assert_eq!(obj["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn a_declared_object_keeps_nothing_undeclared() {
        let mut obj = json!({"spec": {"name": {"not": "a string"}}});
        let pruned = prune(&schema(), &mut obj);
        assert_eq!(pruned, vec!["spec.name.not".to_string()]);
    }
}

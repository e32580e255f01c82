//! Defaulting, as the API server does it on every read and write: a declared property that is
//! absent (or `null` where the schema is not `nullable`) gets the schema's `default`; a non-nullable
//! `null` without a default is dropped. Defaulting recurses into defaulted values too, so a
//! defaulted object receives its own nested defaults.

use serde_json::Value;

use super::schema::{self, Additional};

/// Fills in `value` from the `default`s in `schema`, recursively.
pub(super) fn apply(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema::properties(schema) {
                for (key, prop) in props {
                    let default = prop.get("default");
                    match map.get(key) {
                        None => {
                            if let Some(d) = default {
                                map.insert(key.clone(), d.clone());
                            }
                        }
                        Some(Value::Null) if !schema::nullable(prop) => match default {
                            Some(d) => {
                                map.insert(key.clone(), d.clone());
                            }
                            None => {
                                map.remove(key);
                            }
                        },
                        Some(_) => {}
                    }
                }
            }
            let declared = schema::properties(schema);
            for (key, child) in map.iter_mut() {
                if let Some(prop) = declared.and_then(|p| p.get(key)) {
                    apply(prop, child);
                } else if let Additional::Schema(s) = schema::additional(schema) {
                    default_null(s, child);
                    apply(s, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for item in items.iter_mut() {
                    default_null(s, item);
                    apply(s, item);
                }
            }
        }
        _ => {}
    }
}

/// A non-nullable `null` list item or map value takes the default, if there is one.
fn default_null(schema: &Value, value: &mut Value) {
    if value.is_null()
        && !schema::nullable(schema)
        && let Some(d) = schema.get("default")
    {
        *value = d.clone();
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
                        "group": {"type": "string", "default": "workers"},
                        "given": {"type": "string", "default": "d"},
                        "maybe": {"type": "string", "nullable": true, "default": "m"},
                        "plain": {"type": "string"},
                        "delivery": {
                            "type": "object",
                            "default": {},
                            "properties": {
                                "timeout": {"type": "string", "default": "5m"},
                                "max": {"type": "integer", "default": 5},
                                "backoff": {
                                    "type": "object",
                                    "properties": {"multiplier": {"type": "number", "default": 2.0}}
                                }
                            }
                        },
                        "list": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"w": {"type": "integer", "default": 1}}
                        }},
                        "names": {"type": "array", "items": {"type": "string", "default": "x"}},
                        "map": {"type": "object", "additionalProperties": {
                            "type": "object",
                            "properties": {"v": {"type": "boolean", "default": true}}
                        }}
                    }
                }
            }
        })
    }

    #[test]
    fn absent_fields_get_defaults_recursively_inside_defaulted_objects() {
        let mut obj = json!({"spec": {"given": "mine"}});
        apply(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "group": "workers", "given": "mine", "maybe": "m",
                "delivery": {"timeout": "5m", "max": 5}
            }})
        );
    }

    #[test]
    fn nulls_take_the_default_or_vanish_unless_nullable() {
        let mut obj =
            json!({"spec": {"group": null, "plain": null, "maybe": null, "names": [null, "a"]}});
        apply(&schema(), &mut obj);
        let spec = &obj["spec"];
        assert_eq!(spec["group"], json!("workers"));
        assert!(spec.get("plain").is_none());
        assert_eq!(spec["maybe"], Value::Null);
        assert_eq!(spec["names"], json!(["x", "a"]));
    }

    #[test]
    fn defaults_reach_list_items_map_values_and_present_objects() {
        let mut obj = json!({"spec": {
            "list": [{}, {"w": 7}],
            "map": {"a": {}, "b": {"v": false}},
            "delivery": {"max": 9, "backoff": {}}
        }});
        apply(&schema(), &mut obj);
        let spec = &obj["spec"];
        assert_eq!(spec["list"], json!([{"w": 1}, {"w": 7}]));
        assert_eq!(spec["map"], json!({"a": {"v": true}, "b": {"v": false}}));
        assert_eq!(
            spec["delivery"],
            json!({"timeout": "5m", "max": 9, "backoff": {"multiplier": 2.0}})
        );
    }

    #[test]
    fn defaulting_twice_changes_nothing() {
        let mut once = json!({"spec": {"list": [{}], "map": {"a": {}}}});
        apply(&schema(), &mut once);
        let mut twice = once.clone();
        apply(&schema(), &mut twice);
        assert_eq!(once, twice);
    }
}

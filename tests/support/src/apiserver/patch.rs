//! PATCH bodies (pure): JSON merge patch (RFC 7386), JSON patch (RFC 6902, via `json-patch`) and
//! an approximation of strategic merge patch.
//!
//! Strategic merge here is JSON merge plus two rules of the real thing that kubectl's
//! client-side apply depends on: lists whose elements all carry a `name` (containers, env,
//! volumes, ports, ...) are merged element by element on `name` (with `$patch: delete` removing
//! one), and directive keys (`$setElementOrder/...`, `$retainKeys`, `$patch: replace`,
//! `$deleteFromPrimitiveList/...`) are honoured or dropped rather than stored. Other merge keys
//! (`containerPort`, `mountPath`, ...) and patch strategies from Go struct tags are not known:
//! such lists are replaced whole.

use serde_json::{Map, Value};

/// How a PATCH body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type` header value, ignoring parameters.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// A patch that cannot be applied; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// Applies a merge, JSON or strategic patch body to a copy of `target`.
pub fn apply_patch(kind: PatchKind, target: &Value, body: &Value) -> Result<Value, PatchError> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => {
            if !body.is_object() {
                return Err(PatchError("a merge patch must be a JSON object".into()));
            }
            json_patch::merge(&mut out, body);
        }
        PatchKind::Json => {
            let mut ops: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| PatchError(format!("invalid JSON patch: {e}")))?;
            // As in the real API server (evanphx/json-patch), `test` of an absent member
            // against null passes: kube-runtime's finalizer helper adds the first finalizer so.
            ops.0.retain(|op| {
                !matches!(op, json_patch::PatchOperation::Test(t)
                    if t.value.is_null() && target.pointer(t.path.as_str()).is_none())
            });
            json_patch::patch(&mut out, &ops)
                .map_err(|e| PatchError(format!("the JSON patch could not be applied: {e}")))?;
        }
        PatchKind::Strategic => {
            if !body.is_object() {
                return Err(PatchError(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            }
            strategic(&mut out, body);
        }
        PatchKind::Apply => {
            return Err(PatchError(
                "apply patches are handled by server-side apply".into(),
            ));
        }
    }
    Ok(out)
}

fn named(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn all_named(items: &[Value]) -> bool {
    items.iter().all(|i| named(i).is_some())
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn strategic(target: &mut Value, patch: &Value) {
    let Some(pm) = patch.as_object() else {
        *target = strip_directives(patch);
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let tm = target.as_object_mut().expect("made an object above");
    for (k, v) in pm {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(del)) = (tm.get_mut(list), v.as_array()) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => strategic(tm.entry(k.clone()).or_insert(Value::Null), v),
            Value::Array(pitems) => match tm.get_mut(k) {
                Some(Value::Array(titems)) if all_named(pitems) && all_named(titems) => {
                    for p in pitems {
                        let name = named(p).expect("checked by all_named");
                        let pos = titems.iter().position(|t| named(t) == Some(name));
                        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
                        match (pos, delete) {
                            (Some(i), true) => {
                                titems.remove(i);
                            }
                            (None, true) => {}
                            (Some(i), false) => strategic(&mut titems[i], p),
                            (None, false) => titems.push(strip_directives(p)),
                        }
                    }
                }
                _ => {
                    tm.insert(k.clone(), strip_directives(v));
                }
            },
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }

    #[test]
    fn merge_patch_sets_and_removes() {
        let t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let out = apply_patch(PatchKind::Merge, &t, &json!({"b": {"c": null}, "l": [3]})).unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_applies_and_reports_failed_tests() {
        let t = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = apply_patch(
            PatchKind::Json,
            &t,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
                    {"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["b"]}}));
        let err = apply_patch(
            PatchKind::Json,
            &t,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "z"}]),
        );
        assert!(err.is_err());
        assert!(apply_patch(PatchKind::Json, &t, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn strategic_merges_named_lists_and_drops_directives() {
        let t = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}});
        let p = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"},
                           {"name": "c", "image": "c:1"}]}});
        let out = apply_patch(PatchKind::Strategic, &t, &p).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}]},
                {"name": "c", "image": "c:1"}]}})
        );
    }

    #[test]
    fn strategic_replace_and_primitive_list_deletes() {
        let t = json!({"metadata": {"finalizers": ["x", "y"]}, "spec": {"a": 1, "b": 2}});
        let p = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]},
                       "spec": {"$patch": "replace", "c": 3}});
        let out = apply_patch(PatchKind::Strategic, &t, &p).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["y"]}, "spec": {"c": 3}})
        );
    }

    #[test]
    fn non_object_merge_patches_are_rejected() {
        assert!(apply_patch(PatchKind::Merge, &json!({}), &json!([1])).is_err());
        assert!(apply_patch(PatchKind::Strategic, &json!({}), &json!("x")).is_err());
    }
}

//! Server-side apply and field ownership (pure), simplified.
//!
//! Ownership is tracked in `metadata.managedFields` in the real `FieldsV1` shape, one entry per
//! (manager, operation, subresource). What is simplified:
//! - lists are atomic: a manager owns a whole list (`containers`, `conditions`, `finalizers`),
//!   never single elements keyed by a merge key;
//! - of `metadata`, only `labels`, `annotations`, `finalizers` and `ownerReferences` are owned;
//! - a conflict is raised when an applied field differs from the live value and another
//!   manager (Apply or Update) owns that field, a field inside it or a field around it;
//!   `force=true` takes the field over;
//! - an applied field that a manager stops applying is removed unless another manager owns it;
//! - updates (PUT and non-apply PATCH) take ownership of every field whose value they change.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A path of object keys, `["spec", "replicas"]`.
pub type FieldPath = Vec<String>;
/// The fields one manager owns.
pub type FieldSet = BTreeSet<FieldPath>;

const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf fields an object (or applied configuration) sets.
pub fn leaves(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for f in OWNED_METADATA {
                    if let Some(v) = v.get(f) {
                        collect(v, vec!["metadata".into(), f.into()], &mut out);
                    }
                }
            }
            _ => collect(v, vec![k.clone()], &mut out),
        }
    }
    out
}

fn collect(v: &Value, path: FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && path.len() < 64 => {
            for (k, v) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(v, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path, if present.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn set(obj: &mut Value, path: &[String], value: Value) {
    let mut cur = obj;
    for k in &path[..path.len() - 1] {
        if !cur.get(k).is_some_and(Value::is_object) {
            cur[k.as_str()] = Value::Object(Map::new());
        }
        cur = cur.get_mut(k).expect("inserted above");
    }
    cur[path[path.len() - 1].as_str()] = value;
}

fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parent {
        match cur.get_mut(k) {
            Some(v) => cur = v,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn is_empty_map(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(Map::is_empty)
}

fn overlap(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `FieldsV1` form: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = json!({});
    for path in set {
        let mut cur = &mut root;
        for k in path {
            cur = cur
                .as_object_mut()
                .expect("built from objects only")
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// Reads a `FieldsV1` value back; keys other than `f:` (list element keys) end a path.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &FieldPath, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, v) in children {
            let mut p = path.clone();
            p.push(k[2..].to_string());
            walk(v, &p, out);
        }
    }
    let mut out = FieldSet::new();
    walk(v, &Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

/// The ownership entries recorded on an object.
pub fn entries(obj: &Value) -> Vec<Entry> {
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: s(e, "manager"),
                    operation: s(e, "operation"),
                    subresource: s(e, "subresource"),
                    api_version: s(e, "apiVersion"),
                    time: s(e, "time"),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Stores ownership entries on an object (entries owning nothing are dropped).
pub fn set_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who the writer is and when.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
}

fn mine<'e>(entries: &'e mut Vec<Entry>, w: &Writer, op: &str) -> &'e mut Entry {
    let pos = entries.iter().position(|e| {
        e.manager == w.manager && e.operation == op && e.subresource == w.subresource
    });
    let i = pos.unwrap_or_else(|| {
        entries.push(Entry {
            manager: w.manager.into(),
            operation: op.into(),
            subresource: w.subresource.into(),
            api_version: w.api_version.into(),
            time: w.time.into(),
            fields: FieldSet::new(),
        });
        entries.len() - 1
    });
    let e = &mut entries[i];
    e.time = w.time.into();
    e.api_version = w.api_version.into();
    e
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub field: FieldPath,
}

/// `.spec.replicas`, the way apply conflicts name a field.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Applies `config` on top of `live` for `w.manager`. `live` carries the current
/// `managedFields`; the result carries the new ones.
pub fn apply(
    live: &Value,
    config: &Value,
    w: &Writer,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut es = entries(live);
    let applied = leaves(config);
    let mut conflicts = Vec::new();
    for e in es.iter().filter(|e| e.manager != w.manager) {
        for q in &e.fields {
            let clash = applied.iter().any(|p| {
                overlap(p, q) && !is_empty_map(get(config, p)) && get(live, p) != get(config, p)
            });
            if clash {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    field: q.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for e in es.iter_mut().filter(|e| e.manager != w.manager) {
        e.fields.retain(|q| {
            !conflicts
                .iter()
                .any(|c| c.manager == e.manager && &c.field == q)
        });
    }
    let mut out = live.clone();
    let previous = es
        .iter()
        .find(|e| {
            e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied) {
        let shared = es
            .iter()
            .filter(|e| !(e.manager == w.manager && e.operation == "Apply"))
            .any(|e| e.fields.iter().any(|q| overlap(p, q)));
        if !shared {
            remove(&mut out, p);
            // Maps that only held the removed field go with it, unless someone owns them.
            for len in (1..p.len()).rev() {
                let parent = &p[..len];
                let owned =
                    es.iter().any(|e| e.fields.contains(parent)) || applied.contains(parent);
                if owned || !is_empty_map(get(&out, parent)) {
                    break;
                }
                remove(&mut out, parent);
            }
        }
    }
    for p in &applied {
        match get(config, p) {
            Some(Value::Null) | None => remove(&mut out, p),
            // An empty map only says the map exists; it does not clear what others set in it.
            Some(v) if is_empty_map(Some(v)) => {
                if !get(&out, p).is_some_and(Value::is_object) {
                    set(&mut out, p, v.clone());
                }
            }
            Some(v) => set(&mut out, p, v.clone()),
        }
    }
    mine(&mut es, w, "Apply").fields = applied;
    set_entries(&mut out, &es);
    Ok(out)
}

/// Records an update's ownership: the writer owns every field whose value it changed; other
/// managers lose those fields, and fields the update removed are owned by nobody.
pub fn record_update(old: &Value, new: &mut Value, w: &Writer) {
    let mut es = entries(old);
    let after = leaves(new);
    let before = leaves(old);
    let changed: FieldSet = after
        .iter()
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = before.difference(&after).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, &es);
        return;
    }
    for e in es.iter_mut() {
        e.fields.retain(|q| {
            !removed.iter().any(|p| overlap(p, q)) && !changed.iter().any(|p| overlap(p, q))
        });
    }
    if !changed.is_empty() {
        mine(&mut es, w, "Update").fields.extend(changed);
    }
    set_entries(new, &es);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-01-01T00:00:00Z";

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            time: T,
        }
    }

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: FieldSet = [p("spec.replicas"), p("metadata.labels.app"), p("spec.x.y")].into();
        let v = to_fields_v1(&set);
        assert_eq!(v["f:spec"]["f:replicas"], json!({}));
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn leaves_skip_identity_and_keep_owned_metadata() {
        let obj = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "n", "labels": {"a": "1"}, "finalizers": ["f"]},
            "spec": {"list": [1, 2], "m": {"k": "v"}, "e": {}}});
        let got = leaves(&obj);
        let want: FieldSet = [
            p("metadata.labels.a"),
            p("metadata.finalizers"),
            p("spec.list"),
            p("spec.m.k"),
            p("spec.e"),
        ]
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn apply_sets_fields_and_removes_what_it_no_longer_applies() {
        let live = json!({"metadata": {"name": "n"}});
        let one = apply(&live, &json!({"spec": {"a": 1, "b": 2}}), &w("m"), false).unwrap();
        assert_eq!(one["spec"], json!({"a": 1, "b": 2}));
        let two = apply(&one, &json!({"spec": {"a": 3}}), &w("m"), false).unwrap();
        assert_eq!(two["spec"], json!({"a": 3}));
        let es = entries(&two);
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].fields, [p("spec.a")].into());
    }

    #[test]
    fn conflicting_apply_fails_unless_forced_and_equal_values_share() {
        let live = apply(
            &json!({"metadata": {}}),
            &json!({"spec": {"r": 1}}),
            &w("a"),
            false,
        )
        .unwrap();
        let err = apply(&live, &json!({"spec": {"r": 2}}), &w("b"), false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "a".into(),
                field: p("spec.r")
            }]
        );
        // Same value: no conflict, both own it.
        let shared = apply(&live, &json!({"spec": {"r": 1}}), &w("b"), false).unwrap();
        assert_eq!(entries(&shared).len(), 2);
        // b stops applying it: a still owns it, so it stays.
        let kept = apply(&shared, &json!({"spec": {"other": 1}}), &w("b"), false).unwrap();
        assert_eq!(kept["spec"]["r"], 1);
        let forced = apply(&live, &json!({"spec": {"r": 2}}), &w("b"), true).unwrap();
        assert_eq!(forced["spec"]["r"], 2);
        let es = entries(&forced);
        assert_eq!(es.len(), 1, "a lost its only field: {es:?}");
        assert_eq!(es[0].manager, "b");
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let live = apply(
            &json!({"metadata": {}}),
            &json!({"spec": {"r": 1, "s": 1}}),
            &w("a"),
            false,
        )
        .unwrap();
        let mut new = live.clone();
        new["spec"]["r"] = json!(5);
        record_update(&live, &mut new, &w("kubectl-edit"));
        let es = entries(&new);
        let a = es.iter().find(|e| e.manager == "a").unwrap();
        let k = es.iter().find(|e| e.manager == "kubectl-edit").unwrap();
        assert_eq!(a.fields, [p("spec.s")].into());
        assert_eq!(
            (k.operation.as_str(), &k.fields),
            ("Update", &[p("spec.r")].into())
        );
        // Now a's apply of r=1 conflicts with the update.
        let err = apply(&new, &json!({"spec": {"r": 1, "s": 1}}), &w("a"), false).unwrap_err();
        assert_eq!(err[0].manager, "kubectl-edit");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn config() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                "[a-z]{0,3}".prop_map(|s| json!(s)),
                proptest::collection::vec(any::<bool>(), 0..3).prop_map(|l| json!(l)),
            ];
            let tree = leaf.prop_recursive(3, 12, 3, |inner| {
                proptest::collection::btree_map("[a-c]", inner, 1..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
            });
            proptest::collection::btree_map("[a-c]", tree, 0..3)
                .prop_map(|m| json!({"spec": Value::Object(m.into_iter().collect())}))
        }

        proptest! {
            /// Ownership survives its round trip through managedFields.
            #[test]
            fn fields_v1_round_trips_leaf_sets(c in config()) {
                let set = leaves(&c);
                prop_assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
            }

            /// Applying a configuration sets every field it names to the applied value, and
            /// applying it again changes nothing.
            #[test]
            fn apply_is_idempotent_and_sets_the_applied_values(a in config(), b in config()) {
                let live = apply(&json!({"metadata": {}}), &a, &w("m"), false).unwrap();
                let once = apply(&live, &b, &w("m"), false).unwrap();
                for p in leaves(&b) {
                    if is_empty_map(get(&b, &p)) {
                        // An applied empty map only asks for the map to exist.
                        prop_assert!(get(&once, &p).is_some_and(Value::is_object));
                    } else {
                        prop_assert_eq!(get(&once, &p), get(&b, &p));
                    }
                }
                let twice = apply(&once, &b, &w("m"), false).unwrap();
                prop_assert_eq!(&twice, &once);
                // What only `a` applied is gone: the manager stopped applying it.
                for p in leaves(&a).difference(&leaves(&b)) {
                    if !leaves(&b).iter().any(|q| overlap(p, q)) {
                        prop_assert!(get(&once, p).is_none(), "{:?} survived in {}", p, once);
                    }
                }
            }
        }
    }
}

//! `kubectl get` tables (pure): the `meta.k8s.io/v1` Table a client gets when it asks for
//! `application/json;as=Table`, with a CRD's `additionalPrinterColumns` evaluated on each object.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::resources::{PrinterColumn, ResourceType};

/// One step of the JSONPath subset printer columns use.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    /// `[?(@.key=="value")]`
    Filter(Vec<String>, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = f.split_once("==")?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter(
                    k.trim().split('.').map(str::to_string).collect(),
                    v.to_string(),
                ));
            } else {
                steps.push(Step::Index(inner.trim().parse().ok()?));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The first value a printer-column JSONPath selects, if any.
pub fn eval(obj: &Value, path: &str) -> Option<Value> {
    let steps = parse_path(path)?;
    let mut cur = obj;
    for s in steps {
        cur = match s {
            Step::Field(f) => cur.get(&f)?,
            Step::Index(i) => cur.get(i)?,
            Step::Filter(key, want) => cur.as_array()?.iter().find(|item| {
                key.iter()
                    .try_fold(*item, |v, k| v.get(k))
                    .and_then(Value::as_str)
                    == Some(want.as_str())
            })?,
        };
    }
    Some(cur.clone())
}

/// Age the way kubectl prints it (`45s`, `3m20s`, `5h`, `2d3h`), Kubernetes' HumanDuration.
pub fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (mins, hours) = (secs / 60, secs / 3600);
    let with = |big: i64, bu: &str, small: i64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        with(mins, "m", secs % 60, "s")
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        with(hours, "h", mins % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn age_column() -> PrinterColumn {
    PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }
}

fn cell(obj: &Value, c: &PrinterColumn, now: Timestamp) -> Value {
    let Some(v) = eval(obj, &c.json_path) else {
        return Value::Null;
    };
    match (c.type_.as_str(), &v) {
        ("date", Value::String(s)) => s
            .parse::<Timestamp>()
            .map(|t| json!(human_duration(now.duration_since(t))))
            .unwrap_or(v),
        ("string", Value::Object(_) | Value::Array(_)) => json!(v.to_string()),
        _ => v,
    }
}

/// The columns the real server prints for the built-ins people look at while the operator
/// works (before Age): `(name, type)`.
fn builtin_columns(rt: &ResourceType) -> &'static [(&'static str, &'static str)] {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments") => &[
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        ("apps", "statefulsets") => &[("Ready", "string")],
        ("", "pods") => &[
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
        ],
        ("", "namespaces") => &[("Status", "string")],
        ("", "secrets") => &[("Type", "string"), ("Data", "integer")],
        ("", "configmaps") => &[("Data", "integer")],
        ("coordination.k8s.io", "leases") => &[("Holder", "string")],
        ("", "events") | ("events.k8s.io", "events") => &[
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _ => &[],
    }
}

fn builtin_cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let int = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let text = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let len = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_object)
            .map_or(0, serde_json::Map::len)
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments") => vec![
            json!(format!(
                "{}/{}",
                int("/status/readyReplicas"),
                int("/spec/replicas")
            )),
            json!(int("/status/updatedReplicas")),
            json!(int("/status/availableReplicas")),
        ],
        ("apps", "statefulsets") => vec![json!(format!(
            "{}/{}",
            int("/status/readyReplicas"),
            int("/spec/replicas")
        ))],
        ("", "pods") => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c["ready"] == json!(true))
                .count();
            let containers = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            let phase = text("/status/phase");
            vec![
                json!(format!("{ready}/{containers}")),
                json!(if phase.is_empty() {
                    "Pending".into()
                } else {
                    phase
                }),
                json!(restarts.to_string()),
            ]
        }
        ("", "namespaces") => vec![json!(text("/status/phase"))],
        ("", "secrets") => vec![json!(text("/type")), json!(len("/data"))],
        ("", "configmaps") => vec![json!(len("/data") + len("/binaryData"))],
        ("coordination.k8s.io", "leases") => vec![json!(text("/spec/holderIdentity"))],
        ("", "events") | ("events.k8s.io", "events") => {
            let regarding = o.get("involvedObject").or_else(|| o.get("regarding"));
            let field = |k: &str| {
                regarding
                    .and_then(|r| r.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let message = o.get("message").or_else(|| o.get("note"));
            vec![
                json!(text("/type")),
                json!(text("/reason")),
                json!(format!(
                    "{}/{}",
                    field("kind").to_lowercase(),
                    field("name")
                )),
                json!(message.and_then(Value::as_str).unwrap_or("")),
            ]
        }
        _ => Vec::new(),
    }
}

/// An object reduced to its metadata, as `PartialObjectMetadata`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// The Table for a list of objects of one type; `include_object` is the `includeObject`
/// query parameter (`None`, `Metadata` (default) or `Object`).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: &str,
    include_object: &str,
    now: Timestamp,
) -> Value {
    let mut columns = rt.columns.clone();
    let computed = if rt.custom {
        &[][..]
    } else {
        builtin_columns(rt)
    };
    if columns.is_empty() {
        columns.push(age_column());
    }
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace.",
    })];
    defs.extend(computed.iter().map(|(name, type_)| {
        json!({"name": name, "type": type_, "format": "", "description": "", "priority": 0})
    }));
    defs.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format,
               "description": c.description, "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            if !computed.is_empty() {
                cells.extend(builtin_cells(rt, o));
            }
            cells.extend(columns.iter().map(|c| cell(o, c, now)));
            let mut row = json!({"cells": cells});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = partial_metadata(o),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"lag": 3, "conditions": [
            {"type": "RedisReachable", "status": "True"},
            {"type": "Ready", "status": "False"}]}, "spec": {"l": [10, 20]}});
        assert_eq!(eval(&o, ".status.lag"), Some(json!(3)));
        assert_eq!(
            eval(&o, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("False"))
        );
        assert_eq!(eval(&o, "{.spec.l[1]}"), Some(json!(20)));
        assert_eq!(eval(&o, ".status.missing"), None);
        assert_eq!(eval(&o, "status"), None);
    }

    #[test]
    fn human_durations_match_kubectl() {
        let s = |n| human_duration(SignedDuration::from_secs(n));
        assert_eq!(s(5), "5s");
        assert_eq!(s(119), "119s");
        assert_eq!(s(125), "2m5s");
        assert_eq!(s(600), "10m");
        assert_eq!(s(3 * 3600 + 60), "3h1m");
        assert_eq!(s(10 * 3600), "10h");
        assert_eq!(s(3 * 86400 + 3600), "3d1h");
        assert_eq!(s(30 * 86400), "30d");
        assert_eq!(s(-10), "<invalid>");
    }

    #[test]
    fn built_ins_get_the_columns_kubectl_users_expect() {
        let rt = builtins()
            .into_iter()
            .find(|r| r.plural == "deployments")
            .unwrap();
        let d = json!({"metadata": {"name": "w"}, "spec": {"replicas": 3},
                       "status": {"readyReplicas": 1, "updatedReplicas": 3}});
        let t = table(&rt, &[d], "1", "None", Timestamp::now());
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
        assert_eq!(t["rows"][0]["cells"], json!(["w", "1/3", 3, 0, null]));
        let ev = builtins()
            .into_iter()
            .find(|r| r.plural == "events" && r.group.is_empty())
            .unwrap();
        let e = json!({"metadata": {"name": "e"}, "type": "Normal", "reason": "ScaledUp",
                       "involvedObject": {"kind": "JobQueue", "name": "q"}, "message": "1 → 4"});
        let t = table(&ev, &[e], "1", "None", Timestamp::now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["e", "Normal", "ScaledUp", "jobqueue/q", "1 → 4", null])
        );
    }

    #[test]
    fn table_has_name_columns_and_partial_metadata() {
        let mut rt = builtins()
            .into_iter()
            .find(|r| r.plural == "secrets")
            .unwrap();
        rt.custom = true; // as if from a CRD: only its printer columns
        rt.columns = vec![PrinterColumn {
            name: "Lag".into(),
            type_: "integer".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".status.lag".into(),
        }];
        let now = Timestamp::now();
        let o = json!({"metadata": {"name": "q", "namespace": "d"}, "status": {"lag": 7}});
        let t = table(&rt, &[o], "5", "Metadata", now);
        assert_eq!(t["columnDefinitions"][1]["name"], "Lag");
        assert_eq!(t["rows"][0]["cells"], json!(["q", 7]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "d");
        rt.columns.clear();
        let created = (now - SignedDuration::from_secs(30)).to_string();
        let o = json!({"metadata": {"name": "q", "creationTimestamp": created}});
        let t = table(&rt, &[o], "5", "None", now);
        assert_eq!(t["rows"][0]["cells"], json!(["q", "30s"]));
    }
}

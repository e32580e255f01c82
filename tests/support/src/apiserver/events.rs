//! `events.k8s.io/v1` Events as a view of the core `v1` Events (pure conversions), as in the
//! real server, where both APIs read and write one collection. So the Events a controller
//! records through kube-runtime's `Recorder` (events.k8s.io) show in `kubectl describe`, which
//! lists core Events by `involvedObject` field selectors.

use serde_json::{Map, Value, json};

/// `(events.k8s.io/v1 name, core v1 name)` of the fields whose names differ.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_v1: bool, api_version: &str) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = RENAMED
            .iter()
            .find(|(v1, core)| if from_v1 { v1 == k } else { core == k })
            .map(|(v1, core)| if from_v1 { *core } else { *v1 });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event (or partial one, like an apply configuration) as a core Event.
pub fn to_core(v1: &Value) -> Value {
    rename(v1, true, "v1")
}

/// A core Event as an events.k8s.io/v1 Event.
pub fn to_v1(core: &Value) -> Value {
    rename(core, false, "events.k8s.io/v1")
}

/// A field selector over events.k8s.io/v1 names, rewritten to the stored core names.
pub fn selector_to_core(selector: &str) -> String {
    selector
        .split(',')
        .map(|term| {
            RENAMED
                .iter()
                .find_map(|(v1, core)| {
                    let rest = term.strip_prefix(v1)?;
                    (rest.starts_with('.') || rest.starts_with('=') || rest.starts_with('!'))
                        .then(|| format!("{core}{rest}"))
                })
                .unwrap_or_else(|| term.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_rename_fields() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "JobQueue", "name": "q"}, "note": "scaled 2 → 7",
            "reason": "Scaled", "type": "Normal", "action": "Scale",
            "reportingController": "jobqueue-operator", "reportingInstance": "pod-1",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
        });
        let core = to_core(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "q");
        assert_eq!(core["message"], "scaled 2 → 7");
        assert_eq!(core["reportingComponent"], "jobqueue-operator");
        assert_eq!(core["reason"], "Scaled");
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(to_v1(&core), v1);
    }

    #[test]
    fn selectors_use_core_names() {
        assert_eq!(
            selector_to_core("regarding.name=q,reason=Scaled,note!=x"),
            "involvedObject.name=q,reason=Scaled,message!=x"
        );
        assert_eq!(selector_to_core("regardingX=1"), "regardingX=1");
    }
}

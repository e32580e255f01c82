//! Reading JobQueue and Schedule manifests from YAML text, validated exactly as a cluster with
//! our CRDs would validate them: schema + defaults (`api::openapi::validate_resource`), then the
//! semantic rules and what the runtime itself needs (the engine's queue config, the scaling
//! policy, the schedule definition), all from `crate::plan`. Pure: the caller reads the files.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::api::{self, FieldError, JobQueue, Schedule};
use crate::operator::runtime::{ObjectId, ScalingSettings};
use crate::plan;
use crate::queue::config::QueueConfig;
use crate::queue::schedules::ScheduleDefinition;

/// The namespace of a manifest that names none (as `kubectl apply` would use).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A valid JobQueue and what the runtime derives from it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDecl {
    pub file: PathBuf,
    pub resource: JobQueue,
    pub config: QueueConfig,
    pub scaling: Option<ScalingSettings>,
}

/// A valid Schedule and its definition for the scheduler (generation is set when applied).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDecl {
    pub file: PathBuf,
    pub resource: Schedule,
    pub queue: ObjectId,
    pub definition: ScheduleDefinition,
}

/// One resource found in a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    Queue(Box<QueueDecl>),
    Schedule(Box<ScheduleDecl>),
}

/// `JobQueue default/emails`: how errors and notes name a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub kind: String,
    pub id: ObjectId,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

/// A resource that could not be accepted, with every field error.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub file: PathBuf,
    /// `None` when the document does not even say what it is (no name).
    pub resource: Option<ResourceRef>,
    /// 1-based position of the document in its file (for unnamed documents).
    pub document: usize,
    pub errors: Vec<FieldError>,
}

impl Rejected {
    /// One line per field error: `file: JobQueue default/x: spec.field: Invalid value: ...`.
    pub fn lines(&self) -> Vec<String> {
        let what = match &self.resource {
            Some(r) => r.to_string(),
            None => format!("document {}", self.document),
        };
        self.errors
            .iter()
            .map(|e| format!("{}: {what}: {e}", self.file.display()))
            .collect()
    }
}

/// Everything one file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileContents {
    pub declared: Vec<Declared>,
    pub rejected: Vec<Rejected>,
    /// Documents of other kinds, ignored (`Secret default/redis`).
    pub ignored: Vec<String>,
    /// The file as a whole could not be read as YAML (nothing in it is used).
    pub unreadable: Option<String>,
}

/// Parses and validates every document of `text`, which was read from `file`.
pub fn parse_file(file: &Path, text: &str) -> FileContents {
    let mut out = FileContents::default();
    let mut documents = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match serde_yaml::Value::deserialize(doc) {
            Ok(v) => documents.push(v),
            Err(e) => {
                out.unreadable = Some(format!("not valid YAML: {e}"));
                return out;
            }
        }
    }
    for (i, doc) in documents.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        parse_document(file, i + 1, doc, &mut out);
    }
    out
}

fn parse_document(file: &Path, number: usize, doc: serde_yaml::Value, out: &mut FileContents) {
    let mut object = match serde_json::to_value(&doc) {
        Ok(v) => v,
        Err(e) => {
            out.rejected.push(Rejected {
                file: file.to_path_buf(),
                resource: None,
                document: number,
                errors: vec![FieldError::new(
                    "<root>",
                    api::FieldErrorKind::Invalid,
                    None,
                    format!("cannot be read as JSON-compatible YAML: {e}"),
                )],
            });
            return;
        }
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && !meta.contains_key("namespace")
    {
        meta.insert("namespace".into(), DEFAULT_NAMESPACE.into());
    }
    let text = |key: &str| {
        object
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = text("name").filter(|n| !n.is_empty());
    let namespace = text("namespace").unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let resource = name.map(|name| ResourceRef {
        kind: kind.clone(),
        id: ObjectId::new(namespace, name),
    });
    if kind != "JobQueue" && kind != "Schedule" {
        let what = match (&resource, kind.is_empty()) {
            (_, true) => format!("document {number} (no kind)"),
            (Some(r), false) => r.to_string(),
            (None, false) => format!("{kind} (document {number})"),
        };
        out.ignored.push(what);
        return;
    }
    let reject = |errors: Vec<FieldError>| Rejected {
        file: file.to_path_buf(),
        resource: resource.clone(),
        document: number,
        errors,
    };
    if let Err(errors) = api::openapi::validate_resource(&mut object) {
        out.rejected.push(reject(errors));
        return;
    }
    let Some(resource_ref) = resource.clone() else {
        // validate_resource requires a name; this is unreachable in practice.
        out.rejected.push(reject(vec![FieldError::required(
            "metadata.name",
            "name is required",
        )]));
        return;
    };
    let declared = if kind == "JobQueue" {
        queue(file, object, &resource_ref).map(|q| Declared::Queue(Box::new(q)))
    } else {
        schedule(file, object, &resource_ref).map(|s| Declared::Schedule(Box::new(s)))
    };
    match declared {
        Ok(d) => out.declared.push(d),
        Err(errors) => out.rejected.push(reject(errors)),
    }
}

fn typed<T: serde::de::DeserializeOwned>(object: Value) -> Result<T, Vec<FieldError>> {
    serde_json::from_value(object).map_err(|e| {
        vec![FieldError::new(
            "<root>",
            api::FieldErrorKind::Invalid,
            None,
            e.to_string(),
        )]
    })
}

fn queue(file: &Path, object: Value, r: &ResourceRef) -> Result<QueueDecl, Vec<FieldError>> {
    let jq: JobQueue = typed(object)?;
    let plan = plan::queue_spec(&jq)?;
    debug_assert_eq!(jq.metadata.name.as_deref(), Some(r.id.name.as_str()));
    Ok(QueueDecl {
        file: file.to_path_buf(),
        resource: jq,
        config: plan.config,
        scaling: plan.scaling.map(|s| ScalingSettings {
            policy: s.policy,
            poll_interval: s.poll_interval,
        }),
    })
}

fn schedule(file: &Path, object: Value, r: &ResourceRef) -> Result<ScheduleDecl, Vec<FieldError>> {
    let s: Schedule = typed(object)?;
    let plan = plan::schedule(&s)?;
    Ok(ScheduleDecl {
        file: file.to_path_buf(),
        queue: ObjectId::new(r.id.namespace.clone(), plan.queue),
        resource: s,
        definition: plan.definition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str =
        "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata:\n  name: demo\n";

    fn parse(text: &str) -> FileContents {
        parse_file(Path::new("dir/q.yaml"), text)
    }

    fn only_queue(c: &FileContents) -> &QueueDecl {
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        match c.declared.as_slice() {
            [Declared::Queue(q)] => q,
            other => panic!("expected one queue, got {other:?}"),
        }
    }

    #[test]
    fn namespace_defaults_and_schema_defaults_apply() {
        let c = parse(&format!("{QUEUE}spec: {{}}\n"));
        let q = only_queue(&c);
        assert_eq!(q.resource.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(q.resource.spec.consumer_group, "workers");
        assert_eq!(q.config.keys.stream, "jobqueue:{default/demo}");
        assert_eq!(q.scaling, None);
        assert_eq!(q.file, Path::new("dir/q.yaml"));
    }

    #[test]
    fn scaling_becomes_a_policy_and_poll_interval() {
        let c = parse(&format!(
            "{QUEUE}spec:\n  workers:\n    template:\n      spec:\n        containers: [{{name: w, command: [sleep, '1']}}]\n  scaling:\n    maxReplicas: 4\n    pollInterval: 250ms\n"
        ));
        let s = only_queue(&c).scaling.clone().expect("scaling");
        assert_eq!(s.policy.max_replicas, 4);
        assert_eq!(s.poll_interval, std::time::Duration::from_millis(250));
    }

    #[test]
    fn several_documents_other_kinds_ignored_and_nulls_skipped() {
        let text = format!(
            "---\n{QUEUE}spec: {{}}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: redis}}\n---\n\
             apiVersion: jobqueue.io/v1alpha1\nkind: Schedule\nmetadata: {{name: tick, namespace: team}}\n\
             spec: {{schedule: '@hourly', queueRef: {{name: demo}}}}\n"
        );
        let c = parse(&text);
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        assert_eq!(c.ignored, vec!["Secret default/redis".to_string()]);
        assert_eq!(c.declared.len(), 2);
        let Declared::Schedule(s) = &c.declared[1] else {
            panic!("expected a schedule")
        };
        assert_eq!(s.queue, ObjectId::new("team", "demo"));
        assert_eq!(s.definition.name, "tick");
        assert_eq!(s.definition.cron, "@hourly");
    }

    #[test]
    fn schema_errors_name_file_resource_and_field() {
        let c = parse(&format!(
            "{QUEUE}spec:\n  workers: {{scaleTargetRef: {{name: x}}}}\n  scaling: {{maxReplicas: 2, metric: Fast}}\n"
        ));
        assert!(c.declared.is_empty());
        // (The API server may add a line saying that CEL rules were skipped.)
        let lines = c.rejected[0].lines();
        assert!(
            lines[0].starts_with("dir/q.yaml: JobQueue default/demo: spec.scaling.metric: Unsupported value: \"Fast\""),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn unknown_fields_are_errors_as_with_kubectl() {
        let c = parse(&format!("{QUEUE}spec:\n  retries: 3\n"));
        let lines = c.rejected[0].lines();
        assert!(
            lines[0].contains("spec.retries: Unknown field"),
            "{lines:?}"
        );
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let c = parse(
            "apiVersion: jobqueue.io/v1alpha1\nkind: Schedule\nmetadata: {name: nightly}\n\
             spec: {schedule: '61 * * * *', queueRef: {name: demo}}\n",
        );
        let lines = c.rejected[0].lines();
        assert!(
            lines[0].starts_with(
                "dir/q.yaml: Schedule default/nightly: spec.schedule: Invalid value: \"61 * * * *\""
            ),
            "{lines:?}"
        );
        let c = parse(&format!("{QUEUE}spec:\n  redis: {{url: 'mysql://db'}}\n"));
        assert!(c.rejected[0].lines()[0].contains("spec.redis.url"), "{c:?}");
    }

    #[test]
    fn cel_rules_apply() {
        let c = parse(&format!(
            "{QUEUE}spec:\n  workers: {{scaleTargetRef: {{name: x}}}}\n  scaling: {{minReplicas: 3, maxReplicas: 2}}\n"
        ));
        let lines = c.rejected[0].lines();
        assert!(
            lines.iter().any(|l| l.contains("spec.scaling.maxReplicas")),
            "{lines:?}"
        );
    }

    #[test]
    fn unnamed_documents_are_named_by_position() {
        let c = parse("apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nspec: {}\n");
        let lines = c.rejected[0].lines();
        assert!(
            lines[0].starts_with("dir/q.yaml: document 1: metadata.name: Required value"),
            "{lines:?}"
        );
    }

    #[test]
    fn broken_yaml_makes_the_whole_file_unreadable() {
        let c = parse(&format!("{QUEUE}spec: {{workers: [\n"));
        assert!(c.declared.is_empty());
        assert!(
            c.unreadable
                .as_deref()
                .unwrap()
                .starts_with("not valid YAML"),
            "{c:?}"
        );
    }

    #[test]
    fn wrong_api_version_is_named() {
        let c = parse("apiVersion: jobqueue.io/v2\nkind: JobQueue\nmetadata: {name: q}\n");
        assert!(
            c.rejected[0].lines()[0].contains("JobQueue default/q: apiVersion: Unsupported value"),
            "{c:?}"
        );
    }

    #[test]
    fn never_panics_on_odd_documents() {
        for text in [
            "",
            "42",
            "[1, 2]",
            "kind: 7",
            "metadata: []\nkind: JobQueue",
            "kind: JobQueue\nmetadata: {name: 5}",
            "? [a]\n: b\n",
            "kind: Schedule\napiVersion: jobqueue.io/v1alpha1\nmetadata: {name: s}\nspec: {}",
        ] {
            let _ = parse(text);
        }
    }
}

//! How to start one worker process of a queue: the first container of `workers.template`
//! (`command` + `args`, plain `env`) plus the variables a cluster would inject. Pure but for
//! looking up this executable's path ([`OWN_BINARY`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::ResourceExt;

use crate::api::{FieldError, FieldErrorKind, JobQueue};

/// A worker command named exactly this runs the operator's own binary: under `cargo run` it
/// is not on PATH, and a template such as `["jobqueue-operator", "work", "--", ...]` should
/// run locally as it does in the image.
pub const OWN_BINARY: &str = "jobqueue-operator";

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Everything needed to start a worker, except its consumer name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `command` followed by `args`, unexpanded.
    pub argv: Vec<String>,
    /// REDIS_URL, JOBQUEUE_STREAM and JOBQUEUE_GROUP (JOBQUEUE_CONSUMER is added per
    /// process): first, as a cluster injects them, so template values may refer to them.
    pub injected: Vec<(String, String)>,
    /// The template's env, unexpanded. Added on top of this process's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory: the container's `workingDir` resolved against the manifest's
    /// directory, or that directory.
    pub dir: PathBuf,
    /// SIGTERM → SIGKILL delay.
    pub grace: Duration,
}

impl Launch {
    /// The argv and env of the process that will be consumer `consumer`, with `$(VAR)`
    /// references expanded as Kubernetes does and [`OWN_BINARY`] as this very executable.
    pub fn for_consumer(&self, consumer: &str) -> (Vec<String>, Vec<(String, String)>) {
        let mut env = self.injected.clone();
        env.push(("JOBQUEUE_CONSUMER".into(), consumer.into()));
        // Each template value may refer to the injected variables and to earlier ones.
        for (name, value) in &self.env {
            let value = expand(value, &env);
            env.push((name.clone(), value));
        }
        let mut argv: Vec<String> = self.argv.iter().map(|a| expand(a, &env)).collect();
        if let Some(program) = argv.first_mut()
            && program == OWN_BINARY
            && let Ok(exe) = std::env::current_exe()
        {
            *program = exe.to_string_lossy().into_owned();
        }
        (argv, env)
    }
}

/// What a queue's workers are locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Processes started from the template.
    Processes(Launch),
    /// No workers here, and why (a scaleTargetRef, no `workers`, a template that cannot run
    /// outside a container).
    None(String),
}

/// The worker plan of `jq`, whose Redis is `redis_url` and whose manifest lives in `manifest_dir`.
/// Also returns notes about template parts local mode cannot honour.
pub fn plan(jq: &JobQueue, redis_url: &str, manifest_dir: &Path) -> (Plan, Vec<String>) {
    let mut notes = Vec::new();
    let Some(workers) = &jq.spec.workers else {
        return (Plan::None("it declares no workers".into()), notes);
    };
    if let Some(target) = &workers.scale_target_ref {
        return (
            Plan::None(format!(
                "workers.scaleTargetRef ({} {}) is a cluster workload, which cannot be scaled locally",
                target.kind, target.name
            )),
            notes,
        );
    }
    let pod = workers.template.as_ref().and_then(|t| t.spec.as_ref());
    let Some(container) = pod.and_then(|p| p.containers.first()) else {
        return (Plan::None("its template has no container".into()), notes);
    };
    let field = "spec.workers.template.spec.containers[0]";
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    if argv.is_empty() {
        let e = FieldError::new(
            format!("{field}.command"),
            FieldErrorKind::Required,
            None,
            "local mode runs the command on this machine and cannot use an image's entrypoint",
        );
        return (Plan::None(e.to_string()), notes);
    }
    argv.extend(container.args.clone().unwrap_or_default());
    let mut env = Vec::new();
    for (i, var) in container.env.iter().flatten().enumerate() {
        match (&var.value, &var.value_from) {
            (_, Some(_)) => notes.push(format!(
                "{field}.env[{i}] ({}): valueFrom cannot be resolved locally; the variable is not set",
                var.name
            )),
            (value, None) => env.push((var.name.clone(), value.clone().unwrap_or_default())),
        }
    }
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        notes.push(format!(
            "{field}.envFrom: ConfigMaps and Secrets cannot be read locally; ignored"
        ));
    }
    let injected = vec![
        ("REDIS_URL".into(), redis_url.into()),
        ("JOBQUEUE_STREAM".into(), jq.stream_key()),
        ("JOBQUEUE_GROUP".into(), jq.spec.consumer_group.clone()),
    ];
    let dir = match container.working_dir.as_deref() {
        Some(d) if !d.is_empty() => manifest_dir.join(d),
        _ => manifest_dir.to_path_buf(),
    };
    let grace = pod
        .and_then(|p| p.termination_grace_period_seconds)
        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64));
    (
        Plan::Processes(Launch {
            argv,
            injected,
            env,
            dir,
            grace,
        }),
        notes,
    )
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced by its value (the last
/// definition wins), an undefined reference is left as written, and `$$` is a literal `$`.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// How a queue is named in worker output: `name`, or `namespace/name` outside `default`.
pub fn label(jq: &JobQueue) -> String {
    match jq.namespace().as_deref() {
        None | Some("default") => jq.name_any(),
        Some(ns) => format!("{ns}/{}", jq.name_any()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn jq(workers: serde_json::Value) -> JobQueue {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {"workers": workers},
        }))
        .unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_first_container_runs_with_the_injected_variables() {
        let q = jq(serde_json::json!({"template": {"spec": {
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {"name": "w", "image": "ignored", "command": ["python3", "-u"], "args": ["worker.py", "$(MODE)"],
             "env": [{"name": "MODE", "value": "fast"}, {"name": "URL2", "value": "$(MODE)-x"},
                     {"name": "DYNO", "value": "$(JOBQUEUE_CONSUMER)"}]},
            {"name": "sidecar", "command": ["never"]}
        ]}}}));
        let (plan, notes) = plan(&q, "redis://127.0.0.1:7000", Path::new("/m"));
        assert!(notes.is_empty());
        let Plan::Processes(l) = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(l.grace, Duration::from_secs(5));
        assert_eq!(l.dir, Path::new("/m"));
        let (argv, env) = l.for_consumer("demo-0-ab");
        assert_eq!(argv, ["python3", "-u", "worker.py", "fast"]);
        assert_eq!(
            env,
            vec![
                (
                    "REDIS_URL".to_string(),
                    "redis://127.0.0.1:7000".to_string()
                ),
                ("JOBQUEUE_STREAM".into(), "jobqueue:{default/demo}".into()),
                ("JOBQUEUE_GROUP".into(), "workers".into()),
                ("JOBQUEUE_CONSUMER".into(), "demo-0-ab".into()),
                ("MODE".into(), "fast".into()),
                ("URL2".into(), "fast-x".into()),
                // As in a cluster, the injected variables come first and may be referred to.
                ("DYNO".into(), "demo-0-ab".into()),
            ]
        );
    }

    #[test]
    fn a_command_named_jobqueue_operator_runs_this_binary() {
        let q = jq(serde_json::json!({"template": {"spec": {"containers": [
            {"name": "w", "command": ["jobqueue-operator", "work", "--", "jobqueue-operator"]}]}}}));
        let Plan::Processes(l) = plan(&q, "redis://x", Path::new("/m")).0 else {
            panic!()
        };
        let (argv, _) = l.for_consumer("demo-0-ab");
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            argv,
            [&*exe.to_string_lossy(), "work", "--", "jobqueue-operator"]
        );
    }

    #[test]
    fn defaults_and_working_dir() {
        let q = jq(serde_json::json!({"template": {"spec": {"containers": [
            {"name": "w", "command": ["./run"], "workingDir": "sub"}]}}}));
        let Plan::Processes(l) = plan(&q, "redis://x", Path::new("/m")).0 else {
            panic!()
        };
        assert_eq!(l.grace, DEFAULT_GRACE);
        assert_eq!(l.dir, Path::new("/m/sub"));
    }

    #[test]
    fn what_cannot_run_locally_is_said() {
        let (p, _) = plan(
            &jq(serde_json::json!({"scaleTargetRef": {"name": "mailer"}})),
            "redis://x",
            Path::new("."),
        );
        assert!(
            matches!(&p, Plan::None(why) if why.contains("scaleTargetRef (Deployment mailer)")),
            "{p:?}"
        );
        let q = jq(
            serde_json::json!({"template": {"spec": {"containers": [{"name": "w", "image": "x:1"}]}}}),
        );
        let (p, _) = plan(&q, "redis://x", Path::new("."));
        assert!(
            matches!(&p, Plan::None(why) if why.starts_with("spec.workers.template.spec.containers[0].command: Required value")),
            "{p:?}"
        );
        let q = jq(
            serde_json::json!({"template": {"spec": {"containers": [{"name": "w", "command": ["w"],
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}}),
        );
        let (p, notes) = plan(&q, "redis://x", Path::new("."));
        assert!(matches!(p, Plan::Processes(ref l) if !l.env.iter().any(|(k, _)| k == "S")));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("env[0] (S): valueFrom"), "{notes:?}");
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let e = env(&[("A", "1"), ("B", "two"), ("A", "3")]);
        for (input, want) in [
            ("$(A)", "3"),
            ("x$(B)y", "xtwoy"),
            ("$(C)", "$(C)"),
            ("$$(A)", "$(A)"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("cost: 5$", "cost: 5$"),
            ("", ""),
        ] {
            assert_eq!(expand(input, &e), want, "{input}");
        }
    }

    proptest! {
        #[test]
        fn text_without_dollars_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(expand(&s, &env(&[("A", "1")])), s);
        }

        #[test]
        fn undefined_references_survive(name in "[A-Z_]{1,8}", pre in "[a-z ]*", post in "[a-z ]*") {
            let input = format!("{pre}$({name}){post}");
            prop_assert_eq!(expand(&input, &[]), input);
        }
    }
}

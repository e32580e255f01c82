//! The real `kubectl` against the test API server: it applies the project's CRDs and example
//! manifests (client-side and server-side apply), shows the JobQueue printer columns, describes
//! and deletes, and prints the field error for every bad manifest in `examples/bad/`.
//!
//! Every test skips, saying so, when `kubectl` is not on PATH. Each kubectl run gets its own
//! discovery cache directory and a request timeout, so no state leaks between runs.

use std::path::{Path, PathBuf};

use jobqueue_test_support::apiserver::TestApiServer;
use jobqueue_test_support::kubectl::Kubectl;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use serde_json::json;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn documents(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

#[tokio::test]
async fn kubectl_applies_the_crds_and_every_example() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(
        &server,
        "kubectl_apply::kubectl_applies_the_crds_and_every_example",
    ) else {
        return;
    };
    let k = k.in_dir(Path::new(ROOT));
    let version = k.ok(&["version"]).await;
    assert!(version.contains("Server Version: v1.34"), "{version}");

    let out = k.ok(&["apply", "-f", "crds/"]).await;
    assert!(out.contains("jobqueues.jobqueue.io created"), "{out}");
    let out = k.ok(&["apply", "--server-side", "-f", "crds/"]).await;
    assert!(
        out.contains("jobqueues.jobqueue.io serverside-applied"),
        "{out}"
    );

    let mut examples = yaml_files("examples");
    examples.extend(yaml_files("examples/quickstart"));
    assert!(!examples.is_empty());
    // Namespaces the examples live in, created first as a user would.
    let mut namespaces: Vec<String> = examples
        .iter()
        .flat_map(|f| documents(f))
        .filter_map(|d| d["metadata"]["namespace"].as_str().map(str::to_string))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    // `kubectl create` sends built-ins as protobuf.
    for ns in namespaces.iter().filter(|n| *n != "default") {
        k.ok(&["create", "namespace", ns]).await;
    }
    for file in &examples {
        let path = file.to_str().unwrap();
        // Client-side apply, then server-side apply over it (taking over the fields).
        k.ok(&["apply", "-f", path]).await;
        let again = k.ok(&["apply", "-f", path]).await;
        assert!(again.contains("unchanged"), "{path}: {again}");
        k.ok(&["apply", "--server-side", "--force-conflicts", "-f", path])
            .await;
        for doc in documents(file) {
            // The singular form as users type it (`kubectl describe jobqueue emails`): it
            // breaks if a CRD category ever shadows the singular name.
            let kind = doc["kind"].as_str().unwrap().to_lowercase();
            let name = doc["metadata"]["name"].as_str().unwrap();
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            let got = k.ok(&["get", &kind, name, "-n", ns, "-o", "name"]).await;
            assert!(got.trim().ends_with(&format!("/{name}")), "{path}: {got}");
        }
    }
}

#[tokio::test]
async fn kubectl_gets_describes_and_deletes_jobqueues() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(
        &server,
        "kubectl_apply::kubectl_gets_describes_and_deletes_jobqueues",
    ) else {
        return;
    };
    let k = k.in_dir(Path::new(ROOT));
    k.ok(&["apply", "-f", "crds/"]).await;
    let out = k
        .ok(&[
            "create",
            "secret",
            "generic",
            "redis",
            "--from-literal=url=redis://r:6379",
        ])
        .await;
    assert!(out.contains("secret/redis created"), "{out}");
    let url = k
        .ok(&["get", "secret", "redis", "-o", "jsonpath={.data.url}"])
        .await;
    assert_eq!(url, "cmVkaXM6Ly9yOjYzNzk=", "base64 of the URL");
    let secrets = k.ok(&["get", "secrets"]).await;
    let row: Vec<&str> = secrets
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..3],
        ["redis", "Opaque", "1"],
        "NAME TYPE DATA: {secrets}"
    );
    k.ok(&["apply", "-f", "examples/quickstart/"]).await;

    // The operator's status write, then what `kubectl get` shows of it.
    let gvk = GroupVersionKind::gvk("jobqueue.io", "v1alpha1", "JobQueue");
    let api: Api<DynamicObject> =
        Api::default_namespaced_with(server.client(), &ApiResource::from_gvk(&gvk));
    let status = json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue", "status": {
        "lag": 4211, "pending": 37, "replicas": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "ok",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let q = api
        .patch_status(
            "emails",
            &PatchParams::apply("jobqueue-operator").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();

    let table = k.ok(&["get", "jobqueues"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "LAG", "PENDING", "REPLICAS", "READY", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["emails", "4211", "37", "3", "True"], "{table}");
    let short = k.ok(&["get", "jq"]).await;
    assert_eq!(short.lines().count(), 2, "{short}");

    // describe shows the object and the events the operator records about it (through
    // events.k8s.io, found by kubectl through core Events and field selectors).
    let recorder = Recorder::new(
        server.client(),
        Reporter {
            controller: "jobqueue-operator".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("jobqueue.io/v1alpha1".into()),
        kind: Some("JobQueue".into()),
        name: Some("emails".into()),
        namespace: Some("default".into()),
        uid: q.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Scaled".into(),
        note: Some("scaled 2 → 3: backlog 4248 > 2 × 100".into()),
        action: "Scale".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    let described = k.ok(&["describe", "jobqueues", "emails"]).await;
    assert!(
        described.contains("Name:") && described.contains("emails"),
        "{described}"
    );
    assert!(
        described.contains("Target Per Replica:  100"),
        "{described}"
    );
    assert!(
        described.contains("Lag:") && described.contains("4211"),
        "{described}"
    );
    assert!(
        described.contains("Scaled") && described.contains("backlog 4248"),
        "{described}"
    );

    let out = k.ok(&["delete", "jobqueues", "emails"]).await;
    assert!(out.contains("deleted"), "{out}");
    let gone = k.run(&["get", "jobqueues", "emails"]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    let out = k
        .ok(&["delete", "-f", "examples/quickstart/", "--ignore-not-found"])
        .await;
    assert!(out.contains("deleted"), "{out}");
}

#[tokio::test]
async fn kubectl_shows_the_field_error_for_every_bad_manifest() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(
        &server,
        "kubectl_apply::kubectl_shows_the_field_error_for_every_bad_manifest",
    ) else {
        return;
    };
    let k = k.in_dir(Path::new(ROOT));
    k.ok(&["apply", "-f", "crds/"]).await;
    let bad = yaml_files("examples/bad");
    assert!(!bad.is_empty());
    for file in &bad {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect:"))
            .unwrap_or_else(|| panic!("{} has no '# expect: <field>' line", file.display()))
            .trim()
            .to_string();
        // `create` sends even a nameless object to the server, so the server's answer shows.
        let out = k.run(&["create", "-f", file.to_str().unwrap()]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        // A version no CRD serves is refused by kubectl itself, before any request.
        let client_side = expect == "apiVersion" && stderr.contains("no matches for kind");
        assert!(
            stderr.contains(&expect) || client_side,
            "{}: kubectl did not show {expect:?}:\n{stderr}",
            file.display()
        );
    }
    // apply shows it in the form people see.
    let out = k
        .run(&["apply", "-f", "examples/bad/max-below-min-replicas.yaml"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("The JobQueue \"max-below-min\" is invalid: spec.scaling.maxReplicas"),
        "{stderr}"
    );
    // Nothing bad was stored.
    let listed = k
        .ok(&["get", "jobqueues,schedules", "-A", "-o", "name"])
        .await;
    assert!(listed.trim().is_empty(), "{listed}");
}

#[tokio::test]
async fn kubectl_get_watch_prints_rows_as_objects_change() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(
        &server,
        "kubectl_apply::kubectl_get_watch_prints_rows_as_objects_change",
    ) else {
        return;
    };
    let k = k.in_dir(Path::new(ROOT));
    k.ok(&["apply", "-f", "crds/"]).await;
    k.ok(&["apply", "-f", "examples/quickstart/jobqueue.yaml"])
        .await;
    let mut child = k
        .command(&["get", "jobqueues", "--watch"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = std::time::Duration::from_secs(20);
    let mut next_line = async || {
        tokio::time::timeout(deadline, lines.next_line())
            .await
            .expect("kubectl printed within the deadline")
            .unwrap()
            .expect("kubectl is still running")
    };
    let header = next_line().await;
    assert!(
        header
            .split_whitespace()
            .eq(["NAME", "LAG", "PENDING", "REPLICAS", "READY", "AGE"]),
        "{header}"
    );
    assert!(next_line().await.starts_with("emails"));
    // kubectl watches from its list's resourceVersion, so this change reaches it even if the
    // watch request is not open yet.
    k.ok(&["label", "jobqueues", "emails", "team=mail"]).await;
    let changed = next_line().await;
    assert!(changed.starts_with("emails"), "{changed}");
    child.kill().await.unwrap();
}

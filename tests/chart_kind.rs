//! The kind suite's manifests (tests/kind/) cannot be run here, so they are at least checked:
//! the real kubectl applies them (server-side dry run, strict field validation) to the test API
//! server serving the chart's CRDs, so a typo or a field the CRD rejects fails here, not an
//! hour into a CI run. The JobQueue NOTES.txt shows a new user is checked the same way. Skips,
//! saying so, when kubectl is not on PATH.

#[path = "chart/helm.rs"]
mod helm;

use jobqueue_test_support::apiserver::TestApiServer;
use jobqueue_test_support::tools;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

fn kubectl(server: &TestApiServer, cache: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .arg("--cache-dir")
        .arg(cache)
        .arg("--request-timeout=20s")
        .args(args)
        .current_dir(helm::root())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl")
}

/// The manifest between `<<'YAML'` and `YAML` in NOTES.txt, de-indented.
fn notes_manifest(notes: &str) -> String {
    let start = notes
        .find("<<'YAML'\n")
        .expect("NOTES.txt shows a manifest")
        + 8;
    let body = &notes[start..];
    let end = body
        .find("\n     YAML")
        .expect("the manifest ends with YAML");
    let lines: Vec<&str> = body[..end].lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for l in lines {
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    assert!(out.contains("kind: JobQueue"), "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_suite_and_notes_manifests_are_valid_for_the_chart_crds() {
    if !tools::require_kubectl("chart_kind::kind_suite_and_notes_manifests_are_valid_for_the_chart_crds") {
        return;
    }
    let server = TestApiServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    for file in helm::files_in(&helm::chart_dir().join("crds")) {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    // The namespace the manifests use (redis.yaml creates it in the real suite).
    let out = kubectl(
        &server,
        cache.path(),
        &["create", "namespace", "jobqueue-e2e"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["tests/kind/redis.yaml", "tests/kind/queues.yaml"] {
        let out = kubectl(
            &server,
            cache.path(),
            &["apply", "--dry-run=server", "--validate=strict", "-f", file],
        );
        assert!(
            out.status.success(),
            "{file} was refused:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // What NOTES.txt tells a new user to apply next is accepted too.
    let notes = helm::render(serde_json::json!({})).notes;
    let example = notes_manifest(&notes);
    let file = cache.path().join("notes.yaml");
    std::fs::write(&file, example).unwrap();
    let out = kubectl(
        &server,
        cache.path(),
        &[
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "the JobQueue in NOTES.txt was refused:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same check can fail: a field the JobQueue schema does not have is refused.
    let bad = cache.path().join("bad.yaml");
    let queues = std::fs::read_to_string(helm::root().join("tests/kind/queues.yaml")).unwrap();
    std::fs::write(
        &bad,
        queues.replacen("targetPerReplica", "targetPerReplicas", 1),
    )
    .unwrap();
    let out = kubectl(
        &server,
        cache.path(),
        &[
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "a misspelt field was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("targetPerReplicas"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! `crds/*.yaml` must be exactly what `jobqueue-operator crd` prints, so what users apply (and
//! what the Helm chart ships) never drifts from the types the operator is compiled with.

use std::process::Command;

const REGENERATE: &str = "cargo run -- crd --output-dir crds";

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; regenerate with `{REGENERATE}`"))
}

#[test]
fn crd_files_match_the_crd_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobqueue-operator"))
        .arg("crd")
        .output()
        .expect("run jobqueue-operator crd");
    assert!(
        out.status.success(),
        "crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let files = format!(
        "{}---\n{}",
        read("crds/jobqueue.yaml"),
        read("crds/schedule.yaml")
    );
    assert!(
        printed == files,
        "crds/jobqueue.yaml and crds/schedule.yaml differ from `jobqueue-operator crd`; regenerate with `{REGENERATE}`"
    );
}

#[test]
fn crd_files_are_v1_crds_of_our_group() {
    for (file, plural, kind) in [
        ("crds/jobqueue.yaml", "jobqueues", "JobQueue"),
        ("crds/schedule.yaml", "schedules", "Schedule"),
    ] {
        let doc: serde_yaml::Value = serde_yaml::from_str(&read(file)).expect("valid YAML");
        assert_eq!(doc["apiVersion"], "apiextensions.k8s.io/v1", "{file}");
        assert_eq!(doc["kind"], "CustomResourceDefinition", "{file}");
        assert_eq!(
            doc["metadata"]["name"],
            format!("{plural}.jobqueue.io").as_str(),
            "{file}"
        );
        assert_eq!(doc["spec"]["names"]["kind"], kind, "{file}");
        let version = &doc["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["served"], true);
        assert_eq!(version["storage"], true);
        assert!(
            version["subresources"]["status"].is_mapping(),
            "{file}: status subresource"
        );
    }
}

/// The CRDs pass Kubernetes' own schema for apiextensions.k8s.io/v1 (PyPI `kubernetes-validate`,
/// installed into target/venv by `scripts/python-venv`, which the test command runs first).
#[test]
fn crd_files_pass_kubernetes_validate() {
    let tool = format!(
        "{}/target/venv/bin/kubernetes-validate",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(
        std::path::Path::new(&tool).exists(),
        "{tool} is missing: run `scripts/python-venv` (scripts/test does) to install kubernetes-validate"
    );
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.34.0"])
        .arg(format!("{}/crds/jobqueue.yaml", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("{}/crds/schedule.yaml", env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate rejected the CRDs:\n{text}"
    );
    assert_eq!(
        text.matches("passed for resource customresourcedefinition")
            .count(),
        2,
        "{text}"
    );
}

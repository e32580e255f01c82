//! Runs `tests/chart/chart.py` (the real Helm library through helm-python-sdk, and
//! kubernetes-validate) for the chart tests, and small helpers to look into rendered objects.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

use serde_json::{Value, json};

/// Release name and namespace every case is rendered with.
pub const RELEASE: &str = "jq";
pub const NAMESPACE: &str = "jobqueue-system";
/// The Kubernetes version rendered objects are validated against.
pub const KUBERNETES: &str = "1.34";

/// One rendering of the chart.
#[derive(Debug)]
pub struct Rendered {
    /// Why Helm refused the values (schema or a template's `fail`), if it did.
    pub error: Option<String>,
    pub objects: Vec<Value>,
    pub notes: String,
    /// Schema violations found by kubernetes-validate.
    pub problems: Vec<String>,
    /// `Kind/name` of objects kubernetes-validate has no schema for.
    pub unvalidated: Vec<String>,
}

/// What chart.py answered.
#[derive(Debug)]
pub struct Answer {
    pub lint: Option<Value>,
    /// Problems of the chart's CRDs.
    pub crds: Vec<String>,
    pub cases: Vec<Rendered>,
}

/// The repository's root directory.
pub fn root() -> PathBuf {
    crate::repo_dir().to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    root().join("charts/jobqueue-operator")
}

fn python() -> PathBuf {
    static VENV: Once = Once::new();
    VENV.call_once(|| {
        let status = Command::new(root().join("scripts/python-venv"))
            .status()
            .expect("run scripts/python-venv");
        assert!(status.success(), "scripts/python-venv failed");
    });
    root().join("target/venv/bin/python")
}

/// Renders the chart once per entry of `values` (and lints it when `lint`).
pub fn run(lint: bool, values: &[Value]) -> Answer {
    let request = json!({
        "chart": chart_dir(),
        "release": RELEASE,
        "namespace": NAMESPACE,
        "kubernetes": KUBERNETES,
        "lint": lint,
        "cases": values.iter().map(|v| json!({"values": v})).collect::<Vec<_>>(),
    });
    let mut child = Command::new(python())
        .arg(root().join("tests/chart/chart.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/chart/chart.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let out = child.wait_with_output().expect("wait for chart.py");
    assert!(
        out.status.success(),
        "chart.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("chart.py prints JSON");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Answer {
        lint: answer.get("lint").filter(|l| !l.is_null()).cloned(),
        crds: strings(&answer["crds"]),
        cases: answer["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| Rendered {
                error: c["error"].as_str().map(str::to_string),
                objects: c["objects"].as_array().cloned().unwrap_or_default(),
                notes: c["notes"].as_str().unwrap_or_default().to_string(),
                problems: strings(&c["problems"]),
                unvalidated: strings(&c["unvalidated"]),
            })
            .collect(),
    }
}

/// Renders one set of values that must be accepted.
pub fn render(values: Value) -> Rendered {
    let mut answer = run(false, &[values]);
    let case = answer.cases.remove(0);
    if let Some(e) = &case.error {
        panic!("the chart refused the values: {e}");
    }
    case
}

impl Rendered {
    /// Objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
        let kind = kind.to_string();
        self.objects
            .iter()
            .filter(move |o| o["kind"] == kind.as_str())
    }

    /// The single object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name:?} in {:#?}", self.names()))
    }

    /// `Kind/namespace/name` of every object.
    pub fn names(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    /// The operator's Deployment (there is exactly one).
    pub fn deployment(&self) -> &Value {
        let all: Vec<_> = self.of_kind("Deployment").collect();
        assert_eq!(all.len(), 1, "{:#?}", self.names());
        all[0]
    }

    /// The operator container.
    pub fn container(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]["containers"][0]
    }

    /// The operator container's env var `name`.
    pub fn env(&self, name: &str) -> Option<&Value> {
        self.container()["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
    }
}

/// Files directly in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

//! The real `kubectl`, run against a test API server: each instance has its own discovery
//! cache directory and every run a request timeout, so no state leaks between runs, and the
//! caller's `KUBECONFIG` never applies.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::apiserver::TestApiServer;
use crate::tools;

/// kubectl pointed at one test API server.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    dir: Option<PathBuf>,
}

impl Kubectl {
    /// `None` when kubectl is not installed (a failure under `CI=true`, see [`tools`]);
    /// `test` names the test for the skip list.
    pub fn new(server: &TestApiServer, test: &str) -> Option<Self> {
        if !tools::require_kubectl(test) {
            return None;
        }
        Some(Kubectl {
            kubeconfig: server.kubeconfig().to_path_buf(),
            cache: tempfile::tempdir().expect("a kubectl cache directory"),
            dir: None,
        })
    }

    /// Runs kubectl in `dir` (relative manifest paths resolve there).
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The kubectl command with `args`, ready to run or spawn (for a `--watch` that streams).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG");
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Runs kubectl with `args` and a request timeout, whatever its exit status.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(&[&["--request-timeout=20s"], args].concat())
            .output()
            .await
            .expect("run kubectl")
    }

    /// Runs and insists on success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
    }

    /// `kubectl get KIND NAME -o json`, parsed.
    pub async fn get_json(&self, kind: &str, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["get", kind, name, "-o", "json"]).await)
            .expect("kubectl -o json prints JSON")
    }
}

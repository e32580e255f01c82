//! The operator's surroundings for the benchmarks that run the real binary: the test API
//! server (in this process) with the project's CRDs, and `jobqueue-operator run` as a child
//! process against it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobqueue_test_support::apiserver::TestApiServer;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

/// The test API server with the JobQueue and Schedule CRDs registered.
pub struct Cluster {
    pub server: TestApiServer,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let server = TestApiServer::start().await;
        let client = server.client();
        server.install_project_crds().await;
        Cluster {
            server,
            client,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Starts `jobqueue-operator run` (the release binary cargo built for this benchmark).
    pub fn operator(&self, redis_url: &str, name: &str) -> Operator {
        let log = self.dir.path().join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("operator log file");
        // A profiler may wrap the binary (`BENCH_OPERATOR_WRAPPER="heaptrack -o DIR/op"`); the
        // process measured is then the wrapper's, so only the profile counts.
        let binary = env!("CARGO_BIN_EXE_jobqueue-operator");
        let wrapper = std::env::var("BENCH_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("run")
            .args(["--redis", redis_url])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--identity", name])
            .env("KUBECONFIG", self.server.kubeconfig())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("REDIS_URL")
            .env_remove("WATCH_NAMESPACES")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting the jobqueue-operator binary");
        Operator {
            child: Some(child),
            log,
        }
    }

    pub fn api(&self, kind: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("jobqueue.io", "v1alpha1", kind);
        Api::namespaced_with(self.client.clone(), "default", &ApiResource::from_gvk(&gvk))
    }

    /// Creates a JobQueue or Schedule in `default`.
    pub async fn create(&self, kind: &str, name: &str, spec: serde_json::Value) {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        self.api(kind)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {name}: {e}"));
    }

    /// How many objects of `kind` report `Ready=True` for their current generation.
    pub async fn ready_count(&self, kind: &str) -> usize {
        let list = self
            .api(kind)
            .list(&Default::default())
            .await
            .expect("listing");
        list.items.iter().filter(|o| is_ready(o)).count()
    }
}

fn is_ready(obj: &DynamicObject) -> bool {
    let status = obj.data.get("status");
    let observed = status
        .and_then(|s| s.get("observedGeneration"))
        .and_then(|g| g.as_i64());
    let ready = status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    ready && observed == obj.metadata.generation
}

/// Polls `check` every `every` until it holds; panics after `limit` naming `what`.
pub async fn wait_for<F, Fut>(limit: Duration, every: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// A running operator process; SIGKILLed on drop.
pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
}

impl Operator {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running (for assertion messages).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- operator log ----\n{}---- end ----", self.log());
        }
    }
}

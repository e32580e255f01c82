//! The operator's end-to-end harness: the test API server with the project's CRDs, a
//! recording [`proxy`] between it and the operator, and the real `jobqueue-operator run` binary
//! as a child process.

mod jobs;
mod proxy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::Value;

use crate::apiserver::{TestApiServer, kubeconfig_yaml};
use crate::wait::eventually;
use crate::{operator_binary, target_dir, without_operator_env};
pub use jobs::{Job, jobs, jobs_at_least, redis_conn};
pub use proxy::{Access, classify};

/// The test API server with the project's CRDs installed, and a recording proxy in front of it
/// for the operator. On drop it writes the operator's accesses to
/// `target/rbac-observed/<test>.json`.
pub struct Cluster {
    pub server: TestApiServer,
    /// The test's own client (straight to the server, so it is not recorded).
    pub client: kube::Client,
    test: String,
    accesses: Arc<Mutex<BTreeSet<Access>>>,
    failing_status_writes: Arc<std::sync::atomic::AtomicUsize>,
    kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    stop_proxy: Option<tokio::sync::oneshot::Sender<()>>,
    /// Proxies of [`Cluster::partitionable_operator`]s, stopped with the cluster.
    extra_proxies: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Cuts one operator off from the API server: while set, its requests get no answer and its
/// open watches deliver nothing, as across a network partition; cleared, both resume.
#[derive(Clone, Default)]
pub struct Partition(Arc<std::sync::atomic::AtomicBool>);

impl Partition {
    pub fn cut(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A client straight to the test API server, for a proxy.
fn upstream_client(server: &TestApiServer) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().expect("server URL"));
    config.read_timeout = None; // watches stay open
    kube::Client::try_from(config).expect("proxy client")
}

/// Serves `proxy` on a free loopback port and writes a kubeconfig for it at `path`.
async fn spawn_proxy(
    proxy: proxy::ProxyState,
    path: &std::path::Path,
) -> (PathBuf, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy bind");
    let addr = listener.local_addr().expect("proxy addr");
    let app = axum::Router::new()
        .fallback(proxy::forward)
        .with_state(proxy);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    std::fs::write(path, kubeconfig_yaml(&format!("http://{addr}")))
        .expect("writing the operator's kubeconfig");
    (path.to_path_buf(), stop)
}

impl Cluster {
    pub async fn start(test: &str) -> Self {
        let server = TestApiServer::start().await;
        let client = server.client();
        server.install_project_crds().await;

        let accesses = Arc::new(Mutex::new(BTreeSet::new()));
        let failing_status_writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dir = tempfile::tempdir().expect("temp dir");
        let proxy = proxy::ProxyState {
            client: upstream_client(&server),
            seen: accesses.clone(),
            failing_status_writes: failing_status_writes.clone(),
            partitioned: Partition::default(),
        };
        let (kubeconfig, stop_proxy) = spawn_proxy(proxy, &dir.path().join("kubeconfig")).await;
        Cluster {
            server,
            client,
            test: test.to_string(),
            accesses,
            failing_status_writes,
            kubeconfig,
            dir,
            stop_proxy: Some(stop_proxy),
            extra_proxies: Vec::new(),
        }
    }

    /// Starts `jobqueue-operator run` against this cluster.
    pub fn operator(&self, redis_url: &str, identity: &str, extra: &[&str]) -> Operator {
        self.operator_with(&self.kubeconfig, redis_url, identity, extra)
    }

    /// [`Self::operator`] behind a proxy of its own, which the returned [`Partition`] can cut
    /// off from the API server (the other replicas keep theirs).
    pub async fn partitionable_operator(
        &mut self,
        redis_url: &str,
        identity: &str,
        extra: &[&str],
    ) -> (Operator, Partition) {
        let partition = Partition::default();
        let proxy = proxy::ProxyState {
            client: upstream_client(&self.server),
            seen: self.accesses.clone(),
            failing_status_writes: self.failing_status_writes.clone(),
            partitioned: partition.clone(),
        };
        let path = self.dir.path().join(format!("kubeconfig-{identity}"));
        let (kubeconfig, stop) = spawn_proxy(proxy, &path).await;
        self.extra_proxies.push(stop);
        let operator = self.operator_with(&kubeconfig, redis_url, identity, extra);
        (operator, partition)
    }

    fn operator_with(
        &self,
        kubeconfig: &std::path::Path,
        redis_url: &str,
        identity: &str,
        extra: &[&str],
    ) -> Operator {
        let log = self.dir.path().join(format!("{identity}.log"));
        let stderr = std::fs::File::create(&log).expect("operator log file");
        let child = without_operator_env(&mut Command::new(operator_binary()))
            .arg("run")
            .args(["--redis", redis_url])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--identity", identity])
            .args(["--lease-duration", "6s"])
            .args(["--status-interval", "1s"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn,tower=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting the jobqueue-operator binary");
        Operator {
            child: Some(child),
            log,
            identity: identity.to_string(),
        }
    }

    /// Makes the operator's next `n` status writes fail with a 500 (through its proxy).
    pub fn fail_status_writes(&self, n: usize) {
        self.failing_status_writes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many injected status-write failures are still to come.
    pub fn status_write_failures_left(&self) -> usize {
        self.failing_status_writes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn jobqueues(&self) -> Api<DynamicObject> {
        dynamic(&self.client, "JobQueue")
    }

    pub fn schedules(&self) -> Api<DynamicObject> {
        dynamic(&self.client, "Schedule")
    }

    /// Creates a JobQueue or Schedule `name` in `default`, or in `ns` for `ns/name`.
    pub async fn create(&self, kind: &str, name: &str, spec: Value) -> DynamicObject {
        let (ns, name) = split(name);
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        dynamic_in(&self.client, kind, ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {name}: {e}"))
    }

    /// Waits until `kind/name` (`ns/name` outside `default`) has a condition `type_` with
    /// `status`, with observedGeneration == generation; returns the condition.
    pub async fn condition(
        &self,
        kind: &str,
        name: &str,
        type_: &str,
        status: &str,
        limit: Duration,
    ) -> Condition {
        let (ns, name) = split(name);
        let api = dynamic_in(&self.client, kind, ns);
        eventually(limit, &format!("{kind} {name}: {type_}={status}"), || {
            let api = api.clone();
            async move {
                let obj = api.get(name).await.map_err(|e| e.to_string())?;
                let status_obj = obj.data.get("status").cloned().unwrap_or(Value::Null);
                let observed = status_obj.get("observedGeneration").and_then(Value::as_i64);
                let found = conditions(&obj)
                    .into_iter()
                    .find(|c| c.type_ == type_ && c.status == status);
                match found {
                    Some(c) if observed == obj.metadata.generation => Ok(c),
                    _ => Err(format!("status {status_obj}")),
                }
            }
        })
        .await
    }

    /// Events (events.k8s.io/v1, what kube's Recorder writes) about `kind/name`.
    pub async fn events(&self, kind: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        api.list(&ListParams::default())
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .collect()
    }

    /// Waits for an Event about `kind/name` with `reason` whose note contains every `words`.
    pub async fn event(&self, kind: &str, name: &str, reason: &str, words: &[&str]) -> Event {
        eventually(
            Duration::from_secs(15),
            &format!("a {reason} Event about {kind} {name} saying {words:?}"),
            || async {
                let events = self.events(kind, name).await;
                events
                    .iter()
                    .find(|e| {
                        e.reason.as_deref() == Some(reason)
                            && words
                                .iter()
                                .all(|w| e.note.as_deref().unwrap_or("").contains(w))
                    })
                    .cloned()
                    .ok_or_else(|| {
                        let seen: Vec<_> = events
                            .iter()
                            .map(|e| (e.reason.clone(), e.note.clone()))
                            .collect();
                        format!("{seen:?}")
                    })
            },
        )
        .await
    }

    /// Waits until `kind/name` (`ns/name` outside `default`) no longer exists (its finalizer
    /// ran).
    pub async fn gone(&self, kind: &str, name: &str) {
        let (ns, name) = split(name);
        let api = dynamic_in(&self.client, kind, ns);
        eventually(
            Duration::from_secs(20),
            &format!("{kind} {name} to be deleted"),
            || {
                let api = api.clone();
                async move {
                    match api.get_opt(name).await {
                        Ok(None) => Ok(()),
                        Ok(Some(o)) => Err(format!("still there: {:?}", o.metadata.finalizers)),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await
    }

    /// What the operator accessed so far.
    pub fn accesses(&self) -> BTreeSet<Access> {
        self.accesses.lock().expect("proxy log").clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The RBAC evidence of this test: every distinct access the operator made.
        let dir = target_dir().join("rbac-observed");
        let accesses: Vec<Access> = self.accesses().into_iter().collect();
        if !accesses.is_empty() && std::fs::create_dir_all(&dir).is_ok() {
            let json = serde_json::to_string_pretty(&accesses).expect("json");
            let _ = std::fs::write(dir.join(format!("{}.json", self.test)), json + "\n");
        }
        if let Some(stop) = self.stop_proxy.take() {
            let _ = stop.send(());
        }
    }
}

fn dynamic(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    dynamic_in(client, kind, "default")
}

/// JobQueues or Schedules in namespace `ns`.
pub fn dynamic_in(client: &kube::Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("jobqueue.io", "v1alpha1", kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// `ns/name` as (`ns`, `name`); a bare name is in `default`.
fn split(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or(("default", name))
}

/// The conditions of a JobQueue or Schedule.
pub fn conditions(obj: &DynamicObject) -> Vec<Condition> {
    obj.data
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default()
}

/// A running `jobqueue-operator run`; SIGKILLed on drop (its log is printed if the test fails).
pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    pub identity: String,
}

impl Operator {
    /// Its stderr so far, without terminal colour codes.
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters final-byte
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The address of its HTTP endpoints, once it has logged it.
    pub async fn http_addr(&self) -> SocketAddr {
        eventually(
            Duration::from_secs(20),
            &format!("{} to serve HTTP", self.identity),
            || async {
                let log = self.log();
                // Text (`bound=ADDR`) or JSON (`"bound":"ADDR"`) logs.
                let text = log
                    .split("bound=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next());
                let json = log.lines().find_map(|line| {
                    let v: Value = serde_json::from_str(line).ok()?;
                    v.get("bound")?.as_str().map(str::to_string)
                });
                text.map(str::to_string)
                    .or(json)
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| "no bound address in its log yet".to_string())
            },
        )
        .await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, and reap.
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait (bounded) for a clean exit; returns the exit status.
    pub async fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within 20 s of SIGTERM", self.identity);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            eprintln!(
                "---- operator {} log ----\n{}---- end of operator {} log ----",
                self.identity,
                self.log(),
                self.identity
            );
        }
    }
}

//! Harness of the operator's end-to-end tests: the test API server with the project's CRDs, a
//! recording proxy between it and the operator (so the operator's own API accesses can be told
//! apart from the test's, for the proof that the chart's RBAC grants each request), the real `jobqueue-operator run`
//! binary as a child process, and bounded polling.

#![allow(dead_code)]

use jobqueue_test_support::without_operator_env;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobqueue_test_support::apiserver::{TestApiServer, kubeconfig_yaml};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit` naming `what`
/// (and the last thing `check` reported through `last`).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(last) => last,
        };
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One kind of API access: what an RBAC rule has to allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespaced: bool,
}

/// The access a request path means, or `None` for discovery and other non-resource URLs.
pub fn classify(method: &Method, path: &str, query: &str) -> Option<Access> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    // `namespaces/NS/<resource>...` is namespaced; `namespaces[/NS]` is the Namespace itself.
    let (namespaced, rest) = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub, ..] => (*resource, Some(*name), Some(sub.to_string())),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.as_str(), name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    Some(Access {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource,
        namespaced,
    })
}

type ProxyState = (kube::Client, Arc<Mutex<BTreeSet<Access>>>);

/// Forwards everything to the test API server, noting each resource access first.
async fn forward(State((client, seen)): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(access) = classify(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
    ) {
        seen.lock().expect("proxy log").insert(access);
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(target);
    for (k, v) in &parts.headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let Ok(out) = out.body(kube::client::Body::from(bytes.to_vec())) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    match client.send(out).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.remove(header::CONNECTION);
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The test API server with the project's CRDs installed, and a recording proxy in front of it
/// for the operator. On drop it writes the operator's accesses to
/// `target/rbac-observed/<test>.json`.
pub struct Cluster {
    pub server: TestApiServer,
    /// The test's own client (straight to the server, so it is not recorded).
    pub client: kube::Client,
    test: String,
    accesses: Arc<Mutex<BTreeSet<Access>>>,
    kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    stop_proxy: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Cluster {
    pub async fn start(test: &str) -> Self {
        let server = TestApiServer::start().await;
        let client = server.client();
        server.install_project_crds().await;

        let mut config = kube::Config::new(server.url().parse().expect("server URL"));
        config.read_timeout = None; // watches stay open
        let upstream = kube::Client::try_from(config).expect("proxy client");
        let accesses = Arc::new(Mutex::new(BTreeSet::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state((upstream, accesses.clone()));
        let (stop_proxy, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&format!("http://{addr}")))
            .expect("writing the operator's kubeconfig");
        Cluster {
            server,
            client,
            test: test.to_string(),
            accesses,
            kubeconfig,
            dir,
            stop_proxy: Some(stop_proxy),
        }
    }

    /// Starts `jobqueue-operator run` against this cluster.
    pub fn operator(&self, redis_url: &str, identity: &str, extra: &[&str]) -> Operator {
        let log = self.dir.path().join(format!("{identity}.log"));
        let stderr = std::fs::File::create(&log).expect("operator log file");
        let child =
            without_operator_env(&mut Command::new(env!("CARGO_BIN_EXE_jobqueue-operator")))
                .arg("run")
                .args(["--redis", redis_url])
                .args(["--metrics-addr", "127.0.0.1:0"])
                .args(["--identity", identity])
                .args(["--lease-duration", "6s"])
                .args(["--status-interval", "1s"])
                .args(extra)
                .env("KUBECONFIG", &self.kubeconfig)
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

    pub fn jobqueues(&self) -> Api<DynamicObject> {
        dynamic(&self.client, "JobQueue")
    }

    pub fn schedules(&self) -> Api<DynamicObject> {
        dynamic(&self.client, "Schedule")
    }

    /// Creates a JobQueue or Schedule in `default`.
    pub async fn create(&self, kind: &str, name: &str, spec: Value) -> DynamicObject {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        dynamic(&self.client, kind)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {name}: {e}"))
    }

    /// Waits until `kind/name` has a condition `type_` with `status`, with
    /// observedGeneration == generation; returns the condition.
    pub async fn condition(
        &self,
        kind: &str,
        name: &str,
        type_: &str,
        status: &str,
        limit: Duration,
    ) -> Condition {
        let api = dynamic(&self.client, kind);
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

    /// Waits until `kind/name` no longer exists (its finalizer ran).
    pub async fn gone(&self, kind: &str, name: &str) {
        let api = dynamic(&self.client, kind);
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
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("rbac-observed");
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
    let gvk = GroupVersionKind::gvk("jobqueue.io", "v1alpha1", kind);
    Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk))
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

/// `GET path` over plain HTTP/1.0; returns (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("writing a request");
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .await
        .expect("reading a response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    (code, body.to_string())
}

/// One sample of a Prometheus/OpenMetrics text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the text format (samples and `# TYPE` lines; label values without escapes).
pub fn parse_metrics(text: &str) -> (Vec<Sample>, BTreeSet<String>) {
    let mut samples = Vec::new();
    let mut types = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                types.insert(name.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("unparsable metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, types)
}

/// The value of `name` with (at least) `labels`, if exported.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

/// A plain connection to the test's Redis (not the operator's code path).
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test's redis-server")
}

/// A job read back from a stream.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry_id: String,
    pub id: String,
    pub enqueued_at: i64,
    pub schedule: Option<String>,
    pub scheduled_for: Option<i64>,
}

/// Waits (bounded by `within`) until `stream` holds at least `n` jobs; returns how many.
pub async fn jobs_at_least(
    conn: &redis::aio::MultiplexedConnection,
    stream: &str,
    n: usize,
    within: Duration,
) -> usize {
    eventually(within, &format!("{n} jobs in {stream}"), || {
        let mut conn = conn.clone();
        async move {
            match jobs(&mut conn, stream).await.len() {
                seen if seen >= n => Ok(seen),
                seen => Err(format!("{seen}")),
            }
        }
    })
    .await
}

/// Every entry of `stream`, oldest first.
pub async fn jobs(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<Job> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let field = |name: &str| -> Option<String> {
                e.map
                    .get(name)
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
            };
            Job {
                id: field("id").unwrap_or_default(),
                enqueued_at: field("enqueued_at")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default(),
                schedule: field("schedule"),
                scheduled_for: field("scheduled_for").and_then(|v| v.parse().ok()),
                entry_id: e.id,
            }
        })
        .collect()
}

//! RBAC proven, not guessed: the real operator binary runs against the recording test API
//! server and a real redis-server through every path that touches the Kubernetes API (a queue
//! with a worker template and a Redis URL Secret scaling up and in, queues scaling a user's
//! Deployment and StatefulSet, a Schedule, worker pods coming and going, everything deleted so
//! finalizers run, leader election until SIGTERM releases the Lease). Every request it made
//! must be granted by the chart's rendered RBAC for its ServiceAccount, watching all namespaces
//! (ClusterRole) and watching a list (Roles); granted rules it never used are printed.

use jobqueue_test_support::helm;

use jobqueue_test_support::without_operator_env;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use jobqueue_test_support::apiserver::{RequestRecord, TestApiServer};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

const APPS: &str = "apps";
const DEADLINE: Duration = Duration::from_secs(60);

/// The test's own requests, so that what is left in the server's log is the operator's.
/// Each call is bracketed by the log's length before and after it: the test's request is one
/// record in that range with the given verb and resource (an identical operator request in the
/// same range is indistinguishable and equivalent, so removing either is right).
struct Mine<'a> {
    server: &'a TestApiServer,
    spans: Mutex<Vec<(usize, usize, &'static str, &'static str)>>,
}

impl<'a> Mine<'a> {
    async fn call<T>(
        &self,
        verb: &'static str,
        resource: &'static str,
        request: impl Future<Output = T>,
    ) -> T {
        let before = self.server.requests().len();
        let out = request.await;
        let after = self.server.requests().len();
        self.spans
            .lock()
            .unwrap()
            .push((before, after, verb, resource));
        out
    }

    /// The log without the test's own requests.
    fn operator_requests(&self) -> Vec<RequestRecord> {
        let log = self.server.requests();
        let mut taken = vec![false; log.len()];
        for &(before, after, verb, resource) in self.spans.lock().unwrap().iter() {
            let i = (before..after)
                .find(|&i| !taken[i] && log[i].is(verb, resource))
                .unwrap_or_else(|| {
                    panic!("the test's {verb} {resource} is not in the log at {before}..{after}")
                });
            taken[i] = true;
        }
        log.into_iter()
            .zip(taken)
            .filter(|(_, t)| !t)
            .map(|(r, _)| r)
            .collect()
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("jobqueue.io", "v1alpha1", kind))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": APPS}, "spec": spec,
    }))
    .unwrap()
}

fn is_ready(obj: &DynamicObject) -> bool {
    obj.data["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn worker_pod(name: &str, queue: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": APPS,
                     "labels": {jobqueue_operator::operator::workload::QUEUE_LABEL: queue}},
        "spec": {"containers": [{"name": "worker", "image": "example/worker:1"}]},
    }))
    .unwrap()
}

fn redis_cmd(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connect to the test redis-server")
}

fn enqueue(url: &str, stream: &str, n: usize) {
    let mut con = redis_cmd(url);
    for i in 0..n {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("id")
            .arg(format!("job-{i}"))
            .arg("payload")
            .arg("{}")
            .arg("enqueued_at")
            .arg(0)
            .arg("attempt")
            .arg(1)
            .query(&mut con)
            .unwrap();
    }
}

/// GET `path` on the operator's HTTP port; the status line.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.lines().next().unwrap_or_default().to_string()
}

/// The port the operator bound for its HTTP endpoints (it binds port 0 and logs the
/// address: a port picked here could be taken by a concurrent test's Redis before it binds).
async fn bound_port(log: &std::path::Path) -> u16 {
    eventually(DEADLINE, "the operator to log its HTTP address", || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addr = text.split("bound=").nth(1)?.split_whitespace().next()?;
        addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
    })
    .await
}

/// Starts the operator with the environment the chart's Deployment gives it, pointed at the
/// test server and Redis.
fn start_operator(
    rendered: &helm::Rendered,
    server: &TestApiServer,
    redis_url: &str,
    log: &std::path::Path,
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobqueue-operator"));
    without_operator_env(&mut cmd).arg("run");
    for var in rendered.container()["env"].as_array().unwrap() {
        if let Some(v) = var["value"].as_str() {
            cmd.env(var["name"].as_str().unwrap(), v);
        }
    }
    cmd.env("KUBECONFIG", server.kubeconfig())
        .env("REDIS_URL", redis_url)
        .env("POD_NAME", "jq-jobqueue-operator-0")
        .env("POD_NAMESPACE", helm::NAMESPACE)
        .env("METRICS_ADDR", "127.0.0.1:0")
        // Quicker status writes than the chart's default keep the test short.
        .env("STATUS_INTERVAL", "500ms")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().expect("start the operator binary")
}

/// One permission a request needs: verb, API group, resource (`plural` or `plural/sub`),
/// namespace (`None`: all namespaces or cluster-scoped) and object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// What RBAC checks for a request. A server-side apply that creates its object is authorized
/// as `create` as well as `patch` by Kubernetes (the test server does no authorization, but
/// answers 201 in that case, as the real one does).
fn needs(r: &RequestRecord) -> Vec<Need> {
    let need = |verb: &str| Need {
        verb: verb.to_string(),
        group: r.group.clone(),
        resource: full_resource(&r.resource, &r.subresource),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    };
    let mut out = vec![need(&r.verb)];
    if r.verb == "patch" && r.patch_type.as_deref() == Some("apply") && r.code == 201 {
        out.push(need("create"));
    }
    out
}

/// A rule granted to the operator's ServiceAccount, where it applies (`None`: every namespace
/// and cluster-scoped requests), and the role it came from.
struct Grant {
    namespace: Option<String>,
    role: String,
    rule: Value,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule bound to the ServiceAccount `sa` in `sa_ns`, resolved through the bindings.
fn grants(r: &helm::Rendered, sa: &str, sa_ns: &str) -> Vec<Grant> {
    let binds_us = |b: &Value| {
        b["subjects"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            })
        })
    };
    let mut out = Vec::new();
    for b in r
        .of_kind("ClusterRoleBinding")
        .chain(r.of_kind("RoleBinding"))
    {
        if !binds_us(b) {
            continue;
        }
        let namespace = b["metadata"]["namespace"].as_str().map(str::to_string);
        let role_kind = b["roleRef"]["kind"].as_str().unwrap();
        let role_name = b["roleRef"]["name"].as_str().unwrap();
        let role = r
            .of_kind(role_kind)
            .find(|o| {
                o["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || o["metadata"]["namespace"] == b["metadata"]["namespace"])
            })
            .unwrap_or_else(|| panic!("{role_kind} {role_name} is bound but not rendered"));
        for rule in role["rules"].as_array().unwrap() {
            out.push(Grant {
                namespace: namespace.clone(),
                role: format!("{role_kind}/{role_name}"),
                rule: rule.clone(),
            });
        }
    }
    out
}

/// Whether `rule` allows `verb` on `group`/`resource[/sub]` (named `name`), as RBAC decides.
fn allows(rule: &Value, verb: &str, group: &str, resource: &str, name: Option<&str>) -> bool {
    let has = |field: &str, want: &str| strings(&rule[field]).iter().any(|v| v == want || v == "*");
    let sub_wildcard = resource
        .split_once('/')
        .is_some_and(|(_, sub)| strings(&rule["resources"]).contains(&format!("*/{sub}")));
    let names = strings(&rule["resourceNames"]);
    has("verbs", verb)
        && has("apiGroups", group)
        && (has("resources", resource) || sub_wildcard)
        && (names.is_empty() || name.is_some_and(|n| names.iter().any(|x| x == n)))
}

fn full_resource(resource: &str, sub: &Option<String>) -> String {
    match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    }
}

/// Kills the operator when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_every_request_the_operator_makes() {
    rbac_proven(json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_every_request_when_watching_listed_namespaces() {
    rbac_proven(json!({"watchNamespaces": [APPS]})).await;
}

/// Runs the scenario with the operator configured as the chart renders with `values`, then
/// checks its requests against the RBAC rendered with the same values.
async fn rbac_proven(values: Value) {
    println!("the chart rendered with {values}:");
    let rendered = helm::render(values);
    let server = TestApiServer::start().await;
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let client = server.client();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [helm::NAMESPACE, APPS] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in helm::files_in(&helm::chart_dir().join("crds")) {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    server.clear_requests();

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("operator.log");
    let mut operator = Operator(start_operator(&rendered, &server, &redis_url, &log_path));
    let mine = Mine {
        server: &server,
        spans: Mutex::new(Vec::new()),
    };
    let outcome = AssertUnwindSafe(tokio::time::timeout(
        Duration::from_secs(180),
        scenario(
            &mine,
            &client,
            &redis_url,
            &rendered,
            &log_path,
            &mut operator.0,
        ),
    ))
    .catch_unwind()
    .await;
    drop(operator);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the scenario timed out; operator log:\n{}", log()),
        Err(panic) => {
            eprintln!("operator log:\n{}", log());
            std::panic::resume_unwind(panic);
        }
    }

    let needed: BTreeSet<Need> = mine.operator_requests().iter().flat_map(needs).collect();
    let sa = helm::RELEASE.to_string() + "-jobqueue-operator";
    let grants = grants(&rendered, &sa, helm::NAMESPACE);
    assert!(!grants.is_empty(), "nothing is bound to {sa}");

    println!("the operator needed (verb group resource[/sub] namespace):");
    let mut printed = BTreeSet::new();
    let mut missing = Vec::new();
    for n in &needed {
        let namespace = n.namespace.as_deref().unwrap_or("(all namespaces)");
        let line = format!("{} {:?} {} in {namespace}", n.verb, n.group, n.resource);
        let granted = grants.iter().any(|g| {
            (g.namespace.is_none() || g.namespace == n.namespace)
                && allows(&g.rule, &n.verb, &n.group, &n.resource, n.name.as_deref())
        });
        if !granted {
            missing.push(line.clone());
        }
        if printed.insert(line.clone()) {
            println!("  {line}");
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "the chart's RBAC does not grant what the operator does:\n  {}",
        missing.join("\n  ")
    );

    // Everything granted that the operator never did: candidates for removal (or paths the
    // scenario does not reach, such as scaleTargetRef kinds other than Deployment).
    println!("granted but never used by the operator in this scenario:");
    let mut unused = 0;
    for g in &grants {
        for group in strings(&g.rule["apiGroups"]) {
            for res in strings(&g.rule["resources"]) {
                for verb in strings(&g.rule["verbs"]) {
                    let used = needed.iter().any(|n| {
                        (g.namespace.is_none() || g.namespace == n.namespace)
                            && n.verb == verb
                            && n.group == group
                            && n.resource == res
                    });
                    if !used {
                        unused += 1;
                        println!(
                            "  {verb} {group:?} {res} ({}{})",
                            g.role,
                            g.namespace
                                .as_deref()
                                .map(|n| format!(" in {n}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    if unused == 0 {
        println!("  (none)");
    }
}

/// The steps (a failed one panics with the reason).
async fn scenario(
    mine: &Mine<'_>,
    client: &kube::Client,
    redis_url: &str,
    rendered: &helm::Rendered,
    log_path: &std::path::Path,
    operator: &mut Child,
) {
    let metrics_port = bound_port(log_path).await;
    let queues: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), APPS, &resource("JobQueue"));
    let schedules: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), APPS, &resource("Schedule"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), APPS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), APPS);
    let pp = PostParams::default();

    // The chart's probes point at endpoints the operator serves.
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = rendered.container()[probe]["httpGet"]["path"]
            .as_str()
            .unwrap();
        eventually(
            DEADLINE,
            &format!("{probe} {path} to answer 200"),
            || async {
                http_get(metrics_port, path)
                    .await
                    .contains(" 200")
                    .then_some(())
            },
        )
        .await;
    }

    // A queue with a worker template, its Redis URL in a Secret, scaling from the backlog.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "redis", "namespace": APPS},
        "stringData": {"url": redis_url},
    }))
    .unwrap();
    mine.call("create", "secrets", secrets.create(&pp, &secret))
        .await
        .unwrap();
    let emails = object(
        "JobQueue",
        "emails",
        json!({
            "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
            "workers": {"template": {"spec": {"containers": [
                {"name": "worker", "image": "example/worker:1"}]}}},
            "scaling": {"minReplicas": 1, "maxReplicas": 4, "targetPerReplica": 2,
                        "pollInterval": "200ms", "scaleDown": {"stabilizationWindow": "0s"}},
            "deletionPolicy": "Delete",
        }),
    );
    mine.call("create", "jobqueues", queues.create(&pp, &emails))
        .await
        .unwrap();
    let emails = eventually(DEADLINE, "emails to be Ready", || async {
        let q = mine
            .call("get", "jobqueues", queues.get("emails"))
            .await
            .ok()?;
        is_ready(&q).then_some(q)
    })
    .await;
    let stream = emails.data["status"]["stream"]
        .as_str()
        .unwrap()
        .to_string();
    let replicas = |name: &'static str| {
        let deployments = deployments.clone();
        async move {
            mine.call("get", "deployments", deployments.get(name))
                .await
                .ok()
                .and_then(|d| d.spec?.replicas)
        }
    };
    eventually(DEADLINE, "the worker Deployment", || async {
        replicas("emails-workers").await
    })
    .await;

    // Worker pods (no ReplicaSet controller here: the test plays it) and a backlog of 8 jobs.
    for name in ["emails-workers-a", "emails-workers-b"] {
        mine.call(
            "create",
            "pods",
            pods.create(&pp, &worker_pod(name, "emails")),
        )
        .await
        .unwrap();
    }
    enqueue(redis_url, &stream, 8);
    eventually(DEADLINE, "scale-up to 4 workers", || async {
        (replicas("emails-workers").await? == 4).then_some(())
    })
    .await;

    // Worker a takes all 8 and finishes 7: backlog 1, so the queue scales in, after ranking
    // the pods so that the busy one is removed last.
    {
        let mut con = redis_cmd(redis_url);
        let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg("emails-workers-a")
            .arg("COUNT")
            .arg(8)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query(&mut con)
            .unwrap();
        let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 8);
        let _: i64 = redis::cmd("XACK")
            .arg(&stream)
            .arg("workers")
            .arg(&ids[1..])
            .query(&mut con)
            .unwrap();
    }
    eventually(DEADLINE, "scale-in to 1 worker", || async {
        (replicas("emails-workers").await? == 1).then_some(())
    })
    .await;
    let cost = |pod: Pod| -> i64 {
        pod.metadata
            .annotations
            .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost").cloned())
            .and_then(|c| c.parse().ok())
            .unwrap_or(i64::MIN)
    };
    let busy = cost(
        mine.call("get", "pods", pods.get("emails-workers-a"))
            .await
            .unwrap(),
    );
    let idle = cost(
        mine.call("get", "pods", pods.get("emails-workers-b"))
            .await
            .unwrap(),
    );
    assert!(busy > idle, "busy worker cost {busy}, idle {idle}");

    // The busy worker's pod goes away: its job is handed out again (not the API's business,
    // but the operator watches pods for it).
    mine.call(
        "delete",
        "pods",
        pods.delete("emails-workers-a", &DeleteParams::default()),
    )
    .await
    .unwrap();

    // A queue that only scales the user's own Deployment.
    let user_deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "thumbnail-worker", "namespace": APPS},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "thumbnails"}},
                 "template": {"metadata": {"labels": {"app": "thumbnails"}},
                              "spec": {"containers": [{"name": "w", "image": "example/thumbs:1"}]}}},
    }))
    .unwrap();
    mine.call(
        "create",
        "deployments",
        deployments.create(&pp, &user_deployment),
    )
    .await
    .unwrap();
    let thumbnails = object(
        "JobQueue",
        "thumbnails",
        json!({
            "redis": {"url": redis_url},
            "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": "thumbnail-worker"}},
            "scaling": {"maxReplicas": 3, "targetPerReplica": 1, "pollInterval": "200ms"},
        }),
    );
    mine.call("create", "jobqueues", queues.create(&pp, &thumbnails))
        .await
        .unwrap();
    let thumbnails = eventually(DEADLINE, "thumbnails to be Ready", || async {
        let q = mine
            .call("get", "jobqueues", queues.get("thumbnails"))
            .await
            .ok()?;
        is_ready(&q).then_some(q)
    })
    .await;
    let thumbs_stream = thumbnails.data["status"]["stream"]
        .as_str()
        .unwrap()
        .to_string();
    enqueue(redis_url, &thumbs_stream, 2);
    eventually(DEADLINE, "the user's Deployment scaled to 2", || async {
        (replicas("thumbnail-worker").await? == 2).then_some(())
    })
    .await;

    // And one scaling a StatefulSet (the chart's default rbac.scaleTargets).
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), APPS);
    let user_statefulset: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "report-worker", "namespace": APPS},
        "spec": {"replicas": 0, "serviceName": "report-worker",
                 "selector": {"matchLabels": {"app": "reports"}},
                 "template": {"metadata": {"labels": {"app": "reports"}},
                              "spec": {"containers": [{"name": "w", "image": "example/reports:1"}]}}},
    }))
    .unwrap();
    mine.call(
        "create",
        "statefulsets",
        statefulsets.create(&pp, &user_statefulset),
    )
    .await
    .unwrap();
    let reports = object(
        "JobQueue",
        "reports",
        json!({
            "redis": {"url": redis_url},
            "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                           "name": "report-worker"}},
            "scaling": {"maxReplicas": 2, "targetPerReplica": 1, "pollInterval": "200ms"},
        }),
    );
    mine.call("create", "jobqueues", queues.create(&pp, &reports))
        .await
        .unwrap();
    let reports = eventually(DEADLINE, "reports to be Ready", || async {
        let q = mine
            .call("get", "jobqueues", queues.get("reports"))
            .await
            .ok()?;
        is_ready(&q).then_some(q)
    })
    .await;
    enqueue(
        redis_url,
        reports.data["status"]["stream"].as_str().unwrap(),
        1,
    );
    eventually(DEADLINE, "the user's StatefulSet scaled to 1", || async {
        let s = mine
            .call("get", "statefulsets", statefulsets.get("report-worker"))
            .await
            .ok()?;
        (s.spec?.replicas? == 1).then_some(())
    })
    .await;

    // A queue on the operator's default Redis with a worker template: the URL reaches the
    // workers through a Secret the operator writes, never as plain env.
    let digests = object(
        "JobQueue",
        "digests",
        json!({"workers": {"template": {"spec": {"containers": [
            {"name": "worker", "image": "example/digests:1"}]}}}}),
    );
    mine.call("create", "jobqueues", queues.create(&pp, &digests))
        .await
        .unwrap();
    eventually(DEADLINE, "digests to be Ready", || async {
        let q = mine
            .call("get", "jobqueues", queues.get("digests"))
            .await
            .ok()?;
        is_ready(&q).then_some(())
    })
    .await;
    let url_secret = mine
        .call("get", "secrets", secrets.get("digests-workers-redis"))
        .await
        .expect("the operator wrote the workers' URL Secret");
    assert_eq!(
        url_secret.data.unwrap()["url"].0,
        redis_url.as_bytes(),
        "the Secret holds the default URL"
    );
    let workers = mine
        .call("get", "deployments", deployments.get("digests-workers"))
        .await
        .unwrap();
    let env = &workers.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()[0];
    assert_eq!(env.name, "REDIS_URL");
    assert_eq!(env.value, None, "the default URL is not in the Deployment");
    let from = env.value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("digests-workers-redis", "url")
    );

    // A Schedule (it need not fire: its controller's API use is the point).
    let nightly = object(
        "Schedule",
        "nightly",
        json!({"schedule": "0 3 * * *", "queueRef": {"name": "thumbnails"}, "payload": {"k": 1}}),
    );
    mine.call("create", "schedules", schedules.create(&pp, &nightly))
        .await
        .unwrap();
    eventually(DEADLINE, "nightly to be Ready", || async {
        let s = mine
            .call("get", "schedules", schedules.get("nightly"))
            .await
            .ok()?;
        is_ready(&s).then_some(())
    })
    .await;

    // Everything deleted: the finalizers run (emails' data is deleted, thumbnails' kept).
    let dp = DeleteParams::default();
    mine.call("delete", "schedules", schedules.delete("nightly", &dp))
        .await
        .unwrap();
    for name in ["emails", "thumbnails", "reports", "digests"] {
        mine.call("delete", "jobqueues", queues.delete(name, &dp))
            .await
            .unwrap();
    }
    for (api, kind, resource, name) in [
        (&schedules, "Schedule", "schedules", "nightly"),
        (&queues, "JobQueue", "jobqueues", "emails"),
        (&queues, "JobQueue", "jobqueues", "thumbnails"),
        (&queues, "JobQueue", "jobqueues", "reports"),
        (&queues, "JobQueue", "jobqueues", "digests"),
    ] {
        eventually(DEADLINE, &format!("{kind} {name} to be gone"), || async {
            match mine.call("get", resource, api.get(name)).await {
                Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                _ => None,
            }
        })
        .await;
    }
    let mut con = redis_cmd(redis_url);
    let exists = |key: &str, con: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(key).query::<i64>(con).unwrap() == 1
    };
    assert!(
        !exists(&stream, &mut con),
        "deletionPolicy: Delete removed the stream"
    );
    assert!(
        exists(&thumbs_stream, &mut con),
        "deletionPolicy: Retain kept it"
    );

    // SIGTERM: the operator stops and releases its Lease.
    unsafe { libc::kill(operator.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = operator.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "operator exit status {status}");
}

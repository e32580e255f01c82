//! RBAC proven, not guessed: the real operator binary runs against the recording test API
//! server and a real redis-server through every path that touches the Kubernetes API (a queue
//! with a worker template and a Redis URL Secret scaling up and in, queues scaling a user's
//! Deployment and StatefulSet, a Schedule, worker pods coming and going, everything deleted so
//! finalizers run, leader election until SIGTERM releases the Lease). Every request it made
//! must be granted by the chart's rendered RBAC for its ServiceAccount, watching all namespaces
//! (ClusterRole) and watching a list (Roles); granted rules it never used are printed.
//!
//! [`scenario`] walks those paths; [`grants`] resolves the rendered RBAC and compares;
//! [`mine::Mine`] tells the test's own requests apart from the operator's.

mod grants;
mod mine;
mod scenario;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use jobqueue_test_support::apiserver::TestApiServer;
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::{helm, without_operator_env};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use grants::{Need, grants, needs};
use mine::Mine;
use scenario::scenario;

const APPS: &str = "apps";
const DEADLINE: Duration = Duration::from_secs(60);

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
/// Runs the scenario with the operator configured as the chart renders with `values`, then
/// checks its requests against the RBAC rendered with the same values.
async fn rbac_proven(values: Value) {
    println!("the chart rendered with {values}:");
    let rendered = helm::render(values);
    let server = TestApiServer::start().await;
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let client = server.client();
    install_namespaces_and_crds(&client).await;
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
    grants::assert_granted(&needed, &grants);
    grants::print_unused(&grants, &needed);
}

/// The chart's namespace and the apps' namespace, and the chart's CRDs.
async fn install_namespaces_and_crds(client: &kube::Client) {
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
}

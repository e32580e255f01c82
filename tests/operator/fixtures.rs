//! Fixtures the operator's stories share: the operator's timing, Secrets, the scale of a
//! workload, the keys a queue left in Redis, and the Lease holder.

use std::time::Duration;

use jobqueue_operator::queue::keys::QueueKeys;
use jobqueue_test_support::operator::Cluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
pub const COOLDOWN: Duration = Duration::from_secs(3);
/// Added to every bound derived from the operator's intervals: process start, API round trips
/// and a loaded 2-core CI machine.
pub const SLACK: Duration = Duration::from_secs(4);

/// The operator's connection type, as the tests use it.
pub type Conn = redis::aio::MultiplexedConnection;

/// Creates a Secret in `default` holding `data`.
pub async fn secret(cluster: &Cluster, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(cluster.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating a Secret");
}

/// The replica count of `deployment`'s scale subresource.
pub async fn replicas(cluster: &Cluster, deployment: &str) -> i32 {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    api.get_scale(deployment)
        .await
        .expect("reading the scale subresource")
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0)
}

/// Stream keys still present for a queue.
pub async fn existing_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
) -> Vec<String> {
    let mut found = Vec::new();
    for key in [
        keys.stream.clone(),
        keys.delayed(),
        keys.dead(),
        keys.schedules(),
    ] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("EXISTS");
        if n > 0 {
            found.push(key);
        }
    }
    found
}

/// Who holds the operator's Lease now.
pub async fn lease_holder(cluster: &Cluster) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), "default");
    leases
        .get_opt("jobqueue-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Creates namespaces `names` (the test API server refuses objects in unknown ones).
pub async fn create_namespaces(cluster: &Cluster, names: &[&str]) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    for ns in names {
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
            .expect("namespace");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("creating a namespace");
    }
}

/// One job a consumer holds: its entry id, idle time (ms) and deliveries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: String,
    pub idle_ms: u64,
    pub deliveries: u64,
}

/// What `consumer` of group `workers` holds on `stream` (up to 100 jobs).
pub async fn held_by(conn: &mut Conn, stream: &str, consumer: &str) -> Vec<Held> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(100)
        .arg(consumer)
        .query_async(conn)
        .await
        .expect("XPENDING");
    rows.into_iter()
        .map(|(id, _, idle_ms, deliveries)| Held {
            id,
            idle_ms,
            deliveries,
        })
        .collect()
}

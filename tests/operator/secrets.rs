//! Secret values never leak: a canary password planted in the operator's default Redis URL and
//! in every Secret the queues read (a good URL, a URL with a wrong password, a bare password
//! where a URL belongs) appears in no JobQueue or Schedule status, Event, Deployment, log line
//! or `/metrics` output, while the queues are served or refused as they should be.

use std::time::Duration;

use jobqueue_test_support::metrics::http_get;
use jobqueue_test_support::operator::{Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::fixtures::secret;

const CANARY: &str = "canary-5f3a9c1e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_appear_nowhere() {
    let cluster = Cluster::start("secret_values_appear_nowhere").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(CANARY)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET requirepass");
    let with_password = |pw: &str| {
        redis
            .url()
            .replacen("redis://", &format!("redis://:{pw}@"), 1)
    };
    let authed = with_password(CANARY);
    secret(&cluster, "redis-ok", &[("url", &authed)]).await;
    secret(
        &cluster,
        "redis-wrong",
        &[("url", &with_password(&format!("{CANARY}-wrong")))],
    )
    .await;
    secret(&cluster, "redis-garbage", &[("url", CANARY)]).await;
    let operator = cluster.operator(&authed, "op-a", &[]);

    let workers = json!({"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}});
    let from = |name: &str| json!({"urlSecretRef": {"name": name, "key": "url"}});
    for (queue, spec) in [
        ("ok", json!({"redis": from("redis-ok"), "workers": workers})),
        ("default", json!({"workers": workers})),
        ("wrong", json!({"redis": from("redis-wrong")})),
        ("garbage", json!({"redis": from("redis-garbage")})),
    ] {
        cluster.create("JobQueue", queue, spec).await;
    }
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "ok"}}),
        )
        .await;
    let wait = Duration::from_secs(30);
    for (queue, status, reason) in [
        ("ok", "True", "Provisioned"),
        ("default", "True", "Provisioned"),
        ("wrong", "False", "RedisUnreachable"),
        ("garbage", "False", "InvalidRedisUrl"),
    ] {
        let c = cluster
            .condition("JobQueue", queue, "Ready", status, wait)
            .await;
        assert_eq!(c.reason, reason, "{queue}: {c:?}");
    }
    cluster
        .condition("Schedule", "beat", "Ready", "True", wait)
        .await;
    cluster
        .event("JobQueue", "garbage", "InvalidRedisUrl", &["urlSecretRef"])
        .await;

    let addr = operator.http_addr().await;
    let mut seen = vec![
        (
            "JobQueues",
            json_of(cluster.jobqueues().list(&ListParams::default()).await),
        ),
        (
            "Schedules",
            json_of(cluster.schedules().list(&ListParams::default()).await),
        ),
        (
            "Events",
            json_of(
                Api::<Event>::all(cluster.client.clone())
                    .list(&ListParams::default())
                    .await,
            ),
        ),
        (
            "Deployments",
            json_of(
                Api::<Deployment>::all(cluster.client.clone())
                    .list(&ListParams::default())
                    .await,
            ),
        ),
    ];
    let (code, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    seen.push(("/metrics", metrics));
    seen.push(("the operator's log", operator.log()));
    // The scan sees what the operator wrote about the queues.
    assert!(seen[2].1.contains("InvalidRedisUrl"), "{}", seen[2].1);
    assert!(seen[5].1.contains("wrong"), "{}", seen[5].1);
    for (what, text) in &seen {
        assert!(!text.contains(CANARY), "the canary is in {what}:\n{text}");
    }
}

fn json_of<T: serde::Serialize>(list: Result<T, kube::Error>) -> String {
    serde_json::to_string(&list.expect("listing")).expect("JSON")
}

//! The dashboard in a cluster (`--dashboard-addr`): the leader shows the queues of the watched
//! namespace, never their Redis URL; a standby replica, which serves no queue, says so.

use std::net::SocketAddr;
use std::time::Duration;

use jobqueue_test_support::metrics::http_get;
use jobqueue_test_support::operator::{Cluster, Operator};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use serde_json::json;

/// The dashboard's address, from the `serving the dashboard url=...` log line.
async fn dashboard_addr(op: &Operator) -> SocketAddr {
    eventually(
        Duration::from_secs(20),
        &format!("{} to serve the dashboard", op.identity),
        || async {
            op.log()
                .lines()
                .filter(|l| l.contains("serving the dashboard"))
                .find_map(|l| l.split("url=http://").nth(1))
                .and_then(|rest| rest.split('/').next())
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| op.log())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_serves_the_dashboard_and_a_standby_says_it_is_one() {
    let cluster =
        Cluster::start("the_leader_serves_the_dashboard_and_a_standby_says_it_is_one").await;
    let redis = RedisServer::start();
    let args = ["--namespace", "default", "--dashboard-addr", "127.0.0.1:0"];
    let leader = cluster.operator(&redis.url(), "op-a", &args);
    let at = dashboard_addr(&leader).await;
    cluster
        .create("JobQueue", "emails", json!({"redis": {"url": redis.url()}}))
        .await;
    let overview = eventually(
        Duration::from_secs(30),
        "the queue on the dashboard",
        || async {
            let (code, body) = http_get(at, "/api/overview").await;
            let page: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            let listed = page["tables"][0]["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|row| row[0]["text"] == "default/emails" && row[7]["text"] == "ok");
            (code == 200 && listed).then_some(body.clone()).ok_or(body)
        },
    )
    .await;
    assert!(!overview.contains(&redis.url()), "{overview}");
    let (code, page) = http_get(at, "/queues/default/emails").await;
    assert_eq!(code, 200, "{page}");
    assert!(
        !page.contains(&redis.url().replace("redis://", "")),
        "{page}"
    );

    let standby = cluster.operator(&redis.url(), "op-b", &args);
    let at = dashboard_addr(&standby).await;
    let (code, page) = http_get(at, "/").await;
    assert_eq!(code, 503, "{page}");
    assert!(page.contains("is a standby"), "{page}");
}

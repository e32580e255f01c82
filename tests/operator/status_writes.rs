//! Status that does not land is written again: a quiet queue changes nothing else for a long
//! time, so one failed write must not leave its stored status stale.

use std::time::Duration;

use jobqueue_operator::queue::keys::default_stream;
use jobqueue_test_support::operator::{Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use kube::api::ListParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_status_write_is_retried_until_it_lands() {
    let cluster = Cluster::start("a_failed_status_write_is_retried_until_it_lands").await;
    let redis = RedisServer::start();
    let _operator = cluster.operator(&redis.url(), "op-a", &["--default-poll-interval", "200ms"]);
    cluster
        .create("JobQueue", "quiet", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .condition(
            "JobQueue",
            "quiet",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let lag = || async {
        let list = cluster.jobqueues().list(&ListParams::default()).await;
        let obj = list
            .expect("listing")
            .items
            .into_iter()
            .next()
            .expect("the queue");
        obj.data["status"]["lag"].as_i64()
    };
    eventually(Duration::from_secs(20), "status lag 0", || async {
        (lag().await == Some(0)).then_some(())
    })
    .await;

    // One job arrives and nothing changes after it: the only status write it causes fails.
    cluster.fail_status_writes(1);
    let mut conn = redis_conn(&redis.url()).await;
    let _: String = redis::cmd("XADD")
        .arg(default_stream("default", "quiet"))
        .arg("*")
        .arg(&["id", "j1", "payload", "{}"])
        .query_async(&mut conn)
        .await
        .expect("XADD");
    eventually(Duration::from_secs(20), "the injected failure", || async {
        (cluster.status_write_failures_left() == 0).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "status lag 1 after the retry",
        || async {
            match lag().await {
                Some(1) => Ok(()),
                other => Err(format!("lag {other:?}")),
            }
        },
    )
    .await;
}

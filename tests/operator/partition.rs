//! A leader cut off from the API server (docs/architecture.md#operator-loops): its Lease can no
//! longer be renewed, a standby takes over, and the old leader steps down by its own clock
//! instead of running its Redis loops with a frozen view of the pods. Jobs of a worker pod the
//! new leader sees (the old one cannot) stay with that worker — nothing is delivered twice —
//! and an every-second Schedule fires each run once across the switch.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::default_stream;
use jobqueue_test_support::operator::{Cluster, jobs, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::fixtures::{SLACK, held_by, lease_holder};

const DEADLINE: Duration = Duration::from_secs(30);

async fn holder_becomes(cluster: &Cluster, who: &str) {
    eventually(DEADLINE, &format!("{who} to hold the lease"), || async {
        match lease_holder(cluster).await {
            Some(h) if h == who => Ok(()),
            h => Err(format!("{h:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_steps_down_and_nothing_runs_twice() {
    let mut cluster =
        Cluster::start("a_leader_cut_off_from_the_api_server_steps_down_and_nothing_runs_twice")
            .await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let (a, partition) = cluster
        .partitionable_operator(&redis.url(), "op-a", &[])
        .await;
    holder_becomes(&cluster, "op-a").await;
    let _b = cluster.operator(&redis.url(), "op-b", &[]);
    let workers = json!({"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}});
    cluster
        .create(
            "JobQueue",
            "work",
            json!({"workers": workers, "delivery": {"visibilityTimeout": "5m"}}),
        )
        .await;
    cluster
        .create(
            "Schedule",
            "tick",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "work"}}),
        )
        .await;
    cluster
        .condition("Schedule", "tick", "Ready", "True", DEADLINE)
        .await;

    partition.cut();
    holder_becomes(&cluster, "op-b").await;
    cluster
        .condition("JobQueue", "work", "Ready", "True", DEADLINE)
        .await;
    eventually(DEADLINE, "op-a to say it stepped down", || async {
        a.log()
            .contains("stepped down")
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;

    // A worker pod op-b sees and op-a, cut off, cannot: its consumer takes 3 jobs.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "work-workers-new", "labels": {"jobqueue.io/queue": "work"}},
        "spec": {"containers": [{"name": "w", "image": "w:1"}]}
    }))
    .expect("pod");
    Api::<Pod>::namespaced(cluster.client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .expect("creating the pod");
    let stream = default_stream("default", "work");
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("work-workers-new")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP");
    let taken: BTreeSet<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(taken.len(), 3, "the schedule has fed the queue");

    // Past the dead-consumer grace and several janitor passes: the worker still holds its
    // jobs, each delivered once (a leader with a frozen pod view would hand them over).
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(4) + SLACK {
        let held = held_by(&mut conn, &stream, "work-workers-new").await;
        assert_eq!(
            held.iter().map(|h| h.id.clone()).collect::<BTreeSet<_>>(),
            taken,
            "the worker's jobs were taken from it"
        );
        assert!(
            held.iter().all(|h| h.deliveries == 1),
            "delivered twice: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every second the schedule fired, it fired once.
    let fired: Vec<i64> = jobs(&mut conn, &stream)
        .await
        .into_iter()
        .filter(|j| j.schedule.as_deref() == Some("tick"))
        .filter_map(|j| j.scheduled_for)
        .collect();
    let unique: BTreeSet<i64> = fired.iter().copied().collect();
    assert_eq!(unique.len(), fired.len(), "a run fired twice: {fired:?}");

    partition.heal();
    holder_becomes(&cluster, "op-b").await;
}

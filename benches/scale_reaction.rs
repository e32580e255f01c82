//! Figure 2: scale reaction time, from a burst of jobs being in the stream to the operator's
//! write of the worker Deployment's replicas, over 50 bursts, with `pollInterval: 1s`.
//!
//! The real `jobqueue-operator run` binary runs against the test API server; the benchmark
//! watches the Deployment (a kube watch on the test API server) and timestamps the event
//! that carries the new replica count. Each burst is 500 jobs (→ 5 replicas at
//! `targetPerReplica: 100`); then the burst is discarded (`XGROUP SETID $`), the queue goes back
//! to 0 replicas after `cooldown: 1s`, and the next burst comes after a pseudo-random pause of
//! 0–1 s so that bursts land at every phase of the operator's poll.
//!
//! Run: `cargo bench --bench scale_reaction`

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, wait_for};
use futures::StreamExt;
use jobqueue_operator::queue::keys::default_stream;
use jobqueue_operator::queue::metrics::{QueueState, SnapshotOptions, snapshot};
use jobqueue_operator::queue::{QueueConfig, connect};
use jobqueue_test_support::redis::RedisServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;

const BURSTS: usize = 50;
const BURST_JOBS: usize = 500;
const EXPECTED_REPLICAS: i32 = 5;
/// A scale write that has not come after this is a failure, not a data point.
const LIMIT: Duration = Duration::from_secs(15);

fn main() {
    let runtime = common::runtime();
    runtime.block_on(run());
}

async fn run() {
    println!("## Figure 2: scale reaction time (burst → scale write)\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    let redis = RedisServer::start();
    let cluster = Cluster::start().await;
    let mut operator = cluster.operator("redis://127.0.0.1:1", "bench");
    cluster
        .create(
            "JobQueue",
            "burst",
            json!({
                "redis": {"url": redis.url()},
                "workers": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": "registry.example/worker:1"}
                ]}}},
                "scaling": {
                    "minReplicas": 0, "maxReplicas": 10, "targetPerReplica": 100,
                    "pollInterval": "1s", "cooldown": "1s",
                    "scaleDown": {"stabilizationWindow": "0s"}
                }
            }),
        )
        .await;
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(100),
        "JobQueue burst Ready",
        || async { cluster.ready_count("JobQueue").await == 1 },
    )
    .await;
    assert!(operator.running(), "operator exited:\n{}", operator.log());

    // Every replica count the Deployment takes, with the time this process saw it.
    let (tx, mut seen) = mpsc::unbounded_channel::<(Instant, i32)>();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let watch = tokio::spawn(async move {
        let mut events = watcher(deployments, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) = event
                && d.metadata.name.as_deref() == Some("burst-workers")
            {
                let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(0);
                let _ = tx.send((Instant::now(), replicas));
            }
        }
    });
    replicas_become(&mut seen, |r| r == 0).await;

    let queue = QueueConfig::new(default_stream("default", "burst"));
    let mut conn = connect(&redis.url()).await.expect("connect");
    let mut rng = Instant::now().elapsed().as_nanos() as u64 | 1;
    let mut reaction_ms = Vec::with_capacity(BURSTS);
    let mut first_counts = std::collections::BTreeSet::new();
    for _ in 0..BURSTS {
        // Pause 0–1 s (xorshift), so the burst lands at a random phase of the poll.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(rng % 1000)).await;

        // Atomic, so "visible" is one instant the scaler cannot poll inside.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for i in 0..BURST_JOBS {
            pipe.cmd("XADD")
                .arg(queue.stream())
                .arg("*")
                .arg("id")
                .arg(format!("burst-{i}"))
                .arg("payload")
                .arg("{}")
                .arg("enqueued_at")
                .arg(0)
                .arg("attempt")
                .arg(1)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("XADD burst");
        let visible = Instant::now();
        let (scaled, replicas) = replicas_become(&mut seen, |r| r > 0).await;
        reaction_ms.push(common::ms(scaled - visible));
        first_counts.insert(replicas);

        // Discard the burst: the group moves past it, nothing is pending.
        let () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(queue.stream())
            .arg(&queue.group)
            .arg("$")
            .query_async(&mut conn)
            .await
            .expect("XGROUP SETID");
        let state = snapshot(
            &mut conn,
            std::slice::from_ref(&queue),
            SnapshotOptions::default(),
        )
        .await
        .expect("snapshot");
        assert!(
            matches!(&state[0], Ok(QueueState::Ready(m)) if m.backlog() == 0),
            "the burst was discarded: {state:?}"
        );
        replicas_become(&mut seen, |r| r == 0).await;
    }
    watch.abort();

    let s = common::summary(&reaction_ms);
    println!("| bursts | jobs per burst | pollInterval | p50 | p99 | max | min |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {BURST_JOBS} (→ {EXPECTED_REPLICAS} replicas) | 1 s | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
        s.n, s.median, s.p99, s.max, s.min
    );
    println!("\nReplica counts of the first write after a burst: {first_counts:?}");
    println!(
        "\nKEDA with defaults (anchor): up to 30 s polling + 15 s HPA sync = 45 s worst case."
    );
    println!("Load average at end: {:.2}", common::load());
}

/// Waits (bounded) for the next replica count of the Deployment that satisfies `want`.
async fn replicas_become(
    seen: &mut mpsc::UnboundedReceiver<(Instant, i32)>,
    want: fn(i32) -> bool,
) -> (Instant, i32) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some((at, r))) if want(r) => return (at, r),
            Ok(Some(_)) => {}
            _ => panic!("no scale write within {LIMIT:?}"),
        }
    }
}

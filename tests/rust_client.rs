//! The Rust client's high-level API (`jobqueue_client::{Queue, Worker}`) against a real
//! redis-server and the three-node Cluster, on queues the engine provisions as the operator
//! does: the library check, enqueue and follow, a worker's results, failures and progress,
//! cancel, and SIGTERM-style draining through `run_until`.

use std::time::Duration;

use jobqueue_client::{EnqueueOptions, JobState, Outcome, Queue, QueueError, Worker};
use jobqueue_operator::queue::jobs::{JobSettings, ensure_library, store_settings};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::Topology;
use serde_json::json;
use tokio::sync::watch;

const STREAM: &str = "jobqueue:{shop/rust-client}";
const WAIT: Duration = Duration::from_secs(20);

on_both_topologies!(
    a_queue_without_the_library_is_refused,
    jobs_enqueued_and_run_are_followed_to_their_end,
);

async fn a_queue_without_the_library_is_refused(t: Topology) {
    let f = queue(t, STREAM, |_| {}).await;
    let e = Queue::from_url(&f.redis.url(), STREAM).await.unwrap_err();
    assert!(matches!(e, QueueError::LibraryMissing), "{e:?}");
    assert!(
        e.to_string().contains("provisioned by jobqueue-operator"),
        "{e}"
    );
}

async fn jobs_enqueued_and_run_are_followed_to_their_end(t: Topology) {
    let mut f = queue(t, STREAM, |c| c.max_deliveries = 2).await;
    store_settings(&mut f.conn, &f.cfg, &JobSettings::default())
        .await
        .unwrap();
    ensure_library(&mut f.conn).await.unwrap();
    let url = f.redis.url();
    let q = Queue::from_url(&url, STREAM).await.unwrap();
    let none = EnqueueOptions::default();
    let ok = q
        .enqueue(&json!({"do": "ok", "n": 2}), &none)
        .await
        .unwrap();
    let bad = q.enqueue(&json!({"do": "permanent"}), &none).await.unwrap();
    let cancelled = q
        .enqueue(&json!({"do": "ok", "n": 0}), &none)
        .await
        .unwrap();
    assert_eq!(
        q.get_job(&ok).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        q.cancel(&cancelled).await.unwrap().as_str(),
        "cancelled",
        "a queued job is cancelled at once"
    );

    let (stop_tx, stop) = watch::channel(false);
    let worker = Worker::new(&url, STREAM).consumer("w1").concurrency(2);
    let run = tokio::spawn(worker.run_until(stop, |mut ctx| async move {
        let payload: serde_json::Value = serde_json::from_str(&ctx.delivery.payload).unwrap();
        if payload["do"] == "permanent" {
            return Outcome::Fail {
                error: "no recipient".into(),
                permanent: true,
            };
        }
        ctx.progress(r#"{"step":"halfway"}"#).await.unwrap();
        let n = payload["n"].as_i64().unwrap();
        Outcome::Complete(Some(json!({"doubled": n * 2}).to_string()))
    }));
    let done = q.wait(&ok, WAIT).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"doubled": 4})));
    assert_eq!(done.progress, Some(json!({"step": "halfway"})));
    let dead = q.wait(&bad, WAIT).await.unwrap();
    assert_eq!(
        (dead.state, dead.attempt, dead.error.as_deref()),
        (JobState::Dead, 1, Some("no recipient"))
    );
    assert_eq!(
        q.get_job(&cancelled).await.unwrap().unwrap().state,
        JobState::Cancelled
    );

    stop_tx.send_replace(true);
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.ran, 2, "the cancelled job never ran");
    assert_eq!(pending(&mut f.conn, &f.cfg).await, 0);

    // A wait that outlives its timeout says so.
    let later = q
        .enqueue(&json!({"do": "ok", "n": 1}), &none)
        .await
        .unwrap();
    let e = q
        .wait(&later, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::Timeout { .. }), "{e:?}");
}

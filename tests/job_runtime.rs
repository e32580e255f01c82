//! Job records under the runtime (the part cluster and local mode share), on a private
//! redis-server: the counters as a scraper of `/metrics` sees them after one job succeeds and
//! one goes dead, and a Redis that refuses the function library still serving the queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobqueue_operator::operator::http::{Health, serve};
use jobqueue_operator::operator::metrics::Metrics;
use jobqueue_operator::operator::runtime::{
    ObjectId, QueueEntry, QueueObservation, Reporter, Runtime, RuntimeEvent, RuntimeOptions,
};
use jobqueue_operator::queue::jobs::{self, JobOps};
use jobqueue_operator::queue::schedules::ScheduleState;
use jobqueue_operator::queue::{EnqueueOptions, QueueConfig, enqueue};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::queue::read;
use jobqueue_test_support::redis::RedisServer;
use serde_json::json;

/// Keeps the events' reasons and messages.
#[derive(Default)]
struct Events(Mutex<Vec<(String, String)>>);

impl Reporter for Events {
    fn queue_observed(&self, _: &ObjectId, _: &QueueObservation) {}
    fn schedule_observed(&self, _: &ObjectId, _: &ScheduleState) {}
    fn queue_event(&self, _: &ObjectId, event: RuntimeEvent) {
        self.0.lock().unwrap().push((event.reason, event.message));
    }
}

fn entry(url: String, cfg: &QueueConfig) -> QueueEntry {
    QueueEntry {
        id: ObjectId::new("team-a", "emails"),
        redis_url: url,
        config: cfg.clone(),
        scaling: None,
        workers: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_refusing_the_library_serves_the_queue_without_records() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "nofunc",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-function",
            "-fcall",
        ])
        .arg("-fcall_ro")
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = redis.url().replacen("redis://", "redis://nofunc:pw@", 1);
    let events = Arc::new(Events::default());
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let runtime = Runtime::new(RuntimeOptions::default(), metrics, events.clone());
    let cfg = QueueConfig::new("jobqueue:{team-a/emails}");
    runtime
        .upsert_queue(entry(url, &cfg))
        .await
        .expect("the queue is served without the library");
    let tracking: String = redis::cmd("HGET")
        .arg(cfg.keys.settings())
        .arg("tracking")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        tracking, "0",
        "records are off where workers cannot keep them"
    );
    let seen = events.0.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|(reason, message)| reason == "JobTrackingUnavailable"
                && message.contains("served without job records")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_and_a_dead_job_are_counted_in_metrics() {
    let redis = RedisServer::start();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let options = RuntimeOptions {
        default_poll_interval: Duration::from_millis(100),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(options, metrics, Arc::new(Events::default()));
    let cfg = QueueConfig::new("jobqueue:{team-a/emails}");
    runtime
        .upsert_queue(entry(redis.url(), &cfg))
        .await
        .expect("the queue is provisioned");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let loops = {
        let runtime = runtime.clone();
        tokio::spawn(async move { runtime.run(async move { drop(stop_rx.await) }).await })
    };
    let (addr, server) = serve(
        "127.0.0.1:0".parse().unwrap(),
        registry,
        Arc::new(Health::default()),
        std::future::pending(),
    )
    .await
    .expect("serving /metrics");
    tokio::spawn(server);

    let mut conn = runtime.pool().get(&redis.url()).await.unwrap();
    let worker = JobOps {
        keys: cfg.keys.clone(),
        group: cfg.group.clone(),
        consumer: "w1".into(),
    };
    for payload in [json!({"n": 1}), json!({"n": 2})] {
        enqueue(&mut conn, &cfg.keys, &payload, &EnqueueOptions::default())
            .await
            .unwrap();
    }
    let got = read(&mut conn, &cfg, "w1", 2, None).await;
    assert_eq!(got.len(), 2);
    let deliveries: Vec<jobs::Delivery> = got
        .iter()
        .map(|d| jobs::Delivery {
            entry_id: d.entry_id.clone(),
            job_id: d.job_id().into(),
            attempt: d.attempt(),
            payload: d.field("payload").into(),
            ..Default::default()
        })
        .collect();
    for d in &deliveries {
        worker.start(&mut conn, d).await.unwrap();
    }
    worker
        .complete(&mut conn, &deliveries[0], Some(r#"{"ok":true}"#))
        .await
        .unwrap();
    worker
        .fail(&mut conn, &deliveries[1], "bad address", true)
        .await
        .unwrap();

    let labels = [("namespace", "team-a"), ("name", "emails")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = http_get(addr, "/metrics").await;
        assert_eq!(code, 200);
        let (samples, _) = parse_metrics(&body);
        let read = |name: &str| value(&samples, name, &labels);
        if read("jobqueue_jobs_succeeded_total") == Some(1.0)
            && read("jobqueue_jobs_dead_total") == Some(1.0)
        {
            assert_eq!(read("jobqueue_jobs_failed_total"), Some(0.0), "{body}");
            assert_eq!(read("jobqueue_jobs_cancelled_total"), Some(0.0), "{body}");
            assert_eq!(
                read("jobqueue_job_duration_seconds_count"),
                Some(1.0),
                "{body}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job counters never showed one success and one dead job:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stop_tx);
    loops.await.unwrap();
}

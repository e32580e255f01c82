//! Schedules fire into the queue they point at, and the fires counter counts every run
//! (docs/architecture.md#scheduling): a suspended Schedule's fires equal its jobs, and a
//! Schedule moved while no operator ran leaves its old queue.

use std::net::SocketAddr;
use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, jobs, jobs_at_least, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::fixtures::Conn;

/// A second queue (`reports`, Retain) with an every-second Schedule `tick`, whose status names
/// the job it last enqueued. A step of [`crate::provisioning`]'s story.
pub async fn reports_with_a_ticking_schedule(cluster: &Cluster, conn: &Conn, redis_url: &str) {
    // A second queue (Retain) with a Schedule, for the schedule series and the deletions.
    cluster
        .create("JobQueue", "reports", json!({"redis": {"url": redis_url}}))
        .await;
    cluster
        .create(
            "Schedule",
            "tick",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "reports"}, "payload": {"kind": "tick"}}),
        )
        .await;
    cluster
        .condition("Schedule", "tick", "Ready", "True", Duration::from_secs(30))
        .await;
    // Its status names a job that is in the stream, for the time it was scheduled for.
    let reports_stream = default_stream("default", "reports");
    eventually(
        Duration::from_secs(10),
        "the Schedule's last job in status",
        || {
            let mut conn = conn.clone();
            let stream = reports_stream.clone();
            let api = cluster.schedules();
            async move {
                let obj = api.get("tick").await.map_err(|e| e.to_string())?;
                let status = obj.data.get("status").cloned().unwrap_or_default();
                let last_id = status.get("lastJobId").and_then(|v| v.as_str());
                let last_time = status
                    .get("lastScheduleTime")
                    .and_then(|v| v.as_str())
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(|t| t.as_millisecond());
                let next = status.get("nextScheduleTime").and_then(|v| v.as_str());
                let all = jobs(&mut conn, &stream).await;
                let found = all.iter().find(|j| Some(j.id.as_str()) == last_id);
                match found {
                    Some(j) if j.scheduled_for == last_time && next.is_some() => Ok(()),
                    _ => Err(format!("{status}")),
                }
            }
        },
    )
    .await;
}

/// `jobqueue_schedule_fires_total` counts every run that enqueued a job; suspending and resuming
/// the Schedule disarms and re-arms it. A step of [`crate::provisioning`]'s story.
pub async fn fires_total_counts_every_run(cluster: &Cluster, conn: &Conn, addr: SocketAddr) {
    // jobqueue_schedule_fires_total counts every run that enqueued a job (it fires every
    // second, faster than status is read): once suspended, it equals the jobs in the stream.
    let reports = QueueKeys::new(default_stream("default", "reports"));
    cluster
        .schedules()
        .patch(
            "tick",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspending the Schedule");
    eventually(
        Duration::from_secs(15),
        "fires_total to equal the suspended schedule's jobs",
        || {
            let mut conn = conn.clone();
            let stream = reports.stream.clone();
            async move {
                let armed: Option<f64> = redis::cmd("ZSCORE")
                    .arg(QueueKeys::new(stream.clone()).schedules())
                    .arg("tick")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let jobs = jobs(&mut conn, &stream).await.len() as f64;
                let (_, body) = http_get(addr, "/metrics").await;
                let fires = value(
                    &parse_metrics(&body).0,
                    "jobqueue_schedule_fires_total",
                    &[("name", "tick")],
                );
                match (armed, fires) {
                    (None, Some(f)) if f == jobs && jobs >= 3.0 => Ok(()),
                    other => Err(format!("{other:?} vs {jobs} jobs")),
                }
            }
        },
    )
    .await;
    cluster
        .schedules()
        .patch(
            "tick",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resuming the Schedule");
    eventually(Duration::from_secs(15), "tick armed again", || {
        let mut conn = conn.clone();
        let zset = reports.schedules();
        async move {
            let armed: Option<f64> = redis::cmd("ZSCORE")
                .arg(&zset)
                .arg("tick")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            armed.map(|_| ()).ok_or_else(|| "not armed".to_string())
        }
    })
    .await;
}

/// A Schedule moved to another queue while no operator ran: the next operator process, which
/// never wrote it, finds its old run in Redis and removes it, so it fires only where it points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_moved_while_no_operator_ran_leaves_its_old_queue() {
    let cluster =
        Cluster::start("a_schedule_moved_while_no_operator_ran_leaves_its_old_queue").await;
    let redis = RedisServer::start();
    let conn = redis_conn(&redis.url()).await;
    let mut a = cluster.operator(&redis.url(), "op-a", &[]);
    for q in ["first", "second"] {
        cluster
            .create("JobQueue", q, json!({"redis": {"url": redis.url()}}))
            .await;
    }
    cluster
        .create(
            "Schedule",
            "mover",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "first"}}),
        )
        .await;
    let first = QueueKeys::new(default_stream("default", "first"));
    let second = QueueKeys::new(default_stream("default", "second"));
    let count = |keys: &QueueKeys| {
        let mut conn = conn.clone();
        let stream = keys.stream.clone();
        async move { jobs(&mut conn, &stream).await.len() }
    };
    jobs_at_least(&conn, &first.stream, 1, Duration::from_secs(30)).await;

    a.sigkill();
    cluster
        .schedules()
        .patch(
            "mover",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"queueRef": {"name": "second"}}})),
        )
        .await
        .expect("moving the Schedule");
    let _b = cluster.operator(&redis.url(), "op-b", &[]);
    jobs_at_least(&conn, &second.stream, 1, Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(15),
        "the old queue's run to be removed",
        || {
            let mut conn = conn.clone();
            let first = first.clone();
            async move {
                let (armed, stored): (Option<f64>, i64) = redis::pipe()
                    .cmd("ZSCORE")
                    .arg(first.schedules())
                    .arg("mover")
                    .cmd("EXISTS")
                    .arg(first.schedule("mover"))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                match (armed, stored) {
                    (None, 0) => Ok(()),
                    other => Err(format!("still in the old queue: {other:?}")),
                }
            }
        },
    )
    .await;
    // Nothing fires into the old queue while the new one gets its next runs.
    let old = count(&first).await;
    let new = count(&second).await;
    jobs_at_least(&conn, &second.stream, new + 2, Duration::from_secs(30)).await;
    assert_eq!(
        count(&first).await,
        old,
        "the moved Schedule fired into its old queue"
    );
}

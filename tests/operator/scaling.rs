//! Scaling an owned worker Deployment 0 → 8 → 0: a burst scales up within two poll intervals,
//! a lost worker's jobs are handed out again at once, the queue scales to zero only after the
//! cooldown, and each scale event is one write of the scale subresource
//! (docs/architecture.md#scaling). Steps of [`crate::provisioning`]'s story.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::QueueKeys;
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, conditions};
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::fixtures::{COOLDOWN, Conn, POLL_INTERVAL, SLACK, replicas};

/// A pod of the `emails` queue's workers.
fn worker_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"jobqueue.io/queue": "emails"}},
        "spec": {"containers": [{"name": "worker", "image": "registry.example/worker:1"}]}
    }))
    .expect("pod")
}

/// XREADGROUP as consumer `consumer`: (entry id, job id) of up to `count` new jobs.
async fn read_group(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    consumer: &str,
    count: usize,
) -> Vec<(String, String)> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| {
            let job: String = e.get("id").expect("every job has an id");
            (e.id, job)
        })
        .collect()
}

/// 5,000 jobs at once scale the queue to 8 replicas within two poll intervals (plus slack),
/// with a ScaledUp Event; returns how long it took.
pub async fn burst_scales_to_eight(cluster: &Cluster, conn: &Conn, keys: &QueueKeys) -> Duration {
    let mut conn = conn.clone();
    // 2. 5,000 jobs → 8 replicas within two poll intervals (plus slack).
    // Scaling writes the scale subresource only: the owned Deployment is not re-applied.
    let deployment_applies = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.subresource.is_none())
            .count()
    };
    let applies_before = deployment_applies();
    // MULTI/EXEC: all 5,000 become visible at once, so the scaler cannot poll
    // a half-written burst (a plain pipeline let it see 4,468 once).
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..5000 {
        pipe.cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("id")
            .arg(format!("load-{i}"))
            .arg("payload")
            .arg("{}")
            .arg("enqueued_at")
            .arg(0)
            .arg("attempt")
            .arg(1)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("XADD 5000 jobs");
    let visible = Instant::now();
    let bound = POLL_INTERVAL * 2 + SLACK;
    eventually(bound, "replicas 8 after 5,000 jobs", || async {
        match replicas(cluster, "emails-workers").await {
            8 => Ok(()),
            r => Err(format!(
                "{r} replicas {:?} after the jobs were visible",
                visible.elapsed()
            )),
        }
    })
    .await;
    let scaled_up_after = visible.elapsed();
    cluster
        .event("JobQueue", "emails", "ScaledUp", &["→ 8", "5000"])
        .await;
    assert_eq!(
        deployment_applies(),
        applies_before,
        "a scale write made the operator re-apply its Deployment"
    );
    scaled_up_after
}

/// The status tells the same story as the scale (written at the status interval, 1 s here).
pub async fn status_tells_the_same_story(cluster: &Cluster) {
    eventually(
        Duration::from_secs(10),
        "status of the scaled queue",
        || async {
            let obj = cluster
                .jobqueues()
                .get("emails")
                .await
                .map_err(|e| e.to_string())?;
            let status = obj.data.get("status").cloned().unwrap_or_default();
            let field = |f: &str| status.get(f).and_then(|v| v.as_i64());
            let scaling = conditions(&obj)
                .into_iter()
                .find(|c| c.type_ == "Scaling")
                .is_some_and(|c| c.status == "True");
            let seen = (
                field("replicas"),
                field("desiredReplicas"),
                field("lag"),
                field("length"),
                scaling,
            );
            if seen == (Some(8), Some(8), Some(5000), Some(5000), true) {
                Ok(())
            } else {
                Err(format!("{status}"))
            }
        },
    )
    .await;
}

/// A worker pod takes 10 jobs and disappears: they are handed out again at once. Then the
/// backlog is drained as a worker pod would; returns when the last acknowledgement was sent.
pub async fn lost_worker_jobs_handed_out_again(
    cluster: &Cluster,
    conn: &Conn,
    keys: &QueueKeys,
) -> Instant {
    let mut conn = conn.clone();
    // A worker pod takes 10 jobs and disappears: they are handed out again at once, not after
    // the visibility timeout (5 m).
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    pods.create(&PostParams::default(), &worker_pod("emails-workers-lost"))
        .await
        .expect("creating a worker pod");
    let taken = read_group(&mut conn, &keys.stream, "emails-workers-lost", 10).await;
    assert_eq!(taken.len(), 10);
    pods.delete("emails-workers-lost", &DeleteParams::default())
        .await
        .expect("deleting the worker pod");
    lost_jobs_back_in_the_stream(&conn, keys).await;

    // Drain as a worker pod would: its consumer name is its pod name, and the pod exists.
    pods.create(&PostParams::default(), &worker_pod("emails-workers-test"))
        .await
        .expect("creating the worker pod");
    let lost_ids: BTreeSet<String> = taken.iter().map(|(_, job)| job.clone()).collect();
    let mut redelivered = BTreeSet::new();
    let mut drained = 0;
    let mut last_ack_sent = Instant::now();
    loop {
        let batch = read_group(&mut conn, &keys.stream, "emails-workers-test", 1000).await;
        if batch.is_empty() {
            break;
        }
        drained += batch.len();
        redelivered.extend(
            batch
                .iter()
                .filter(|(_, job)| lost_ids.contains(job))
                .map(|(_, job)| job.clone()),
        );
        let ids: Vec<&String> = batch.iter().map(|(entry, _)| entry).collect();
        // The backlog cannot be zero before this acknowledgement is sent.
        last_ack_sent = Instant::now();
        let acked: usize = redis::cmd("XACK")
            .arg(&keys.stream)
            .arg("workers")
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .expect("XACK");
        assert_eq!(acked, ids.len());
    }
    assert_eq!(
        drained, 5000,
        "every job exactly once, the lost worker's 10 included"
    );
    assert_eq!(
        redelivered, lost_ids,
        "the lost worker's jobs were handed out again"
    );
    last_ack_sent
}

/// Back to 0 only once the cooldown has passed since the backlog reached zero, idle pods ranked
/// first; returns how long after the backlog hit zero.
pub async fn back_to_zero_after_the_cooldown(
    cluster: &Cluster,
    last_ack_sent: Instant,
) -> Duration {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    // Back to 0 only once the cooldown has passed since the backlog reached zero.
    let zero_after = eventually(
        COOLDOWN + POLL_INTERVAL * 2 + SLACK,
        "replicas back to 0 after the cooldown",
        || async {
            match replicas(cluster, "emails-workers").await {
                0 => Ok(last_ack_sent.elapsed()),
                r => Err(format!(
                    "{r} replicas {:?} after the backlog hit zero",
                    last_ack_sent.elapsed()
                )),
            }
        },
    )
    .await;
    assert!(
        zero_after >= COOLDOWN,
        "scaled to zero {zero_after:?} after the backlog hit zero, before the {COOLDOWN:?} cooldown"
    );
    // Before scaling in, the worker pods were ranked for removal (idle ones go first).
    let ranked = pods
        .get("emails-workers-test")
        .await
        .expect("the worker pod");
    let cost = ranked
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"));
    assert!(
        cost.is_some_and(|c| c.parse::<i64>().is_ok()),
        "no pod-deletion-cost before the scale-in: {:?}",
        ranked.metadata.annotations
    );
    let to_zero = cluster
        .event("JobQueue", "emails", "ScaledToZero", &["→ 0"])
        .await;
    assert!(
        to_zero.note.as_deref().unwrap_or("").contains("3s"),
        "the reason names the cooldown: {:?}",
        to_zero.note
    );
    zero_after
}

/// The scale subresource is written only when the count changes: one write per scale event.
pub async fn one_scale_write_per_scale_event(cluster: &Cluster, addr: SocketAddr) {
    let (_, body) = http_get(addr, "/metrics").await;
    let (samples, _) = parse_metrics(&body);
    let events: f64 = ["Up", "Down"]
        .iter()
        .filter_map(|d| {
            value(
                &samples,
                "jobqueue_scale_events_total",
                &[("name", "emails"), ("direction", d)],
            )
        })
        .sum();
    let scale_writes = cluster
        .server
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("scale"))
        .count();
    assert!(events >= 2.0, "{body}");
    assert_eq!(scale_writes as f64, events, "scale writes vs scale events");
}

/// The lost worker's jobs are no longer pending: handed out again at once, not after the
/// visibility timeout (5 m).
async fn lost_jobs_back_in_the_stream(conn: &Conn, keys: &QueueKeys) {
    eventually(
        Duration::from_secs(10),
        "the lost worker's jobs back in the stream",
        || {
            let mut conn = conn.clone();
            let stream = keys.stream.clone();
            async move {
                let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg("workers")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                match pending.count() {
                    0 => Ok(()),
                    n => Err(format!("{n} still pending")),
                }
            }
        },
    )
    .await;
}

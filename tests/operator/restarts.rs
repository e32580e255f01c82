//! A worker container that crashes and restarts in its pod keeps its consumer name (the pod's):
//! the jobs it read before the crash are handed to other workers at once, attempt counted,
//! instead of after the 5 m visibility timeout, while the job the restarted container has
//! read since stays its own and its consumer stays (docs/architecture.md#janitor).

use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::operator::{Access, Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixtures::{Conn, SLACK, held_by};

const POD: &str = "emails-workers-5c9d7-x2k4q";
const DEADLINE: Duration = Duration::from_secs(30);
/// How long after the crashed process read its jobs the new container starts: more than the
/// operator's one-second margin plus the second a container's start time is rounded down to
/// (a real restart takes at least that: the kubelet notices the exit, then starts anew).
const RESTART_AFTER: Duration = Duration::from_millis(2500);

/// A worker pod as the operator's Deployment makes them: labelled with the queue, its
/// container reading as the pod's consumer.
fn worker_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": POD, "labels": {"jobqueue.io/queue": "emails"}},
        "spec": {"containers": [{"name": "worker", "image": "registry.example/worker:1",
            "env": [{"name": "JOBQUEUE_CONSUMER",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}
    }))
    .expect("pod")
}

/// `t` as the kubelet writes a container's times: whole seconds, rounded down.
fn k8s_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The kubelet's report of the worker container (there is no kubelet here: the test writes
/// the pod's status as one would).
async fn report_container(pods: &Api<Pod>, status: Value) {
    pods.patch_status(
        POD,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "containerStatuses": [status]}})),
    )
    .await
    .expect("writing the pod's status");
}

async fn enqueue(conn: &mut Conn, stream: &str, id: &str) {
    let _: String = redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("id")
        .arg(id)
        .arg("payload")
        .arg("{}")
        .arg("enqueued_at")
        .arg(0)
        .arg("attempt")
        .arg(1)
        .query_async(conn)
        .await
        .expect("XADD");
}

/// XREADGROUP as `consumer`: (entry id, job id, attempt) of up to `count` new jobs.
async fn read(conn: &mut Conn, stream: &str, consumer: &str, count: usize) -> Vec<[String; 3]> {
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
    let entries = reply.keys.into_iter().flat_map(|k| k.ids);
    entries
        .map(|e| {
            let field = |f: &str| e.get::<String>(f).unwrap_or_default();
            [e.id.clone(), field("id"), field("attempt")]
        })
        .collect()
}

/// (entry id, idle ms) of what `consumer` holds.
async fn pending_of(conn: &mut Conn, stream: &str, consumer: &str) -> Vec<(String, u64)> {
    held_by(conn, stream, consumer)
        .await
        .into_iter()
        .map(|h| (h.id, h.idle_ms))
        .collect()
}

/// The consumers of the group, by name.
async fn consumers(conn: &mut Conn, stream: &str) -> Vec<String> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg("workers")
        .query_async(conn)
        .await
        .expect("XINFO CONSUMERS");
    reply.consumers.into_iter().map(|c| c.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_workers_jobs_from_before_the_crash_are_handed_out_at_once() {
    let cluster =
        Cluster::start("a_restarted_workers_jobs_from_before_the_crash_are_handed_out_at_once")
            .await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let _operator = cluster.operator(&redis.url(), "op-a", &[]);
    let workers = json!({"template": {"spec": {"containers": [
        {"name": "worker", "image": "registry.example/worker:1"}]}}});
    cluster
        .create(
            "JobQueue",
            "emails",
            json!({"workers": workers, "delivery": {"visibilityTimeout": "5m"}}),
        )
        .await;
    cluster
        .condition("JobQueue", "emails", "Ready", "True", DEADLINE)
        .await;
    let stream = QueueKeys::new(default_stream("default", "emails")).stream;
    for id in ["before-1", "before-2", "after-1"] {
        enqueue(&mut conn, &stream, id).await;
    }

    // The worker pod, its container running since a minute ago, never restarted.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    pods.create(&PostParams::default(), &worker_pod())
        .await
        .expect("creating the worker pod");
    let first_start = k8s_time(Timestamp::now() - Duration::from_secs(60));
    report_container(
        &pods,
        json!({"name": "worker", "image": "registry.example/worker:1", "imageID": "",
               "ready": true, "restartCount": 0, "started": true,
               "state": {"running": {"startedAt": first_start}}}),
    )
    .await;
    // The operator watches worker pods from here on: whatever it listed, it sees what follows.
    let pod_watch = Access {
        verb: "watch".into(),
        group: String::new(),
        resource: "pods".into(),
        subresource: None,
        namespaced: false,
    };
    eventually(DEADLINE, "the operator's watch of worker pods", || async {
        cluster.accesses().contains(&pod_watch).then_some(())
    })
    .await;

    // The worker reads two jobs and crashes; its container starts again a little later.
    let before = read(&mut conn, &stream, POD, 2).await;
    let ids: Vec<&str> = before.iter().map(|[_, id, _]| id.as_str()).collect();
    assert_eq!(ids, ["before-1", "before-2"]);
    eventually(DEADLINE, "the crashed worker's jobs to age", || {
        let (mut conn, stream) = (conn.clone(), stream.clone());
        async move {
            let pending = pending_of(&mut conn, &stream, POD).await;
            let idle = pending.iter().map(|(_, idle)| *idle).min().unwrap_or(0);
            (idle >= RESTART_AFTER.as_millis() as u64).then_some(())
        }
    })
    .await;
    let restarted_at = k8s_time(Timestamp::now());
    report_container(
        &pods,
        json!({"name": "worker", "image": "registry.example/worker:1", "imageID": "",
               "ready": true, "restartCount": 1, "started": true,
               "state": {"running": {"startedAt": restarted_at}},
               "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                   "startedAt": first_start, "finishedAt": restarted_at}}}),
    )
    .await;
    // The restarted worker reads under the same consumer name at once.
    let after = read(&mut conn, &stream, POD, 1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0][1], "after-1");
    let after_entry = after[0][0].clone();

    // Within seconds, not the 5 m visibility timeout: the consumer holds only what the
    // restarted worker read.
    eventually(
        SLACK * 2,
        "the jobs read before the crash handed over",
        || {
            let (mut conn, stream) = (conn.clone(), stream.clone());
            let after_entry = after_entry.clone();
            async move {
                let pending: Vec<String> = pending_of(&mut conn, &stream, POD)
                    .await
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                match pending == [after_entry] {
                    true => Ok(()),
                    false => Err(format!("{POD} holds {pending:?}")),
                }
            }
        },
    )
    .await;
    assert!(
        consumers(&mut conn, &stream).await.iter().any(|c| c == POD),
        "the restarted worker's consumer was deleted"
    );

    // Another worker gets them, as second attempts; nothing else is left to read.
    let mut handed = read(&mut conn, &stream, "emails-workers-5c9d7-other", 10).await;
    handed.sort_by(|a, b| a[1].cmp(&b[1]));
    let handed: Vec<[&str; 2]> = handed
        .iter()
        .map(|[_, id, attempt]| [id.as_str(), attempt.as_str()])
        .collect();
    assert_eq!(handed, [["before-1", "2"], ["before-2", "2"]]);
    let still: Vec<String> = pending_of(&mut conn, &stream, POD)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        still,
        [after_entry],
        "the restarted worker's job stays its own"
    );

    cluster
        .event(
            "JobQueue",
            "emails",
            "JobsReclaimed",
            &[POD, "restarted", "2 job(s)"],
        )
        .await;
}

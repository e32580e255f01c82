//! An adopted RQ queue in a cluster (docs/architecture.md#adopted-queues): the operator, given
//! a Redis user that may only read, serves a JobQueue with `spec.source` and scales the user's
//! own Deployment from RQ's keys: up on queued work, down to the one pod still running a job
//! (which gets the high deletion cost, its idle peer the low one), never to zero while the
//! job runs, to zero once it is done. A Schedule aimed at it is refused as `QueueAdopted`.
//! The keys here are written in RQ 3's layout by the test; `tests/adopt_local.rs` runs RQ
//! itself.

use std::time::{Duration, Instant};

use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::fixtures::{Conn, SLACK, replicas};

const COOLDOWN: Duration = Duration::from_secs(2);
const DEPLOYMENT: &str = "rq-worker";
const DEADLINE: Duration = Duration::from_secs(30);

/// A user whose commands, and the commands its scripts run, may only read.
async fn read_only_url(redis: &RedisServer, admin: &mut Conn) -> String {
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("scaler")
        .arg("on")
        .arg(">scaler-pw")
        .arg("~*")
        .arg("&*")
        .arg("-@all")
        .arg("+@read")
        .arg("+@connection")
        .arg("+@scripting")
        .arg("+client")
        .arg("+time")
        .arg("+info")
        .arg("-@write")
        .query_async(admin)
        .await
        .expect("ACL SETUSER");
    redis
        .url()
        .replacen("redis://", "redis://scaler:scaler-pw@", 1)
}

/// RQ's keys for queue `default`: `queued` job ids waiting, and two workers with RQ's default
/// names (random uuid4 hex, so their host, the pod, names them) on pods `rq-worker-a` and
/// `rq-worker-b`; `running` names the busy one's pod and puts its job in the started registry.
async fn rq_state(conn: &mut Conn, queued: usize, running: Option<&str>) {
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.del("rq:queue:default").del("rq:wip:default");
    for i in 0..queued {
        pipe.rpush("rq:queue:default", format!("job-{i}"));
    }
    for (worker, host) in [
        ("5d41402abc4b2a76b9719d911017c592", "rq-worker-a"),
        ("7d793037a0760186574b0282f2f435e7", "rq-worker-b"),
    ] {
        let key = format!("rq:worker:{worker}");
        let state = if running == Some(host) {
            "busy"
        } else {
            "idle"
        };
        pipe.sadd("rq:workers:default", &key)
            .hset(&key, "state", state)
            .hset(&key, "hostname", host)
            .hset(&key, "queues", "default");
    }
    if running.is_some() {
        // Score: the entry's expiry (unix seconds), far ahead as for a long job.
        pipe.zadd("rq:wip:default", "job-running:0123abcd", 4_000_000_000u64);
    }
    let () = pipe.query_async(conn).await.expect("writing RQ's keys");
}

async fn user_deployment_and_pods(cluster: &Cluster) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {"metadata": {"labels": {"app": DEPLOYMENT}},
                         "spec": {"containers": [{"name": "w", "image": "app:1", "command": ["rq", "worker", "default"]}]}}
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(cluster.client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .expect("creating the user's Deployment");
    // The test API server runs no ReplicaSet controller: the pods stand for what it made.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    for name in ["rq-worker-a", "rq-worker-b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": DEPLOYMENT}},
            "spec": {"containers": [{"name": "w", "image": "app:1"}]}
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("creating a pod");
    }
}

async fn deletion_cost(cluster: &Cluster, pod: &str) -> Option<i64> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    pods.get(pod)
        .await
        .expect("pod")
        .metadata
        .annotations
        .and_then(|a| {
            a.get("controller.kubernetes.io/pod-deletion-cost")
                .and_then(|c| c.parse().ok())
        })
}

async fn replicas_become(cluster: &Cluster, want: i32, what: &str) {
    eventually(DEADLINE, what, || async {
        match replicas(cluster, DEPLOYMENT).await {
            r if r == want => Ok(()),
            r => Err(format!("{r} replicas")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_rq_queue_scales_the_users_deployment_reading_only() {
    let cluster =
        Cluster::start("an_adopted_rq_queue_scales_the_users_deployment_reading_only").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let url = read_only_url(&redis, &mut conn).await;
    user_deployment_and_pods(&cluster).await;
    rq_state(&mut conn, 35, Some("rq-worker-a")).await;
    let operator = cluster.operator(&url, "op-a", &[]);
    cluster
        .create(
            "JobQueue",
            "rq",
            json!({
                "source": {"system": "RQ", "queue": "default"},
                "workers": {"scaleTargetRef": {"name": DEPLOYMENT}},
                "scaling": {"maxReplicas": 6, "targetPerReplica": 10, "pollInterval": "200ms",
                            "cooldown": "2s", "scaleDown": {"stabilizationWindow": "1s"}}
            }),
        )
        .await;
    let ready = cluster
        .condition("JobQueue", "rq", "Ready", "True", DEADLINE)
        .await;
    assert_eq!(ready.reason, "Adopted", "{ready:?}");
    assert!(
        ready.message.contains("RQ queue \"default\""),
        "{:?}",
        ready.message
    );
    cluster
        .event("JobQueue", "rq", "Adopted", &["read only"])
        .await;

    // 35 queued + 1 running = 36 at 10 per replica: 4 replicas.
    replicas_become(&cluster, 4, "4 replicas for 35 queued + 1 running").await;
    // /metrics reports it like a native queue: lag = queued, pending = running.
    let addr = operator.http_addr().await;
    let (_, body) = http_get(addr, "/metrics").await;
    let (samples, _) = parse_metrics(&body);
    let gauge = |metric: &str| {
        value(
            &samples,
            metric,
            &[("namespace", "default"), ("name", "rq")],
        )
    };
    assert_eq!(gauge("jobqueue_lag"), Some(35.0), "{body}");
    assert_eq!(gauge("jobqueue_pending"), Some(1.0), "{body}");
    let status = cluster.jobqueues().get("rq").await.expect("get");
    assert!(
        status.data["status"]["stream"].is_null(),
        "an adopted queue has no stream of the operator's: {:?}",
        status.data["status"]
    );

    // The queue drains; the worker on pod rq-worker-a still runs its job: one replica stays, and it
    // is the busy pod the ReplicaSet is told to keep.
    rq_state(&mut conn, 0, Some("rq-worker-a")).await;
    replicas_become(&cluster, 1, "1 replica while a job runs").await;
    let (busy, idle) = (
        deletion_cost(&cluster, "rq-worker-a").await,
        deletion_cost(&cluster, "rq-worker-b").await,
    );
    assert!(
        busy.is_some_and(|b| b >= 1000) && busy > idle,
        "the busy pod must cost more to delete: busy {busy:?}, idle {idle:?}"
    );
    // Well past the cooldown, the running job still holds the last replica.
    let held_from = Instant::now();
    while held_from.elapsed() < COOLDOWN * 2 + SLACK {
        assert_eq!(
            replicas(&cluster, DEPLOYMENT).await,
            1,
            "scaled to zero while a job was running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The job ends: to zero after the cooldown.
    rq_state(&mut conn, 0, None).await;
    replicas_become(&cluster, 0, "0 replicas once nothing runs").await;

    // Schedules fire only into native queues.
    cluster
        .create(
            "Schedule",
            "nightly",
            json!({"schedule": "0 3 * * *", "queueRef": {"name": "rq"}}),
        )
        .await;
    let refused = cluster
        .condition("Schedule", "nightly", "Ready", "False", DEADLINE)
        .await;
    assert_eq!(refused.reason, "QueueAdopted", "{refused:?}");

    // Reading as a user that may not write worked throughout: no NOPERM in the log.
    let log = operator.log();
    assert!(
        !log.contains("NOPERM"),
        "the operator tried to write:\n{log}"
    );
    let pending: Vec<String> = redis::cmd("LRANGE")
        .arg("rq:queue:default")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("LRANGE");
    assert!(pending.is_empty());
}

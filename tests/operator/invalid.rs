//! Resources the schema cannot reject (docs/architecture.md#planning): a bad cron, zone,
//! queue, Secret key or scale target, and an unreachable Redis, each reported on the resource
//! and in an Event, while the operator keeps serving the good ones.

use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, Operator, jobs, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::fixtures::{Conn, replicas, secret};

/// Resources the schema cannot reject: each gets Ready=False and a Warning Event naming the
/// problem, and the operator keeps serving the good ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_reported() {
    let cluster = Cluster::start("invalid_resources_are_reported").await;
    let redis = RedisServer::start();
    secret(&cluster, "nokey", &[("other", &redis.url())]).await;
    // Watching one namespace (a Role instead of a ClusterRole in the chart).
    let mut operator = cluster.operator(&redis.url(), "op-a", &["--namespace", "default"]);

    cluster
        .create(
            "JobQueue",
            "badsecret",
            json!({"redis": {"urlSecretRef": {"name": "nokey", "key": "url"}}}),
        )
        .await;
    cluster
        .create("JobQueue", "good", json!({"redis": {"url": redis.url()}}))
        .await;
    let bad = bad_schedules();
    for (name, spec, _, _) in &bad {
        cluster.create("Schedule", name, spec.clone()).await;
    }
    secret_problems_reported(&cluster).await;

    for (name, _, reason, words) in &bad {
        let c = cluster
            .condition("Schedule", name, "Ready", "False", Duration::from_secs(30))
            .await;
        assert_eq!(&c.reason, reason, "{name}: {c:?}");
        for word in words {
            assert!(
                c.message.contains(word),
                "{name}: {word} not in {:?}",
                c.message
            );
        }
        let e = cluster.event("Schedule", name, reason, words).await;
        assert_eq!(e.type_.as_deref(), Some("Warning"));
    }
    cluster
        .condition("JobQueue", "good", "Ready", "True", Duration::from_secs(10))
        .await;
    let conn = moved_schedule_fires_where_it_points(&cluster, &redis.url()).await;
    scale_target_missing_then_adopted(&cluster, &conn, &redis.url()).await;
    user_deployment_scaled_not_replaced(&cluster, &conn).await;
    unreachable_redis_reported(&cluster, &mut operator).await;
}

/// Schedules the schema accepts and the operator refuses: (name, spec, reason, words the
/// condition and the Event say).
fn bad_schedules() -> [(&'static str, Value, &'static str, Vec<&'static str>); 3] {
    [
        (
            "badcron",
            json!({"schedule": "61 * * * *", "queueRef": {"name": "good"}}),
            "InvalidSpec",
            vec!["spec.schedule", "61"],
        ),
        (
            "badzone",
            json!({"schedule": "* * * * *", "timeZone": "Mars/Olympus", "queueRef": {"name": "good"}}),
            "InvalidSpec",
            vec!["spec.timeZone", "Mars/Olympus"],
        ),
        (
            "noqueue",
            json!({"schedule": "* * * * *", "queueRef": {"name": "missing"}}),
            "QueueNotFound",
            vec!["missing", "spec.queueRef.name"],
        ),
    ]
}

/// A Secret without the named key, and a missing Secret: Ready=False naming them, a Warning
/// Event; a queue that never got provisioned can be deleted even with deletionPolicy Delete.
async fn secret_problems_reported(cluster: &Cluster) {
    let c = cluster
        .condition(
            "JobQueue",
            "badsecret",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "RedisSecretMissing");
    for word in ["nokey", "\"url\"", "spec.redis.urlSecretRef.key"] {
        assert!(c.message.contains(word), "{word} not in {:?}", c.message);
    }
    let e = cluster
        .event(
            "JobQueue",
            "badsecret",
            "RedisSecretMissing",
            &["nokey", "spec.redis.urlSecretRef.key"],
        )
        .await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    // A queue that never got provisioned can be deleted even with deletionPolicy Delete.
    cluster
        .create(
            "JobQueue",
            "never",
            json!({"redis": {"urlSecretRef": {"name": "absent", "key": "url"}}, "deletionPolicy": "Delete"}),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "never",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert!(c.message.contains("absent"), "{:?}", c.message);
    cluster
        .jobqueues()
        .delete("never", &DeleteParams::default())
        .await
        .expect("deleting");
    cluster.gone("JobQueue", "never").await;
}

/// A Schedule moved to another queue (then to a missing one) fires only where it points:
/// its entry leaves the queue it was on. Returns a connection to the test's Redis.
async fn moved_schedule_fires_where_it_points(cluster: &Cluster, redis_url: &str) -> Conn {
    cluster
        .create("JobQueue", "other", json!({"redis": {"url": redis_url}}))
        .await;
    cluster
        .create(
            "Schedule",
            "mover",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "good"}}),
        )
        .await;
    let good = QueueKeys::new(default_stream("default", "good"));
    let other = QueueKeys::new(default_stream("default", "other"));
    let conn = redis_conn(redis_url).await;
    fired_into(&conn, good.clone()).await;
    let schedules = cluster.schedules();
    let point_at = |queue: &'static str| {
        let schedules = schedules.clone();
        async move {
            schedules
                .patch(
                    "mover",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({"spec": {"queueRef": {"name": queue}}})),
                )
                .await
                .expect("moving the Schedule")
        }
    };
    point_at("other").await;
    fired_into(&conn, other.clone()).await;
    assert!(
        !armed(&conn, good.clone()).await,
        "the schedule still fires into its old queue"
    );
    point_at("missing").await;
    cluster
        .condition(
            "Schedule",
            "mover",
            "Ready",
            "False",
            Duration::from_secs(15),
        )
        .await;
    assert!(
        !armed(&conn, other.clone()).await,
        "a schedule pointing at a missing queue still fires"
    );
    conn
}

/// Waits for a job of the moved schedule in `keys`' stream.
async fn fired_into(conn: &Conn, keys: QueueKeys) {
    let conn = conn.clone();
    eventually(
        Duration::from_secs(15),
        "a job of the moved schedule",
        || {
            let mut conn = conn.clone();
            let stream = keys.stream.clone();
            async move {
                let n = jobs(&mut conn, &stream).await.len();
                if n > 0 {
                    Ok(())
                } else {
                    Err(format!("none in {stream}"))
                }
            }
        },
    )
    .await;
}

/// Whether the moved schedule has a run stored in `keys`' queue.
async fn armed(conn: &Conn, keys: QueueKeys) -> bool {
    let mut conn = conn.clone();
    let n: i64 = redis::cmd("EXISTS")
        .arg(keys.schedule("mover"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    n == 1
}

/// scaleTargetRef: a missing workload is named; an existing one is scaled, not replaced,
/// and its adopted stream keeps its data.
/// This step: the missing workload is named, and the stream is given 25 jobs.
async fn scale_target_missing_then_adopted(cluster: &Cluster, conn: &Conn, redis_url: &str) {
    let mut conn = conn.clone();
    cluster
        .create(
            "JobQueue",
            "external",
            json!({
                "redis": {"url": redis_url},
                "stream": "media:{thumbnails}",
                "startFrom": "Beginning",
                "workers": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "thumbnail-worker"}},
                "scaling": {"maxReplicas": 3, "targetPerReplica": 10, "pollInterval": "1s"}
            }),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "external",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "ScaleTargetNotFound");
    assert!(c.message.contains("thumbnail-worker"), "{:?}", c.message);
    for i in 0..25 {
        let _: String = redis::cmd("XADD")
            .arg("media:{thumbnails}")
            .arg("*")
            .arg("id")
            .arg(format!("t{i}"))
            .arg("payload")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
}

/// The user's Deployment, once it exists, is scaled (not replaced) and the adopted stream keeps
/// its data.
async fn user_deployment_scaled_not_replaced(cluster: &Cluster, conn: &Conn) {
    let mut conn = conn.clone();
    let mine: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "thumbnail-worker", "labels": {"team": "media"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "thumbnail-worker"}},
            "template": {"metadata": {"labels": {"app": "thumbnail-worker"}},
                         "spec": {"containers": [{"name": "w", "image": "thumbs:1"}]}}
        }
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &mine)
        .await
        .expect("creating the user's Deployment");
    // Nothing watches the user's Deployment: the 30 s retry finds it, or a spec change does.
    cluster
        .jobqueues()
        .patch(
            "external",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"scaling": {"maxReplicas": 4}}})),
        )
        .await
        .expect("bumping the spec");
    cluster
        .condition(
            "JobQueue",
            "external",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "the user's Deployment scaled to 3",
        || async {
            match replicas(cluster, "thumbnail-worker").await {
                3 => Ok(()),
                r => Err(format!("{r}")),
            }
        },
    )
    .await;
    let after = deployments.get("thumbnail-worker").await.expect("get");
    assert!(after.metadata.owner_references.is_none(), "not taken over");
    assert_eq!(
        after
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .image
            .as_deref(),
        Some("thumbs:1")
    );
    let length: i64 = redis::cmd("XLEN")
        .arg("media:{thumbnails}")
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(length, 25, "the adopted stream keeps its data");
}

/// A Redis nobody listens on: RedisReachable=False with the reason, an Event, and the
/// failed reconciles counted on /metrics; the operator keeps running.
async fn unreachable_redis_reported(cluster: &Cluster, operator: &mut Operator) {
    cluster
        .create(
            "JobQueue",
            "nowhere",
            json!({"redis": {"url": "redis://127.0.0.1:1"}}),
        )
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "nowhere",
            "RedisReachable",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c.reason, "RedisUnreachable");
    assert!(c.message.contains("127.0.0.1:1"), "{:?}", c.message);
    cluster
        .condition(
            "JobQueue",
            "nowhere",
            "Ready",
            "False",
            Duration::from_secs(5),
        )
        .await;
    cluster
        .event("JobQueue", "nowhere", "RedisUnreachable", &["127.0.0.1:1"])
        .await;
    let addr = operator.http_addr().await;
    eventually(
        Duration::from_secs(10),
        "counted reconcile errors",
        || async {
            let (_, body) = http_get(addr, "/metrics").await;
            let (samples, _) = parse_metrics(&body);
            let errors = value(
                &samples,
                "jobqueue_reconcile_errors_total",
                &[("controller", "jobqueue"), ("reason", "Redis")],
            );
            match errors {
                Some(n) if n >= 1.0 => Ok(()),
                _ => Err(body),
            }
        },
    )
    .await;
    assert!(operator.is_running());
}

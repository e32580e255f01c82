//! Deletion runs through finalizers (docs/architecture.md#provisioning): `Delete` removes every
//! key of a queue, `Retain` keeps its stream, a Schedule's entry goes with it, and a Schedule
//! whose Redis is down waits until its run can be removed.

use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::operator::{Cluster, jobs, jobs_at_least, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::fixtures::{Conn, existing_keys};

/// The Schedule `tick` and its entry go; `reports` (Retain) keeps its stream; `emails`
/// (Delete) takes every key and its owned Deployment with it. A step of
/// [`crate::provisioning`]'s story.
pub async fn delete_and_retain(cluster: &Cluster, conn: &Conn, keys: &QueueKeys) {
    let mut conn = conn.clone();
    let reports = QueueKeys::new(default_stream("default", "reports"));
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    // 4. Deletion: Delete removes the keys, Retain keeps them, a Schedule's entry goes away.
    assert!(
        redis::cmd("EXISTS")
            .arg(reports.schedule("tick"))
            .query_async::<i64>(&mut conn)
            .await
            .expect("EXISTS")
            == 1
    );
    cluster
        .schedules()
        .delete("tick", &DeleteParams::default())
        .await
        .expect("deleting the Schedule");
    cluster.gone("Schedule", "tick").await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(reports.schedule("tick"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    let member: Option<f64> = redis::cmd("ZSCORE")
        .arg(reports.schedules())
        .arg("tick")
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    assert_eq!(
        (exists, member),
        (0, None),
        "the Schedule's Redis entry is removed"
    );
    let fired_before_delete = jobs(&mut conn, &reports.stream).await.len();
    assert!(fired_before_delete >= 1);

    cluster
        .jobqueues()
        .delete("reports", &DeleteParams::default())
        .await
        .expect("deleting reports");
    cluster.gone("JobQueue", "reports").await;
    assert_eq!(
        existing_keys(&mut conn, &reports).await,
        [reports.stream.as_str()],
        "Retain keeps the stream"
    );
    assert_eq!(
        jobs(&mut conn, &reports.stream).await.len(),
        fired_before_delete
    );

    cluster
        .jobqueues()
        .delete("emails", &DeleteParams::default())
        .await
        .expect("deleting emails");
    cluster.gone("JobQueue", "emails").await;
    assert_eq!(
        existing_keys(&mut conn, keys).await,
        Vec::<String>::new(),
        "Delete removes every key of the queue"
    );
    assert!(
        deployments
            .get_opt("emails-workers")
            .await
            .expect("get")
            .is_none(),
        "the owned Deployment goes with its queue"
    );
}

/// A Schedule deleted while its queue is not served (the operator started while the queue's
/// Redis was down) waits until it can remove its run: when Redis is back, the run is removed
/// and the Schedule goes; the run never fires again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_deleted_while_its_redis_is_down_leaves_no_run_behind() {
    let cluster =
        Cluster::start("a_schedule_deleted_while_its_redis_is_down_leaves_no_run_behind").await;
    let mut redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    let mut a = cluster.operator(&redis.url(), "op-a", &[]);
    cluster
        .create("JobQueue", "q", json!({"redis": {"url": redis.url()}}))
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "q"}}),
        )
        .await;
    let keys = QueueKeys::new(default_stream("default", "q"));
    jobs_at_least(&conn, &keys.stream, 1, Duration::from_secs(20)).await;
    // The armed run survives the Redis restart below (a snapshot); the operator does not.
    let () = redis::cmd("SAVE")
        .query_async(&mut conn)
        .await
        .expect("SAVE");
    redis.kill();
    a.sigkill();
    let _b = cluster.operator(&redis.url(), "op-b", &[]);
    let c = cluster
        .condition("JobQueue", "q", "Ready", "False", Duration::from_secs(30))
        .await;
    assert_eq!(c.reason, "RedisUnreachable");

    cluster
        .schedules()
        .delete("beat", &DeleteParams::default())
        .await
        .expect("deleting the Schedule");
    let pending = cluster
        .condition(
            "Schedule",
            "beat",
            "Ready",
            "False",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(pending.reason, "RemovalPending", "{}", pending.message);
    assert!(pending.message.contains("\"q\""), "{}", pending.message);
    assert!(
        cluster.schedules().get_opt("beat").await.unwrap().is_some(),
        "the Schedule went while its run was still armed"
    );

    redis.restart();
    cluster.gone("Schedule", "beat").await;
    let mut conn = redis_conn(&redis.url()).await;
    let armed: Option<f64> = redis::cmd("ZSCORE")
        .arg(keys.schedules())
        .arg("beat")
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    let stored: i64 = redis::cmd("EXISTS")
        .arg(keys.schedule("beat"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert_eq!(
        (armed, stored),
        (None, 0),
        "the deleted Schedule's run is gone"
    );
}

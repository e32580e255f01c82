//! One stream, one JobQueue (docs/architecture.md#provisioning): team B naming team A's stream
//! (as its stream, or as its dead letters) is refused as `StreamClaimed` (naming A), gets no
//! workers, and nothing is done to A's stream on its behalf — no reclaim of A's jobs in flight,
//! no trim, no delete when B goes with `deletionPolicy: Delete`, no schedule fired into it. A
//! Deployment team B runs under a name a queue would manage is not taken over. Deleting A
//! releases the stream, and the next JobQueue naming it takes it over.

use std::time::{Duration, Instant};

use jobqueue_test_support::operator::{Cluster, dynamic_in, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::fixtures::{Conn, SLACK, create_namespaces};

const STREAM: &str = "jobqueue:{team-a/emails}";
const OWNER: &str = "jobqueue:{team-a/emails}:owner";
const DEADLINE: Duration = Duration::from_secs(30);

/// A's stream: 5 jobs; a-worker read 3 and acknowledged the first 2 (1 in flight, 2 unread).
async fn a_stream_in_use(conn: &mut Conn) {
    for i in 0..5 {
        let _: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("id")
            .arg(format!("a{i}"))
            .arg("payload")
            .arg("{}")
            .query_async(conn)
            .await
            .expect("XADD");
    }
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("a-worker")
        .arg("COUNT")
        .arg(3)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    let _: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg("workers")
        .arg(&ids[..2])
        .query_async(conn)
        .await
        .expect("XACK");
}

/// (XLEN, the in-flight job's holder and delivery count): what B would change.
async fn a_state(conn: &mut Conn) -> (u64, String, u64) {
    let len: u64 = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(conn)
        .await
        .expect("XLEN");
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(conn)
        .await
        .expect("XPENDING");
    assert_eq!(pending.len(), 1, "A's job in flight: {pending:?}");
    let (_, holder, _, deliveries) = pending[0].clone();
    (len, holder, deliveries)
}

async fn owner(conn: &mut Conn) -> Option<String> {
    redis::cmd("HGET")
        .arg(OWNER)
        .arg("queue")
        .query_async(conn)
        .await
        .expect("HGET owner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_serves_one_jobqueue_and_another_namespace_cannot_touch_it() {
    let cluster =
        Cluster::start("a_stream_serves_one_jobqueue_and_another_namespace_cannot_touch_it").await;
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis.url()).await;
    create_namespaces(&cluster, &["team-a", "team-b", "team-c"]).await;
    let _operator = cluster.operator(&redis.url(), "op-a", &[]);

    cluster.create("JobQueue", "team-a/emails", json!({})).await;
    let ready = cluster
        .condition("JobQueue", "team-a/emails", "Ready", "True", DEADLINE)
        .await;
    assert_eq!(ready.reason, "Provisioned");
    assert_eq!(owner(&mut conn).await.as_deref(), Some("team-a/emails"));
    a_stream_in_use(&mut conn).await;
    let before = a_state(&mut conn).await;

    // B names A's stream, with everything that would act on it: workers whose absence would
    // make A's consumer look dead, a 1 s visibility timeout, retention of 1 entry, Delete.
    let workers =
        json!({"template": {"spec": {"containers": [{"name": "w", "image": "thief:1"}]}}});
    cluster
        .create(
            "JobQueue",
            "team-b/thief",
            json!({"stream": STREAM, "workers": workers, "retention": {"maxLength": 1},
                   "delivery": {"visibilityTimeout": "1s"}, "deletionPolicy": "Delete"}),
        )
        .await;
    let refused = cluster
        .condition("JobQueue", "team-b/thief", "Ready", "False", DEADLINE)
        .await;
    assert_eq!(refused.reason, "StreamClaimed", "{refused:?}");
    assert!(
        refused.message.contains("team-a/emails"),
        "names the owner: {:?}",
        refused.message
    );
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "team-b");
    assert!(
        deployments
            .get_opt("thief-workers")
            .await
            .expect("get")
            .is_none(),
        "no workers for a claimed stream"
    );
    // Nor may A's stream serve as another queue's dead letters (its Delete would drop it).
    cluster
        .create(
            "JobQueue",
            "team-b/sink",
            json!({"stream": "jobqueue:{team-a/emails}:sink", "deadLetter": {"stream": STREAM},
                   "deletionPolicy": "Delete"}),
        )
        .await;
    let refused = cluster
        .condition("JobQueue", "team-b/sink", "Ready", "False", DEADLINE)
        .await;
    assert_eq!(refused.reason, "StreamClaimed", "{refused:?}");
    assert!(refused.message.contains("team-a/emails"), "{refused:?}");

    // A Deployment team B already runs under the name a queue would manage is left alone.
    let theirs: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api-workers"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": "api:7"}]}}}
    }))
    .expect("deployment");
    deployments
        .create(&kube::api::PostParams::default(), &theirs)
        .await
        .expect("creating team B's own Deployment");
    cluster
        .create("JobQueue", "team-b/api", json!({"workers": workers}))
        .await;
    let refused = cluster
        .condition("JobQueue", "team-b/api", "Ready", "False", DEADLINE)
        .await;
    assert_eq!(refused.reason, "ObjectNotOwned", "{refused:?}");
    let after = deployments.get("api-workers").await.expect("get");
    assert!(
        after.metadata.owner_references.is_none(),
        "taken over: {after:?}"
    );
    let spec = after.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.template.spec.expect("pod spec").containers[0]
            .image
            .as_deref(),
        Some("api:7"),
        "changed"
    );

    cluster
        .create(
            "Schedule",
            "team-b/every-second",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "thief"}}),
        )
        .await;
    let c = cluster
        .condition(
            "Schedule",
            "team-b/every-second",
            "Ready",
            "False",
            DEADLINE,
        )
        .await;
    assert_eq!(c.reason, "QueueNotReady", "{c:?}");

    // Well past B's visibility timeout, the dead-consumer grace and several janitor passes:
    // A's stream is as A left it.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) + SLACK {
        assert_eq!(a_state(&mut conn).await, before, "B acted on A's stream");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // B goes with deletionPolicy: Delete; A's data stays whole and A's.
    dynamic_in(&cluster.client, "JobQueue", "team-b")
        .delete("thief", &DeleteParams::default())
        .await
        .expect("deleting B");
    cluster.gone("JobQueue", "team-b/thief").await;
    assert_eq!(
        a_state(&mut conn).await,
        before,
        "B's deletion touched A's stream"
    );
    assert_eq!(owner(&mut conn).await.as_deref(), Some("team-a/emails"));

    // A goes (Retain): its jobs stay, the stream is free, and the next JobQueue takes it.
    dynamic_in(&cluster.client, "JobQueue", "team-a")
        .delete("emails", &DeleteParams::default())
        .await
        .expect("deleting A");
    cluster.gone("JobQueue", "team-a/emails").await;
    assert_eq!(
        owner(&mut conn).await,
        None,
        "A's deletion released the stream"
    );
    assert_eq!(a_state(&mut conn).await.0, 5, "Retain keeps the jobs");
    cluster
        .create("JobQueue", "team-c/heir", json!({"stream": STREAM}))
        .await;
    cluster
        .condition("JobQueue", "team-c/heir", "Ready", "True", DEADLINE)
        .await;
    assert_eq!(owner(&mut conn).await.as_deref(), Some("team-c/heir"));
}

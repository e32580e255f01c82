//! Per-queue Redis users: two queues on the default Redis in two namespaces each get a Redis
//! user of their own in their workers' Secret. With queue A's URL a worker enqueues, takes
//! (`FCALL jobqueue_take`), reads, acknowledges and completes A's jobs, and gets NOPERM on B's
//! stream and on the function library. A reconcile keeps the password; the
//! `jobqueue.io/rotate-credentials` annotation replaces it (the old one no longer
//! authenticates); deleting A deletes its user. Where the operator's own user may not run
//! `ACL`, queues are served with the shared URL and say so (`IsolatedCredentials=False`,
//! `SharedCredentials`, a Warning Event), or are refused with `--per-queue-users required`.

use std::time::Duration;

use jobqueue_client::{EnqueueOptions, JobState, Outcome, Queue, Worker};
use jobqueue_test_support::operator::{Cluster, dynamic_in, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::fixtures::create_namespaces;

const DEADLINE: Duration = Duration::from_secs(30);
const A: &str = "jobqueue:{team-a/emails}";
const B: &str = "jobqueue:{team-b/emails}";

fn workers() -> serde_json::Value {
    json!({"workers": {"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}}})
}

/// The URL in `ns/name`'s workers Secret, once there.
async fn workers_url(cluster: &Cluster, ns: &str, name: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let secret_name = format!("{name}-workers-redis");
    eventually(DEADLINE, &format!("Secret {ns}/{secret_name}"), || {
        let secrets = secrets.clone();
        let secret_name = secret_name.clone();
        async move {
            let s = secrets
                .get_opt(&secret_name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("not yet")?;
            let url = s.data.and_then(|d| d.get("url").cloned()).ok_or("no url")?;
            Ok::<_, String>(String::from_utf8(url.0).expect("UTF-8 URL"))
        }
    })
    .await
}

fn is_noperm(e: &impl std::fmt::Display) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("noperm") || text.contains("no permissions")
}

async fn connects(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A's worker, with A's own URL, does the whole job cycle on A's queue.
async fn works_own_queue(url: &str) {
    let q = Queue::from_url(url, A).await.expect("A's queue as A");
    let id = q
        .enqueue(&json!({"to": "a@example.com"}), &EnqueueOptions::default())
        .await
        .expect("enqueue as A");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(
        Worker::new(url, A)
            .consumer("a-1")
            .run_until(stop, |_| async {
                Outcome::Complete(Some("\"sent\"".into()))
            }),
    );
    let done = q.wait(&id, DEADLINE).await.expect("wait");
    assert_eq!(
        (done.state, done.result),
        (JobState::Succeeded, Some(json!("sent")))
    );
    stop_tx.send_replace(true);
    worker.await.expect("join").expect("the worker ran as A");

    // The raw stream commands a worker of another client library uses.
    let mut conn = redis_conn(url).await;
    let _: String = redis::cmd("XADD")
        .arg(A)
        .arg("*")
        .arg("id")
        .arg("raw")
        .query_async(&mut conn)
        .await
        .expect("XADD as A");
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "workers", "raw-1", "COUNT", "1", "STREAMS", A, ">"])
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP as A");
    let entry = &read.keys[0].ids[0].id;
    let acked: u64 = redis::cmd("XACK")
        .arg(A)
        .arg("workers")
        .arg(entry)
        .query_async(&mut conn)
        .await
        .expect("XACK as A");
    assert_eq!(acked, 1);

    // Not B's stream, not the library.
    for cmd in [
        redis::cmd("XLEN").arg(B).clone(),
        redis::cmd("FUNCTION").arg("DELETE").arg("jobqueue").clone(),
        redis::cmd("KEYS").arg("*").clone(),
    ] {
        let e = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err("refused");
        assert!(is_noperm(&e), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queue_on_the_default_redis_gets_a_user_of_its_own() {
    let cluster = Cluster::start("each_queue_on_the_default_redis_gets_a_user_of_its_own").await;
    let redis = RedisServer::start();
    create_namespaces(&cluster, &["team-a", "team-b"]).await;
    let _operator = cluster.operator(&redis.url(), "op-a", &[]);
    for queue in ["team-a/emails", "team-b/emails"] {
        cluster.create("JobQueue", queue, workers()).await;
        cluster
            .condition("JobQueue", queue, "Ready", "True", DEADLINE)
            .await;
        let c = cluster
            .condition("JobQueue", queue, "IsolatedCredentials", "True", DEADLINE)
            .await;
        assert_eq!(c.reason, "PerQueueUser");
    }
    let a = workers_url(&cluster, "team-a", "emails").await;
    let b = workers_url(&cluster, "team-b", "emails").await;
    let user = |u: &str| url::Url::parse(u).expect("URL").username().to_string();
    assert_eq!(user(&a), "jq.team-a.emails");
    assert_eq!(user(&b), "jq.team-b.emails");
    assert_ne!(a, redis.url(), "not the operator's credentials");

    works_own_queue(&a).await;

    // Another reconcile (a spec change) keeps the password: the workers would roll otherwise.
    let queues = dynamic_in(&cluster.client, "JobQueue", "team-a");
    let patch = |p: serde_json::Value| {
        let queues = queues.clone();
        async move {
            queues
                .patch("emails", &PatchParams::default(), &Patch::Merge(&p))
                .await
                .expect("patching A")
        }
    };
    patch(json!({"spec": {"delivery": {"maxDeliveries": 7}}})).await;
    cluster
        .condition("JobQueue", "team-a/emails", "Ready", "True", DEADLINE)
        .await;
    assert_eq!(workers_url(&cluster, "team-a", "emails").await, a);

    // Rotation: a new password, and the old one no longer authenticates.
    patch(json!({"metadata": {"annotations": {"jobqueue.io/rotate-credentials": "1"}}})).await;
    let rotated = eventually(DEADLINE, "A's password to change", || {
        let cluster = &cluster;
        let a = a.clone();
        async move {
            let now = workers_url(cluster, "team-a", "emails").await;
            if now == a {
                Err("unchanged".to_string())
            } else {
                Ok(now)
            }
        }
    })
    .await;
    assert_eq!(user(&rotated), "jq.team-a.emails");
    connects(&rotated).await.expect("the new password works");
    let e = connects(&a).await.expect_err("the old password is refused");
    assert!(e.to_lowercase().contains("authentication"), "{e}");

    // Deleting A deletes its user; B's stays.
    queues
        .delete("emails", &DeleteParams::default())
        .await
        .expect("deleting A");
    cluster.gone("JobQueue", "team-a/emails").await;
    let mut admin = redis_conn(&redis.url()).await;
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .expect("ACL USERS");
    assert!(
        !users.contains(&"jq.team-a.emails".to_string()),
        "{users:?}"
    );
    assert!(users.contains(&"jq.team-b.emails".to_string()), "{users:?}");
    connects(&rotated).await.expect_err("A's user is gone");
    connects(&b).await.expect("B's user works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acl_rights_queues_share_the_default_url_and_say_so() {
    let cluster =
        Cluster::start("without_acl_rights_queues_share_the_default_url_and_say_so").await;
    let redis = RedisServer::start();
    let mut admin = redis_conn(&redis.url()).await;
    let () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "operator",
            "on",
            ">operator-pw",
            "~*",
            "&*",
            "+@all",
            "-acl",
        ])
        .query_async(&mut admin)
        .await
        .expect("an operator user without ACL rights");
    let operator_url = redis
        .url()
        .replacen("redis://", "redis://operator:operator-pw@", 1);

    let mut auto = cluster.operator(&operator_url, "op-auto", &[]);
    cluster.create("JobQueue", "shared", workers()).await;
    cluster
        .condition("JobQueue", "shared", "Ready", "True", DEADLINE)
        .await;
    let c = cluster
        .condition(
            "JobQueue",
            "shared",
            "IsolatedCredentials",
            "False",
            DEADLINE,
        )
        .await;
    assert_eq!(c.reason, "SharedCredentials");
    assert!(c.message.contains("NOPERM"), "{}", c.message);
    cluster
        .event("JobQueue", "shared", "SharedCredentials", &["ACL SETUSER"])
        .await;
    assert_eq!(
        workers_url(&cluster, "default", "shared").await,
        operator_url,
        "served with the shared URL"
    );
    // Released, so the next operator leads at once.
    auto.sigterm().await;

    let _required = cluster.operator(
        &operator_url,
        "op-required",
        &["--per-queue-users", "required"],
    );
    cluster.create("JobQueue", "strict", workers()).await;
    let c = cluster
        .condition("JobQueue", "strict", "Ready", "False", DEADLINE)
        .await;
    assert_eq!(c.reason, "PerQueueUserUnavailable", "{c:?}");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    assert!(
        secrets
            .get_opt("strict-workers-redis")
            .await
            .expect("GET")
            .is_none(),
        "no shared credentials for a queue that requires its own"
    );
}

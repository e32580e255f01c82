//! A Redis outage (docs/architecture.md#operator-loops): Redis SIGKILLed and restarted from
//! its snapshot; the queue reports it and recovers, the operator keeps running, status writes
//! cause no reconciles, and a consumer group deleted behind its back comes back.

use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::{Cluster, Operator, jobs, jobs_at_least, redis_conn};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::fixtures::{Conn, POLL_INTERVAL, SLACK, replicas};
use crate::runs::{assert_accounted, runs};

/// Redis SIGKILLed (restarted from its last snapshot): the queue goes RedisReachable=False and
/// back to True, the operator keeps running, and its schedule's jobs stay unique and accounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_restart() {
    let cluster = Cluster::start("redis_crash_and_restart").await;
    let mut redis = RedisServer::start();
    let mut operator = cluster.operator(&redis.url(), "op-a", &["--misfire-grace", "1s"]);
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
    cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let keys = QueueKeys::new(default_stream("default", "q"));
    let saved = {
        let mut conn = redis_conn(&redis.url()).await;
        jobs_at_least(&conn, &keys.stream, 2, Duration::from_secs(15)).await;
        status_writes_cause_no_reconciles(&cluster, &operator).await;
        group_recreated_after_drift(&cluster, &conn, &keys).await;

        // A crash of a Redis with snapshots: what is written after the snapshot is lost.
        // Read before SAVE: a fire between SAVE and a later read would be in `saved` only.
        let saved = jobs(&mut conn, &keys.stream).await;
        let () = redis::cmd("SAVE")
            .query_async(&mut conn)
            .await
            .expect("SAVE");
        saved
    };
    outage_reported(&cluster, &mut redis, &mut operator).await;
    let mut conn = jobs_after_the_restart(&cluster, &mut redis, &mut operator, &keys).await;
    let status = operator.sigterm().await;
    assert!(status.success(), "{status}");
    let beat = runs(&mut conn, &keys, "beat").await;
    assert_accounted("beat", &beat);
    let after: Vec<String> = jobs(&mut conn, &keys.stream)
        .await
        .into_iter()
        .map(|j| j.entry_id)
        .collect();
    let before: Vec<String> = saved.into_iter().map(|j| j.entry_id).collect();
    assert!(
        before.len() >= 2 && after.starts_with(&before),
        "the snapshot's jobs survive the restart: {before:?} vs {after:?}"
    );
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await
        .expect("the group survives");
    assert_eq!(groups.groups.len(), 1);
}

/// Status writes (each second here: the schedule fires, the queue grows) trigger no
/// reconciles: only spec, deletion and queue readiness do.
async fn status_writes_cause_no_reconciles(cluster: &Cluster, operator: &Operator) {
    let addr = operator.http_addr().await;
    let reconciles = || async move {
        let (_, body) = http_get(addr, "/metrics").await;
        let (samples, _) = parse_metrics(&body);
        ["jobqueue", "schedule"].map(|c| {
            value(
                &samples,
                "jobqueue_reconcile_duration_seconds_count",
                &[("controller", c)],
            )
            .unwrap_or(0.0)
        })
    };
    let status_writes = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("status"))
            .count()
    };
    let before = reconciles().await;
    let writes = status_writes();
    eventually(Duration::from_secs(15), "6 more status writes", || async {
        match status_writes() - writes {
            n if n >= 6 => Ok(()),
            n => Err(format!("{n}")),
        }
    })
    .await;
    assert_eq!(
        reconciles().await,
        before,
        "status writes caused reconciles"
    );
}

/// Drift: the group deleted behind the operator's back is recreated, with an Event.
async fn group_recreated_after_drift(cluster: &Cluster, conn: &Conn, keys: &QueueKeys) {
    let mut conn = conn.clone();
    let () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&keys.stream)
        .arg("workers")
        .query_async(&mut conn)
        .await
        .map(|_: i64| ())
        .expect("XGROUP DESTROY");
    cluster
        .event("JobQueue", "q", "ConsumerGroupRecreated", &["\"workers\""])
        .await;
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&keys.stream)
        .query_async(&mut conn)
        .await
        .expect("XINFO GROUPS");
    assert_eq!(groups.groups.len(), 1);
}

/// Redis killed: RedisReachable=False and Ready=False with the reason; the operator runs on.
async fn outage_reported(cluster: &Cluster, redis: &mut RedisServer, operator: &mut Operator) {
    redis.kill();
    let down = cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "False",
            Duration::from_secs(20),
        )
        .await;
    assert!(!down.message.is_empty());
    let ready = cluster
        .condition("JobQueue", "q", "Ready", "False", Duration::from_secs(10))
        .await;
    assert_eq!(ready.reason, "RedisUnreachable");
    assert!(
        operator.is_running(),
        "the operator survives a Redis outage"
    );
}

/// Redis restarted: the queue is ready again and its schedule fires; returns a connection.
async fn jobs_after_the_restart(
    cluster: &Cluster,
    redis: &mut RedisServer,
    operator: &mut Operator,
    keys: &QueueKeys,
) -> Conn {
    redis.restart();
    let restarted = Timestamp::now().as_millisecond();
    cluster
        .condition(
            "JobQueue",
            "q",
            "RedisReachable",
            "True",
            Duration::from_secs(20),
        )
        .await;
    cluster
        .condition("JobQueue", "q", "Ready", "True", Duration::from_secs(10))
        .await;
    let conn = redis_conn(&redis.url()).await;
    eventually(
        Duration::from_secs(20),
        "scheduled jobs after the restart",
        || {
            let mut conn = conn.clone();
            let keys = keys.clone();
            async move {
                let all = jobs(&mut conn, &keys.stream).await;
                let after = all
                    .iter()
                    .filter(|j| j.enqueued_at > restarted + 1000)
                    .count();
                if after >= 3 {
                    Ok(())
                } else {
                    Err(format!("{} jobs, {after} after the restart", all.len()))
                }
            }
        },
    )
    .await;
    assert!(
        operator.is_running(),
        "the operator survives a Redis restart"
    );
    conn
}

/// A black-holed Redis (the server stopped with SIGSTOP: connections open, no answers) slows
/// no other endpoint: a queue on a healthy Redis still scales on a burst within two poll
/// intervals, and the black-holed queue is reported unreachable, then recovers when thawed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_redis_does_not_slow_the_other_endpoints() {
    let cluster = Cluster::start("a_black_holed_redis_does_not_slow_the_other_endpoints").await;
    let near = RedisServer::start();
    let far = RedisServer::start();
    let _operator = cluster.operator(&near.url(), "op-a", &[]);
    let workers = json!({"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}});
    let scaling = json!({"maxReplicas": 3, "targetPerReplica": 10, "pollInterval": "1s"});
    for (name, url) in [("near", near.url()), ("far", far.url())] {
        cluster
            .create(
                "JobQueue",
                name,
                json!({"redis": {"url": url}, "workers": workers, "scaling": scaling}),
            )
            .await;
        cluster
            .condition("JobQueue", name, "Ready", "True", Duration::from_secs(30))
            .await;
    }
    far.freeze();
    // Let the loops reach the frozen server: its replies now take the response timeout.
    cluster
        .condition(
            "JobQueue",
            "far",
            "RedisReachable",
            "False",
            Duration::from_secs(90),
        )
        .await;

    let mut conn = redis_conn(&near.url()).await;
    let keys = QueueKeys::new(default_stream("default", "near"));
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..25 {
        pipe.cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("id")
            .arg(format!("n{i}"))
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.expect("XADD burst");
    let burst = std::time::Instant::now();
    eventually(
        POLL_INTERVAL * 2 + SLACK,
        "the healthy queue to scale to 3 while the other Redis is black-holed",
        || async {
            match replicas(&cluster, "near-workers").await {
                3 => Ok(()),
                r => Err(format!("{r} replicas after {:?}", burst.elapsed())),
            }
        },
    )
    .await;

    far.thaw();
    cluster
        .condition(
            "JobQueue",
            "far",
            "RedisReachable",
            "True",
            Duration::from_secs(60),
        )
        .await;
}

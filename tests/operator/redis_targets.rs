//! Where a queue's Redis is (docs/architecture.md#redis-data-model): a three-node Redis
//! Cluster served like a single server, and a TLS Redis trusted through a private CA.

use std::net::SocketAddr;
use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_test_support::metrics::{http_get, parse_metrics, value};
use jobqueue_test_support::operator::Cluster;
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::wait::eventually;
use redis::cluster_async::ClusterConnection;
use serde_json::json;

use crate::fixtures::{replicas, secret};

/// A queue on a three-node Redis Cluster: provisioned, scaled from its backlog, and fed by a
/// Schedule, like on a single server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_on_a_redis_cluster() {
    let cluster = Cluster::start("queue_on_a_redis_cluster").await;
    let redis = jobqueue_test_support::redis::RedisCluster::start();
    let operator = cluster.operator("redis://127.0.0.1:1", "op-a", &["--log-format", "json"]);
    cluster
        .create(
            "JobQueue",
            "sharded",
            json!({
                "redis": {"url": redis.url()},
                "workers": {"template": {"spec": {"containers": [{"name": "w", "image": "w:1"}]}}},
                "scaling": {"maxReplicas": 2, "targetPerReplica": 10, "pollInterval": "1s"}
            }),
        )
        .await;
    cluster
        .create(
            "Schedule",
            "beat",
            json!({"schedule": "* * * * * *", "queueRef": {"name": "sharded"}}),
        )
        .await;
    cluster
        .condition(
            "JobQueue",
            "sharded",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    cluster
        .condition("Schedule", "beat", "Ready", "True", Duration::from_secs(30))
        .await;

    let keys = QueueKeys::new(default_stream("default", "sharded"));
    let client = redis::cluster::ClusterClient::new(redis.seed_urls()).expect("cluster client");
    let mut conn = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..15 {
        let _: String = redis::cmd("XADD")
            .arg(&keys.stream)
            .arg("*")
            .arg("id")
            .arg(format!("c{i}"))
            .arg("payload")
            .arg("{}")
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    scaled_and_fed(&cluster, &conn, &keys).await;

    // Steady state with an owned Deployment: status keeps being written, nothing reconciles
    // (a reconcile re-applies the Deployment; that must not wake the controller again).
    let addr = operator.http_addr().await;
    steady_state_reconciles_nothing(&cluster, addr).await;
}

/// The backlog scales the queue to 2 replicas, and its Schedule enqueues jobs.
async fn scaled_and_fed(cluster: &Cluster, conn: &ClusterConnection, keys: &QueueKeys) {
    eventually(Duration::from_secs(10), "2 replicas", || async {
        match replicas(cluster, "sharded-workers").await {
            2 => Ok(()),
            r => Err(format!("{r}")),
        }
    })
    .await;
    eventually(Duration::from_secs(10), "scheduled jobs", || {
        let mut conn = conn.clone();
        let stream = keys.stream.clone();
        async move {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let scheduled = reply
                .ids
                .iter()
                .filter(|e| e.map.contains_key("scheduled_for"))
                .count();
            if scheduled >= 2 {
                Ok(())
            } else {
                Err(format!("{scheduled}"))
            }
        }
    })
    .await;
}

/// Steady state: status writes go on, reconciles and scale reads do not.
async fn steady_state_reconciles_nothing(cluster: &Cluster, addr: SocketAddr) {
    let reconciles = || async move {
        let (_, body) = http_get(addr, "/metrics").await;
        value(
            &parse_metrics(&body).0,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "jobqueue")],
        )
    };
    let status_writes = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.subresource.as_deref() == Some("status"))
            .count()
    };
    let more_status_writes = |n: usize| async move {
        let writes = status_writes();
        eventually(
            Duration::from_secs(15),
            &format!("{n} more status writes"),
            || async {
                match status_writes() - writes {
                    seen if seen >= n => Ok(()),
                    seen => Err(format!("{seen}")),
                }
            },
        )
        .await;
    };
    // A reconcile (of the queue's creation) may still be running. The baseline is a count
    // that held across two status writes.
    let mut before = reconciles().await;
    for _ in 0..10 {
        more_status_writes(2).await;
        let now = reconciles().await;
        if now == before {
            break;
        }
        before = now;
    }
    let scale_reads = || {
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.verb == "get" && r.subresource.as_deref() == Some("scale"))
            .count()
    };
    let reads_before = scale_reads();
    more_status_writes(4).await;
    assert_eq!(
        reconciles().await,
        before,
        "the operator keeps reconciling an unchanged queue"
    );
    // Each status write follows a poll of the queue: its replica count came from the watch of
    // the worker Deployment, not from a GET of the scale subresource per poll.
    assert_eq!(
        scale_reads(),
        reads_before,
        "the scaler GETs the scale subresource of an unchanged Deployment"
    );
    let (_, body) = http_get(addr, "/metrics").await;
    assert_eq!(
        value(
            &parse_metrics(&body).0,
            "jobqueue_replicas",
            &[("namespace", "default"), ("name", "sharded")]
        ),
        Some(2.0),
        "the replica count read from the watch"
    );
}

/// A queue on a TLS Redis with a private CA from a Secret (`spec.redis.tls.caSecretRef`)
/// becomes Ready; without the CA the server is not trusted and the condition says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_with_a_private_ca() {
    let cluster = Cluster::start("tls_redis_with_a_private_ca").await;
    let plain = RedisServer::start();
    let tls = jobqueue_test_support::redis::TlsRedisServer::start();
    secret(&cluster, "redis-ca", &[("ca.crt", tls.ca_pem())]).await;
    let _operator = cluster.operator(&plain.url(), "op-tls", &[]);

    cluster
        .create(
            "JobQueue",
            "trusted",
            json!({"redis": {"url": tls.url(), "tls": {"caSecretRef": {"name": "redis-ca", "key": "ca.crt"}}}}),
        )
        .await;
    cluster
        .create(
            "JobQueue",
            "untrusted",
            json!({"redis": {"url": tls.url()}}),
        )
        .await;

    cluster
        .condition(
            "JobQueue",
            "trusted",
            "Ready",
            "True",
            Duration::from_secs(30),
        )
        .await;
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", tls.server().port()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(default_stream("default", "trusted"))
        .query_async(&mut conn)
        .await
        .expect("the stream was provisioned over TLS");
    assert!(format!("{groups:?}").contains("workers"), "{groups:?}");

    let refused = cluster
        .condition(
            "JobQueue",
            "untrusted",
            "Ready",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(refused.reason, "RedisUnreachable", "{refused:?}");

    // One URL, two TLS settings: the untrusted queue's retries never change how the trusted
    // queue's server is verified. The trusted queue keeps reading its numbers meanwhile.
    for i in 0..7 {
        let _: String = redis::cmd("XADD")
            .arg(default_stream("default", "trusted"))
            .arg("*")
            .arg("id")
            .arg(format!("j{i}"))
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let watched = std::time::Instant::now();
    let mut seen_lag = false;
    while watched.elapsed() < Duration::from_secs(6) || !seen_lag {
        assert!(
            watched.elapsed() < Duration::from_secs(30),
            "the trusted queue never reported its 7 jobs"
        );
        let obj = cluster.jobqueues().get("trusted").await.expect("get");
        let ready = jobqueue_test_support::operator::conditions(&obj)
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("a Ready condition");
        assert_eq!(
            ready.status, "True",
            "the trusted queue lost its TLS: {ready:?}"
        );
        seen_lag |= obj.data["status"]["lag"] == 7;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let still = cluster
        .condition(
            "JobQueue",
            "untrusted",
            "Ready",
            "False",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(still.reason, "RedisUnreachable", "{still:?}");
}

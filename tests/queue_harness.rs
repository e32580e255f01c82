//! The Redis test harness itself: a private server and a three-node cluster really serve
//! stream commands, and a killed server comes back on the same port.

use jobqueue_test_support::redis::{RedisServer, TestRedis, Topology};
use redis::AsyncCommands;

#[tokio::test]
async fn xgroup_create_mkstream_round_trip_on_a_private_server() {
    let server = RedisServer::start();
    assert_ne!(server.port(), 6379, "tests never use the shared Redis");
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs")
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await
        .unwrap();
    let len: u64 = con.xlen("jobs").await.unwrap();
    assert_eq!(len, 0, "MKSTREAM creates an empty stream");
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("jobs")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    let again: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("jobs")
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut con)
        .await;
    let err = again.unwrap_err();
    assert_eq!(err.code(), Some("BUSYGROUP"), "{err}");
}

#[tokio::test]
async fn killed_server_restarts_empty_on_the_same_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let () = con.set("k", "v").await.unwrap();
    server.kill();
    assert!(!server.is_running());
    server.restart();
    assert_eq!(server.port(), port);
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let v: Option<String> = con.get("k").await.unwrap();
    assert_eq!(v, None, "no persistence: a restarted server starts empty");
}

#[tokio::test]
async fn cluster_routes_keys_to_all_three_nodes() {
    let redis = TestRedis::start(Topology::Cluster);
    let TestRedis::Cluster(cluster) = &redis else {
        unreachable!()
    };
    let client = redis::cluster::ClusterClient::new(cluster.seed_urls()).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    // Keys in different slots land on different masters; each must be writable and readable.
    for i in 0..30 {
        let () = con.set(format!("key-{i}"), i).await.unwrap();
    }
    for i in 0..30 {
        let v: i64 = con.get(format!("key-{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        nodes.lines().filter(|l| l.contains("master")).count(),
        3,
        "{nodes}"
    );
    assert!(redis.url().starts_with("redis+cluster://127.0.0.1:"));
}

//! Shared helpers of the queue integration tests: a provisioned queue on a private Redis
//! (standalone or Cluster) and a minimal worker speaking plain XREADGROUP / XACK, as a real
//! worker in any language would.

use std::collections::HashMap;

use crate::redis::{TestRedis, Topology};
use jobqueue_operator::queue::{QueueConfig, RedisConn, connect, provision::provision};
use redis::streams::{StreamRangeReply, StreamReadReply};

/// Runs the test body once per topology, each in its own runtime and Redis.
#[macro_export]
macro_rules! on_both_topologies {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single() {
                super::$name(jobqueue_test_support::redis::Topology::Single).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name(jobqueue_test_support::redis::Topology::Cluster).await
            }
        }
    )*};
}

/// A private Redis with one provisioned queue.
pub struct Fixture {
    pub redis: TestRedis,
    pub conn: RedisConn,
    pub cfg: QueueConfig,
}

/// Starts Redis, connects, provisions a queue on `stream` configured by `tweak`.
pub async fn queue(
    topology: Topology,
    stream: &str,
    tweak: impl FnOnce(&mut QueueConfig),
) -> Fixture {
    let redis = TestRedis::start(topology);
    let mut conn = connect(&redis.url())
        .await
        .expect("connect to the test Redis");
    let mut cfg = QueueConfig::new(stream);
    tweak(&mut cfg);
    provision(&mut conn, &cfg, false).await.expect("provision");
    Fixture { redis, conn, cfg }
}

/// One delivered job as a worker sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub entry_id: String,
    pub fields: HashMap<String, String>,
}

impl Delivery {
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
    pub fn job_id(&self) -> &str {
        self.field("id")
    }
    pub fn attempt(&self) -> u32 {
        self.field("attempt").parse().expect("attempt is a number")
    }
}

fn to_map(map: HashMap<String, redis::Value>) -> HashMap<String, String> {
    map.into_iter()
        .map(|(k, v)| {
            (
                k,
                redis::from_redis_value::<String>(v).expect("string field"),
            )
        })
        .collect()
}

/// XREADGROUP GROUP <group> <consumer> COUNT n [BLOCK ms] STREAMS <stream> >
pub async fn read(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    consumer: &str,
    count: usize,
    block_ms: Option<u64>,
) -> Vec<Delivery> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&cfg.group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(cfg.stream()).arg(">");
    let reply: Option<StreamReadReply> = cmd.query_async(conn).await.expect("XREADGROUP");
    reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|id| Delivery {
                    entry_id: id.id,
                    fields: to_map(id.map),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// XACK; returns whether the entry was still pending (1) or had been reclaimed already (0).
pub async fn ack(conn: &mut RedisConn, cfg: &QueueConfig, entry_id: &str) -> bool {
    let n: u64 = redis::cmd("XACK")
        .arg(cfg.stream())
        .arg(&cfg.group)
        .arg(entry_id)
        .query_async(conn)
        .await
        .expect("XACK");
    n == 1
}

/// All entries of a stream (XRANGE - +).
pub async fn entries(conn: &mut RedisConn, key: &str) -> Vec<Delivery> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|id| Delivery {
            entry_id: id.id,
            fields: to_map(id.map),
        })
        .collect()
}

/// Pending count of the group (XPENDING summary).
pub async fn pending(conn: &mut RedisConn, cfg: &QueueConfig) -> u64 {
    let v: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(cfg.stream())
        .arg(&cfg.group)
        .query_async(conn)
        .await
        .expect("XPENDING");
    v.0
}

/// Members of the delayed set with their scores.
pub async fn delayed(conn: &mut RedisConn, cfg: &QueueConfig) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(cfg.keys.delayed())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .expect("ZRANGE")
}

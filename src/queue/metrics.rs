//! Metrics snapshot (docs/architecture.md#metrics-snapshot): for many queues on one Redis endpoint, every queue's
//! length, lag, pending count, oldest pending idle time, consumers, delayed count and
//! dead-letter length and job counters in one pipelined round trip (one pipeline per node on a Cluster).
//!
//! Each queue is read by one Lua script, so its numbers are a consistent view.
//!
//! Lag fallback: Redis reports a group's lag as nil when it cannot compute it (entries deleted
//! with XDEL after the group's position, or XGROUP SETID without ENTRIESREAD). The script then
//! counts the entries after the group's last-delivered id with `XRANGE (id + COUNT bound`
//! ([`LagSource::Estimated`]); if that hits the bound the lag is at least the bound
//! ([`LagSource::AtLeast`]). XLEN is never used as lag: it counts acknowledged entries too.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;
use redis::cluster_routing::SingleNodeRoutingInfo;

use super::adopted::{self, Adopted};
use super::config::QueueConfig;
use super::conn::RedisConn;
use super::error::{QueueError, Result};
use super::jobs::{JobCounts, stats_key};
use super::keys::slot;
use super::scripts::{METRICS, map_error};

/// Default bound of the lag estimate.
pub const DEFAULT_LAG_ESTIMATE_BOUND: u64 = 10_000;

/// Where a lag value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagSource {
    /// Reported by Redis (XINFO GROUPS `lag`).
    Reported,
    /// Counted after the group's last-delivered id (Redis reported nil).
    Estimated,
    /// Counted, and the count hit the bound: the real lag is at least this.
    AtLeast,
}

/// One consumer of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Consumer name (by convention the worker pod's name).
    pub name: String,
    /// Jobs it holds unacknowledged.
    pub pending: u64,
    /// Time since it last interacted with the group.
    pub idle: Duration,
}

/// The numbers of a provisioned queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMetrics {
    /// Entries in the stream (acknowledged ones included, until trimmed).
    pub length: u64,
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// How `lag` was obtained.
    pub lag_source: LagSource,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// Idle time of the oldest pending entry (lowest id), if any is pending.
    pub oldest_pending_age: Option<Duration>,
    /// The group's consumers.
    pub consumers: Vec<ConsumerInfo>,
    /// Jobs in the delayed set (retries waiting for their backoff included).
    pub delayed: u64,
    /// Entries in the dead-letter stream.
    pub dead_letter_length: u64,
    /// The group's last-delivered id.
    pub last_delivered_id: String,
    /// The Redis server's clock when the snapshot was taken (unix ms).
    pub server_time_ms: u64,
    /// The job counters (tracked jobs only).
    pub jobs: JobCounts,
}

impl QueueMetrics {
    /// Lag plus pending: the work not yet done.
    pub fn backlog(&self) -> u64 {
        self.lag.saturating_add(self.pending)
    }
}

/// What a snapshot found for one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueState {
    /// Provisioned; its numbers.
    Ready(QueueMetrics),
    /// The stream does not exist.
    StreamMissing {
        /// Jobs in the delayed set.
        delayed: u64,
        /// Entries in the dead-letter stream.
        dead_letter_length: u64,
    },
    /// The stream exists but the group does not.
    GroupMissing {
        /// Entries in the stream.
        length: u64,
        /// Jobs in the delayed set.
        delayed: u64,
        /// Entries in the dead-letter stream.
        dead_letter_length: u64,
    },
}

/// Snapshot options.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions {
    /// Bound of the lag estimate when Redis reports nil.
    pub lag_estimate_bound: u64,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            lag_estimate_bound: DEFAULT_LAG_ESTIMATE_BOUND,
        }
    }
}

/// Reads all `queues` (on the endpoint of `conn`). Returns one result per queue, in order; a
/// failure of one queue (e.g. a key of the wrong type) does not fail the others. The outer
/// error is a connection-level failure.
pub async fn snapshot(
    conn: &mut RedisConn,
    queues: &[QueueConfig],
    options: SnapshotOptions,
) -> Result<Vec<Result<QueueState>>> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let values = match conn {
        RedisConn::Single(c) => {
            let all: Vec<usize> = (0..queues.len()).collect();
            run_pipeline(c, queues, &all, options).await?
        }
        RedisConn::Cluster(c) => cluster_snapshot(c, queues, options).await?,
    };
    let mut states: Vec<Result<QueueState>> = values
        .into_iter()
        .zip(queues)
        .map(|(v, q)| match &q.source {
            Some(_) => v
                .and_then(adopted::parse)
                .map(QueueState::Ready)
                .map_err(QueueError::during("reading an adopted queue")),
            None => parse(v).map_err(|e| map_error("reading metrics", q.stream(), &q.group, e)),
        })
        .collect();
    for plan in adopted::shared::plan(queues) {
        // One more round trip, only for endpoints with adopted Celery or Sidekiq queues.
        match plan.read(conn).await {
            Ok(parts) => {
                for &(i, at) in &plan.queues {
                    if let Ok(QueueState::Ready(m)) = &mut states[i] {
                        parts[at].apply(m);
                    }
                }
            }
            Err(e) => {
                for &(i, _) in &plan.queues {
                    let again = redis::RedisError::from((
                        e.kind(),
                        "shared adopted reading",
                        e.to_string(),
                    ));
                    states[i] = Err(QueueError::redis("reading an adopted queue", again));
                }
            }
        }
    }
    Ok(states)
}

/// Reads native `queues` (none adopted) on any connection to one standalone server, e.g. a
/// connection with client tracking on. Results as [`snapshot`]'s.
pub async fn snapshot_native<C: ConnectionLike>(
    conn: &mut C,
    queues: &[QueueConfig],
    options: SnapshotOptions,
) -> Result<Vec<Result<QueueState>>> {
    debug_assert!(queues.iter().all(|q| !q.is_adopted()));
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<usize> = (0..queues.len()).collect();
    let values = run_pipeline(conn, queues, &all, options).await?;
    Ok(values
        .into_iter()
        .zip(queues)
        .map(|(v, q)| parse(v).map_err(|e| map_error("reading metrics", q.stream(), &q.group, e)))
        .collect())
}

fn pipeline_for(
    queues: &[QueueConfig],
    idx: &[usize],
    options: SnapshotOptions,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for &i in idx {
        pipe.invoke_script(&reading(&queues[i], options));
    }
    pipe
}

/// One queue's reading: the metrics script, or an adopted queue's own.
fn reading(q: &QueueConfig, options: SnapshotOptions) -> redis::ScriptInvocation<'static> {
    if let Some(adopted) = &q.source {
        return adopted.invocation();
    }
    let mut inv = METRICS.prepare_invoke();
    inv.key(q.stream())
        .key(q.keys.delayed())
        .key(&q.dead_letter)
        .key(stats_key(&q.keys))
        .arg(&q.group)
        .arg(options.lag_estimate_bound.max(1));
    inv
}

/// Loads every reading script (after a NOSCRIPT: first use, a restart, SCRIPT FLUSH).
async fn load_scripts<C: ConnectionLike>(conn: &mut C) -> Result<()> {
    for script in std::iter::once(&*METRICS).chain(Adopted::all_scripts()) {
        script
            .prepare_invoke()
            .load_async(conn)
            .await
            .map_err(QueueError::during("loading the metrics scripts"))?;
    }
    Ok(())
}

/// Runs the metrics script for `idx` in one pipeline; loads the script and retries once when
/// the server does not know it yet (first use, or after a restart / SCRIPT FLUSH).
async fn run_pipeline<C: ConnectionLike>(
    conn: &mut C,
    queues: &[QueueConfig],
    idx: &[usize],
    options: SnapshotOptions,
) -> Result<Vec<redis::RedisResult<Value>>> {
    let pipe = pipeline_for(queues, idx, options);
    let mut values = send(conn, &pipe).await?;
    if values
        .iter()
        .any(|v| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT"))
    {
        load_scripts(conn).await?;
        values = send(conn, &pipe).await?;
    }
    Ok(values
        .into_iter()
        .map(|v| match v {
            Value::ServerError(e) => Err(e.into()),
            v => Ok(v),
        })
        .collect())
}

async fn send<C: ConnectionLike>(conn: &mut C, pipe: &redis::Pipeline) -> Result<Vec<Value>> {
    conn.req_packed_commands(pipe, 0, pipe.len())
        .await
        .map_err(QueueError::during("reading metrics"))
}

/// On a Cluster: group queues by the node serving their slot, one pipeline per node, all
/// nodes concurrently. A queue whose slot moved meanwhile is read again with normal routing.
async fn cluster_snapshot(
    conn: &mut redis::cluster_async::ClusterConnection,
    queues: &[QueueConfig],
    options: SnapshotOptions,
) -> Result<Vec<redis::RedisResult<Value>>> {
    let slots = cluster_slots(conn).await?;
    let run_nodes = |conn: &redis::cluster_async::ClusterConnection,
                     nodes: Vec<(String, u16, Vec<usize>)>| {
        let futures = nodes.into_iter().map(|(host, port, idx)| {
            let mut c = conn.clone();
            let pipe = pipeline_for(queues, &idx, options);
            async move {
                let values = if host.is_empty() {
                    None // slot not covered in the map we read: normal routing below
                } else {
                    let route = SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    };
                    c.route_pipeline(pipe, 0, idx.len(), route).await.ok()
                };
                (host, port, idx, values)
            }
        });
        futures::future::join_all(futures)
    };
    let mut results = run_nodes(conn, by_node(&slots, queues)).await;
    // First use on these nodes (or after a restart): load the script everywhere (SCRIPT LOAD
    // goes to every primary) and run the affected node pipelines once more.
    let noscript = |v: &Option<Vec<Value>>| {
        v.as_ref().is_some_and(|vs| {
            vs.iter()
                .any(|x| matches!(x, Value::ServerError(e) if e.code() == "NOSCRIPT"))
        })
    };
    if results.iter().any(|(_, _, _, v)| noscript(v)) {
        load_scripts(conn).await?;
        let (again, done): (Vec<_>, Vec<_>) =
            results.into_iter().partition(|(_, _, _, v)| noscript(v));
        results = done;
        let retry = again
            .into_iter()
            .map(|(h, p, idx, _)| (h, p, idx))
            .collect();
        results.extend(run_nodes(conn, retry).await);
    }
    let mut out = placed(results, queues.len());
    for (i, slot) in out.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(reading(&queues[i], options).invoke_async(conn).await);
        }
    }
    Ok(out.into_iter().map(|v| v.expect("filled above")).collect())
}

/// The queues (by index) whose stream each node serves; an empty host when the slot map read
/// does not cover a slot.
fn by_node(
    slots: &[(u16, u16, String, u16)],
    queues: &[QueueConfig],
) -> Vec<(String, u16, Vec<usize>)> {
    let mut by_node: BTreeMap<(String, u16), Vec<usize>> = BTreeMap::new();
    for (i, q) in queues.iter().enumerate() {
        let s = slot(q.stream());
        let node = slots
            .iter()
            .find(|r| r.0 <= s && s <= r.1)
            .map(|r| (r.2.clone(), r.3))
            .unwrap_or_default();
        by_node.entry(node).or_default().push(i);
    }
    by_node
        .into_iter()
        .map(|((h, p), idx)| (h, p, idx))
        .collect()
}

/// One node's pipeline: its host and port, the queues it read (by index), and the replies
/// (`None` when the pipeline could not run).
type NodeReplies = (String, u16, Vec<usize>, Option<Vec<Value>>);

/// The node pipelines' replies put back in queue order; `None` where a queue must be read
/// again on its own.
fn placed(results: Vec<NodeReplies>, queues: usize) -> Vec<Option<redis::RedisResult<Value>>> {
    let mut out: Vec<Option<redis::RedisResult<Value>>> = vec![None; queues];
    for (_, _, idx, values) in results {
        if let Some(values) = values {
            for (&i, v) in idx.iter().zip(values) {
                out[i] = match v {
                    // Moved, NOSCRIPT, cluster down: retried one by one below.
                    Value::ServerError(e)
                        if matches!(
                            e.code(),
                            "MOVED" | "ASK" | "NOSCRIPT" | "TRYAGAIN" | "CLUSTERDOWN"
                        ) =>
                    {
                        None
                    }
                    Value::ServerError(e) => Some(Err(e.into())),
                    v => Some(Ok(v)),
                };
            }
        }
    }
    out
}

/// `CLUSTER SLOTS` as (first slot, last slot, host, port) of each range's primary.
async fn cluster_slots(
    conn: &mut redis::cluster_async::ClusterConnection,
) -> Result<Vec<(u16, u16, String, u16)>> {
    let raw: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .map_err(QueueError::during("reading the cluster slot map"))?;
    let mut ranges = Vec::new();
    for range in raw {
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
            (items.first(), items.get(1), items.get(2))
        else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        ranges.push((*first as u16, *last as u16, host, *port as u16));
    }
    Ok(ranges)
}

fn parse(v: redis::RedisResult<Value>) -> redis::RedisResult<QueueState> {
    let v = v?;
    let bad = |what: &str| -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "metrics script reply",
            what.to_string(),
        ))
    };
    let Value::Array(items) = v else {
        return Err(bad("not an array"));
    };
    let int = |i: usize| -> redis::RedisResult<u64> {
        match items.get(i) {
            Some(Value::Int(n)) => Ok((*n).max(0) as u64),
            _ => Err(bad(&format!("field {i} is not an integer"))),
        }
    };
    let text = |v: Option<&Value>| -> String {
        match v {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        }
    };
    match int(0)? {
        0 => Ok(QueueState::StreamMissing {
            delayed: int(3)?,
            dead_letter_length: int(4)?,
        }),
        1 => Ok(QueueState::GroupMissing {
            length: int(2)?,
            delayed: int(3)?,
            dead_letter_length: int(4)?,
        }),
        _ => {
            let consumers = match items.get(10) {
                Some(Value::Array(cs)) => cs
                    .iter()
                    .filter_map(|c| match c {
                        Value::Array(f) => Some(ConsumerInfo {
                            name: text(f.first()),
                            pending: match f.get(1) {
                                Some(Value::Int(n)) => (*n).max(0) as u64,
                                _ => 0,
                            },
                            idle: match f.get(2) {
                                Some(Value::Int(n)) => Duration::from_millis((*n).max(0) as u64),
                                _ => Duration::ZERO,
                            },
                        }),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let oldest = match items.get(8) {
                Some(Value::Int(n)) if *n >= 0 => Some(Duration::from_millis(*n as u64)),
                _ => None,
            };
            Ok(QueueState::Ready(QueueMetrics {
                server_time_ms: int(1)?,
                length: int(2)?,
                delayed: int(3)?,
                dead_letter_length: int(4)?,
                lag: int(5)?,
                lag_source: match int(6)? {
                    0 => LagSource::Reported,
                    1 => LagSource::Estimated,
                    _ => LagSource::AtLeast,
                },
                pending: int(7)?,
                oldest_pending_age: oldest,
                last_delivered_id: text(items.get(9)),
                consumers,
                jobs: JobCounts::from_fields(items.get(11)),
            }))
        }
    }
}

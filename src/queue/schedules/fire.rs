//! Firing due runs: the compare-and-set script and the lookups of what is due.

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use super::{ScheduleError, during, job_id, protocol};
use crate::queue::keys::{QueueKeys, slot};

static FIRE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    crate::queue::scripts::script(include_str!("../lua/schedule_fire.lua"))
});

/// One compare-and-set step on a schedule, computed by the caller from the score it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRequest {
    pub name: String,
    /// The zset score the caller read (unix ms); nothing happens if it has moved.
    pub expected_ms: i64,
    /// The [`StoredSchedule::revision`] the caller computed with.
    pub revision: i64,
    /// Scheduled time of the run to enqueue now, if any.
    pub fire_ms: Option<i64>,
    /// The next run to arm (`None`: never again).
    pub next_ms: Option<i64>,
    /// Runs to add to `missedRuns`.
    pub missed: u64,
}

/// What a fire request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// A job was enqueued.
    Fired { job_id: String, entry_id: String },
    /// `concurrencyPolicy: Forbid` and the previous job is still unread or pending.
    Skipped,
    /// Nothing to enqueue; only the next run and the missed count were written.
    Advanced,
    /// Another scheduler got there first (the score moved); nothing was done.
    Stale,
    /// The definition changed since it was read; nothing was done.
    DefinitionChanged,
}

/// Runs fire requests of one queue, pipelined in one round trip, for leadership `term` (0:
/// none; a newer term recorded for the queue fences the requests out). Each outcome is
/// independent: one schedule's failure does not hold back the others.
pub async fn fire_many<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    group: &str,
    term: u64,
    requests: &[FireRequest],
) -> Result<Vec<Result<FireOutcome, ScheduleError>>, ScheduleError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let invocations: Vec<_> = requests
        .iter()
        .map(|r| fire_invocation(keys, group, term, r))
        .collect();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for inv in &invocations {
        pipe.invoke_script(inv);
    }
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(during("schedule fire"))?;
    let mut outcomes = Vec::with_capacity(requests.len());
    for ((req, inv), reply) in requests.iter().zip(&invocations).zip(replies) {
        let outcome = match reply {
            // First use on this server (or after SCRIPT FLUSH): load and run it once more. The
            // compare-and-set makes a repeat harmless.
            Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript) => {
                match inv.invoke_async::<Value>(conn).await {
                    Ok(v) => decode_fire(req, v),
                    Err(e) => Err(during("schedule fire")(e)),
                }
            }
            Value::ServerError(e) => Err(during("schedule fire")(e.into())),
            v => decode_fire(req, v),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Runs one fire request.
pub async fn fire<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    group: &str,
    request: &FireRequest,
) -> Result<FireOutcome, ScheduleError> {
    let reply: Value = fire_invocation(keys, group, 0, request)
        .invoke_async(conn)
        .await
        .map_err(during("schedule fire"))?;
    decode_fire(request, reply)
}

fn fire_invocation(
    keys: &QueueKeys,
    group: &str,
    term: u64,
    r: &FireRequest,
) -> redis::ScriptInvocation<'static> {
    let fire_ms = r.fire_ms.map_or(String::new(), |ms| ms.to_string());
    let job = r.fire_ms.map_or(String::new(), |ms| job_id(&r.name, ms));
    let mut inv = FIRE.prepare_invoke();
    inv.key(keys.schedules())
        .key(keys.schedule(&r.name))
        .key(&keys.stream)
        .key(keys.delayed())
        .key(keys.settings())
        .key(keys.epoch())
        .arg(&r.name)
        .arg(r.expected_ms)
        .arg(r.revision)
        .arg(fire_ms)
        .arg(r.next_ms.map_or(String::new(), |ms| ms.to_string()))
        .arg(r.missed)
        .arg(job)
        .arg(group)
        .arg(term);
    inv
}

fn decode_fire(req: &FireRequest, reply: Value) -> Result<FireOutcome, ScheduleError> {
    let op = "schedule fire";
    let (status, entry): (String, String) =
        redis::from_redis_value(reply).map_err(|e| protocol(op, &e.to_string()))?;
    Ok(match status.as_str() {
        "fired" => FireOutcome::Fired {
            job_id: job_id(&req.name, req.fire_ms.unwrap_or_default()),
            entry_id: entry,
        },
        "skipped" => FireOutcome::Skipped,
        "advanced" => FireOutcome::Advanced,
        "stale" => FireOutcome::Stale,
        "revision" => FireOutcome::DefinitionChanged,
        other => return Err(protocol(op, other)),
    })
}

/// For each queue, the names and armed runs (unix ms) of the schedules due at or before
/// `now_ms`, earliest first, at most `limit` per queue: one round trip for all queues. A
/// queue whose key is unusable (another program's key of another type) fails on its own.
#[allow(clippy::type_complexity)]
pub async fn due_many<C: ConnectionLike>(
    conn: &mut C,
    queues: &[&QueueKeys],
    now_ms: i64,
    limit: usize,
) -> Result<Vec<Result<Vec<(String, i64)>, ScheduleError>>, ScheduleError> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let op = "ZRANGEBYSCORE schedules";
    let replies = query_per_queue(conn, queues, |pipe, keys| {
        pipe.cmd("ZRANGEBYSCORE")
            .arg(keys.schedules())
            .arg("-inf")
            .arg(now_ms)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
    })
    .await
    .map_err(during(op))?;
    Ok(replies
        .into_iter()
        .map(|reply| {
            let entries: Vec<(String, f64)> = match reply {
                Value::ServerError(e) => return Err(during(op)(e.into())),
                v => redis::from_redis_value(v).map_err(|e| protocol(op, &e.to_string()))?,
            };
            Ok(entries.into_iter().map(|(n, s)| (n, s as i64)).collect())
        })
        .collect())
}

/// Each queue's earliest armed run (unix ms), if it has one: one round trip for all queues.
pub async fn earliest_each<C: ConnectionLike>(
    conn: &mut C,
    queues: &[&QueueKeys],
) -> Result<Vec<Option<i64>>, ScheduleError> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let replies = query_per_queue(conn, queues, |pipe, keys| {
        pipe.cmd("ZRANGE")
            .arg(keys.schedules())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
    })
    .await
    .map_err(during("ZRANGE schedules"))?;
    // A queue with an unusable key is reported by `due_many`; here it just has no run.
    Ok(replies
        .into_iter()
        .map(|r| {
            redis::from_redis_value::<Vec<(String, f64)>>(r)
                .ok()
                .and_then(|r| r.first().map(|(_, s)| *s as i64))
        })
        .collect())
}

/// Sends one command per queue and returns one reply per queue (a failing command yields a
/// `Value::ServerError` in its place). One pipeline for all queues on a single server; Redis
/// Cluster rejects a pipeline that spans slots, so there it is one pipeline per slot.
async fn query_per_queue<C: ConnectionLike>(
    conn: &mut C,
    queues: &[&QueueKeys],
    command: impl Fn(&mut redis::Pipeline, &QueueKeys),
) -> redis::RedisResult<Vec<Value>> {
    let pipeline_of = |group: &[&QueueKeys]| {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for keys in group {
            command(&mut pipe, keys);
        }
        pipe
    };
    match pipeline_of(queues).query_async::<Vec<Value>>(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot) => {}
        other => return other,
    }
    let mut by_slot: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, keys) in queues.iter().enumerate() {
        by_slot.entry(slot(&keys.schedules())).or_default().push(i);
    }
    let mut replies = vec![Value::Nil; queues.len()];
    for indices in by_slot.values() {
        let group: Vec<&QueueKeys> = indices.iter().map(|&i| queues[i]).collect();
        let values: Vec<Value> = pipeline_of(&group).query_async(conn).await?;
        for (&i, v) in indices.iter().zip(values) {
            replies[i] = v;
        }
    }
    Ok(replies)
}

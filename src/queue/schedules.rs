//! Schedule entries in Redis and the exactly-once firing script (docs/architecture.md#scheduler).
//!
//! Per queue, the zset `keys.schedules()` maps schedule name → next fire time (unix ms) and the
//! hash `keys.schedule(name)` holds the definition (cron, zone, payload, policies, generation)
//! and the state (last run, last job, missed and skipped counts). Next fire times are computed
//! in Rust (`crate::schedule`); the Lua scripts only compare and set, so a run fires exactly
//! once however many schedulers race on it. All keys of a queue share one Cluster slot, and
//! every script declares all the keys it touches.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionLike;
use redis::{Script, Value};

use super::keys::{QueueKeys, slot};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{ConcurrencyPolicy, MisfirePolicy, ScheduleSpec, ScheduleStatus};
use crate::schedule::{CronError, CronSchedule, TimeZoneError, parse_time_zone};

/// Channel on which every upsert or removal is announced (message: the stream key), so that
/// sleeping schedulers re-arm at once instead of at their safety-net wake-up.
pub const CHANGES_CHANNEL: &str = "jobqueue:schedules:changed";

/// The deterministic job id of a run, so a replayed or duplicated run is recognisable.
pub fn job_id(schedule: &str, scheduled_for_ms: i64) -> String {
    format!("sched-{schedule}-{scheduled_for_ms}")
}

/// Errors of the schedule store.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("schedule {name:?}: spec.schedule: {source}")]
    Cron {
        name: String,
        #[source]
        source: CronError,
    },
    /// The time zone is unknown.
    #[error("schedule {name:?}: spec.timeZone: {source}")]
    TimeZone {
        name: String,
        #[source]
        source: TimeZoneError,
    },
    /// Another field is unusable.
    #[error("schedule {name:?}: {field}: {reason}")]
    Invalid {
        name: String,
        field: &'static str,
        reason: String,
    },
    /// A Redis command failed.
    #[error("Redis {op} failed: {source}")]
    Redis {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered something unexpected (a hand-edited hash, another program's key).
    #[error("unexpected reply from Redis to {op}: {detail}")]
    Protocol { op: &'static str, detail: String },
}

fn during(op: &'static str) -> impl FnOnce(redis::RedisError) -> ScheduleError {
    move |source| ScheduleError::Redis { op, source }
}

/// Everything the scheduler needs to know about one schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDefinition {
    /// Unique within the queue; part of the job id.
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    /// JSON text delivered as the job's `payload`.
    pub payload: String,
    /// Bumped on every change of the definition (the resource's `metadata.generation`).
    pub generation: i64,
    pub suspend: bool,
    pub misfire_policy: MisfirePolicy,
    pub concurrency_policy: ConcurrencyPolicy,
    pub starting_deadline: Option<Duration>,
}

impl ScheduleDefinition {
    /// A schedule with the defaults of the Schedule resource (UTC, `{}` payload, FireOnce,
    /// Allow, no deadline).
    pub fn new(name: impl Into<String>, cron: impl Into<String>) -> Self {
        ScheduleDefinition {
            name: name.into(),
            cron: cron.into(),
            time_zone: "UTC".into(),
            payload: "{}".into(),
            generation: 1,
            suspend: false,
            misfire_policy: MisfirePolicy::default(),
            concurrency_policy: ConcurrencyPolicy::default(),
            starting_deadline: None,
        }
    }

    /// The definition of a Schedule resource called `name` at `generation`.
    pub fn from_spec(
        name: &str,
        spec: &ScheduleSpec,
        generation: i64,
    ) -> Result<Self, ScheduleError> {
        let starting_deadline = match spec.starting_deadline_seconds {
            None => None,
            Some(s) if s >= 0 => Some(Duration::from_secs(s as u64)),
            Some(s) => {
                return Err(ScheduleError::Invalid {
                    name: name.into(),
                    field: "spec.startingDeadlineSeconds",
                    reason: format!("{s} is negative; use 0 or more seconds"),
                });
            }
        };
        Ok(ScheduleDefinition {
            name: name.into(),
            cron: spec.schedule.clone(),
            time_zone: spec.time_zone.clone(),
            payload: spec
                .payload
                .as_ref()
                .map_or_else(|| "{}".to_string(), |p| p.to_string()),
            generation,
            suspend: spec.suspend,
            misfire_policy: spec.misfire_policy,
            concurrency_policy: spec.concurrency_policy,
            starting_deadline,
        })
    }

    /// Parses the expression and zone, and checks the name and payload.
    pub fn compile(&self) -> Result<(CronSchedule, jiff::tz::TimeZone), ScheduleError> {
        let invalid = |field, reason: String| ScheduleError::Invalid {
            name: self.name.clone(),
            field,
            reason,
        };
        if self.name.is_empty()
            || self
                .name
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(
                "metadata.name",
                "must be non-empty, without spaces or control characters".into(),
            ));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&self.payload) {
            return Err(invalid("spec.payload", format!("not valid JSON: {e}")));
        }
        let cron = CronSchedule::parse(&self.cron).map_err(|source| ScheduleError::Cron {
            name: self.name.clone(),
            source,
        })?;
        let tz = parse_time_zone(&self.time_zone).map_err(|source| ScheduleError::TimeZone {
            name: self.name.clone(),
            source,
        })?;
        Ok((cron, tz))
    }
}

/// What an upsert did to the schedule's next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The cron and zone did not change: the already armed run stays as it was.
    Kept(DateTime<Utc>),
    /// The next run was (re)computed.
    Armed(DateTime<Utc>),
    /// Suspended: no run is armed.
    Suspended,
    /// The expression never fires again.
    Never,
}

static UPSERT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("lua/schedule_upsert.lua")));
static FIRE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| super::scripts::script(include_str!("lua/schedule_fire.lua")));
static REMOVE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("lua/schedule_remove.lua")));
static PRUNE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("lua/schedule_prune.lua")));

/// Writes a schedule's definition and arms its next run after `now`. Updating a schedule
/// whose cron and zone are unchanged keeps the armed run; a changed one is re-armed strictly
/// after both `now` and the last fired run, so no run fires twice.
pub async fn upsert<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    def: &ScheduleDefinition,
    now: DateTime<Utc>,
) -> Result<UpsertOutcome, ScheduleError> {
    let (cron, tz) = def.compile()?;
    let mut after = now;
    // Two rounds suffice: the second starts after the last fired run the script reported.
    for _ in 0..3 {
        let candidate =
            jiff::Timestamp::new(after.timestamp(), after.timestamp_subsec_nanos() as i32)
                .ok()
                .and_then(|after| cron.next_after(&tz, after));
        let (status, score): (String, String) = UPSERT
            .key(keys.schedules())
            .key(keys.schedule(&def.name))
            .arg(&def.name)
            .arg(&def.cron)
            .arg(&def.time_zone)
            .arg(&def.payload)
            .arg(def.generation)
            .arg(if def.suspend { "1" } else { "0" })
            .arg(misfire_str(def.misfire_policy))
            .arg(concurrency_str(def.concurrency_policy))
            .arg(
                def.starting_deadline
                    .map_or(String::new(), |d| d.as_millis().to_string()),
            )
            .arg(candidate.map_or(String::new(), |t| t.as_millisecond().to_string()))
            .invoke_async(conn)
            .await
            .map_err(during("schedule upsert"))?;
        let outcome = match status.as_str() {
            "kept" => UpsertOutcome::Kept(ms_to_time("schedule upsert", &score)?),
            "armed" => UpsertOutcome::Armed(ms_to_time("schedule upsert", &score)?),
            "suspended" => UpsertOutcome::Suspended,
            "never" => UpsertOutcome::Never,
            "behind" => {
                after = ms_to_time("schedule upsert", &score)?.max(now);
                continue;
            }
            other => return Err(protocol("schedule upsert", other)),
        };
        announce(conn, keys).await?;
        return Ok(outcome);
    }
    Err(ScheduleError::Protocol {
        op: "schedule upsert",
        detail: "the last fired run kept moving; retry".into(),
    })
}

/// Removes a schedule (its armed run and its hash). Returns whether it existed.
pub async fn remove<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    name: &str,
) -> Result<bool, ScheduleError> {
    let existed: i64 = REMOVE
        .key(keys.schedules())
        .key(keys.schedule(name))
        .arg(name)
        .invoke_async(conn)
        .await
        .map_err(during("schedule remove"))?;
    announce(conn, keys).await?;
    Ok(existed > 0)
}

/// Names of the schedules with an armed run in the queue of `keys`.
pub async fn armed<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
) -> Result<Vec<String>, ScheduleError> {
    redis::cmd("ZRANGE")
        .arg(keys.schedules())
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .map_err(during("listing the queue's schedules"))
}

/// Whether the queue of `keys` holds schedule `name` (an armed run or its stored definition).
pub async fn holds<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    name: &str,
) -> Result<bool, ScheduleError> {
    let (armed, stored): (Option<f64>, bool) = redis::pipe()
        .cmd("ZSCORE")
        .arg(keys.schedules())
        .arg(name)
        .cmd("EXISTS")
        .arg(keys.schedule(name))
        .query_async(conn)
        .await
        .map_err(during("schedule lookup"))?;
    Ok(armed.is_some() || stored)
}

/// Drops the armed run of `name` if its hash is gone (a schedule upserted meanwhile stays).
pub async fn prune_orphan<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    name: &str,
) -> Result<bool, ScheduleError> {
    let removed: i64 = PRUNE
        .key(keys.schedules())
        .key(keys.schedule(name))
        .arg(name)
        .invoke_async(conn)
        .await
        .map_err(during("schedule prune"))?;
    Ok(removed > 0)
}

async fn announce<C: ConnectionLike>(conn: &mut C, keys: &QueueKeys) -> Result<(), ScheduleError> {
    redis::cmd("PUBLISH")
        .arg(CHANGES_CHANNEL)
        .arg(&keys.stream)
        .query_async::<i64>(conn)
        .await
        .map_err(during("PUBLISH schedule change"))?;
    Ok(())
}

/// A schedule as stored: its definition plus its state, for the scheduler and for the
/// Schedule's status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    pub definition: ScheduleDefinition,
    pub state: ScheduleState,
    /// Bumped by every upsert; fire requests must carry the revision they computed with.
    pub revision: i64,
}

/// The observable state of a schedule (the Schedule resource's status fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// Scheduled time of the last run that enqueued a job.
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// The armed run (`None` while suspended or when it never fires again).
    pub next_schedule_time: Option<DateTime<Utc>>,
    pub last_job_id: Option<String>,
    /// Stream entry id of the last job (what `concurrencyPolicy: Forbid` watches).
    pub last_entry_id: Option<String>,
    pub missed_runs: u64,
    pub skipped_runs: u64,
    /// Runs that enqueued a job, ever (a counter, so none is missed between two reads).
    pub fired_runs: u64,
}

impl ScheduleState {
    /// Copies this state into a Schedule's status; `observedGeneration` and `conditions` are
    /// the controller's to set.
    pub fn apply_to(&self, status: &mut ScheduleStatus) {
        let time = |t: Option<DateTime<Utc>>| {
            t.and_then(|t| {
                k8s_openapi::jiff::Timestamp::from_millisecond(t.timestamp_millis()).ok()
            })
            .map(Time)
        };
        status.last_schedule_time = time(self.last_schedule_time);
        status.next_schedule_time = time(self.next_schedule_time);
        status.last_job_id = self.last_job_id.clone();
        status.missed_runs = i64::try_from(self.missed_runs).unwrap_or(i64::MAX);
        status.skipped_runs = i64::try_from(self.skipped_runs).unwrap_or(i64::MAX);
    }
}

/// Reads one schedule; `None` if it does not exist.
pub async fn get<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    name: &str,
) -> Result<Option<StoredSchedule>, ScheduleError> {
    let hash: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.schedule(name))
        .query_async(conn)
        .await
        .map_err(during("HGETALL schedule"))?;
    decode(name, hash)
}

/// Reads several schedules of one queue in one round trip; each one decodes (or fails to)
/// on its own.
#[allow(clippy::type_complexity)]
pub async fn get_many<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    names: &[String],
) -> Result<Vec<Result<Option<StoredSchedule>, ScheduleError>>, ScheduleError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd("HGETALL").arg(keys.schedule(name));
    }
    let hashes: Vec<HashMap<String, String>> = pipe
        .query_async(conn)
        .await
        .map_err(during("HGETALL schedules"))?;
    Ok(names
        .iter()
        .zip(hashes)
        .map(|(name, hash)| decode(name, hash))
        .collect::<Vec<_>>())
}

fn decode(
    name: &str,
    mut h: HashMap<String, String>,
) -> Result<Option<StoredSchedule>, ScheduleError> {
    if h.is_empty() {
        return Ok(None);
    }
    let op = "HGETALL schedule";
    let mut take = |field: &str| h.remove(field).filter(|v| !v.is_empty());
    let int = |field: &str, v: Option<String>| -> Result<Option<i64>, ScheduleError> {
        v.map(|v| {
            v.parse::<i64>()
                .map_err(|_| protocol(op, &format!("{name}: {field}={v:?} is not an integer")))
        })
        .transpose()
    };
    let time = |field: &str, v: Option<String>| -> Result<Option<DateTime<Utc>>, ScheduleError> {
        int(field, v)?
            .map(|ms| ms_to_time(op, &ms.to_string()))
            .transpose()
    };
    let definition = ScheduleDefinition {
        name: name.to_string(),
        cron: take("cron").ok_or_else(|| protocol(op, &format!("{name}: no cron field")))?,
        time_zone: take("tz").unwrap_or_else(|| "UTC".into()),
        payload: take("payload").unwrap_or_else(|| "{}".into()),
        generation: int("generation", take("generation"))?.unwrap_or(0),
        suspend: take("suspend").as_deref() == Some("1"),
        misfire_policy: match take("misfire_policy").as_deref() {
            Some("Skip") => MisfirePolicy::Skip,
            _ => MisfirePolicy::FireOnce,
        },
        concurrency_policy: match take("concurrency_policy").as_deref() {
            Some("Forbid") => ConcurrencyPolicy::Forbid,
            _ => ConcurrencyPolicy::Allow,
        },
        starting_deadline: int("starting_deadline_ms", take("starting_deadline_ms"))?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
    };
    let state = ScheduleState {
        last_schedule_time: time("last_schedule_time", take("last_schedule_time"))?,
        next_schedule_time: time("next_schedule_time", take("next_schedule_time"))?,
        last_job_id: take("last_job_id"),
        last_entry_id: take("last_entry_id"),
        missed_runs: int("missed_runs", take("missed_runs"))?.unwrap_or(0).max(0) as u64,
        skipped_runs: int("skipped_runs", take("skipped_runs"))?
            .unwrap_or(0)
            .max(0) as u64,
        fired_runs: int("fired_runs", take("fired_runs"))?.unwrap_or(0).max(0) as u64,
    };
    let revision = int("revision", take("revision"))?.unwrap_or(0);
    Ok(Some(StoredSchedule {
        definition,
        state,
        revision,
    }))
}

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

/// Runs fire requests of one queue, pipelined in one round trip. Each outcome is independent:
/// one schedule's failure does not hold back the others.
pub async fn fire_many<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    group: &str,
    requests: &[FireRequest],
) -> Result<Vec<Result<FireOutcome, ScheduleError>>, ScheduleError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let invocations: Vec<_> = requests
        .iter()
        .map(|r| fire_invocation(keys, group, r))
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
    let reply: Value = fire_invocation(keys, group, request)
        .invoke_async(conn)
        .await
        .map_err(during("schedule fire"))?;
    decode_fire(request, reply)
}

fn fire_invocation(
    keys: &QueueKeys,
    group: &str,
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
        .arg(&r.name)
        .arg(r.expected_ms)
        .arg(r.revision)
        .arg(fire_ms)
        .arg(r.next_ms.map_or(String::new(), |ms| ms.to_string()))
        .arg(r.missed)
        .arg(job)
        .arg(group);
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

/// The earliest armed run (unix ms) across `queues`, if any: one round trip for all queues.
pub async fn earliest_many<C: ConnectionLike>(
    conn: &mut C,
    queues: &[&QueueKeys],
) -> Result<Option<i64>, ScheduleError> {
    if queues.is_empty() {
        return Ok(None);
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
        .filter_map(|r| redis::from_redis_value::<Vec<(String, f64)>>(r).ok())
        .filter_map(|r| r.first().map(|(_, s)| *s as i64))
        .min())
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

fn misfire_str(p: MisfirePolicy) -> &'static str {
    match p {
        MisfirePolicy::Skip => "Skip",
        MisfirePolicy::FireOnce => "FireOnce",
    }
}

fn concurrency_str(p: ConcurrencyPolicy) -> &'static str {
    match p {
        ConcurrencyPolicy::Allow => "Allow",
        ConcurrencyPolicy::Forbid => "Forbid",
    }
}

fn ms_to_time(op: &'static str, ms: &str) -> Result<DateTime<Utc>, ScheduleError> {
    ms.parse::<f64>()
        .ok()
        .and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
        .ok_or_else(|| protocol(op, &format!("{ms:?} is not a time in unix ms")))
}

fn protocol(op: &'static str, detail: &str) -> ScheduleError {
    ScheduleError::Protocol {
        op,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_deterministic() {
        assert_eq!(
            job_id("nightly", 1_767_225_600_000),
            "sched-nightly-1767225600000"
        );
    }

    #[test]
    fn definitions_are_checked_before_any_write() {
        let err = |def: ScheduleDefinition| def.compile().unwrap_err().to_string();
        assert_eq!(
            err(ScheduleDefinition::new("s", "61 * * * *")),
            "schedule \"s\": spec.schedule: minute field: 61 is out of range 0-59"
        );
        let mut def = ScheduleDefinition::new("s", "* * * * *");
        def.time_zone = "Mars/Olympus".into();
        assert!(
            err(def)
                .starts_with("schedule \"s\": spec.timeZone: unknown time zone \"Mars/Olympus\"")
        );
        let mut def = ScheduleDefinition::new("s", "* * * * *");
        def.payload = "{not json".into();
        assert!(err(def).starts_with("schedule \"s\": spec.payload: not valid JSON"));
        assert!(err(ScheduleDefinition::new("", "* * * * *")).contains("metadata.name"));
    }

    #[test]
    fn state_fills_the_status_fields_it_owns() {
        let state = ScheduleState {
            last_schedule_time: DateTime::from_timestamp_millis(1_767_225_600_000),
            next_schedule_time: DateTime::from_timestamp_millis(1_767_225_660_000),
            last_job_id: Some("sched-s-1767225600000".into()),
            last_entry_id: Some("1767225600003-0".into()),
            missed_runs: 4,
            skipped_runs: 2,
            fired_runs: 9,
        };
        let mut status = ScheduleStatus {
            observed_generation: Some(3),
            ..Default::default()
        };
        state.apply_to(&mut status);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "observedGeneration": 3,
                "lastScheduleTime": "2026-01-01T00:00:00Z",
                "nextScheduleTime": "2026-01-01T00:01:00Z",
                "lastJobId": "sched-s-1767225600000",
                "missedRuns": 4,
                "skippedRuns": 2,
            })
        );
    }

    #[test]
    fn from_spec_rejects_a_negative_deadline() {
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "* * * * *", "queueRef": {"name": "q"}, "startingDeadlineSeconds": -1
        }))
        .unwrap();
        let e = ScheduleDefinition::from_spec("s", &spec, 3)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "schedule \"s\": spec.startingDeadlineSeconds: -1 is negative; use 0 or more seconds"
        );
    }

    #[test]
    fn from_spec_carries_every_field() {
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "queueRef": {"name": "q"},
            "payload": {"report": "daily"}, "suspend": true, "startingDeadlineSeconds": 30,
            "misfirePolicy": "Skip", "concurrencyPolicy": "Forbid"
        }))
        .unwrap();
        let def = ScheduleDefinition::from_spec("s", &spec, 7).unwrap();
        assert_eq!(def.payload, r#"{"report":"daily"}"#);
        assert_eq!(def.generation, 7);
        assert!(def.suspend);
        assert_eq!(def.misfire_policy, MisfirePolicy::Skip);
        assert_eq!(def.concurrency_policy, ConcurrencyPolicy::Forbid);
        assert_eq!(def.starting_deadline, Some(Duration::from_secs(30)));
        assert_eq!(def.time_zone, "Europe/Berlin");
    }
}

//! Writing, reading and removing schedules in their queue's Redis.

use std::collections::HashMap;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionLike;

use super::definition::{ConcurrencyPolicy, ScheduleDefinition, misfire_str};
use super::{CHANGES_CHANNEL, ScheduleError, during, parse_ms, protocol};
use crate::queue::keys::QueueKeys;
use crate::schedule::MisfirePolicy;

/// What an upsert did to the schedule's next run (armed times in unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The cron and zone did not change: the already armed run stays as it was.
    Kept(i64),
    /// The next run was (re)computed.
    Armed(i64),
    /// Suspended: no run is armed.
    Suspended,
    /// The expression never fires again.
    Never,
}

static UPSERT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("../lua/schedule_upsert.lua")));
static REMOVE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("../lua/schedule_remove.lua")));
static PRUNE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("../lua/schedule_prune.lua")));

/// Writes a schedule's definition and arms its next run after `now`. Updating a schedule
/// whose cron and zone are unchanged keeps the armed run; a changed one is re-armed strictly
/// after both `now_ms` and the last fired run, so no run fires twice.
pub async fn upsert<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    def: &ScheduleDefinition,
    now_ms: i64,
) -> Result<UpsertOutcome, ScheduleError> {
    let (cron, tz) = def.compile()?;
    let mut after = now_ms;
    // Two rounds suffice: the second starts after the last fired run the script reported.
    for _ in 0..3 {
        let candidate = jiff::Timestamp::from_millisecond(after)
            .ok()
            .and_then(|after| cron.next_after(&tz, after))
            .map(|t| t.as_millisecond());
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
            .arg(def.concurrency_policy.as_str())
            .arg(
                def.starting_deadline
                    .map_or(String::new(), |d| d.as_millis().to_string()),
            )
            .arg(candidate.map_or(String::new(), |t| t.to_string()))
            .invoke_async(conn)
            .await
            .map_err(during("schedule upsert"))?;
        let outcome = match status.as_str() {
            "kept" => UpsertOutcome::Kept(parse_ms("schedule upsert", &score)?),
            "armed" => UpsertOutcome::Armed(parse_ms("schedule upsert", &score)?),
            "suspended" => UpsertOutcome::Suspended,
            "never" => UpsertOutcome::Never,
            "behind" => {
                after = parse_ms("schedule upsert", &score)?.max(now_ms);
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

/// The observable state of a schedule (what a Schedule's status shows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// Scheduled time (unix ms) of the last run that enqueued a job.
    pub last_schedule_ms: Option<i64>,
    /// The armed run (unix ms; `None` while suspended or when it never fires again).
    pub next_schedule_ms: Option<i64>,
    pub last_job_id: Option<String>,
    /// Stream entry id of the last job (what `concurrencyPolicy: Forbid` watches).
    pub last_entry_id: Option<String>,
    pub missed_runs: u64,
    pub skipped_runs: u64,
    /// Runs that enqueued a job, ever (a counter, so none is missed between two reads).
    pub fired_runs: u64,
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
        last_schedule_ms: int("last_schedule_time", take("last_schedule_time"))?,
        next_schedule_ms: int("next_schedule_time", take("next_schedule_time"))?,
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

//! Schedule entries in Redis and the exactly-once firing script (docs/architecture.md#scheduler).
//!
//! Per queue, the zset `keys.schedules()` maps schedule name → next fire time (unix ms) and the
//! hash `keys.schedule(name)` holds the definition (cron, zone, payload, policies, generation)
//! and the state (last run, last job, missed and skipped counts). Next fire times are computed
//! in Rust (`crate::schedule`); the Lua scripts only compare and set, so a run fires exactly
//! once however many schedulers race on it. All keys of a queue share one Cluster slot, and
//! every script declares all the keys it touches.
//!
//! Everything here is engine data: instants are unix milliseconds, and the Schedule resource
//! is converted to a [`ScheduleDefinition`] by `crate::plan`.

mod definition;
mod fire;
mod store;

#[cfg(test)]
mod tests;

pub use definition::{ConcurrencyPolicy, ScheduleDefinition};
pub use fire::{FireOutcome, FireRequest, due_many, earliest_each, fire, fire_many};
pub use store::{
    ScheduleState, StoredSchedule, UpsertOutcome, armed, get, get_many, holds, prune_orphan,
    remove, upsert,
};

use crate::schedule::{CronError, TimeZoneError};

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

/// Redis's clock (`TIME`) in unix ms. Schedules are armed and fired by it, as it stamps every
/// job and record: a skewed operator clock must neither fire runs early nor late.
pub async fn redis_time_ms<C: redis::aio::ConnectionLike>(
    conn: &mut C,
) -> Result<i64, ScheduleError> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(conn)
        .await
        .map_err(during("TIME"))?;
    Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
}

fn during(op: &'static str) -> impl FnOnce(redis::RedisError) -> ScheduleError {
    move |source| ScheduleError::Redis { op, source }
}

fn protocol(op: &'static str, detail: &str) -> ScheduleError {
    ScheduleError::Protocol {
        op,
        detail: detail.to_string(),
    }
}

/// A unix-ms score or field as Redis returns it (an integer or a float in text).
fn parse_ms(op: &'static str, ms: &str) -> Result<i64, ScheduleError> {
    ms.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v as i64)
        .ok_or_else(|| protocol(op, &format!("{ms:?} is not a time in unix ms")))
}

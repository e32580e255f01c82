//! The janitor (docs/architecture.md#janitor). Each step is one atomic Lua script per queue and batch, so a
//! janitor killed at any instant leaves every job either untouched or fully moved: it may be
//! delivered again (at-least-once), never lost or duplicated by the janitor itself.
//!
//! Steps, in [`tick`] order:
//! 1. [`promote_due`]: delayed jobs whose time has come go into the stream.
//! 2. [`reclaim_expired`]: jobs pending longer than the visibility timeout are re-enqueued
//!    with `attempt + 1` (through the delayed set when a backoff applies) and the old entry is
//!    acknowledged; after `maxDeliveries` they go to the dead-letter stream instead.
//!    [`reclaim_consumer`] does the same at once for everything one consumer holds (its pod
//!    is gone), and [`reclaim_consumer_idle`] for what it held before its worker restarted.
//! 3. [`reap_idle_consumers`]: consumers holding nothing and idle past a bound are deleted.
//! 4. [`trim`]: retention, never past what any group still needs.

use std::time::{Duration, Instant};

use super::config::{QueueConfig, Retention};
use super::conn::RedisConn;
use super::error::Result;
use super::scripts::{PROMOTE, REAP, RECLAIM, TRIM, map_error};

/// Janitor tuning.
#[derive(Debug, Clone, Copy)]
pub struct JanitorOptions {
    /// Jobs handled per script call (bounds how long one script blocks Redis).
    pub batch: u32,
    /// Script calls per step and tick, so one huge queue cannot starve the others.
    pub max_batches: u32,
    /// Consumers idle this long and holding nothing are deleted.
    pub consumer_idle: Duration,
}

impl Default for JanitorOptions {
    fn default() -> Self {
        JanitorOptions {
            batch: 200,
            max_batches: 50,
            consumer_idle: Duration::from_secs(3600),
        }
    }
}

/// Why a job's delivery is considered failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Pending longer than the visibility timeout.
    VisibilityTimeout,
    /// Held by a consumer that no longer exists.
    ConsumerGone,
    /// Read by a worker process that has since restarted under the same consumer name (its
    /// container crashed): apart from the deleted pod, so a job that keeps killing its worker
    /// shows as such in the dead letters.
    WorkerRestarted,
}

impl Failure {
    /// The value stored in a dead letter's `last_failure` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::VisibilityTimeout => "visibility_timeout",
            Failure::ConsumerGone => "consumer_gone",
            Failure::WorkerRestarted => "worker_restarted",
        }
    }
}

/// What a reclaim did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Jobs handed out again (or put in the delayed set for their backoff).
    pub retried: u64,
    /// Jobs moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Pending entries whose stream entry had been deleted out of band (acknowledged).
    pub missing: u64,
}

impl std::ops::AddAssign for Reclaimed {
    fn add_assign(&mut self, o: Self) {
        self.retried += o.retried;
        self.dead_lettered += o.dead_lettered;
        self.missing += o.missing;
    }
}

/// What one [`tick`] did to a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Delayed jobs moved into the stream.
    pub promoted: u64,
    /// Delayed-set members that were not valid jobs (moved to the dead-letter stream).
    pub malformed: u64,
    /// Redeliveries and dead letters.
    pub reclaimed: Reclaimed,
    /// Consumers deleted.
    pub consumers_deleted: u64,
    /// Entries removed by retention.
    pub trimmed: u64,
    /// Retention wanted to remove entries a group still needs, and did not.
    pub trim_blocked: bool,
}

/// Runs every janitor step once for `cfg`.
pub async fn tick(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
) -> Result<TickReport> {
    tick_steps(conn, cfg, opts, Steps::ALL).await
}

/// Which janitor steps a pass runs. A caller that knows a step has nothing to do (from a
/// reading Redis reports unchanged since, see the runtime) leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Move due delayed jobs into the stream.
    pub promotion: bool,
    /// Hand out again what waited past the visibility timeout.
    pub redelivery: bool,
    /// Idle consumers and retention (nothing waits on them, so a caller may run them less
    /// often).
    pub housekeeping: bool,
}

impl Steps {
    /// Every step.
    pub const ALL: Steps = Steps {
        promotion: true,
        redelivery: true,
        housekeeping: true,
    };
    /// No step.
    pub const NONE: Steps = Steps {
        promotion: false,
        redelivery: false,
        housekeeping: false,
    };
}

/// Runs the janitor `steps` for `cfg`.
pub async fn tick_steps(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
    steps: Steps,
) -> Result<TickReport> {
    let (promoted, malformed) = if steps.promotion {
        promote_due(conn, cfg, opts).await?
    } else {
        (0, 0)
    };
    let reclaimed = if steps.redelivery {
        reclaim_expired(conn, cfg, opts).await?
    } else {
        Reclaimed::default()
    };
    if !steps.housekeeping {
        return Ok(TickReport {
            promoted,
            malformed,
            reclaimed,
            ..Default::default()
        });
    }
    let consumers_deleted = reap_idle_consumers(conn, cfg, opts.consumer_idle).await?;
    let (trimmed, trim_blocked) = trim(conn, cfg, opts).await?;
    Ok(TickReport {
        promoted,
        malformed,
        reclaimed,
        consumers_deleted,
        trimmed,
        trim_blocked,
    })
}

/// Moves due delayed jobs into the stream. Returns (promoted, malformed).
pub async fn promote_due(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
) -> Result<(u64, u64)> {
    let (mut promoted, mut malformed) = (0, 0);
    for _ in 0..opts.max_batches.max(1) {
        let (p, m, still_due): (u64, u64, u64) = PROMOTE
            .key(cfg.keys.delayed())
            .key(cfg.stream())
            .key(&cfg.dead_letter)
            .arg(opts.batch.max(1))
            .arg(cfg.dead_letter_max_length.unwrap_or(0))
            .arg(cfg.keys.schedule(""))
            .key(cfg.keys.settings())
            .key(cfg.keys.epoch())
            .arg(cfg.term)
            .invoke_async(conn)
            .await
            .map_err(|e| map_error("promoting delayed jobs", cfg.stream(), &cfg.group, e))?;
        promoted += p;
        malformed += m;
        if still_due == 0 {
            break;
        }
    }
    Ok((promoted, malformed))
}

/// Re-enqueues (or dead-letters) jobs pending longer than the visibility timeout.
pub async fn reclaim_expired(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
) -> Result<Reclaimed> {
    let select = Select {
        consumer: None,
        min_idle: cfg.visibility_timeout,
        aging: false,
        forget_consumer: false,
    };
    reclaim(conn, cfg, opts, select, Failure::VisibilityTimeout).await
}

/// Re-enqueues (or dead-letters) everything `consumer` holds, now, whatever its idle time,
/// then deletes the consumer. For consumers whose pod no longer exists.
pub async fn reclaim_consumer(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    consumer: &str,
    opts: &JanitorOptions,
) -> Result<Reclaimed> {
    let select = Select {
        consumer: Some(consumer),
        min_idle: Duration::ZERO,
        aging: false,
        forget_consumer: true,
    };
    reclaim(conn, cfg, opts, select, Failure::ConsumerGone).await
}

/// Re-enqueues (or dead-letters) what `consumer` holds that has been idle at least `min_idle`
/// (as of this call), now. For a worker that restarted under the same consumer name: what it
/// read before the restart is lost with the old process, what it read since is its own. The
/// consumer is kept, with whatever is younger: the restarted worker reads as it.
pub async fn reclaim_consumer_idle(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    consumer: &str,
    min_idle: Duration,
    opts: &JanitorOptions,
) -> Result<Reclaimed> {
    let select = Select {
        consumer: Some(consumer),
        min_idle,
        aging: true,
        forget_consumer: false,
    };
    reclaim(conn, cfg, opts, select, Failure::WorkerRestarted).await
}

/// Which pending entries a reclaim takes.
struct Select<'a> {
    /// Only this consumer's (any consumer's when `None`).
    consumer: Option<&'a str>,
    /// Only entries idle at least this long.
    min_idle: Duration,
    /// `min_idle` is a cut-off in time as of the call: each batch adds the time since, or an
    /// entry read just after the cut-off would age into it while the batches run.
    aging: bool,
    /// Delete the consumer once it holds nothing (its pod is gone).
    forget_consumer: bool,
}

async fn reclaim(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
    select: Select<'_>,
    failure: Failure,
) -> Result<Reclaimed> {
    let called = Instant::now();
    let batch = opts.batch.max(1);
    let backoff = cfg
        .backoff
        .map(|b| b.table_ms(cfg.max_deliveries))
        .unwrap_or_default();
    let mut total = Reclaimed::default();
    for _ in 0..opts.max_batches.max(1) {
        let min_idle = if select.aging {
            select.min_idle + called.elapsed()
        } else {
            select.min_idle
        };
        let mut inv = RECLAIM.key(cfg.stream());
        inv.key(cfg.keys.delayed())
            .key(&cfg.dead_letter)
            .arg(&cfg.group)
            // Rounded up: a cut-off may only move later, never take a younger entry.
            .arg(min_idle.as_nanos().div_ceil(1_000_000) as u64)
            .arg(cfg.max_deliveries.max(1))
            .arg(batch)
            .arg(cfg.dead_letter_max_length.unwrap_or(0))
            .arg(select.consumer.unwrap_or(""))
            .arg(failure.as_str())
            .arg(cfg.keys.schedule(""))
            .arg(u8::from(select.forget_consumer))
            .arg(cfg.term)
            .key(cfg.keys.settings())
            .key(cfg.keys.epoch());
        for d in &backoff {
            inv.arg(*d);
        }
        let (retried, dead_lettered, missing, scanned): (u64, u64, u64, u64) = inv
            .invoke_async(conn)
            .await
            .map_err(|e| map_error("reclaiming jobs", cfg.stream(), &cfg.group, e))?;
        total += Reclaimed {
            retried,
            dead_lettered,
            missing,
        };
        if scanned < u64::from(batch) {
            break;
        }
    }
    Ok(total)
}

/// Deletes consumers that hold nothing and have been idle at least `idle`.
pub async fn reap_idle_consumers(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    idle: Duration,
) -> Result<u64> {
    REAP.key(cfg.stream())
        .key(cfg.keys.epoch())
        .arg(&cfg.group)
        .arg(idle.as_millis() as u64)
        .arg(cfg.term)
        .invoke_async(conn)
        .await
        .map_err(|e| map_error("deleting idle consumers", cfg.stream(), &cfg.group, e))
}

/// Applies retention. Returns (entries removed, whether a group's needs stopped trimming).
pub async fn trim(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    opts: &JanitorOptions,
) -> Result<(u64, bool)> {
    let Retention {
        max_length,
        max_age,
    } = cfg.retention;
    if max_length.is_none() && max_age.is_none() {
        return Ok((0, false));
    }
    let (mut removed, mut blocked) = (0, false);
    for _ in 0..opts.max_batches.max(1) {
        let (n, b): (u64, u8) = TRIM
            .key(cfg.stream())
            .arg(
                max_length
                    .map(|v| v.min(i64::MAX as u64) as i64)
                    .unwrap_or(-1),
            )
            .arg(max_age.map(|d| d.as_millis() as i64).unwrap_or(-1))
            .arg(opts.batch.max(1))
            .key(cfg.keys.epoch())
            .arg(cfg.term)
            .invoke_async(conn)
            .await
            .map_err(|e| map_error("trimming", cfg.stream(), &cfg.group, e))?;
        removed += n;
        blocked |= b == 1;
        if n < u64::from(opts.batch.max(1)) {
            break;
        }
    }
    Ok((removed, blocked))
}

//! Producing jobs (docs/architecture.md#wire-format): one stream entry with `id`, `payload`, `enqueued_at` and
//! `attempt`, or a member of the delayed set when the job is due later. An idempotency key
//! makes a repeated enqueue (a producer retrying after a timeout) a no-op.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::conn::RedisConn;
use crate::error::map_error;
use crate::error::{QueueError, Result};
use crate::keys::QueueKeys;
use crate::lua::ENQUEUE;

/// How long an idempotency key is remembered unless told otherwise.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// When a job becomes available to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Due {
    /// Now.
    #[default]
    Now,
    /// After this delay (measured from the Redis server's clock at enqueue time).
    After(Duration),
    /// At this time (unix time; a time in the past means now).
    At(SystemTime),
}

/// Options of [`enqueue`].
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// When the job becomes available.
    pub due: Due,
    /// A producer-chosen key: a second enqueue with the same key within `idempotency_ttl`
    /// adds nothing and returns the first job's id.
    pub idempotency_key: Option<String>,
    /// How long the key is remembered (default [`DEFAULT_IDEMPOTENCY_TTL`]).
    pub idempotency_ttl: Option<Duration>,
    /// Extra stream fields (e.g. `schedule`, `scheduled_for`); must not use the core names.
    pub extra_fields: Vec<(String, String)>,
}

/// The result of [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job id (the first job's id when the idempotency key was already used).
    pub job_id: String,
    /// False when the idempotency key had already been used and nothing was added.
    pub added: bool,
    /// The stream entry id, when the job went straight into the stream.
    pub entry_id: Option<String>,
}

/// The stream fields every job has; producers may not override them through extra fields.
pub const CORE_FIELDS: [&str; 4] = ["id", "payload", "enqueued_at", "attempt"];

/// A new, unique job id (UUID v7: time-ordered, so ids sort roughly by creation).
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Adds a job to the queue whose keys are `keys`. `payload` is any JSON value; it is stored
/// as JSON text. The stream must exist (the queue is provisioned): an unknown queue is an
/// error and nothing is written.
pub async fn enqueue(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    payload: &serde_json::Value,
    options: &EnqueueOptions,
) -> Result<Enqueued> {
    let payload = serde_json::to_string(payload).map_err(|e| QueueError::InvalidArgument {
        argument: "payload",
        reason: e.to_string(),
    })?;
    for (name, _) in &options.extra_fields {
        if CORE_FIELDS.contains(&name.as_str()) || name.is_empty() {
            return Err(QueueError::InvalidArgument {
                argument: "extra_fields",
                reason: format!("field name {name:?} is reserved or empty"),
            });
        }
    }
    let due = match options.due {
        Due::Now => "0".to_string(),
        Due::At(t) => t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().max(1).to_string())
            .unwrap_or_else(|_| "0".into()),
        // Relative to the Redis clock, the one the janitor compares due times against.
        Due::After(d) => format!("+{}", d.as_millis()),
    };
    run(conn, keys, &payload, due, options).await
}

async fn run(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    payload: &str,
    due_ms: String,
    options: &EnqueueOptions,
) -> Result<Enqueued> {
    let job_id = new_job_id();
    let ttl = options.idempotency_ttl.unwrap_or(DEFAULT_IDEMPOTENCY_TTL);
    if ttl.as_millis() == 0 {
        return Err(QueueError::InvalidArgument {
            argument: "idempotency_ttl",
            reason: "must be at least 1ms".into(),
        });
    }
    let idem_key = match &options.idempotency_key {
        Some(k) if k.is_empty() => {
            return Err(QueueError::InvalidArgument {
                argument: "idempotency key",
                reason: "must not be empty".into(),
            });
        }
        Some(k) => keys.idempotency(k),
        None => keys.idempotency(""),
    };
    let mut invocation = ENQUEUE.key(&keys.stream);
    invocation
        .key(keys.delayed())
        .key(idem_key)
        .key(keys.settings())
        .arg(&job_id)
        .arg(payload)
        .arg(due_ms)
        .arg(ttl.as_millis() as u64)
        .arg(if options.idempotency_key.is_some() {
            "1"
        } else {
            "0"
        });
    for (k, v) in &options.extra_fields {
        invocation.arg(k).arg(v);
    }
    let (job_id, added, entry): (String, u8, String) = invocation
        .invoke_async(conn)
        .await
        .map_err(|e| map_error("enqueue", &keys.stream, "", e))?;
    Ok(Enqueued {
        job_id,
        added: added == 1,
        entry_id: (!entry.is_empty()).then_some(entry),
    })
}

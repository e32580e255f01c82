//! Errors of the queue engine and its clients. Callers (the operator, the CLI, applications)
//! turn them into conditions, Events or one-line messages, so each variant names the thing that
//! is wrong.

/// An error from the queue engine.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The Redis URL cannot be used.
    #[error("invalid Redis URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, with any password masked.
        url: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Redis could not be reached.
    // The Redis error is part of the message rather than a `source`: its own chain repeats
    // the OS error, which would print three times in a one-line `{:#}` report.
    #[error("cannot reach Redis at {endpoint}: {error}")]
    Unreachable {
        /// host:port (or the list of cluster seeds).
        endpoint: String,
        /// The underlying connection error.
        error: redis::RedisError,
    },
    /// A Redis command failed.
    #[error("Redis {op} failed: {error}")]
    Redis {
        /// What the engine was doing.
        op: &'static str,
        /// The error Redis (or the connection) reported.
        error: redis::RedisError,
    },
    /// The queue's stream does not exist (not provisioned, or deleted).
    #[error("stream {stream:?} does not exist (is the queue provisioned?)")]
    NoSuchStream {
        /// The stream key.
        stream: String,
    },
    /// The queue's consumer group does not exist.
    #[error("consumer group {group:?} does not exist on stream {stream:?}")]
    NoSuchGroup {
        /// The stream key.
        stream: String,
        /// The group name.
        group: String,
    },
    /// The stream is claimed by another JobQueue: the operator acts on it for its owner only.
    #[error(
        "stream {stream:?} belongs to JobQueue {owner}; a stream serves one JobQueue: name another stream, or delete that JobQueue first"
    )]
    StreamClaimed {
        /// The stream key.
        stream: String,
        /// The owner, `namespace/name`.
        owner: String,
    },
    /// A key the queue needs holds another Redis type.
    #[error("key {key:?} holds a {actual}, not a {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type it should have.
        expected: &'static str,
        /// The type it has.
        actual: String,
    },
    /// A queue setting is unusable.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The setting, named as in the JobQueue spec (e.g. `delivery.maxDeliveries`).
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Bad input to an engine call.
    #[error("invalid {argument}: {reason}")]
    InvalidArgument {
        /// The argument.
        argument: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The `jobqueue` function library is not loaded on (every primary of) this Redis.
    #[error(
        "the jobqueue function library is not loaded: is the queue provisioned by jobqueue-operator (Redis 7 or newer)?"
    )]
    LibraryMissing,
    /// The loaded `jobqueue` function library is older than this client needs.
    #[error(
        "the jobqueue function library loaded is revision {found}; this client needs {needed} or newer: upgrade jobqueue-operator"
    )]
    LibraryTooOld {
        /// The oldest revision loaded.
        found: i64,
        /// The revision this client needs.
        needed: i64,
    },
    /// Something awaited did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// Redis answered something the engine does not understand.
    #[error("unexpected reply from Redis to {op}: {detail}")]
    Protocol {
        /// What the engine was doing.
        op: &'static str,
        /// What was unexpected.
        detail: String,
    },
}

impl QueueError {
    /// Wraps a Redis error with what the engine was doing, as it is: the engine's own script
    /// errors (`NOSTREAM`, `NOGROUP`, `WRONGTYPE`) become typed errors in [`map_error`],
    /// not here.
    pub fn redis(op: &'static str, source: redis::RedisError) -> Self {
        QueueError::Redis { op, error: source }
    }

    /// A closure for `map_err` that wraps a Redis error with what was being done.
    pub fn during(op: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |e| QueueError::redis(op, e)
    }
}

/// Result of engine calls.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// Turns the error codes the scripts (and Redis inside them) raise into typed errors.
pub fn map_error(op: &'static str, stream: &str, group: &str, e: redis::RedisError) -> QueueError {
    match e.code() {
        Some("NOSTREAM") => QueueError::NoSuchStream {
            stream: stream.to_string(),
        },
        Some("NOGROUP") => QueueError::NoSuchGroup {
            stream: stream.to_string(),
            group: group.to_string(),
        },
        Some("CLAIMED") => QueueError::StreamClaimed {
            stream: stream.to_string(),
            owner: e.detail().unwrap_or_default().to_string(),
        },
        Some("WRONGTYPE") => {
            let detail = e.detail().unwrap_or_default();
            // "key <k> holds a <type>, not a stream" from our scripts; Redis's own is generic.
            let (key, actual) = detail
                .strip_prefix("key ")
                .and_then(|rest| rest.split_once(" holds a "))
                .map(|(k, t)| (k.to_string(), t.split(',').next().unwrap_or(t).to_string()))
                .unwrap_or_else(|| (stream.to_string(), "different type".to_string()));
            QueueError::WrongType {
                key,
                expected: "stream",
                actual,
            }
        }
        _ => QueueError::redis(op, e),
    }
}

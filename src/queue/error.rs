//! Errors of the queue engine. Callers (the operator, the CLI) turn them into conditions,
//! Events or one-line messages, so each variant names the thing that is wrong.

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
    /// errors (`NOSTREAM`, `NOGROUP`, `WRONGTYPE`) become typed errors in
    /// `scripts::map_error`, not here.
    pub(crate) fn redis(op: &'static str, source: redis::RedisError) -> Self {
        QueueError::Redis { op, error: source }
    }

    /// A closure for `map_err` that wraps a Redis error with what was being done.
    pub(crate) fn during(op: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |e| QueueError::redis(op, e)
    }
}

/// Result of engine calls.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

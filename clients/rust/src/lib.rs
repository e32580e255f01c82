//! A client for jobqueue-operator queues: Redis Streams provisioned by the operator, followed
//! job by job. Producers enqueue and follow jobs ([`Queue`]); workers take, run and settle them
//! ([`Worker`]). Every job operation runs on the Redis side, in the `jobqueue` function library
//! the operator loads (and the enqueue script that shares its code), so this crate behaves
//! exactly like the Python and TypeScript clients. No Kubernetes dependency.
//!
//! - [`Queue`], [`Worker`]: the high-level API.
//! - [`conn`]: connections (single node, Redis Cluster, TLS) from a URL.
//! - [`keys`]: the key names of a queue.
//! - [`producer`]: the enqueue call.
//! - [`jobs`]: records, the worker operations, the worker loop, following from outside.
//! - [`lua`]: the Lua every queue script shares.
//! - [`error`]: the one error type.

pub mod conn;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod lua;
pub mod producer;
mod queue;
pub mod worker;

pub use error::{QueueError, Result};
pub use jobs::{JobContext, Outcome};
pub use jobs::{JobRecord, JobState};
pub use producer::{Due, EnqueueOptions, Enqueued};
pub use queue::{Job, Queue};
pub use worker::Worker;

//! Following jobs (docs/architecture.md#redis-data-model): a record per job, a capped events
//! stream, the queue's stored settings, and the worker operations as one Redis Functions
//! library (`lua/jobs.lua`) that workers in every language call the same way.
//!
//! - [`settings`]: the `<prefix>:settings` hash ([`store_settings`]).
//! - [`library`]: loading the `jobqueue` library ([`ensure_library`]).
//! - [`ops`]: start, progress, heartbeat, complete, fail ([`JobOps`]).
//! - [`follow`]: get, cancel, list and wait from outside.
//! - [`record`]: the record's fields (pure).
//! - [`stats`]: the job counters the metrics snapshot reads.
//! - [`worker`]: a ready-made worker loop.

pub mod follow;
pub mod library;
pub mod ops;
pub mod record;
pub mod settings;
pub mod stats;
pub mod worker;

pub use follow::{CancelOutcome, cancel_job, get_job, list_jobs, wait_job};
pub use library::{LIBRARY_VERSION, LibraryStatus, ensure_library, functions_unsupported};
pub use ops::{Delivery, JobOps, Liveness, Settled, Started};
pub use record::{JobRecord, JobState};
pub use settings::{JobSettings, WorkerSettings, read_worker_settings, store_settings};
pub use stats::{JobCounts, stats_key};
pub use worker::{JobContext, Outcome, WorkerConfig, WorkerReport, run_worker};

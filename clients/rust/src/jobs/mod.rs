//! Following jobs: a record per job, a capped events stream, and the worker operations as one
//! Redis Functions library (`lua/jobs.lua`) that workers in every language call the same way.
//!
//! - [`library`]: the library's source, revision and loading ([`ensure_library`]).
//! - [`ops`]: take, start, progress, heartbeat, complete, fail ([`JobOps`]).
//! - [`follow`]: get, cancel, list and wait from outside.
//! - [`record`]: the record's fields (pure).
//! - [`settings`]: what a worker reads of the queue's stored settings.
//! - [`worker`]: a ready-made worker loop.

pub mod follow;
pub mod library;
pub mod ops;
pub mod record;
pub mod settings;
pub mod worker;

pub use follow::{CancelOutcome, cancel_job, get_job, list_jobs, wait_job};
pub use library::{
    LIBRARY_VERSION, LibraryStatus, ensure_library, functions_unsupported, require_library,
};
pub use ops::{Delivery, JobOps, Liveness, Settled, Started};
pub use record::{JobRecord, JobState};
pub use settings::{WorkerSettings, read_worker_settings};
pub use worker::{JobContext, Outcome, WorkerConfig, WorkerReport, run_worker};

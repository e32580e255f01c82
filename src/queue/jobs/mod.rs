//! Following jobs (docs/architecture.md#redis-data-model): a record per job, a capped events
//! stream, the queue's stored settings, and the worker operations as one Redis Functions
//! library that workers in every language call the same way.
//!
//! The wire protocol (records, the library, the worker operations, the worker loop) lives in
//! the client crate, `jobqueue_client::jobs`, re-exported here; the operator adds what only it
//! does:
//! - [`settings`]: the `<prefix>:settings` hash ([`store_settings`]).
//! - [`stats`]: the job counters the metrics snapshot reads.

pub use jobqueue_client::jobs::{follow, library, ops, record, worker};
pub mod settings;
pub mod stats;

pub use jobqueue_client::jobs::{
    CancelOutcome, Delivery, JobContext, JobOps, JobRecord, JobState, LIBRARY_VERSION,
    LibraryStatus, Liveness, Outcome, Settled, Started, WorkerConfig, WorkerReport, cancel_job,
    ensure_library, functions_unsupported, get_job, list_jobs, run_worker, wait_job,
};
pub use settings::{JobSettings, WorkerSettings, read_worker_settings, store_settings};
pub use stats::{JobCounts, stats_key};

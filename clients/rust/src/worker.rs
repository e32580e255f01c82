//! [`Worker`]: runs a handler for each job of a queue, configured the way the operator
//! configures worker containers (`REDIS_URL`, `JOBQUEUE_STREAM`, `JOBQUEUE_GROUP`,
//! `JOBQUEUE_CONSUMER`), until SIGTERM or SIGINT; then it takes no new job and finishes the
//! ones in hand.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::conn::connect;
use crate::error::{QueueError, Result};
use crate::jobs::{
    JobContext, JobOps, Outcome, WorkerConfig, WorkerReport, read_worker_settings, require_library,
    run_worker,
};
use crate::keys::QueueKeys;

/// The visibility timeout assumed when the queue's settings do not say (the operator's
/// default).
const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);

/// A worker for one queue. Build it with [`Worker::from_env`] or [`Worker::new`], then
/// [`run`](Worker::run) it with a handler that turns a job into an [`Outcome`].
#[derive(Debug, Clone)]
pub struct Worker {
    url: String,
    stream: String,
    group: Option<String>,
    consumer: String,
    concurrency: usize,
}

impl Worker {
    /// A worker on `stream` at `url`, in the group the queue's settings name (else
    /// `workers`), one job at a time.
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> Worker {
        Worker {
            url: url.into(),
            stream: stream.into(),
            group: None,
            consumer: default_consumer(),
            concurrency: 1,
        }
    }

    /// The worker a container of the operator's gets: `REDIS_URL` (default
    /// `redis://127.0.0.1:6379`), `JOBQUEUE_STREAM` (required), `JOBQUEUE_GROUP`,
    /// `JOBQUEUE_CONSUMER` (default: host name and process id).
    pub fn from_env() -> Result<Worker> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let stream = var("JOBQUEUE_STREAM").ok_or(QueueError::InvalidArgument {
            argument: "JOBQUEUE_STREAM",
            reason: "is not set: the queue's stream key (the operator sets it in worker pods)"
                .into(),
        })?;
        let url = var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let mut w = Worker::new(url, stream);
        w.group = var("JOBQUEUE_GROUP");
        if let Some(c) = var("JOBQUEUE_CONSUMER") {
            w.consumer = c;
        }
        Ok(w)
    }

    /// Reads with consumer group `group`.
    pub fn group(mut self, group: impl Into<String>) -> Worker {
        self.group = Some(group.into());
        self
    }

    /// Names this worker `consumer` in the group (unique per running worker).
    pub fn consumer(mut self, consumer: impl Into<String>) -> Worker {
        self.consumer = consumer.into();
        self
    }

    /// Runs up to `n` jobs at the same time (at least 1).
    pub fn concurrency(mut self, n: usize) -> Worker {
        self.concurrency = n.max(1);
        self
    }

    /// Runs jobs until SIGTERM or SIGINT, then waits for those in hand.
    pub async fn run<H, F>(self, handler: H) -> Result<WorkerReport>
    where
        H: Fn(JobContext) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Outcome> + Send + 'static,
    {
        let stop = stop_on_signals().map_err(|e| QueueError::InvalidArgument {
            argument: "signal handler",
            reason: e.to_string(),
        })?;
        self.run_until(stop, handler).await
    }

    /// Runs jobs until `stop` turns true, then waits for those in hand.
    pub async fn run_until<H, F>(
        self,
        stop: watch::Receiver<bool>,
        handler: H,
    ) -> Result<WorkerReport>
    where
        H: Fn(JobContext) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut conn = connect(&self.url).await?;
        let reader = connect(&self.url).await?;
        require_library(&mut conn).await?;
        let keys = QueueKeys::new(&self.stream);
        let stored = read_worker_settings(&mut conn, &keys).await?;
        let group = self
            .group
            .or(stored.group)
            .unwrap_or_else(|| "workers".into());
        let cfg = WorkerConfig {
            ops: JobOps {
                keys,
                group,
                consumer: self.consumer,
            },
            concurrency: self.concurrency,
            visibility_timeout: stored
                .visibility_timeout
                .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT),
            block: Duration::from_secs(1),
        };
        run_worker(reader, conn, cfg, stop, handler).await
    }
}

/// A stop flag that turns true on the first SIGTERM or SIGINT: what a worker waits for to take
/// no new job and finish the ones in hand.
pub fn stop_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    let (stop_tx, stop) = watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping: no new jobs; waiting for the running ones");
        stop_tx.send_replace(true);
    });
    Ok(stop)
}

/// `<host>-<pid>`: unique per worker process.
pub fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    format!("{host}-{}", std::process::id())
}

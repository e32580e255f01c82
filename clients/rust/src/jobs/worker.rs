//! A worker loop on top of the worker operations: take jobs (or block in XREADGROUP and start
//! them), run a handler with automatic heartbeats, then complete or fail. Used by `jobqueue-operator work`; any
//! Rust program can use it with its own handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::StreamReadReply;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::ops::{Delivery, JobOps, Liveness, Started};
use crate::conn::RedisConn;
use crate::error::{QueueError, Result};

/// Pause after a failed read before the next one.
const READ_RETRY: Duration = Duration::from_secs(1);

/// How a handler ended a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; with a result (JSON text, or text stored as a JSON string).
    Complete(Option<String>),
    /// Failed; retried unless `permanent` (or out of attempts).
    Fail {
        /// What went wrong (stored in the record and the dead letter).
        error: String,
        /// Retrying cannot help: dead-letter at once.
        permanent: bool,
    },
}

/// Settings of [`run_worker`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The queue, group and consumer name.
    pub ops: JobOps,
    /// Jobs run at the same time.
    pub concurrency: usize,
    /// The queue's visibility timeout: a job running longer than half of it is heartbeated.
    pub visibility_timeout: Duration,
    /// How long one XREADGROUP blocks (bounds how late a shutdown is noticed).
    pub block: Duration,
}

/// What a handler gets besides the job: progress reports and the cancel signal.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job.
    pub delivery: Delivery,
    conn: RedisConn,
    ops: JobOps,
    cancel: watch::Receiver<bool>,
}

impl JobContext {
    /// Reports progress (JSON text); also extends the visibility timeout.
    pub async fn progress(&mut self, progress: &str) -> Result<Liveness> {
        self.ops
            .progress(&mut self.conn, &self.delivery, progress)
            .await
    }

    /// Turns true when a cancel of this job is requested (seen on a heartbeat).
    pub fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.clone()
    }
}

/// Counts of what a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Jobs run to an outcome.
    pub ran: u64,
    /// Jobs skipped because they were cancelled while queued.
    pub skipped_cancelled: u64,
}

/// Runs jobs until `stop` turns true, then waits for the running ones. A failed first read
/// is returned (the queue is unusable); later ones are logged and retried, never fatal to the
/// jobs running. Jobs are taken with `jobqueue_take`, as many as there are free slots; when
/// none is waiting, `reader` blocks in XREADGROUP (a blocked connection would delay the other
/// calls, so `conn` serves the worker operations).
pub async fn run_worker<H, F>(
    mut reader: RedisConn,
    conn: RedisConn,
    cfg: WorkerConfig,
    mut stop: watch::Receiver<bool>,
    handler: H,
) -> Result<WorkerReport>
where
    H: Fn(JobContext) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut tasks: JoinSet<Result<bool>> = JoinSet::new();
    let mut report = WorkerReport::default();
    let mut started = false;
    while !*stop.borrow() {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => continue,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        // Not raced against `stop`: a delivery the server made must reach a handler.
        let taken = match next_jobs(&mut reader, &cfg, permits.len()).await {
            Ok(t) => t,
            // A queue that cannot be read at all at start is a setup error (a typo).
            Err(e) if !started => return Err(e),
            Err(e) => {
                // Running jobs go on; reading resumes when Redis (or the queue) is back.
                tracing::warn!(error = %e, "reading jobs failed; retrying");
                tokio::time::sleep(READ_RETRY).await;
                Vec::new()
            }
        };
        while let Some(done) = tasks.try_join_next() {
            tally(&mut report, done);
        }
        started = true;
        for (job, permit) in taken.into_iter().zip(permits) {
            let (conn, cfg, handler) = (conn.clone(), cfg.clone(), handler.clone());
            tasks.spawn(async move {
                let ran = run_one(conn, &cfg, job, handler).await;
                drop(permit);
                ran
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        tally(&mut report, done);
    }
    Ok(report)
}

fn tally(
    report: &mut WorkerReport,
    done: std::result::Result<Result<bool>, tokio::task::JoinError>,
) {
    match done {
        Ok(Ok(true)) => report.ran += 1,
        Ok(Ok(false)) => report.skipped_cancelled += 1,
        Ok(Err(e)) => tracing::warn!(error = %e, "a job's outcome could not be recorded"),
        Err(e) => tracing::error!(error = %e, "a job handler panicked"),
    }
}

/// A job handed to this worker, and whether `jobqueue_take` already started it.
struct Taken {
    delivery: Delivery,
    started: bool,
}

/// Up to `count` jobs: taken (and started) at once when some are waiting, else the one a
/// blocking read hands over, not yet started.
async fn next_jobs(reader: &mut RedisConn, cfg: &WorkerConfig, count: usize) -> Result<Vec<Taken>> {
    let taken = cfg.ops.take(reader, count).await?;
    if !taken.is_empty() {
        return Ok(taken
            .into_iter()
            .map(|delivery| Taken {
                delivery,
                started: true,
            })
            .collect());
    }
    Ok(read_one(reader, cfg)
        .await?
        .into_iter()
        .map(|delivery| Taken {
            delivery,
            started: false,
        })
        .collect())
}

async fn read_one(reader: &mut RedisConn, cfg: &WorkerConfig) -> Result<Option<Delivery>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&cfg.ops.group)
        .arg(&cfg.ops.consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(cfg.block.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(&cfg.ops.keys.stream)
        .arg(">")
        .query_async(reader)
        .await
        .map_err(|e| {
            crate::error::map_error("reading jobs", &cfg.ops.keys.stream, &cfg.ops.group, e)
        })?;
    let Some(entry) = reply
        .and_then(|r| r.keys.into_iter().next())
        .and_then(|k| k.ids.into_iter().next())
    else {
        return Ok(None);
    };
    let fields: Vec<(String, String)> = entry
        .map
        .into_iter()
        .filter_map(|(k, v)| redis::from_redis_value::<String>(v).ok().map(|v| (k, v)))
        .collect();
    Ok(Some(Delivery::from_entry(entry.id, &fields)))
}

/// Starts, runs and settles one job. Returns false when it was skipped (cancelled or stale).
async fn run_one<H, F>(
    mut conn: RedisConn,
    cfg: &WorkerConfig,
    job: Taken,
    handler: H,
) -> Result<bool>
where
    H: Fn(JobContext) -> F,
    F: Future<Output = Outcome>,
{
    let ops = &cfg.ops;
    let d = job.delivery;
    if !job.started && ops.start(&mut conn, &d).await? != Started::Run {
        return Ok(false);
    }
    let (cancel_tx, cancel) = watch::channel(false);
    let ctx = JobContext {
        delivery: d.clone(),
        conn: conn.clone(),
        ops: ops.clone(),
        cancel,
    };
    let work = handler(ctx);
    tokio::pin!(work);
    let period = heartbeat_period(cfg.visibility_timeout);
    let outcome = loop {
        tokio::select! {
            o = &mut work => break o,
            _ = tokio::time::sleep(period) => match ops.heartbeat(&mut conn, &d).await {
                Ok(Liveness::Held { cancel_requested }) => {
                    if cancel_requested {
                        cancel_tx.send_replace(true);
                    }
                }
                Ok(Liveness::Stale) => tracing::warn!(job = %d.job_id, "job was handed to another worker"),
                Err(e) => tracing::warn!(job = %d.job_id, error = %e, "heartbeat failed"),
            },
        }
    };
    settle(&mut conn, ops, &d, &outcome).await?;
    Ok(true)
}

/// Records the outcome; one retry covers a reconnect of the shared connection.
async fn settle(conn: &mut RedisConn, ops: &JobOps, d: &Delivery, outcome: &Outcome) -> Result<()> {
    let mut last: Option<QueueError> = None;
    for _ in 0..2 {
        let r = match outcome {
            Outcome::Complete(result) => ops.complete(conn, d, result.as_deref()).await,
            Outcome::Fail { error, permanent } => ops.fail(conn, d, error, *permanent).await,
        };
        match r {
            Ok(s) => {
                tracing::info!(job = %d.job_id, state = %s.state, attempt = s.attempt, "job settled");
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("the loop ran"))
}

/// Half the visibility timeout (a job is heartbeated before it could be reclaimed), at most
/// 5s so a cancel request is noticed soon, at least 100ms.
pub fn heartbeat_period(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_before_the_visibility_timeout() {
        assert_eq!(
            heartbeat_period(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            heartbeat_period(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
        assert_eq!(
            heartbeat_period(Duration::from_millis(50)),
            Duration::from_millis(100)
        );
    }
}

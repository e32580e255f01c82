//! `jobqueue-operator work`: a ready-made worker that runs a command for each job, built on the
//! worker operations (`queue::jobs`), so it can serve as a worker container unchanged: it
//! reads `REDIS_URL`, `JOBQUEUE_STREAM`, `JOBQUEUE_GROUP` and `JOBQUEUE_CONSUMER`.
//!
//! The command's side of the protocol:
//! - stdin is the job's payload (JSON text); `JOBQUEUE_JOB_ID` and `JOBQUEUE_ATTEMPT` are set.
//! - Exit 0 completes the job; its stdout (trimmed) is the result: JSON when it parses, else a
//!   JSON string; empty means no result.
//! - Exit [`PERMANENT_EXIT_CODE`] (65, `EX_DATAERR`: retrying cannot help) fails it for good:
//!   dead-lettered at once.
//! - Any other exit, death by a signal, or `--timeout` (the command is killed) fails it: retried
//!   with the queue's backoff, dead-lettered at `maxDeliveries`. The error is stderr's tail.
//! - A stderr line `JOBQUEUE_PROGRESS <JSON>` reports progress (readable with `job get`).
//! - A cancel requested while it runs kills the command; the job ends `cancelled`.
//!
//! SIGTERM or SIGINT stops taking jobs and waits for the running ones.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::target::TargetArgs;
use crate::api::Duration;
use crate::queue::connect;
use crate::queue::jobs::{
    JobContext, JobOps, Outcome, WorkerConfig, ensure_library, read_worker_settings, run_worker,
};

/// The exit code by which a command says its failure is permanent.
pub const PERMANENT_EXIT_CODE: i32 = 65;
/// Prefix of a stderr line reporting progress.
pub const PROGRESS_PREFIX: &str = "JOBQUEUE_PROGRESS ";
/// How much of stderr's end becomes the error text.
const ERROR_TAIL_BYTES: usize = 4096;

/// Arguments of `work`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The command gets the payload on stdin and JOBQUEUE_JOB_ID, JOBQUEUE_ATTEMPT in its environment.
  exit 0    the job succeeded; stdout is its result (JSON, or stored as a JSON string)
  exit 65   the job failed for good: dead-lettered at once
  other     the job failed (also on --timeout): retried with the queue's backoff;
            the end of stderr is the error
A stderr line `JOBQUEUE_PROGRESS <JSON>` reports progress. SIGTERM finishes running jobs, then exits.")]
pub struct WorkArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The queue's stream key (omit with -f). Default: $JOBQUEUE_STREAM.
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
    /// Consumer group (default: the manifest's, then the queue's stored settings, then workers).
    #[arg(long, value_name = "G", env = "JOBQUEUE_GROUP")]
    group: Option<String>,
    /// This worker's consumer name (default: work-<hostname>-<pid>).
    #[arg(long, value_name = "NAME", env = "JOBQUEUE_CONSUMER")]
    consumer: Option<String>,
    /// Jobs run at the same time.
    #[arg(long, value_name = "N", default_value_t = 1)]
    concurrency: usize,
    /// Kill a command running longer than this and fail its job (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `work` until SIGTERM/SIGINT.
pub async fn run(args: WorkArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| Duration::from_str(t).map(|d| d.as_std()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let stream = match (&args.target.file, &args.stream) {
        (None, None) => std::env::var("JOBQUEUE_STREAM")
            .ok()
            .filter(|s| !s.is_empty()),
        (_, s) => s.clone(),
    };
    let mut target = args
        .target
        .resolve(stream.as_deref(), args.group.as_deref())?;
    let conn = target.connect().await?;
    let reader = connect(&target.url)
        .await
        .context("connecting the reader")?;
    let mut ops_conn = conn.clone();
    ensure_library(&mut ops_conn).await?;
    let stored = read_worker_settings(&mut ops_conn, &target.cfg.keys).await?;
    if args.group.is_none()
        && args.target.file.is_none()
        && let Some(g) = stored.group
    {
        target.cfg.group = g;
    }
    let cfg = WorkerConfig {
        ops: JobOps {
            keys: target.cfg.keys.clone(),
            group: target.cfg.group.clone(),
            consumer: args.consumer.clone().unwrap_or_else(default_consumer),
        },
        concurrency: args.concurrency,
        visibility_timeout: stored
            .visibility_timeout
            .unwrap_or(target.cfg.visibility_timeout),
        block: StdDuration::from_secs(1),
    };
    tracing::info!(stream = %cfg.ops.keys.stream, group = %cfg.ops.group, consumer = %cfg.ops.consumer, "worker started");
    let stop = jobqueue_client::worker::stop_on_signals()
        .context("installing the SIGTERM and SIGINT handlers")?;
    let command = std::sync::Arc::new(args.command);
    let report = run_worker(reader, conn, cfg, stop, move |ctx| {
        let command = command.clone();
        async move { run_command(ctx, &command, timeout).await }
    })
    .await?;
    tracing::info!(
        ran = report.ran,
        skipped_cancelled = report.skipped_cancelled,
        "worker stopped"
    );
    Ok(())
}

fn default_consumer() -> String {
    format!("work-{}", jobqueue_client::worker::default_consumer())
}

/// Runs `command` for one job and turns how it ended into the job's outcome.
async fn run_command(ctx: JobContext, command: &[String], timeout: Option<StdDuration>) -> Outcome {
    let d = ctx.delivery.clone();
    let spawned = Command::new(&command[0])
        .args(&command[1..])
        .env("JOBQUEUE_JOB_ID", &d.job_id)
        .env("JOBQUEUE_ATTEMPT", d.attempt.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot run {:?}: {e}", command[0])),
    };
    let mut stdin = child.stdin.take().expect("piped");
    let payload = d.payload.clone();
    tokio::spawn(async move {
        // A command that does not read its input closes the pipe: not an error.
        let _ = stdin.write_all(payload.as_bytes()).await;
    });
    let mut stdout = child.stdout.take().expect("piped");
    let out = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf).await;
        buf
    });
    let mut cancelled = ctx.cancelled();
    let err = tokio::spawn(stderr_tail(child.stderr.take().expect("piped"), ctx));
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status),
        _ = sleep_or_forever(timeout) => Ended::TimedOut,
        _ = cancelled.wait_for(|c| *c) => Ended::Cancelled,
    };
    if !matches!(ended, Ended::Exited(_)) {
        let _ = child.kill().await;
    }
    // Bounded: a background grandchild may keep the pipes open.
    let grace = StdDuration::from_secs(2);
    let stdout = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let tail = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    outcome(ended, &stdout, &tail, timeout)
}

enum Ended {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

async fn sleep_or_forever(d: Option<StdDuration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn fail(error: String) -> Outcome {
    Outcome::Fail {
        error,
        permanent: false,
    }
}

/// The job's outcome from how the command ended (pure).
fn outcome(ended: Ended, stdout: &[u8], tail: &str, timeout: Option<StdDuration>) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let with_tail = |what: String| {
        if tail.is_empty() {
            what
        } else {
            format!("{what}: {tail}")
        }
    };
    match ended {
        Ended::Exited(Ok(s)) if s.success() => {
            let text = String::from_utf8_lossy(stdout).trim().to_string();
            Outcome::Complete((!text.is_empty()).then_some(text))
        }
        Ended::Exited(Ok(s)) => match (s.code(), s.signal()) {
            (Some(PERMANENT_EXIT_CODE), _) => Outcome::Fail {
                error: with_tail(format!("exit code {PERMANENT_EXIT_CODE} (permanent)")),
                permanent: true,
            },
            (Some(c), _) => fail(with_tail(format!("exit code {c}"))),
            (None, Some(sig)) => fail(with_tail(format!("killed by signal {sig}"))),
            (None, None) => fail(with_tail("ended without an exit code".into())),
        },
        Ended::Exited(Err(e)) => fail(format!("waiting for the command failed: {e}")),
        Ended::TimedOut => fail(with_tail(format!(
            "timed out after {:?}",
            timeout.unwrap_or_default()
        ))),
        Ended::Cancelled => fail("cancelled while running".into()),
    }
}

/// Reads stderr: progress lines are reported, the rest is kept as a bounded tail.
async fn stderr_tail(stderr: tokio::process::ChildStderr, mut ctx: JobContext) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut size = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(progress) = line.strip_prefix(PROGRESS_PREFIX) {
            if let Err(e) = ctx.progress(progress.trim()).await {
                tracing::warn!(job = %ctx.delivery.job_id, error = %e, "progress not recorded");
            }
            continue;
        }
        size += line.len() + 1;
        tail.push_back(line);
        while size > ERROR_TAIL_BYTES && tail.len() > 1 {
            size -= tail.pop_front().map_or(0, |l| l.len() + 1);
        }
    }
    Vec::from(tail).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exited(raw: i32) -> Ended {
        Ended::Exited(Ok(ExitStatus::from_raw(raw)))
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert_eq!(
            outcome(exited(0), b" {\"n\":1}\n", "", None),
            Outcome::Complete(Some("{\"n\":1}".into()))
        );
        assert_eq!(outcome(exited(0), b"\n", "", None), Outcome::Complete(None));
        assert_eq!(
            outcome(exited(1 << 8), b"", "boom", None),
            fail("exit code 1: boom".into())
        );
        assert!(matches!(
            outcome(exited(PERMANENT_EXIT_CODE << 8), b"", "bad input", None),
            Outcome::Fail { permanent: true, ref error } if error.contains("bad input")
        ));
        assert_eq!(
            outcome(exited(9), b"", "", None),
            fail("killed by signal 9".into())
        );
        assert!(matches!(
            outcome(Ended::TimedOut, b"", "", Some(StdDuration::from_secs(1))),
            Outcome::Fail { permanent: false, ref error } if error.starts_with("timed out")
        ));
    }
}

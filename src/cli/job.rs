//! `jobqueue-operator job`: follow the jobs of a queue by id: `get`, `wait`, `cancel`, `list`.
//! Records come from the queue's job records (see `queue::jobs`); JSON output uses camelCase
//! keys like `inspect -o json`.

use std::str::FromStr;

use anyhow::{Context, bail};

use super::inspect::Output;
use super::target::{Target, TargetArgs};
use crate::api::Duration;
use crate::queue::jobs::{
    CancelOutcome, JobRecord, JobState, cancel_job, get_job, list_jobs, wait_job,
};

/// `job` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Show one job: state, attempt, progress, result, error, times.
    Get(GetArgs),
    /// Wait until a job ends and print it; exit 0 only when it succeeded.
    Wait(WaitArgs),
    /// Cancel a queued, delayed or retrying job; a running job is asked to stop.
    Cancel(JobArgs),
    /// List recently changed jobs, newest first.
    List(ListArgs),
}

/// The queue and the job a command works on.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Consumer group whose deliveries tell the state of jobs handled by XACK-only workers
    /// (default: workers, or the manifest's).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// The queue's stream key (omit with -f).
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
    /// The job id (as printed by `enqueue`).
    #[arg(value_name = "ID")]
    id: Option<String>,
}

impl JobArgs {
    /// The queue and the job id; with -f the only positional is the id.
    fn resolve(&self) -> anyhow::Result<(Target, String)> {
        let (stream, id) = match (&self.target.file, &self.stream, &self.id) {
            (Some(_), Some(id), None) => (None, Some(id.clone())),
            (_, s, i) => (s.clone(), i.clone()),
        };
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            bail!("missing ID: give the job id printed by `enqueue`");
        };
        Ok((
            self.target
                .resolve(stream.as_deref(), self.group.as_deref())?,
            id,
        ))
    }
}

/// Arguments of `job get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// Arguments of `job wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Give up after this long (e.g. 30s, 5m); exit non-zero. Default: wait forever.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// Arguments of `job list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Consumer group (default: workers, or the manifest's).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// The queue's stream key (omit with -f).
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
    /// Only jobs in this state (queued, delayed, active, retrying, succeeded, dead, cancelled).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// At most this many jobs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// Runs a `job` subcommand.
pub async fn run(cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Get(args) => get(args).await,
        JobCommand::Wait(args) => wait(args).await,
        JobCommand::Cancel(args) => cancel(args).await,
        JobCommand::List(args) => list(args).await,
    }
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let (target, id) = args.job.resolve()?;
    let mut conn = target.connect().await?;
    let keys = &target.cfg.keys;
    match get_job(&mut conn, keys, &target.cfg.group, &id).await? {
        Some(rec) => print_record(&rec, args.output),
        None => bail!(
            "no record of job {id:?} in {:?} (unknown, expired or not tracked)",
            keys.stream
        ),
    }
}

async fn wait(args: WaitArgs) -> anyhow::Result<()> {
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| {
            Duration::from_str(t)
                .map(|d| d.as_std())
                .map_err(|e| anyhow::anyhow!("--timeout: {e}"))
        })
        .transpose()?;
    let (target, id) = args.job.resolve()?;
    let mut conn = target.connect().await?;
    let keys = &target.cfg.keys;
    let Some(rec) = wait_job(&mut conn, keys, &target.cfg.group, &id, timeout).await? else {
        bail!(
            "no record of job {id:?} in {:?} (unknown, expired or not tracked)",
            keys.stream
        );
    };
    print_record(&rec, args.output)?;
    match rec.state {
        JobState::Succeeded => Ok(()),
        s if s.is_final() => bail!("job {id} ended {s}"),
        s => bail!("timed out waiting for job {id} (still {s})"),
    }
}

async fn cancel(args: JobArgs) -> anyhow::Result<()> {
    let (target, id) = args.resolve()?;
    let mut conn = target.connect().await?;
    match cancel_job(&mut conn, &target.cfg.keys, &target.cfg.group, &id).await? {
        CancelOutcome::Cancelled => println!("job {id} cancelled"),
        CancelOutcome::Requested => {
            println!("job {id} is running: its worker was asked to stop")
        }
        CancelOutcome::AlreadyFinal(state) => bail!("job {id} already ended ({state})"),
        CancelOutcome::Missing => {
            bail!("no record of job {id:?} (unknown, expired or not tracked)")
        }
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let state = args
        .state
        .as_deref()
        .map(JobState::from_str)
        .transpose()
        .context("--state")?;
    let target = args
        .target
        .resolve(args.stream.as_deref(), args.group.as_deref())?;
    let mut conn = target.connect().await?;
    let jobs = list_jobs(
        &mut conn,
        &target.cfg.keys,
        &target.cfg.group,
        state,
        args.limit,
    )
    .await?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&jobs)?),
        Output::Table => {
            println!("{:<40} {:<10} {:>7}  ERROR", "ID", "STATE", "ATTEMPT");
            for j in &jobs {
                println!(
                    "{:<40} {:<10} {:>7}  {}",
                    j.id,
                    j.state,
                    j.attempt,
                    j.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn print_record(rec: &JobRecord, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rec)?),
        Output::Table => print!("{}", text(rec)),
    }
    Ok(())
}

/// The record as `key: value` lines (absent values left out).
fn text(rec: &JobRecord) -> String {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let ms = |v: Option<i64>| v.map(|v| v.to_string());
    let rows: [(&str, Option<String>); 13] = [
        ("id", Some(rec.id.clone())),
        ("state", Some(rec.state.to_string())),
        ("attempt", Some(rec.attempt.to_string())),
        ("progress", json(&rec.progress)),
        ("result", json(&rec.result)),
        ("resultDropped", rec.result_dropped.clone()),
        ("error", rec.error.clone()),
        ("consumer", rec.consumer.clone()),
        (
            "cancelRequested",
            rec.cancel_requested.then(|| "true".into()),
        ),
        ("enqueuedAtMs", ms(rec.enqueued_at_ms)),
        ("startedAtMs", ms(rec.started_at_ms)),
        ("finishedAtMs", ms(rec.finished_at_ms)),
        ("dueAtMs", ms(rec.due_at_ms)),
    ];
    rows.iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}\n")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_lists_present_fields_only() {
        let mut fields = std::collections::HashMap::new();
        fields.insert("state".to_string(), "dead".to_string());
        fields.insert("error".to_string(), "boom".to_string());
        let rec = JobRecord::from_fields("j1", fields).unwrap();
        let out = text(&rec);
        assert!(out.contains("id: j1\nstate: dead\nattempt: 1\n"), "{out}");
        assert!(out.contains("error: boom\n"), "{out}");
        assert!(!out.contains("result"), "{out}");
    }
}

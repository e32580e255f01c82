//! `jobqueue-operator inspect`: a queue's length, lag, pending jobs, consumers and dead
//! letters, as a table or as JSON keyed like the JobQueue status.

use anyhow::bail;
use serde::Serialize;

use super::target::TargetArgs;
use crate::api::Duration;
use crate::queue::QueueError;
use crate::queue::metrics::{LagSource, QueueMetrics, QueueState, SnapshotOptions, snapshot};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A human-readable table.
    Table,
    /// JSON with the JobQueue status field names.
    Json,
}

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The queue's stream key (omit with -f).
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
    /// Consumer group (default: workers, or the manifest's consumerGroup).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// The JSON shape: the JobQueue status names (`length`, `lag`, ...).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// An adopted queue (`spec.source`): the system and its queue name. Then `lag` is what is
    /// queued, `pending` what is in flight, consumers are its workers (pending = jobs running),
    /// `deadLetterLength` its failed jobs where the system keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    stream: String,
    consumer_group: String,
    length: u64,
    lag: u64,
    /// `reported`, `estimated`, or `atLeast` (see the metrics module).
    lag_source: &'static str,
    pending: u64,
    oldest_pending_age: Option<Duration>,
    consumers: Vec<Consumer>,
    delayed: u64,
    dead_letter_length: u64,
    /// Counters of tracked jobs since the queue's counters began.
    jobs: Jobs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Jobs {
    succeeded: u64,
    failed: u64,
    dead: u64,
    cancelled: u64,
    /// Mean run time of the succeeded ones, when any was timed.
    mean_duration: Option<Duration>,
}

#[derive(Debug, Serialize)]
struct Consumer {
    name: String,
    pending: u64,
    idle: Duration,
}

/// Runs `inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let target = args
        .target
        .resolve(args.stream.as_deref(), args.group.as_deref())?;
    let mut conn = target.connect().await?;
    let cfg = &target.cfg;
    let state = snapshot(
        &mut conn,
        std::slice::from_ref(cfg),
        SnapshotOptions::default(),
    )
    .await?
    .remove(0)?;
    let m = match state {
        QueueState::Ready(m) => m,
        QueueState::StreamMissing { .. } => {
            return Err(QueueError::NoSuchStream {
                stream: cfg.stream().to_string(),
            }
            .into());
        }
        QueueState::GroupMissing { .. } => {
            bail!(QueueError::NoSuchGroup {
                stream: cfg.stream().to_string(),
                group: cfg.group.clone()
            })
        }
    };
    let mut report = report(cfg.stream(), &cfg.group, m);
    report.source = cfg.source.as_ref().map(|a| a.describe());
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print!("{}", table(&report)),
    }
    Ok(())
}

fn report(stream: &str, group: &str, m: QueueMetrics) -> Report {
    Report {
        source: None,
        stream: stream.to_string(),
        consumer_group: group.to_string(),
        length: m.length,
        lag: m.lag,
        lag_source: match m.lag_source {
            LagSource::Reported => "reported",
            LagSource::Estimated => "estimated",
            LagSource::AtLeast => "atLeast",
        },
        pending: m.pending,
        oldest_pending_age: m.oldest_pending_age.map(Duration::from),
        consumers: m
            .consumers
            .into_iter()
            .map(|c| Consumer {
                name: c.name,
                pending: c.pending,
                idle: c.idle.into(),
            })
            .collect(),
        delayed: m.delayed,
        dead_letter_length: m.dead_letter_length,
        jobs: Jobs {
            succeeded: m.jobs.succeeded,
            failed: m.jobs.failed,
            dead: m.jobs.dead,
            cancelled: m.jobs.cancelled,
            mean_duration: (m.jobs.duration.count > 0).then(|| {
                Duration::from(
                    m.jobs.duration.sum / m.jobs.duration.count.min(u32::MAX as u64) as u32,
                )
            }),
        },
    }
}

fn table(r: &Report) -> String {
    if let Some(source) = &r.source {
        return adopted_table(source, r);
    }
    let lag = match r.lag_source {
        "reported" => r.lag.to_string(),
        "estimated" => format!("{} (estimated)", r.lag),
        _ => format!(">= {} (estimated)", r.lag),
    };
    let oldest = r
        .oldest_pending_age
        .map(|d| d.to_string())
        .unwrap_or_else(|| "-".into());
    let mut out = format!(
        "STREAM          {}\nGROUP           {}\nLENGTH          {}\nLAG             {lag}\n\
         PENDING         {}\nOLDEST PENDING  {oldest}\nDELAYED         {}\nDEAD LETTERS    {}\n\
         JOBS            {} succeeded, {} failed (retried), {} dead, {} cancelled\n",
        r.stream,
        r.consumer_group,
        r.length,
        r.pending,
        r.delayed,
        r.dead_letter_length,
        r.jobs.succeeded,
        r.jobs.failed,
        r.jobs.dead,
        r.jobs.cancelled
    );
    if let Some(d) = r.jobs.mean_duration {
        out.push_str(&format!("MEAN JOB TIME   {d}\n"));
    }
    if !r.consumers.is_empty() {
        let width = name_width(&r.consumers, "CONSUMER");
        out.push_str(&format!(
            "\n{:<width$}  {:>7}  IDLE\n",
            "CONSUMER", "PENDING"
        ));
        for c in &r.consumers {
            out.push_str(&format!(
                "{:<width$}  {:>7}  {}\n",
                c.name, c.pending, c.idle
            ));
        }
    }
    out
}

/// The width of the name column: the longest consumer name, at least its `heading`.
fn name_width(consumers: &[Consumer], heading: &str) -> usize {
    consumers
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(heading.len())
}

/// An adopted queue in the words of its own system.
fn adopted_table(source: &str, r: &Report) -> String {
    let mut out = format!(
        "SOURCE          {source} (read only)\nQUEUED          {}\nIN FLIGHT       {}\n\
         DELAYED         {}\nFAILED          {}\n",
        r.lag, r.pending, r.delayed, r.dead_letter_length
    );
    if !r.consumers.is_empty() {
        let width = name_width(&r.consumers, "WORKER");
        out.push_str(&format!("\n{:<width$}  {:>4}\n", "WORKER", "BUSY"));
        for c in &r.consumers {
            out.push_str(&format!("{:<width$}  {:>4}\n", c.name, c.pending));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::jobs::JobCounts;

    #[test]
    fn job_counts_show_in_json_and_table() {
        let mut jobs = JobCounts {
            succeeded: 3,
            failed: 2,
            dead: 1,
            ..JobCounts::default()
        };
        jobs.duration.count = 3;
        jobs.duration.sum = std::time::Duration::from_millis(4500);
        let m = QueueMetrics {
            length: 0,
            lag: 0,
            lag_source: LagSource::Reported,
            pending: 0,
            oldest_pending_age: None,
            consumers: vec![],
            delayed: 0,
            dead_letter_length: 1,
            last_delivered_id: "0-0".into(),
            server_time_ms: 0,
            jobs,
        };
        let r = report("jobqueue:{a/b}", "workers", m);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["jobs"]["succeeded"], 3);
        assert_eq!(json["jobs"]["failed"], 2);
        assert_eq!(json["jobs"]["dead"], 1);
        assert_eq!(json["jobs"]["cancelled"], 0);
        assert_eq!(json["jobs"]["meanDuration"], "1.5s");
        let text = table(&r);
        assert!(
            text.contains("JOBS            3 succeeded, 2 failed (retried), 1 dead, 0 cancelled"),
            "{text}"
        );
        assert!(text.contains("MEAN JOB TIME   1.5s"), "{text}");
    }
}

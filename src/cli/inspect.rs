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
    let report = report(cfg.stream(), &cfg.group, m);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print!("{}", table(&report)),
    }
    Ok(())
}

fn report(stream: &str, group: &str, m: QueueMetrics) -> Report {
    Report {
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
    }
}

fn table(r: &Report) -> String {
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
         PENDING         {}\nOLDEST PENDING  {oldest}\nDELAYED         {}\nDEAD LETTERS    {}\n",
        r.stream, r.consumer_group, r.length, r.pending, r.delayed, r.dead_letter_length
    );
    if !r.consumers.is_empty() {
        let width = r
            .consumers
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(8);
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

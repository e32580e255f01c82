//! `jobqueue-operator schedule`: preview a cron expression's fire times with the scheduler's
//! own code, and (hidden) run only the scheduler loop against given streams.

use std::fmt::Write as _;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::api::Duration;
use crate::operator::signal::shutdown_signal;
use crate::queue::conn::{self, Endpoint};
use crate::queue::keys::QueueKeys;
use crate::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerConfig, spawn_change_listener};
use crate::schedule::{CronSchedule, parse_time_zone};

/// `schedule` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a cron expression, in the zone's local time and in UTC.
    Preview(PreviewArgs),
    /// Run only the scheduler loop for the given streams until SIGTERM or Ctrl-C.
    #[command(hide = true)]
    Run(RunArgs),
}

/// Arguments of `schedule preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with a
    /// leading second field, or @yearly, @monthly, @weekly, @daily, @hourly.
    #[arg(allow_hyphen_values = true)]
    expr: String,
    /// IANA time zone the expression is evaluated in.
    #[arg(long, short = 'z', default_value = "UTC")]
    time_zone: String,
    /// List fire times strictly after this RFC 3339 instant (default: now).
    #[arg(long)]
    from: Option<String>,
    /// How many fire times to list.
    #[arg(short = 'n', long = "count", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// Output format; `json` is an array of RFC 3339 UTC strings.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Arguments of the hidden `schedule run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Redis URL (`redis://`, `rediss://`, `redis+cluster://host:port,...`).
    #[arg(long, env = "REDIS_URL")]
    redis: String,
    /// Stream key of a queue whose schedules to fire (repeatable).
    #[arg(long = "stream", required = true)]
    streams: Vec<String>,
    /// The queues' consumer group (what `concurrencyPolicy: Forbid` looks at).
    #[arg(long, default_value = "workers")]
    group: String,
    /// How late a run may be reached and still fire as usual; further behind, misfirePolicy
    /// applies.
    #[arg(long, default_value = "5s")]
    misfire_grace: Duration,
    /// Longest sleep between passes (a safety net for lost change notifications).
    #[arg(long, default_value = "5s")]
    max_sleep: Duration,
}

/// Runs a `schedule` subcommand.
pub async fn run(cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::Preview(args) => {
            print!("{}", preview(&args, Timestamp::now())?);
            Ok(())
        }
        ScheduleCommand::Run(args) => run_scheduler(args).await,
    }
}

/// The text `schedule preview` prints.
fn preview(args: &PreviewArgs, now: Timestamp) -> anyhow::Result<String> {
    let cron = CronSchedule::parse(&args.expr)
        .with_context(|| format!("cron expression {:?}", args.expr))?;
    let tz = parse_time_zone(&args.time_zone).context("--time-zone")?;
    let from = match &args.from {
        None => now,
        Some(s) => s.parse::<Timestamp>().with_context(|| {
            format!("--from {s:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z")
        })?,
    };
    let times: Vec<Timestamp> = cron
        .iter_after(&tz, from)
        .take(args.count as usize)
        .collect();
    Ok(match args.output {
        Output::Json => {
            let utc: Vec<String> = times.iter().map(|t| rfc3339(*t)).collect();
            format!("{}\n", serde_json::to_string_pretty(&utc)?)
        }
        Output::Text => render_text(&times, &tz),
    })
}

/// RFC 3339 in UTC, whole seconds (fire times have no fraction).
fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn render_text(times: &[Timestamp], tz: &TimeZone) -> String {
    let rows: Vec<(String, String)> = times
        .iter()
        .map(|t| {
            (
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %Z (%:z)")
                    .to_string(),
                rfc3339(*t),
            )
        })
        .collect();
    let head = format!("LOCAL ({})", tz.iana_name().unwrap_or_default());
    let width = rows
        .iter()
        .map(|(l, _)| l.len())
        .chain([head.len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("{head:width$}  UTC\n");
    for (local, utc) in &rows {
        let _ = writeln!(out, "{local:width$}  {utc}");
    }
    if rows.is_empty() {
        out.push_str("(no fire time in the next nine years)\n");
    }
    out
}

async fn run_scheduler(args: RunArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let endpoint = Endpoint::parse(&args.redis).context("--redis")?;
    let conn = conn::connect(&args.redis).await.context("--redis")?;
    let config = SchedulerConfig {
        misfire_grace: args.misfire_grace.as_std(),
        max_sleep: args.max_sleep.as_std(),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::new(conn, config);
    let handle = scheduler.handle();
    handle.set_queues(
        args.streams
            .iter()
            .map(|s| ScheduledQueue {
                keys: QueueKeys::new(s.as_str()),
                group: args.group.clone(),
                term: 0,
            })
            .collect(),
    );
    // PUBLISH reaches every node of a cluster, so any one node can relay change notices.
    let node = match endpoint {
        Endpoint::Single(u) => u,
        Endpoint::Cluster(seeds) => seeds
            .into_iter()
            .next()
            .context("--redis: no cluster seed")?,
    };
    let listener = spawn_change_listener(node, Default::default(), handle);
    tracing::info!(streams = ?args.streams, "scheduler running");
    scheduler.run(shutdown_signal()).await;
    listener.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ScheduleCommand,
    }

    fn preview_of(argv: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["x", "preview"];
        full.extend_from_slice(argv);
        let Cli {
            cmd: ScheduleCommand::Preview(args),
        } = Cli::try_parse_from(full)?
        else {
            unreachable!("preview parses to Preview")
        };
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        preview(&args, now)
    }

    #[test]
    fn text_shows_local_and_utc_across_a_dst_jump() {
        let out = preview_of(&[
            "30 2 * * *",
            "-z",
            "Europe/Berlin",
            "--from",
            "2026-03-28T00:00:00Z",
            "-n",
            "2",
        ])
        .unwrap();
        assert_eq!(
            out,
            "LOCAL (Europe/Berlin)              UTC\n\
             2026-03-28 02:30:00 CET (+01:00)   2026-03-28T01:30:00Z\n\
             2026-03-30 02:30:00 CEST (+02:00)  2026-03-30T00:30:00Z\n"
        );
    }

    #[test]
    fn json_is_an_array_of_utc_strings_and_from_defaults_to_now() {
        let out = preview_of(&["@hourly", "-o", "json", "-n", "2"]).unwrap();
        let v: Vec<String> = serde_json::from_str(&out).unwrap();
        assert_eq!(v, ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]);
    }

    #[test]
    fn errors_name_the_problem_in_one_line() {
        let e = format!("{:#}", preview_of(&["61 * * * *"]).unwrap_err());
        assert_eq!(
            e,
            "cron expression \"61 * * * *\": minute field: 61 is out of range 0-59"
        );
        let e = format!(
            "{:#}",
            preview_of(&["* * * * *", "-z", "Mars/Base"]).unwrap_err()
        );
        assert!(
            e.starts_with("--time-zone: unknown time zone \"Mars/Base\""),
            "{e}"
        );
        let e = format!(
            "{:#}",
            preview_of(&["* * * * *", "--from", "yesterday"]).unwrap_err()
        );
        assert!(
            e.starts_with("--from \"yesterday\" is not an RFC 3339 time"),
            "{e}"
        );
        assert!(preview_of(&["* * * * *", "-n", "0"]).is_err());
        // A leading '-' is an expression, not a flag.
        let e = format!("{:#}", preview_of(&["-5 * * * *"]).unwrap_err());
        assert!(e.contains("minute field"), "{e}");
    }
}

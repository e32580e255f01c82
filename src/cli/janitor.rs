//! `jobqueue-operator janitor` (hidden): runs only the janitor loop for the given queues, for
//! debugging and for the fault tests that SIGKILL it mid-run.

use std::str::FromStr;

use anyhow::{Context, bail};

use super::target::{Target, TargetArgs};
use crate::api::Duration;
use crate::queue::janitor::{JanitorOptions, tick};

/// Arguments of `janitor`.
#[derive(Debug, clap::Args)]
pub struct JanitorArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The queues' stream keys (omit with -f); the same settings apply to each.
    #[arg(value_name = "STREAM")]
    streams: Vec<String>,
    /// Consumer group (default: workers, or the manifest's).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Visibility timeout (overrides the manifest; default 5m).
    #[arg(long, value_name = "DURATION")]
    visibility_timeout: Option<String>,
    /// Deliveries before dead-lettering (overrides the manifest; default 5).
    #[arg(long, value_name = "N")]
    max_deliveries: Option<u32>,
    /// Pause between ticks.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    interval: String,
    /// Jobs per script call.
    #[arg(long, value_name = "N", default_value_t = 200)]
    batch: u32,
    /// Run one tick and exit.
    #[arg(long)]
    once: bool,
}

/// Runs the janitor loop until SIGINT/SIGTERM (or once).
pub async fn run(args: JanitorArgs) -> anyhow::Result<()> {
    let parse = |flag: &str, v: &str| -> anyhow::Result<std::time::Duration> {
        Ok(Duration::from_str(v)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?
            .as_std())
    };
    let resolve = |stream: Option<&str>| -> anyhow::Result<Target> {
        let mut target = args.target.resolve(stream, args.group.as_deref())?;
        if let Some(v) = &args.visibility_timeout {
            target.cfg.visibility_timeout = parse("--visibility-timeout", v)?;
        }
        if let Some(n) = args.max_deliveries {
            target.cfg.max_deliveries = n;
        }
        target.cfg.validate()?;
        Ok(target)
    };
    let targets: Vec<Target> = if args.streams.is_empty() {
        vec![resolve(None)?]
    } else {
        args.streams
            .iter()
            .map(|s| resolve(Some(s)))
            .collect::<anyhow::Result<_>>()?
    };
    let interval = parse("--interval", &args.interval)?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let opts = JanitorOptions {
        batch: args.batch,
        ..JanitorOptions::default()
    };
    // Every queue is on the same Redis (one --redis / manifest URL).
    let mut conn = targets[0].connect().await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        for target in &targets {
            // A failed tick (Redis restarting, say) is reported and retried on the next one.
            match tick(&mut conn, &target.cfg, &opts).await {
                Ok(report) if report != Default::default() => {
                    eprintln!("{}: {report:?}", target.cfg.stream())
                }
                Ok(_) => {}
                Err(e) if args.once => return Err(e.into()),
                Err(e) => eprintln!("{}: janitor tick failed: {e}", target.cfg.stream()),
            }
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

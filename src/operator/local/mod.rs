//! Local mode (`run --local PATH`): the JobQueue and Schedule manifests a team keeps in Git, run
//! on one machine without Kubernetes. It shares the [`Runtime`] with the cluster operator and
//! differs only in where resources come from (files: [`files`], [`manifest`], [`catalog`],
//! [`apply`]), where status goes (a terminal view or log lines: [`view`], [`console`]) and what
//! gets scaled (local processes: [`processes`], [`launch`], [`choice`]). With no Redis named
//! and none at the default URL it runs a private one ([`private_redis`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use crate::operator::dashboard::{self, DashboardError};
use crate::operator::http::{Health, serve};
use crate::operator::metrics::Metrics;
use crate::operator::runtime::Runtime;
use crate::operator::settings::Settings;
use crate::operator::signal::shutdown_signal;

mod apply;
mod catalog;
mod choice;
mod console;
mod files;
mod launch;
mod manifest;
mod private_redis;
mod processes;
mod sys;
mod view;

use catalog::Catalog;
use console::Console;
use files::{Files, Poll};
use processes::{Exited, Stop};
use view::View;

/// How often the files are read again.
const FILE_POLL: Duration = Duration::from_millis(500);
/// Delay before retrying what could not be applied (Redis not reachable).
const RETRY: Duration = Duration::from_secs(2);
/// How often the terminal view is redrawn.
const REDRAW: Duration = Duration::from_millis(500);

/// Runs the manifests under `args.local` on this machine until Ctrl-C / SIGTERM, then stops
/// the workers gracefully and returns.
pub async fn run(args: Settings) -> anyhow::Result<()> {
    let root = args
        .local
        .clone()
        .context("run --local needs a file or directory")?;
    std::fs::metadata(&root).with_context(|| format!("--local {}", root.display()))?;

    let console = Arc::new(Console::new());
    let (redis, private_redis) = private_redis::choose(&args, &console).await?;
    let view = Arc::new(View::new(console.clone(), args.status_interval.as_std()));
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let mut options = args.runtime_options();
    // Status goes to this process, not an API server: the view is fed every second and
    // throttles its own log lines to --status-interval.
    options.status_interval = Duration::from_secs(1);
    let runtime = Runtime::new(options, metrics, view.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(addr) = args.metrics_addr() {
        serve_metrics(&console, addr, registry, stopped(stop_rx.clone())).await;
    }

    serve_dashboard(&args, &console, &runtime, stopped(stop_rx.clone())).await?;

    let (exits_tx, exits_rx) = mpsc::unbounded_channel();
    let reclaimer = tokio::spawn(reclaim(runtime.clone(), exits_rx, console.clone()));
    let loops = {
        let runtime = runtime.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { runtime.run(stop).await })
    };
    let drawer = console.is_tty().then(|| {
        let (console, view) = (console.clone(), view.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDRAW);
            loop {
                tick.tick().await;
                console.draw(&view.table());
            }
        })
    });

    console.line(&format!(
        "running {} locally (Ctrl-C stops the workers and exits)",
        root.display()
    ));
    let mut applier = apply::Applier::new(
        runtime.clone(),
        console.clone(),
        view.clone(),
        exits_tx.clone(),
        redis,
    );
    follow_files(Files::new(root), &mut applier, &console).await;

    console
        .line("stopping: workers get SIGTERM and their grace period (Ctrl-C again kills them now)");
    let _ = stop_tx.send(true);
    let _ = loops.await;
    stop_workers(&mut applier, &console).await;
    // Reclaim what the stopped workers still held, then finish.
    let _ = exits_tx.send(None);
    let _ = reclaimer.await;
    if let Some(private) = private_redis {
        private.stop().await;
        console.line("stopped the private redis-server");
    }
    if let Some(d) = drawer {
        d.abort();
    }
    console.release();
    console.line("stopped");
    Ok(())
}

/// Completes once the stop flag is set.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Serves `/metrics` (and the health endpoints) on `addr`; a port that cannot be bound is a
/// warning, not an error, on a developer's machine.
async fn serve_metrics(
    console: &Console,
    addr: std::net::SocketAddr,
    registry: Registry,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let health = Arc::new(Health::default());
    health.set_ready(true);
    match serve(addr, registry, health, stop).await {
        Ok((bound, server)) => {
            console.line(&format!("metrics: http://{bound}/metrics"));
            tokio::spawn(server);
        }
        Err(e) => console.error(&format!(
            "warning: /metrics not served: cannot listen on {addr}: {e} (choose another with --metrics-addr HOST:PORT, or off)"
        )),
    }
}

/// Serves the dashboard (on a free loopback port unless told otherwise) and prints its URL,
/// and the token made for this run when actions are on without one. A port that cannot be
/// bound is a warning; a token file that cannot be read is an error.
async fn serve_dashboard(
    args: &Settings,
    console: &Console,
    runtime: &Runtime,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (_, slot) = watch::channel(Some(runtime.clone()));
    match dashboard::start(args, slot, true, stop).await {
        Ok(Some(d)) => {
            let mode = if d.actions { "actions on" } else { "read-only" };
            console.line(&format!("dashboard: {} ({mode})", d.url));
            if let Some(token) = d.new_token {
                console.line(&format!(
                    "dashboard token (shown once; the actions need it): {token}"
                ));
            }
        }
        Ok(None) => {}
        Err(e @ DashboardError::Bind { .. }) => console.error(&format!(
            "warning: the dashboard is not served: {e} (choose another with --dashboard-addr HOST:PORT, or off)"
        )),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Reads the files every [`FILE_POLL`] and applies what changed, until SIGTERM / Ctrl-C.
async fn follow_files(mut files: Files, applier: &mut apply::Applier, console: &Console) {
    let mut catalog = Catalog::default();
    let mut said: BTreeSet<String> = BTreeSet::new();
    let mut pending = false;
    let mut retry_at = Instant::now();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        match files.poll() {
            Poll::Unchanged => {}
            Poll::Failed(why) => console.error(&format!(
                "error: {why}; keeping what runs until the path can be read again"
            )),
            Poll::Changed => {
                let (next, findings) = catalog::build(files.contents(), &catalog);
                // What was said after the previous change and still holds is not repeated.
                let lines: BTreeSet<String> = findings
                    .errors
                    .iter()
                    .map(|e| format!("error: {e}"))
                    .chain(findings.notes.iter().map(|n| format!("note: {n}")))
                    .collect();
                for line in lines.difference(&said) {
                    console.error(line);
                }
                said = lines;
                if next != catalog {
                    catalog = next;
                    pending = true;
                    retry_at = Instant::now();
                }
            }
        }
        if pending && Instant::now() >= retry_at {
            pending = !applier.apply(&catalog).await;
            retry_at = Instant::now() + RETRY;
        }
        tokio::select! {
            _ = &mut signal => break,
            _ = tokio::time::sleep(FILE_POLL) => {}
        }
    }
}

/// Stops the workers within their grace period; a second Ctrl-C kills them at once.
async fn stop_workers(applier: &mut apply::Applier, console: &Console) {
    let graceful = applier.stop_workers(Stop::Graceful);
    tokio::pin!(graceful);
    tokio::select! {
        _ = &mut graceful => {}
        _ = shutdown_signal() => {
            console.line("killing the workers");
            applier.stop_workers(Stop::Now).await;
        }
    }
}

/// Hands the jobs of every exited worker to the others at once. A `None` ends the loop (all
/// exits sent before it have been handled).
async fn reclaim(
    runtime: Runtime,
    mut exits: mpsc::UnboundedReceiver<Option<Exited>>,
    console: Arc<Console>,
) {
    while let Some(Some(exit)) = exits.recv().await {
        if let Err(e) = runtime.consumer_gone(&exit.queue, &exit.consumer).await {
            console.error(&format!(
                "warning: JobQueue {}: the jobs of exited worker {} could not be reclaimed now ({e}); the janitor retries",
                exit.queue, exit.consumer
            ));
        }
    }
}

//! The `jobqueue-operator` command line. Each subcommand lives in its own module; this file
//! only wires them together and reports errors at the binary's edge (one line, non-zero exit).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod crd;
pub mod dead_letter;
pub mod enqueue;
pub mod inspect;
pub mod janitor;
pub mod job;
pub mod run;
pub mod schedule;
pub mod target;
pub mod work;

/// Redis job queues for Kubernetes: streams, retries, dead letters, cron schedules and
/// autoscaled workers, declared as custom resources.
#[derive(Debug, Parser)]
#[command(name = "jobqueue-operator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator (in a cluster), or with --local the same manifests on this machine.
    Run(run::RunArgs),
    /// Print the JobQueue and Schedule CustomResourceDefinitions as YAML.
    Crd(crd::CrdArgs),
    /// Add a job to a queue; prints the job id.
    Enqueue(enqueue::EnqueueArgs),
    /// Show a queue's length, lag, pending jobs, consumers and dead letters.
    Inspect(inspect::InspectArgs),
    /// List, replay or purge a queue's dead-letter stream.
    #[command(subcommand)]
    DeadLetter(dead_letter::DeadLetterCommand),
    /// Follow a job by id: get, wait, cancel, list.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Run a command for each job of a queue (a ready-made worker).
    Work(work::WorkArgs),
    /// Cron schedule tools.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Run only the janitor loop for the given queues (redelivery, dead letters, trimming).
    #[command(hide = true)]
    Janitor(janitor::JanitorArgs),
}

/// Entry point of the binary: parse, run, and report any error as one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Crd(args) => crd::run(args),
            Command::Enqueue(args) => enqueue::run(args).await,
            Command::Inspect(args) => inspect::run(args).await,
            Command::DeadLetter(cmd) => dead_letter::run(cmd).await,
            Command::Job(cmd) => job::run(cmd).await,
            Command::Work(args) => work::run(args).await,
            Command::Schedule(cmd) => schedule::run(cmd).await,
            Command::Janitor(args) => janitor::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain into one line: "reading PAYLOAD: expected value at ..."
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `jobqueue-operator schedule` (placeholder until issue 4 lands it).

/// `schedule` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a cron expression.
    Preview,
}

/// Runs a `schedule` subcommand.
pub async fn run(_cmd: ScheduleCommand) -> anyhow::Result<()> {
    anyhow::bail!("schedule preview is not implemented yet")
}

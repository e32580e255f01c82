//! `jobqueue-operator dead-letter` (placeholder until issue 3 lands it).

/// `dead-letter` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// List dead-lettered jobs.
    List,
}

/// Runs a `dead-letter` subcommand.
pub async fn run(_cmd: DeadLetterCommand) -> anyhow::Result<()> {
    anyhow::bail!("dead-letter is not implemented yet")
}

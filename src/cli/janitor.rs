//! `jobqueue-operator janitor` (hidden; placeholder until issue 3 lands it).

/// Arguments of `janitor`.
#[derive(Debug, clap::Args)]
pub struct JanitorArgs {}

/// Runs the janitor loop.
pub async fn run(_args: JanitorArgs) -> anyhow::Result<()> {
    anyhow::bail!("janitor is not implemented yet")
}

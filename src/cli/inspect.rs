//! `jobqueue-operator inspect` (placeholder until issue 3 lands it).

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {}

/// Runs `inspect`.
pub async fn run(_args: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("inspect is not implemented yet")
}

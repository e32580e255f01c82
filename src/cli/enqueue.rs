//! `jobqueue-operator enqueue` (placeholder until issue 3 lands it).

/// Arguments of `enqueue`.
#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {}

/// Runs `enqueue`.
pub async fn run(_args: EnqueueArgs) -> anyhow::Result<()> {
    anyhow::bail!("enqueue is not implemented yet")
}

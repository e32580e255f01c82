//! Local mode (`run --local`): being written (issue 8).

/// Runs the manifests under `args.local` on this machine.
pub async fn run(_args: crate::cli::run::RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("run --local is not implemented yet")
}

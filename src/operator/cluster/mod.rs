//! Cluster mode: being written (issue 7).

/// Runs the operator against the Kubernetes API.
pub async fn run(_args: crate::cli::run::RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("run is not implemented yet")
}

//! `jobqueue-operator run`: the operator in a cluster, or with `--local` the same manifests on
//! one machine without Kubernetes.

pub use crate::operator::settings::Settings as RunArgs;
pub use crate::operator::signal::shutdown_signal;

/// Runs the operator (or local mode) until SIGTERM / Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::operator::telemetry::init(args.log_format, args.local.is_some());
    match &args.local {
        Some(_) => crate::operator::local::run(args).await,
        None => crate::operator::cluster::run(args).await,
    }
}

//! Runs the stateful test API server (tests/support) standalone, for people and scripts:
//!
//! ```text
//! cargo run --example apiserver -- --port 8001 --kubeconfig /tmp/kubeconfig
//! kubectl --kubeconfig /tmp/kubeconfig apply --server-side -f crds/
//! kubectl --kubeconfig /tmp/kubeconfig create deployment web --image=nginx
//! ```
//!
//! It serves until killed. The kubeconfig is written once the server accepts requests, so a
//! script can wait for the file to appear. This is a test double, not a Kubernetes cluster:
//! see the module documentation of `jobqueue_test_support::apiserver` for what it does not do.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jobqueue_test_support::apiserver::{Options, TestApiServer};

#[derive(Parser)]
#[command(about = "Stateful Kubernetes test API server (test double) on 127.0.0.1")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; the kubeconfig names it).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig (no credentials) pointing at the server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Print every resource request (verb, resource, namespace, name, field manager, status).
    #[arg(long, short)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = Options {
        port: args.port,
        verbose: args.verbose,
        ..Options::default()
    };
    let server = TestApiServer::start_at(options, &args.kubeconfig)
        .await
        .with_context(|| {
            format!(
                "starting the test API server on 127.0.0.1:{} with kubeconfig {}",
                args.port,
                args.kubeconfig.display()
            )
        })?;
    eprintln!(
        "test API server on {} (kubeconfig {})",
        server.url(),
        args.kubeconfig.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

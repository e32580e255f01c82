//! Test-only support for jobqueue-operator's integration tests.
//!
//! - [`redis`]: starts private `redis-server` processes (one per test, or a three-node Redis
//!   Cluster) on free loopback ports. Tests never use a shared Redis.
//! - [`apiserver`]: a stateful test double of the Kubernetes API server, over real HTTP, so the
//!   real operator binary and `kubectl` can be exercised without a cluster.
//! - [`tools`]: outside tools a test needs; a missing one fails under `CI=true`, else the
//!   skip is recorded and listed by `scripts/test`.
//!
//! - [`operator`]: the real `jobqueue-operator run` binary against the test API server, through
//!   a proxy recording the operator's API accesses; [`metrics`] reads its HTTP endpoints.
//! - [`local`]: `jobqueue-operator run --local` on a directory of manifests.
//! - [`dashboard`]: the operator's web dashboard over plain HTTP.
//! - [`queue`], [`schedule`]: a provisioned queue and jobs read back from streams.
//! - [`helm`]: the chart rendered by the real Helm library (`tests/chart/chart.py`).
//! - [`wait`]: the one bounded polling every test waits with.
//!
//! Nothing here is compiled into the operator binary.

pub mod apiserver;
pub mod dashboard;
pub mod helm;
pub mod kubectl;
pub mod local;
pub mod metrics;
pub mod operator;
pub mod queue;
pub mod redis;
pub mod schedule;
pub mod tools;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use clap::CommandFactory;
use jobqueue_operator::cli::Cli;

/// Environment variables `jobqueue-operator run` reads as defaults for its flags, taken from
/// its clap definition. Tests remove them from the processes they start, so a runner's own
/// environment (a CI job inside a pod has `POD_NAMESPACE`, a developer may export
/// `REDIS_URL`) cannot change what is tested.
pub static OPERATOR_ENV: LazyLock<Vec<String>> = LazyLock::new(|| {
    let cli = Cli::command();
    let run = cli
        .get_subcommands()
        .find(|c| c.get_name() == "run")
        .expect("jobqueue-operator has a `run` subcommand");
    // Top-level arguments apply to `run` too.
    cli.get_arguments()
        .chain(run.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
});

/// Removes [`OPERATOR_ENV`] from `cmd`'s environment (set what a test needs afterwards).
pub fn without_operator_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in OPERATOR_ENV.iter() {
        cmd.env_remove(var);
    }
    cmd
}

/// The repository's root directory.
pub fn repo_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The build's output directory (`target/` unless `CARGO_TARGET_DIR` moves it): the running
/// test binary lives in its `<profile>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps/")
        .to_path_buf()
}

/// The `jobqueue-operator` binary cargo built next to the running test binary (what
/// `CARGO_BIN_EXE_jobqueue-operator` names inside the operator's own integration tests).
pub fn operator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .ancestors()
        .nth(2)
        .expect("the test binary lives in <target>/<profile>/deps/")
        .join("jobqueue-operator");
    assert!(
        bin.exists(),
        "{} is missing: run the tests through cargo, which builds it",
        bin.display()
    );
    bin
}

#[cfg(test)]
mod tests {
    #[test]
    fn operator_env_comes_from_the_run_flags() {
        for var in [
            "REDIS_URL",
            "POD_NAMESPACE",
            "METRICS_ADDR",
            "MISFIRE_GRACE",
        ] {
            assert!(
                super::OPERATOR_ENV.iter().any(|v| v == var),
                "{var} missing from {:?}",
                *super::OPERATOR_ENV
            );
        }
    }
}

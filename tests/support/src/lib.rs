//! Test-only support for jobqueue-operator's integration tests.
//!
//! - [`redis`]: starts private `redis-server` processes (one per test, or a three-node Redis
//!   Cluster) on free loopback ports. Tests never use a shared Redis.
//! - [`apiserver`]: a stateful test double of the Kubernetes API server, over real HTTP, so the
//!   real operator binary and `kubectl` can be exercised without a cluster.
//! - [`tools`]: outside tools a test needs; a missing one fails under `CI=true`, else the
//!   skip is recorded and listed by `scripts/test`.
//!
//! Nothing here is compiled into the operator binary.

pub mod apiserver;
pub mod redis;
pub mod tools;

/// Environment variables `jobqueue-operator` reads as defaults for its flags. Tests remove
/// them from the processes they start, so a runner's own environment (a CI job inside a pod
/// has `POD_NAMESPACE`, a developer may export `REDIS_URL`) cannot change what is tested.
pub const OPERATOR_ENV: &[&str] = &[
    "REDIS_URL",
    "WATCH_NAMESPACES",
    "METRICS_ADDR",
    "LEASE_NAME",
    "POD_NAMESPACE",
    "LEASE_DURATION",
    "POD_NAME",
    "LOG_FORMAT",
    "DEFAULT_POLL_INTERVAL",
    "STATUS_INTERVAL",
    "JANITOR_INTERVAL",
    "MISFIRE_GRACE",
];

/// Removes [`OPERATOR_ENV`] from `cmd`'s environment (set what a test needs afterwards).
pub fn without_operator_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for var in OPERATOR_ENV {
        cmd.env_remove(var);
    }
    cmd
}

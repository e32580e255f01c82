//! Test-only support for jobqueue-operator's integration tests.
//!
//! - [`redis`]: starts private `redis-server` processes (one per test, or a three-node Redis
//!   Cluster) on free loopback ports. Tests never use a shared Redis.
//! - [`apiserver`]: a stateful test double of the Kubernetes API server, over real HTTP, so the
//!   real operator binary and `kubectl` can be exercised without a cluster.
//!
//! Nothing here is compiled into the operator binary.

pub mod apiserver;
pub mod redis;

//! The operator process (docs/architecture.md#operator-loops): controllers, background loops, leader election, HTTP, the web dashboard.

pub mod cluster;
pub mod dashboard;
pub mod http;
pub mod local;
pub mod metrics;
pub mod reasons;
pub mod runtime;
pub mod settings;
pub mod signal;
pub mod telemetry;
pub mod workload;

//! jobqueue-operator: a Kubernetes operator that turns Redis Streams into a managed job-queue
//! platform. See README.md and docs/architecture.md.
//!
//! Layout (one job per module):
//! - [`api`]: the `JobQueue` and `Schedule` custom resources, their CRDs and conditions.
//! - [`crd_validation`]: objects against a CRD's `openAPIV3Schema`, as the API server checks
//!   them (pure; shared by local mode and the test API server).
//! - [`queue`]: the Redis engine: keys, provisioning, metrics, janitor, producers, schedule
//!   firing, job records and the worker operations.
//! - [`schedule`]: cron expressions and time zones: next fire times, misfires (pure).
//! - [`scaling`]: the autoscaling policy (pure).
//! - [`plan`]: from a resource (and what was read for it) to a validated plan for the engine (pure).
//! - [`operator`]: the operator process: settings, the runtime both modes share, the cluster
//!   controllers, local mode, HTTP, metrics, and every condition and Event reason.
//! - [`cli`]: the command-line front end of the `jobqueue-operator` binary.

pub mod api;
pub mod cli;
pub mod crd_validation;
pub mod operator;
pub mod plan;
pub mod queue;
pub mod scaling;
pub mod schedule;

//! The Redis engine (docs/architecture.md#redis-data-model): key naming, provisioning, metrics, janitor, producers,
//! dead letters, schedule firing, adopted queues of other systems (`adopted`, read only) and read-only listings for the dashboard (`browse`). Every function here speaks plain Redis commands and Lua;
//! nothing here knows about Kubernetes or the custom resources (`crate::plan` converts them).
//!
//! Every function takes a [`RedisConn`](conn::RedisConn) (standalone or Cluster) from
//! [`conn::connect`] and a [`QueueConfig`](config::QueueConfig).

pub mod acl;
pub mod adopted;
pub mod browse;
pub mod config;
pub use jobqueue_client::{conn, error, keys, producer};
pub mod dead_letter;
pub mod janitor;
pub mod jobs;
pub mod metrics;
pub mod provision;
pub mod scheduler;
pub mod schedules;
mod scripts;

pub use config::{Backoff, QueueConfig, Retention, StartFrom};
pub use conn::{RedisConn, connect};
pub use error::QueueError;
pub use producer::{Due, EnqueueOptions, Enqueued, enqueue};

//! The Redis engine (DESIGN.md §2–3): key naming, provisioning, metrics, janitor, producers,
//! dead letters and schedule firing. Every function here speaks plain Redis commands and Lua;
//! nothing here knows about Kubernetes.

pub mod keys;
pub mod scheduler;
pub mod schedules;

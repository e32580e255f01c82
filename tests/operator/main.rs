//! End to end: the real `jobqueue-operator run` binary against the test API server and private
//! redis-server processes, one story a cluster admin relies on per module:
//! - [`provisioning`]: a queue's whole life — provisioning, the owned worker Deployment,
//!   [`scaling`] 0 → 8 → 0 with Events and a lost worker's jobs handed out again at once,
//!   the HTTP [`endpoints`], the [`dashboard`], and [`deletion`] by policy;
//! - [`schedules`] firing where they point; [`leadership`]: every-second Schedules firing
//!   exactly once while the leader of two replicas is SIGKILLed, and a replica that loses its
//!   Lease going quiet; [`partition`]: a leader cut off from the API server steps down and
//!   nothing runs twice;
//! - [`redis_outage`]: Redis SIGKILLed and restarted from its snapshot; [`redis_targets`]: a
//!   queue on a Redis Cluster and on TLS Redis;
//! - [`adopted`]: another system's queue (RQ), read by a Redis user that may not write,
//!   scaling the user's Deployment and sparing its busy pod;
//! - [`credentials`]: each queue on the default Redis gets a Redis user of its own, reaching
//!   its keys only, rotated by annotation and deleted with the queue; without ACL rights the
//!   shared URL, said so on the queue, or a refusal with `--per-queue-users required`;
//! - [`tenancy`]: a stream serves one JobQueue; another namespace naming it is refused and
//!   can neither consume, reclaim, trim, delete nor schedule into it;
//! - [`restarts`]: a worker container that crashed and restarted in its pod loses the jobs it
//!   read before the crash to other workers at once, and keeps what it has read since;
//! - [`invalid`] resources the schema cannot reject, and the README quickstart through
//!   [`kubectl`].
//!
//! One test binary: cargo runs its tests in parallel like any other binary's. Conditions are
//! awaited by bounded polling; nothing sleeps in place of synchronisation. Every test leaves
//! the operator's API accesses in `target/rbac-observed/<test>.json`.

mod adopted;
mod credentials;
mod dashboard;
mod deletion;
mod endpoints;
mod fixtures;
mod invalid;
mod kubectl;
mod leadership;
mod partition;
mod provisioning;
mod redis_outage;
mod redis_targets;
mod restarts;
mod runs;
mod scaling;
mod schedules;
mod secrets;
mod status_writes;
mod tenancy;

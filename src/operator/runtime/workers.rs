//! What the runtime scales: a Deployment's scale subresource in a cluster, local processes in
//! local mode. The runtime only needs three things from it.

use std::collections::HashSet;

use futures::future::BoxFuture;

use crate::queue::metrics::ConsumerInfo;

/// Why the workers could not be read or scaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkersError(pub String);

/// The workers of one queue.
pub trait Workers: Send + Sync + 'static {
    /// The replica count currently asked for (not necessarily running yet).
    fn replicas(&self) -> BoxFuture<'_, Result<u32, WorkersError>>;

    /// Sets the replica count. `consumers` is the group's view of who holds what, so that a
    /// scale-in removes idle workers first and never the ones holding jobs, when it can.
    fn scale<'a>(
        &'a self,
        replicas: u32,
        consumers: &'a [ConsumerInfo],
    ) -> BoxFuture<'a, Result<(), WorkersError>>;

    /// Names of the consumers that still have a live worker (pod or process), or `None` when
    /// that cannot be known (then nothing is reclaimed early; the visibility timeout applies).
    fn live_consumers(&self) -> BoxFuture<'_, Result<Option<HashSet<String>>, WorkersError>>;
}

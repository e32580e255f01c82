//! What the reconcilers share: their context, their error type and what each kind of error
//! does to the next attempt (docs/architecture.md#operator-loops).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventReporter};
use kube::{Api, Client, Resource};

use crate::operator::metrics::Metrics;
use crate::operator::runtime::{ObjectId, Runtime, RuntimeError, RuntimeOptions};
use k8s_openapi::api::core::v1::Secret;

use crate::api::SecretKeyRef;
use crate::plan::{MissingSecret, PlanError, SecretValue};

use super::pods::PodIndex;
use super::status::StatusWriter;

/// Shared by both controllers.
pub struct Context {
    pub client: Client,
    pub runtime: Runtime,
    pub status: Arc<StatusWriter>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub pods: Arc<PodIndex>,
    /// Watched worker Deployments (their replica counts).
    pub deployments: Arc<super::deployments::DeploymentCache>,
    /// Redis for queues without `spec.redis`.
    pub default_redis: String,
    /// Whether queues on the default Redis get a Redis user of their own.
    pub per_queue_users: crate::operator::settings::PerQueueUsers,
    /// Consecutive failed reconciles per object (for the growing retry delay).
    pub failures: Failures,
    /// Queues the runtime has just started serving: their Schedules are reconciled at once
    /// (a queue that was already Ready before a restart changes no status to watch).
    pub queue_served: tokio::sync::broadcast::Sender<ObjectId>,
}

/// Served-queue notices held for a Schedule controller that lags (beyond, it waits for its
/// retry).
pub const QUEUE_SERVED_BACKLOG: usize = 1024;

impl Context {
    /// A context of its own for the reconcilers (tests call them directly): a status writer, an
    /// Event recorder and a runtime reporting through them. Run the returned task for status
    /// to be written.
    pub fn build(
        client: Client,
        options: RuntimeOptions,
        metrics: Metrics,
        default_redis: String,
        identity: String,
    ) -> (
        Arc<Context>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (status, status_task) = StatusWriter::new(client.clone());
        let recorder = Recorder::new(
            client.clone(),
            EventReporter {
                controller: "jobqueue-operator".into(),
                instance: Some(identity),
            },
        );
        let reporter = Arc::new(super::reporter::KubeReporter {
            status: status.clone(),
            recorder: recorder.clone(),
        });
        let runtime = Runtime::new(options, metrics.clone(), reporter);
        let ctx = Context {
            client,
            runtime,
            status,
            recorder,
            metrics,
            pods: Arc::default(),
            deployments: Arc::default(),
            default_redis,
            per_queue_users: Default::default(),
            failures: Failures::default(),
            queue_served: tokio::sync::broadcast::channel(QUEUE_SERVED_BACKLOG).0,
        };
        (Arc::new(ctx), status_task)
    }
}

/// Why a reconcile failed. What happens next depends on the kind: see [`ReconcileError::retry`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ReconcileError>>),
    /// Redis did not answer or refused a command.
    #[error("{0}")]
    Redis(#[from] RuntimeError),
    /// Deleting a queue's data or schedules failed in Redis.
    #[error("cannot {action}: {source}")]
    Cleanup {
        action: &'static str,
        #[source]
        source: RuntimeError,
    },
    /// A deleted queue's Redis cannot be found (its Secret is gone or unreadable).
    #[error("cannot delete the queue's data: {0}")]
    TargetUnknown(#[source] PlanError),
    /// A deleted Schedule waits for its queue to be served again.
    #[error(
        "deleting: waiting to remove this schedule's run from JobQueue {queue:?}, which is not \
         served (its Redis unreachable, or its spec invalid); deleting the JobQueue also releases it"
    )]
    RemovalPending { queue: String },
}

/// What a failed reconcile waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Something outside the cluster (Redis, the API server): retried sooner at first, then
    /// later and later.
    Backoff,
    /// Something another object provides (a Secret, a queue being served): it usually comes
    /// with a watch event; this only bounds the wait.
    Dependency,
}

impl ReconcileError {
    /// Short kind for the `reason` label of the error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubeApi",
            ReconcileError::Finalizer(_) => "Finalizer",
            ReconcileError::Redis(_) | ReconcileError::Cleanup { .. } => "Redis",
            ReconcileError::TargetUnknown(_) | ReconcileError::RemovalPending { .. } => "NotReady",
        }
    }

    /// How this error is retried.
    pub fn retry(&self) -> Retry {
        match self {
            ReconcileError::Kube(_) | ReconcileError::Finalizer(_) => Retry::Backoff,
            ReconcileError::Redis(_) | ReconcileError::Cleanup { .. } => Retry::Backoff,
            // The queue is not served because its Redis is unreachable (or its spec invalid):
            // paced like Redis itself.
            ReconcileError::RemovalPending { .. } => Retry::Backoff,
            ReconcileError::TargetUnknown(_) => Retry::Dependency,
        }
    }
}

/// Delay before the first retry of an error that backs off.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest delay of an error that backs off: a Redis that comes back is served again within
/// this time.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a missing dependency is waited for before looking again (Secrets are not watched).
pub const DEPENDENCY_WAIT: Duration = Duration::from_secs(30);

/// The delay before retry number `failures` (1-based) of an error that backs off: doubling
/// from [`BACKOFF_FIRST`], capped at [`BACKOFF_MAX`].
pub fn backoff_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

/// Consecutive failures per object, reset by a successful reconcile.
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<(&'static str, ObjectId), u32>>);

impl Failures {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, ObjectId), u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more failure of `id` under `controller`; returns the count.
    pub fn record(&self, controller: &'static str, id: &ObjectId) -> u32 {
        let mut map = self.map();
        let n = map.entry((controller, id.clone())).or_default();
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `id` (it reconciled, or it is gone).
    pub fn clear(&self, controller: &'static str, id: &ObjectId) {
        self.map().remove(&(controller, id.clone()));
    }
}

/// The value of one key of a Secret in `namespace` (`data`, else `stringData`), or why it is
/// missing.
pub async fn read_secret_key(
    ctx: &Context,
    namespace: &str,
    sref: &SecretKeyRef,
) -> Result<SecretValue, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&sref.name).await? else {
        return Ok(SecretValue::Missing(MissingSecret::NotFound {
            name: sref.name.clone(),
            namespace: namespace.to_string(),
        }));
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&sref.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&sref.key))
                .map(|s| s.clone().into_bytes())
        });
    Ok(match value {
        Some(v) => SecretValue::Found(v),
        None => SecretValue::Missing(MissingSecret::KeyMissing {
            name: sref.name.clone(),
            key: sref.key.clone(),
        }),
    })
}

/// Publishes an Event about `obj` (failures are logged: an Event is never worth a retry).
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// Runs one reconcile of `obj` behind the finalizer `finalizer_name` (so deletion waits for
/// `Cleanup`) and records its duration under `controller`.
pub async fn reconcile_with_finalizer<K, F, Fut>(
    ctx: &Context,
    controller: &str,
    finalizer_name: &str,
    obj: Arc<K>,
    handle: F,
) -> Result<Action, ReconcileError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: FnOnce(kube::runtime::finalizer::Event<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>>,
{
    use kube::runtime::finalizer::{Error, finalizer};
    let started = std::time::Instant::now();
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, finalizer_name, obj, handle)
        .await
        .map_err(|e| match e {
            Error::ApplyFailed(e) | Error::CleanupFailed(e) => e,
            other => ReconcileError::Finalizer(Box::new(other)),
        });
    ctx.metrics.reconcile_done(controller, started.elapsed());
    result
}

/// What a failed reconcile does: counted by kind, logged, and retried after a delay that
/// depends on what it waits for.
pub fn retry_after_error(
    ctx: &Context,
    controller: &'static str,
    id: &ObjectId,
    error: &ReconcileError,
) -> Action {
    ctx.metrics.reconcile_failed(controller, error.kind());
    let delay = match error.retry() {
        Retry::Backoff => backoff_delay(ctx.failures.record(controller, id)),
        Retry::Dependency => DEPENDENCY_WAIT,
    };
    tracing::warn!(controller, %id, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let delays: Vec<u64> = (1..=6).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn failures_count_per_object_until_cleared() {
        let f = Failures::default();
        let a = ObjectId::new("ns", "a");
        assert_eq!(f.record("jobqueue", &a), 1);
        assert_eq!(f.record("jobqueue", &a), 2);
        assert_eq!(f.record("schedule", &a), 1);
        f.clear("jobqueue", &a);
        assert_eq!(f.record("jobqueue", &a), 1);
    }
}

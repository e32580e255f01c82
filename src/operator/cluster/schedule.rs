//! The Schedule controller (docs/architecture.md#operator-loops): plans the Schedule
//! (`crate::plan`, pure: expression, zone, payload), checks that its JobQueue exists, writes it
//! into the queue's Redis (where the runtime's scheduler fires it exactly once per run) and
//! records the outcome in its `Ready` condition; a finalizer removes it from Redis.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use tracing::Instrument;

use crate::api::{JobQueue, Schedule, conditions, join_field_errors};
use crate::operator::reasons;
use crate::operator::runtime::{ObjectId, RuntimeError};
use crate::plan::{self, SchedulePlan};

use super::context::{
    Context, DEPENDENCY_WAIT, ReconcileError, publish, reconcile_with_finalizer, retry_after_error,
};

/// Finalizer that removes the schedule from Redis.
pub const FINALIZER: &str = "jobqueue.io/schedule";

const CONTROLLER: &str = "schedule";

/// Periodic resync (changes are watched; this only bounds how long a missed one lasts).
const RESYNC: Duration = Duration::from_secs(300);

/// How soon a Schedule whose queue is not served yet looks again: a safety net, since the
/// queue's readiness is watched and the runtime announces each queue it starts serving.
const QUEUE_NOT_READY_WAIT: Duration = Duration::from_secs(30);

fn ids(s: &Schedule) -> (ObjectId, ObjectId) {
    let ns = s.namespace().unwrap_or_default();
    (
        ObjectId::new(ns.clone(), s.name_any()),
        ObjectId::new(ns, s.spec.queue_ref.name.clone()),
    )
}

/// Entry point for the kube-runtime Controller (and for tests, with a [`Context`] of their own).
pub async fn reconcile(s: Arc<Schedule>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let (id, _) = ids(&s);
    let span = tracing::info_span!("reconcile", controller = CONTROLLER, namespace = %id.namespace, name = %id.name);
    let result = reconcile_with_finalizer(&ctx, CONTROLLER, FINALIZER, s, |event| async {
        match event {
            Finalizer::Apply(s) => apply(s, &ctx).await,
            Finalizer::Cleanup(s) => cleanup(s, &ctx).await,
        }
    })
    .instrument(span)
    .await;
    if result.is_ok() {
        ctx.failures.clear(CONTROLLER, &id);
    }
    result
}

/// Retry policy for failed reconciles (see [`ReconcileError::retry`]).
pub fn error_policy(s: Arc<Schedule>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    retry_after_error(&ctx, CONTROLLER, &ids(&s).0, error)
}

/// The `Ready` condition of a Schedule: what a reconcile found (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Readiness {
    ready: bool,
    reason: &'static str,
    message: String,
}

impl Readiness {
    fn not(reason: &'static str, message: String) -> Self {
        Readiness {
            ready: false,
            reason,
            message,
        }
    }
}

/// Sets `Ready`; a new `Ready=False` reason is also published as a Warning.
async fn set_ready(ctx: &Context, s: &Schedule, r: Readiness) {
    let (id, _) = ids(s);
    let generation = s.metadata.generation;
    let was = s.status.as_ref().and_then(|st| {
        st.conditions
            .iter()
            .find(|c| c.type_ == conditions::READY)
            .map(|c| c.reason.clone())
    });
    ctx.status.update_schedule(&id, |st| {
        st.observed_generation = generation;
        conditions::set(
            &mut st.conditions,
            conditions::READY,
            r.ready,
            r.reason,
            r.message.clone(),
            generation,
            Timestamp::now(),
        );
    });
    if !r.ready && was.as_deref() != Some(r.reason) {
        publish(ctx, s, true, r.reason, r.message).await;
    }
}

async fn apply(s: Arc<Schedule>, ctx: &Context) -> Result<Action, ReconcileError> {
    let (id, queue) = ids(&s);
    ctx.status.track_schedule(&s);
    let plan = match plan::schedule(&s) {
        Ok(plan) => plan,
        Err(errors) => {
            let _ = ctx.runtime.remove_schedule(&id, &queue).await;
            let message = join_field_errors(&errors);
            set_ready(ctx, &s, Readiness::not(reasons::INVALID_SPEC, message)).await;
            return Ok(Action::await_change());
        }
    };
    if !queue_exists(ctx, &queue).await? {
        let message = format!(
            "JobQueue {:?} not found in namespace {:?} (spec.queueRef.name)",
            queue.name, queue.namespace
        );
        // It may have fired into another queue before its queueRef changed.
        ctx.runtime.remove_schedule(&id, &queue).await?;
        set_ready(ctx, &s, Readiness::not(reasons::QUEUE_NOT_FOUND, message)).await;
        return Ok(Action::requeue(DEPENDENCY_WAIT));
    }
    arm(ctx, &s, &id, &queue, &plan).await
}

/// Whether the Schedule's JobQueue exists.
#[tracing::instrument(name = "dereference", skip(ctx), fields(namespace = %queue.namespace, queue = %queue.name))]
async fn queue_exists(ctx: &Context, queue: &ObjectId) -> Result<bool, ReconcileError> {
    let jobqueues: Api<JobQueue> = Api::namespaced(ctx.client.clone(), &queue.namespace);
    Ok(jobqueues.get_opt(&queue.name).await?.is_some())
}

/// Writes the plan's definition into the queue's Redis and records the outcome.
#[tracing::instrument(skip_all, fields(namespace = %id.namespace, name = %id.name))]
async fn arm(
    ctx: &Context,
    s: &Schedule,
    id: &ObjectId,
    queue: &ObjectId,
    plan: &SchedulePlan,
) -> Result<Action, ReconcileError> {
    match ctx
        .runtime
        .upsert_schedule(id, queue, &plan.definition)
        .await
    {
        Ok(()) => {
            let zone = &s.spec.time_zone;
            let message = format!(
                "fires {:?} ({zone}) into JobQueue {:?}",
                s.spec.schedule, queue.name
            );
            let ready = Readiness {
                ready: true,
                reason: reasons::SCHEDULED,
                message,
            };
            set_ready(ctx, s, ready).await;
            Ok(Action::requeue(RESYNC))
        }
        Err(e @ RuntimeError::QueueAdopted(_)) => {
            set_ready(
                ctx,
                s,
                Readiness::not(reasons::QUEUE_ADOPTED, e.to_string()),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(RuntimeError::QueueNotServed(_)) => {
            let message = format!("JobQueue {:?} is not ready yet", queue.name);
            set_ready(ctx, s, Readiness::not(reasons::QUEUE_NOT_READY, message)).await;
            Ok(Action::requeue(QUEUE_NOT_READY_WAIT))
        }
        Err(e) => {
            set_ready(ctx, s, Readiness::not(reasons::REDIS_ERROR, e.to_string())).await;
            Err(ReconcileError::Redis(e))
        }
    }
}

#[tracing::instrument(name = "cleanup", skip_all, fields(namespace = %s.namespace().unwrap_or_default(), name = %s.name_any()))]
async fn cleanup(s: Arc<Schedule>, ctx: &Context) -> Result<Action, ReconcileError> {
    let (id, queue) = ids(&s);
    if !ctx.runtime.has_queue(&queue) && queue_holds_run(ctx, &queue).await? {
        let error = ReconcileError::RemovalPending {
            queue: queue.name.clone(),
        };
        ctx.status.track_schedule(&s);
        let pending = Readiness::not(reasons::REMOVAL_PENDING, error.to_string());
        set_ready(ctx, &s, pending).await;
        // An error keeps the finalizer (an Ok cleanup removes it) and retries later.
        return Err(error);
    }
    ctx.runtime.remove_schedule(&id, &queue).await?;
    ctx.status.forget_schedule(&id);
    ctx.failures.clear(CONTROLLER, &id);
    Ok(Action::await_change())
}

/// Whether a queue this process does not serve may still hold the Schedule's armed run: e.g.
/// the queue's Redis was down when the operator started. Letting the Schedule go now would
/// leave that run to fire once the queue is served again. A queue that was never provisioned,
/// or is being deleted (its own cleanup removes its runs), holds nothing to wait for.
async fn queue_holds_run(ctx: &Context, queue: &ObjectId) -> Result<bool, ReconcileError> {
    let jobqueues: Api<JobQueue> = Api::namespaced(ctx.client.clone(), &queue.namespace);
    Ok(jobqueues.get_opt(&queue.name).await?.is_some_and(|jq| {
        jq.metadata.deletion_timestamp.is_none()
            && jq.status.as_ref().is_some_and(|st| st.stream.is_some())
    }))
}

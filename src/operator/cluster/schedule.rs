//! The Schedule controller: validates the expression, zone and queue, writes the schedule into
//! its queue's Redis (where the runtime's scheduler fires it exactly once per run), and removes
//! it with a finalizer.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;

use crate::api::{JobQueue, Schedule, conditions, join_field_errors, validate};
use crate::operator::runtime::{ObjectId, RuntimeError};
use crate::queue::schedules::ScheduleDefinition;

use super::context::{
    Context, ReconcileError, publish, reconcile_with_finalizer, retry_after_error,
};

/// Finalizer that removes the schedule from Redis.
pub const FINALIZER: &str = "jobqueue.io/schedule";

fn ids(s: &Schedule) -> (ObjectId, ObjectId) {
    let ns = s.namespace().unwrap_or_default();
    (
        ObjectId::new(ns.clone(), s.name_any()),
        ObjectId::new(ns, s.spec.queue_ref.name.clone()),
    )
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(s: Arc<Schedule>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile_with_finalizer(&ctx, "schedule", FINALIZER, s, |event| async {
        match event {
            Finalizer::Apply(s) => apply(s, &ctx).await,
            Finalizer::Cleanup(s) => cleanup(s, &ctx).await,
        }
    })
    .await
}

/// Retry policy for failed reconciles.
pub fn error_policy(_s: Arc<Schedule>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    retry_after_error(&ctx, "schedule", error)
}

async fn set_ready(ctx: &Context, s: &Schedule, ready: bool, reason: &str, message: String) {
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
            ready,
            reason,
            message.clone(),
            generation,
            Timestamp::now(),
        );
    });
    if !ready && was.as_deref() != Some(reason) {
        publish(ctx, s, true, reason, message).await;
    }
}

async fn apply(s: Arc<Schedule>, ctx: &Context) -> Result<Action, ReconcileError> {
    let (id, queue) = ids(&s);
    ctx.status.track_schedule(&s);
    if let Err(errors) = validate::schedule(&s) {
        let _ = ctx.runtime.remove_schedule(&id, &queue).await;
        set_ready(ctx, &s, false, "InvalidSpec", join_field_errors(&errors)).await;
        return Ok(Action::await_change());
    }
    let jobqueues: Api<JobQueue> = Api::namespaced(ctx.client.clone(), &queue.namespace);
    if jobqueues.get_opt(&queue.name).await?.is_none() {
        let message = format!(
            "JobQueue {:?} not found in namespace {:?} (spec.queueRef.name)",
            queue.name, queue.namespace
        );
        // It may have fired into another queue before its queueRef changed.
        if let Err(e) = ctx.runtime.remove_schedule(&id, &queue).await {
            return Err(ReconcileError::Redis(e.to_string()));
        }
        set_ready(ctx, &s, false, "QueueNotFound", message).await;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let definition =
        ScheduleDefinition::from_spec(&id.name, &s.spec, s.metadata.generation.unwrap_or(1))
            .map_err(|e| ReconcileError::NotReady(e.to_string()))?;
    match ctx.runtime.upsert_schedule(&id, &queue, &definition).await {
        Ok(()) => {
            let zone = &s.spec.time_zone;
            let message = format!(
                "fires {:?} ({zone}) into JobQueue {:?}",
                s.spec.schedule, queue.name
            );
            set_ready(ctx, &s, true, "Scheduled", message).await;
            Ok(Action::requeue(Duration::from_secs(300)))
        }
        Err(RuntimeError::QueueNotServed(_)) => {
            let message = format!("JobQueue {:?} is not ready yet", queue.name);
            set_ready(ctx, &s, false, "QueueNotReady", message).await;
            Ok(Action::requeue(Duration::from_secs(5)))
        }
        Err(e) => {
            set_ready(ctx, &s, false, "RedisError", e.to_string()).await;
            Err(ReconcileError::Redis(e.to_string()))
        }
    }
}

async fn cleanup(s: Arc<Schedule>, ctx: &Context) -> Result<Action, ReconcileError> {
    let (id, queue) = ids(&s);
    if !ctx.runtime.has_queue(&queue) {
        // Its run may be armed in a queue this process does not serve (yet): e.g. the queue's
        // Redis was down when the operator started. Letting the Schedule go now would leave that
        // run to fire once the queue is served again. A queue that was never provisioned, or
        // is being deleted (its own cleanup removes its runs), holds nothing to wait for.
        let jobqueues: Api<JobQueue> = Api::namespaced(ctx.client.clone(), &queue.namespace);
        let waiting = jobqueues.get_opt(&queue.name).await?.is_some_and(|jq| {
            jq.metadata.deletion_timestamp.is_none()
                && jq.status.as_ref().is_some_and(|st| st.stream.is_some())
        });
        if waiting {
            let message = format!(
                "deleting: waiting to remove this schedule's run from JobQueue {:?}, which is \
                 not served (its Redis unreachable, or its spec invalid); deleting the JobQueue \
                 also releases it",
                queue.name
            );
            ctx.status.track_schedule(&s);
            set_ready(ctx, &s, false, "RemovalPending", message.clone()).await;
            // An error keeps the finalizer (an Ok cleanup removes it) and retries with backoff.
            return Err(ReconcileError::NotReady(message));
        }
    }
    ctx.runtime
        .remove_schedule(&id, &queue)
        .await
        .map_err(|e| ReconcileError::Redis(e.to_string()))?;
    ctx.status.forget_schedule(&id);
    Ok(Action::await_change())
}

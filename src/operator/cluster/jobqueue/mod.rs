//! The JobQueue controller (docs/architecture.md#operator-loops). A reconcile runs four steps:
//! read what the queue depends on ([`dereference`]), plan it (`crate::plan`, pure), apply the
//! plan (the worker Deployment, the runtime serving the queue) and record the outcome as
//! conditions and Events ([`report`], pure until written). `deletionPolicy` is implemented with
//! a finalizer.

mod dereference;
mod report;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use tracing::Instrument;

use crate::api::{DeletionPolicy, JobQueue, conditions};
use crate::operator::reasons;
use crate::operator::runtime::{ObjectId, QueueEntry, RuntimeError, ScalingSettings, Workers};
use crate::operator::workload::{RedisUrlSource, deployment_name, may_apply, worker_deployment};
use crate::plan::{self, PlanError, QueuePlan, UrlSource, WorkersPlan};
use crate::queue::config::QueueConfig;
use crate::queue::error::QueueError;

use super::context::{
    Context, DEPENDENCY_WAIT, ReconcileError, publish, reconcile_with_finalizer, retry_after_error,
};
use super::credentials::{self, UrlSecret};
use super::status::FIELD_MANAGER;
use super::workers::KubeWorkers;

/// Finalizer that implements `deletionPolicy`.
pub const FINALIZER: &str = "jobqueue.io/cleanup";

/// Periodic resync (changes are watched; this only bounds how long a missed one lasts).
const RESYNC: Duration = Duration::from_secs(300);

const CONTROLLER: &str = "jobqueue";

fn id_of(jq: &JobQueue) -> ObjectId {
    ObjectId::new(jq.namespace().unwrap_or_default(), jq.name_any())
}

/// Entry point for the kube-runtime Controller (and for tests, with a [`Context`] of their own).
pub async fn reconcile(jq: Arc<JobQueue>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let id = id_of(&jq);
    let span = tracing::info_span!("reconcile", controller = CONTROLLER, namespace = %id.namespace, name = %id.name);
    let result = reconcile_with_finalizer(&ctx, CONTROLLER, FINALIZER, jq, |event| async {
        match event {
            Finalizer::Apply(jq) => apply(jq, &ctx).await,
            Finalizer::Cleanup(jq) => cleanup(jq, &ctx).await,
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
pub fn error_policy(jq: Arc<JobQueue>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    retry_after_error(&ctx, CONTROLLER, &id_of(&jq), error)
}

async fn apply(jq: Arc<JobQueue>, ctx: &Context) -> Result<Action, ReconcileError> {
    let id = id_of(&jq);
    ctx.status.track_jobqueue(&jq);
    let found = dereference::dereference(ctx, &jq, &id).await?;
    let plan = match plan::jobqueue(&jq, &found.inputs) {
        Ok(plan) => plan,
        Err(e) => return Ok(refuse(ctx, &jq, &id, e).await),
    };
    // Before any worker is started for it: another JobQueue's stream is not this one's to
    // consume. (Claiming is atomic when the queue is served; this only keeps a claimed
    // stream's would-be thief from getting workers meanwhile.)
    if let Ok(Some(owner)) = ctx
        .runtime
        .foreign_owner(
            &ctx.runtime.endpoint(&plan.redis.url, &plan.redis.tls),
            &plan.config,
        )
        .await
    {
        let claimed = QueueError::StreamClaimed {
            stream: plan.config.stream().to_string(),
            owner,
        };
        return Ok(stream_claimed(ctx, &jq, &id, &claimed).await);
    }
    let workers = match apply_workers(ctx, &jq, &id, &plan, found.scale_target).await? {
        Applied::Workers(w) => w,
        Applied::Refused(reason, message) => {
            ctx.runtime.remove_queue(&id);
            let refusal = report::refusal(reason, message);
            report::write(ctx, &jq, &id, refusal).await;
            return Ok(Action::requeue(DEPENDENCY_WAIT));
        }
    };
    serve(ctx, &jq, &id, plan, workers).await
}

/// The stream is another JobQueue's: nothing is done to it on this one's behalf.
async fn stream_claimed(ctx: &Context, jq: &JobQueue, id: &ObjectId, e: &QueueError) -> Action {
    ctx.runtime.remove_queue(id);
    let refusal = report::refusal(reasons::STREAM_CLAIMED, e.to_string());
    report::write(ctx, jq, id, refusal).await;
    Action::requeue(DEPENDENCY_WAIT)
}

/// What applying a queue's workers came to.
enum Applied {
    /// The workers to scale, if any.
    Workers(Option<Arc<dyn Workers>>),
    /// An object the queue would manage belongs to something else, or its workers cannot
    /// have credentials of their own as required: the reason and what stands in the way.
    Refused(&'static str, String),
}

/// A plan that cannot run: the queue is no longer served, and `Ready=False` says why. An
/// invalid spec waits for a change; a missing dependency is looked at again after a while.
#[tracing::instrument(skip_all, fields(namespace = %id.namespace, name = %id.name, error = %e))]
async fn refuse(ctx: &Context, jq: &JobQueue, id: &ObjectId, e: PlanError) -> Action {
    ctx.runtime.remove_queue(id);
    report::write(ctx, jq, id, report::refused(&e)).await;
    match e {
        PlanError::Invalid(_) => Action::await_change(),
        _ => Action::requeue(DEPENDENCY_WAIT),
    }
}

/// Applies the worker Deployment of a template, or wraps the scale target found.
#[tracing::instrument(skip_all, fields(namespace = %id.namespace, name = %id.name))]
async fn apply_workers(
    ctx: &Context,
    jq: &JobQueue,
    id: &ObjectId,
    plan: &QueuePlan,
    scale_target: Option<KubeWorkers>,
) -> Result<Applied, ReconcileError> {
    Ok(Applied::Workers(match &plan.workers {
        WorkersPlan::None => None,
        WorkersPlan::Managed => {
            if let Some((reason, message)) = apply_deployment(ctx, jq, plan).await? {
                return Ok(Applied::Refused(reason, message));
            }
            Some(Arc::new(KubeWorkers::managed(
                ctx.client.clone(),
                id.clone(),
                deployment_name(jq),
                ctx.pods.clone(),
                ctx.deployments.clone(),
            )))
        }
        WorkersPlan::Referenced(_) => scale_target.map(|w| Arc::new(w) as Arc<dyn Workers>),
    }))
}

/// How the worker Deployment gets the plan's Redis URL.
fn url_source(plan: &QueuePlan) -> RedisUrlSource {
    match &plan.redis.source {
        UrlSource::Secret { name, key } => RedisUrlSource::Secret {
            name: name.clone(),
            key: key.clone(),
        },
        UrlSource::Plain => RedisUrlSource::Plain(plan.redis.url.clone()),
        UrlSource::Default => RedisUrlSource::Default(plan.redis.url.clone()),
    }
}

/// Hands the plan to the runtime (which provisions the stream and group) and records the
/// outcome.
#[tracing::instrument(skip_all, fields(namespace = %id.namespace, name = %id.name))]
async fn serve(
    ctx: &Context,
    jq: &JobQueue,
    id: &ObjectId,
    plan: QueuePlan,
    workers: Option<Arc<dyn Workers>>,
) -> Result<Action, ReconcileError> {
    let entry = QueueEntry {
        id: id.clone(),
        redis_url: ctx.runtime.endpoint(&plan.redis.url, &plan.redis.tls),
        config: plan.config.clone(),
        scaling: plan.scaling.clone().map(|s| ScalingSettings {
            policy: s.policy,
            poll_interval: s.poll_interval,
        }),
        workers,
    };
    let was_served = ctx.runtime.has_queue(id);
    match ctx.runtime.upsert_queue(entry).await {
        Ok((provisioned, drift)) => {
            if !was_served {
                // No receiver (no Schedule controller running) is fine.
                let _ = ctx.queue_served.send(id.clone());
            }
            if let Some(drift) = drift {
                publish(ctx, jq, true, drift.reason(), drift.to_string()).await;
            }
            let first = !jq
                .status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY));
            let outcome = report::provisioned(&plan, &provisioned, first);
            report::write(ctx, jq, id, outcome).await;
            Ok(Action::requeue(RESYNC))
        }
        Err(e @ QueueError::StreamClaimed { .. }) => Ok(stream_claimed(ctx, jq, id, &e).await),
        Err(e) => {
            report::write(ctx, jq, id, report::unreachable(e.to_string())).await;
            Err(ReconcileError::Redis(RuntimeError::Queue(e)))
        }
    }
}

/// Applies the worker Deployment, keeping the replica count the autoscaler last set. Returns
/// what stands in the way when the Deployment or the URL Secret exists and is not the
/// queue's (those are never taken over), or when the workers' own credentials are required
/// and cannot be had.
async fn apply_deployment(
    ctx: &Context,
    jq: &JobQueue,
    plan: &QueuePlan,
) -> Result<Option<(&'static str, String)>, ReconcileError> {
    let mut url = url_source(plan);
    let ns = jq.namespace().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let name = deployment_name(jq);
    let existing = api.get_opt(&name).await?;
    if !may_apply(existing.as_ref().map(|d| &d.metadata), jq) {
        return Ok(Some((
            reasons::OBJECT_NOT_OWNED,
            not_owned("Deployment", &name),
        )));
    }
    let current = existing.and_then(|d| d.spec.and_then(|s| s.replicas));
    let initial = jq.spec.scaling.as_ref().map(|s| s.min_replicas);
    if jq
        .spec
        .workers
        .as_ref()
        .is_none_or(|w| w.template.is_none())
    {
        return Ok(None);
    }
    let mut secret_uid = None;
    if let RedisUrlSource::Default(default) = &url {
        // Before the Deployment, so its pods never wait for a missing Secret.
        match credentials::apply_url_secret(ctx, jq, plan, default).await? {
            UrlSecret::Applied { uid, url: workers } => {
                secret_uid = uid;
                url = RedisUrlSource::Default(workers);
            }
            UrlSecret::NotOwned(name) => {
                return Ok(Some((
                    reasons::OBJECT_NOT_OWNED,
                    not_owned("Secret", &name),
                )));
            }
            UrlSecret::Refused(message) => {
                return Ok(Some((reasons::PER_QUEUE_USER_UNAVAILABLE, message)));
            }
        }
    }
    let Some(deployment) = worker_deployment(jq, &url, current.or(initial), secret_uid.as_deref())
    else {
        return Ok(None);
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&deployment),
    )
    .await?;
    Ok(None)
}

fn not_owned(kind: &str, name: &str) -> String {
    format!(
        "{kind} {name:?} already exists and is not managed by this JobQueue; it is left alone \
         (rename the JobQueue, or delete the {kind} if it is a leftover)"
    )
}

/// Where a deleted queue's data is: where it was served, else where its spec says now.
async fn deletion_target(
    ctx: &Context,
    jq: &JobQueue,
    id: &ObjectId,
) -> Result<Result<(String, QueueConfig), PlanError>, ReconcileError> {
    // Where the queue was served: its Secret may be deleted in the same `kubectl delete -f`.
    if let Some(e) = ctx.runtime.queue_entry(id) {
        return Ok(Ok((e.redis_url.clone(), e.config.clone())));
    }
    let config = match plan::queue_config(jq) {
        Ok(c) => c,
        Err(e) => return Ok(Err(PlanError::Invalid(vec![plan::field_error(e)]))),
    };
    let found = dereference::dereference(ctx, jq, id).await?;
    Ok(plan::target(jq, &found.inputs.redis)
        .map(|t| (ctx.runtime.endpoint(&t.url, &t.tls), config)))
}

#[tracing::instrument(name = "cleanup", skip_all, fields(namespace = %jq.namespace().unwrap_or_default(), name = %jq.name_any()))]
async fn cleanup(jq: Arc<JobQueue>, ctx: &Context) -> Result<Action, ReconcileError> {
    let id = id_of(&jq);
    let target = deletion_target(ctx, &jq, &id).await?;
    ctx.runtime.remove_queue(&id);
    match (jq.spec.deletion_policy, target) {
        (DeletionPolicy::Delete, Ok((url, config))) => {
            let deleted = ctx
                .runtime
                .delete_queue_data(&url, &config)
                .await
                .map_err(|e| ReconcileError::Cleanup {
                    action: "delete the queue's data",
                    source: e.into(),
                })?;
            tracing::info!(queue = %id, keys = deleted, "deleted the queue's data (deletionPolicy: Delete)");
        }
        (DeletionPolicy::Delete, Err(e)) => {
            // Never provisioned (its status names no stream): there is nothing to delete, and
            // waiting for a Secret that may never come would block the deletion forever.
            let provisioned = jq.status.as_ref().is_some_and(|s| s.stream.is_some());
            if provisioned {
                return Err(ReconcileError::TargetUnknown(e));
            }
            tracing::info!(queue = %id, error = %e, "deleted queue was never provisioned; nothing to delete");
        }
        (DeletionPolicy::Retain, Ok((url, config))) => {
            // The jobs stay; the schedules armed on the queue and its claim go.
            ctx.runtime
                .retain_queue_data(&url, &config)
                .await
                .map_err(|e| ReconcileError::Cleanup {
                    action: "remove the queue's schedules and release its stream",
                    source: e.into(),
                })?;
        }
        (DeletionPolicy::Retain, Err(e)) => {
            tracing::warn!(queue = %id, error = %e, "deleted queue: its Redis is unknown; schedules armed on it stay");
        }
    }
    credentials::delete_user(ctx, &jq).await?;
    ctx.status.forget_jobqueue(&id);
    ctx.metrics
        .forget_queue(&crate::operator::metrics::ObjectLabels::new(
            &id.namespace,
            &id.name,
        ));
    ctx.failures.clear(CONTROLLER, &id);
    Ok(Action::await_change())
}

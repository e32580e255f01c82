//! The JobQueue controller: validates the spec, resolves the Redis URL, provisions the stream and
//! group, applies the worker Deployment, hands the queue to the runtime, and implements
//! `deletionPolicy` with a finalizer.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;

use crate::api::{DeletionPolicy, JobQueue, conditions, join_field_errors, validate};
use crate::operator::runtime::{ObjectId, QueueEntry, ScalingSettings, Workers};
use crate::operator::workload::{
    RedisUrlSource, deployment_name, url_secret, url_secret_name, worker_deployment,
};
use crate::queue::config::QueueConfig;
use crate::scaling::Policy;

use super::context::{
    Context, ReconcileError, UrlError, publish, reconcile_with_finalizer, resolve_redis,
    resolve_tls, retry_after_error,
};
use super::reporter::{REASON_PROVISIONED, REASON_REDIS_UNREACHABLE, mark_reachable};
use super::status::FIELD_MANAGER;
use super::workers::KubeWorkers;

/// Finalizer that implements `deletionPolicy`.
pub const FINALIZER: &str = "jobqueue.io/cleanup";

/// Periodic resync (changes are watched; this only bounds how long a missed one lasts).
const RESYNC: Duration = Duration::from_secs(300);

fn id_of(jq: &JobQueue) -> ObjectId {
    ObjectId::new(jq.namespace().unwrap_or_default(), jq.name_any())
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(jq: Arc<JobQueue>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile_with_finalizer(&ctx, "jobqueue", FINALIZER, jq, |event| async {
        match event {
            Finalizer::Apply(jq) => apply(jq, &ctx).await,
            Finalizer::Cleanup(jq) => cleanup(jq, &ctx).await,
        }
    })
    .await
}

/// Retry policy for failed reconciles.
pub fn error_policy(_jq: Arc<JobQueue>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    retry_after_error(&ctx, "jobqueue", error)
}

/// Sets `Ready=False` with `reason` and publishes a Warning Event saying the same.
async fn not_ready(ctx: &Context, jq: &JobQueue, reason: &str, message: String) {
    let id = id_of(jq);
    let generation = jq.metadata.generation;
    ctx.status.update_jobqueue(&id, |s| {
        s.observed_generation = generation;
        conditions::set(
            &mut s.conditions,
            conditions::READY,
            false,
            reason,
            message.clone(),
            generation,
            Timestamp::now(),
        );
    });
    publish(ctx, jq, true, reason, message).await;
}

async fn apply(jq: Arc<JobQueue>, ctx: &Context) -> Result<Action, ReconcileError> {
    let id = id_of(&jq);
    ctx.status.track_jobqueue(&jq);

    if let Err(errors) = validate::jobqueue(&jq) {
        ctx.runtime.remove_queue(&id);
        not_ready(ctx, &jq, "InvalidSpec", join_field_errors(&errors)).await;
        return Ok(Action::await_change());
    }
    let config = match QueueConfig::try_from(jq.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            not_ready(ctx, &jq, "InvalidSpec", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    let policy = jq
        .spec
        .scaling
        .as_ref()
        .map(|s| (Policy::from(s), s.poll_interval.as_std()));
    if let Some((p, _)) = &policy
        && let Err(e) = p.validate()
    {
        not_ready(ctx, &jq, "InvalidSpec", format!("spec.scaling: {e}")).await;
        return Ok(Action::await_change());
    }

    let (url, url_source) = match resolve_redis(ctx, &jq).await {
        Ok(u) => u,
        Err(UrlError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            ctx.runtime.remove_queue(&id);
            not_ready(ctx, &jq, "RedisSecretMissing", e.to_string()).await;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    if let Err(e) = validate::redis_url("spec.redis.urlSecretRef", &url) {
        not_ready(ctx, &jq, "InvalidRedisUrl", e.to_string()).await;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }

    let workers: Option<Arc<dyn Workers>> = match jq.spec.workers.as_ref() {
        None => None,
        Some(w) if w.template.is_some() => {
            apply_deployment(ctx, &jq, &url_source).await?;
            Some(Arc::new(KubeWorkers::managed(
                ctx.client.clone(),
                id.clone(),
                deployment_name(&jq),
                ctx.pods.clone(),
                ctx.deployments.clone(),
            )))
        }
        Some(w) => {
            let target = w
                .scale_target_ref
                .as_ref()
                .expect("schema: exactly one of template and scaleTargetRef");
            match scale_target(ctx, &id, target).await {
                Ok(workers) => Some(Arc::new(workers)),
                Err(message) => {
                    ctx.runtime.remove_queue(&id);
                    not_ready(ctx, &jq, "ScaleTargetNotFound", message).await;
                    return Ok(Action::requeue(Duration::from_secs(30)));
                }
            }
        }
    };

    let tls = match resolve_tls(ctx, &jq).await {
        Ok(t) => t,
        Err(UrlError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            ctx.runtime.remove_queue(&id);
            not_ready(
                ctx,
                &jq,
                "RedisSecretMissing",
                format!("spec.redis.tls.caSecretRef: {e}"),
            )
            .await;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let entry = QueueEntry {
        id: id.clone(),
        redis_url: url,
        tls,
        config: config.clone(),
        scaling: policy.map(|(policy, poll_interval)| ScalingSettings {
            policy,
            poll_interval,
        }),
        workers,
    };
    let generation = jq.metadata.generation;
    match ctx.runtime.upsert_queue(entry).await {
        Ok((provisioned, drift)) => {
            if let Some(drift) = drift {
                publish(ctx, jq.as_ref(), true, drift.reason(), drift.to_string()).await;
            }
            let first = !jq
                .status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY));
            ctx.status.update_jobqueue(&id, |s| {
                let now = Timestamp::now();
                s.observed_generation = generation;
                s.stream = Some(config.stream().to_string());
                s.consumer_group = Some(config.group.clone());
                mark_reachable(&mut s.conditions, generation, now);
                let message = format!(
                    "stream {:?} with group {:?} is ready",
                    config.stream(),
                    config.group
                );
                conditions::set(
                    &mut s.conditions,
                    conditions::READY,
                    true,
                    REASON_PROVISIONED,
                    message,
                    generation,
                    now,
                );
            });
            if first {
                let how = if provisioned.stream_existed {
                    "adopted existing"
                } else {
                    "created"
                };
                let note = format!(
                    "{how} stream {:?} and group {:?} ({} entries)",
                    config.stream(),
                    config.group,
                    provisioned.length
                );
                publish(ctx, jq.as_ref(), false, "Provisioned", note).await;
            }
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            let message = e.to_string();
            ctx.status.update_jobqueue(&id, |s| {
                let now = Timestamp::now();
                s.observed_generation = generation;
                conditions::set(
                    &mut s.conditions,
                    conditions::REDIS_REACHABLE,
                    false,
                    REASON_REDIS_UNREACHABLE,
                    message.clone(),
                    generation,
                    now,
                );
                conditions::set(
                    &mut s.conditions,
                    conditions::READY,
                    false,
                    REASON_REDIS_UNREACHABLE,
                    message.clone(),
                    generation,
                    now,
                );
            });
            publish(
                ctx,
                jq.as_ref(),
                true,
                REASON_REDIS_UNREACHABLE,
                message.clone(),
            )
            .await;
            Err(ReconcileError::Redis(message))
        }
    }
}

/// Applies the worker Deployment, keeping the replica count the autoscaler last set.
async fn apply_deployment(
    ctx: &Context,
    jq: &JobQueue,
    url: &RedisUrlSource,
) -> Result<(), ReconcileError> {
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &jq.namespace().unwrap_or_default());
    let name = deployment_name(jq);
    let current = api
        .get_opt(&name)
        .await?
        .and_then(|d| d.spec.and_then(|s| s.replicas));
    let initial = jq.spec.scaling.as_ref().map(|s| s.min_replicas);
    let Some(deployment) = worker_deployment(jq, url, current.or(initial)) else {
        return Ok(());
    };
    if let RedisUrlSource::Default(url) = url {
        // Before the Deployment, so its pods never wait for a missing Secret.
        let secrets: Api<Secret> =
            Api::namespaced(ctx.client.clone(), &jq.namespace().unwrap_or_default());
        secrets
            .patch(
                &url_secret_name(jq),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&url_secret(jq, url)),
            )
            .await?;
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&deployment),
    )
    .await?;
    Ok(())
}

/// Checks that a `scaleTargetRef` exists and has a scale subresource.
async fn scale_target(
    ctx: &Context,
    id: &ObjectId,
    target: &crate::api::ScaleTargetRef,
) -> Result<KubeWorkers, String> {
    let (group, version) = match target.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), target.api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
    let (resource, _caps) = kube::discovery::pinned_kind(&ctx.client, &gvk)
        .await
        .map_err(|e| {
            format!(
                "scaleTargetRef {}/{}: unknown kind ({e})",
                target.api_version, target.kind
            )
        })?;
    let workers = KubeWorkers::referenced(
        ctx.client.clone(),
        id.clone(),
        &resource,
        target.name.clone(),
        ctx.pods.clone(),
        ctx.deployments.clone(),
    );
    match &workers.target {
        super::workers::ScaleTarget::Referenced(api, name) => {
            api.get_scale(name).await.map_err(|e| {
                format!(
                    "scaleTargetRef {} {:?} in namespace {:?}: {e}",
                    target.kind, target.name, id.namespace
                )
            })?;
        }
        super::workers::ScaleTarget::Managed(..) => {}
    }
    Ok(workers)
}

async fn cleanup(jq: Arc<JobQueue>, ctx: &Context) -> Result<Action, ReconcileError> {
    let id = id_of(&jq);
    // Where the queue was served: its Secret may be deleted in the same `kubectl delete -f`.
    let served = ctx
        .runtime
        .queue_entry(&id)
        .map(|e| (e.redis_url.clone(), e.config.clone()));
    ctx.runtime.remove_queue(&id);
    let target = match served {
        Some(t) => Ok(t),
        None => {
            let config = QueueConfig::try_from(jq.as_ref()).map_err(|e| e.to_string());
            let url = resolve_redis(ctx, &jq).await.map_err(|e| e.to_string());
            config.and_then(|c| url.map(|(u, _)| (u, c)))
        }
    };
    match (jq.spec.deletion_policy, target) {
        (DeletionPolicy::Delete, Ok((url, config))) => {
            let deleted = ctx
                .runtime
                .delete_queue_data(&url, &config)
                .await
                .map_err(|e| {
                    ReconcileError::Redis(format!("cannot delete the queue's data: {e}"))
                })?;
            tracing::info!(queue = %id, keys = deleted, "deleted the queue's data (deletionPolicy: Delete)");
        }
        (DeletionPolicy::Delete, Err(e)) => {
            // Never provisioned (its status names no stream): there is nothing to delete, and
            // waiting for a Secret that may never come would block the deletion forever.
            let provisioned = jq.status.as_ref().is_some_and(|s| s.stream.is_some());
            if provisioned {
                return Err(ReconcileError::NotReady(format!(
                    "cannot delete the queue's data: {e}"
                )));
            }
            tracing::info!(queue = %id, error = %e, "deleted queue was never provisioned; nothing to delete");
        }
        (DeletionPolicy::Retain, Ok((url, config))) => {
            // The jobs stay; the schedules armed on the queue go (see remove_queue_schedules).
            if let Err(e) = ctx.runtime.remove_queue_schedules(&url, &config).await {
                return Err(ReconcileError::Redis(format!(
                    "cannot remove the queue's schedules: {e}"
                )));
            }
        }
        (DeletionPolicy::Retain, Err(e)) => {
            tracing::warn!(queue = %id, error = %e, "deleted queue: its Redis is unknown; schedules armed on it stay");
        }
    }
    ctx.status.forget_jobqueue(&id);
    ctx.metrics
        .forget_queue(&crate::operator::metrics::ObjectLabels::new(
            &id.namespace,
            &id.name,
        ));
    Ok(Action::await_change())
}

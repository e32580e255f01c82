//! The first step of a JobQueue reconcile: reading what the queue depends on outside its spec
//! (the Secrets it names, its scale target), so the plan can be computed without I/O.

use kube::core::GroupVersionKind;

use crate::api::{JobQueue, ScaleTargetRef};
use crate::operator::runtime::ObjectId;
use crate::plan::{self, QueueInputs, RedisInputs};

use super::super::context::{Context, ReconcileError, read_secret_key};
use super::super::workers::{KubeWorkers, ScaleTarget};

/// What was read for a queue: its plan's inputs and, for a `scaleTargetRef` that exists, the
/// handle that scales it.
pub(super) struct Dependencies {
    pub inputs: QueueInputs,
    pub scale_target: Option<KubeWorkers>,
}

/// Reads the Secrets named by `spec.redis` and looks up `spec.workers.scaleTargetRef`. A
/// missing Secret or target is an input of the plan, not an error; only a failing API call is.
#[tracing::instrument(name = "dereference", skip_all, fields(namespace = %id.namespace, name = %id.name))]
pub(super) async fn dereference(
    ctx: &Context,
    jq: &JobQueue,
    id: &ObjectId,
) -> Result<Dependencies, ReconcileError> {
    let (url_ref, ca_ref) = plan::secret_refs(jq);
    let url_secret = match url_ref {
        Some(sref) => Some(read_secret_key(ctx, &id.namespace, sref).await?),
        None => None,
    };
    let ca_secret = match ca_ref {
        Some(sref) => Some(read_secret_key(ctx, &id.namespace, sref).await?),
        None => None,
    };
    let target_ref = jq
        .spec
        .workers
        .as_ref()
        .filter(|w| w.template.is_none())
        .and_then(|w| w.scale_target_ref.as_ref());
    let (scale_target, found) = match target_ref {
        None => (None, None),
        Some(target) => match scale_target(ctx, id, target).await {
            Ok(workers) => (Some(workers), Some(Ok(()))),
            Err(why) => (None, Some(Err(why))),
        },
    };
    Ok(Dependencies {
        inputs: QueueInputs {
            redis: RedisInputs {
                default_url: ctx.default_redis.clone(),
                url_secret,
                ca_secret,
            },
            scale_target: found,
        },
        scale_target,
    })
}

/// Checks that a `scaleTargetRef` exists and has a scale subresource.
async fn scale_target(
    ctx: &Context,
    id: &ObjectId,
    target: &ScaleTargetRef,
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
    if let ScaleTarget::Referenced(api, name) = &workers.target {
        api.get_scale(name).await.map_err(|e| {
            format!(
                "scaleTargetRef {} {:?} in namespace {:?}: {e}",
                target.kind, target.name, id.namespace
            )
        })?;
    }
    Ok(workers)
}

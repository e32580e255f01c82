//! The runtime's [`Workers`] in a cluster: the scale subresource of the worker Deployment (or of
//! any `scaleTargetRef` with one), with `controller.kubernetes.io/pod-deletion-cost` set before a
//! scale-in so the ReplicaSet removes idle workers first (on a referenced workload, the pods its
//! scale subresource's selector names).

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};

use crate::operator::runtime::{ObjectId, Workers, WorkersError};
use crate::operator::workload::QUEUE_LABEL;
use crate::queue::metrics::ConsumerInfo;

use super::deployments::DeploymentCache;
use super::pods::PodIndex;
use super::status::FIELD_MANAGER;

/// Annotation the ReplicaSet controller reads to pick which pods to remove first (lowest first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A consumer that read within this long counts as busy even with nothing pending.
const RECENTLY_ACTIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// What is scaled.
pub enum ScaleTarget {
    /// The Deployment the operator made from `workers.template` (its pods are our consumers).
    Managed(Api<Deployment>, String),
    /// A user's workload (`workers.scaleTargetRef`).
    Referenced(Api<DynamicObject>, String),
}

/// Workers of one queue in a cluster.
pub struct KubeWorkers {
    pub queue: ObjectId,
    pub target: ScaleTarget,
    pub pods: Arc<PodIndex>,
    pub client: Client,
    /// Watched replica counts of managed Deployments (a GET only when it has none).
    pub deployments: Arc<DeploymentCache>,
}

impl KubeWorkers {
    /// The operator-managed Deployment `name` in `namespace`.
    pub fn managed(
        client: Client,
        queue: ObjectId,
        name: String,
        pods: Arc<PodIndex>,
        deployments: Arc<DeploymentCache>,
    ) -> Self {
        let api = Api::namespaced(client.clone(), &queue.namespace);
        KubeWorkers {
            target: ScaleTarget::Managed(api, name),
            queue,
            pods,
            client,
            deployments,
        }
    }

    /// A referenced workload of the kind `resource` describes.
    pub fn referenced(
        client: Client,
        queue: ObjectId,
        resource: &ApiResource,
        name: String,
        pods: Arc<PodIndex>,
        deployments: Arc<DeploymentCache>,
    ) -> Self {
        let api = Api::namespaced_with(client.clone(), &queue.namespace, resource);
        KubeWorkers {
            target: ScaleTarget::Referenced(api, name),
            queue,
            pods,
            client,
            deployments,
        }
    }

    async fn get_replicas(&self) -> Result<u32, kube::Error> {
        let scale = match &self.target {
            ScaleTarget::Managed(api, name) => {
                if let Some(r) = self.deployments.replicas(&self.queue.namespace, name) {
                    return Ok(r);
                }
                api.get_scale(name).await?
            }
            ScaleTarget::Referenced(api, name) => api.get_scale(name).await?,
        };
        Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32)
    }

    async fn set_replicas(&self, replicas: u32) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match &self.target {
            ScaleTarget::Managed(api, name) => {
                let scale = api
                    .patch_scale(name, &params, &Patch::Merge(&patch))
                    .await?;
                self.deployments.wrote(
                    &self.queue.namespace,
                    name,
                    scale.metadata.resource_version,
                );
                Ok(())
            }
            ScaleTarget::Referenced(api, name) => api
                .patch_scale(name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        }
    }

    /// The label selector of the workers' pods: the queue label on the operator's Deployment,
    /// the scale subresource's `status.selector` on a referenced workload (`None` when the
    /// workload does not publish one).
    async fn pod_selector(&self) -> Result<Option<String>, kube::Error> {
        match &self.target {
            ScaleTarget::Managed(..) => Ok(Some(format!("{QUEUE_LABEL}={}", self.queue.name))),
            ScaleTarget::Referenced(api, name) => Ok(api
                .get_scale(name)
                .await?
                .status
                .and_then(|s| s.selector)
                .filter(|s| !s.is_empty())),
        }
    }

    /// Ranks the queue's pods for removal: busy ones (holding jobs, or reading recently) get a
    /// high deletion cost, idle ones a low one.
    async fn rank_pods(
        &self,
        selector: &str,
        consumers: &[ConsumerInfo],
    ) -> Result<(), kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.queue.namespace);
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        for pod in list {
            let name = pod.name_any();
            let cost = match consumers.iter().find(|c| c.name == name) {
                Some(c) if c.pending > 0 => 1000 + c.pending.min(1_000_000) as i64,
                Some(c) if c.idle < RECENTLY_ACTIVE => 100,
                _ => 0,
            }
            .to_string();
            if pod.annotations().get(POD_DELETION_COST) == Some(&cost) {
                continue;
            }
            let patch = serde_json::json!({"metadata": {"annotations": {POD_DELETION_COST: cost}}});
            pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }
}

fn err(e: kube::Error) -> WorkersError {
    WorkersError(e.to_string())
}

impl Workers for KubeWorkers {
    fn replicas(&self) -> BoxFuture<'_, Result<u32, WorkersError>> {
        Box::pin(async move { self.get_replicas().await.map_err(err) })
    }

    fn scale<'a>(
        &'a self,
        replicas: u32,
        consumers: &'a [ConsumerInfo],
    ) -> BoxFuture<'a, Result<(), WorkersError>> {
        Box::pin(async move {
            let ranked = if self.get_replicas().await.map_err(err)? > replicas {
                match self.pod_selector().await {
                    Ok(Some(selector)) => self.rank_pods(&selector, consumers).await,
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            } else {
                Ok(())
            };
            if let Err(e) = ranked {
                // Scaling in anyway is better than not scaling: the jobs of a removed busy
                // worker are redelivered (at-least-once).
                tracing::warn!(queue = %self.queue, error = %e, "could not set pod deletion costs before scaling in");
            }
            self.set_replicas(replicas).await.map_err(err)
        })
    }

    fn live_consumers(&self) -> BoxFuture<'_, Result<Option<HashSet<String>>, WorkersError>> {
        Box::pin(async move {
            Ok(match self.target {
                // Only the operator's own pods are known to use their pod name as consumer name.
                ScaleTarget::Managed(..) => self.pods.live(&self.queue),
                ScaleTarget::Referenced(..) => None,
            })
        })
    }
}

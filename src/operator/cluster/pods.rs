//! Which worker pods exist, per queue: the operator's view of live consumers. A worker pod's
//! consumer name is its pod name (JOBQUEUE_CONSUMER from the downward API), so a consumer with
//! no pod is a worker that died; when a pod is deleted its jobs are reclaimed at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::operator::runtime::{ObjectId, Runtime};
use crate::operator::workload::QUEUE_LABEL;

/// Worker pods by queue.
#[derive(Default)]
pub struct PodIndex {
    inner: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    /// Complete once the first list has been received: before that nothing counts as dead.
    ready: bool,
    pods: HashMap<ObjectId, HashSet<String>>,
    relisting: Option<HashMap<ObjectId, HashSet<String>>>,
}

fn queue_of(pod: &Pod) -> Option<ObjectId> {
    let queue = pod.labels().get(QUEUE_LABEL)?;
    Some(ObjectId::new(pod.namespace()?, queue.clone()))
}

impl PodIndex {
    /// The live worker pods of `queue`, or `None` until the first list is complete.
    pub fn live(&self, queue: &ObjectId) -> Option<HashSet<String>> {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state
            .ready
            .then(|| state.pods.get(queue).cloned().unwrap_or_default())
    }

    /// Keeps the index current from a watch of worker pods in `namespace` (all when `None`);
    /// a deleted pod's jobs are reclaimed through `runtime` at once.
    pub async fn watch(
        self: Arc<Self>,
        client: Client,
        namespace: Option<String>,
        runtime: Runtime,
    ) {
        let api: Api<Pod> = match &namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let config = watcher::Config::default().labels(QUEUE_LABEL);
        let mut events = watcher(api, config).boxed();
        while let Some(event) = events.next().await {
            let gone = match event {
                Ok(e) => self.apply(e),
                Err(e) => {
                    tracing::warn!(error = %e, "worker pod watch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Some((queue, pod)) = gone
                && let Err(e) = runtime.consumer_gone(&queue, &pod).await
            {
                tracing::warn!(%queue, pod, error = %e, "reclaiming the jobs of a deleted worker failed; the janitor will retry");
            }
        }
    }

    /// Applies one watch event; returns the (queue, pod) of a deleted pod.
    fn apply(&self, event: watcher::Event<Pod>) -> Option<(ObjectId, String)> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => {
                state.relisting = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(pod) => {
                if let (Some(queue), Some(list)) = (queue_of(&pod), state.relisting.as_mut()) {
                    list.entry(queue).or_default().insert(pod.name_any());
                }
                None
            }
            watcher::Event::InitDone => {
                if let Some(list) = state.relisting.take() {
                    state.pods = list;
                }
                state.ready = true;
                None
            }
            watcher::Event::Apply(pod) => {
                let queue = queue_of(&pod)?;
                state.pods.entry(queue).or_default().insert(pod.name_any());
                None
            }
            watcher::Event::Delete(pod) => {
                let queue = queue_of(&pod)?;
                let name = pod.name_any();
                if let Some(set) = state.pods.get_mut(&queue) {
                    set.remove(&name);
                }
                Some((queue, name))
            }
        }
    }
}

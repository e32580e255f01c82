//! The single writer of JobQueue and Schedule status.
//!
//! Reconcilers (conditions about the spec, provisioning) and the runtime (metrics, replicas,
//! reachability, schedule state) both change status. Each object's status is kept here as one
//! model and written whole by server-side apply under the field manager `jobqueue-operator`, so
//! the two writers never remove each other's fields. Writes are coalesced: many updates of one
//! object between two writes cost one request; a failed write is retried with backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::api::{JobQueue, JobQueueStatus, Schedule, ScheduleStatus};
use crate::operator::runtime::ObjectId;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "jobqueue-operator";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    JobQueue(ObjectId),
    Schedule(ObjectId),
}

#[derive(Default)]
struct Models {
    jobqueues: HashMap<ObjectId, (ObjectReference, JobQueueStatus)>,
    schedules: HashMap<ObjectId, (ObjectReference, ScheduleStatus)>,
}

/// Holds the status models and writes them.
pub struct StatusWriter {
    models: Mutex<Models>,
    tx: mpsc::UnboundedSender<Target>,
}

impl StatusWriter {
    /// A writer and the task that performs its writes (run it while the operator leads).
    pub fn new(client: Client) -> (Arc<Self>, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Arc::new(StatusWriter {
            models: Mutex::default(),
            tx,
        });
        let task = write_loop(client, writer.clone(), rx);
        (writer, task)
    }

    fn models(&self) -> std::sync::MutexGuard<'_, Models> {
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts tracking `jq` (seeded from its stored status, so nothing resets on a restart).
    pub fn track_jobqueue(&self, jq: &JobQueue) {
        let id = ObjectId::new(jq.namespace().unwrap_or_default(), jq.name_any());
        let reference = jq.object_ref(&());
        let mut models = self.models();
        let entry = models
            .jobqueues
            .entry(id)
            .or_insert_with(|| (reference.clone(), jq.status.clone().unwrap_or_default()));
        entry.0 = reference;
    }

    /// Starts tracking `s`.
    pub fn track_schedule(&self, s: &Schedule) {
        let id = ObjectId::new(s.namespace().unwrap_or_default(), s.name_any());
        let reference = s.object_ref(&());
        let mut models = self.models();
        let entry = models
            .schedules
            .entry(id)
            .or_insert_with(|| (reference.clone(), s.status.clone().unwrap_or_default()));
        entry.0 = reference;
    }

    /// Changes a JobQueue's status model and schedules a write. No-op for untracked objects.
    pub fn update_jobqueue(&self, id: &ObjectId, f: impl FnOnce(&mut JobQueueStatus)) {
        let changed = match self.models().jobqueues.get_mut(id) {
            Some((_, status)) => {
                let before = status.clone();
                f(status);
                *status != before
            }
            None => false,
        };
        if changed {
            let _ = self.tx.send(Target::JobQueue(id.clone()));
        }
    }

    /// Changes a Schedule's status model and schedules a write.
    pub fn update_schedule(&self, id: &ObjectId, f: impl FnOnce(&mut ScheduleStatus)) {
        let changed = match self.models().schedules.get_mut(id) {
            Some((_, status)) => {
                let before = status.clone();
                f(status);
                *status != before
            }
            None => false,
        };
        if changed {
            let _ = self.tx.send(Target::Schedule(id.clone()));
        }
    }

    /// A copy of a JobQueue's status model.
    pub fn jobqueue_status(&self, id: &ObjectId) -> Option<JobQueueStatus> {
        self.models().jobqueues.get(id).map(|(_, s)| s.clone())
    }

    /// The object reference of a tracked JobQueue (for Events).
    pub fn jobqueue_ref(&self, id: &ObjectId) -> Option<ObjectReference> {
        self.models().jobqueues.get(id).map(|(r, _)| r.clone())
    }

    /// The object reference of a tracked Schedule (for Events).
    pub fn schedule_ref(&self, id: &ObjectId) -> Option<ObjectReference> {
        self.models().schedules.get(id).map(|(r, _)| r.clone())
    }

    /// Stops tracking a deleted JobQueue.
    pub fn forget_jobqueue(&self, id: &ObjectId) {
        self.models().jobqueues.remove(id);
    }

    /// Stops tracking a deleted Schedule.
    pub fn forget_schedule(&self, id: &ObjectId) {
        self.models().schedules.remove(id);
    }
}

/// Pause before writing again a status whose write failed: 1 s, doubling to 30 s. A failed
/// write is retried until it lands (or the object is gone): a quiet queue may change nothing
/// else for a long time, and its stored status must not stay stale.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Status writes sent at once.
const WRITES_IN_FLIGHT: usize = 8;

async fn write_loop(
    client: Client,
    writer: Arc<StatusWriter>,
    mut rx: mpsc::UnboundedReceiver<Target>,
) {
    let mut failures: HashMap<Target, u32> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut batch = HashSet::from([first]);
        while let Ok(more) = rx.try_recv() {
            batch.insert(more);
        }
        // A few writes in flight: one at a time could not keep thousands of statuses current,
        // and each request in flight holds a connection of its own.
        let mut writes = futures::stream::iter(batch)
            .map(|target| {
                let (client, writer) = (&client, &writer);
                async move { (write(client, writer, &target).await, target) }
            })
            .buffer_unordered(WRITES_IN_FLIGHT);
        while let Some((result, target)) = writes.next().await {
            match result {
                Ok(()) => {
                    failures.remove(&target);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    failures.remove(&target);
                    match &target {
                        Target::JobQueue(id) => writer.forget_jobqueue(id),
                        Target::Schedule(id) => writer.forget_schedule(id),
                    }
                }
                Err(e) => {
                    let n = failures.entry(target.clone()).or_insert(0);
                    *n += 1;
                    let delay = retry_delay(*n);
                    tracing::warn!(?target, error = %e, retry_in = ?delay, "status write failed");
                    let tx = writer.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(target);
                    });
                }
            }
        }
    }
}

/// Writes the current model of `target` (nothing when it is no longer tracked).
async fn write(client: &Client, writer: &StatusWriter, target: &Target) -> kube::Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match target {
        Target::JobQueue(id) => {
            let Some((_, status)) = writer.models().jobqueues.get(id).cloned() else {
                return Ok(());
            };
            let api: Api<JobQueue> = Api::namespaced(client.clone(), &id.namespace);
            let patch = serde_json::json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue", "status": status});
            api.patch_status(&id.name, &params, &Patch::Apply(&patch))
                .await
                .map(|_| ())
        }
        Target::Schedule(id) => {
            let Some((_, status)) = writer.models().schedules.get(id).cloned() else {
                return Ok(());
            };
            let api: Api<Schedule> = Api::namespaced(client.clone(), &id.namespace);
            let patch = serde_json::json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "Schedule", "status": status});
            api.patch_status(&id.name, &params, &Patch::Apply(&patch))
                .await
                .map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_back_off_from_one_second_to_thirty() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(30));
    }
}

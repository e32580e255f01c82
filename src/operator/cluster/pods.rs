//! Which worker pods exist, per queue: the operator's view of live consumers. A worker pod's
//! consumer name is its pod name (JOBQUEUE_CONSUMER from the downward API), so a consumer with
//! no pod is a worker that died; when a pod is deleted its jobs are reclaimed at once.
//!
//! A worker container that crashes and restarts in its pod keeps the consumer name, so the
//! index also keeps each pod's container restart counts: when one goes up, the jobs the
//! consumer read before the restart (idle since before the new container started) are
//! reclaimed at once, and what the restarted worker has read since stays with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
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
    /// Restart counts by pod (namespace and pod name).
    restarts: HashMap<ObjectId, PodRestarts>,
    relisting: Option<Relisting>,
}

/// What a list (after start, or after the watch lost its place) has brought so far.
#[derive(Default)]
struct Relisting {
    pods: HashMap<ObjectId, HashSet<String>>,
    restarts: HashMap<ObjectId, PodRestarts>,
}

/// The restart counts last seen of one pod's consumer containers, by container name. A
/// container without a count had not been started yet: it had restarted 0 times.
#[derive(Debug, Clone, PartialEq)]
struct PodRestarts {
    /// Tells a pod from a later one of the same name (a StatefulSet's).
    uid: Option<String>,
    counts: BTreeMap<String, i32>,
}

/// What a pod event asks of the runtime.
#[derive(Debug, PartialEq)]
enum Handover {
    /// The pod is gone: everything its consumer holds.
    Gone { queue: ObjectId, pod: String },
    /// A consumer container restarted: what the consumer has held at least `min_idle`.
    Restarted {
        queue: ObjectId,
        pod: String,
        min_idle: Duration,
    },
}

/// The variable through which a container reads as its pod's consumer.
const CONSUMER_ENV: &str = "JOBQUEUE_CONSUMER";

/// Added to the time since a restart, so that no job the restarted worker read is taken: it
/// covers the operator's clock being behind the kubelet's (time sync keeps them milliseconds
/// apart; Redis measures idle times on its own clock alone). A job read in the second before
/// the restart waits out the visibility timeout instead. The start time is in whole seconds,
/// rounded down, which errs the same way; a late pod update does no harm (the cut-off is a
/// time: the runtime and the engine add the time they take to it).
const RESTART_MARGIN: Duration = Duration::from_secs(1);

/// The containers that read as the pod's consumer: those given JOBQUEUE_CONSUMER. The operator
/// gives it to every container of the workers' template; a sidecar added by an admission
/// webhook has none, and its restarts say nothing of the jobs the worker holds.
fn consumer_containers(pod: &Pod) -> HashSet<&str> {
    let spec = pod.spec.iter().flat_map(|s| &s.containers);
    spec.filter(|c| c.env.iter().flatten().any(|e| e.name == CONSUMER_ENV))
        .map(|c| c.name.as_str())
        .collect()
}

impl PodRestarts {
    fn of(pod: &Pod) -> Self {
        let consumers = consumer_containers(pod);
        let statuses = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten());
        PodRestarts {
            uid: pod.metadata.uid.clone(),
            counts: statuses
                .filter(|cs| consumers.contains(cs.name.as_str()))
                .map(|cs| (cs.name.clone(), cs.restart_count))
                .collect(),
        }
    }
}

/// How the consumer containers of a pod restarted since its earlier counts.
#[derive(Debug, PartialEq)]
enum Restart {
    /// None restarted.
    None,
    /// The earliest start of a restarted one: what the consumer read before it, a process
    /// that has since exited read.
    Since(Timestamp),
    /// One restarted and its status tells no time: nothing can be handed over safely.
    AtUnknownTime,
}

/// Compares `pod`'s container statuses with `before` (the same pod's, seen earlier).
fn restart_since(before: &PodRestarts, pod: &Pod) -> Restart {
    let consumers = consumer_containers(pod);
    let statuses = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    let mut earliest: Option<Timestamp> = None;
    for cs in statuses.filter(|cs| consumers.contains(cs.name.as_str())) {
        if cs.restart_count <= before.counts.get(&cs.name).copied().unwrap_or(0) {
            continue;
        }
        // Not running yet: nothing has read since the old process ended.
        let running = cs.state.as_ref().and_then(|s| s.running.as_ref());
        let ended = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let at = running
            .and_then(|r| r.started_at.as_ref())
            .or_else(|| ended.and_then(|t| t.finished_at.as_ref()));
        match at {
            Some(t) => earliest = Some(earliest.map_or(t.0, |e| e.min(t.0))),
            None => return Restart::AtUnknownTime,
        }
    }
    earliest.map_or(Restart::None, Restart::Since)
}

/// The idle time a pending entry needs, `now`, to have been delivered before `since` (with
/// [`RESTART_MARGIN`]); `None` when `since` is after `now` (clocks too far apart to tell).
fn min_idle(since: Timestamp, now: Timestamp) -> Option<Duration> {
    let elapsed = Duration::try_from(now.duration_since(since)).ok()?;
    Some(elapsed + RESTART_MARGIN)
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
    /// a deleted pod's jobs, and those a restarted container read before its restart, are
    /// reclaimed through `runtime` at once.
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
            let handover = match event {
                Ok(e) => self.apply(e, Timestamp::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "worker pod watch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            match handover {
                None => {}
                Some(Handover::Gone { queue, pod }) => {
                    if let Err(e) = runtime.consumer_gone(&queue, &pod).await {
                        tracing::warn!(%queue, pod, error = %e, "reclaiming the jobs of a deleted worker failed; the janitor will retry");
                    }
                }
                Some(Handover::Restarted {
                    queue,
                    pod,
                    min_idle,
                }) => {
                    if let Err(e) = runtime.consumer_restarted(&queue, &pod, min_idle).await {
                        tracing::warn!(%queue, pod, error = %e, "reclaiming the jobs of a restarted worker failed; they wait out the visibility timeout");
                    }
                }
            }
        }
    }

    /// Applies one watch event seen at `now`; returns what it asks of the runtime.
    fn apply(&self, event: watcher::Event<Pod>, now: Timestamp) -> Option<Handover> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => {
                state.relisting = Some(Relisting::default());
                None
            }
            watcher::Event::InitApply(pod) => {
                // Counts seen in a list are where they start from: when those restarts
                // happened is not known.
                if let (Some(queue), Some(list)) = (queue_of(&pod), state.relisting.as_mut()) {
                    let name = pod.name_any();
                    let key = ObjectId::new(queue.namespace.clone(), name.clone());
                    list.restarts.insert(key, PodRestarts::of(&pod));
                    list.pods.entry(queue).or_default().insert(name);
                }
                None
            }
            watcher::Event::InitDone => {
                if let Some(list) = state.relisting.take() {
                    state.pods = list.pods;
                    state.restarts = list.restarts;
                }
                state.ready = true;
                None
            }
            watcher::Event::Apply(pod) => {
                let queue = queue_of(&pod)?;
                let name = pod.name_any();
                state
                    .pods
                    .entry(queue.clone())
                    .or_default()
                    .insert(name.clone());
                let key = ObjectId::new(queue.namespace.clone(), name.clone());
                let seen = PodRestarts::of(&pod);
                // A pod not seen before (or a new one under the name) starts from its counts.
                let before = state
                    .restarts
                    .insert(key, seen.clone())
                    .filter(|b| b.uid == seen.uid)?;
                restarted(queue, name, restart_since(&before, &pod), now)
            }
            watcher::Event::Delete(pod) => {
                let queue = queue_of(&pod)?;
                let name = pod.name_any();
                if let Some(set) = state.pods.get_mut(&queue) {
                    set.remove(&name);
                }
                state
                    .restarts
                    .remove(&ObjectId::new(queue.namespace.clone(), name.clone()));
                Some(Handover::Gone { queue, pod: name })
            }
        }
    }
}

/// The handover a restart of `pod`'s consumer containers asks for, if any.
fn restarted(queue: ObjectId, pod: String, restart: Restart, now: Timestamp) -> Option<Handover> {
    let since = match restart {
        Restart::None => return None,
        Restart::Since(t) => t,
        Restart::AtUnknownTime => {
            tracing::warn!(%queue, pod, "a worker container restarted but its status has no start time; its jobs wait out the visibility timeout");
            return None;
        }
    };
    let Some(min_idle) = min_idle(since, now) else {
        tracing::warn!(%queue, pod, %since, %now, "a worker container restarted after the operator's clock says it is now; its jobs wait out the visibility timeout");
        return None;
    };
    Some(Handover::Restarted {
        queue,
        pod,
        min_idle,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A worker pod of `emails` with a consumer container `worker`, a sidecar `proxy` (no
    /// JOBQUEUE_CONSUMER), and these container statuses.
    fn pod(uid: &str, statuses: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "emails-1", "namespace": "team-a", "uid": uid,
                         "labels": {"jobqueue.io/queue": "emails"}},
            "spec": {"containers": [
                {"name": "worker", "image": "w:1", "env": [{"name": "JOBQUEUE_CONSUMER",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                {"name": "helper", "image": "w:1", "env": [{"name": "JOBQUEUE_CONSUMER",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                {"name": "proxy", "image": "p:1"}
            ]},
            "status": {"containerStatuses": statuses}
        }))
        .unwrap()
    }

    fn running(name: &str, restarts: i32, started: &str) -> Value {
        json!({"name": name, "image": "w:1", "imageID": "", "ready": true,
               "restartCount": restarts, "state": {"running": {"startedAt": started}}})
    }

    fn counts(uid: &str, c: &[(&str, i32)]) -> PodRestarts {
        PodRestarts {
            uid: Some(uid.into()),
            counts: c.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn counts_only_containers_that_read_as_the_consumer() {
        let p = pod(
            "u1",
            json!([
                running("worker", 2, "2030-01-01T00:00:00Z"),
                running("proxy", 7, "2030-01-01T00:00:00Z")
            ]),
        );
        assert_eq!(PodRestarts::of(&p), counts("u1", &[("worker", 2)]));
    }

    #[test]
    fn a_count_gone_up_is_a_restart_since_the_new_container_started() {
        let before = counts("u1", &[("worker", 0), ("helper", 0)]);
        let p = pod(
            "u1",
            json!([
                running("worker", 1, "2030-01-01T00:00:10Z"),
                running("helper", 0, "2030-01-01T00:00:00Z")
            ]),
        );
        assert_eq!(
            restart_since(&before, &p),
            Restart::Since(ts("2030-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn same_counts_or_a_sidecar_restart_are_no_restart() {
        let before = counts("u1", &[("worker", 1)]);
        let p = pod(
            "u1",
            json!([
                running("worker", 1, "2030-01-01T00:00:10Z"),
                running("proxy", 3, "2030-01-01T00:00:20Z")
            ]),
        );
        assert_eq!(restart_since(&before, &p), Restart::None);
    }

    #[test]
    fn a_container_not_started_before_had_restarted_zero_times() {
        // The pod was seen before the kubelet reported the container at all.
        let before = counts("u1", &[]);
        let p = pod("u1", json!([running("worker", 1, "2030-01-01T00:00:10Z")]));
        assert_eq!(
            restart_since(&before, &p),
            Restart::Since(ts("2030-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn a_container_waiting_to_restart_counts_from_when_the_old_one_ended() {
        let before = counts("u1", &[("worker", 1)]);
        let waiting = json!({"name": "worker", "image": "w:1", "imageID": "", "ready": false,
            "restartCount": 2, "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {"terminated": {"exitCode": 137,
                "startedAt": "2030-01-01T00:00:01Z", "finishedAt": "2030-01-01T00:00:05Z"}}});
        assert_eq!(
            restart_since(&before, &pod("u1", json!([waiting]))),
            Restart::Since(ts("2030-01-01T00:00:05Z"))
        );
    }

    #[test]
    fn without_a_time_nothing_is_handed_over() {
        let before = counts("u1", &[("worker", 0)]);
        let bare = json!({"name": "worker", "image": "w:1", "imageID": "", "ready": false,
            "restartCount": 1, "state": {"waiting": {}}});
        assert_eq!(
            restart_since(&before, &pod("u1", json!([bare]))),
            Restart::AtUnknownTime
        );
    }

    #[test]
    fn two_restarted_containers_cut_off_at_the_earlier_start() {
        // Between the two starts the first container's new process may have read jobs.
        let before = counts("u1", &[("worker", 0), ("helper", 4)]);
        let p = pod(
            "u1",
            json!([
                running("worker", 1, "2030-01-01T00:00:30Z"),
                running("helper", 5, "2030-01-01T00:00:20Z")
            ]),
        );
        assert_eq!(
            restart_since(&before, &p),
            Restart::Since(ts("2030-01-01T00:00:20Z"))
        );
    }

    #[test]
    fn min_idle_is_the_time_since_the_start_plus_the_margin() {
        let since = ts("2030-01-01T00:00:00Z");
        assert_eq!(
            min_idle(since, ts("2030-01-01T00:00:42.5Z")),
            Some(Duration::from_millis(42_500) + RESTART_MARGIN)
        );
        assert_eq!(min_idle(since, since), Some(RESTART_MARGIN));
        assert_eq!(min_idle(since, ts("2029-12-31T23:59:59Z")), None);
    }

    fn apply(index: &PodIndex, event: watcher::Event<Pod>) -> Option<Handover> {
        index.apply(event, ts("2030-01-01T00:01:00Z"))
    }

    fn worker(uid: &str, restarts: i32, started: &str) -> Pod {
        pod(uid, json!([running("worker", restarts, started)]))
    }

    #[test]
    fn the_watch_hands_over_on_restarts_it_sees_happen() {
        let index = PodIndex::default();
        let queue = ObjectId::new("team-a", "emails");
        let t0 = "2030-01-01T00:00:00Z";
        apply(&index, watcher::Event::Init);
        // Listed with restarts already: when they happened is unknown.
        assert_eq!(
            apply(&index, watcher::Event::InitApply(worker("u1", 3, t0))),
            None
        );
        assert_eq!(apply(&index, watcher::Event::InitDone), None);
        assert_eq!(
            apply(&index, watcher::Event::Apply(worker("u1", 3, t0))),
            None
        );

        let restarted = apply(
            &index,
            watcher::Event::Apply(worker("u1", 4, "2030-01-01T00:00:50Z")),
        );
        assert_eq!(
            restarted,
            Some(Handover::Restarted {
                queue: queue.clone(),
                pod: "emails-1".into(),
                min_idle: Duration::from_secs(10) + RESTART_MARGIN,
            })
        );
        // The next update with the same count is no new restart.
        let again = worker("u1", 4, "2030-01-01T00:00:50Z");
        assert_eq!(apply(&index, watcher::Event::Apply(again)), None);

        // A relist is a new starting point, not a restart.
        apply(&index, watcher::Event::Init);
        let relisted = worker("u1", 6, "2030-01-01T00:00:55Z");
        assert_eq!(apply(&index, watcher::Event::InitApply(relisted)), None);
        apply(&index, watcher::Event::InitDone);
        let same = worker("u1", 6, "2030-01-01T00:00:55Z");
        assert_eq!(apply(&index, watcher::Event::Apply(same)), None);

        // A new pod under the same name starts from its own counts.
        assert_eq!(
            apply(&index, watcher::Event::Apply(worker("u2", 1, t0))),
            None
        );
        assert_eq!(
            apply(&index, watcher::Event::Delete(worker("u2", 1, t0))),
            Some(Handover::Gone {
                queue,
                pod: "emails-1".into()
            })
        );
        // Created again after the delete: its first sighting, not a restart.
        assert_eq!(
            apply(&index, watcher::Event::Apply(worker("u3", 2, t0))),
            None
        );
    }
}

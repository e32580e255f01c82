//! Replica counts of the operator's worker Deployments as the watch sees them, so the scaler
//! does not GET the scale subresource of every queue on every poll (at 1,000 queues polled
//! every second that was > 80 % of the operator's API requests).
//!
//! The watch lags the operator's own writes by a moment: after the scaler sets a count, the
//! cached value is not trusted until the watch shows the resourceVersion that write produced
//! (reads fall back to a GET of the scale subresource meanwhile), so a decision is never made
//! twice from a stale count. If someone else writes in between, that version never shows;
//! the watch is trusted again after [`TRUST_AFTER`].

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};

/// How long after a write of ours the watch is trusted even without showing that write.
pub const TRUST_AFTER: Duration = Duration::from_secs(30);

/// A write of ours the watch has not shown yet.
struct Written {
    /// resourceVersion the write produced (`None`: the answer had none).
    resource_version: Option<String>,
    at: Instant,
}

/// The watched worker Deployments (one store per watched namespace, or one for all).
#[derive(Default)]
pub struct DeploymentCache {
    stores: Mutex<Vec<Store<Deployment>>>,
    /// Writes of the scaler the watch has not shown yet, by (namespace, name).
    written: Mutex<HashMap<(String, String), Written>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeploymentCache {
    /// Adds the store of one Deployment watch.
    pub fn add(&self, store: Store<Deployment>) {
        lock(&self.stores).push(store);
    }

    /// `spec.replicas` of `namespace/name` as watched; `None` when the watch does not have it
    /// (not listed yet, no replicas set) or has not caught up with a write of ours.
    pub fn replicas(&self, namespace: &str, name: &str) -> Option<u32> {
        let key = ObjectRef::new(name).within(namespace);
        let watched = lock(&self.stores).iter().find_map(|s| s.get(&key))?;
        let replicas = watched.spec.as_ref()?.replicas?.max(0) as u32;
        let mut written = lock(&self.written);
        let id = (namespace.to_string(), name.to_string());
        if let Some(w) = written.get(&id) {
            let shown = w.resource_version.is_some()
                && w.resource_version == watched.metadata.resource_version;
            if !shown && w.at.elapsed() < TRUST_AFTER {
                return None;
            }
            written.remove(&id);
        }
        Some(replicas)
    }

    /// Notes that the scaler wrote `namespace/name`, producing `resource_version`.
    pub fn wrote(&self, namespace: &str, name: &str, resource_version: Option<String>) {
        let mut written = lock(&self.written);
        // Entries of Deployments nobody reads any more (their queue is gone) do not pile up.
        written.retain(|_, w| w.at.elapsed() < TRUST_AFTER);
        written.insert(
            (namespace.to_string(), name.to_string()),
            Written {
                resource_version,
                at: Instant::now(),
            },
        );
    }
}

/// Annotation the cached copy carries instead of what [`strip`] removed: a hash of everything
/// the operator applies except the replica count. Never written to the API server.
const APPLIED_HASH: &str = "jobqueue.io/cached-applied-hash";

/// Reduces a watched Deployment to what is read from the cache (name, owner, replica count),
/// noting a hash of what a reconcile would re-apply (pod template, selector, labels, owner,
/// deletion) so [`needs_reconcile`] can tell a scale change from anything else.
pub fn strip(d: &mut Deployment) {
    let mut spec = d
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("replicas");
    }
    let mut h = DefaultHasher::new();
    (
        spec.to_string(),
        &d.metadata.labels,
        d.metadata
            .owner_references
            .as_ref()
            .map(|o| serde_json::to_string(o).unwrap_or_default()),
        d.metadata.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    d.metadata.managed_fields = None;
    d.metadata.annotations = Some(BTreeMap::from([(
        APPLIED_HASH.to_string(),
        h.finish().to_string(),
    )]));
    d.status = None;
    if let Some(spec) = d.spec.as_mut() {
        spec.template = Default::default();
    }
}

/// The watch events of worker Deployments that call for a reconcile of their queue: a deletion,
/// or a change of anything but the replica count. The scaler's own scale writes (and anyone's
/// `kubectl scale`) do not re-apply an unchanged Deployment. Expects [`strip`]ped objects.
pub fn needs_reconcile(
    events: impl Stream<Item = Result<Event<Deployment>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<Deployment, watcher::Error>> + Send + 'static {
    let mut seen: HashMap<ObjectRef<Deployment>, String> = HashMap::new();
    events.filter_map(move |event| {
        let out = match event {
            Err(e) => Some(Err(e)),
            Ok(Event::Apply(d) | Event::InitApply(d)) => {
                let hash = d
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(APPLIED_HASH).cloned())
                    .unwrap_or_default();
                let unchanged = seen.insert(ObjectRef::from_obj(&d), hash.clone()) == Some(hash);
                (!unchanged).then_some(Ok(d))
            }
            Ok(Event::Delete(d)) => {
                seen.remove(&ObjectRef::from_obj(&d));
                Some(Ok(d))
            }
            Ok(Event::Init | Event::InitDone) => None,
        };
        std::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn deployment(ns: &str, name: &str, replicas: Option<i32>, rv: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
        }))
        .unwrap()
    }

    #[test]
    fn a_write_is_trusted_only_once_the_watch_shows_it() {
        let cache = DeploymentCache::default();
        let (reader, mut writer) = store();
        cache.add(reader);
        assert_eq!(cache.replicas("a", "w"), None, "not listed yet");
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(8), "1")));
        assert_eq!(cache.replicas("a", "w"), Some(8));
        assert_eq!(cache.replicas("b", "w"), None, "another namespace");

        // 8 → 5 → 8 while the watch still shows the first 8: equal counts are not enough.
        cache.wrote("a", "w", Some("2".into()));
        cache.wrote("a", "w", Some("3".into()));
        assert_eq!(
            cache.replicas("a", "w"),
            None,
            "the watch still shows version 1"
        );
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(5), "2")));
        assert_eq!(
            cache.replicas("a", "w"),
            None,
            "version 2 is not our last write"
        );
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(8), "3")));
        assert_eq!(cache.replicas("a", "w"), Some(8));
        // Someone else scales it afterwards: the watch is trusted as before.
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(3), "4")));
        assert_eq!(cache.replicas("a", "w"), Some(3));
    }

    #[test]
    fn a_write_the_watch_never_shows_is_trusted_again_later() {
        let cache = DeploymentCache::default();
        let (reader, mut writer) = store();
        cache.add(reader);
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(2), "7")));
        cache.wrote("a", "w", Some("8".into()));
        // Overwritten by someone else before the watch saw version 8.
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(4), "9")));
        assert_eq!(cache.replicas("a", "w"), None);
        lock(&cache.written)
            .get_mut(&("a".to_string(), "w".to_string()))
            .unwrap()
            .at -= TRUST_AFTER;
        assert_eq!(cache.replicas("a", "w"), Some(4));
        assert!(lock(&cache.written).is_empty(), "the entry is dropped");
    }

    #[tokio::test]
    async fn a_scale_change_needs_no_reconcile_but_anything_else_does() {
        let full = |replicas: i32, image: &str| -> Deployment {
            let mut d: Deployment = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "w", "namespace": "a", "resourceVersion": "1"},
                "spec": {"replicas": replicas, "selector": {},
                         "template": {"spec": {"containers": [{"name": "w", "image": image}]}}},
            }))
            .unwrap();
            strip(&mut d);
            d
        };
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(full(0, "w:1"))),
            Ok(Event::InitDone),
            Ok(Event::Apply(full(8, "w:1"))), // scaled: no reconcile
            Ok(Event::Apply(full(8, "w:2"))), // template edited: reconcile
            Ok(Event::Apply(full(3, "w:2"))), // scaled: no reconcile
            Ok(Event::Delete(full(3, "w:2"))), // deleted: reconcile
            Ok(Event::Apply(full(3, "w:2"))), // recreated: reconcile
        ];
        let passed: Vec<Deployment> = needs_reconcile(futures::stream::iter(events))
            .map(|r| r.unwrap())
            .collect()
            .await;
        let replicas: Vec<i32> = passed
            .iter()
            .map(|d| d.spec.as_ref().unwrap().replicas.unwrap())
            .collect();
        assert_eq!(replicas, [0, 8, 3, 3]);
        assert!(
            passed[0].spec.as_ref().unwrap().template.spec.is_none(),
            "the cached copy keeps no pod template"
        );
    }

    #[test]
    fn no_replicas_in_the_spec_is_unknown() {
        let cache = DeploymentCache::default();
        let (reader, mut writer) = store();
        cache.add(reader);
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", None, "1")));
        assert_eq!(cache.replicas("a", "w"), None);
    }
}

//! Replica counts of the operator's worker Deployments as the watch sees them, so the scaler
//! does not GET the scale subresource of every queue on every poll (at 1,000 queues polled
//! every second that was > 80 % of the operator's API requests).
//!
//! The watch lags the operator's own writes by a moment: after the scaler sets a count, the
//! cached value is not trusted until the watch shows that count (reads fall back to a GET of
//! the scale subresource meanwhile), so a decision is never made twice from a stale count.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::{ObjectRef, Store};

/// The watched worker Deployments (one store per watched namespace, or one for all).
#[derive(Default)]
pub struct DeploymentCache {
    stores: Mutex<Vec<Store<Deployment>>>,
    /// Counts the scaler wrote that the watch has not shown yet, by (namespace, name).
    written: Mutex<HashMap<(String, String), u32>>,
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
        match written.get(&id) {
            Some(w) if *w != replicas => None,
            Some(_) => {
                written.remove(&id);
                Some(replicas)
            }
            None => Some(replicas),
        }
    }

    /// Notes that the scaler set `namespace/name` to `replicas`.
    pub fn wrote(&self, namespace: &str, name: &str, replicas: u32) {
        lock(&self.written).insert((namespace.to_string(), name.to_string()), replicas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn deployment(ns: &str, name: &str, replicas: Option<i32>) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
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
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(0))));
        assert_eq!(cache.replicas("a", "w"), Some(0));
        assert_eq!(cache.replicas("b", "w"), None, "another namespace");

        cache.wrote("a", "w", 8);
        assert_eq!(cache.replicas("a", "w"), None, "the watch still shows 0");
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(8))));
        assert_eq!(cache.replicas("a", "w"), Some(8));
        // Someone else scales it afterwards: the watch is trusted again.
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", Some(3))));
        assert_eq!(cache.replicas("a", "w"), Some(3));
    }

    #[test]
    fn no_replicas_in_the_spec_is_unknown() {
        let cache = DeploymentCache::default();
        let (reader, mut writer) = store();
        cache.add(reader);
        writer.apply_watcher_event(&Event::Apply(deployment("a", "w", None)));
        assert_eq!(cache.replicas("a", "w"), None);
    }
}

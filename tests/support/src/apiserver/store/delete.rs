//! Deletion: finalizers (deletionTimestamp first, removal when the last one goes), garbage
//! collection by ownerReferences (synchronous, Background or Orphan), and namespace
//! termination (emptied at once, gone when its last object has gone).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    DeleteOpts, EventType, Propagation, Store, crd::crd_names, finalizers, meta_mut, meta_str, now,
    owner_uids,
};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceType;

impl Store {
    /// DELETE of one object: marked with a deletionTimestamp while finalizers remain,
    /// removed (with its dependents) otherwise.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .lookup(rt, ns.unwrap_or(""), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &rt.kind, name))?;
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        if let Some(want) = &opts.uid
            && *want != uid
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
            });
        }
        if let Some(want) = &opts.resource_version
            && Some(want.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
            });
        }
        if opts.dry_run {
            return Ok(Self::view(rt, &old));
        }
        if opts.propagation == Propagation::Orphan {
            self.orphan_dependents(&uid);
        }
        let terminating_ns = rt.plural == "namespaces" && rt.group.is_empty();
        let instances = if rt.group == "apiextensions.k8s.io" {
            self.crd_instances(&old)
        } else {
            Vec::new()
        };
        let terminating_crd = !instances.is_empty();
        if !finalizers(&old).is_empty() || terminating_ns || terminating_crd {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Self::view(rt, &old));
            }
            let mut new = old.clone();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), json!(g + 1));
            if terminating_ns {
                new["status"] = json!({"phase": "Terminating"});
            }
            let out = self.commit(rt, EventType::Modified, new, Some(old));
            if terminating_ns {
                self.empty_namespace(name);
            }
            if terminating_crd {
                // As the real server's customresourcecleanup finalizer: the CRD goes once its
                // objects have gone, each honouring its own finalizers.
                for (crt, o) in instances {
                    let ns = meta_str(&o, "namespace").map(str::to_string);
                    let n = meta_str(&o, "name").unwrap_or_default().to_string();
                    let _ = self.delete(&crt, ns.as_deref(), &n, &DeleteOpts::default());
                }
                if let Some((g, p)) = crd_names(&out) {
                    self.finish_crd(&g, &p);
                }
            }
            return Ok(out);
        }
        let out = self.commit(rt, EventType::Deleted, old.clone(), Some(old));
        self.after_removal(rt, &out, opts.propagation);
        Ok(out)
    }

    pub(super) fn all_objects(&self) -> Vec<(ResourceType, Value)> {
        let mut out = Vec::new();
        for ((g, p), bucket) in &self.objects {
            let Some(rt) = self
                .types
                .iter()
                .filter(|t| &t.group == g && &t.plural == p)
                .max_by_key(|t| t.storage)
                .cloned()
            else {
                continue;
            };
            out.extend(bucket.values().map(|o| (rt.clone(), o.clone())));
        }
        out
    }

    pub(super) fn orphan_dependents(&mut self, uid: &str) {
        for (rt, o) in self.all_objects() {
            if !owner_uids(&o).iter().any(|u| u == uid) {
                continue;
            }
            let mut new = o.clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            }
            self.commit(&rt, EventType::Modified, new, Some(o));
        }
    }

    /// Garbage collection after an object is gone: dependents whose owners are all gone are
    /// deleted (honouring their finalizers); a terminating namespace that became empty goes.
    pub(super) fn after_removal(
        &mut self,
        rt: &ResourceType,
        removed: &Value,
        propagation: Propagation,
    ) {
        let uid = meta_str(removed, "uid").unwrap_or_default().to_string();
        if propagation == Propagation::Background {
            let all = self.all_objects();
            let live: BTreeSet<String> = all
                .iter()
                .filter_map(|(_, o)| meta_str(o, "uid").map(str::to_string))
                .collect();
            for (drt, o) in all {
                let owners = owner_uids(&o);
                if owners.contains(&uid) && owners.iter().all(|u| !live.contains(u)) {
                    let ns = meta_str(&o, "namespace").map(str::to_string);
                    let name = meta_str(&o, "name").unwrap_or_default().to_string();
                    // Already-gone dependents (removed by an earlier cascade step) are fine.
                    let _ = self.delete(&drt, ns.as_deref(), &name, &DeleteOpts::default());
                }
            }
        }
        if let Some(ns) = meta_str(removed, "namespace").filter(|_| rt.namespaced) {
            self.finish_namespace(ns);
        }
        if rt.custom {
            self.finish_crd(&rt.group, &rt.plural);
        }
    }

    pub(super) fn empty_namespace(&mut self, ns: &str) {
        for (rt, o) in self.all_objects() {
            if rt.namespaced && meta_str(&o, "namespace") == Some(ns) {
                let name = meta_str(&o, "name").unwrap_or_default().to_string();
                let _ = self.delete(&rt, Some(ns), &name, &DeleteOpts::default());
            }
        }
        self.finish_namespace(ns);
    }

    pub(super) fn finish_namespace(&mut self, ns: &str) {
        let nst = self.builtin("", "namespaces");
        let Some(n) = self.lookup(&nst, "", ns).cloned() else {
            return;
        };
        if n.pointer("/metadata/deletionTimestamp").is_none() {
            return;
        }
        let occupied = self
            .objects
            .values()
            .flat_map(|b| b.keys())
            .any(|(o_ns, _)| o_ns == ns);
        if !occupied {
            self.commit(&nst, EventType::Deleted, n.clone(), Some(n));
        }
    }
}

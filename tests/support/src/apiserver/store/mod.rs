//! The in-memory state: objects, the resourceVersion counter, the bounded event history that
//! watches read from, and the write rules (create, update, patch, apply). Deletion (finalizers,
//! garbage collection, namespace termination) is in [`delete`], CRD handling in [`crd`].
//!
//! No I/O and no async: the HTTP layer locks the store, calls one operation, unlocks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

mod crd;
mod delete;

use crd::crd_accept;

use super::error::{ApiError, qualified};
use super::managed::{self, Writer};
use super::patch::{self, PatchKind};
use super::resources::{self, ResourceType};
use super::selector::{FieldSelector, LabelSelector, labels_of};
use super::validate;

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history. `old` is the object before a modification, so a watch
/// with a selector can turn "no longer matches" into DELETED as the real server does.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub type_: EventType,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Value,
    pub old: Option<Value>,
}

/// Which objects a list or watch wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, ns: &str, obj: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == ns)
            && self.labels.matches(&labels_of(obj))
            && self.fields.matches(obj)
    }
}

/// Who writes and how.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub manager: String,
    /// `fieldValidation=Strict`: unknown fields are errors instead of being pruned.
    pub strict: bool,
    pub dry_run: bool,
    pub force: bool,
}

/// How the dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted (synchronously here; Foreground is treated the same way).
    #[default]
    Background,
    /// Dependents lose their ownerReference and stay.
    Orphan,
}

/// Preconditions of a DELETE.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

type TypeKey = (String, String);
type ObjKey = (String, String);

/// The server's state.
pub struct Store {
    types: Vec<ResourceType>,
    objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Value>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Events with a resourceVersion at or below this are no longer kept.
    compacted: u64,
    /// Bumped to end every open watch (their clients then re-watch).
    watch_epoch: u64,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("made an object above")
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything but metadata (and status, when status is a subresource): a change here is a
/// change of the desired state and bumps `metadata.generation`.
fn desired_state(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "apiVersion", "kind"] {
            m.remove(k);
        }
        if rt.status {
            m.remove("status");
        }
    }
    v
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| NAME_CHARS[*b as usize % NAME_CHARS.len()] as char)
        .collect()
}

impl Store {
    /// A store with the built-in types and the namespaces every cluster has.
    pub fn new(history_limit: usize) -> Self {
        let mut s = Store {
            types: resources::builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            watch_epoch: 0,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = s.builtin("", "namespaces");
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            s.create(&rt, None, body, &WriteOpts::default())
                .expect("the built-in namespaces are valid");
        }
        s
    }

    fn builtin(&self, group: &str, plural: &str) -> ResourceType {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && !t.custom)
            .cloned()
            .expect("a built-in type")
    }

    /// Every served type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at group/version/plural.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Drops every kept event and moves the compaction point past every resourceVersion
    /// handed out so far (as an etcd compaction at a newer revision does): a watch from any
    /// earlier resourceVersion gets 410 Gone, a fresh list gets a resourceVersion it can watch
    /// from.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Ends every open watch stream (as an API server restart or a load balancer would).
    pub fn expire_watches(&mut self) {
        self.watch_epoch += 1;
    }

    /// Changes when open watches must end.
    pub fn watch_epoch(&self) -> u64 {
        self.watch_epoch
    }

    /// Whether a list at exactly `rv` can no longer be served.
    pub fn too_old(&self, rv: u64) -> bool {
        rv < self.compacted
    }

    /// The changes after `rv`, or `Gone` when some of them are no longer kept.
    pub fn events_after(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::Gone {
                message: format!("too old resource version: {rv} ({})", self.compacted + 1),
            });
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(start..).cloned().collect())
    }

    fn view(rt: &ResourceType, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o
    }

    fn bucket(&self, rt: &ResourceType) -> Option<&BTreeMap<ObjKey, Value>> {
        self.objects.get(&(rt.group.clone(), rt.plural.clone()))
    }

    fn lookup(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.bucket(rt)?.get(&(ns.to_string(), name.to_string()))
    }

    /// GET of one object.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.lookup(rt, ns.unwrap_or(""), name)
            .map(|o| Self::view(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &rt.kind, name))
    }

    /// LIST: matching objects ordered by namespace and name, `limit` at a time after the
    /// `continue` token; returns the items and the next token.
    pub fn list(
        &self,
        rt: &ResourceType,
        filter: &Filter,
        limit: Option<usize>,
        after: Option<&str>,
    ) -> (Vec<Value>, Option<String>) {
        let after = after.and_then(|c| c.split_once('/'));
        let mut items: Vec<(&ObjKey, &Value)> = self
            .bucket(rt)
            .into_iter()
            .flatten()
            .filter(|((ns, name), _)| {
                after.is_none_or(|(a_ns, a_name)| (ns.as_str(), name.as_str()) > (a_ns, a_name))
            })
            .filter(|((ns, _), o)| filter.matches(ns, o))
            .collect();
        let mut next = None;
        if let Some(limit) = limit.filter(|l| *l > 0 && items.len() > *l) {
            items.truncate(limit);
            next = items.last().map(|((ns, name), _)| format!("{ns}/{name}"));
        }
        (
            items.into_iter().map(|(_, o)| Self::view(rt, o)).collect(),
            next,
        )
    }

    fn commit(
        &mut self,
        rt: &ResourceType,
        type_: EventType,
        mut obj: Value,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let bucket = self
            .objects
            .entry((rt.group.clone(), rt.plural.clone()))
            .or_default();
        match type_ {
            EventType::Deleted => {
                bucket.remove(&(ns.clone(), name));
            }
            _ => {
                bucket.insert((ns.clone(), name), obj.clone());
            }
        }
        self.history.push_back(Arc::new(Event {
            rv: self.rv,
            type_,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: ns,
            object: Self::view(rt, &obj),
            old: old.map(|o| Self::view(rt, &o)),
        }));
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
        if rt.group == "apiextensions.k8s.io" {
            self.refresh_types();
        }
        Self::view(rt, &obj)
    }

    fn check_namespace(&self, rt: &ResourceType, ns: Option<&str>) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ns.ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} is namespaced: the request must name a namespace",
                qualified(&rt.plural, &rt.group)
            ))
        })?;
        let nst = self.builtin("", "namespaces");
        match self.lookup(&nst, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", "Namespace", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::Forbidden {
                    message: format!(
                        "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(&rt.plural, &rt.group)
                    ),
                })
            }
            Some(_) => Ok(()),
        }
    }

    fn check_identity(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
            && av != rt.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Ok(())
    }

    /// POST: a new object. `Ownership` is already recorded when the body came from an apply.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        self.create_inner(rt, ns, body, opts, true)
    }

    fn create_inner(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
        record: bool,
    ) -> Result<Value, ApiError> {
        Self::check_identity(rt, &obj)?;
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let when = now();
        let meta = meta_mut(&mut obj);
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(g)) if !g.is_empty() => format!("{g}{}", random_suffix()),
            _ => {
                return Err(validate::invalid(
                    rt,
                    "",
                    &[jobqueue_operator::api::FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        };
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            if let (Some(body_ns), Some(url_ns)) = (
                meta.get("namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty()),
                ns,
            ) && body_ns != url_ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if let Some(ns) = ns {
                meta.insert("namespace".into(), json!(ns));
            }
        } else {
            meta.remove("namespace");
        }
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(when));
        meta.insert("generation".into(), json!(1));
        if record {
            // Ownership is computed below; an apply brings its own.
            meta.remove("managedFields");
        }
        validate::name(rt, &name)?;
        self.check_namespace(rt, ns)?;
        if rt.custom
            && self
                .crd_of(&rt.group, &rt.plural)
                .is_some_and(|(_, crd)| crd.pointer("/metadata/deletionTimestamp").is_some())
        {
            return Err(ApiError::MethodNotAllowed {
                message: "create not allowed while custom resource definition is terminating"
                    .into(),
            });
        }
        if rt.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if rt.plural == "namespaces" {
            obj["status"] = json!({"phase": "Active"});
        }
        validate::custom_resource(rt, &mut obj, None, opts.strict)?;
        if rt.group == "apiextensions.k8s.io" {
            crd_accept(rt, &mut obj)?;
        }
        if record {
            let base = json!({"metadata": {}});
            let av = rt.api_version();
            managed::record_update(&base, &mut obj, &writer(&av, opts, "", &when));
        }
        if self.lookup(rt, ns.unwrap_or(""), &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if opts.dry_run {
            return Ok(Self::view(rt, &obj));
        }
        Ok(self.commit(rt, EventType::Added, obj, None))
    }

    /// PUT of an object or of its status.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .lookup(rt, ns.unwrap_or(""), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &rt.kind, name))?;
        Self::check_identity(rt, &body)?;
        if meta_str(&body, "resourceVersion").is_none_or(str::is_empty) && rt.custom {
            return Err(validate::invalid(
                rt,
                name,
                &[jobqueue_operator::api::FieldError::new(
                    "metadata.resourceVersion",
                    jobqueue_operator::api::FieldErrorKind::Invalid,
                    Some("0x0".into()),
                    "must be specified for an update",
                )],
            ));
        }
        self.write(rt, name, sub, old, body, opts, true)
    }

    /// PATCH (merge, JSON or strategic) of an object or of its status.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        kind: PatchKind,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .lookup(rt, ns.unwrap_or(""), name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &rt.kind, name))?;
        let patched = patch::apply_patch(kind, &Self::view(rt, &old), body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.write(rt, name, sub, old, patched, opts, true)
    }

    /// Server-side apply (`application/apply-patch+yaml`); creates the object when missing.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        config: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        Self::check_identity(rt, &config)?;
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apply requires apiVersion and kind in the applied configuration",
            ));
        }
        if let Some(n) = meta_str(&config, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if opts.manager.is_empty() {
            return Err(ApiError::bad_request(
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        let mut config = config;
        match sub {
            Some("status") => {
                let status = config.get("status").cloned();
                config = json!({"metadata": {}});
                if let Some(s) = status {
                    config["status"] = s;
                }
            }
            _ if rt.status => {
                if let Some(m) = config.as_object_mut() {
                    m.remove("status");
                }
            }
            _ => {}
        }
        let when = now();
        let av = rt.api_version();
        let w = writer(&av, opts, sub.unwrap_or(""), &when);
        let conflict = |cs: Vec<managed::Conflict>| {
            let n = cs.len();
            let list: Vec<String> = cs
                .iter()
                .map(|c| {
                    format!(
                        "conflict with \"{}\": {}",
                        c.manager,
                        managed::dotted(&c.field)
                    )
                })
                .collect();
            let causes: Vec<Value> = cs
                .iter()
                .map(|c| {
                    json!({"reason": "FieldManagerConflict",
                                "message": format!("conflict with \"{}\"", c.manager),
                                "field": managed::dotted(&c.field)})
                })
                .collect();
            ApiError::Conflict {
                message: format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    list.join(", ")
                ),
                details: json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
            }
        };
        match self.lookup(rt, ns.unwrap_or(""), name).cloned() {
            Some(old) => {
                let mut desired = managed::apply(&Self::view(rt, &old), &config, &w, opts.force)
                    .map_err(conflict)?;
                if let Some(rv) = meta_str(&config, "resourceVersion") {
                    meta_mut(&mut desired).insert("resourceVersion".into(), json!(rv));
                }
                self.write(rt, name, sub, old, desired, opts, false)
            }
            None if sub.is_some() => {
                Err(ApiError::not_found(&rt.group, &rt.plural, &rt.kind, name))
            }
            None => {
                let mut base = json!({"apiVersion": rt.api_version(), "kind": rt.kind,
                                      "metadata": {"name": name}});
                if let Some(ns) = ns {
                    base["metadata"]["namespace"] = json!(ns);
                }
                if let Some(g) = meta_str(&config, "generateName") {
                    base["metadata"]["generateName"] = json!(g);
                }
                let obj = managed::apply(&base, &config, &w, opts.force).map_err(conflict)?;
                self.create_inner(rt, ns, obj, opts, false)
            }
        }
    }

    /// The common path of PUT, PATCH and apply: `desired` is the whole object as the client
    /// wants it; the rules of the real server decide what of it is stored.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        rt: &ResourceType,
        name: &str,
        sub: Option<&str>,
        old: Value,
        desired: Value,
        opts: &WriteOpts,
        record: bool,
    ) -> Result<Value, ApiError> {
        Self::check_identity(rt, &desired)?;
        if let Some(n) = meta_str(&desired, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta_str(&desired, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        let mut new = match sub {
            None => {
                let mut new = desired;
                if rt.status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
            Some("status") if rt.status => {
                let mut new = old.clone();
                match desired.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                // Status writes may not change anything else, but ownership entries are
                // carried over from the computed object.
                if let Some(mf) = desired.pointer("/metadata/managedFields") {
                    meta_mut(&mut new).insert("managedFields".into(), mf.clone());
                }
                new
            }
            Some(other) => {
                return Err(ApiError::NotFound {
                    message: format!("the server could not find the requested resource ({other})"),
                    details: json!({}),
                });
            }
        };
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        {
            let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
            let meta = meta_mut(&mut new);
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if record {
                match old_meta.get("managedFields") {
                    Some(v) => meta.insert("managedFields".into(), v.clone()),
                    None => meta.remove("managedFields"),
                };
            }
        }
        let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            let before: BTreeSet<String> = finalizers(&old).into_iter().collect();
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(validate::invalid(
                    rt,
                    name,
                    &[jobqueue_operator::api::FieldError::new(
                        "metadata.finalizers",
                        jobqueue_operator::api::FieldErrorKind::Forbidden,
                        None,
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        validate::custom_resource(rt, &mut new, Some(&old), opts.strict)?;
        if desired_state(rt, &new) != desired_state(rt, &old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            if rt.group == "apiextensions.k8s.io" && sub.is_none() {
                crd_accept(rt, &mut new)?;
            }
        }
        let when = now();
        if record {
            let av = rt.api_version();
            let w = writer(&av, opts, sub.unwrap_or(""), &when);
            managed::record_update(&Self::view(rt, &old), &mut new, &w);
        }
        let same = {
            let strip = |o: &Value| {
                let mut o = Self::view(rt, o);
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                    m.remove("resourceVersion");
                }
                o
            };
            strip(&new) == strip(&old)
        };
        if same || opts.dry_run {
            return Ok(Self::view(rt, if same { &old } else { &new }));
        }
        if deleting && finalizers(&new).is_empty() {
            let out = self.commit(rt, EventType::Deleted, new, Some(old));
            self.after_removal(rt, &out, Propagation::Background);
            return Ok(out);
        }
        Ok(self.commit(rt, EventType::Modified, new, Some(old)))
    }
}

fn writer<'a>(
    api_version: &'a str,
    opts: &'a WriteOpts,
    sub: &'a str,
    when: &'a str,
) -> Writer<'a> {
    Writer {
        manager: &opts.manager,
        subresource: sub,
        api_version,
        time: when,
    }
}

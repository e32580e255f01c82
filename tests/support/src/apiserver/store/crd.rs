//! CustomResourceDefinitions: which types a CRD serves, the status the real server sets when it
//! accepts one, the structural-schema rule, and cleanup (a deleted CRD goes when its objects
//! have gone).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{EventType, Store, TypeKey, finalizers, meta_str, now};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::{self, ResourceType};
use crate::apiserver::validate;

impl Store {
    /// Re-derives the served custom types from the stored CRDs; objects of types that went
    /// away are removed.
    pub(super) fn refresh_types(&mut self) {
        let crds: Vec<Value> = self
            .objects
            .get(&(
                "apiextensions.k8s.io".into(),
                "customresourcedefinitions".into(),
            ))
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default();
        let mut types = resources::builtins();
        for crd in &crds {
            types.extend(resources::from_crd(crd).unwrap_or_default());
        }
        let served: BTreeSet<TypeKey> = types
            .iter()
            .map(|t| (t.group.clone(), t.plural.clone()))
            .collect();
        let gone: Vec<TypeKey> = self
            .types
            .iter()
            .filter(|t| t.custom)
            .map(|t| (t.group.clone(), t.plural.clone()))
            .filter(|k| !served.contains(k))
            .collect();
        let old_types = std::mem::replace(&mut self.types, types);
        for key in gone {
            let Some(rt) = old_types
                .iter()
                .find(|t| t.group == key.0 && t.plural == key.1)
                .cloned()
            else {
                continue;
            };
            let objs: Vec<Value> = self
                .objects
                .get(&key)
                .map(|b| b.values().cloned().collect())
                .unwrap_or_default();
            for o in objs {
                self.commit(&rt, EventType::Deleted, o, None);
            }
        }
    }

    /// The stored objects of a CRD's resource.
    pub(super) fn crd_instances(&self, crd: &Value) -> Vec<(ResourceType, Value)> {
        let Some((group, plural)) = crd_names(crd) else {
            return Vec::new();
        };
        let Some(rt) = self
            .types
            .iter()
            .filter(|t| t.custom && t.group == group && t.plural == plural)
            .max_by_key(|t| t.storage)
            .cloned()
        else {
            return Vec::new();
        };
        self.objects
            .get(&(group, plural))
            .map(|b| b.values().map(|o| (rt.clone(), o.clone())).collect())
            .unwrap_or_default()
    }

    pub(super) fn crd_of(&self, group: &str, plural: &str) -> Option<(ResourceType, Value)> {
        let crt = self.builtin("apiextensions.k8s.io", "customresourcedefinitions");
        let crd = self.lookup(&crt, "", &format!("{plural}.{group}"))?.clone();
        Some((crt, crd))
    }

    /// Removes a terminating CRD whose last object has gone.
    pub(super) fn finish_crd(&mut self, group: &str, plural: &str) {
        let Some((crt, crd)) = self.crd_of(group, plural) else {
            return;
        };
        let empty = self
            .objects
            .get(&(group.to_string(), plural.to_string()))
            .is_none_or(BTreeMap::is_empty);
        if crd.pointer("/metadata/deletionTimestamp").is_some()
            && empty
            && finalizers(&crd).is_empty()
        {
            self.commit(&crt, EventType::Deleted, crd.clone(), Some(crd));
        }
    }
}

/// A CRD is accepted when its names and versions make a servable type; the status the real
/// server fills in asynchronously (Established, NamesAccepted) is set at once.
pub(super) fn crd_accept(rt: &ResourceType, crd: &mut Value) -> Result<(), ApiError> {
    let types = resources::from_crd(crd).map_err(|e| {
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        validate::invalid(
            rt,
            &name,
            &[jobqueue_operator::api::FieldError::new(
                e.field.clone(),
                jobqueue_operator::api::FieldErrorKind::Invalid,
                None,
                e.message.clone(),
            )],
        )
    })?;
    structural(rt, crd)?;
    let when = now();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": when, "reason": reason, "message": msg});
    let stored: Vec<String> = types
        .iter()
        .filter(|t| t.storage)
        .map(|t| t.version.clone())
        .collect();
    crd["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "storedVersions": stored,
    });
    Ok(())
}

/// The real server serves only CRDs whose every version has a structural schema.
fn structural(rt: &ResourceType, crd: &Value) -> Result<(), ApiError> {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}].schema");
        match v.pointer("/schema/openAPIV3Schema") {
            None => problems.push(format!(
                "{at}.openAPIV3Schema: Required value: schemas are required"
            )),
            Some(schema) => problems.extend(
                jobqueue_operator::crd_validation::check_structural(schema)
                    .into_iter()
                    .map(|p| format!("{at}.{p}")),
            ),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let name = meta_str(crd, "name").unwrap_or_default();
    let causes: Vec<Value> = problems
        .iter()
        .map(|p| {
            let (field, message) = p.split_once(": ").unwrap_or((p, ""));
            json!({"reason": "FieldValueInvalid", "field": field, "message": message})
        })
        .collect();
    let joined = if problems.len() == 1 {
        problems[0].clone()
    } else {
        format!("[{}]", problems.join(", "))
    };
    Err(ApiError::Invalid {
        message: format!("{} \"{name}\" is invalid: {joined}", rt.qualified_kind()),
        details: json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
    })
}

/// `(spec.group, spec.names.plural)` of a CRD.
pub(super) fn crd_names(crd: &Value) -> Option<(String, String)> {
    Some((
        crd.pointer("/spec/group")?.as_str()?.to_string(),
        crd.pointer("/spec/names/plural")?.as_str()?.to_string(),
    ))
}

//! The `/scale` subresource: an `autoscaling/v1` Scale read from and written to the replica
//! paths of Deployments, StatefulSets and CRDs with a scale subresource.

use std::sync::Arc;

use axum::response::Response;
use serde_json::{Value, json};

use super::error::ApiError;
use super::http::{Request, Shared, json_response};
use super::patch::PatchKind;
use super::resources::ResourceType;

fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(obj, |v, k| v.get(k))
}

fn selector_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => v
            .get("matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let paths = rt.scale.as_ref().expect("only called for scalable types");
    let m = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": at_path(obj, &paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": {"replicas": at_path(obj, &paths.status_replicas).cloned().unwrap_or(json!(0))},
    });
    if let Some(sel) = paths
        .label_selector
        .as_deref()
        .and_then(|p| at_path(obj, p))
    {
        scale["status"]["selector"] = json!(selector_string(sel));
    }
    scale
}

/// GET, PUT and PATCH of `/scale`: an `autoscaling/v1` Scale over the object's replicas.
pub(super) fn serve(
    shared: &Arc<Shared>,
    verb: &str,
    req: &Request,
    patch_type: Option<PatchKind>,
) -> Result<Response, ApiError> {
    let rt = &req.rt;
    let mut store = shared.store();
    let (ns, name) = (req.ns(), req.name());
    let current = store.get(rt, ns, name)?;
    let now = scale_of(rt, &current);
    let desired = match (verb, patch_type) {
        ("get", _) => return Ok(json_response(200, &now)),
        ("update", _) => req.json_body()?,
        ("patch", Some(k @ (PatchKind::Merge | PatchKind::Json | PatchKind::Strategic))) => {
            super::patch::apply_patch(k, &now, &req.json_body()?)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        ("patch", Some(PatchKind::Apply)) => {
            let cfg: Value = serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let mut d = now.clone();
            if let Some(r) = cfg.pointer("/spec/replicas") {
                d["spec"]["replicas"] = r.clone();
            }
            d
        }
        _ => {
            return Err(ApiError::MethodNotAllowed {
                message: format!("{verb} is not supported on the scale subresource"),
            });
        }
    };
    if let Some(rv) = desired
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv)
            != current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    let replicas = desired
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::Invalid {
                message: format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0",
                                 desired.pointer("/spec/replicas").cloned().unwrap_or(Value::Null)),
                details: json!({"name": name, "group": "autoscaling", "kind": "Scale",
                                "causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                            "message": "must be greater than or equal to 0"}]}),
            }
        })?;
    let spec_path = &rt.scale.as_ref().expect("scalable").spec_replicas;
    let mut patch = json!(replicas);
    for k in spec_path.trim_start_matches('.').split('.').rev() {
        patch = json!({ k: patch });
    }
    let updated = store.patch(
        rt,
        ns,
        name,
        None,
        PatchKind::Merge,
        &patch,
        &req.write_opts(),
    )?;
    Ok(json_response(200, &scale_of(rt, &updated)))
}

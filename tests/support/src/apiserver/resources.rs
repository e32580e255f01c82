//! The resource types the server knows: the built-ins the operator and kubectl use, plus one
//! entry per version of every CustomResourceDefinition created through the API.

use serde_json::Value;

/// Where a `/scale` subresource reads and writes its numbers (JSON paths like `.spec.replicas`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: main writes ignore status, generation tracks spec only.
    pub status: bool,
    pub scale: Option<ScalePaths>,
    pub columns: Vec<PrinterColumn>,
    /// The CRD's `openAPIV3Schema` (custom resources only).
    pub schema: Option<Value>,
    /// Defined by a CRD (as opposed to built in).
    pub custom: bool,
    /// The storage version among the CRD's versions (built-ins: always true).
    pub storage: bool,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Kind.group` as used in validation messages (`JobQueue.jobqueue.io`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The verbs discovery advertises.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// Which subresources a built-in type has.
#[derive(Clone, Copy, PartialEq)]
enum Sub {
    Plain,
    Status,
    StatusAndScale,
}

/// `[group, version, kind, plural]`.
fn builtin(gvkp: [&str; 4], namespaced: bool, short_names: &[&str], sub: Sub) -> ResourceType {
    let [group, version, kind, plural] = gvkp;
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        // `kubectl get all` lists these, as on a real cluster.
        categories: if matches!(
            plural,
            "pods" | "services" | "deployments" | "statefulsets" | "jobs" | "cronjobs"
        ) {
            vec!["all".into()]
        } else {
            Vec::new()
        },
        status: sub != Sub::Plain,
        scale: (sub == Sub::StatusAndScale).then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }),
        columns: Vec::new(),
        schema: None,
        custom: false,
        storage: true,
    }
}

/// The built-in resources served from the start.
pub fn builtins() -> Vec<ResourceType> {
    use Sub::*;
    vec![
        builtin(
            ["", "v1", "Namespace", "namespaces"],
            false,
            &["ns"],
            Status,
        ),
        builtin(["", "v1", "Secret", "secrets"], true, &[], Plain),
        builtin(["", "v1", "ConfigMap", "configmaps"], true, &["cm"], Plain),
        builtin(["", "v1", "Event", "events"], true, &["ev"], Plain),
        builtin(["", "v1", "Pod", "pods"], true, &["po"], Status),
        builtin(
            ["", "v1", "ServiceAccount", "serviceaccounts"],
            true,
            &["sa"],
            Plain,
        ),
        builtin(["", "v1", "Service", "services"], true, &["svc"], Status),
        builtin(
            ["apps", "v1", "Deployment", "deployments"],
            true,
            &["deploy"],
            StatusAndScale,
        ),
        builtin(
            ["apps", "v1", "StatefulSet", "statefulsets"],
            true,
            &["sts"],
            StatusAndScale,
        ),
        builtin(["batch", "v1", "Job", "jobs"], true, &[], Status),
        builtin(
            ["batch", "v1", "CronJob", "cronjobs"],
            true,
            &["cj"],
            Status,
        ),
        builtin(
            ["coordination.k8s.io", "v1", "Lease", "leases"],
            true,
            &[],
            Plain,
        ),
        builtin(
            ["events.k8s.io", "v1", "Event", "events"],
            true,
            &["ev"],
            Plain,
        ),
        builtin(
            [
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
            ],
            false,
            &["crd", "crds"],
            Status,
        ),
    ]
}

/// Why a CRD cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CrdError {
    pub field: String,
    pub message: String,
}

fn crd_err(field: &str, message: impl Into<String>) -> CrdError {
    CrdError {
        field: field.into(),
        message: message.into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The served versions of a CRD object (`apiextensions.k8s.io/v1`), one `ResourceType` each.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, CrdError> {
    let spec = crd
        .get("spec")
        .ok_or_else(|| crd_err("spec", "Required value"))?;
    let group = str_at(spec, &["group"]).ok_or_else(|| crd_err("spec.group", "Required value"))?;
    let kind = str_at(spec, &["names", "kind"])
        .ok_or_else(|| crd_err("spec.names.kind", "Required value"))?;
    let plural = str_at(spec, &["names", "plural"])
        .ok_or_else(|| crd_err("spec.names.plural", "Required value"))?;
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(crd_err(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let singular = str_at(spec, &["names", "singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match str_at(spec, &["scope"]) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(crd_err(
                "spec.scope",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(spec.pointer("/names/shortNames"));
    let categories = strings(spec.pointer("/names/categories"));
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            crd_err(
                "spec.versions",
                "Required value: must have at least one version",
            )
        })?;
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = str_at(v, &["name"])
            .ok_or_else(|| crd_err(&format!("spec.versions[{i}].name"), "Required value"))?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let sub = v.get("subresources");
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScalePaths {
            spec_replicas: str_at(s, &["specReplicasPath"])
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas: str_at(s, &["statusReplicasPath"])
                .unwrap_or(".status.replicas")
                .into(),
            label_selector: str_at(s, &["labelSelectorPath"]).map(str::to_string),
        });
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, &["name"]).unwrap_or_default().into(),
                        type_: str_at(c, &["type"]).unwrap_or("string").into(),
                        format: str_at(c, &["format"]).unwrap_or_default().into(),
                        description: str_at(c, &["description"]).unwrap_or_default().into(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: str_at(c, &["jsonPath"]).unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceType {
            group: group.into(),
            version: vname.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status: sub.and_then(|s| s.get("status")).is_some(),
            scale,
            columns,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            custom: true,
            storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "jobqueues.jobqueue.io"},
            "spec": {
                "group": "jobqueue.io",
                "names": {"kind": "JobQueue", "plural": "jobqueues", "shortNames": ["jq"]},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Lag", "type": "integer", "jsonPath": ".status.lag"}]
                }, {"name": "v0", "served": false, "storage": false}]
            }
        })
    }

    #[test]
    fn crd_becomes_one_type_per_served_version() {
        let types = from_crd(&crd()).unwrap();
        assert_eq!(types.len(), 1);
        let t = &types[0];
        assert_eq!(t.api_version(), "jobqueue.io/v1alpha1");
        assert_eq!(t.singular, "jobqueue");
        assert!(t.namespaced && t.status && t.custom && t.storage);
        assert_eq!(t.short_names, vec!["jq"]);
        assert_eq!(t.columns[0].json_path, ".status.lag");
        assert_eq!(t.schema, Some(json!({"type": "object"})));
    }

    #[test]
    fn crd_name_must_match_plural_and_group() {
        let mut c = crd();
        c["metadata"]["name"] = json!("queues.jobqueue.io");
        assert_eq!(from_crd(&c).unwrap_err().field, "metadata.name");
        let mut c = crd();
        c["spec"]["scope"] = json!("Galaxy");
        assert_eq!(from_crd(&c).unwrap_err().field, "spec.scope");
    }
}

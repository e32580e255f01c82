//! Discovery documents (pure): the legacy (unaggregated) `/api`, `/apis` and group-version
//! resource lists, `/version`, and minimal OpenAPI documents. kubectl falls back to the legacy
//! form when a server does not answer the aggregated discovery media type.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceType;

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-jobqueue-test",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The versions of each named group, in first-seen order, preferred (storage) version first.
fn groups(types: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let i = match out.iter().position(|(g, _)| *g == t.group) {
            Some(i) => i,
            None => {
                out.push((t.group.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let versions = &mut out[i].1;
        if !versions.contains(&t.version) {
            if t.storage {
                versions.insert(0, t.version.clone());
            } else {
                versions.push(t.version.clone());
            }
        }
    }
    out
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv).unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn group_list(types: &[ResourceType]) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if the group is served.
pub fn group(types: &[ResourceType], name: &str) -> Option<Value> {
    groups(types)
        .iter()
        .find(|(g, _)| g == name)
        .map(|(g, vs)| {
            let mut doc = group_doc(g, vs);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

/// `/api/v1` or `/apis/<group>/<version>`, if served: each resource and its subresources.
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let here: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if here.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in here {
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if t.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", t.plural), "singularName": "",
                "namespaced": t.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v2`: a valid, empty Swagger document. kubectl only needs it to parse.
pub fn openapi_v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "jobqueue test API server", "version": "v1.34.0"},
        "paths": {},
        "definitions": {},
    })
}

/// `/openapi/v3`: one entry per served group version.
pub fn openapi_v3_root(types: &[ResourceType]) -> Value {
    let mut paths = BTreeMap::new();
    for t in types {
        let key = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        let url = format!("/openapi/v3/{key}");
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<group version>`: a document without schemas, listing the endpoints with
/// the `fieldValidation` query parameter, which is how kubectl learns it can leave field
/// validation to the server.
pub fn openapi_v3_group_version(
    types: &[ResourceType],
    group: &str,
    version: &str,
) -> Option<Value> {
    let here: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if here.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let param = json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let op = |verb: &str, t: &ResourceType| {
        json!({
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
            "parameters": [param.clone()],
            "responses": {"200": {"description": "OK"}},
        })
    };
    let mut paths = serde_json::Map::new();
    for t in here {
        let base = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        paths.insert(
            base.clone(),
            json!({"post": op("post", t), "get": op("list", t)}),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"put": op("put", t), "patch": op("patch", t), "get": op("get", t), "delete": op("delete", t)}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "jobqueue test API server", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn group_list_names_every_group_once() {
        let doc = group_list(&builtins());
        let names: Vec<&str> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "batch",
                "coordination.k8s.io",
                "events.k8s.io",
                "apiextensions.k8s.io"
            ]
        );
        assert_eq!(
            doc["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
    }

    #[test]
    fn resource_list_has_subresources() {
        let doc = resource_list(&builtins(), "apps", "v1").unwrap();
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"), "{names:?}");
        assert!(names.contains(&"statefulsets/status"), "{names:?}");
        assert!(resource_list(&builtins(), "apps", "v2").is_none());
        assert!(group(&builtins(), "nope").is_none());
    }
}

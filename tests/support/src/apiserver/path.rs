//! Request paths: which endpoint a URL names (pure, no state).

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    /// `/api`: the core group's versions.
    Api,
    /// `/apis`: every group.
    Apis,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of a group version.
    GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Root,
    /// `/openapi/v3/apis/<group>/<version>` or `/openapi/v3/api/v1`.
    OpenApiV3 {
        group: String,
        version: String,
    },
    Health,
    Resource(Target),
    Unknown,
}

/// A request for a resource collection, one object, or one object's subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// Splits a path into its route. `namespaced(group, version, plural)` tells whether a plural
/// names a namespaced resource, which is what tells `/api/v1/namespaces/x/pods` (pods in `x`)
/// apart from `/api/v1/namespaces/x/status` (the status of namespace `x`).
pub fn route(path: &str, namespaced: impl Fn(&str, &str, &str) -> bool) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", v] => Route::OpenApiV3 {
            group: String::new(),
            version: v.to_string(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3 {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["api", v] => Route::GroupVersion {
            group: String::new(),
            version: v.to_string(),
        },
        ["apis", g, v] => Route::GroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["api", v, rest @ ..] => resource("", v, rest, &namespaced),
        ["apis", g, v, rest @ ..] => resource(g, v, rest, &namespaced),
        _ => Route::Unknown,
    }
}

fn resource(
    group: &str,
    version: &str,
    rest: &[&str],
    namespaced: &impl Fn(&str, &str, &str) -> bool,
) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let t = |ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(Target {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            watch_prefix,
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced(group, version, plural) => match tail {
            [] => t(Some(ns), plural, None, None),
            [name] => t(Some(ns), plural, Some(name), None),
            [name, sub] => t(Some(ns), plural, Some(name), Some(sub)),
            _ => Route::Unknown,
        },
        [plural] => t(None, plural, None, None),
        [plural, name] => t(None, plural, Some(name), None),
        [plural, name, sub] => t(None, plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(_: &str, _: &str, plural: &str) -> bool {
        matches!(plural, "pods" | "deployments")
    }

    fn target(path: &str) -> Target {
        match route(path, ns) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(route("/api", ns), Route::Api);
        assert_eq!(route("/apis/", ns), Route::Apis);
        assert_eq!(
            route("/apis/apps/v1", ns),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(route("/version", ns), Route::Version);
        assert_eq!(route("/openapi/v2", ns), Route::OpenApiV2);
        assert_eq!(route("/nope", ns), Route::Unknown);
    }

    #[test]
    fn namespaced_collection_object_and_subresource() {
        let t = target("/apis/apps/v1/namespaces/default/deployments/w/scale");
        assert_eq!(t.group, "apps");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("w"));
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = target("/api/v1/namespaces/default/pods");
        assert_eq!((t.plural.as_str(), t.name), ("pods", None));
    }

    #[test]
    fn namespace_objects_are_not_mistaken_for_namespaced_paths() {
        let t = target("/api/v1/namespaces/x");
        assert_eq!(
            (t.plural.as_str(), t.name.as_deref()),
            ("namespaces", Some("x"))
        );
        assert_eq!(t.namespace, None);
        let t = target("/api/v1/namespaces/x/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(t.name.as_deref(), Some("x"));
    }

    #[test]
    fn cluster_scoped_and_all_namespaces() {
        let t = target("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b");
        assert_eq!(t.name.as_deref(), Some("a.b"));
        let t = target("/apis/jobqueue.io/v1alpha1/jobqueues");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = target("/api/v1/watch/namespaces/d/pods");
        assert!(t.watch_prefix);
        assert_eq!(t.namespace.as_deref(), Some("d"));
    }
}

//! The Kubernetes protobuf schema: the descriptor set the build script derives from the `k8s-pb`
//! crate's prost bindings (see `build.rs`: one file per proto package, messages named as k8s-pb
//! names its structs, fields by the camelCase of its field names), decoded once per process into
//! a prost-reflect descriptor pool, and the lookup from an object's `apiVersion` + `kind` to its
//! message.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// The encoded `FileDescriptorSet` `build.rs` writes.
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s-pb-descriptor-set.bin"));

/// Why the schema could not be built (a bug in `build.rs`, not a request error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the descriptor set derived from k8s-pb is not valid: {0}")]
pub struct SchemaError(String);

/// The descriptor pool of every k8s-pb package, decoded on first use.
pub fn pool() -> Result<&'static DescriptorPool, SchemaError> {
    static POOL: OnceLock<Result<DescriptorPool, SchemaError>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| SchemaError(e.to_string())))
        .as_ref()
        .map_err(Clone::clone)
}

/// The proto package of an API group version: `api.<group's first label>.<version>`, as k8s-pb
/// names its modules, except for the groups served outside `k8s.io/api`.
pub fn package(api_version: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    match group {
        "" => format!("api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "apiregistration.k8s.io" => format!("kube_aggregator.pkg.apis.apiregistration.{version}"),
        _ => {
            let label = group.split('.').next().unwrap_or(group);
            format!("api.{label}.{version}")
        }
    }
}

/// The message of `kind` in `api_version`, if it is a built-in kind of a stable version that
/// k8s-pb defines (its resource structs are named as their kinds). Alpha and beta versions are
/// left out: the JSON names are checked against k8s-openapi for the stable ones only.
pub fn message(pool: &DescriptorPool, api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    if kind.is_empty() || kind.contains('.') || !is_stable(api_version) {
        return None;
    }
    pool.get_message_by_name(&format!("{}.{kind}", package(api_version)))
}

/// `v1`, `apps/v1`, `autoscaling/v2`; not `v1beta1`.
fn is_stable(api_version: &str) -> bool {
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    version
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_set_decodes_and_names_the_kinds_kubectl_creates() {
        let pool = pool().unwrap();
        for (api_version, kind) in [
            ("v1", "Namespace"),
            ("v1", "Secret"),
            ("v1", "ConfigMap"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("v1", "ResourceQuota"),
            ("apps/v1", "Deployment"),
            ("batch/v1", "Job"),
            ("batch/v1", "CronJob"),
            ("networking.k8s.io/v1", "Ingress"),
            ("policy/v1", "PodDisruptionBudget"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("scheduling.k8s.io/v1", "PriorityClass"),
            ("coordination.k8s.io/v1", "Lease"),
            ("events.k8s.io/v1", "Event"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("apiregistration.k8s.io/v1", "APIService"),
            ("authentication.k8s.io/v1", "TokenRequest"),
        ] {
            let m = message(pool, api_version, kind);
            assert!(m.is_some(), "{api_version} {kind}");
        }
        assert!(message(pool, "example.com/v1", "Widget").is_none());
        assert!(message(pool, "apps/v1", "Widget").is_none());
        assert!(message(pool, "apps/v1", "").is_none());
        assert!(message(pool, "extensions/v1beta1", "Ingress").is_none());
        assert!(message(pool, "resource.k8s.io/v1beta2", "DeviceClass").is_none());
    }
}

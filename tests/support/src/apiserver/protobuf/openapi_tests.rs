//! The protobuf path checked against k8s-openapi: field names against the JSON property names
//! of its schemas, decoded objects against its serialisation of the same objects.

use std::collections::BTreeMap;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use schemars::SchemaGenerator;
use serde_json::{Map, Value};

use super::json::{INLINE, RENAMED, json_name};
use super::schema::pool;

/// The definitions (`io.k8s.<package>.<Type>` → schema) of every type reachable from the
/// resources of the stable API groups.
// Stays whole: one list of roots, read at a glance.
fn openapi_definitions() -> Map<String, Value> {
    let mut generator = SchemaGenerator::default();
    macro_rules! roots {
        ($($t:ty),* $(,)?) => { $( generator.subschema_for::<$t>(); )* };
    }
    roots!(
        api::admissionregistration::v1::MutatingWebhookConfiguration,
        api::admissionregistration::v1::ValidatingAdmissionPolicy,
        api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        api::admissionregistration::v1::ValidatingWebhookConfiguration,
        api::apps::v1::ControllerRevision,
        api::apps::v1::DaemonSet,
        api::apps::v1::Deployment,
        api::apps::v1::ReplicaSet,
        api::apps::v1::StatefulSet,
        api::authentication::v1::SelfSubjectReview,
        api::authentication::v1::TokenRequest,
        api::authentication::v1::TokenReview,
        api::authorization::v1::LocalSubjectAccessReview,
        api::authorization::v1::SelfSubjectAccessReview,
        api::authorization::v1::SelfSubjectRulesReview,
        api::authorization::v1::SubjectAccessReview,
        api::autoscaling::v1::HorizontalPodAutoscaler,
        api::autoscaling::v1::Scale,
        api::autoscaling::v2::HorizontalPodAutoscaler,
        api::batch::v1::CronJob,
        api::batch::v1::Job,
        api::certificates::v1::CertificateSigningRequest,
        api::coordination::v1::Lease,
        api::core::v1::Binding,
        api::core::v1::ConfigMap,
        api::core::v1::Endpoints,
        api::core::v1::Event,
        api::core::v1::LimitRange,
        api::core::v1::Namespace,
        api::core::v1::Node,
        api::core::v1::PersistentVolume,
        api::core::v1::PersistentVolumeClaim,
        api::core::v1::Pod,
        api::core::v1::PodTemplate,
        api::core::v1::ReplicationController,
        api::core::v1::ResourceQuota,
        api::core::v1::Secret,
        api::core::v1::Service,
        api::core::v1::ServiceAccount,
        api::discovery::v1::EndpointSlice,
        api::events::v1::Event,
        api::flowcontrol::v1::FlowSchema,
        api::flowcontrol::v1::PriorityLevelConfiguration,
        api::networking::v1::IPAddress,
        api::networking::v1::Ingress,
        api::networking::v1::IngressClass,
        api::networking::v1::NetworkPolicy,
        api::networking::v1::ServiceCIDR,
        api::node::v1::RuntimeClass,
        api::policy::v1::Eviction,
        api::policy::v1::PodDisruptionBudget,
        api::rbac::v1::ClusterRole,
        api::rbac::v1::ClusterRoleBinding,
        api::rbac::v1::Role,
        api::rbac::v1::RoleBinding,
        api::resource::v1::DeviceClass,
        api::resource::v1::ResourceClaim,
        api::resource::v1::ResourceClaimTemplate,
        api::resource::v1::ResourceSlice,
        api::scheduling::v1::PriorityClass,
        api::storage::v1::CSIDriver,
        api::storage::v1::CSINode,
        api::storage::v1::CSIStorageCapacity,
        api::storage::v1::StorageClass,
        api::storage::v1::VolumeAttachment,
        api::storage::v1::VolumeAttributesClass,
        apiextensions::CustomResourceDefinition,
        apiregistration::APIService,
        meta::APIGroupList,
        meta::APIResourceList,
        meta::DeleteOptions,
        meta::Status,
    );
    generator.take_definitions(false)
}

/// `io.k8s.api.core.v1.HTTPGetAction` and `api.core.v1.HttpGetAction` read the same.
fn normalised(name: &str) -> String {
    name.trim_start_matches("io.k8s.")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Every message of the pool, by its [`normalised`] full name.
fn messages_by_name(pool: &DescriptorPool) -> BTreeMap<String, MessageDescriptor> {
    pool.all_messages()
        .map(|m| (normalised(m.full_name()), m))
        .collect()
}

/// The JSON names `message` writes its fields under, the [`INLINE`] ones flattened.
fn json_names(message: &MessageDescriptor, out: &mut Vec<(String, String)>) {
    for field in message.fields() {
        match field.kind().as_message() {
            Some(inner) if INLINE.contains(&field.full_name()) => json_names(inner, out),
            _ => out.push((field.full_name().to_string(), json_name(message, &field))),
        }
    }
}

#[test]
fn every_field_of_a_type_k8s_openapi_knows_reads_as_one_of_its_properties() {
    let pool = pool().unwrap();
    let messages = messages_by_name(pool);
    let (mut checked, mut wrong) = (0, Vec::new());
    for (name, definition) in openapi_definitions() {
        let Some(properties) = definition.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let Some(message) = messages.get(&normalised(&name)) else {
            continue;
        };
        let mut names = Vec::new();
        json_names(message, &mut names);
        for (field, json) in names {
            checked += 1;
            if properties.contains_key(&json) {
                continue;
            }
            // A field newer than k8s-openapi's release matches no property at all.
            if let Some(property) = properties
                .keys()
                .find(|p| normalised(p) == normalised(&json))
            {
                wrong.push(format!("(\"{field}\", \"{property}\"),"));
            }
        }
    }
    assert!(
        checked > 1000,
        "only {checked} fields matched a k8s-openapi type"
    );
    assert!(
        wrong.is_empty(),
        "missing from RENAMED:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_renamed_fields_name_fields_of_the_schema_and_properties_of_k8s_openapi() {
    let pool = pool().unwrap();
    let definitions = openapi_definitions();
    let by_name: BTreeMap<String, &Value> = definitions
        .iter()
        .map(|(k, v)| (normalised(k), v))
        .collect();
    for (full, json) in RENAMED {
        let (message, field) = full.rsplit_once('.').unwrap();
        let m = pool.get_message_by_name(message).expect(full);
        assert!(m.get_field_by_name(field).is_some(), "{full}");
        if let Some(definition) = by_name.get(&normalised(message)) {
            assert!(
                definition["properties"].get(json).is_some(),
                "{full}: {json} is not a property of k8s-openapi's type"
            );
        }
    }
}

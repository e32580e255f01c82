//! A decoded Kubernetes protobuf message as the JSON the API server would store (pure).
//!
//! Field names are those of the schema `build.rs` derives from k8s-pb: the camelCase of k8s-pb's
//! Rust field names, which prost made by snake_casing the `.proto` names, which go-to-protobuf
//! took from the JSON tags. That round trip folds runs of capitals (`podIP` → `pod_ip` →
//! `podIp`); [`RENAMED`] puts them back. Three things differ from the protobuf JSON mapping:
//! - The apimachinery types with a custom JSON form: `Time`/`MicroTime` (RFC 3339), `Duration`
//!   (Go's duration string), `Quantity` (its string), `IntOrString` (a number or a string),
//!   `RawExtension`/`FieldsV1`/apiextensions `JSON` (the embedded JSON document).
//! - Go writes every non-pointer field to the wire, zero or not, and omits the zero ones from
//!   JSON (`omitempty`); so a singular `""`, `0` or `false` is dropped here, as is a zero `Time`.
//!   The wire does not say which fields are pointers, where a zero is meaningful: `replicas` is
//!   the one kubectl's create commands can set to zero, and is kept.
//! - Go structs embedded with `json:",inline"` are a field in protobuf (`Probe.handler`,
//!   `Volume.volumeSource`, ...) and flattened into their parent in JSON; JSONSchemaProps has
//!   `$ref`, `$schema` and `x-kubernetes-...`; the JSONSchemaPropsOr* unions are a schema or
//!   their other form.
//!
//! [`INLINE`] and [`RENAMED`] are checked against the JSON property names of k8s-openapi's
//! schemas (test `openapi_tests`): every field of a type k8s-openapi knows reads as one of its
//! properties. Fields newer than k8s-openapi's release keep their camelCase name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, MapKey, MessageDescriptor, ReflectMessage, Value as Pb,
};
use serde_json::{Map, Value, json};

/// Singular fields whose zero value is kept: Go pointers kubectl may set to zero.
const ZERO_KEPT: &[&str] = &["replicas"];

/// Fields (`<message full name>.<field>`) that hold a Go struct embedded inline.
pub(super) const INLINE: &[&str] = &[
    "api.admissionregistration.v1.NamedRuleWithOperations.ruleWithOperations",
    "api.admissionregistration.v1.RuleWithOperations.rule",
    "api.core.v1.ConfigMapEnvSource.localObjectReference",
    "api.core.v1.ConfigMapKeySelector.localObjectReference",
    "api.core.v1.ConfigMapProjection.localObjectReference",
    "api.core.v1.ConfigMapVolumeSource.localObjectReference",
    "api.core.v1.EphemeralContainer.ephemeralContainerCommon",
    "api.core.v1.PersistentVolumeSpec.persistentVolumeSource",
    "api.core.v1.Probe.handler",
    "api.core.v1.SecretEnvSource.localObjectReference",
    "api.core.v1.SecretKeySelector.localObjectReference",
    "api.core.v1.SecretProjection.localObjectReference",
    "api.core.v1.Volume.volumeSource",
    "api.networking.v1.IngressRule.ingressRuleValue",
    "api.resource.v1.DeviceAllocationConfiguration.deviceConfiguration",
    "api.resource.v1.DeviceClaimConfiguration.deviceConfiguration",
    "api.resource.v1.DeviceClassConfiguration.deviceConfiguration",
];

/// Fields (`<message full name>.<field>`) whose JSON name is not their name in the schema.
pub(super) const RENAMED: &[(&str, &str)] = &[
    ("api.authentication.v1.BoundObjectReference.uId", "uid"),
    (
        "api.authorization.v1.NonResourceRule.nonResourceUrLs",
        "nonResourceURLs",
    ),
    (
        "api.autoscaling.v1.HorizontalPodAutoscalerSpec.targetCpuUtilizationPercentage",
        "targetCPUUtilizationPercentage",
    ),
    (
        "api.autoscaling.v1.HorizontalPodAutoscalerStatus.currentCpuUtilizationPercentage",
        "currentCPUUtilizationPercentage",
    ),
    (
        "api.core.v1.AwsElasticBlockStoreVolumeSource.volumeId",
        "volumeID",
    ),
    ("api.core.v1.AzureDiskVolumeSource.diskUri", "diskURI"),
    (
        "api.core.v1.CinderPersistentVolumeSource.volumeId",
        "volumeID",
    ),
    ("api.core.v1.CinderVolumeSource.volumeId", "volumeID"),
    ("api.core.v1.ContainerPort.hostIp", "hostIP"),
    (
        "api.core.v1.ContainerStateTerminated.containerId",
        "containerID",
    ),
    ("api.core.v1.ContainerStatus.containerId", "containerID"),
    ("api.core.v1.ContainerStatus.imageId", "imageID"),
    ("api.core.v1.DaemonEndpoint.port", "Port"),
    ("api.core.v1.FcVolumeSource.targetWwNs", "targetWWNs"),
    ("api.core.v1.FlockerVolumeSource.datasetUuid", "datasetUUID"),
    ("api.core.v1.NodeSpec.externalId", "externalID"),
    ("api.core.v1.NodeSpec.podCidRs", "podCIDRs"),
    ("api.core.v1.NodeSpec.podCidr", "podCIDR"),
    ("api.core.v1.NodeSpec.providerId", "providerID"),
    ("api.core.v1.NodeSystemInfo.bootId", "bootID"),
    ("api.core.v1.NodeSystemInfo.machineId", "machineID"),
    ("api.core.v1.NodeSystemInfo.systemUuid", "systemUUID"),
    ("api.core.v1.PersistentVolumeSource.scaleIo", "scaleIO"),
    ("api.core.v1.PhotonPersistentDiskVolumeSource.pdId", "pdID"),
    ("api.core.v1.PodSpec.hostIpc", "hostIPC"),
    ("api.core.v1.PodSpec.hostPid", "hostPID"),
    ("api.core.v1.PodSpec.setHostnameAsFqdn", "setHostnameAsFQDN"),
    ("api.core.v1.PodStatus.hostIp", "hostIP"),
    ("api.core.v1.PodStatus.hostIps", "hostIPs"),
    ("api.core.v1.PodStatus.podIp", "podIP"),
    ("api.core.v1.PodStatus.podIps", "podIPs"),
    ("api.core.v1.PortworxVolumeSource.volumeId", "volumeID"),
    ("api.core.v1.ResourceHealth.resourceId", "resourceID"),
    ("api.core.v1.ServiceSpec.clusterIp", "clusterIP"),
    ("api.core.v1.ServiceSpec.clusterIps", "clusterIPs"),
    ("api.core.v1.ServiceSpec.externalIps", "externalIPs"),
    ("api.core.v1.ServiceSpec.loadBalancerIp", "loadBalancerIP"),
    ("api.core.v1.SessionAffinityConfig.clientIp", "clientIP"),
    ("api.core.v1.VolumeProjection.downwardApi", "downwardAPI"),
    ("api.core.v1.VolumeSource.downwardApi", "downwardAPI"),
    ("api.core.v1.VolumeSource.scaleIo", "scaleIO"),
    (
        "api.core.v1.VsphereVirtualDiskVolumeSource.storagePolicyId",
        "storagePolicyID",
    ),
    (
        "api.flowcontrol.v1.NonResourcePolicyRule.nonResourceUrLs",
        "nonResourceURLs",
    ),
    (
        "api.networking.v1.IngressClassParametersReference.aPiGroup",
        "apiGroup",
    ),
    ("api.rbac.v1.PolicyRule.nonResourceUrLs", "nonResourceURLs"),
    ("api.resource.v1.AllocatedDeviceStatus.shareId", "shareID"),
    (
        "api.resource.v1.DeviceRequestAllocationResult.shareId",
        "shareID",
    ),
    ("api.storage.v1.CSINodeDriver.nodeId", "nodeID"),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation.openApiv3Schema",
        "openAPIV3Schema",
    ),
    (
        "apimachinery.pkg.apis.meta.v1.APIGroup.serverAddressByClientCidRs",
        "serverAddressByClientCIDRs",
    ),
    (
        "apimachinery.pkg.apis.meta.v1.ServerAddressByClientCIDR.clientCidr",
        "clientCIDR",
    ),
    (
        "kube_aggregator.pkg.apis.apiregistration.v1.APIServiceSpec.insecureSkipTlsVerify",
        "insecureSkipTLSVerify",
    ),
];

/// Why a message has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{field}: the embedded JSON document is not valid JSON: {reason}")]
    EmbeddedJson { field: String, reason: String },
    #[error("{field}: {seconds}s {nanos}ns is not a valid timestamp")]
    Timestamp {
        field: String,
        seconds: i64,
        nanos: i32,
    },
}

/// The JSON form of `message`.
pub fn to_json(message: &DynamicMessage) -> Result<Value, JsonError> {
    message_json(message, "")
}

fn message_json(message: &DynamicMessage, path: &str) -> Result<Value, JsonError> {
    if let Some(special) = special(message, path)? {
        return Ok(special);
    }
    let mut out = Map::new();
    for (field, value) in message.fields() {
        if dropped_zero(&field, value) {
            continue;
        }
        let name = json_name(&message.descriptor(), &field);
        let path = format!("{path}.{name}");
        let json = match value {
            Pb::Message(m) if is_zero_time(m) => continue,
            Pb::Message(m) if INLINE.contains(&field.full_name()) => {
                if let Value::Object(fields) = message_json(m, &path)? {
                    out.extend(fields);
                }
                continue;
            }
            Pb::List(items) => Value::Array(
                items
                    .iter()
                    .map(|v| value_json(v, &path))
                    .collect::<Result<_, _>>()?,
            ),
            Pb::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((map_key(k), value_json(v, &path)?)))
                    .collect::<Result<_, _>>()?,
            ),
            v => value_json(v, &path)?,
        };
        out.insert(name, json);
    }
    Ok(Value::Object(out))
}

fn value_json(value: &Pb, path: &str) -> Result<Value, JsonError> {
    Ok(match value {
        Pb::Bool(b) => json!(b),
        Pb::I32(n) | Pb::EnumNumber(n) => json!(n),
        Pb::I64(n) => json!(n),
        Pb::U32(n) => json!(n),
        Pb::U64(n) => json!(n),
        Pb::F32(n) => json!(n),
        Pb::F64(n) => json!(n),
        Pb::String(s) => json!(s),
        Pb::Bytes(b) => json!(super::base64(b)),
        Pb::Message(m) => message_json(m, path)?,
        Pb::List(items) => Value::Array(
            items
                .iter()
                .map(|v| value_json(v, path))
                .collect::<Result<_, _>>()?,
        ),
        Pb::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((map_key(k), value_json(v, path)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// A singular scalar at its zero value, which Go's `omitempty` leaves out of JSON.
fn dropped_zero(field: &FieldDescriptor, value: &Pb) -> bool {
    if field.is_list() || field.is_map() || ZERO_KEPT.contains(&field.name()) {
        return false;
    }
    match value {
        Pb::Bool(b) => !b,
        Pb::I32(n) | Pb::EnumNumber(n) => *n == 0,
        Pb::I64(n) => *n == 0,
        Pb::U32(n) => *n == 0,
        Pb::U64(n) => *n == 0,
        Pb::F32(n) => *n == 0.0,
        Pb::F64(n) => *n == 0.0,
        Pb::String(s) => s.is_empty(),
        Pb::Bytes(b) => b.is_empty(),
        Pb::Message(_) | Pb::List(_) | Pb::Map(_) => false,
    }
}

const META: &str = "apimachinery.pkg.apis.meta.v1";

fn is_zero_time(m: &DynamicMessage) -> bool {
    let name = m.descriptor().full_name().to_string();
    (name == format!("{META}.Time") || name == format!("{META}.MicroTime"))
        && int(m, "seconds") == 0
        && int(m, "nanos") == 0
}

fn int(m: &DynamicMessage, field: &str) -> i64 {
    match m.get_field_by_name(field).as_deref() {
        Some(Pb::I64(n)) => *n,
        Some(Pb::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn string(m: &DynamicMessage, field: &str) -> String {
    match m.get_field_by_name(field).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn bytes(m: &DynamicMessage, field: &str) -> Vec<u8> {
    match m.get_field_by_name(field).as_deref() {
        Some(Pb::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// The JSON of the types whose Go JSON form is not their fields.
fn special(m: &DynamicMessage, path: &str) -> Result<Option<Value>, JsonError> {
    let full = m.descriptor().full_name().to_string();
    let Some((package, name)) = full.rsplit_once('.') else {
        return Ok(None);
    };
    Ok(Some(match (package, name) {
        (META, "Time" | "MicroTime") => timestamp(m, name == "MicroTime", path)?,
        (META, "Duration") => json!(go_duration(int(m, "duration"))),
        (META, "FieldsV1") => embedded(&bytes(m, "raw"), path)?,
        ("apimachinery.pkg.api.resource", "Quantity" | "QuantityValue") => {
            json!(string(m, "string"))
        }
        ("apimachinery.pkg.util.intstr", "IntOrString") => match int(m, "type") {
            0 => json!(int(m, "intVal")),
            _ => json!(string(m, "strVal")),
        },
        ("apimachinery.pkg.runtime", "RawExtension") => embedded(&bytes(m, "raw"), path)?,
        (p, "Json") if p.starts_with("apiextensions_apiserver.") => {
            embedded(&bytes(m, "raw"), path)?
        }
        (
            p,
            "JsonSchemaPropsOrArray" | "JsonSchemaPropsOrBool" | "JsonSchemaPropsOrStringArray",
        ) if p.starts_with("apiextensions_apiserver.") => schema_union(m, name, path)?,
        _ => return Ok(None),
    }))
}

/// A JSONSchemaPropsOr* union: its schema when set, else its other form (a list of schemas, a
/// boolean, a list of strings).
fn schema_union(m: &DynamicMessage, name: &str, path: &str) -> Result<Value, JsonError> {
    if let Some(Pb::Message(schema)) = m.get_field_by_name("schema").as_deref()
        && m.has_field_by_name("schema")
    {
        return message_json(schema, path);
    }
    let other = match name {
        "JsonSchemaPropsOrArray" => "jSonSchemas",
        "JsonSchemaPropsOrBool" => "allows",
        _ => "property",
    };
    match m.get_field_by_name(other).as_deref() {
        Some(Pb::Bool(b)) => Ok(json!(b)),
        Some(v) => value_json(v, path),
        None => Ok(Value::Null),
    }
}

fn timestamp(m: &DynamicMessage, micro: bool, path: &str) -> Result<Value, JsonError> {
    let (seconds, nanos) = (int(m, "seconds"), int(m, "nanos") as i32);
    let t = Timestamp::new(seconds, nanos).map_err(|_| JsonError::Timestamp {
        field: path.trim_start_matches('.').into(),
        seconds,
        nanos,
    })?;
    let json = if micro {
        serde_json::to_value(MicroTime(t))
    } else {
        serde_json::to_value(Time(t))
    };
    Ok(json.unwrap_or(Value::Null))
}

fn embedded(raw: &[u8], path: &str) -> Result<Value, JsonError> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| JsonError::EmbeddedJson {
        field: path.trim_start_matches('.').into(),
        reason: e.to_string(),
    })
}

/// The JSON name of `field`: its name, but for the [`RENAMED`] ones and JSONSchemaProps'.
pub(super) fn json_name(message: &MessageDescriptor, field: &FieldDescriptor) -> String {
    let name = field.name();
    if let Some((_, renamed)) = RENAMED.iter().find(|(f, _)| *f == field.full_name()) {
        return renamed.to_string();
    }
    if message.name() != "JsonSchemaProps" {
        return name.to_string();
    }
    match name {
        "ref" => "$ref".into(),
        "schema" => "$schema".into(),
        _ => match name.strip_prefix("xKubernetes") {
            Some(rest) => format!("x-kubernetes{}", kebab(rest)),
            None => name.to_string(),
        },
    }
}

/// `PreserveUnknownFields` → `-preserve-unknown-fields`.
fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Go's `time.Duration.String()` of `nanos` (`1h2m3.5s`, `1.5ms`, `0s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, scale) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(n, scale));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let s = fraction(rest, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// `n / scale` with the fraction's trailing zeros trimmed (`1500, 1000` → `1.5`).
fn fraction(n: u64, scale: u64) -> String {
    let (whole, frac) = (n / scale, n % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(1_000_000_000), "1s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn the_inline_and_renamed_tables_name_fields_of_the_schema() {
        let pool = super::super::schema::pool().unwrap();
        let names = INLINE.iter().chain(RENAMED.iter().map(|(f, _)| f));
        for full in names {
            let (message, field) = full.rsplit_once('.').unwrap();
            let m = pool.get_message_by_name(message).expect(full);
            assert!(m.get_field_by_name(field).is_some(), "{full}");
        }
    }

    #[test]
    fn schema_props_names_are_their_json_spelling() {
        assert_eq!(kebab("PreserveUnknownFields"), "-preserve-unknown-fields");
        assert_eq!(kebab("IntOrString"), "-int-or-string");
    }
}

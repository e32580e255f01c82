//! Protobuf request bodies, as kubectl's typed clients send built-in kinds (`kubectl create
//! deployment|job|service|secret|...`; they do not fall back to JSON), read into the JSON form
//! the rest of the server works on (pure, but for decoding the schema once).
//!
//! The body is `k8s\0` then a `runtime.Unknown` envelope, decoded with k8s-pb's type; its
//! `typeMeta` names the kind and `raw` holds the object, decoded with prost-reflect (k8s-pb's
//! bindings have no JSON form nor reflection) against the descriptor set the build script
//! derives from k8s-pb's own source ([`schema`]), then turned into JSON by [`json`]. A kind
//! k8s-pb does not define is refused with a message naming it (the server answers 415).

mod json;
#[cfg(test)]
mod openapi_tests;
mod schema;
#[cfg(test)]
mod typed_tests;

use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::{Value, json};

/// The magic bytes before every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf magic bytes (k8s\\0)")]
    NoMagic,
    #[error("the runtime.Unknown envelope is not valid protobuf: {0}")]
    Envelope(#[source] prost::DecodeError),
    #[error("the envelope's raw object is encoded as {0:?}; only unencoded objects are read")]
    ContentEncoding(String),
    #[error(
        "{api_version} {kind} is not a built-in kind this server can read as protobuf; send it as JSON (kubectl apply -f <manifest>)"
    )]
    UnknownKind { api_version: String, kind: String },
    #[error("the {api_version} {kind} object is not valid protobuf: {source}")]
    Object {
        api_version: String,
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error(transparent)]
    Json(#[from] json::JsonError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown` envelope) of any built-in
/// kind into its JSON form, with `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let unknown = Unknown::decode(envelope).map_err(ProtobufError::Envelope)?;
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let pool = schema::pool()?;
    let Some(descriptor) = schema::message(pool, &api_version, &kind) else {
        return Err(ProtobufError::UnknownKind { api_version, kind });
    };
    let raw = unknown.raw.unwrap_or_default();
    let message = match DynamicMessage::decode(descriptor, raw.as_slice()) {
        Ok(m) => m,
        Err(source) => {
            return Err(ProtobufError::Object {
                api_version,
                kind,
                source,
            });
        }
    };
    let mut object = json::to_json(&message)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(object)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as JSON carries `[]byte`.
fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prost_reflect::{MapKey, Value as Pb};

    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(n << 3 | 2, &mut out);
        varint(data.len() as u64, &mut out);
        out.extend_from_slice(data);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [bytes_field(1, k.as_bytes()), bytes_field(2, v)].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [
            bytes_field(1, api_version.as_bytes()),
            bytes_field(2, kind.as_bytes()),
        ]
        .concat();
        [b"k8s\0".to_vec(), bytes_field(1, &tm), bytes_field(2, raw)].concat()
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"redis://x:6379"), "cmVkaXM6Ly94OjYzNzk=");
    }

    #[test]
    fn decodes_a_secret_with_labels_and_data() {
        let meta = [
            bytes_field(1, b"redis"),
            bytes_field(3, b"default"),
            bytes_field(11, &entry("app", b"q")),
        ]
        .concat();
        let raw = [
            bytes_field(1, &meta),
            bytes_field(2, &entry("url", b"redis://x:6379")),
            bytes_field(3, b"Opaque"),
        ]
        .concat();
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "redis", "namespace": "default", "labels": {"app": "q"}},
                   "data": {"url": "cmVkaXM6Ly94OjYzNzk="}, "type": "Opaque"})
        );
    }

    #[test]
    fn decodes_namespaces_configmaps_and_deployments_and_refuses_unknown_kinds() {
        let raw = bytes_field(1, &bytes_field(1, b"team"));
        let ns = decode(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(ns["metadata"]["name"], "team");
        let raw = [
            bytes_field(1, &bytes_field(1, b"c")),
            bytes_field(2, &entry("k", b"v")),
        ]
        .concat();
        let cm = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(cm["data"], json!({"k": "v"}));
        let raw = [
            bytes_field(1, &bytes_field(1, b"d")),
            bytes_field(2, b"\x08\x01"),
        ]
        .concat();
        let d = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(d["spec"], json!({"replicas": 1}), "{d}");
        let e = decode(&envelope("example.com/v1", "Widget", &raw)).unwrap_err();
        assert!(e.to_string().contains("example.com/v1 Widget"), "{e}");
        assert!(decode(b"not protobuf").is_err());
        assert!(
            decode(&[b"k8s\0".as_slice(), &[0x0a, 0x50]].concat()).is_err(),
            "truncated"
        );
    }

    #[test]
    fn a_zero_replica_count_is_kept_and_other_zero_scalars_dropped() {
        // ObjectMeta: name "d", generateName "" (Go writes non-pointer strings even if empty).
        let meta = [bytes_field(1, b"d"), bytes_field(2, b"")].concat();
        // DeploymentSpec: replicas 0, minReadySeconds 0.
        let raw = [bytes_field(1, &meta), bytes_field(2, b"\x08\x00\x28\x00")].concat();
        let d = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(d["metadata"], json!({"name": "d"}));
        assert_eq!(d["spec"], json!({"replicas": 0}));
    }

    /// A message of the schema with the given fields set.
    fn message(name: &str, fields: Vec<(&str, Pb)>) -> DynamicMessage {
        let descriptor = schema::pool().unwrap().get_message_by_name(name).unwrap();
        let mut m = DynamicMessage::new(descriptor);
        for (field, value) in fields {
            m.set_field_by_name(field, value);
        }
        m
    }

    fn text(s: &str) -> Pb {
        Pb::String(s.into())
    }

    /// A container with a CPU limit (a Quantity) and a probe on a named port (an IntOrString).
    fn container() -> DynamicMessage {
        let quantity = |q: &str| {
            Pb::Message(message(
                "apimachinery.pkg.api.resource.Quantity",
                vec![("string", text(q))],
            ))
        };
        let port_name = message(
            "apimachinery.pkg.util.intstr.IntOrString",
            vec![("type", Pb::I64(1)), ("strVal", text("http"))],
        );
        let limits = HashMap::from([(MapKey::String("cpu".into()), quantity("500m"))]);
        message(
            "api.core.v1.Container",
            vec![
                ("name", text("c")),
                (
                    "resources",
                    Pb::Message(message(
                        "api.core.v1.ResourceRequirements",
                        vec![("limits", Pb::Map(limits))],
                    )),
                ),
                (
                    "livenessProbe",
                    Pb::Message(message(
                        "api.core.v1.Probe",
                        vec![(
                            "handler",
                            Pb::Message(message(
                                "api.core.v1.ProbeHandler",
                                vec![(
                                    "httpGet",
                                    Pb::Message(message(
                                        "api.core.v1.HttpGetAction",
                                        vec![("port", Pb::Message(port_name))],
                                    )),
                                )],
                            )),
                        )],
                    )),
                ),
            ],
        )
    }

    /// A volume with an empty `emptyDir` (kept: its presence is the setting).
    fn volume() -> DynamicMessage {
        message(
            "api.core.v1.Volume",
            vec![
                ("name", text("scratch")),
                (
                    "volumeSource",
                    Pb::Message(message(
                        "api.core.v1.VolumeSource",
                        vec![(
                            "emptyDir",
                            Pb::Message(message("api.core.v1.EmptyDirVolumeSource", vec![])),
                        )],
                    )),
                ),
            ],
        )
    }

    #[test]
    fn apimachinery_types_read_as_their_json_form() {
        let meta = message(
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            vec![
                ("name", text("p")),
                (
                    "creationTimestamp",
                    Pb::Message(message(
                        "apimachinery.pkg.apis.meta.v1.Time",
                        vec![("seconds", Pb::I64(1_700_000_000))],
                    )),
                ),
            ],
        );
        let (container, volume) = (container(), volume());
        let spec = message(
            "api.core.v1.PodSpec",
            vec![
                ("containers", Pb::List(vec![Pb::Message(container)])),
                ("volumes", Pb::List(vec![Pb::Message(volume)])),
            ],
        );
        let pod = message(
            "api.core.v1.Pod",
            vec![("metadata", Pb::Message(meta)), ("spec", Pb::Message(spec))],
        );
        let v = decode(&envelope("v1", "Pod", &pod.encode_to_vec())).unwrap();
        assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["resources"], json!({"limits": {"cpu": "500m"}}));
        // Probe.handler and Volume.volumeSource are Go structs inlined in JSON.
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": "http"}}),
            "{v}"
        );
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "scratch", "emptyDir": {}}])
        );
    }
}

//! Just enough of Kubernetes' protobuf encoding (pure) to read what `kubectl create namespace`,
//! `kubectl create secret generic` and `kubectl create configmap` send: kubectl's typed clients
//! write built-ins as protobuf and do not fall back to JSON. Other protobuf bodies are refused
//! with 415 and a message saying to use a manifest (`kubectl apply -f`) instead.
//!
//! Field numbers are those of k8s.io/api/core/v1 and apimachinery's `generated.proto`.

use serde_json::{Map, Value, json};

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtobufError(pub String);

fn err(m: impl Into<String>) -> ProtobufError {
    ProtobufError(m.into())
}

/// One field of a message: its number and either a varint or a length-delimited payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| err("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if self.buf.len() < n {
            return Err(err("truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Bytes(self.take(8)?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| err("length overflow"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Bytes(self.take(4)?),
            t => return Err(err(format!("unsupported wire type {t}"))),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtobufError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| err("a string field is not UTF-8"))
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

/// A `map<string, string>` (or bytes, base64-encoded) entry: field 1 key, field 2 value.
fn map_entry(b: &[u8], bytes: bool) -> Result<(String, Value), ProtobufError> {
    let (mut k, mut v) = (String::new(), json!(""));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) if bytes => v = json!(base64(x)),
            (2, Field::Bytes(x)) => v = json!(text(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_entry(
    obj: &mut Map<String, Value>,
    key: &str,
    b: &[u8],
    bytes: bool,
) -> Result<(), ProtobufError> {
    let (k, v) = map_entry(b, bytes)?;
    obj.entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("inserted as an object")
        .insert(k, v);
    Ok(())
}

fn push(obj: &mut Map<String, Value>, key: &str, v: Value) {
    if let Value::Array(a) = obj.entry(key).or_insert_with(|| json!([])) {
        a.push(v);
    }
}

/// ObjectMeta: the fields a client sets on create.
fn object_meta(b: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => _ = m.insert("name".into(), json!(text(x)?)),
            (2, Field::Bytes(x)) => _ = m.insert("generateName".into(), json!(text(x)?)),
            (3, Field::Bytes(x)) => _ = m.insert("namespace".into(), json!(text(x)?)),
            (6, Field::Bytes(x)) => _ = m.insert("resourceVersion".into(), json!(text(x)?)),
            (11, Field::Bytes(x)) => insert_entry(&mut m, "labels", x, false)?,
            (12, Field::Bytes(x)) => insert_entry(&mut m, "annotations", x, false)?,
            (14, Field::Bytes(x)) => push(&mut m, "finalizers", json!(text(x)?)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// Decodes a protobuf request body (`k8s\0` + runtime.Unknown envelope) of a Namespace, Secret
/// or ConfigMap into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| err("missing the k8s protobuf envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(inner)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (n, f) in fields(tm)? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        match (api_version.as_str(), kind.as_str(), n, f) {
            (_, _, 1, Field::Bytes(x)) => _ = obj.insert("metadata".into(), object_meta(x)?),
            ("v1", "Namespace", 2, Field::Bytes(x)) => {
                let mut spec = Map::new();
                for (n, f) in fields(x)? {
                    if let (1, Field::Bytes(s)) = (n, f) {
                        push(&mut spec, "finalizers", json!(text(s)?));
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("v1", "Secret", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", x, true)?,
            ("v1", "Secret", 3, Field::Bytes(x)) => _ = obj.insert("type".into(), json!(text(x)?)),
            ("v1", "Secret", 4, Field::Bytes(x)) => insert_entry(&mut obj, "stringData", x, false)?,
            ("v1", "Secret", 5, Field::Varint(v)) | ("v1", "ConfigMap", 4, Field::Varint(v)) => {
                _ = obj.insert("immutable".into(), json!(v != 0))
            }
            ("v1", "ConfigMap", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", x, false)?,
            ("v1", "ConfigMap", 3, Field::Bytes(x)) => {
                insert_entry(&mut obj, "binaryData", x, true)?
            }
            ("v1", "Namespace" | "Secret" | "ConfigMap", _, _) => {}
            _ => {
                return Err(err(format!(
                    "protobuf bodies of {api_version} {kind} are not supported; send JSON (kubectl apply -f <manifest>)"
                )));
            }
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
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
    fn decodes_namespaces_and_configmaps_and_refuses_the_rest() {
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
        let e = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap_err();
        assert!(e.0.contains("apps/v1 Deployment"), "{e}");
        assert!(decode(b"not protobuf").is_err());
        assert!(
            decode(&[b"k8s\0".as_slice(), &[0x0a, 0x50]].concat()).is_err(),
            "truncated"
        );
    }
}

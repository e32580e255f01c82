//! Builds the protobuf schema of the Kubernetes API that the test API server decodes request
//! bodies with: a `FileDescriptorSet` derived from the `k8s-pb` crate's source (the prost
//! bindings it is generated as), written to `$OUT_DIR/k8s-pb-descriptor-set.bin`.
//!
//! Each module of k8s-pb is a proto package (`api::apps::v1` → `api.apps.v1`) and becomes one
//! file; each `#[derive(::prost::Message)]` struct a message of its name; each field a field of
//! the number, kind and label its `#[prost(...)]` attribute gives, named by the camelCase of its
//! Rust name (`pod_ip` → `podIp`: the proto name up to the capitals prost folds, which the
//! server's JSON step puts back). `btree_map` fields get their map entry message, and message
//! fields the type their Rust path names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::{env, fs};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet, MessageOptions,
};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let src = k8s_pb_src(&manifest_dir)?;
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../../Cargo.lock").display()
    );
    let mut modules = Vec::new();
    rust_files(&src, &mut modules)?;
    modules.sort();
    let mut set = FileDescriptorSet::default();
    for path in modules {
        let package = package_of(&src, &path)?;
        let text = fs::read_to_string(&path)?;
        let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(proto) = proto_file(&package, &file).map_err(|e| format!("{package}: {e}"))? {
            set.file.push(proto);
        }
    }
    if set.file.is_empty() {
        return Err(format!("no prost messages found under {}", src.display()).into());
    }
    let out = PathBuf::from(env::var("OUT_DIR")?).join("k8s-pb-descriptor-set.bin");
    fs::write(out, set.encode_to_vec())?;
    Ok(())
}

/// The `src` directory of the `k8s-pb` package this crate depends on, from `cargo metadata`.
fn k8s_pb_src(manifest_dir: &Path) -> Result<PathBuf, Error> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = env::var("TARGET")?;
    // Offline, and only this target's packages: the build has already fetched those, while
    // crates for other platforms may never have been downloaded on this machine.
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &target, "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed (needed to find the k8s-pb crate's source): {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-pb")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or(
            "cargo metadata lists no k8s-pb package: the protobuf schema is built from its source",
        )?;
    let src = Path::new(manifest).with_file_name("src");
    if !src.is_dir() {
        return Err(format!("k8s-pb's source is not at {}", src.display()).into());
    }
    Ok(src)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/api/apps/v1/mod.rs` → `api.apps.v1`; `src/lib.rs` → `` (the crate root).
fn package_of(src: &Path, path: &Path) -> Result<String, Error> {
    let rel = path.strip_prefix(src)?.with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    Ok(parts.join("."))
}

/// The file of one package, or `None` if the module defines no message.
fn proto_file(package: &str, file: &syn::File) -> Result<Option<FileDescriptorProto>, Error> {
    let mut messages = Vec::new();
    let mut imports = BTreeSet::new();
    for item in &file.items {
        match item {
            syn::Item::Struct(s) if derives_prost(&s.attrs, "Message") => {
                messages.push(message(package, s, &mut imports)?);
            }
            syn::Item::Mod(m) if m.content.is_some() => {
                return Err(
                    format!("nested module {} (nested types) is not supported", m.ident).into(),
                );
            }
            syn::Item::Enum(e)
                if derives_prost(&e.attrs, "Enumeration") || derives_prost(&e.attrs, "Oneof") =>
            {
                return Err(
                    format!("enum {} (enumerations, oneofs) is not supported", e.ident).into(),
                );
            }
            _ => {}
        }
    }
    if messages.is_empty() {
        return Ok(None);
    }
    imports.remove(package);
    Ok(Some(FileDescriptorProto {
        name: Some(file_name(package)),
        package: Some(package.into()),
        dependency: imports.iter().map(|p| file_name(p)).collect(),
        message_type: messages,
        syntax: Some("proto2".into()),
        ..Default::default()
    }))
}

fn file_name(package: &str) -> String {
    format!("{}.proto", package.replace('.', "/"))
}

/// Whether `attrs` hold `#[derive(..., ::prost::<derive>, ...)]`.
fn derives_prost(attrs: &[syn::Attribute], derive: &str) -> bool {
    let mut found = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        // A derive list is paths only; anything else is not a prost message's.
        let _ = attr.parse_nested_meta(|meta| {
            found |= meta.path.segments.last().is_some_and(|s| s.ident == derive)
                && meta.path.segments.iter().any(|s| s.ident == "prost");
            Ok(())
        });
    }
    found
}

fn message(
    package: &str,
    s: &syn::ItemStruct,
    imports: &mut BTreeSet<String>,
) -> Result<DescriptorProto, Error> {
    let name = s.ident.to_string();
    let mut out = DescriptorProto {
        name: Some(name.clone()),
        ..Default::default()
    };
    for field in &s.fields {
        let Some(attr) = field.attrs.iter().find(|a| a.path().is_ident("prost")) else {
            continue;
        };
        let ident = field.ident.as_ref().ok_or("tuple struct")?;
        let rust_name = ident.to_string();
        let field_name = camel(rust_name.trim_start_matches("r#"));
        let spec = Spec::parse(attr).map_err(|e| format!("{name}.{rust_name}: {e}"))?;
        let holds_message = spec.kind == "message"
            || spec
                .map
                .as_ref()
                .is_some_and(|(_, value)| value == "message");
        let type_name = if holds_message {
            message_type(package, &field.ty, imports)?
        } else {
            String::new()
        };
        let mut proto = FieldDescriptorProto {
            name: Some(field_name.clone()),
            json_name: Some(field_name.clone()),
            number: Some(spec.tag),
            label: Some(if spec.repeated {
                Label::Repeated
            } else {
                Label::Optional
            } as i32),
            ..Default::default()
        };
        if let Some((key, value)) = &spec.map {
            let entry = format!("{}Entry", upper_first(&field_name));
            out.nested_type
                .push(map_entry(&entry, key, value, &type_name)?);
            proto.label = Some(Label::Repeated as i32);
            proto.r#type = Some(Type::Message as i32);
            proto.type_name = Some(format!(".{package}.{name}.{entry}"));
        } else {
            set_kind(&mut proto, &spec.kind, &type_name)?;
        }
        out.field.push(proto);
    }
    Ok(out)
}

/// What a `#[prost(...)]` field attribute says.
struct Spec {
    kind: String,
    tag: i32,
    repeated: bool,
    /// `btree_map = "string, message"` → (`string`, `message`).
    map: Option<(String, String)>,
}

impl Spec {
    fn parse(attr: &syn::Attribute) -> Result<Spec, Error> {
        let (mut kind, mut tag, mut repeated, mut map) = (None, None, false, None);
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = if meta.input.peek(syn::Token![=]) {
                Some(meta.value()?.parse::<syn::LitStr>()?.value())
            } else {
                None
            };
            match (key.as_str(), value) {
                ("tag", Some(v)) => tag = v.parse().ok(),
                ("repeated", None) => repeated = true,
                ("optional" | "required" | "boxed" | "packed", _) => {}
                ("btree_map" | "hash_map" | "map", Some(v)) => {
                    let (k, v) = v.split_once(',').unwrap_or((&v, ""));
                    map = Some((k.trim().to_string(), v.trim().to_string()));
                }
                ("bytes", _) => kind = Some("bytes".to_string()),
                (other, None) => kind = Some(other.to_string()),
                (other, Some(_)) => return Err(meta.error(format!("unsupported `{other} = ...`"))),
            }
            Ok(())
        })?;
        Ok(Spec {
            kind: kind
                .or_else(|| map.as_ref().map(|_| "map".into()))
                .ok_or("no field kind")?,
            tag: tag.ok_or("no tag")?,
            repeated,
            map,
        })
    }
}

fn set_kind(proto: &mut FieldDescriptorProto, kind: &str, type_name: &str) -> Result<(), Error> {
    let t = match kind {
        "message" => {
            proto.type_name = Some(type_name.to_string());
            Type::Message
        }
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "bool" => Type::Bool,
        "int32" => Type::Int32,
        "int64" => Type::Int64,
        "uint32" => Type::Uint32,
        "uint64" => Type::Uint64,
        "sint32" => Type::Sint32,
        "sint64" => Type::Sint64,
        "fixed32" => Type::Fixed32,
        "fixed64" => Type::Fixed64,
        "sfixed32" => Type::Sfixed32,
        "sfixed64" => Type::Sfixed64,
        "float" => Type::Float,
        "double" => Type::Double,
        other => return Err(format!("unsupported field kind {other}").into()),
    };
    proto.r#type = Some(t as i32);
    Ok(())
}

fn map_entry(
    name: &str,
    key: &str,
    value: &str,
    value_type: &str,
) -> Result<DescriptorProto, Error> {
    let field = |name: &str, number, kind: &str| -> Result<FieldDescriptorProto, Error> {
        let mut f = FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            ..Default::default()
        };
        set_kind(&mut f, kind, value_type)?;
        Ok(f)
    };
    Ok(DescriptorProto {
        name: Some(name.into()),
        field: vec![field("key", 1, key)?, field("value", 2, value)?],
        options: Some(MessageOptions {
            map_entry: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The full proto name (`.api.apps.v1.DeploymentSpec`) of the type a field holds: the
/// innermost type argument (`Option<Box<T>>`, `Vec<T>`, `BTreeMap<String, T>`) resolved from
/// the module of `package`. Records the package it lives in.
fn message_type(
    package: &str,
    ty: &syn::Type,
    imports: &mut BTreeSet<String>,
) -> Result<String, Error> {
    let syn::Type::Path(path) = ty else {
        return Ok(String::new());
    };
    let last = path.path.segments.last().ok_or("empty type path")?;
    if let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.last()
    {
        return message_type(package, inner, imports);
    }
    if path.path.leading_colon.is_some() {
        return Ok(String::new());
    }
    let mut module: Vec<&str> = package.split('.').filter(|p| !p.is_empty()).collect();
    let mut names = Vec::new();
    for segment in &path.path.segments {
        match segment.ident.to_string().as_str() {
            "super" => {
                module.pop();
            }
            "self" => {}
            "crate" => module.clear(),
            other => names.push(other.to_string()),
        }
    }
    let name = names.pop().ok_or("type path without a name")?;
    let owner: Vec<String> = module.iter().map(|s| s.to_string()).chain(names).collect();
    let owner = owner.join(".");
    imports.insert(owner.clone());
    Ok(format!(".{owner}.{name}"))
}

/// `pod_ip` → `podIp`.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            out.push_str(&upper_first(part));
        }
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

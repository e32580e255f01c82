//! Validation the server does before storing an object: object names, and custom resources
//! against their CRD's `openAPIV3Schema` (through the operator's own schema validator, so the
//! test server and the operator agree on what the schema means). Failures become a 422
//! `Invalid` Status listing each field, the shape kubectl prints.

use jobqueue_operator::crd_validation::{self, FieldError, join_field_errors};
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::ResourceType;

/// The 422 for an object with bad fields: `JobQueue.jobqueue.io "x" is invalid: spec.a: ...`.
pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> ApiError {
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| {
            let text = e.to_string();
            let message = text
                .strip_prefix(&format!("{}: ", e.field))
                .unwrap_or(&text)
                .to_string();
            json!({"reason": e.kind.cause_type(), "message": message, "field": e.field})
        })
        .collect();
    ApiError::Invalid {
        message: format!(
            "{} \"{name}\" is invalid: {}",
            rt.qualified_kind(),
            join_field_errors(errors)
        ),
        details: json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
    }
}

const SUBDOMAIN_HELP: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_HELP: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks `metadata.name`: a DNS label for namespaces, a DNS subdomain for everything else.
pub fn name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let ok = if rt.plural == "namespaces" {
        dns_label(name)
    } else {
        name.len() <= 253 && name.split('.').all(dns_label)
    };
    if ok {
        return Ok(());
    }
    let help = if rt.plural == "namespaces" {
        LABEL_HELP
    } else {
        SUBDOMAIN_HELP
    };
    Err(invalid(
        rt,
        name,
        &[FieldError::invalid("metadata.name", name, help)],
    ))
}

/// Validates a custom resource's metadata (names, label and annotation keys and values) and
/// the rest against its version's schema, applying defaults (and pruning unknown fields unless
/// `strict`, where they are errors). Built-ins are not checked this way.
pub fn custom_resource(
    rt: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    strict: bool,
) -> Result<(), ApiError> {
    let Some(schema) = rt.schema.as_ref().filter(|_| rt.custom) else {
        return Ok(());
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errors = crd_validation::check_metadata(object);
    if let Err(e) = crd_validation::validate_and_default(schema, object, old, strict) {
        errors.extend(e);
    }
    if errors.is_empty() {
        return Ok(());
    }
    // As in the real server, strict decoding fails before validation runs (400, not 422).
    Err(match crd_validation::strict_decoding_message(&errors) {
        Some(m) => ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {m}",
            kind = rt.kind,
            v = rt.version
        )),
        None => invalid(rt, &name, &errors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    fn rt(plural: &str) -> ResourceType {
        builtins().into_iter().find(|r| r.plural == plural).unwrap()
    }

    #[test]
    fn names_follow_dns_rules() {
        assert!(name(&rt("secrets"), "a.b-c").is_ok());
        assert!(name(&rt("namespaces"), "team-a").is_ok());
        let e = name(&rt("namespaces"), "a.b").unwrap_err();
        assert_eq!(e.code(), 422);
        let e = name(&rt("secrets"), "Bad_Name").unwrap_err().status();
        assert_eq!(e["details"]["causes"][0]["field"], "metadata.name");
        assert!(e["message"].as_str().unwrap().starts_with(
            "Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ));
    }
}

//! The rules of a structural schema (apiextensions.k8s.io/v1 rejects a CRD whose
//! `openAPIV3Schema` breaks them), checked here so a generated CRD is known to install.

use serde_json::{Map, Value, json};

use super::{cel, defaults, lists, prune, schema, validate};

/// Every keyword of `JSONSchemaProps`; the API server silently drops anything else.
const KEYWORDS: &[&str] = &[
    "id",
    "$schema",
    "$ref",
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "externalDocs",
    "example",
    "nullable",
    schema::PRESERVE_UNKNOWN,
    schema::EMBEDDED_RESOURCE,
    schema::INT_OR_STRING,
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    schema::VALIDATIONS,
];

/// Keywords a CRD schema may not use at all.
const UNSUPPORTED: &[&str] = &[
    "id",
    "$schema",
    "$ref",
    "definitions",
    "dependencies",
    "additionalItems",
    "patternProperties",
];

/// Keywords that belong to the structural part only, never inside allOf/anyOf/oneOf/not.
const NOT_IN_JUNCTORS: &[&str] = &[
    "type",
    "description",
    "title",
    "default",
    "nullable",
    "additionalProperties",
    schema::PRESERVE_UNKNOWN,
    schema::EMBEDDED_RESOURCE,
    schema::INT_OR_STRING,
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    schema::VALIDATIONS,
];

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

/// The violations of the structural-schema rules in `schema` (a CRD version's
/// `openAPIV3Schema`), each as `<schema path>: <problem>`. Empty when the schema is structural.
pub fn check_structural(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let at = "openAPIV3Schema";
    match schema.as_object() {
        None => problems.push(format!("{at}: must be a schema object")),
        Some(_) => {
            if schema::type_of(schema) != Some("object") {
                problems.push(format!(
                    "{at}.type: Invalid value: must be object at the root"
                ));
            }
            node(schema, at, true, &mut problems);
        }
    }
    problems
}

/// One node of the structural part of the schema.
fn node(s: &Value, at: &str, resource: bool, problems: &mut Vec<String>) {
    let Some(map) = s.as_object() else {
        problems.push(format!("{at}: Invalid value: must be a schema object"));
        return;
    };
    common(map, at, problems);
    let int_or_string = schema::flag(s, schema::INT_OR_STRING);
    type_problems(s, map, at, int_or_string, problems);
    if resource {
        type_meta(s, at, problems);
    }
    lists::schema_problems(s, at, problems);
    if let Some(d) = map.get("default") {
        check_default(s, d, at, problems);
    }
    if let Some(rules) = map.get(schema::VALIDATIONS) {
        cel::rule_problems(rules, at, problems);
    }
    children(map, at, problems);
    junctors(s, map, at, int_or_string, problems);
}

/// The node's `type` against its extensions, and the keywords only some types may carry.
fn type_problems(
    s: &Value,
    map: &Map<String, Value>,
    at: &str,
    int_or_string: bool,
    problems: &mut Vec<String>,
) {
    let ty = schema::type_of(s);
    let preserve = map.get(schema::PRESERVE_UNKNOWN);
    if let Some(p) = preserve
        && p != &Value::Bool(true)
    {
        problems.push(format!(
            "{at}.{}: Invalid value: must be true or undefined",
            schema::PRESERVE_UNKNOWN
        ));
    }
    let preserve = preserve == Some(&Value::Bool(true));
    match ty {
        None if !int_or_string && !preserve => {
            problems.push(format!("{at}.type: Required value: must not be empty for specified object fields"))
        }
        Some(t) if !TYPES.contains(&t) => {
            problems.push(format!("{at}.type: Unsupported value: {t:?}: supported values: {}", quoted(TYPES)))
        }
        Some(_) if int_or_string => problems.push(format!(
            "{at}.type: Invalid value: must be empty if x-kubernetes-int-or-string is true"
        )),
        Some(t) if preserve && t != "object" => problems.push(format!(
            "{at}.type: Invalid value: must be object if x-kubernetes-preserve-unknown-fields is true"
        )),
        Some(t) if schema::flag(s, schema::EMBEDDED_RESOURCE) && t != "object" => {
            problems.push(format!("{at}.type: Invalid value: must be object if x-kubernetes-embedded-resource is true"))
        }
        _ => {}
    }
    if map.contains_key("items") && ty != Some("array") {
        problems.push(format!(
            "{at}.items: Forbidden: must only be used with type array"
        ));
    }
    if ty == Some("array") && !map.contains_key("items") {
        problems.push(format!(
            "{at}.items: Required value: must be specified for type array"
        ));
    }
    if (map.contains_key("properties") || map.contains_key("additionalProperties"))
        && !(ty == Some("object") || ty.is_none() && preserve)
    {
        problems.push(format!(
            "{at}.properties: Forbidden: must only be used with type object"
        ));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!("{at}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"));
    }
}

/// The structural children: `properties`, `items` and `additionalProperties`.
fn children(map: &Map<String, Value>, at: &str, problems: &mut Vec<String>) {
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, child) in props {
            let embedded = schema::flag(child, schema::EMBEDDED_RESOURCE);
            node(
                child,
                &format!("{at}.properties[{name}]"),
                embedded,
                problems,
            );
        }
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            problems.push(format!(
                "{at}.items: Forbidden: items must be a schema object, not an array"
            ));
        } else {
            node(
                items,
                &format!("{at}.items"),
                schema::flag(items, schema::EMBEDDED_RESOURCE),
                problems,
            );
        }
    }
    if let Some(add) = map.get("additionalProperties") {
        match add {
            Value::Bool(false) => problems.push(format!(
                "{at}.additionalProperties: Forbidden: must not be false"
            )),
            Value::Bool(true) => {}
            child => node(
                child,
                &format!("{at}.additionalProperties"),
                schema::flag(child, schema::EMBEDDED_RESOURCE),
                problems,
            ),
        }
    }
}

/// The `allOf`/`anyOf`/`oneOf`/`not` branches of the node `s`.
fn junctors(
    s: &Value,
    map: &Map<String, Value>,
    at: &str,
    int_or_string: bool,
    problems: &mut Vec<String>,
) {
    for key in ["allOf", "anyOf", "oneOf"] {
        let Some(branches) = map.get(key) else {
            continue;
        };
        let Some(branches) = branches.as_array() else {
            problems.push(format!(
                "{at}.{key}: Invalid value: must be a list of schemas"
            ));
            continue;
        };
        if int_or_string && is_int_or_string_pattern(key, branches) {
            continue;
        }
        for (i, b) in branches.iter().enumerate() {
            junctor(b, s, &format!("{at}.{key}[{i}]"), problems);
        }
    }
    if let Some(not) = map.get("not") {
        junctor(not, s, &format!("{at}.not"), problems);
    }
}

/// Checks shared by structural nodes and value validations.
fn common(map: &Map<String, Value>, at: &str, problems: &mut Vec<String>) {
    for key in map.keys() {
        if !KEYWORDS.contains(&key.as_str()) {
            problems.push(format!("{at}.{key}: Forbidden: not a keyword of JSONSchemaProps (the API server would drop it)"));
        } else if UNSUPPORTED.contains(&key.as_str()) {
            problems.push(format!(
                "{at}.{key}: Forbidden: {key} is not supported in CustomResourceDefinitions"
            ));
        }
    }
    if map.get("uniqueItems") == Some(&Value::Bool(true)) {
        problems.push(format!("{at}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"));
    }
    for key in ["exclusiveMinimum", "exclusiveMaximum"] {
        if map.get(key).is_some_and(|v| !v.is_boolean()) {
            problems.push(format!("{at}.{key}: Invalid value: must be a boolean (OpenAPI v3.0), used with minimum/maximum"));
        }
    }
    if let Some(p) = map.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(p)
    {
        problems.push(format!("{at}.pattern: Invalid value: {p:?}: {e}"));
    }
}

/// A value validation inside allOf/anyOf/oneOf/not: no structure of its own, and only fields the
/// structural part (`outer`) declares.
fn junctor(s: &Value, outer: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(map) = s.as_object() else {
        problems.push(format!("{at}: Invalid value: must be a schema object"));
        return;
    };
    common(map, at, problems);
    for key in NOT_IN_JUNCTORS {
        if map.contains_key(*key) {
            problems.push(format!(
                "{at}.{key}: Forbidden: must be empty to be structural"
            ));
        }
    }
    if let Some(props) = schema::properties(s) {
        for (name, child) in props {
            let child_at = format!("{at}.properties[{name}]");
            match schema::properties(outer).and_then(|p| p.get(name)) {
                Some(o) => junctor(child, o, &child_at, problems),
                None => problems.push(format!("{child_at}: Forbidden: must be specified in the structural part of the schema too")),
            }
        }
    }
    if let Some(items) = map.get("items") {
        match outer.get("items") {
            Some(o) => junctor(items, o, &format!("{at}.items"), problems),
            None => problems.push(format!(
                "{at}.items: Forbidden: must be specified in the structural part of the schema too"
            )),
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, b) in map
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            junctor(b, outer, &format!("{at}.{key}[{i}]"), problems);
        }
    }
    if let Some(not) = map.get("not") {
        junctor(not, outer, &format!("{at}.not"), problems);
    }
}

/// The one shape of types allowed inside a junctor: int-or-string's `anyOf: [integer, string]`.
fn is_int_or_string_pattern(key: &str, branches: &[Value]) -> bool {
    let pattern = [json!({"type": "integer"}), json!({"type": "string"})];
    match key {
        "anyOf" => branches == pattern,
        "allOf" => branches.iter().any(|b| {
            b.get("anyOf")
                .and_then(Value::as_array)
                .is_some_and(|a| a == &pattern)
        }),
        _ => false,
    }
}

/// At a resource root: apiVersion/kind are strings, and metadata may only restrict name and
/// generateName (the rest of ObjectMeta is implicit).
fn type_meta(s: &Value, at: &str, problems: &mut Vec<String>) {
    let props = schema::properties(s);
    for key in ["apiVersion", "kind"] {
        if let Some(p) = props.and_then(|p| p.get(key))
            && schema::type_of(p) != Some("string")
        {
            problems.push(format!(
                "{at}.properties[{key}].type: Invalid value: must be string"
            ));
        }
    }
    let Some(meta) = props.and_then(|p| p.get("metadata")) else {
        return;
    };
    if schema::type_of(meta) != Some("object") {
        problems.push(format!(
            "{at}.properties[metadata].type: Invalid value: must be object"
        ));
    }
    let allowed = ["type", "properties", "description"];
    for key in meta.as_object().into_iter().flat_map(|m| m.keys()) {
        if !allowed.contains(&key.as_str()) {
            problems.push(format!("{at}.properties[metadata].{key}: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"));
        }
    }
    for (name, p) in schema::properties(meta).into_iter().flatten() {
        if name != "name" && name != "generateName" {
            problems.push(format!("{at}.properties[metadata].properties[{name}]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"));
        } else if schema::type_of(p) != Some("string") {
            problems.push(format!(
                "{at}.properties[metadata].properties[{name}].type: Invalid value: must be string"
            ));
        }
    }
}

/// A default must be pruned already and, with its own nested defaults, valid against its schema.
fn check_default(s: &Value, default: &Value, at: &str, problems: &mut Vec<String>) {
    let mut holder = json!({ "default": default });
    let wrapper = json!({"type": "object", "properties": {"default": s}});
    for field in prune::prune(&wrapper, &mut holder) {
        problems.push(format!(
            "{at}.default: Invalid value: must not have unknown fields, found {field}"
        ));
    }
    defaults::apply(&wrapper, &mut holder);
    let mut out = validate::Outcome::default();
    validate::validate(s, &holder["default"], "default", false, &mut out);
    for e in out.errors {
        problems.push(format!("{at}.default: Invalid value: {e}"));
    }
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;

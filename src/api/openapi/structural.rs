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
    let ty = schema::type_of(s);
    let int_or_string = schema::flag(s, schema::INT_OR_STRING);
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
    if let Some(props) = schema::properties(s) {
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
mod tests {
    use super::*;

    /// A structural schema with `spec` replaced.
    fn with_spec(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    fn problems(spec: Value) -> Vec<String> {
        check_structural(&with_spec(spec))
    }

    fn assert_one(spec: Value, expected: &str) {
        let p = problems(spec);
        assert!(
            p.len() == 1 && p[0].contains(expected),
            "expected one problem containing {expected:?}, got {p:#?}"
        );
    }

    #[test]
    fn a_structural_schema_passes() {
        let spec = json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "string", "pattern": "^[a-z]+$", "default": "x"},
                "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"x-kubernetes-preserve-unknown-fields": true},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
                "l": {"type": "array", "items": {"type": "string"}},
                "o": {
                    "type": "object",
                    "default": {},
                    "properties": {"x": {"type": "integer", "default": 1}, "y": {"type": "integer"}},
                    "oneOf": [{"required": ["x"]}, {"required": ["y"], "properties": {"y": {"minimum": 1}}}],
                    "x-kubernetes-validations": [{"rule": "self.x >= 0", "message": "x"}]
                },
                "r": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": true,
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}
                }
            }
        });
        assert_eq!(problems(spec), Vec::<String>::new());
    }

    #[test]
    fn every_node_has_a_type() {
        assert_one(
            json!({"type": "object", "properties": {"a": {"description": "no type"}}}),
            "properties[a].type: Required value",
        );
        let root = check_structural(&json!({"properties": {}}));
        assert!(
            root.iter()
                .any(|p| p.contains("must be object at the root")),
            "{root:?}"
        );
        assert_one(json!({"type": "thing"}), "Unsupported value");
    }

    #[test]
    fn no_structure_inside_junctors() {
        assert_one(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"type": "object"}]}),
            "anyOf[0].type: Forbidden: must be empty to be structural",
        );
        assert_one(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "oneOf": [{"properties": {"a": {"default": "x"}}}]}),
            "oneOf[0].properties[a].default: Forbidden",
        );
        assert_one(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "not": {"description": "d"}}),
            "not.description: Forbidden",
        );
        assert_one(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "allOf": [{"properties": {"b": {"minLength": 1}}}]}),
            "allOf[0].properties[b]: Forbidden: must be specified in the structural part",
        );
    }

    #[test]
    fn items_properties_and_additional_properties_fit_the_type() {
        assert_one(json!({"type": "array"}), "items: Required value");
        assert_one(
            json!({"type": "string", "items": {"type": "string"}}),
            "items: Forbidden",
        );
        assert_one(
            json!({"type": "string", "properties": {}}),
            "properties: Forbidden",
        );
        assert_one(
            json!({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}),
            "mutual exclusive",
        );
        assert_one(
            json!({"type": "object", "additionalProperties": false}),
            "must not be false",
        );
        assert_one(
            json!({"type": "array", "items": [{"type": "string"}]}),
            "items must be a schema object",
        );
    }

    #[test]
    fn extension_rules() {
        assert_one(
            json!({"type": "string", "x-kubernetes-int-or-string": true}),
            "must be empty if x-kubernetes-int-or-string",
        );
        assert_one(
            json!({"type": "string", "x-kubernetes-preserve-unknown-fields": true}),
            "must be object if x-kubernetes-preserve-unknown-fields",
        );
        assert_one(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
            "must be true or undefined",
        );
        assert_one(
            json!({"type": "string", "x-kubernetes-embedded-resource": true}),
            "must be object if x-kubernetes-embedded-resource",
        );
    }

    #[test]
    fn list_and_map_types() {
        let good = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "conds": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}
            },
            "opaque": {"type": "object", "x-kubernetes-map-type": "atomic", "x-kubernetes-preserve-unknown-fields": true}
        }});
        assert_eq!(problems(good), Vec::<String>::new());
        assert_one(
            json!({"type": "string", "x-kubernetes-list-type": "set"}),
            "must only be used if type is array",
        );
        assert_one(
            json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}),
            "Unsupported value",
        );
        assert_one(
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object", "properties": {}}}),
            "must only be scalars or atomic",
        );
        assert_one(
            json!({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {}}}),
            "x-kubernetes-list-map-keys: Required value",
        );
        assert_one(
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
            "must be required or have a default",
        );
        assert_one(
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["nope"],
                   "items": {"type": "object", "properties": {}}}),
            "entries must all be names of item properties",
        );
        assert_one(
            json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-map-keys": ["a"]}),
            "must only be used if x-kubernetes-list-type is map",
        );
        assert_one(
            json!({"type": "object", "x-kubernetes-map-type": "loose"}),
            "Unsupported value",
        );
    }

    #[test]
    fn unsupported_keywords() {
        assert_one(
            json!({"type": "object", "$ref": "#/definitions/x"}),
            "$ref is not supported",
        );
        assert_one(
            json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}),
            "uniqueItems cannot be set to true",
        );
        assert_one(
            json!({"type": "integer", "exclusiveMinimum": 3}),
            "must be a boolean",
        );
        assert_one(
            json!({"type": "string", "const": "x"}),
            "not a keyword of JSONSchemaProps",
        );
        assert_one(
            json!({"type": "string", "pattern": "("}),
            "pattern: Invalid value",
        );
    }

    #[test]
    fn metadata_only_restricts_name_and_generate_name() {
        let schema = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
        }});
        let p = check_structural(&schema);
        assert!(
            p.len() == 1 && p[0].contains("anything other than name and generateName"),
            "{p:?}"
        );
        let ok = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 63}}}
        }});
        assert_eq!(check_structural(&ok), Vec::<String>::new());
    }

    #[test]
    fn defaults_must_be_pruned_and_valid() {
        assert_one(
            json!({"type": "integer", "minimum": 1, "default": 0}),
            "default: Invalid value",
        );
        assert_one(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "default": {"b": 1}}),
            "must not have unknown fields, found default.b",
        );
        // Nested defaults count: `{}` becomes `{"a": "x"}`, which satisfies `required`.
        assert_eq!(
            problems(
                json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "default": "x"}}, "default": {}})
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn cel_rules_must_compile() {
        assert_one(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a >"}]}),
            "x-kubernetes-validations[0].rule: Invalid value",
        );
        assert_one(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "kind == 'JobQueue'"}]}),
            "undeclared reference to 'kind'",
        );
        assert_eq!(
            problems(json!({
                "type": "array",
                "items": {"type": "integer"},
                "x-kubernetes-validations": [
                    {"rule": "self.all(x, x > 0) && self.exists(y, y == 1) && self.map(z, z * 2).size() > 0"},
                    {"rule": "self.exists_one(x, x == 1) && self.filter(x, x > 1).all(x, x < 9)"},
                    {"rule": "sets.contains(self, [1]) && math.greatest(1, 2) == 2 && type(self) == list"},
                    {"rule": "[1].all(x, [2].exists(y, x < y)) && {'a': 1}['a'] == 1 && duration('1s') < duration('2s')"},
                    {"rule": "quantity('1Gi').isGreaterThan(quantity('1Mi')) && 'a'.matches('^a$') && string(1) == '1'"},
                    {"rule": "self == oldSelf"}
                ]
            })),
            Vec::<String>::new()
        );
        assert_one(
            json!({"type": "object", "x-kubernetes-validations": [{"message": "no rule"}]}),
            "rule: Required value",
        );
    }
}

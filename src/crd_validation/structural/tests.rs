//! Each structural-schema rule, met and broken.

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

//! The generated CRDs against the OpenAPI validator: they are structural schemas, every example
//! manifest is accepted as a cluster would accept it, and every bad manifest under
//! `examples/bad/` is rejected naming the field its `# expect: <field>` comment names.

use std::path::{Path, PathBuf};

use jobqueue_operator::api::{self, JobQueue, Schedule, openapi::validate_resource};
use jobqueue_operator::crd_validation::{check_structural, crd_schema, validate_and_default};
use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.yaml`/`*.yml` under `dir`, recursively, skipping `skip`.
fn yaml_files(dir: &Path, skip: Option<&Path>, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if Some(path.as_path()) == skip {
            continue;
        }
        if path.is_dir() {
            yaml_files(&path, skip, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The documents of a (multi-document) YAML file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn our_kind(doc: &Value) -> bool {
    matches!(
        doc.get("kind").and_then(Value::as_str),
        Some("JobQueue" | "Schedule")
    )
}

fn schema_of(crd: &impl serde::Serialize) -> Value {
    let crd = serde_json::to_value(crd).expect("CRD serializes");
    crd_schema(&crd, api::VERSION)
        .expect("the CRD serves v1alpha1")
        .clone()
}

#[test]
fn generated_crds_are_structural() {
    for (name, schema) in [
        ("JobQueue", schema_of(&JobQueue::crd())),
        ("Schedule", schema_of(&Schedule::crd())),
    ] {
        let problems = check_structural(&schema);
        assert!(
            problems.is_empty(),
            "the {name} CRD schema is not structural:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn committed_crd_files_are_structural() {
    for file in ["crds/jobqueue.yaml", "crds/schedule.yaml"] {
        let docs = documents(&root().join(file));
        assert_eq!(docs.len(), 1, "{file} holds one CRD");
        let versions = docs[0]
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .expect("spec.versions");
        assert!(!versions.is_empty());
        for v in versions {
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .expect("a schema per version");
            let problems = check_structural(schema);
            assert!(
                problems.is_empty(),
                "{file} is not structural:\n{}",
                problems.join("\n")
            );
        }
    }
}

#[test]
fn every_example_manifest_validates_and_reads_back_as_the_typed_resource() {
    let examples = root().join("examples");
    let mut files = Vec::new();
    yaml_files(&examples, Some(&examples.join("bad")), &mut files);
    let mut checked = 0;
    for file in &files {
        for doc in documents(file).into_iter().filter(our_kind) {
            let name = format!(
                "{} {}/{}",
                file.display(),
                doc["kind"],
                doc["metadata"]["name"]
            );
            let mut defaulted = doc.clone();
            if let Err(errors) = validate_resource(&mut defaulted) {
                panic!("{name} is rejected: {}", api::join_field_errors(&errors));
            }
            // Schema defaults and serde defaults must agree, or the operator would read something
            // else than what the API server stores.
            match doc["kind"].as_str() {
                Some("JobQueue") => assert_eq!(
                    typed::<JobQueue>(&doc, &name),
                    typed::<JobQueue>(&defaulted, &name),
                    "{name}"
                ),
                _ => assert_eq!(
                    typed::<Schedule>(&doc, &name),
                    typed::<Schedule>(&defaulted, &name),
                    "{name}"
                ),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the examples to hold JobQueues and Schedules, found {checked} in {files:?}"
    );
}

fn typed<T: serde::de::DeserializeOwned>(doc: &Value, name: &str) -> T {
    serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{name} does not deserialize: {e}"))
}

/// The `# expect: <field>` lines at the top of a bad manifest.
fn expected_fields(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("readable")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# expect:"))
        .map(|f| f.trim().to_string())
        .collect()
}

#[test]
fn every_bad_manifest_is_rejected_naming_the_field() {
    let mut files = Vec::new();
    yaml_files(&root().join("examples/bad"), None, &mut files);
    assert!(
        files.len() >= 10,
        "expected one bad manifest per rule, found {}",
        files.len()
    );
    for file in &files {
        let expected = expected_fields(file);
        assert!(
            !expected.is_empty(),
            "{} has no `# expect: <field>` line",
            file.display()
        );
        let docs = documents(file);
        assert_eq!(docs.len(), 1, "{} should hold one resource", file.display());
        let mut doc = docs[0].clone();
        let errors = match validate_resource(&mut doc) {
            Ok(()) => panic!("{} was accepted", file.display()),
            Err(e) => e,
        };
        println!("{}: {}", file.display(), api::join_field_errors(&errors));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in &expected {
            assert!(
                fields.contains(&field.as_str()),
                "{}: expected an error on {field}, got: {}",
                file.display(),
                api::join_field_errors(&errors)
            );
        }
    }
}

fn jobqueue(spec: Value) -> Value {
    json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue", "metadata": {"name": "q", "namespace": "default"}, "spec": spec})
}

#[test]
fn a_minimal_jobqueue_gets_the_documented_defaults() {
    let mut q = jobqueue(json!({"redis": {"url": "redis://127.0.0.1:6379"}}));
    validate_resource(&mut q).expect("valid");
    let spec = &q["spec"];
    assert_eq!(spec["consumerGroup"], json!("workers"));
    assert_eq!(spec["startFrom"], json!("Latest"));
    assert_eq!(spec["deletionPolicy"], json!("Retain"));
    assert_eq!(spec["delivery"]["visibilityTimeout"], json!("5m"));
    assert_eq!(spec["delivery"]["maxDeliveries"], json!(5));
}

#[test]
fn errors_read_like_the_api_server() {
    let mut q = jobqueue(json!({
        "redis": {"url": "redis://127.0.0.1:6379"},
        "workers": {"scaleTargetRef": {"name": "w"}},
        "scaling": {"maxReplicas": 3, "metric": "Fast"}
    }));
    let errors = validate_resource(&mut q).unwrap_err();
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"spec.scaling.metric: Unsupported value: "Fast": supported values: "Backlog", "Lag", "Pending""#,
            // An unsupported enum value stops the CEL rules, and the API server says so.
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );

    let mut q = jobqueue(json!({
        "redis": {"url": "redis://127.0.0.1:6379"},
        "workers": {"scaleTargetRef": {"name": "w"}},
        "scaling": {"minReplicas": 5, "maxReplicas": 2}
    }));
    let errors = validate_resource(&mut q).unwrap_err();
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            r#"spec.scaling.maxReplicas: Invalid value: "integer": maxReplicas must be greater than or equal to minReplicas"#
        ]
    );
}

#[test]
fn transition_rules_see_the_old_object() {
    // The generated schema with a hand-added immutability rule: transition rules are evaluated
    // only on update, against the stored object.
    let mut schema = schema_of(&JobQueue::crd());
    schema["properties"]["spec"]["properties"]["consumerGroup"]["x-kubernetes-validations"] =
        json!([{"rule": "self == oldSelf", "message": "consumerGroup is immutable"}]);
    let old = jobqueue(json!({"redis": {"url": "redis://r"}, "consumerGroup": "a"}));
    let mut new = jobqueue(json!({"redis": {"url": "redis://r"}, "consumerGroup": "b"}));
    validate_and_default(&schema, &mut new.clone(), None, true).expect("a create has no oldSelf");
    let errors = validate_and_default(&schema, &mut new, Some(&old), true).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        r#"spec.consumerGroup: Invalid value: "string": consumerGroup is immutable"#
    );
}

#[test]
fn kind_api_version_and_name_are_checked() {
    let mut other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(validate_resource(&mut other).unwrap_err()[0].field, "kind");
    let mut q = jobqueue(json!({}));
    q["apiVersion"] = json!("jobqueue.io/v9");
    assert_eq!(
        validate_resource(&mut q).unwrap_err()[0].field,
        "apiVersion"
    );
    let mut q = jobqueue(json!({}));
    q["metadata"]["name"] = json!("Not_A_Name");
    assert_eq!(
        validate_resource(&mut q).unwrap_err()[0].field,
        "metadata.name"
    );
}

#[test]
fn status_in_a_manifest_is_ignored_on_create() {
    let mut q = jobqueue(json!({"redis": {"url": "redis://r"}}));
    q["status"] = json!({"lag": "not a number"});
    validate_resource(&mut q).expect("status is not validated on create");
    assert!(q.get("status").is_none());
}

#[test]
fn bounds_are_enforced_by_the_schema() {
    let scaling = |poll: &str| {
        jobqueue(json!({
            "redis": {"url": "redis://r"},
            "workers": {"scaleTargetRef": {"name": "w"}},
            "scaling": {"maxReplicas": 2, "pollInterval": poll}
        }))
    };
    for (poll, ok) in [
        ("100ms", true),
        ("0.1s", true),
        ("99ms", false),
        ("1ns", false),
    ] {
        let r = validate_resource(&mut scaling(poll));
        assert_eq!(r.is_ok(), ok, "pollInterval {poll}: {r:?}");
    }
    for (age, ok) in [("87600h", true), ("87601h", false)] {
        let mut q = jobqueue(json!({"redis": {"url": "redis://r"}, "retention": {"maxAge": age}}));
        let r = validate_resource(&mut q);
        assert_eq!(r.is_ok(), ok, "maxAge {age}: {r:?}");
    }
}

#[test]
fn every_duration_the_pattern_allows_passes_the_cel_rules_too() {
    // Not "10µs": DURATION_PATTERN allows it and the API server's CEL parses it, but the cel
    // crate's duration() does not, so it would be rejected here (reported to the CRD owner).
    for d in [
        "1s",
        "5m",
        "1h30m",
        "1.5h",
        "250ms",
        "0.5s",
        "10us",
        "1ns",
        "2h45m30.5s",
    ] {
        // pollInterval has a 100ms floor of its own (bounds_are_enforced_by_the_schema).
        let mut q = jobqueue(json!({
            "redis": {"url": "redis://r"},
            "delivery": {"visibilityTimeout": d},
            "retention": {"maxAge": d},
            "workers": {"scaleTargetRef": {"name": "w"}},
            "scaling": {"maxReplicas": 2, "cooldown": d}
        }));
        if let Err(e) = validate_resource(&mut q) {
            panic!("{d}: {}", api::join_field_errors(&e));
        }
    }
}

/// Every combination of present-but-empty optional sections: the API server's schema defaults
/// and the operator's serde defaults must give the same typed resource, or the operator would act
/// on something else than what the cluster stores.
#[test]
fn schema_defaults_and_serde_defaults_agree_for_every_section_combination() {
    let redis = [
        json!({"url": "redis://r"}),
        json!({"urlSecretRef": {"name": "s", "key": "url"}}),
        json!({"url": "rediss://r", "tls": {}}),
    ];
    let delivery = [None, Some(json!({})), Some(json!({"retryBackoff": {}}))];
    let scaling = [
        None,
        Some(json!({"maxReplicas": 2})),
        Some(json!({"maxReplicas": 2, "scaleDown": {}, "scaleUp": {}})),
    ];
    let workers = [
        json!({"scaleTargetRef": {"name": "w"}}),
        json!({"template": {"spec": {"containers": [{"name": "w", "image": "w"}]}}}),
    ];
    let dead_letter = [None, Some(json!({}))];
    let retention = [None, Some(json!({"maxLength": 10}))];
    let mut checked = 0;
    for r in &redis {
        for d in &delivery {
            for s in &scaling {
                for w in &workers {
                    for dl in &dead_letter {
                        for rt in &retention {
                            let mut spec = json!({"redis": r, "workers": w});
                            for (key, v) in [
                                ("delivery", d),
                                ("scaling", s),
                                ("deadLetter", dl),
                                ("retention", rt),
                            ] {
                                if let Some(v) = v {
                                    spec[key] = v.clone();
                                }
                            }
                            let raw = jobqueue(spec);
                            let mut defaulted = raw.clone();
                            if let Err(e) = validate_resource(&mut defaulted) {
                                panic!("{raw} is rejected: {}", api::join_field_errors(&e));
                            }
                            let name = raw.to_string();
                            assert_eq!(
                                typed::<JobQueue>(&raw, &name),
                                typed::<JobQueue>(&defaulted, &name),
                                "{name}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 3 * 2 * 2 * 2);

    for spec in [
        json!({"schedule": "* * * * *", "queueRef": {"name": "q"}}),
        json!({"schedule": "@hourly", "queueRef": {"name": "q"}, "payload": {}, "suspend": true}),
    ] {
        let raw = json!({"apiVersion": "jobqueue.io/v1alpha1", "kind": "Schedule", "metadata": {"name": "s"}, "spec": spec});
        let mut defaulted = raw.clone();
        validate_resource(&mut defaulted).expect("valid schedule");
        let name = raw.to_string();
        assert_eq!(
            typed::<Schedule>(&raw, &name),
            typed::<Schedule>(&defaulted, &name),
            "{name}"
        );
    }
}

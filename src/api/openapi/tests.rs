//! The validator on our own CRDs' schema: whatever the input, an answer (no panic), and what
//! it accepts is a fixpoint.

use kube::CustomResourceExt;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::crd_validation::{FieldError, FieldErrorKind, crd_schema, validate_and_default};

fn jobqueue_schema() -> Value {
    let crd = serde_json::to_value(crate::api::JobQueue::crd()).expect("CRD serializes");
    crd_schema(&crd, crate::api::VERSION)
        .expect("served version")
        .clone()
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..12).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-2.0f64..3.0).prop_map(Value::from),
        prop::sample::select(vec![
            "5m",
            "0s",
            "1h30m",
            "Lag",
            "Fast",
            "redis://r",
            "",
            "x y",
            "w"
        ])
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "url",
        "name",
        "key",
        "maxReplicas",
        "minReplicas",
        "metric",
        "template",
        "spec",
        "containers",
        "scaleTargetRef",
        "maxLength",
        "maxAge",
        "foo",
    ]);
    leaf().prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn overrides() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    let paths = prop::sample::select(vec![
        "/spec/redis",
        "/spec/redis/url",
        "/spec/scaling",
        "/spec/scaling/maxReplicas",
        "/spec/scaling/minReplicas",
        "/spec/scaling/metric",
        "/spec/workers",
        "/spec/workers/scaleTargetRef",
        "/spec/delivery",
        "/spec/delivery/visibilityTimeout",
        "/spec/retention",
        "/spec/foo",
        "/spec/consumerGroup",
        "/spec/deadLetter",
        "/spec",
    ]);
    prop::collection::vec((paths, value()), 0..4)
}

fn build(overrides: &[(&str, Value)]) -> Value {
    let mut obj = json!({
        "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue", "metadata": {"name": "q"},
        "spec": {
            "redis": {"url": "redis://r"},
            "workers": {"scaleTargetRef": {"name": "w"}},
            "scaling": {"maxReplicas": 3}
        }
    });
    for (path, v) in overrides {
        let (parent, key) = path.rsplit_once('/').expect("absolute pointer");
        if let Some(Value::Object(m)) = obj.pointer_mut(parent) {
            m.insert(key.to_string(), v.clone());
        }
    }
    obj
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the input, the validator answers (no panic); what it accepts it stores in a
    /// form it accepts again unchanged, with no unknown field left.
    #[test]
    fn accepted_objects_are_a_fixpoint(ov in overrides()) {
        let schema = jobqueue_schema();
        let mut obj = build(&ov);
        if validate_and_default(&schema, &mut obj, None, false).is_ok() {
            let mut again = obj.clone();
            prop_assert!(validate_and_default(&schema, &mut again, None, true).is_ok(), "{obj}");
            prop_assert_eq!(&again, &obj);
        }
    }

    /// Strict validation rejects exactly what non-strict validation would prune (plus what
    /// both reject).
    #[test]
    fn strict_differs_only_by_unknown_fields(ov in overrides()) {
        let schema = jobqueue_schema();
        let strict = validate_and_default(&schema, &mut build(&ov), None, true);
        let lenient = validate_and_default(&schema, &mut build(&ov), None, false);
        let without_unknown = |r: Result<(), Vec<FieldError>>| -> Vec<FieldError> {
            r.err().unwrap_or_default().into_iter().filter(|e| e.kind != FieldErrorKind::Unknown).collect()
        };
        prop_assert_eq!(without_unknown(strict), without_unknown(lenient));
    }
}

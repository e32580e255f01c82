//! The plan from manifests: YAML in, plan or field errors out. One fixture per rule the
//! planning step enforces (the schema's own rules are tested in `api::openapi`).

use super::*;
use crate::api::{JobQueue, Schedule};
use crate::queue::schedules::ConcurrencyPolicy;
use crate::schedule::MisfirePolicy;

const DEFAULT_URL: &str = "redis://default:6379";

fn jobqueue_yaml(spec: &str) -> JobQueue {
    let yaml = format!(
        "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata: {{name: emails, namespace: team-a}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("fixture parses: {e}\n{yaml}"))
}

fn schedule_yaml(spec: &str) -> Schedule {
    let yaml = format!(
        "apiVersion: jobqueue.io/v1alpha1\nkind: Schedule\nmetadata: {{name: nightly, namespace: team-a, generation: 4}}\nspec:\n{spec}"
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("fixture parses: {e}\n{yaml}"))
}

fn inputs() -> QueueInputs {
    QueueInputs {
        redis: RedisInputs {
            default_url: DEFAULT_URL.into(),
            ..Default::default()
        },
        scale_target: None,
    }
}

fn plan_of(spec: &str) -> Result<QueuePlan, PlanError> {
    jobqueue(&jobqueue_yaml(spec), &inputs())
}

/// The fields named by an `Invalid` plan error.
fn invalid_fields(r: Result<QueuePlan, PlanError>) -> Vec<String> {
    match r {
        Err(PlanError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn a_plain_queue_plans_with_the_defaults() {
    let plan = plan_of("  {}\n").unwrap();
    assert_eq!(plan.config.stream(), "jobqueue:{team-a/emails}");
    assert_eq!(plan.config.group, "workers");
    assert_eq!(plan.scaling, None);
    assert_eq!(plan.workers, WorkersPlan::None);
    assert_eq!(plan.redis.url, DEFAULT_URL);
    assert_eq!(plan.redis.source, UrlSource::Default);
    assert!(plan.redis.tls.is_default());
}

/// Each spec plans to exactly one field error, on the field given.
fn assert_fields(cases: &[(&str, &str)]) {
    for (spec, field) in cases {
        let fields = invalid_fields(plan_of(spec));
        assert_eq!(fields, vec![field.to_string()], "{spec}");
    }
}

#[test]
fn every_semantic_rule_names_its_field() {
    let template =
        "  workers:\n    template:\n      spec:\n        containers: [{name: w, image: w}]\n";
    assert_fields(&[
        ("  redis: {url: 'mysql://db'}\n", "spec.redis.url"),
        ("  stream: 'has space'\n", "spec.stream"),
        (
            "  deadLetter: {stream: 'jobqueue:{team-a/emails}'}\n",
            "spec.deadLetter.stream",
        ),
        (
            "  deadLetter: {stream: elsewhere}\n",
            "spec.deadLetter.stream",
        ),
        (
            "  delivery: {retryBackoff: {initial: 10s, max: 1s}}\n",
            "spec.delivery.retryBackoff.max",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 2, pollInterval: 0s}}\n"),
            "spec.scaling.pollInterval",
        ),
        (
            "  workers:\n    template:\n      spec:\n        containers: []\n",
            "spec.workers.template.spec.containers",
        ),
        (
            "  workers:\n    template:\n      spec:\n        containers: [{name: w, env: [{name: JOBQUEUE_STREAM, value: x}]}]\n",
            "spec.workers.template.spec.containers[0].env[0].name",
        ),
    ]);
}

#[test]
fn every_engine_and_scaling_rule_names_its_field() {
    let template =
        "  workers:\n    template:\n      spec:\n        containers: [{name: w, image: w}]\n";
    assert_fields(&[
        (
            "  delivery: {maxDeliveries: 0}\n",
            "spec.delivery.maxDeliveries",
        ),
        (
            "  delivery: {maxDeliveries: -1}\n",
            "spec.delivery.maxDeliveries",
        ),
        (
            "  delivery: {visibilityTimeout: 0s}\n",
            "spec.delivery.visibilityTimeout",
        ),
        (
            "  delivery: {retryBackoff: {multiplier: 0.5}}\n",
            "spec.delivery.retryBackoff.multiplier",
        ),
        ("  consumerGroup: ''\n", "spec.consumerGroup"),
        ("  stream: 'odd}key'\n", "spec.stream"),
        ("  retention: {maxLength: -3}\n", "spec.retention.maxLength"),
        (
            "  deadLetter: {maxLength: -3}\n",
            "spec.deadLetter.maxLength",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 0}}\n"),
            "spec.scaling",
        ),
        (
            &format!("{template}  scaling: {{minReplicas: 3, maxReplicas: 2}}\n"),
            "spec.scaling",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 2, targetPerReplica: 0}}\n"),
            "spec.scaling",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 2, scaleUp: {{maxStep: 0}}}}\n"),
            "spec.scaling",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 2, scaleDown: {{maxStep: 0}}}}\n"),
            "spec.scaling",
        ),
        (
            &format!("{template}  scaling: {{maxReplicas: 2, metric: Pending}}\n"),
            "spec.scaling",
        ),
    ]);
}

#[test]
fn scaling_and_workers_are_planned() {
    let plan = plan_of(
        "  workers:\n    template:\n      spec:\n        containers: [{name: w, image: w}]\n  scaling: {maxReplicas: 4, pollInterval: 250ms}\n",
    )
    .unwrap();
    let scaling = plan.scaling.expect("scaling");
    assert_eq!(scaling.policy.max_replicas, 4);
    assert_eq!(scaling.poll_interval, std::time::Duration::from_millis(250));
    assert_eq!(plan.workers, WorkersPlan::Managed);
    let plan = plan_of("  workers: {scaleTargetRef: {name: thumbs}}\n").unwrap();
    match plan.workers {
        WorkersPlan::Referenced(t) => {
            assert_eq!((t.kind.as_str(), t.name.as_str()), ("Deployment", "thumbs"))
        }
        other => panic!("expected a referenced target, got {other:?}"),
    }
}

#[test]
fn redis_url_precedence_plain_then_secret_then_default() {
    let plan = plan_of("  redis: {url: 'redis://plain:6379'}\n").unwrap();
    assert_eq!(
        (plan.redis.url.as_str(), plan.redis.source),
        ("redis://plain:6379", UrlSource::Plain)
    );
    let jq = jobqueue_yaml("  redis: {urlSecretRef: {name: redis, key: url}}\n");
    let mut found = inputs();
    found.redis.url_secret = Some(SecretValue::Found(b" redis://secret:6379\n".to_vec()));
    let plan = jobqueue(&jq, &found).unwrap();
    assert_eq!(plan.redis.url, "redis://secret:6379");
    assert_eq!(
        plan.redis.source,
        UrlSource::Secret {
            name: "redis".into(),
            key: "url".into()
        }
    );
}

#[test]
fn secret_problems_are_named() {
    let jq = jobqueue_yaml("  redis: {urlSecretRef: {name: redis, key: url}}\n");
    let with = |v: SecretValue| {
        let mut i = inputs();
        i.redis.url_secret = Some(v);
        jobqueue(&jq, &i).unwrap_err()
    };
    let e = with(SecretValue::Missing(MissingSecret::NotFound {
        name: "redis".into(),
        namespace: "team-a".into(),
    }));
    assert_eq!(
        e.to_string(),
        "Secret \"redis\" not found in namespace \"team-a\" (spec.redis.urlSecretRef.name)"
    );
    let e = with(SecretValue::Missing(MissingSecret::KeyMissing {
        name: "redis".into(),
        key: "url".into(),
    }));
    assert_eq!(
        e.to_string(),
        "Secret \"redis\" has no key \"url\" (spec.redis.urlSecretRef.key)"
    );
    assert!(matches!(
        with(SecretValue::Found(vec![0xff, 0xfe])),
        PlanError::SecretNotText { .. }
    ));
    let e = with(SecretValue::Found(b"http://user:hunter2@host".to_vec()));
    assert!(matches!(e, PlanError::InvalidRedisUrl(_)), "{e:?}");
    assert!(e.to_string().contains("spec.redis.urlSecretRef"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // A key holding a bare password or token: nothing of it is shown.
    for value in ["s3cr3t-Passw0rd", "redis://", "rediss://:tok3n@"] {
        let e = with(SecretValue::Found(value.as_bytes().to_vec()));
        assert!(matches!(e, PlanError::InvalidRedisUrl(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("spec.redis.urlSecretRef"), "{text}");
        for secret in ["s3cr3t", "tok3n"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn the_insecure_fragment_needs_insecure_skip_verify() {
    let plain = jobqueue_yaml("  redis: {url: 'rediss://r:6380#insecure'}\n");
    let e = jobqueue(&plain, &inputs()).unwrap_err().to_string();
    assert!(
        e.contains("spec.redis.url") && e.contains("insecureSkipVerify"),
        "{e}"
    );
    let allowed = jobqueue_yaml(
        "  redis:\n    url: 'rediss://r:6380#insecure'\n    tls: {insecureSkipVerify: true}\n",
    );
    assert!(jobqueue(&allowed, &inputs()).is_ok());

    let secret = jobqueue_yaml("  redis: {urlSecretRef: {name: redis, key: url}}\n");
    let mut i = inputs();
    i.redis.url_secret = Some(SecretValue::Found(b"rediss://:pw@r:6380#insecure".to_vec()));
    let e = jobqueue(&secret, &i).unwrap_err().to_string();
    assert!(
        e.contains("spec.redis.urlSecretRef") && !e.contains("pw@"),
        "{e}"
    );
}

#[test]
fn tls_comes_from_the_ca_secret() {
    let jq = jobqueue_yaml(
        "  redis:\n    url: 'rediss://r:6380'\n    tls: {caSecretRef: {name: ca, key: ca.crt}, insecureSkipVerify: true}\n",
    );
    let mut found = inputs();
    found.redis.ca_secret = Some(SecretValue::Found(b"PEM".to_vec()));
    let plan = jobqueue(&jq, &found).unwrap();
    assert_eq!(plan.redis.tls.ca_pem.as_deref(), Some(&b"PEM"[..]));
    assert!(plan.redis.tls.insecure_skip_verify);
    found.redis.ca_secret = Some(SecretValue::Missing(MissingSecret::NotFound {
        name: "ca".into(),
        namespace: "team-a".into(),
    }));
    let e = jobqueue(&jq, &found).unwrap_err();
    assert!(
        e.to_string().ends_with("(spec.redis.tls.caSecretRef.name)"),
        "{e}"
    );
}

#[test]
fn without_secrets_the_default_redis_is_used_and_said_so() {
    let jq = jobqueue_yaml(
        "  redis:\n    urlSecretRef: {name: redis, key: url}\n    tls: {caSecretRef: {name: ca, key: ca.crt}, insecureSkipVerify: true}\n",
    );
    let plan = jobqueue(&jq, &inputs()).unwrap();
    assert_eq!(plan.redis.url, DEFAULT_URL);
    assert_eq!(plan.redis.source, UrlSource::Default);
    assert_eq!(plan.redis.tls.ca_pem, None);
    assert!(plan.redis.tls.insecure_skip_verify);
    assert_eq!(plan.redis.notes.len(), 1);
    assert!(
        plan.redis.notes[0].starts_with("spec.redis.urlSecretRef names a Kubernetes Secret"),
        "{:?}",
        plan.redis.notes
    );
}

#[test]
fn a_missing_scale_target_is_reported_after_the_url() {
    let jq = jobqueue_yaml("  workers: {scaleTargetRef: {name: thumbs}}\n");
    let mut found = inputs();
    found.scale_target = Some(Err("scaleTargetRef Deployment \"thumbs\": not found".into()));
    assert_eq!(
        jobqueue(&jq, &found).unwrap_err(),
        PlanError::ScaleTargetNotFound("scaleTargetRef Deployment \"thumbs\": not found".into())
    );
    found.scale_target = Some(Ok(()));
    assert!(jobqueue(&jq, &found).is_ok());
    let jq = jobqueue_yaml(
        "  redis: {urlSecretRef: {name: redis, key: url}}\n  workers: {scaleTargetRef: {name: thumbs}}\n",
    );
    found.scale_target = Some(Err("gone".into()));
    found.redis.url_secret = Some(SecretValue::Missing(MissingSecret::NotFound {
        name: "redis".into(),
        namespace: "team-a".into(),
    }));
    assert!(matches!(
        jobqueue(&jq, &found).unwrap_err(),
        PlanError::SecretMissing { .. }
    ));
}

#[test]
fn a_schedule_plans_into_its_definition() {
    let plan = schedule(&schedule_yaml(
        "  schedule: '0 3 * * *'\n  timeZone: Europe/Berlin\n  queueRef: {name: emails}\n  payload: {report: daily}\n  misfirePolicy: Skip\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 30\n",
    ))
    .unwrap();
    assert_eq!(plan.queue, "emails");
    let d = plan.definition;
    assert_eq!(d.name, "nightly");
    assert_eq!(d.generation, 4);
    assert_eq!(d.payload, r#"{"report":"daily"}"#);
    assert_eq!(d.misfire_policy, MisfirePolicy::Skip);
    assert_eq!(d.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(
        d.starting_deadline,
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn every_schedule_rule_names_its_field() {
    for (spec, field) in [
        (
            "  schedule: '61 * * * *'\n  queueRef: {name: q}\n",
            "spec.schedule",
        ),
        (
            "  schedule: '@daily'\n  timeZone: Nowhere/Land\n  queueRef: {name: q}\n",
            "spec.timeZone",
        ),
        (
            "  schedule: '@daily'\n  queueRef: {name: q}\n  payload: [1, 2]\n",
            "spec.payload",
        ),
        (
            "  schedule: '@daily'\n  queueRef: {name: q}\n  startingDeadlineSeconds: -1\n",
            "spec",
        ),
    ] {
        let errors = schedule(&schedule_yaml(spec)).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec![field], "{spec}");
    }
}

#[test]
fn job_records_plan_with_the_defaults_and_the_spec() {
    use crate::queue::jobs::JobSettings;
    use std::time::Duration;

    let plan = plan_of("  {}\n").unwrap();
    assert_eq!(plan.config.jobs, JobSettings::default());
    assert!(plan.config.jobs.tracking);
    assert_eq!(plan.config.jobs.succeeded_ttl, Duration::from_secs(86_400));
    assert_eq!(plan.config.jobs.dead_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(plan.config.jobs.max_result_size, 65_536);

    let plan =
        plan_of("  jobs: {tracking: false, succeededTTL: 1h, deadTTL: 30m, maxResultSize: 1024}\n")
            .unwrap();
    assert!(!plan.config.jobs.tracking);
    assert_eq!(plan.config.jobs.succeeded_ttl, Duration::from_secs(3600));
    assert_eq!(plan.config.jobs.dead_ttl, Duration::from_secs(1800));
    assert_eq!(plan.config.jobs.max_result_size, 1024);
    assert_eq!(
        plan.config.jobs.waiting_ttl,
        JobSettings::default().waiting_ttl
    );
}

#[test]
fn bad_job_record_settings_name_their_field_and_what_is_allowed() {
    assert_fields(&[
        ("  jobs: {succeededTTL: 0s}\n", "spec.jobs.succeededTTL"),
        ("  jobs: {deadTTL: '0'}\n", "spec.jobs.deadTTL"),
        ("  jobs: {maxResultSize: 0}\n", "spec.jobs.maxResultSize"),
        ("  jobs: {maxResultSize: -5}\n", "spec.jobs.maxResultSize"),
        (
            "  jobs: {maxResultSize: 16777217}\n",
            "spec.jobs.maxResultSize",
        ),
    ]);
    let err = plan_of("  jobs: {maxResultSize: 0}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("from 1 to 16777216"), "{err}");
    let err = plan_of("  jobs: {deadTTL: 0s}\n").unwrap_err().to_string();
    assert!(err.contains("greater than zero"), "{err}");
}

#[test]
fn bounds_are_checked_at_their_edges() {
    let workers = "  workers: {template: {spec: {containers: [{name: w, image: i}]}}}\n";
    let poll = |d: &str| {
        jobqueue_yaml(&format!(
            "{workers}  scaling: {{maxReplicas: 2, pollInterval: {d}}}\n"
        ))
    };
    assert!(jobqueue(&poll("100ms"), &inputs()).is_ok());
    for short in ["99ms", "1ns"] {
        let e = jobqueue(&poll(short), &inputs()).unwrap_err().to_string();
        assert!(
            e.contains("spec.scaling.pollInterval") && e.contains("100ms"),
            "{e}"
        );
    }
    let age = |d: &str| jobqueue_yaml(&format!("  retention: {{maxAge: {d}}}\n"));
    assert!(jobqueue(&age("87600h"), &inputs()).is_ok());
    let e = jobqueue(&age("87601h"), &inputs()).unwrap_err().to_string();
    assert!(e.contains("spec.retention.maxAge"), "{e}");

    let mut named = jobqueue_yaml("  stream: s\n");
    named.metadata.name = Some("n".repeat(55));
    assert!(jobqueue(&named, &inputs()).is_ok());
    named.metadata.name = Some("n".repeat(56));
    let e = jobqueue(&named, &inputs()).unwrap_err().to_string();
    assert!(
        e.contains("metadata.name") && e.contains("at most 55"),
        "{e}"
    );
}

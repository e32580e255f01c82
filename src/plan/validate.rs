//! Semantic validation: what an OpenAPI schema cannot express (a Redis URL, an IANA time zone, a
//! cron expression, keys that must share a Redis Cluster slot, a pod template the operator can
//! use). The operator turns these errors into a `Ready=False` condition and an Event; local mode
//! prints them with the file and resource name. Each error names the field, the bad value and
//! what is allowed.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::{DeletionPolicy, FieldError, FieldErrorKind, JobQueue, Schedule, SourceSystem};
use crate::queue::keys::hash_tag;

/// Checks a Redis connection URL with the same parser the queue engine connects with.
pub fn redis_url(field: &str, value: &str) -> Result<(), FieldError> {
    match crate::queue::conn::Endpoint::parse(value) {
        Ok(_) => Ok(()),
        Err(crate::queue::error::QueueError::InvalidUrl { url, reason }) => {
            Err(FieldError::invalid(field, &url, reason))
        }
        Err(other) => Err(FieldError::invalid(
            field,
            &redact(value),
            other.to_string(),
        )),
    }
}

/// A Redis URL read from a Secret. The key may hold anything (a password, a token), so an
/// error names the Secret's key but never shows its value, nor any part of it.
pub fn redis_url_in_secret(field: &str, value: &str) -> Result<(), FieldError> {
    redis_url(field, value).map_err(|e| {
        let reason = if value.is_empty() || !e.message.contains(value) {
            e.message
        } else {
            "not a Redis URL".to_string()
        };
        FieldError::new(
            field,
            crate::crd_validation::FieldErrorKind::Invalid,
            None,
            format!("the Secret's value (not shown) is not a usable Redis URL: {reason}"),
        )
    })
}

/// The `#insecure` fragment makes the Redis client skip certificate checks; only
/// `spec.redis.tls.insecureSkipVerify` may ask for that, so that it shows in the spec.
pub fn insecure_fragment(field: &str, url: &str, skip_verify: bool) -> Result<(), FieldError> {
    if skip_verify || !url.contains('#') {
        return Ok(());
    }
    Err(FieldError::invalid(
        field,
        &redact(url),
        "a URL fragment (#insecure) would turn off certificate checks: remove it, and set \
         spec.redis.tls.insecureSkipVerify if that is really wanted",
    ))
}

/// A URL with its password masked, so errors and Events never leak credentials.
pub fn redact(value: &str) -> String {
    crate::queue::conn::mask_password(value)
}

/// Everything about a JobQueue that its schema cannot check.
pub fn jobqueue(jq: &JobQueue) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = &jq.spec;
    if let Some(url) = spec.redis.as_ref().and_then(|r| r.url.as_deref()) {
        let skip_verify = spec
            .redis
            .as_ref()
            .and_then(|r| r.tls.as_ref())
            .is_some_and(|t| t.insecure_skip_verify);
        errors.extend(redis_url("spec.redis.url", url).err());
        errors.extend(insecure_fragment("spec.redis.url", url, skip_verify).err());
    }
    if let Some(stream) = &spec.stream
        && stream.contains(char::is_whitespace)
    {
        errors.push(FieldError::invalid(
            "spec.stream",
            stream,
            "a stream key must not contain white space",
        ));
    }
    errors.extend(dead_letter(jq));
    if let Some(backoff) = &spec.delivery.retry_backoff
        && backoff.max < backoff.initial
    {
        errors.push(FieldError::new(
            "spec.delivery.retryBackoff.max",
            FieldErrorKind::Invalid,
            Some(format!("{:?}", backoff.max.to_string())),
            format!(
                "must be at least retryBackoff.initial ({})",
                backoff.initial
            ),
        ));
    }
    errors.extend(bounds(jq));
    errors.extend(source(jq));
    if let Some(template) = spec.workers.as_ref().and_then(|w| w.template.as_ref()) {
        errors.extend(pod_template(template));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Longest JobQueue name: `<name>-workers` must fit a 63-character label value.
pub const MAX_NAME_LENGTH: usize = 63 - "-workers".len();
/// Shortest `spec.scaling.pollInterval`: a shorter one would spin the scaler.
pub const MIN_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest `spec.retention.maxAge` (10 years): far longer ones overflow millisecond counts.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(87_600 * 3600);

/// Bounds the schema also states (a JobQueue may come from a file in local mode, or from an
/// API server with older CRDs).
fn bounds(jq: &JobQueue) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = jq.metadata.name.as_deref().unwrap_or_default();
    if name.len() > MAX_NAME_LENGTH {
        errors.push(FieldError::new(
            "metadata.name",
            crate::crd_validation::FieldErrorKind::TooLong,
            None,
            format!(
                "must be at most {MAX_NAME_LENGTH} characters: `<name>-workers` names the \
                 workers' Deployment and labels, which allow 63"
            ),
        ));
    }
    if let Some(s) = &jq.spec.scaling
        && s.poll_interval.as_std() < MIN_POLL_INTERVAL
    {
        errors.push(FieldError::invalid(
            "spec.scaling.pollInterval",
            &s.poll_interval.to_string(),
            "must be at least 100ms",
        ));
    }
    if let Some(age) = jq.spec.retention.as_ref().and_then(|r| r.max_age)
        && age.as_std() > MAX_AGE
    {
        errors.push(FieldError::invalid(
            "spec.retention.maxAge",
            &age.to_string(),
            "must be at most 87600h (10 years)",
        ));
    }
    errors
}

/// An adopted queue: what the schema's rules say, for manifests read without them (local
/// mode, an API server with older CRDs). The operator never writes another system's keys.
fn source(jq: &JobQueue) -> Vec<FieldError> {
    let spec = &jq.spec;
    let Some(source) = &spec.source else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let not_with_source = |field: &str| {
        FieldError::new(
            format!("spec.{field}"),
            FieldErrorKind::Forbidden,
            None,
            "does not apply with spec.source: the operator never writes another system's queue",
        )
    };
    if spec.stream.is_some() {
        errors.push(not_with_source("stream"));
    }
    if spec.retention.is_some() {
        errors.push(not_with_source("retention"));
    }
    if spec.dead_letter.is_some() {
        errors.push(not_with_source("deadLetter"));
    }
    if spec.deletion_policy != DeletionPolicy::Retain {
        errors.push(FieldError::invalid(
            "spec.deletionPolicy",
            "Delete",
            "must be Retain with spec.source: the operator never deletes another system's keys",
        ));
    }
    if source.prefix.is_some() && source.system != SourceSystem::BullMq {
        errors.push(FieldError::new(
            "spec.source.prefix",
            FieldErrorKind::Forbidden,
            None,
            "applies to BullMQ only",
        ));
    }
    if source.queue.is_empty() || source.queue.contains(char::is_whitespace) {
        errors.push(FieldError::invalid(
            "spec.source.queue",
            &source.queue,
            "must be the system's queue name: not empty, no white space",
        ));
    }
    errors
}

/// The dead-letter stream: another key than the stream, in the stream's Cluster slot.
fn dead_letter(jq: &JobQueue) -> Option<FieldError> {
    let dead = jq.spec.dead_letter.as_ref()?.stream.as_deref()?;
    let keys = jq.queue_keys();
    if dead == keys.stream {
        Some(FieldError::invalid(
            "spec.deadLetter.stream",
            dead,
            "must differ from the queue's stream",
        ))
    } else if !keys.same_slot(dead) {
        let tag = hash_tag(&keys.delayed()).unwrap_or_default().to_string();
        Some(FieldError::invalid(
            "spec.deadLetter.stream",
            dead,
            format!(
                "must carry the queue's hash tag {{{tag}}} so it lives in the same Redis Cluster slot, e.g. {:?}",
                keys.dead()
            ),
        ))
    } else {
        None
    }
}

/// The worker pod template: at least one container, none setting a reserved variable.
fn pod_template(template: &PodTemplateSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    if containers.is_empty() {
        errors.push(FieldError::required(
            "spec.workers.template.spec.containers",
            "at least one container is needed to run workers",
        ));
    }
    for (i, c) in containers.iter().enumerate() {
        for (j, env) in c.env.iter().flatten().enumerate() {
            if RESERVED_ENV.contains(&env.name.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.workers.template.spec.containers[{i}].env[{j}].name"),
                    FieldErrorKind::Forbidden,
                    Some(format!("{:?}", env.name)),
                    format!(
                        "set by the operator; reserved names: {}",
                        RESERVED_ENV.join(", ")
                    ),
                ));
            }
        }
    }
    errors
}

/// Environment variables the operator injects into worker containers.
pub const RESERVED_ENV: &[&str] = &[
    "REDIS_URL",
    "JOBQUEUE_STREAM",
    "JOBQUEUE_GROUP",
    "JOBQUEUE_CONSUMER",
];

/// Everything about a Schedule that its schema cannot check (the queue's existence is checked by
/// the controller, which can see the cluster).
pub fn schedule(s: &Schedule) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Err(e) = crate::schedule::CronSchedule::parse(&s.spec.schedule) {
        errors.push(FieldError::invalid(
            "spec.schedule",
            &s.spec.schedule,
            e.to_string(),
        ));
    }
    if let Err(e) = crate::schedule::parse_time_zone(&s.spec.time_zone) {
        errors.push(FieldError::invalid(
            "spec.timeZone",
            &s.spec.time_zone,
            e.to_string(),
        ));
    }
    if let Some(p) = &s.spec.payload
        && !p.is_object()
    {
        errors.push(FieldError::new(
            "spec.payload",
            FieldErrorKind::Invalid,
            Some(p.to_string()),
            "must be a JSON object",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeadLetterSpec, QueueRef, RedisSpec, RetryBackoff, ScheduleSpec};

    fn jq(spec: serde_json::Value) -> JobQueue {
        let obj = serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
            "metadata": {"name": "emails", "namespace": "team-a"}, "spec": spec,
        });
        serde_json::from_value(obj).expect("test manifest deserializes")
    }

    fn only_error(r: Result<(), Vec<FieldError>>) -> FieldError {
        let errs = r.expect_err("expected an error");
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn redis_urls() {
        for good in [
            "redis://localhost",
            "redis://:pw@redis.default.svc:6379/2",
            "rediss://u:p@host:6380",
            "redis+cluster://a:7000,b:7001",
        ] {
            assert_eq!(redis_url("f", good), Ok(()), "{good}");
        }
        for (bad, want) in [
            ("http://host", "unsupported scheme \"http\""),
            ("not a url", "expected redis://"),
        ] {
            let e = redis_url("spec.redis.url", bad).unwrap_err();
            assert_eq!(e.field, "spec.redis.url");
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_never_show_passwords() {
        let e = redis_url("spec.redis.url", "http://user:hunter2@host").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn a_plain_queue_is_valid() {
        assert_eq!(jobqueue(&jq(serde_json::json!({}))), Ok(()));
        let mut q = jq(serde_json::json!({}));
        q.spec.redis = Some(RedisSpec {
            url: Some("redis://r:6379".into()),
            ..Default::default()
        });
        assert_eq!(jobqueue(&q), Ok(()));
    }

    #[test]
    fn bad_redis_url_in_a_queue_names_the_field() {
        let mut q = jq(serde_json::json!({}));
        q.spec.redis = Some(RedisSpec {
            url: Some("mysql://db".into()),
            ..Default::default()
        });
        assert_eq!(only_error(jobqueue(&q)).field, "spec.redis.url");
    }

    #[test]
    fn dead_letter_stream_must_share_the_slot() {
        let mut q = jq(serde_json::json!({}));
        q.spec.dead_letter = Some(DeadLetterSpec {
            stream: Some("elsewhere:dead".into()),
            max_length: None,
        });
        let e = only_error(jobqueue(&q));
        assert_eq!(e.field, "spec.deadLetter.stream");
        assert!(e.message.contains("{team-a/emails}"), "{e}");
        q.spec.dead_letter = Some(DeadLetterSpec {
            stream: Some("poison:{team-a/emails}".into()),
            max_length: None,
        });
        assert_eq!(jobqueue(&q), Ok(()));
        q.spec.dead_letter = Some(DeadLetterSpec {
            stream: Some(q.stream_key()),
            max_length: None,
        });
        assert!(only_error(jobqueue(&q)).message.contains("must differ"));
    }

    #[test]
    fn backoff_max_below_initial_is_rejected() {
        let mut q = jq(serde_json::json!({}));
        q.spec.delivery.retry_backoff = Some(RetryBackoff {
            initial: "10s".parse().unwrap(),
            max: "1s".parse().unwrap(),
            multiplier: 2.0,
        });
        let e = only_error(jobqueue(&q));
        assert_eq!(e.field, "spec.delivery.retryBackoff.max");
        assert!(e.message.contains("10s"), "{e}");
    }

    #[test]
    fn reserved_env_in_the_template_is_forbidden() {
        let q = jq(
            serde_json::json!({"workers": {"template": {"spec": {"containers": [
                {"name": "w", "image": "w:1", "env": [{"name": "OK", "value": "1"}, {"name": "REDIS_URL", "value": "x"}]}
            ]}}}}),
        );
        let e = only_error(jobqueue(&q));
        assert_eq!(
            e.field,
            "spec.workers.template.spec.containers[0].env[1].name"
        );
        assert_eq!(e.kind, FieldErrorKind::Forbidden);
    }

    #[test]
    fn template_without_containers_is_rejected() {
        let q = jq(serde_json::json!({"workers": {"template": {"spec": {"containers": []}}}}));
        assert_eq!(
            only_error(jobqueue(&q)).field,
            "spec.workers.template.spec.containers"
        );
    }

    fn sched(expr: &str, tz: &str) -> Schedule {
        Schedule::new(
            "nightly",
            ScheduleSpec {
                schedule: expr.into(),
                time_zone: tz.into(),
                queue_ref: QueueRef {
                    name: "emails".into(),
                },
                payload: None,
                suspend: false,
                starting_deadline_seconds: None,
                misfire_policy: Default::default(),
                concurrency_policy: Default::default(),
            },
        )
    }

    #[test]
    fn schedules() {
        assert_eq!(schedule(&sched("*/5 * * * *", "Europe/Berlin")), Ok(()));
        assert_eq!(
            only_error(schedule(&sched("@daily", "Nowhere/Land"))).field,
            "spec.timeZone"
        );
        let mut s = sched("@hourly", "UTC");
        s.spec.payload = Some(serde_json::json!([1, 2]));
        assert_eq!(only_error(schedule(&s)).field, "spec.payload");
    }
}

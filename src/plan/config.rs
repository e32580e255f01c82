//! A JobQueue's spec as the engine's [`QueueConfig`].

use crate::api::{self, FieldError, FieldErrorKind};
use crate::queue::adopted::{Adopted, System};
use crate::queue::config::{Backoff, Claim, QueueConfig, Retention, StartFrom};
use crate::queue::error::QueueError;
use crate::queue::jobs::JobSettings;

fn non_negative(field: &'static str, v: i64) -> Result<u64, QueueError> {
    u64::try_from(v).map_err(|_| QueueError::InvalidConfig {
        field,
        reason: format!("{v} is negative; use a number >= 1"),
    })
}

/// The engine's config of a JobQueue, checked with [`QueueConfig::validate`].
pub fn queue_config(jq: &api::JobQueue) -> Result<QueueConfig, QueueError> {
    let spec = &jq.spec;
    if let Some(source) = &spec.source {
        return Ok(QueueConfig::adopted(adopted(source)));
    }
    let mut cfg = QueueConfig::new(jq.stream_key());
    cfg.claim = Some(Claim {
        owner: format!(
            "{}/{}",
            jq.metadata.namespace.as_deref().unwrap_or_default(),
            jq.metadata.name.as_deref().unwrap_or_default()
        ),
        uid: jq.metadata.uid.clone().unwrap_or_default(),
    });
    cfg.group = spec.consumer_group.clone();
    cfg.start_from = match spec.start_from {
        api::StartFrom::Latest => StartFrom::Latest,
        api::StartFrom::Beginning => StartFrom::Beginning,
    };
    cfg.visibility_timeout = spec.delivery.visibility_timeout.as_std();
    cfg.max_deliveries =
        u32::try_from(spec.delivery.max_deliveries).map_err(|_| QueueError::InvalidConfig {
            field: "delivery.maxDeliveries",
            reason: format!(
                "{} is not allowed; use 1 to 1000",
                spec.delivery.max_deliveries
            ),
        })?;
    cfg.backoff = spec.delivery.retry_backoff.as_ref().map(|b| Backoff {
        initial: b.initial.as_std(),
        max: b.max.as_std(),
        multiplier: b.multiplier,
    });
    if let Some(r) = &spec.retention {
        cfg.retention = Retention {
            max_length: r
                .max_length
                .map(|v| non_negative("retention.maxLength", v))
                .transpose()?,
            max_age: r.max_age.map(api::Duration::as_std),
        };
    }
    cfg.dead_letter = jq.dead_letter_key();
    cfg.dead_letter_max_length = spec
        .dead_letter
        .as_ref()
        .and_then(|d| d.max_length)
        .map(|v| non_negative("deadLetter.maxLength", v))
        .transpose()?;
    cfg.jobs = job_settings(&spec.jobs)?;
    cfg.validate()?;
    Ok(cfg)
}

/// `spec.source` as the engine's [`Adopted`].
fn adopted(source: &api::SourceSpec) -> Adopted {
    let system = match source.system {
        api::SourceSystem::Rq => System::Rq,
        api::SourceSystem::Celery => System::Celery,
        api::SourceSystem::Sidekiq => System::Sidekiq,
        api::SourceSystem::BullMq => System::BullMq,
    };
    let mut a = Adopted::new(system, &source.queue);
    if let Some(prefix) = &source.prefix {
        a.prefix = prefix.clone();
    }
    a
}

/// `spec.jobs` as the engine's [`JobSettings`] (records of running jobs keep the default bound).
fn job_settings(spec: &api::JobsSpec) -> Result<JobSettings, QueueError> {
    let positive = |field, d: api::Duration| {
        if d.is_zero() {
            Err(QueueError::InvalidConfig {
                field,
                reason: format!("{d} is not allowed; use a duration greater than zero, e.g. 24h"),
            })
        } else {
            Ok(d.as_std())
        }
    };
    let max_result_size = u64::try_from(spec.max_result_size)
        .ok()
        .filter(|n| (1..=api::MAX_RESULT_SIZE_LIMIT as u64).contains(n))
        .ok_or_else(|| QueueError::InvalidConfig {
            field: "jobs.maxResultSize",
            reason: format!(
                "{} is not allowed; use a number of bytes from 1 to {}",
                spec.max_result_size,
                api::MAX_RESULT_SIZE_LIMIT
            ),
        })?;
    Ok(JobSettings {
        tracking: spec.tracking,
        succeeded_ttl: positive("jobs.succeededTTL", spec.succeeded_ttl)?,
        dead_ttl: positive("jobs.deadTTL", spec.dead_ttl)?,
        max_result_size,
        ..JobSettings::default()
    })
}

/// An engine config error as a field error on the JobQueue (`spec.<field>`).
pub fn field_error(e: QueueError) -> FieldError {
    match e {
        QueueError::InvalidConfig { field, reason } => FieldError::new(
            format!("spec.{field}"),
            FieldErrorKind::Invalid,
            None,
            reason,
        ),
        other => FieldError::new("spec", FieldErrorKind::Invalid, None, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn converts_a_jobqueue_manifest() {
        let yaml = r#"
apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata: {name: emails, namespace: team-a}
spec:
  consumerGroup: mailers
  startFrom: Beginning
  retention: {maxLength: 1000, maxAge: 1h}
  delivery:
    visibilityTimeout: 30s
    maxDeliveries: 3
    retryBackoff: {initial: 1s, max: 1m, multiplier: 3}
  deadLetter: {maxLength: 50}
"#;
        let jq: api::JobQueue = serde_yaml::from_str(yaml).unwrap();
        let cfg = queue_config(&jq).unwrap();
        assert_eq!(cfg.stream(), "jobqueue:{team-a/emails}");
        assert_eq!(cfg.group, "mailers");
        assert_eq!(cfg.start_from, StartFrom::Beginning);
        assert_eq!(cfg.visibility_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_deliveries, 3);
        assert_eq!(cfg.backoff.unwrap().table_ms(3), vec![1000, 3000]);
        assert_eq!(cfg.retention.max_length, Some(1000));
        assert_eq!(cfg.retention.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.dead_letter, "jobqueue:{team-a/emails}:dead");
        assert_eq!(cfg.dead_letter_max_length, Some(50));

        let mut bad = jq.clone();
        bad.spec.dead_letter = Some(api::DeadLetterSpec {
            stream: Some("dlq".into()),
            max_length: None,
        });
        let err = queue_config(&bad).unwrap_err().to_string();
        assert!(err.contains("deadLetter.stream"), "{err}");
        let mut bad = jq;
        bad.spec.delivery.max_deliveries = -1;
        assert!(
            queue_config(&bad)
                .unwrap_err()
                .to_string()
                .contains("delivery.maxDeliveries")
        );
    }
}

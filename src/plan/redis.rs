//! Where a queue's Redis is and how to reach it: URL precedence (`spec.redis.url`, then the
//! Secret named by `spec.redis.urlSecretRef`, then the operator's default) and TLS. The values
//! of Secrets are read by the caller (cluster mode) or are not available (local mode).

use crate::api::{JobQueue, SecretKeyRef};
use crate::queue::conn::TlsOptions;

use super::PlanError;
use super::validate;

/// A key of a Secret as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// The key's bytes.
    Found(Vec<u8>),
    /// Neither the Secret nor the key could be found.
    Missing(MissingSecret),
}

/// Why a Secret key the spec names could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingSecret {
    #[error("Secret {name:?} not found in namespace {namespace:?}")]
    NotFound { name: String, namespace: String },
    #[error("Secret {name:?} has no key {key:?}")]
    KeyMissing { name: String, key: String },
}

/// What the planning step needs from outside the resource: the default Redis and the Secret
/// values the spec names. `None` for a Secret means it cannot be read here (local mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedisInputs {
    /// The operator's Redis for queues without `spec.redis` (`--redis` / REDIS_URL).
    pub default_url: String,
    /// The value of `spec.redis.urlSecretRef`.
    pub url_secret: Option<SecretValue>,
    /// The value of `spec.redis.tls.caSecretRef`.
    pub ca_secret: Option<SecretValue>,
}

/// How workers get the Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// A key of a Secret (never copied into a Deployment in plain text).
    Secret { name: String, key: String },
    /// `spec.redis.url`, written in plain text by the user.
    Plain,
    /// The operator's default URL.
    Default,
}

/// The Redis a queue lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// The URL the operator connects with.
    pub url: String,
    pub source: UrlSource,
    pub tls: TlsOptions,
    /// What was left out because it cannot be read here (a Secret in local mode).
    pub notes: Vec<String>,
}

/// The Secret key refs a JobQueue's Redis settings name: (URL, CA bundle).
pub fn secret_refs(jq: &JobQueue) -> (Option<&SecretKeyRef>, Option<&SecretKeyRef>) {
    let redis = jq.spec.redis.as_ref();
    let url = redis
        .filter(|r| r.url.is_none())
        .and_then(|r| r.url_secret_ref.as_ref());
    let ca = redis
        .and_then(|r| r.tls.as_ref())
        .and_then(|t| t.ca_secret_ref.as_ref());
    (url, ca)
}

/// The Redis target of `jq` given what was read for it.
pub fn target(jq: &JobQueue, inputs: &RedisInputs) -> Result<RedisTarget, PlanError> {
    target_checked_between(jq, inputs, || Ok(()))
}

/// [`target`], running `between` after the URL and before the TLS settings are checked (so
/// the first problem reported is the same whatever else is wrong).
pub(super) fn target_checked_between(
    jq: &JobQueue,
    inputs: &RedisInputs,
    between: impl FnOnce() -> Result<(), PlanError>,
) -> Result<RedisTarget, PlanError> {
    let mut notes = Vec::new();
    let (url, source) = url(jq, inputs, &mut notes)?;
    between()?;
    let tls = tls(jq, inputs)?;
    Ok(RedisTarget {
        url,
        source,
        tls,
        notes,
    })
}

fn url(
    jq: &JobQueue,
    inputs: &RedisInputs,
    notes: &mut Vec<String>,
) -> Result<(String, UrlSource), PlanError> {
    let default = || (inputs.default_url.clone(), UrlSource::Default);
    let Some(redis) = &jq.spec.redis else {
        return Ok(default());
    };
    if let Some(url) = &redis.url {
        return Ok((url.clone(), UrlSource::Plain));
    }
    let Some(sref) = &redis.url_secret_ref else {
        return Ok(default());
    };
    let bytes = match &inputs.url_secret {
        None => {
            // Only local mode has no Secrets to read.
            notes.push(format!(
                "spec.redis.urlSecretRef names a Kubernetes Secret, which local mode cannot read; \
                 using --redis / REDIS_URL ({}) instead",
                crate::queue::conn::mask_password(&inputs.default_url)
            ));
            return Ok(default());
        }
        Some(SecretValue::Missing(m)) => {
            return Err(PlanError::SecretMissing {
                field: "spec.redis.urlSecretRef",
                source: m.clone(),
            });
        }
        Some(SecretValue::Found(b)) => b,
    };
    let url = String::from_utf8(bytes.clone()).map_err(|_| PlanError::SecretNotText {
        field: "spec.redis.urlSecretRef",
        name: sref.name.clone(),
        key: sref.key.clone(),
    })?;
    let url = url.trim().to_string();
    validate::redis_url_in_secret("spec.redis.urlSecretRef", &url)
        .map_err(PlanError::InvalidRedisUrl)?;
    let skip_verify = jq
        .spec
        .redis
        .as_ref()
        .and_then(|r| r.tls.as_ref())
        .is_some_and(|t| t.insecure_skip_verify);
    validate::insecure_fragment("spec.redis.urlSecretRef", &url, skip_verify)
        .map_err(PlanError::InvalidRedisUrl)?;
    Ok((
        url,
        UrlSource::Secret {
            name: sref.name.clone(),
            key: sref.key.clone(),
        },
    ))
}

fn tls(jq: &JobQueue, inputs: &RedisInputs) -> Result<TlsOptions, PlanError> {
    let Some(tls) = jq.spec.redis.as_ref().and_then(|r| r.tls.as_ref()) else {
        return Ok(TlsOptions::default());
    };
    let ca_pem = match (&tls.ca_secret_ref, &inputs.ca_secret) {
        (None, _) => None,
        // Without Secrets (local mode) the system's CA roots are used.
        (Some(_), None) => None,
        (Some(_), Some(SecretValue::Missing(m))) => {
            return Err(PlanError::SecretMissing {
                field: "spec.redis.tls.caSecretRef",
                source: m.clone(),
            });
        }
        (Some(_), Some(SecretValue::Found(pem))) => Some(pem.clone()),
    };
    Ok(TlsOptions {
        ca_pem,
        insecure_skip_verify: tls.insecure_skip_verify,
    })
}

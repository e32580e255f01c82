//! What the reconcilers share, and their error type.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource};

use crate::api::JobQueue;
use crate::operator::metrics::Metrics;
use crate::operator::metrics::{ControllerLabels, ErrorLabels};
use crate::operator::runtime::Runtime;
use crate::operator::workload::RedisUrlSource;
use crate::queue::conn::TlsOptions;
use kube::runtime::controller::Action;

use super::pods::PodIndex;
use super::status::StatusWriter;

/// Shared by both controllers.
pub struct Context {
    pub client: Client,
    pub runtime: Runtime,
    pub status: Arc<StatusWriter>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub pods: Arc<PodIndex>,
    /// Watched worker Deployments (their replica counts).
    pub deployments: Arc<super::deployments::DeploymentCache>,
    /// Redis for queues without `spec.redis`.
    pub default_redis: String,
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    Redis(String),
    #[error("{0}")]
    NotReady(String),
}

impl ReconcileError {
    /// Short kind for the `reason` label of the error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubeApi",
            ReconcileError::Finalizer(_) => "Finalizer",
            ReconcileError::Redis(_) => "Redis",
            ReconcileError::NotReady(_) => "NotReady",
        }
    }
}

/// Why the Redis URL of a queue could not be found.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("Secret {0:?} not found in namespace {1:?} (spec.redis.urlSecretRef.name)")]
    SecretNotFound(String, String),
    #[error("Secret {0:?} has no key {1:?} (spec.redis.urlSecretRef.key)")]
    KeyMissing(String, String),
    #[error("Secret {0:?} key {1:?} is not UTF-8 text")]
    NotText(String, String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The URL the operator connects with, and how workers get it.
pub async fn resolve_redis(
    ctx: &Context,
    jq: &JobQueue,
) -> Result<(String, RedisUrlSource), UrlError> {
    let namespace = jq.meta().namespace.clone().unwrap_or_default();
    let Some(redis) = &jq.spec.redis else {
        return Ok((
            ctx.default_redis.clone(),
            RedisUrlSource::Default(ctx.default_redis.clone()),
        ));
    };
    if let Some(url) = &redis.url {
        return Ok((url.clone(), RedisUrlSource::Plain(url.clone())));
    }
    let Some(sref) = &redis.url_secret_ref else {
        return Ok((
            ctx.default_redis.clone(),
            RedisUrlSource::Default(ctx.default_redis.clone()),
        ));
    };
    let bytes = read_secret_key(ctx, &namespace, sref).await?;
    let url = String::from_utf8(bytes)
        .map_err(|_| UrlError::NotText(sref.name.clone(), sref.key.clone()))?;
    Ok((
        url.trim().to_string(),
        RedisUrlSource::Secret {
            name: sref.name.clone(),
            key: sref.key.clone(),
        },
    ))
}

/// The value of one key of a Secret in `namespace`.
async fn read_secret_key(
    ctx: &Context,
    namespace: &str,
    sref: &crate::api::SecretKeyRef,
) -> Result<Vec<u8>, UrlError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(&sref.name)
        .await?
        .ok_or_else(|| UrlError::SecretNotFound(sref.name.clone(), namespace.to_string()))?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&sref.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&sref.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| UrlError::KeyMissing(sref.name.clone(), sref.key.clone()))
}

/// The TLS settings of `spec.redis.tls` (the CA bundle read from its Secret).
pub async fn resolve_tls(ctx: &Context, jq: &JobQueue) -> Result<TlsOptions, UrlError> {
    let Some(tls) = jq.spec.redis.as_ref().and_then(|r| r.tls.as_ref()) else {
        return Ok(TlsOptions::default());
    };
    let namespace = jq.meta().namespace.clone().unwrap_or_default();
    let ca_pem = match &tls.ca_secret_ref {
        Some(sref) => Some(read_secret_key(ctx, &namespace, sref).await?),
        None => None,
    };
    Ok(TlsOptions {
        ca_pem,
        insecure_skip_verify: tls.insecure_skip_verify,
    })
}

/// Publishes an Event about `obj` (failures are logged: an Event is never worth a retry).
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an event failed");
    }
}

/// Runs one reconcile of `obj` behind the finalizer `finalizer_name` (so deletion waits for
/// `Cleanup`) and records its duration under `controller`.
pub async fn reconcile_with_finalizer<K, F, Fut>(
    ctx: &Context,
    controller: &str,
    finalizer_name: &str,
    obj: Arc<K>,
    handle: F,
) -> Result<Action, ReconcileError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: FnOnce(kube::runtime::finalizer::Event<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>>,
{
    use kube::runtime::finalizer::{Error, finalizer};
    let started = std::time::Instant::now();
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, finalizer_name, obj, handle)
        .await
        .map_err(|e| match e {
            Error::ApplyFailed(e) | Error::CleanupFailed(e) => e,
            other => ReconcileError::Finalizer(other.to_string()),
        });
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ControllerLabels {
            controller: controller.into(),
        })
        .observe(started.elapsed().as_secs_f64());
    result
}

/// What a failed reconcile does: counted by kind, logged, retried after 5 s.
pub fn retry_after_error(ctx: &Context, controller: &str, error: &ReconcileError) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: controller.into(),
            reason: error.kind().into(),
        })
        .inc();
    tracing::warn!(controller, %error, "reconcile failed");
    Action::requeue(std::time::Duration::from_secs(5))
}

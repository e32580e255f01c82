//! The worker Deployment the operator creates from `spec.workers.template` (pure: no I/O).
//!
//! The operator owns the Deployment (ownerReference to the JobQueue, so deleting the queue
//! removes its workers) and injects how to reach the queue, so a worker needs no configuration
//! of its own: `REDIS_URL`, `JOBQUEUE_STREAM`, `JOBQUEUE_GROUP`, and `JOBQUEUE_CONSUMER` (the pod
//! name, through the downward API, so each pod is its own consumer and the operator can tell
//! which consumer belongs to a pod that no longer exists).
//!
//! A queue on the operator's default Redis gets that URL through a Secret the operator writes
//! next to the Deployment ([`url_secret`]): the default URL may hold a password, and a
//! Deployment's env is readable by anyone who may read Deployments.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectFieldSelector, PodTemplateSpec, Secret, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use crate::api::JobQueue;

/// Label on the Deployment and its pods naming the JobQueue.
pub const QUEUE_LABEL: &str = "jobqueue.io/queue";

/// How workers get the Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrlSource {
    /// A key of a Secret (never copied into the Deployment in plain text).
    Secret { name: String, key: String },
    /// A plain URL (`spec.redis.url`: the user wrote it in plain text already).
    Plain(String),
    /// The operator's default URL: workers read it from [`url_secret`].
    Default(String),
}

/// Whether an existing object with metadata `meta` may be applied for `jq`: it is `jq`'s
/// (controller reference with its uid), or it is not there at all. Anything else (a
/// Deployment someone made by hand, another queue's Secret) is never taken over.
pub fn may_apply(meta: Option<&ObjectMeta>, jq: &JobQueue) -> bool {
    let Some(meta) = meta else {
        return true;
    };
    let uid = jq.metadata.uid.as_deref();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid && o.kind == "JobQueue")
}

/// Name of the Secret holding the default Redis URL for `jq`'s workers.
pub fn url_secret_name(jq: &JobQueue) -> String {
    format!("{}-redis", deployment_name(jq))
}

/// Key of the URL in [`url_secret`].
pub const URL_SECRET_KEY: &str = "url";

/// Pod template annotation with a digest of the default URL: the URL reaches the pods through
/// a Secret, read at container start, so a changed URL must change the template for the
/// workers to restart with it.
pub const URL_HASH_ANNOTATION: &str = "jobqueue.io/redis-url-hmac";

/// HMAC-SHA256 of `url` keyed by the URL Secret's uid. Anyone who may read pods sees the
/// digest; without the Secret's uid (which takes reading the Secret) it reveals nothing of the
/// URL, and no password can be tried against it offline, as with a plain hash.
fn url_digest(secret_uid: &str, url: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret_uid.as_bytes());
    ring::hmac::sign(&key, url.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Secret with the operator's default Redis URL for `jq`'s workers, owned by the queue.
pub fn url_secret(jq: &JobQueue, url: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(url_secret_name(jq)),
            namespace: jq.namespace(),
            labels: Some(BTreeMap::from([
                (QUEUE_LABEL.to_string(), jq.name_any()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "jobqueue-operator".to_string(),
                ),
            ])),
            owner_references: jq.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            URL_SECRET_KEY.to_string(),
            ByteString(url.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Name of the Deployment the operator manages for `jq`.
pub fn deployment_name(jq: &JobQueue) -> String {
    format!("{}-workers", jq.name_any())
}

/// The worker Deployment for `jq`, or `None` when the queue has no `workers.template`.
/// `replicas` is what the autoscaler last set (so applying the template never fights it);
/// `secret_uid` is the uid of the default URL's Secret, once applied.
pub fn worker_deployment(
    jq: &JobQueue,
    redis: &RedisUrlSource,
    replicas: Option<i32>,
    secret_uid: Option<&str>,
) -> Option<Deployment> {
    let template = jq.spec.workers.as_ref()?.template.as_ref()?;
    let name = jq.name_any();
    let selector = BTreeMap::from([(QUEUE_LABEL.to_string(), name.clone())]);
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/name".into(), "jobqueue-worker".into());
    labels.insert("app.kubernetes.io/instance".into(), name.clone());
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "jobqueue-operator".into(),
    );

    let mut pod: PodTemplateSpec = template.clone();
    let meta = pod.metadata.get_or_insert_with(Default::default);
    let pod_labels = meta.labels.get_or_insert_with(Default::default);
    for (k, v) in &labels {
        pod_labels.insert(k.clone(), v.clone());
    }
    if let RedisUrlSource::Default(url) = redis {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(
                URL_HASH_ANNOTATION.into(),
                url_digest(secret_uid.unwrap_or_default(), url),
            );
    }
    let env = injected_env(jq, redis);
    if let Some(spec) = pod.spec.as_mut() {
        for c in &mut spec.containers {
            let user = c.env.take().unwrap_or_default();
            c.env = Some(env.iter().cloned().chain(user).collect());
        }
    }

    Some(Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(jq)),
            namespace: jq.namespace(),
            labels: Some(labels),
            owner_references: jq.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: pod,
            ..Default::default()
        }),
        status: None,
    })
}

/// The variables every worker container receives, in this order.
pub fn injected_env(jq: &JobQueue, redis: &RedisUrlSource) -> Vec<EnvVar> {
    let redis_url = match redis {
        RedisUrlSource::Plain(url) => EnvVar {
            name: "REDIS_URL".into(),
            value: Some(url.clone()),
            value_from: None,
        },
        RedisUrlSource::Secret { name, key } => from_secret(name, key),
        RedisUrlSource::Default(_) => from_secret(&url_secret_name(jq), URL_SECRET_KEY),
    };
    vec![
        redis_url,
        plain("JOBQUEUE_STREAM", jq.stream_key()),
        plain("JOBQUEUE_GROUP", jq.spec.consumer_group.clone()),
        EnvVar {
            name: "JOBQUEUE_CONSUMER".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
        },
    ]
}

fn from_secret(name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: "REDIS_URL".into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

fn plain(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(workers: serde_json::Value) -> JobQueue {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "jobqueue.io/v1alpha1", "kind": "JobQueue",
            "metadata": {"name": "emails", "namespace": "team-a", "uid": "1234"},
            "spec": {"consumerGroup": "senders", "workers": workers},
        }))
        .unwrap()
    }

    fn env_of(d: &Deployment, container: usize) -> Vec<EnvVar> {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[container]
            .env
            .clone()
            .unwrap()
    }

    #[test]
    fn injects_connection_env_into_every_container_before_user_env() {
        let jq = queue(serde_json::json!({"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "MODE", "value": "fast"}]},
            {"name": "b", "image": "b:1"}
        ]}}}));
        let d = worker_deployment(
            &jq,
            &RedisUrlSource::Secret {
                name: "redis".into(),
                key: "url".into(),
            },
            Some(3),
            None,
        )
        .unwrap();
        for i in 0..2 {
            let env = env_of(&d, i);
            let names: Vec<_> = env.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(
                &names[..4],
                [
                    "REDIS_URL",
                    "JOBQUEUE_STREAM",
                    "JOBQUEUE_GROUP",
                    "JOBQUEUE_CONSUMER"
                ]
            );
            let secret = env[0]
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            assert_eq!(
                (secret.name.as_str(), secret.key.as_str()),
                ("redis", "url")
            );
            assert!(
                env[0].value.is_none(),
                "the URL must not be copied in plain text"
            );
            assert_eq!(env[1].value.as_deref(), Some("jobqueue:{team-a/emails}"));
            assert_eq!(env[2].value.as_deref(), Some("senders"));
            let field = env[3]
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap();
            assert_eq!(field.field_path, "metadata.name");
        }
        assert_eq!(env_of(&d, 0)[4].name, "MODE");
        assert_eq!(env_of(&d, 1).len(), 4);
    }

    #[test]
    fn owned_by_the_queue_selecting_its_pods() {
        let jq = queue(
            serde_json::json!({"template": {"metadata": {"labels": {"team": "a"}}, "spec": {"containers": [{"name": "w"}]}}}),
        );
        let d =
            worker_deployment(&jq, &RedisUrlSource::Plain("redis://r".into()), None, None).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("emails-workers"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("team-a"));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("JobQueue", "emails", Some(true))
        );
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, None, "replicas are left to the autoscaler");
        let selector = spec.selector.match_labels.unwrap();
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in &selector {
            assert_eq!(pod_labels.get(k), Some(v), "pods must match the selector");
        }
        assert_eq!(
            pod_labels.get("team").map(String::as_str),
            Some("a"),
            "user labels are kept"
        );
        let env = spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert_eq!(env[0].value.as_deref(), Some("redis://r"));
    }

    #[test]
    fn the_default_url_reaches_workers_through_an_owned_secret_only() {
        let jq = queue(serde_json::json!({"template": {"spec": {"containers": [{"name": "w"}]}}}));
        let url = "redis://:hunter2@redis.jobs:6379";
        let d = worker_deployment(
            &jq,
            &RedisUrlSource::Default(url.into()),
            None,
            Some("uid-1"),
        )
        .unwrap();
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("hunter2"), "the URL leaked into {text}");
        let env = d.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let r = env[0].value_from.as_ref().unwrap();
        let r = r.secret_key_ref.as_ref().unwrap();
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            ("emails-workers-redis", URL_SECRET_KEY)
        );

        let hash = |url: &str| {
            let d = worker_deployment(
                &jq,
                &RedisUrlSource::Default(url.into()),
                None,
                Some("uid-1"),
            )
            .unwrap();
            d.spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[URL_HASH_ANNOTATION]
                .clone()
        };
        assert_eq!(hash(url).len(), 64);
        assert_ne!(
            hash(url),
            hash("redis://:rotated@redis.jobs:6379"),
            "a new default URL changes the pod template, so the workers restart with it"
        );

        let secret = url_secret(&jq, url);
        assert_eq!(secret.metadata.name.as_deref(), Some(r.name.as_str()));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("team-a"));
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("JobQueue", "emails")
        );
        assert_eq!(
            secret.data.unwrap()[URL_SECRET_KEY].0,
            url.as_bytes(),
            "the Secret holds the URL"
        );
    }

    #[test]
    fn the_url_digest_is_keyed_and_reveals_no_plain_hash() {
        // RFC 4231 test case 2: HMAC-SHA256 with key "Jefe".
        assert_eq!(
            url_digest("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let url = "redis://:hunter2@redis.jobs:6379";
        let plain: String = ring::digest::digest(&ring::digest::SHA256, url.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(url_digest("uid-1", url), plain);
        assert_ne!(url_digest("uid-1", url), url_digest("uid-2", url));
    }

    #[test]
    fn no_deployment_without_a_template() {
        let jq = queue(serde_json::json!({"scaleTargetRef": {"name": "mine"}}));
        assert!(
            worker_deployment(&jq, &RedisUrlSource::Plain("redis://r".into()), None, None)
                .is_none()
        );
    }
}

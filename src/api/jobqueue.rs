//! The `JobQueue` custom resource (docs/architecture.md#resources): a Redis stream with a consumer group, its
//! delivery and retention rules, its workers and how they scale.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;
use crate::queue::keys::{QueueKeys, default_stream};

/// A job queue backed by a Redis stream and a consumer group.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "jobqueue.io",
    version = "v1alpha1",
    kind = "JobQueue",
    namespaced,
    shortname = "jq",
    status = "JobQueueStatus",
    derive = "PartialEq",
    doc = "A job queue: a Redis stream, its consumer group, retries, dead letters and autoscaled workers.",
    printcolumn = r#"{"name": "Lag", "type": "integer", "description": "Entries not yet delivered to the group", "jsonPath": ".status.lag"}"#,
    printcolumn = r#"{"name": "Pending", "type": "integer", "description": "Delivered, not yet acknowledged", "jsonPath": ".status.pending"}"#,
    printcolumn = r#"{"name": "Replicas", "type": "integer", "description": "Current worker replicas", "jsonPath": ".status.replicas"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.scaling) || has(self.workers)").message("spec.scaling needs spec.workers: there is nothing to scale").field_path(".scaling"))]
#[x_kube(validation = Rule::new("!has(self.source) || (!has(self.stream) && !has(self.retention) && !has(self.deadLetter))").message("spec.source adopts another system's queue, which the operator never writes: stream, retention and deadLetter do not apply").field_path(".source"))]
#[x_kube(validation = Rule::new("!has(self.source) || !has(self.deletionPolicy) || self.deletionPolicy == 'Retain'").message("spec.source adopts another system's queue, whose keys the operator never deletes: deletionPolicy must be Retain").field_path(".deletionPolicy"))]
#[serde(rename_all = "camelCase")]
pub struct JobQueueSpec {
    /// An existing queue of another system (RQ, Celery, Sidekiq, BullMQ) to scale the workers
    /// of. The operator only reads that system's own keys: it provisions nothing, writes
    /// nothing and fires no Schedule into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,

    /// How to reach Redis. When absent, the operator's default Redis (`--redis` / REDIS_URL) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,

    /// Redis key of the stream. Default `jobqueue:{<namespace>/<name>}`. An existing stream is
    /// adopted as it is; its data is never dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub stream: Option<String>,

    /// Name of the consumer group workers read with.
    #[serde(default = "default_group")]
    #[schemars(length(min = 1, max = 256))]
    pub consumer_group: String,

    /// Where a newly created group starts reading: `Latest` (only new jobs) or `Beginning`.
    #[serde(default)]
    pub start_from: StartFrom,

    /// How much history the stream keeps. Trimming never drops a job a group still needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,

    /// Redelivery of unacknowledged jobs and retries.
    #[serde(default)]
    pub delivery: DeliverySpec,

    /// Where jobs go after `delivery.maxDeliveries` attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,

    /// The workers that consume the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersSpec>,

    /// Autoscaling of the workers from the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingSpec>,

    /// A record per job (state, attempts, result), read with `job get|wait|list`, and how
    /// long it is kept.
    #[serde(default)]
    pub jobs: JobsSpec,

    /// What happens to the Redis data when the JobQueue is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Another system's queue on Redis, adopted for scaling only.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.prefix) || self.system == 'BullMQ'").message("prefix applies to BullMQ only").field_path(".prefix"))]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// The system that runs the queue.
    pub system: SourceSystem,
    /// The system's own name of the queue (RQ `Queue("...")`, a Celery queue, a Sidekiq
    /// queue, a BullMQ `Queue` name).
    #[schemars(length(min = 1, max = 256))]
    pub queue: String,
    /// BullMQ's key prefix (its `prefix` option). Default `bull`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub prefix: Option<String>,
}

/// A queue system the operator can read.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceSystem {
    /// RQ (Python): `rq:queue:<q>`, its started and scheduled registries, its workers.
    #[serde(rename = "RQ")]
    Rq,
    /// Celery with the Redis broker: the queue's lists and kombu's `unacked` hash.
    Celery,
    /// Sidekiq: `queue:<q>`, the process set and each process's work.
    Sidekiq,
    /// BullMQ: `<prefix>:<q>:wait`, `prioritized`, `delayed`, `active`, `failed`.
    #[serde(rename = "BullMQ")]
    BullMq,
}

fn default_group() -> String {
    "workers".to_string()
}

/// Connection to Redis: exactly one of `url` and `urlSecretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)").message("exactly one of url and urlSecretRef must be set"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A `redis://` or `rediss://` URL, in plain text (development only: it may hold a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub url: Option<String>,
    /// A key of a Secret in the JobQueue's namespace whose value is the Redis URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// TLS settings for `rediss://` URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// A key in a Secret of the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// TLS options for Redis.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret key holding a PEM CA bundle to trust in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip certificate verification (never in production).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Where a newly created consumer group starts.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Only jobs added after the group is created (`$`).
    #[default]
    Latest,
    /// Every entry already in the stream (`0`).
    Beginning,
}

/// Retention of the stream.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.maxLength) || has(self.maxAge)").message("set maxLength, maxAge or both"))]
#[x_kube(validation = Rule::new("!has(self.maxAge) || duration(self.maxAge) <= duration('87600h')").message("maxAge must be at most 87600h (10 years)").field_path(".maxAge"))]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep at most this many entries (trimmed every 10 s, never below what a group still needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_length: Option<i64>,
    /// Drop entries older than this (never one a group still needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

/// Redelivery and retry rules.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("duration(self.visibilityTimeout) > duration('0s')").message("visibilityTimeout must be greater than zero").field_path(".visibilityTimeout"))]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Idle time after which a job that was delivered but not acknowledged is handed out again.
    #[serde(default = "default_visibility_timeout")]
    pub visibility_timeout: Duration,
    /// Deliveries of one job before it goes to the dead-letter stream.
    #[serde(default = "default_max_deliveries")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_deliveries: i32,
    /// Delay before a failed job is offered again (none: immediately after the visibility timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryBackoff>,
}

fn default_visibility_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_max_deliveries() -> i32 {
    5
}

impl Default for DeliverySpec {
    fn default() -> Self {
        DeliverySpec {
            visibility_timeout: default_visibility_timeout(),
            max_deliveries: default_max_deliveries(),
            retry_backoff: None,
        }
    }
}

/// Exponential backoff between attempts: `initial × multiplier^(attempt-2)`, capped at `max`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetryBackoff {
    /// Delay before the second attempt.
    #[serde(default = "default_backoff_initial")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(default = "default_backoff_max")]
    pub max: Duration,
    /// Growth factor per attempt (1 = constant delay).
    #[serde(default = "default_backoff_multiplier")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub multiplier: f64,
}

fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}

fn default_backoff_multiplier() -> f64 {
    2.0
}

/// The dead-letter stream.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    /// Redis key of the dead-letter stream (default `<queue prefix>:dead`). It must share the
    /// queue's hash tag so both live in one Redis Cluster slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub stream: Option<String>,
    /// Keep at most this many dead letters (oldest dropped first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_length: Option<i64>,
}

/// Job records (docs/architecture.md#redis-data-model).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("duration(self.succeededTTL) > duration('0s')").message("succeededTTL must be greater than zero").field_path(".succeededTTL"))]
#[x_kube(validation = Rule::new("duration(self.deadTTL) > duration('0s')").message("deadTTL must be greater than zero").field_path(".deadTTL"))]
#[serde(rename_all = "camelCase")]
pub struct JobsSpec {
    /// Keep a record per job (false: fire-and-forget, nothing to follow).
    #[serde(default = "default_tracking")]
    pub tracking: bool,
    /// How long the record of a succeeded job is kept.
    #[serde(rename = "succeededTTL", default = "default_succeeded_ttl")]
    pub succeeded_ttl: Duration,
    /// How long the record of a dead or cancelled job is kept.
    #[serde(rename = "deadTTL", default = "default_dead_ttl")]
    pub dead_ttl: Duration,
    /// Largest result (or progress) stored, in bytes of JSON text; a larger one is dropped and
    /// the job still succeeds.
    #[serde(default = "default_max_result_size")]
    #[schemars(range(min = 1, max = 16777216))]
    pub max_result_size: i64,
}

/// Upper bound of `spec.jobs.maxResultSize` (16 MiB): a record is one Redis hash.
pub const MAX_RESULT_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

fn default_tracking() -> bool {
    true
}

fn default_succeeded_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_dead_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_max_result_size() -> i64 {
    64 * 1024
}

impl Default for JobsSpec {
    fn default() -> Self {
        JobsSpec {
            tracking: default_tracking(),
            succeeded_ttl: default_succeeded_ttl(),
            dead_ttl: default_dead_ttl(),
            max_result_size: default_max_result_size(),
        }
    }
}

/// The workers of a queue: exactly one of `template` and `scaleTargetRef`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.template) != has(self.scaleTargetRef)").message("exactly one of template and scaleTargetRef must be set"))]
#[serde(rename_all = "camelCase")]
pub struct WorkersSpec {
    /// A pod template; the operator creates and owns a Deployment from it and injects REDIS_URL,
    /// JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: Option<PodTemplateSpec>,
    /// An existing workload with a scale subresource, which the operator only scales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<ScaleTargetRef>,
}

/// The pod template is validated for the fields the operator relies on; the rest is kept as
/// written and validated by the API server when the Deployment is created. Embedding the whole
/// PodSpec schema would make the CRD several hundred kilobytes.
fn pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Pod template of the worker Deployment (core/v1 PodTemplateSpec).",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            },
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["containers"],
                "properties": {
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "image": {"type": "string"},
                                "command": {"type": "array", "items": {"type": "string"}},
                                "args": {"type": "array", "items": {"type": "string"}}
                            }
                        }
                    },
                    "terminationGracePeriodSeconds": {"type": "integer", "format": "int64", "minimum": 0}
                }
            }
        }
    })
}

/// A workload with a scale subresource.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API version of the target.
    #[serde(default = "default_target_api_version")]
    pub api_version: String,
    /// Kind of the target.
    #[serde(default = "default_target_kind")]
    pub kind: String,
    /// Name of the target, in the JobQueue's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

fn default_target_api_version() -> String {
    "apps/v1".to_string()
}

fn default_target_kind() -> String {
    "Deployment".to_string()
}

/// The number autoscaling divides by `targetPerReplica`.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalingMetric {
    /// Lag plus pending: everything not yet finished.
    #[default]
    Backlog,
    /// Entries not yet delivered to the group.
    Lag,
    /// Entries delivered and not yet acknowledged.
    Pending,
}

/// Autoscaling of the workers.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("maxReplicas must be greater than or equal to minReplicas").field_path(".maxReplicas"))]
#[x_kube(validation = Rule::new("duration(self.pollInterval) >= duration('100ms')").message("pollInterval must be at least 100ms").field_path(".pollInterval"))]
#[serde(rename_all = "camelCase")]
pub struct ScalingSpec {
    /// Fewest replicas (0 allows scale to zero after `cooldown`).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub min_replicas: i32,
    /// Most replicas.
    #[schemars(range(min = 1, max = 10000))]
    pub max_replicas: i32,
    /// What is divided by `targetPerReplica`.
    #[serde(default)]
    pub metric: ScalingMetric,
    /// Metric value one replica is expected to handle.
    #[serde(default = "default_target_per_replica")]
    #[schemars(range(min = 1))]
    pub target_per_replica: i64,
    /// Metric value above which the workers scale from 0 to 1.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub activation_threshold: i64,
    /// How often the backlog is read.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// Time with no backlog before scaling to `minReplicas` when that is 0.
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
    /// Scale-down behaviour.
    #[serde(default)]
    pub scale_down: ScaleDownSpec,
    /// Scale-up behaviour.
    #[serde(default)]
    pub scale_up: ScaleUpSpec,
    /// Stop changing the replica count (the current count is kept).
    #[serde(default)]
    pub paused: bool,
}

fn default_target_per_replica() -> i64 {
    100
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_cooldown() -> Duration {
    Duration::from_secs(300)
}

/// Scale-down behaviour.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownSpec {
    /// Scale down to the highest recommendation seen within this window (like the HPA's).
    #[serde(default = "default_stabilization_window")]
    pub stabilization_window: Duration,
    /// Remove at most this many replicas per poll (unbounded when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_step: Option<i32>,
}

fn default_stabilization_window() -> Duration {
    Duration::from_secs(300)
}

impl Default for ScaleDownSpec {
    fn default() -> Self {
        ScaleDownSpec {
            stabilization_window: default_stabilization_window(),
            max_step: None,
        }
    }
}

/// Scale-up behaviour.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUpSpec {
    /// Add at most this many replicas per poll (unbounded when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_step: Option<i32>,
}

/// What deleting the JobQueue does to its Redis data.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Leave the stream, group, delayed set and dead letters in Redis.
    #[default]
    Retain,
    /// Remove the stream, group, delayed set, dead-letter stream and schedule entries.
    Delete,
}

/// Observed state of a JobQueue.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobQueueStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `RedisReachable`, `Scaling`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The stream key in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The consumer group in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// Entries in the stream (including acknowledged ones not yet trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i64>,
    /// Entries not yet delivered to the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Entries delivered and not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i64>,
    /// Idle time of the oldest pending entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age: Option<Duration>,
    /// Consumers registered in the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i64>,
    /// Entries in the dead-letter stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_length: Option<i64>,
    /// Jobs waiting in the delayed set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed: Option<i64>,
    /// Current worker replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Replicas the autoscaler wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// When the replica count was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
}

impl JobQueue {
    /// The stream key: `spec.stream`, or the default derived from namespace and name.
    pub fn stream_key(&self) -> String {
        match &self.spec.stream {
            Some(s) => s.clone(),
            None => default_stream(&self.namespace().unwrap_or_default(), &self.name_any()),
        }
    }

    /// All Redis keys of this queue.
    pub fn queue_keys(&self) -> QueueKeys {
        QueueKeys::new(self.stream_key())
    }

    /// The dead-letter stream key: `spec.deadLetter.stream`, or derived from the stream key.
    pub fn dead_letter_key(&self) -> String {
        self.spec
            .dead_letter
            .as_ref()
            .and_then(|d| d.stream.clone())
            .unwrap_or_else(|| self.queue_keys().dead())
    }
}

//! The `Schedule` custom resource (docs/architecture.md#resources): a cron schedule that enqueues a job into a
//! JobQueue of the same namespace, exactly once per run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cron schedule feeding a JobQueue.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "jobqueue.io",
    version = "v1alpha1",
    kind = "Schedule",
    namespaced,
    shortname = "jqs",
    status = "ScheduleStatus",
    derive = "PartialEq",
    doc = "A cron schedule that enqueues a job into a JobQueue, exactly once per run.",
    printcolumn = r#"{"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"}"#,
    printcolumn = r#"{"name": "Zone", "type": "string", "jsonPath": ".spec.timeZone", "priority": 1}"#,
    printcolumn = r#"{"name": "Queue", "type": "string", "jsonPath": ".spec.queueRef.name"}"#,
    printcolumn = r#"{"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"}"#,
    printcolumn = r#"{"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with a leading
    /// seconds field, or a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,

    /// IANA time zone the expression is evaluated in (`Europe/Berlin`). Daylight-saving rules
    /// follow cron and the Kubernetes CronJob: a skipped local time does not fire, a repeated
    /// one fires once.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// The JobQueue in this namespace that receives the jobs.
    pub queue_ref: QueueRef,

    /// JSON object delivered as the job's `payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "payload_schema")]
    pub payload: Option<serde_json::Value>,

    /// Do not fire while true. Runs that fall into a suspension are not fired afterwards.
    #[serde(default)]
    pub suspend: bool,

    /// A run missed by more than this many seconds is not fired late (counted as missed).
    /// At most 31536000 (a year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub starting_deadline_seconds: Option<i64>,

    /// What to do with runs missed while nothing could fire them (operator down).
    #[serde(default)]
    pub misfire_policy: MisfirePolicy,

    /// Whether a run may fire while the previous run's job is still unread or unacknowledged.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn payload_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Free-form JSON object delivered as the job payload.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Reference to a JobQueue in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct QueueRef {
    /// Name of the JobQueue.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Runs missed while no operator could fire them.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MisfirePolicy {
    /// Drop missed runs (they are counted in `status.missedRuns`).
    Skip,
    /// Fire one catch-up job for the most recent missed run (like a Kubernetes CronJob).
    #[default]
    FireOnce,
}

/// Overlap between runs.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    /// Always fire.
    #[default]
    Allow,
    /// Skip a run while the previous run's job is unread or unacknowledged.
    Forbid,
}

/// Observed state of a Schedule.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the last job was enqueued for (its scheduled time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Job id of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_id: Option<String>,
    /// Runs not fired because nothing could fire them in time.
    #[serde(default)]
    pub missed_runs: i64,
    /// Runs skipped by `concurrencyPolicy: Forbid`.
    #[serde(default)]
    pub skipped_runs: i64,
}

//! The runtime's [`Reporter`] in a cluster: observations become JobQueue / Schedule status (via
//! the [`StatusWriter`]) and decisions become Kubernetes Events.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType, Recorder};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{Duration, JobQueueStatus, ScheduleStatus, conditions};
use crate::operator::runtime::{ObjectId, QueueHealth, QueueObservation, Reporter, RuntimeEvent};
use crate::queue::metrics::QueueMetrics;
use crate::queue::schedules::ScheduleState;

use super::status::StatusWriter;

use crate::operator::reasons::{
    CONNECTED, METRIC_UNAVAILABLE, PROVISIONED, REDIS_UNREACHABLE, SCALING_ACTIVE,
};

/// Events the runtime publishes at once; the rest wait their turn.
static EVENTS_IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Status and Events for the runtime.
pub struct KubeReporter {
    pub status: Arc<StatusWriter>,
    pub recorder: Recorder,
}

/// `RedisReachable=True`: Redis answered.
pub fn mark_reachable(list: &mut Vec<Condition>, generation: Option<i64>, now: Timestamp) {
    conditions::set(
        list,
        conditions::REDIS_REACHABLE,
        true,
        CONNECTED,
        "Redis answers",
        generation,
        now,
    );
}

fn to_time(t: std::time::SystemTime) -> Option<Time> {
    Timestamp::try_from(t).ok().map(Time)
}

/// Copies a schedule's stored state into its status; `observedGeneration` and `conditions`
/// are the controller's to set.
pub fn schedule_status(state: &ScheduleState, status: &mut ScheduleStatus) {
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map(Time)
    };
    status.last_schedule_time = time(state.last_schedule_ms);
    status.next_schedule_time = time(state.next_schedule_ms);
    status.last_job_id = state.last_job_id.clone();
    status.missed_runs = i64::try_from(state.missed_runs).unwrap_or(i64::MAX);
    status.skipped_runs = i64::try_from(state.skipped_runs).unwrap_or(i64::MAX);
}

/// The queue's numbers as read from Redis.
fn queue_metrics(s: &mut JobQueueStatus, m: &QueueMetrics) {
    s.length = count(m.length);
    s.lag = count(m.lag);
    s.pending = count(m.pending);
    s.oldest_pending_age = m
        .oldest_pending_age
        .map(|d| Duration::from_secs(d.as_secs()));
    s.consumers = count(m.consumers.len() as u64);
    s.dead_letter_length = count(m.dead_letter_length);
    s.delayed = count(m.delayed);
}

/// `Scaling`: whether the autoscaler can read its metric, and its last reason.
fn scaling_condition(
    list: &mut Vec<Condition>,
    o: &QueueObservation,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (ok, reason) = if o.scaling_blocked {
        (false, METRIC_UNAVAILABLE)
    } else {
        (true, SCALING_ACTIVE)
    };
    let message = o.scaling_reason.clone().unwrap_or_default();
    conditions::set(
        list,
        conditions::SCALING,
        ok,
        reason,
        message,
        generation,
        now,
    );
}

fn count(n: u64) -> Option<i64> {
    Some(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Reporter for KubeReporter {
    fn queue_observed(&self, queue: &ObjectId, o: &QueueObservation) {
        let now = Timestamp::now();
        self.status.update_jobqueue(queue, |s| {
            let generation = s.observed_generation;
            match &o.health {
                QueueHealth::Ok(m) => {
                    queue_metrics(s, m);
                    mark_reachable(&mut s.conditions, generation, now);
                    let ready_lost_to_redis = s
                        .conditions
                        .iter()
                        .any(|c| c.type_ == conditions::READY && c.reason == REDIS_UNREACHABLE);
                    if ready_lost_to_redis {
                        conditions::set(
                            &mut s.conditions,
                            conditions::READY,
                            true,
                            PROVISIONED,
                            "Redis is reachable again",
                            generation,
                            now,
                        );
                    }
                }
                QueueHealth::RedisUnreachable(e) => {
                    conditions::set(
                        &mut s.conditions,
                        conditions::REDIS_REACHABLE,
                        false,
                        REDIS_UNREACHABLE,
                        e.clone(),
                        generation,
                        now,
                    );
                    conditions::set(
                        &mut s.conditions,
                        conditions::READY,
                        false,
                        REDIS_UNREACHABLE,
                        e.clone(),
                        generation,
                        now,
                    );
                }
                QueueHealth::Error(e) => {
                    mark_reachable(&mut s.conditions, generation, now);
                    tracing::warn!(queue = %queue, error = %e, "reading the queue failed");
                }
            }
            if o.replicas.is_some() {
                s.replicas = o.replicas.map(|r| r as i32);
            }
            if let Some(d) = o.desired_replicas {
                s.desired_replicas = Some(d as i32);
                scaling_condition(&mut s.conditions, o, generation, now);
            }
            if let Some(t) = o.last_scale_time.and_then(to_time) {
                s.last_scale_time = Some(t);
            }
        });
    }

    fn schedule_observed(&self, schedule: &ObjectId, state: &ScheduleState) {
        self.status
            .update_schedule(schedule, |s| schedule_status(state, s));
    }

    fn queue_event(&self, queue: &ObjectId, event: RuntimeEvent) {
        let Some(reference) = self.status.jobqueue_ref(queue) else {
            return;
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            // Bounded: each request in flight holds an HTTP/1 connection of its own (with its
            // buffers), and a thousand queues starting at once would open a thousand.
            let Ok(_permit) = EVENTS_IN_FLIGHT.acquire().await else {
                return;
            };
            let ev = Event {
                type_: if event.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: event.reason,
                note: Some(event.message),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::warn!(error = %e, "publishing an event failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fills_the_status_fields_it_owns() {
        let state = ScheduleState {
            last_schedule_ms: Some(1_767_225_600_000),
            next_schedule_ms: Some(1_767_225_660_000),
            last_job_id: Some("sched-s-1767225600000".into()),
            last_entry_id: Some("1767225600003-0".into()),
            missed_runs: 4,
            skipped_runs: 2,
            fired_runs: 9,
        };
        let mut status = ScheduleStatus {
            observed_generation: Some(3),
            ..Default::default()
        };
        schedule_status(&state, &mut status);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "observedGeneration": 3,
                "lastScheduleTime": "2026-01-01T00:00:00Z",
                "nextScheduleTime": "2026-01-01T00:01:00Z",
                "lastJobId": "sched-s-1767225600000",
                "missedRuns": 4,
                "skippedRuns": 2,
            })
        );
    }
}

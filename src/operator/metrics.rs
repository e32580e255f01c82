//! Prometheus series the operator exposes on `/metrics` (README "Metrics" lists them).
//!
//! Queue and schedule gauges carry `namespace` and `name` labels; nothing carries a Redis URL
//! (it may hold a password).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::queue::jobs::JobCounts;
use crate::queue::jobs::stats::DurationCounts;
use crate::queue::metrics::QueueMetrics;

/// Labels of a per-queue or per-schedule series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
}

impl ObjectLabels {
    /// Labels for `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Direction of a scale event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
}

/// Labels of a scale event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScaleLabels {
    /// Namespace of the JobQueue.
    pub namespace: String,
    /// Name of the JobQueue.
    pub name: String,
    /// Up or down.
    pub direction: Direction,
}

/// Labels of a controller's reconcile series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `jobqueue` or `schedule`.
    pub controller: String,
}

/// Labels of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `jobqueue` or `schedule`.
    pub controller: String,
    /// The failed reconcile's error kind: `KubeApi`, `Finalizer`, `Redis` or `NotReady`.
    pub reason: String,
}

/// Every series, registered once.
#[derive(Clone)]
pub struct Metrics {
    lag: Family<ObjectLabels, Gauge>,
    pending: Family<ObjectLabels, Gauge>,
    length: Family<ObjectLabels, Gauge>,
    delayed: Family<ObjectLabels, Gauge>,
    dead_letters: Family<ObjectLabels, Gauge>,
    oldest_pending_age: Family<ObjectLabels, Gauge<f64, AtomicU64>>,
    consumers: Family<ObjectLabels, Gauge>,
    replicas: Family<ObjectLabels, Gauge>,
    desired_replicas: Family<ObjectLabels, Gauge>,
    scale_events: Family<ScaleLabels, Counter>,
    redelivered: Family<ObjectLabels, Counter>,
    dead_lettered: Family<ObjectLabels, Counter>,
    schedule_fires: Family<ObjectLabels, Counter>,
    schedule_missed: Family<ObjectLabels, Counter>,
    schedule_skipped: Family<ObjectLabels, Counter>,
    jobs_succeeded: Family<ObjectLabels, Counter>,
    jobs_failed: Family<ObjectLabels, Counter>,
    jobs_dead: Family<ObjectLabels, Counter>,
    jobs_cancelled: Family<ObjectLabels, Counter>,
    job_duration: Family<ObjectLabels, StoredHistogram>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    metrics_poll_duration: Histogram,
    leader: Gauge,
}

impl Metrics {
    /// Creates the series and registers them in `registry` under the `jobqueue` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        let r = registry.sub_registry_with_prefix("jobqueue");
        m.register_queue_gauges(r);
        m.register_events(r);
        m.register_jobs(r);
        m
    }

    fn unregistered() -> Self {
        Metrics {
            lag: Family::default(),
            pending: Family::default(),
            length: Family::default(),
            delayed: Family::default(),
            dead_letters: Family::default(),
            oldest_pending_age: Family::default(),
            consumers: Family::default(),
            replicas: Family::default(),
            desired_replicas: Family::default(),
            scale_events: Family::default(),
            redelivered: Family::default(),
            dead_lettered: Family::default(),
            schedule_fires: Family::default(),
            schedule_missed: Family::default(),
            schedule_skipped: Family::default(),
            jobs_succeeded: Family::default(),
            jobs_failed: Family::default(),
            jobs_dead: Family::default(),
            jobs_cancelled: Family::default(),
            job_duration: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            reconcile_errors: Family::default(),
            metrics_poll_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            leader: Gauge::default(),
        }
    }

    /// The gauges read from each queue's snapshot.
    fn register_queue_gauges(&self, r: &mut Registry) {
        r.register(
            "lag",
            "Entries not yet delivered to the consumer group",
            self.lag.clone(),
        );
        r.register(
            "pending",
            "Entries delivered and not yet acknowledged",
            self.pending.clone(),
        );
        r.register("length", "Entries in the stream", self.length.clone());
        r.register(
            "delayed",
            "Jobs waiting in the delayed set",
            self.delayed.clone(),
        );
        r.register(
            "dead_letters",
            "Entries in the dead-letter stream",
            self.dead_letters.clone(),
        );
        r.register(
            "oldest_pending_age_seconds",
            "Idle time of the oldest pending entry",
            self.oldest_pending_age.clone(),
        );
        r.register(
            "consumers",
            "Consumers in the group",
            self.consumers.clone(),
        );
        r.register("replicas", "Current worker replicas", self.replicas.clone());
        r.register(
            "desired_replicas",
            "Worker replicas the autoscaler wants",
            self.desired_replicas.clone(),
        );
    }

    /// Counters of what happened, and the operator's own series.
    fn register_events(&self, r: &mut Registry) {
        r.register(
            "scale_events",
            "Replica changes written by the autoscaler",
            self.scale_events.clone(),
        );
        r.register(
            "redelivered",
            "Jobs handed out again after the visibility timeout or a dead consumer",
            self.redelivered.clone(),
        );
        r.register(
            "dead_lettered",
            "Jobs moved to the dead-letter stream",
            self.dead_lettered.clone(),
        );
        r.register(
            "schedule_fires",
            "Jobs enqueued by schedules",
            self.schedule_fires.clone(),
        );
        r.register(
            "schedule_missed",
            "Schedule runs missed (not fired in time)",
            self.schedule_missed.clone(),
        );
        r.register(
            "schedule_skipped",
            "Schedule runs skipped by concurrencyPolicy Forbid",
            self.schedule_skipped.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.reconcile_duration.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that failed",
            self.reconcile_errors.clone(),
        );
        r.register(
            "metrics_poll_duration_seconds",
            "Duration of one metrics snapshot of a Redis endpoint (all its queues)",
            self.metrics_poll_duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
    }

    /// Counters of tracked jobs, kept in each queue's Redis.
    fn register_jobs(&self, r: &mut Registry) {
        r.register(
            "jobs_succeeded",
            "Tracked jobs that succeeded",
            self.jobs_succeeded.clone(),
        );
        r.register(
            "jobs_failed",
            "Attempts of tracked jobs that failed and were retried",
            self.jobs_failed.clone(),
        );
        r.register(
            "jobs_dead",
            "Tracked jobs that went dead",
            self.jobs_dead.clone(),
        );
        r.register(
            "jobs_cancelled",
            "Tracked jobs cancelled",
            self.jobs_cancelled.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Run time of succeeded tracked jobs (their last attempt)",
            self.job_duration.clone(),
        );
    }

    /// Exports one reading of a queue's gauges.
    pub fn queue_observed(&self, namespace: &str, name: &str, m: &QueueMetrics) {
        let labels = ObjectLabels::new(namespace, name);
        let set = |f: &Family<ObjectLabels, Gauge>, v: u64| {
            f.get_or_create(&labels)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.lag, m.lag);
        set(&self.pending, m.pending);
        set(&self.length, m.length);
        set(&self.delayed, m.delayed);
        set(&self.dead_letters, m.dead_letter_length);
        set(&self.consumers, m.consumers.len() as u64);
        self.oldest_pending_age
            .get_or_create(&labels)
            .set(m.oldest_pending_age.map_or(0.0, |d| d.as_secs_f64()));
        // Counters of a served queue exist from 0, so rate() and alerts work before the first event.
        self.redelivered.get_or_create(&labels).inc_by(0);
        self.dead_lettered.get_or_create(&labels).inc_by(0);
        self.job_counts(&labels, &m.jobs);
    }

    /// Brings a queue's job counters to the totals stored in its Redis.
    fn job_counts(&self, labels: &ObjectLabels, c: &JobCounts) {
        for (family, stored) in [
            (&self.jobs_succeeded, c.succeeded),
            (&self.jobs_failed, c.failed),
            (&self.jobs_dead, c.dead),
            (&self.jobs_cancelled, c.cancelled),
        ] {
            sync_counter(family, labels, stored);
        }
        self.job_duration.get_or_create(labels).set(&c.duration);
    }

    /// Counts one replica change written by the autoscaler.
    pub fn scaled(&self, namespace: &str, name: &str, direction: Direction) {
        self.scale_events
            .get_or_create(&ScaleLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                direction,
            })
            .inc();
    }

    /// The replica count the autoscaler wants for a queue.
    pub fn replicas_wanted(&self, namespace: &str, name: &str, replicas: u32) {
        self.desired_replicas
            .get_or_create(&ObjectLabels::new(namespace, name))
            .set(i64::from(replicas));
    }

    /// The replica count a queue's workers have.
    pub fn replicas_observed(&self, namespace: &str, name: &str, replicas: u32) {
        self.replicas
            .get_or_create(&ObjectLabels::new(namespace, name))
            .set(i64::from(replicas));
    }

    /// Counts jobs the janitor handed out again and jobs it moved to the dead letters.
    pub fn jobs_reclaimed(&self, namespace: &str, name: &str, retried: u64, dead_lettered: u64) {
        let labels = ObjectLabels::new(namespace, name);
        if retried > 0 {
            self.redelivered.get_or_create(&labels).inc_by(retried);
        }
        if dead_lettered > 0 {
            self.dead_lettered
                .get_or_create(&labels)
                .inc_by(dead_lettered);
        }
    }

    /// Brings a schedule's counters to the totals stored with the schedule in Redis.
    pub fn schedule_counts(
        &self,
        namespace: &str,
        name: &str,
        fired: u64,
        missed: u64,
        skipped: u64,
    ) {
        let labels = ObjectLabels::new(namespace, name);
        for (family, stored) in [
            (&self.schedule_fires, fired),
            (&self.schedule_missed, missed),
            (&self.schedule_skipped, skipped),
        ] {
            sync_counter(family, &labels, stored);
        }
    }

    /// Records how long one reconcile took.
    pub fn reconcile_done(&self, controller: &str, duration: Duration) {
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Counts a failed reconcile by its error kind.
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Records how long one metrics snapshot of a Redis endpoint took.
    pub fn snapshot_done(&self, duration: Duration) {
        self.metrics_poll_duration.observe(duration.as_secs_f64());
    }

    /// Whether this replica holds the leader lease.
    pub fn leading(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Drops every series of a deleted queue so it stops being exported.
    pub fn forget_queue(&self, labels: &ObjectLabels) {
        for f in [
            &self.lag,
            &self.pending,
            &self.length,
            &self.delayed,
            &self.dead_letters,
            &self.consumers,
            &self.replicas,
            &self.desired_replicas,
        ] {
            f.remove(labels);
        }
        self.oldest_pending_age.remove(labels);
        for f in [
            &self.jobs_succeeded,
            &self.jobs_failed,
            &self.jobs_dead,
            &self.jobs_cancelled,
        ] {
            f.remove(labels);
        }
        self.job_duration.remove(labels);
        self.redelivered.remove(labels);
        self.dead_lettered.remove(labels);
        for direction in [Direction::Up, Direction::Down] {
            self.scale_events.remove(&ScaleLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                direction,
            });
        }
    }

    /// Drops every series of a deleted schedule.
    pub fn forget_schedule(&self, labels: &ObjectLabels) {
        for f in [
            &self.schedule_fires,
            &self.schedule_missed,
            &self.schedule_skipped,
        ] {
            f.remove(labels);
        }
    }
}

/// Brings a counter to a total stored elsewhere.
fn sync_counter(family: &Family<ObjectLabels, Counter>, labels: &ObjectLabels, stored: u64) {
    let exported = family.get_or_create(labels).get();
    if stored >= exported {
        family.get_or_create(labels).inc_by(stored - exported);
    } else {
        // The stored totals started again (their key was deleted, or Redis lost it): a new
        // series, which Prometheus reads as a counter reset.
        family.remove(labels);
        family.get_or_create(labels).inc_by(stored);
    }
}

/// A histogram whose totals are kept elsewhere (a queue's Redis) and exported as last read.
#[derive(Clone, Debug, Default)]
pub struct StoredHistogram(Arc<Mutex<DurationCounts>>);

impl StoredHistogram {
    /// Replaces the totals with the ones read.
    pub fn set(&self, counts: &DurationCounts) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = counts.clone();
    }
}

impl TypedMetric for StoredHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StoredHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        encoder.encode_histogram::<NoLabelSet>(c.sum.as_secs_f64(), c.count, &c.buckets(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_prefix_and_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let l = ObjectLabels::new("team-a", "emails");
        m.lag.get_or_create(&l).set(3400);
        m.scale_events
            .get_or_create(&ScaleLabels {
                namespace: "team-a".into(),
                name: "emails".into(),
                direction: Direction::Up,
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"jobqueue_lag{namespace="team-a",name="emails"} 3400"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"jobqueue_scale_events_total{namespace="team-a",name="emails",direction="Up"} 1"#
            ),
            "{text}"
        );
        m.forget_queue(&l);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains(r#"jobqueue_lag{"#), "{text}");
    }

    #[test]
    fn job_counters_follow_the_stored_totals() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let mut c = JobCounts {
            succeeded: 2,
            dead: 1,
            ..JobCounts::default()
        };
        c.duration.buckets = vec![1];
        c.duration.above = 1;
        c.duration.count = 2;
        c.duration.sum = Duration::from_millis(4_000_005);
        m.job_counts(&ObjectLabels::new("team-a", "emails"), &c);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"jobqueue_jobs_succeeded_total{namespace="team-a",name="emails"} 2"#,
            r#"jobqueue_jobs_dead_total{namespace="team-a",name="emails"} 1"#,
            r#"jobqueue_jobs_failed_total{namespace="team-a",name="emails"} 0"#,
            r#"jobqueue_job_duration_seconds_count{namespace="team-a",name="emails"} 2"#,
            r#"jobqueue_job_duration_seconds_bucket{le="0.01",namespace="team-a",name="emails"} 1"#,
            r#"jobqueue_job_duration_seconds_bucket{le="+Inf",namespace="team-a",name="emails"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}

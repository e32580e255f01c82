//! What the runtime knows of its queues and schedules, read out for the dashboard: the last
//! reading, replicas, the autoscaler's last decision and the recent trend. Copies, taken under
//! the lock and released at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::operator::dashboard::history::{DecisionRecord, Point, combine};
use crate::queue::metrics::QueueMetrics;

use super::{ObjectId, QueueEntry, QueueSlot, Runtime, lock};

/// A served queue as last seen.
#[derive(Clone)]
pub struct QueueView {
    pub entry: Arc<QueueEntry>,
    /// The last successful reading (`None` before the first one or while Redis is unreachable).
    pub metrics: Option<QueueMetrics>,
    /// Why the last poll failed, if it did.
    pub error: Option<String>,
    /// Worker replicas asked for now.
    pub replicas: Option<u32>,
    /// What the autoscaler wants and why.
    pub desired: Option<u32>,
    pub reason: Option<String>,
    /// When the oldest reading of the last hour was taken.
    pub since: Option<SystemTime>,
    /// Readings of the last hour, oldest first (empty unless asked for).
    pub points: Vec<Point>,
    /// Recent decisions, newest first (empty unless asked for).
    pub decisions: Vec<DecisionRecord>,
}

/// A schedule the runtime serves, and the queue it fires into.
#[derive(Debug, Clone)]
pub struct ScheduleRef {
    pub id: ObjectId,
    pub queue: ObjectId,
}

fn view(slot: &QueueSlot, trend: bool) -> QueueView {
    QueueView {
        entry: slot.entry.clone(),
        metrics: slot.last_metrics.clone(),
        error: slot.last_error.clone(),
        replicas: slot.replicas,
        desired: slot.last_decision.as_ref().map(|d| d.0),
        reason: slot.last_decision.as_ref().map(|d| d.1.clone()),
        since: slot.trend.since(),
        points: if trend {
            slot.trend.points()
        } else {
            Vec::new()
        },
        decisions: if trend {
            slot.trend.decisions()
        } else {
            Vec::new()
        },
    }
}

impl Runtime {
    /// Every served queue, by namespace and name; `trend`: with readings and decisions.
    pub fn queue_views(&self, trend: bool) -> Vec<QueueView> {
        lock(&self.inner.queues)
            .values()
            .map(|slot| view(slot, trend))
            .collect()
    }

    /// The readings of the queues `include` selects, added up in `slot`-long slots. Read in
    /// place: thousands of queues' hours of readings are never copied.
    pub fn combined_trend(
        &self,
        include: impl Fn(&ObjectId) -> bool,
        slot: Duration,
    ) -> Vec<Point> {
        let queues = lock(&self.inner.queues);
        combine(
            queues
                .iter()
                .filter(|(id, _)| include(id))
                .map(|(_, s)| s.trend.iter_points()),
            slot,
        )
    }

    /// One served queue, with its trend.
    pub fn queue_view(&self, id: &ObjectId) -> Option<QueueView> {
        lock(&self.inner.queues)
            .get(id)
            .map(|slot| view(slot, true))
    }

    /// Every schedule the runtime serves, by namespace and name.
    pub fn schedule_refs(&self) -> Vec<ScheduleRef> {
        lock(&self.inner.schedules)
            .iter()
            .map(|(id, slot)| ScheduleRef {
                id: id.clone(),
                queue: slot.queue.clone(),
            })
            .collect()
    }
}

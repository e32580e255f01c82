//! Where the runtime reports what it sees and decides: Kubernetes status and Events in a
//! cluster, a terminal view and log lines in local mode.

use std::time::SystemTime;

use crate::queue::metrics::QueueMetrics;
use crate::queue::schedules::ScheduleState;

/// A namespaced resource name (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What one metrics poll found for a queue.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueHealth {
    /// Redis answered and the queue is provisioned.
    Ok(QueueMetrics),
    /// Redis could not be reached or answered with an error.
    RedisUnreachable(String),
    /// Reading the queue failed for another reason (a key of the wrong type, ...).
    Error(String),
}

/// A queue's observed state, reported at a bounded rate (and at once when replicas change).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueObservation {
    pub health: QueueHealth,
    /// Worker replicas asked for now, if the queue has workers.
    pub replicas: Option<u32>,
    /// What the autoscaler wants, if the queue has a scaling policy.
    pub desired_replicas: Option<u32>,
    /// Why (the autoscaler's last reason).
    pub scaling_reason: Option<String>,
    /// The autoscaler holds because the metric cannot be read.
    pub scaling_blocked: bool,
    /// When the runtime last changed the replica count.
    pub last_scale_time: Option<SystemTime>,
}

/// A decision or incident a person should see (a Kubernetes Event in a cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// CamelCase reason: `ScaledUp`, `ScaledDown`, `StreamRecreated`, `JobsReclaimed`, ...
    pub reason: String,
    /// One sentence.
    pub message: String,
}

impl RuntimeEvent {
    /// A `Normal` event.
    pub fn normal(reason: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeEvent {
            warning: false,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: impl Into<String>, message: impl Into<String>) -> Self {
        RuntimeEvent {
            warning: true,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Receives what the runtime observes. Implementations must not block: they hand the work to
/// their own tasks (API writes) or print.
pub trait Reporter: Send + Sync + 'static {
    /// A queue's state (bounded rate).
    fn queue_observed(&self, queue: &ObjectId, observation: &QueueObservation);
    /// A schedule's state as stored in Redis (bounded rate).
    fn schedule_observed(&self, schedule: &ObjectId, state: &ScheduleState);
    /// An event about a queue.
    fn queue_event(&self, queue: &ObjectId, event: RuntimeEvent);
}

//! Every `reason` the operator writes into a condition or an Event, defined once. The
//! `Ready=False` reasons are listed in [`READY_FALSE_REASONS`], and README.md's troubleshooting
//! table says what to do about each (a test checks that none is missing).

/// `Ready=False`: the spec breaks a rule; the message names the field. Waits for a change.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// `Ready=False`: the Secret (or its key) named by `spec.redis.urlSecretRef` or
/// `spec.redis.tls.caSecretRef` does not exist.
pub const REDIS_SECRET_MISSING: &str = "RedisSecretMissing";
/// `Ready=False`: the URL read from `spec.redis.urlSecretRef` is not a Redis URL.
pub const INVALID_REDIS_URL: &str = "InvalidRedisUrl";
/// `Ready=False` and `RedisReachable=False`: Redis does not answer.
pub const REDIS_UNREACHABLE: &str = "RedisUnreachable";
/// `Ready=False`: `spec.workers.scaleTargetRef` names nothing with a scale subresource.
pub const SCALE_TARGET_NOT_FOUND: &str = "ScaleTargetNotFound";
/// `Ready=False`: a Deployment or Secret the queue would manage (`<name>-workers`,
/// `<name>-workers-redis`) exists and belongs to something else; it is left alone.
pub const OBJECT_NOT_OWNED: &str = "ObjectNotOwned";
/// `Ready=False`: the stream is claimed by another JobQueue (named in the message); nothing is
/// done to it on this queue's behalf.
pub const STREAM_CLAIMED: &str = "StreamClaimed";
/// `Ready=False`: `--per-queue-users required`, and the default Redis does not let the
/// operator give the queue a Redis user of its own (no `ACL SETUSER` permission, Redis before
/// 6.0, or a Redis Cluster); the message says which.
pub const PER_QUEUE_USER_UNAVAILABLE: &str = "PerQueueUserUnavailable";
/// `Ready=False` (Schedule): `spec.queueRef` names no JobQueue.
pub const QUEUE_NOT_FOUND: &str = "QueueNotFound";
/// `Ready=False` (Schedule): the JobQueue exists but is not served yet.
pub const QUEUE_NOT_READY: &str = "QueueNotReady";
/// `Ready=False` (Schedule): `spec.queueRef` names a JobQueue with `spec.source`, another
/// system's queue, which the operator never writes.
pub const QUEUE_ADOPTED: &str = "QueueAdopted";
/// `Ready=False` (Schedule): writing the schedule into its queue's Redis failed.
pub const REDIS_ERROR: &str = "RedisError";
/// `Ready=False` (Schedule being deleted): its armed run waits for its queue to be served.
pub const REMOVAL_PENDING: &str = "RemovalPending";

/// `Ready=True` (JobQueue), and the Event of the first provisioning.
pub const PROVISIONED: &str = "Provisioned";
/// `Ready=True` (JobQueue with `spec.source`), and the Event when it is first read.
pub const ADOPTED: &str = "Adopted";
/// `Ready=True` (Schedule): armed in its queue.
pub const SCHEDULED: &str = "Scheduled";
/// `RedisReachable=True`.
pub const CONNECTED: &str = "Connected";
/// `IsolatedCredentials=True`: the workers connect as the queue's own Redis user.
pub const PER_QUEUE_USER: &str = "PerQueueUser";
/// `IsolatedCredentials=False`, and its Warning Event: the workers get the operator's default
/// Redis URL, which reaches every queue on that Redis.
pub const SHARED_CREDENTIALS: &str = "SharedCredentials";
/// `Scaling=True`: the autoscaler reads its metric.
pub const SCALING_ACTIVE: &str = "Active";

// Event reasons. The scaling decisions' and provisioning repairs' reasons are defined by the
// cores that make those decisions; they are listed here so that this module names them all.
pub use crate::queue::provision::{CONSUMER_GROUP_RECREATED, STREAM_RECREATED};
pub use crate::scaling::event_reasons::{
    HOLDING, METRIC_UNAVAILABLE, SCALED_DOWN, SCALED_TO_ZERO, SCALED_UP, SCALING_PAUSED,
};
/// Event: the janitor moved jobs to the dead-letter stream.
pub const JOBS_DEAD_LETTERED: &str = "JobsDeadLettered";
/// Event: the janitor handed out again the jobs of a consumer that is gone, or whose
/// visibility timeout expired.
pub const JOBS_RECLAIMED: &str = "JobsReclaimed";
/// Event (Warning): writing the scale target's replica count failed.
pub const SCALE_FAILED: &str = "ScaleFailed";
/// Event (Warning): the queue's Redis cannot run the `jobqueue` function library (no Functions
/// before Redis 7.0, or loading it was refused); the queue is served without job records.
pub const JOB_TRACKING_UNAVAILABLE: &str = "JobTrackingUnavailable";

/// Every reason a `Ready` condition may be `False` with.
pub const READY_FALSE_REASONS: &[&str] = &[
    INVALID_SPEC,
    REDIS_SECRET_MISSING,
    INVALID_REDIS_URL,
    REDIS_UNREACHABLE,
    SCALE_TARGET_NOT_FOUND,
    OBJECT_NOT_OWNED,
    STREAM_CLAIMED,
    PER_QUEUE_USER_UNAVAILABLE,
    QUEUE_NOT_FOUND,
    QUEUE_NOT_READY,
    QUEUE_ADOPTED,
    REDIS_ERROR,
    REMOVAL_PENDING,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The `## Troubleshooting` section of README.md.
    fn troubleshooting() -> &'static str {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("## Troubleshooting")
            .expect("README.md has a ## Troubleshooting section");
        let rest = &readme[start + 2..];
        let end = rest.find("\n## ").map_or(rest.len(), |i| i);
        &rest[..end]
    }

    #[test]
    fn readme_explains_every_ready_false_reason() {
        let table: Vec<&str> = troubleshooting()
            .lines()
            .filter(|l| l.starts_with('|'))
            .collect();
        for reason in READY_FALSE_REASONS {
            let cell = format!("`{reason}`");
            assert!(
                table.iter().any(|row| row.contains(&cell)),
                "README.md's troubleshooting table has no row for {reason}"
            );
        }
    }
}

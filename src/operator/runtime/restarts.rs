//! A worker that restarted in place (its container crashed; same pod, so same consumer name)
//! lost what it had read before the restart: those jobs are handed to other workers at once
//! instead of after the visibility timeout. What it read since is its own and stays.

use std::time::{Duration, Instant};

use crate::queue::error::QueueError;
use crate::queue::janitor;

use super::{ObjectId, Runtime, RuntimeEvent, lock};

impl Runtime {
    /// Hands out again what `consumer` of `id` has held for at least `min_idle` (as of this
    /// call): what its worker read before it restarted. The consumer stays.
    pub async fn consumer_restarted(
        &self,
        id: &ObjectId,
        consumer: &str,
        min_idle: Duration,
    ) -> Result<(), QueueError> {
        // `min_idle` is a cut-off in time: waiting for a connection must move it back with the
        // clock, or a job read just after the restart would age into it meanwhile.
        let called = Instant::now();
        let inner = &self.inner;
        let Some(entry) = lock(&inner.queues).get(id).map(|s| s.entry.clone()) else {
            return Ok(());
        };
        if entry.config.is_adopted() {
            return Ok(()); // its own system hands a lost worker's jobs on
        }
        let mut conn = inner.pool.get(&entry.redis_url).await?;
        let r = janitor::reclaim_consumer_idle(
            &mut conn,
            &entry.config,
            consumer,
            min_idle + called.elapsed(),
            &inner.options.janitor,
        )
        .await?;
        inner
            .metrics
            .jobs_reclaimed(&id.namespace, &id.name, r.retried, r.dead_lettered);
        if r.retried + r.dead_lettered > 0 {
            inner.reporter.queue_event(
                id,
                RuntimeEvent::normal(
                    crate::operator::reasons::JOBS_RECLAIMED,
                    format!(
                        "worker {consumer:?} restarted: {} job(s) it held before handed to other workers, {} dead-lettered",
                        r.retried, r.dead_lettered
                    ),
                ),
            );
        }
        tracing::info!(queue = %id, consumer, ?min_idle, retried = r.retried, dead_lettered = r.dead_lettered, "reclaimed jobs a restarted worker held before its restart");
        Ok(())
    }
}

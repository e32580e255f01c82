//! Schedules written into queues' Redis: writing and removing them, and removing the runs of
//! schedules that now point at another queue (docs/architecture.md#scheduling).

use std::sync::Arc;
use std::time::Duration;

use crate::operator::metrics::ObjectLabels;
use crate::queue::schedules::{self, ScheduleDefinition, ScheduleError};

use super::{Inner, ObjectId, QueueEntry, Runtime, RuntimeError, ScheduleSlot, lock};

impl Runtime {
    /// Writes a schedule into its queue's Redis (it fires from then on) and wakes the
    /// scheduler of that endpoint.
    pub async fn upsert_schedule(
        &self,
        id: &ObjectId,
        queue: &ObjectId,
        def: &ScheduleDefinition,
    ) -> Result<(), RuntimeError> {
        let entry = self
            .queue_entry(queue)
            .ok_or_else(|| RuntimeError::QueueNotServed(queue.clone()))?;
        if entry.config.is_adopted() {
            return Err(RuntimeError::QueueAdopted(queue.clone()));
        }
        // Recorded before anything is looked up: a queue served concurrently checks this map
        // after it is served itself (see drop_moved_schedules), and a sweep requested below
        // reads it later still, so an old run of this schedule in another queue is found.
        let (previous, moved) = {
            let mut known = lock(&self.inner.schedules);
            let previous = known.get(id).map(|s| s.queue.clone());
            let slot = known.entry(id.clone()).or_insert_with(|| ScheduleSlot {
                queue: queue.clone(),
                keys: None,
                last_reported: None,
                last_report_at: None,
                writes: 0,
                last_read: None,
            });
            let moved = slot.queue != *queue;
            if moved {
                slot.queue = queue.clone();
                slot.last_reported = None;
                slot.last_report_at = None;
                slot.last_read = None;
            }
            slot.keys = Some(entry.config.keys.clone());
            (previous, moved)
        };
        // Pointed at another queue: it must stop firing into the one it was written to. This
        // process knows which one, unless it has not seen the schedule before (after a
        // restart): then one sweep of the served queues, shared by every schedule seen for the
        // first time, finds it.
        match previous {
            None => self.inner.sweep.notify_one(),
            Some(old) if old != *queue => {
                if let Err(e) = self.remove_schedule_from(id, &[old]).await {
                    self.inner.sweep.notify_one();
                    return Err(e);
                }
            }
            Some(_) => {}
        }
        let mut conn = self.inner.pool.get(&entry.redis_url).await?;
        let now_ms = schedules::redis_time_ms(&mut conn).await?;
        schedules::upsert(&mut conn, &entry.config.keys, def, now_ms).await?;
        if let Some(slot) = lock(&self.inner.schedules).get_mut(id) {
            slot.writes += 1;
        }
        if moved {
            // Its counters start again in the new queue's Redis: a new series, as after a reset.
            self.inner
                .metrics
                .forget_schedule(&ObjectLabels::new(&id.namespace, &id.name));
        }
        if let Some(run) = lock(&self.inner.schedulers).get(&entry.redis_url) {
            run.handle.wake();
        }
        Ok(())
    }

    /// Removes a schedule from Redis (it never fires again): from `queue`, and from the queue
    /// it was last written to if that is another one.
    pub async fn remove_schedule(
        &self,
        id: &ObjectId,
        queue: &ObjectId,
    ) -> Result<(), RuntimeError> {
        let written_to = lock(&self.inner.schedules).get(id).map(|s| s.queue.clone());
        let mut queues = vec![queue.clone()];
        match written_to {
            Some(q) => queues.push(q),
            // Not written by this process (it restarted): wherever it is in the namespace.
            None => queues.extend(self.queues_of_namespace(&id.namespace, Some(queue))),
        }
        self.remove_schedule_from(id, &queues).await?;
        lock(&self.inner.schedules).remove(id);
        self.inner
            .metrics
            .forget_schedule(&ObjectLabels::new(&id.namespace, &id.name));
        Ok(())
    }

    /// Served queues of `namespace`, except `except`.
    fn queues_of_namespace(&self, namespace: &str, except: Option<&ObjectId>) -> Vec<ObjectId> {
        lock(&self.inner.queues)
            .keys()
            .filter(|id| id.namespace == namespace && Some(*id) != except)
            .cloned()
            .collect()
    }

    /// Removes schedule `id` from each of `queues` that is served and holds it (queues
    /// without it are only read, so nothing is announced to their schedulers). The lookups run
    /// concurrently: on the multiplexed connections they share round trips.
    async fn remove_schedule_from(
        &self,
        id: &ObjectId,
        queues: &[ObjectId],
    ) -> Result<(), RuntimeError> {
        use futures::StreamExt;
        let entries: Vec<Arc<QueueEntry>> =
            queues.iter().filter_map(|q| self.queue_entry(q)).collect();
        let results: Vec<Result<(), RuntimeError>> = futures::stream::iter(entries)
            .map(|entry| async move {
                let mut conn = self.inner.pool.get(&entry.redis_url).await?;
                let keys = &entry.config.keys;
                if schedules::holds(&mut conn, keys, &id.name).await? {
                    schedules::remove(&mut conn, keys, &id.name).await?;
                    tracing::info!(queue = %entry.id, schedule = %id, "removed the run of a schedule that now points at another queue");
                }
                Ok(())
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Removes from a queue the armed runs of schedules this process knows to be written to
/// another queue (one ZRANGE when there are none).
pub(super) async fn drop_moved_schedules(
    inner: &Inner,
    conn: &mut crate::queue::conn::RedisConn,
    queue: &ObjectId,
    keys: &crate::queue::keys::QueueKeys,
) -> Result<(), ScheduleError> {
    for name in schedules::armed(conn, keys).await? {
        let schedule = ObjectId::new(&queue.namespace, &name);
        let elsewhere = lock(&inner.schedules)
            .get(&schedule)
            .is_some_and(|slot| slot.queue != *queue);
        if elsewhere {
            schedules::remove(conn, keys, &name).await?;
            tracing::info!(%queue, %schedule, "removed the run of a schedule that now points at another queue");
        }
    }
    Ok(())
}

/// Runs [`drop_moved_schedules`] on every served queue whenever a sweep is requested (schedules
/// seen for the first time by this process, or a failed cleanup). Requests made while a sweep
/// runs are served by one more sweep.
pub(super) async fn sweep_loop(inner: Arc<Inner>) {
    use futures::StreamExt;
    loop {
        inner.sweep.notified().await;
        let queues: Vec<Arc<QueueEntry>> = lock(&inner.queues)
            .values()
            .map(|s| s.entry.clone())
            .collect();
        let failed = futures::stream::iter(queues)
            .map(|entry| {
                let inner = inner.clone();
                async move {
                    let mut conn = inner.pool.get(&entry.redis_url).await.ok()?;
                    drop_moved_schedules(&inner, &mut conn, &entry.id, &entry.config.keys)
                        .await
                        .err()
                        .map(|e| (entry.id.clone(), e))
                }
            })
            .buffer_unordered(16)
            .filter_map(std::future::ready)
            .collect::<Vec<_>>()
            .await;
        if let Some((queue, e)) = failed.first() {
            tracing::warn!(%queue, error = %e, failed = failed.len(), "sweep for schedules that moved away failed; retrying");
            tokio::time::sleep(Duration::from_secs(5)).await;
            inner.sweep.notify_one();
        }
    }
}

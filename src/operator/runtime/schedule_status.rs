//! Reports each schedule's state as stored in Redis (last and next run, last job id, missed
//! and skipped runs) at a bounded rate, and turns its counters into Prometheus series.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::queue::schedules::{self, ScheduleState};

use super::{Inner, ObjectId, lock};

pub(super) async fn run(inner: Arc<Inner>) {
    // Often enough that a fired run shows up quickly in status; each pass is one round trip
    // per queue with schedules.
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut by_queue: BTreeMap<ObjectId, Vec<ObjectId>> = BTreeMap::new();
        for (id, slot) in lock(&inner.schedules).iter() {
            by_queue
                .entry(slot.queue.clone())
                .or_default()
                .push(id.clone());
        }
        for (queue, ids) in by_queue {
            let Some(entry) = lock(&inner.queues).get(&queue).map(|s| s.entry.clone()) else {
                continue;
            };
            let Ok(mut conn) = inner.pool.get(&entry.redis_url).await else {
                continue;
            };
            let names: Vec<String> = ids.iter().map(|i| i.name.clone()).collect();
            let Ok(stored) = schedules::get_many(&mut conn, &entry.config.keys, &names).await
            else {
                continue;
            };
            for (id, found) in ids.iter().zip(stored) {
                if let Ok(Some(s)) = found {
                    observe(&inner, id, &queue, s.state);
                }
            }
        }
    }
}

fn observe(inner: &Inner, id: &ObjectId, queue: &ObjectId, state: ScheduleState) {
    let now = Instant::now();
    {
        let mut schedules = lock(&inner.schedules);
        // Moved while this reading was taken: it describes the old queue's copy.
        let Some(slot) = schedules.get_mut(id).filter(|s| s.queue == *queue) else {
            return;
        };
        let changed = slot.last_reported.as_ref() != Some(&state);
        let due = slot
            .last_report_at
            .is_none_or(|t| now.duration_since(t) >= inner.options.status_interval);
        if !changed && !due {
            return;
        }
        slot.last_report_at = Some(now);
        slot.last_reported = Some(state.clone());
    }
    // The counters live in the schedule's hash in Redis, so the series show every run since
    // the schedule was written to its queue, across operator restarts and replicas.
    inner.metrics.schedule_counts(
        &id.namespace,
        &id.name,
        state.fired_runs,
        state.missed_runs,
        state.skipped_runs,
    );
    inner.reporter.schedule_observed(id, &state);
}

//! Reports each schedule's state as stored in Redis (last and next run, last job id, missed
//! and skipped runs) at a bounded rate, and turns its counters into Prometheus series. A
//! schedule is read only when its state can have changed ([`super::quiet::schedule_read_due`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::queue::schedules::{self, ScheduleState};

use super::{Inner, ObjectId, lock, quiet};

pub(super) async fn run(inner: Arc<Inner>) {
    // Often enough that a fired run shows up quickly in status; each pass is one round trip
    // per queue with a schedule to read, and a schedule is read when its run came due (or it
    // was written, or the quiet read interval passed), so schedules between runs cost nothing.
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (queue, ids) in due_reads(&inner) {
            let Some(entry) = lock(&inner.queues).get(&queue).map(|s| s.entry.clone()) else {
                continue;
            };
            let Ok(mut conn) = inner.pool.get(&entry.redis_url).await else {
                continue;
            };
            let names: Vec<String> = ids.iter().map(|(i, _)| i.name.clone()).collect();
            let started = Instant::now();
            let Ok(stored) = schedules::get_many(&mut conn, &entry.config.keys, &names).await
            else {
                continue;
            };
            for ((id, writes), found) in ids.iter().zip(stored) {
                if let Ok(Some(s)) = found {
                    observe(&inner, id, &queue, s.state, (started, *writes));
                }
            }
        }
    }
}

/// The schedules to read now ([`quiet::schedule_read_due`]), by queue, each with the count
/// of writes it had when chosen.
fn due_reads(inner: &Inner) -> BTreeMap<ObjectId, Vec<(ObjectId, u64)>> {
    let (now, safety) = (Instant::now(), inner.options.quiet_read_interval);
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut by_queue: BTreeMap<ObjectId, Vec<(ObjectId, u64)>> = BTreeMap::new();
    for (id, slot) in lock(&inner.schedules).iter() {
        let next_run = slot.last_reported.as_ref().and_then(|s| s.next_schedule_ms);
        let (last_read, written_since) = match slot.last_read {
            Some((at, writes)) => (Some(at), writes != slot.writes),
            None => (None, true),
        };
        if quiet::schedule_read_due(last_read, written_since, next_run, now, now_ms, safety) {
            by_queue
                .entry(slot.queue.clone())
                .or_default()
                .push((id.clone(), slot.writes));
        }
    }
    by_queue
}

fn observe(
    inner: &Inner,
    id: &ObjectId,
    queue: &ObjectId,
    state: ScheduleState,
    read: (Instant, u64),
) {
    let now = Instant::now();
    {
        let mut schedules = lock(&inner.schedules);
        // Moved while this reading was taken: it describes the old queue's copy.
        let Some(slot) = schedules.get_mut(id).filter(|s| s.queue == *queue) else {
            return;
        };
        slot.last_read = Some(read);
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

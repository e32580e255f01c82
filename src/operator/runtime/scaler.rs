//! The metrics + scaling loop: every due queue of one Redis endpoint is read in one pipelined
//! snapshot; the pure policy (`crate::scaling`) decides; the workers are scaled only when the
//! decision changes the count; status goes out at a bounded rate.
//!
//! Each endpoint is polled on its own: a slow or black-holed Redis holds up its own queues
//! only, and one that fails is polled again after a growing delay (1 s doubling to 30 s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::queue::conn::mask_password;
use crate::queue::error::QueueError;
use crate::queue::metrics::{LagSource, QueueMetrics, QueueState, snapshot, snapshot_native};
use crate::queue::provision;
use crate::scaling::{Decision, Lag, Sample};

use super::super::dashboard::history::{DecisionRecord, Point};
use super::super::metrics::Direction;
use super::pool::is_connection_error;
use super::quiet;
use super::tracking::Tracking;
use super::{
    Inner, QueueEntry, QueueHealth, QueueObservation, QueueSlot, RuntimeEvent, Workers, lock,
    poll_interval,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_endpoint_backs_off_doubling_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}

/// Longest sleep when nothing is due (a new queue wakes the loop at once anyway).
const IDLE_SLEEP: Duration = Duration::from_secs(1);

/// Queues whose turn comes within this are polled together: thousands of queues with their
/// turns spread over a second would otherwise wake the loop (a pass over every slot) once per
/// queue. Small against the shortest `pollInterval` (100 ms).
const POLL_GATHERING: Duration = Duration::from_millis(20);

/// Longest delay before polling a failing endpoint again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Delay before polling an endpoint that failed `failures` times in a row (1-based).
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_BACKOFF)
}

/// Endpoints with a poll running, and consecutive failures per endpoint.
#[derive(Default)]
struct Endpoints {
    busy: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// What a poll does for one due queue.
enum Turn {
    /// Read it; `changes` is the queue's count of reported writes as the read starts.
    Read { changes: u64 },
    /// Its last reading stands in: the queue was idle and Redis reported no write since.
    Reuse(Box<QueueMetrics>, Reading),
}

/// When a reading was started, and the queue's `changes` then if it was made on the tracking
/// connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    pub at: Instant,
    pub tracked: Option<u64>,
    /// The last reading handed over again (the queue is quiet): its gauges already hold it.
    pub reused: bool,
}

/// What the poll does for a queue now, if it is due (its turn, or an early wake-up);
/// advances its next turn.
fn turn(inner: &Inner, slot: &mut QueueSlot, now: Instant) -> Option<Turn> {
    let regular = slot.next_poll <= now;
    let turn = (regular || slot.early_due).then(|| match Inner::reading(slot) {
        Some(r)
            if !slot.early_due
                && quiet::may_skip_read(r, now, inner.options.quiet_read_interval) =>
        {
            Turn::Reuse(
                Box::new(r.metrics.clone()),
                Reading {
                    at: r.read_at,
                    tracked: slot.tracked_at_read,
                    reused: true,
                },
            )
        }
        _ => Turn::Read {
            changes: slot.changes,
        },
    });
    slot.early_due = false;
    if regular {
        slot.woken_early = false;
        // Keep the phase (jitter) instead of drifting by the time a poll takes.
        let interval = poll_interval(&slot.entry, &inner.options);
        while slot.next_poll <= now {
            slot.next_poll += interval;
        }
    }
    turn
}

pub(super) async fn run(inner: Arc<Inner>) {
    let endpoints: Arc<Mutex<Endpoints>> = Arc::default();
    // Owned here: when the loop is dropped (leadership lost), its polls stop with it.
    let mut polls = tokio::task::JoinSet::new();
    loop {
        let now = Instant::now();
        let mut due: BTreeMap<String, Vec<(Arc<QueueEntry>, Turn)>> = BTreeMap::new();
        let mut next_wake = now + IDLE_SLEEP;
        {
            let busy = &lock(&endpoints).busy;
            let mut queues = lock(&inner.queues);
            for slot in queues.values_mut() {
                // Its endpoint's poll is still running: its end wakes the loop.
                if busy.contains(&slot.entry.redis_url) {
                    continue;
                }
                if let Some(turn) = turn(&inner, slot, now + POLL_GATHERING) {
                    due.entry(slot.entry.redis_url.clone())
                        .or_default()
                        .push((slot.entry.clone(), turn));
                }
                next_wake = next_wake.min(slot.next_poll);
            }
        }
        for (url, entries) in due {
            lock(&endpoints).busy.insert(url.clone());
            let (inner, endpoints) = (inner.clone(), endpoints.clone());
            polls.spawn(async move {
                let ok = poll_endpoint(&inner, url.clone(), entries).await;
                let retry_in = {
                    let mut e = lock(&endpoints);
                    e.busy.remove(&url);
                    if ok {
                        e.failures.remove(&url);
                        None
                    } else {
                        let n = e.failures.entry(url.clone()).or_insert(0);
                        *n += 1;
                        Some(backoff(*n))
                    }
                };
                if let Some(delay) = retry_in {
                    let later = Instant::now() + delay;
                    for slot in lock(&inner.queues).values_mut() {
                        if slot.entry.redis_url == url {
                            slot.next_poll = slot.next_poll.max(later);
                        }
                    }
                }
                inner.wake.notify_one();
            });
        }
        // Reap finished polls (their panics surface here rather than vanish).
        while let Some(done) = polls.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_wake.into()) => {}
            _ = inner.wake.notified() => {}
        }
    }
}

/// A queue's reading, and the queue's `changes` as it started when it was made on the tracking
/// connection.
type TrackedState = (Result<QueueState, QueueError>, Option<u64>);

/// The readings of `read` (all on endpoint `url`), each with whether it was made on the
/// tracking connection: native queues on it when the endpoint has one, the rest (and all
/// when it fails) on the shared connection.
async fn read_queues(
    inner: &Arc<Inner>,
    url: &str,
    read: &[(Arc<QueueEntry>, u64)],
) -> Result<Vec<TrackedState>, QueueError> {
    let mut out: Vec<Option<TrackedState>> = (0..read.len()).map(|_| None).collect();
    let native: Vec<usize> = (0..read.len())
        .filter(|&i| !read[i].0.config.is_adopted())
        .collect();
    if !native.is_empty()
        && let Some((mut conn, generation)) = Tracking::connection(inner, url).await
    {
        let entries: Vec<_> = native.iter().map(|&i| read[i].0.clone()).collect();
        inner.tracking.reading(url, &entries);
        let configs: Vec<_> = entries.iter().map(|e| e.config.clone()).collect();
        match snapshot_native(&mut conn, &configs, inner.options.snapshot).await {
            Ok(states) => {
                for (&i, state) in native.iter().zip(states) {
                    out[i] = Some((state, Some(read[i].1)));
                }
            }
            Err(e) => {
                if is_connection_error(&e) {
                    Tracking::lost(inner, url, generation);
                }
                tracing::debug!(endpoint = %mask_password(url), error = %e, "tracked reading failed; reading without tracking");
            }
        }
    }
    let rest: Vec<usize> = (0..read.len()).filter(|&i| out[i].is_none()).collect();
    if !rest.is_empty() {
        let configs: Vec<_> = rest.iter().map(|&i| read[i].0.config.clone()).collect();
        let mut conn = inner.pool.get(url).await?;
        let states = snapshot(&mut conn, &configs, inner.options.snapshot).await?;
        for (&i, state) in rest.iter().zip(states) {
            out[i] = Some((state, None));
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every queue read above"))
        .collect())
}

/// One snapshot of every due queue on `url` that needs reading, then a decision per queue
/// (idle queues' last readings stand in for theirs); whether Redis answered.
async fn poll_endpoint(
    inner: &Arc<Inner>,
    url: String,
    entries: Vec<(Arc<QueueEntry>, Turn)>,
) -> bool {
    let mut read = Vec::new();
    for (entry, turn) in entries {
        match turn {
            Turn::Read { changes } => read.push((entry, changes)),
            Turn::Reuse(m, reading) => {
                if inner.serves(&entry) {
                    handle(inner, &entry, QueueHealth::Ok(*m), reading).await;
                }
            }
        }
    }
    if read.is_empty() {
        return true;
    }
    let started = Instant::now();
    let result = read_queues(inner, &url, &read).await;
    inner.metrics.snapshot_done(started.elapsed());
    let untracked = Reading {
        at: started,
        tracked: None,
        reused: false,
    };
    match result {
        Err(e) => {
            if is_connection_error(&e) {
                inner.pool.forget(&url).await;
            }
            tracing::warn!(endpoint = %mask_password(&url), error = %e, "metrics snapshot failed");
            for (entry, _) in read {
                handle(
                    inner,
                    &entry,
                    QueueHealth::RedisUnreachable(e.to_string()),
                    untracked,
                )
                .await;
            }
            false
        }
        Ok(states) => {
            for ((entry, _), (state, tracked)) in read.iter().zip(states) {
                // Removed while the snapshot ran (its resource was deleted): nothing to report.
                if !inner.serves(entry) {
                    continue;
                }
                let health = match state {
                    Ok(QueueState::Ready(m)) => QueueHealth::Ok(m),
                    Ok(missing) => repair(inner, &url, entry, missing).await,
                    Err(e) => QueueHealth::Error(e.to_string()),
                };
                let tracked = tracked.filter(|_| matches!(health, QueueHealth::Ok(_)));
                handle(
                    inner,
                    entry,
                    health,
                    Reading {
                        at: started,
                        tracked,
                        reused: false,
                    },
                )
                .await;
            }
            true
        }
    }
}

/// Recreates a queue's stream or group deleted out of band, rather than at the next reconcile.
async fn repair(
    inner: &Arc<Inner>,
    url: &str,
    entry: &Arc<QueueEntry>,
    missing: QueueState,
) -> QueueHealth {
    let what = match missing {
        QueueState::StreamMissing { .. } => "stream",
        _ => "consumer group",
    };
    let mut conn = match inner.pool.get(url).await {
        Ok(c) => c,
        Err(e) => {
            return QueueHealth::Error(format!(
                "the {what} is missing and could not be recreated: {e}"
            ));
        }
    };
    let repair = inner.repair.lock().await;
    if !inner.serves(entry) {
        return QueueHealth::Error(format!("the {what} is missing"));
    }
    let repaired = provision::provision(&mut conn, &entry.config, true).await;
    drop(repair);
    match repaired {
        Ok(p) => {
            super::jobs::repaired(inner, &mut conn, entry).await;
            if let Some(drift) = p.drift(&entry.config, true) {
                inner.reporter.queue_event(
                    &entry.id,
                    RuntimeEvent::warning(drift.reason(), drift.to_string()),
                );
            }
            // Read again at once rather than a poll later: its workers may be waiting.
            inner.poll_soon(&entry.id);
            QueueHealth::Error(format!("the {what} had been deleted; repaired"))
        }
        Err(e) => QueueHealth::Error(format!(
            "the {what} is missing and could not be recreated: {e}"
        )),
    }
}

fn lag_of(m: &QueueMetrics) -> Lag {
    match m.lag_source {
        LagSource::Reported => Lag::Exact(m.lag),
        // A bounded count is a lower bound: enough to scale up on, and never zero by mistake.
        LagSource::Estimated | LagSource::AtLeast => Lag::Estimated(m.lag),
    }
}

/// Applies one reading of a queue: gauges, scaling decision, status.
#[tracing::instrument(name = "scaler", skip_all, fields(namespace = %entry.id.namespace, name = %entry.id.name))]
async fn handle(inner: &Arc<Inner>, entry: &Arc<QueueEntry>, health: QueueHealth, read: Reading) {
    let now = Instant::now();
    if let QueueHealth::Ok(m) = &health
        && !read.reused
    {
        inner
            .metrics
            .queue_observed(&entry.id.namespace, &entry.id.name, m);
    }
    let current = match &entry.workers {
        Some(w) => match w.replicas().await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(queue = %entry.id, error = %e, "cannot read the workers' replica count");
                None
            }
        },
        None => None,
    };
    let mut decision: Option<Decision> = None;
    let mut replicas = current;
    if let (Some(scaling), Some(workers), Some(current)) = (&entry.scaling, &entry.workers, current)
    {
        let sample = match &health {
            QueueHealth::Ok(m) => Sample::ok(now, lag_of(m), m.pending),
            QueueHealth::RedisUnreachable(e) => {
                Sample::failed(now, format!("Redis unreachable: {e}"))
            }
            QueueHealth::Error(e) => Sample::failed(now, e.clone()),
        };
        let d = {
            let mut queues = lock(&inner.queues);
            let Some(slot) = queues.get_mut(&entry.id) else {
                return;
            };
            slot.history.observe(sample);
            slot.history.decide(&scaling.policy, current, now)
        };
        if d.changed() && scale(inner, entry, workers.as_ref(), &d, &health).await {
            replicas = Some(d.replicas);
        }
        inner
            .metrics
            .replicas_wanted(&entry.id.namespace, &entry.id.name, d.replicas);
        decision = Some(d);
    }
    if let Some(r) = replicas {
        inner
            .metrics
            .replicas_observed(&entry.id.namespace, &entry.id.name, r);
    }
    report(inner, entry, health, replicas, decision, now, read);
}

/// Writes a changed replica count to the workers; whether it was written.
async fn scale(
    inner: &Inner,
    entry: &QueueEntry,
    workers: &dyn Workers,
    d: &Decision,
    health: &QueueHealth,
) -> bool {
    let consumers = match health {
        QueueHealth::Ok(m) => m.consumers.as_slice(),
        _ => &[],
    };
    match workers.scale(d.replicas, consumers).await {
        Ok(()) => {
            let direction = if d.replicas > d.current {
                Direction::Up
            } else {
                Direction::Down
            };
            inner
                .metrics
                .scaled(&entry.id.namespace, &entry.id.name, direction);
            tracing::info!(queue = %entry.id, from = d.current, to = d.replicas, reason = %d.reason, "scaled");
            inner.reporter.queue_event(
                &entry.id,
                RuntimeEvent::normal(d.event_reason(), d.to_string()),
            );
            if let Some(slot) = lock(&inner.queues).get_mut(&entry.id) {
                slot.last_scale_time = Some(SystemTime::now());
                slot.last_status = None; // report the change at once
            }
            true
        }
        Err(e) => {
            inner.reporter.queue_event(
                &entry.id,
                RuntimeEvent::warning(
                    crate::operator::reasons::SCALE_FAILED,
                    format!("could not scale {} → {}: {e}", d.current, d.replicas),
                ),
            );
            false
        }
    }
}

/// Hands the observation to the reporter when the status interval has passed or something a
/// person acts on changed (replicas, reachability).
fn report(
    inner: &Inner,
    entry: &QueueEntry,
    health: QueueHealth,
    replicas: Option<u32>,
    decision: Option<Decision>,
    now: Instant,
    read: Reading,
) {
    let observation = {
        let mut queues = lock(&inner.queues);
        let Some(slot) = queues.get_mut(&entry.id) else {
            return;
        };
        let reachability_changed =
            matches!(health, QueueHealth::RedisUnreachable(_)) != slot.last_metrics.is_none();
        let due = slot
            .last_status
            .is_none_or(|t| now.duration_since(t) >= inner.options.status_interval);
        let replicas_changed = replicas != slot.replicas;
        slot.replicas = replicas;
        remember(slot, &health, replicas, decision.as_ref());
        (slot.last_metrics, slot.last_metrics_read) = match &health {
            QueueHealth::Ok(m) => (Some(m.clone()), Some(read.at)),
            QueueHealth::RedisUnreachable(_) => (None, None),
            QueueHealth::Error(_) => (slot.last_metrics.take(), slot.last_metrics_read),
        };
        slot.tracked_at_read = read.tracked;
        if !(due || replicas_changed || reachability_changed) {
            return;
        }
        slot.last_status = Some(now);
        QueueObservation {
            scaling_blocked: decision
                .as_ref()
                .is_some_and(|d| d.event_reason() == crate::operator::reasons::METRIC_UNAVAILABLE),
            desired_replicas: decision.as_ref().map(|d| d.replicas),
            scaling_reason: decision.as_ref().map(|d| d.to_string()),
            replicas,
            last_scale_time: slot.last_scale_time,
            health,
        }
    };
    inner.reporter.queue_observed(&entry.id, &observation);
}

/// Keeps what the dashboard shows of this poll: the reading for the chart, the decision.
fn remember(
    slot: &mut super::QueueSlot,
    health: &QueueHealth,
    replicas: Option<u32>,
    decision: Option<&Decision>,
) {
    let at = SystemTime::now();
    slot.last_error = match health {
        QueueHealth::Ok(_) => None,
        QueueHealth::RedisUnreachable(e) => Some(format!("Redis unreachable: {e}")),
        QueueHealth::Error(e) => Some(e.clone()),
    };
    slot.trend.observe(Point {
        at,
        backlog: match health {
            QueueHealth::Ok(m) => Some(m.backlog()),
            _ => None,
        },
        replicas,
    });
    if let Some(d) = decision {
        slot.last_decision = Some((d.replicas, d.to_string()));
        slot.trend.decided(
            d.changed(),
            DecisionRecord {
                at,
                reason: d.event_reason().to_string(),
                message: d.to_string(),
            },
        );
    }
}

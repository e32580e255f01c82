//! The janitor loop: runs the engine's janitor steps for every served queue each period, and
//! hands the jobs of consumers whose worker is gone to other workers at once instead of after
//! the visibility timeout.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::queue::conn::RedisConn;
use crate::queue::error::QueueError;
use crate::queue::janitor;
use crate::queue::metrics::QueueMetrics;

use super::pool::is_connection_error;
use super::{Inner, ObjectId, QueueEntry, RuntimeEvent, lock, quiet};

/// A queue and which janitor steps it needs this pass.
type QueueWithSteps = (Arc<QueueEntry>, Option<QueueMetrics>, janitor::Steps);

/// Idle consumers and retention are checked this often (nothing waits on them); delayed jobs
/// and redelivery every janitor interval.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

/// Queues of one endpoint whose passes are in flight at once. The connection is multiplexed,
/// so their scripts share round trips instead of queueing behind each other: a pass over
/// thousands of queues stays within the interval even when Redis is a few ms away.
const CONCURRENT_QUEUES: usize = 32;

pub(super) async fn run(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.options.janitor_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_housekeeping: Option<Instant> = None;
    // One pass per endpoint at a time, each on its own: a black-holed Redis delays only its
    // own queues' passes. Owned here, so the passes stop with the loop.
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut passes = tokio::task::JoinSet::new();
    loop {
        ticker.tick().await;
        while passes.try_join_next().is_some() {}
        let housekeeping = last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_INTERVAL);
        if housekeeping {
            last_housekeeping = Some(Instant::now());
        }
        let mut by_url: BTreeMap<String, Vec<QueueWithSteps>> = BTreeMap::new();
        let now = Instant::now();
        // An adopted queue belongs to its own system, whose workers redeliver and clean up.
        for slot in lock(&inner.queues)
            .values()
            .filter(|s| !s.entry.config.is_adopted())
        {
            let reading = Inner::reading(slot);
            let config = &slot.entry.config;
            let steps = janitor::Steps {
                promotion: !quiet::may_skip_promotion(reading),
                redelivery: !quiet::may_skip_redelivery(reading, now, config.visibility_timeout),
                housekeeping: housekeeping
                    && !quiet::may_skip_housekeeping(
                        reading,
                        config,
                        now,
                        inner.options.janitor.consumer_idle,
                    ),
            };
            by_url
                .entry(slot.entry.redis_url.clone())
                .or_default()
                .push((slot.entry.clone(), slot.last_metrics.clone(), steps));
        }
        for (url, queues) in by_url {
            if !lock(&busy).insert(url.clone()) {
                continue; // its previous pass still runs
            }
            let (inner, busy) = (inner.clone(), busy.clone());
            passes.spawn(async move {
                endpoint_pass(&inner, &url, queues).await;
                lock(&busy).remove(&url);
            });
        }
    }
}

/// One pass over the queues of one endpoint, up to [`CONCURRENT_QUEUES`] at once.
async fn endpoint_pass(inner: &Arc<Inner>, url: &str, queues: Vec<QueueWithSteps>) {
    let conn = match inner.pool.get(url).await {
        Ok(c) => c,
        Err(_) => return, // the metrics loop reports unreachable endpoints
    };
    let broken = AtomicBool::new(false);
    futures::stream::iter(queues)
        .for_each_concurrent(CONCURRENT_QUEUES, |(entry, metrics, steps)| {
            let (broken, mut conn) = (&broken, conn.clone());
            async move {
                let nothing_held = metrics.as_ref().is_none_or(|m| m.consumers.is_empty());
                if broken.load(Ordering::Relaxed) || (steps == janitor::Steps::NONE && nothing_held)
                {
                    return;
                }
                let pass = tick_queue(inner, &mut conn, &entry, metrics.as_ref(), steps);
                if let Err(e) = pass.await {
                    tracing::warn!(queue = %entry.id, error = %e, "janitor pass failed");
                    if is_connection_error(&e) {
                        broken.store(true, Ordering::Relaxed);
                    }
                }
            }
        })
        .await;
    if broken.load(Ordering::Relaxed) {
        inner.pool.forget(url).await;
    }
}

/// One janitor pass over one queue.
#[tracing::instrument(name = "janitor", skip_all, fields(namespace = %entry.id.namespace, name = %entry.id.name))]
async fn tick_queue(
    inner: &Inner,
    conn: &mut RedisConn,
    entry: &QueueEntry,
    metrics: Option<&QueueMetrics>,
    steps: janitor::Steps,
) -> Result<(), QueueError> {
    let report = janitor::tick_steps(conn, &entry.config, &inner.options.janitor, steps).await?;
    count(inner, entry, report.reclaimed);
    if report.reclaimed.dead_lettered > 0 {
        inner.reporter.queue_event(
            &entry.id,
            RuntimeEvent::warning(
                crate::operator::reasons::JOBS_DEAD_LETTERED,
                format!(
                    "{} job(s) moved to the dead-letter stream {:?} after {} deliveries",
                    report.reclaimed.dead_lettered,
                    entry.config.dead_letter,
                    entry.config.max_deliveries
                ),
            ),
        );
    }
    let (Some(workers), Some(metrics)) = (&entry.workers, metrics) else {
        return Ok(());
    };
    let live = match workers.live_consumers().await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::debug!(queue = %entry.id, error = %e, "cannot list live workers");
            return Ok(());
        }
    };
    for consumer in &metrics.consumers {
        if live.contains(&consumer.name) || consumer.idle < inner.options.dead_consumer_grace {
            continue;
        }
        reclaim(inner, conn, entry, &consumer.name).await?;
    }
    Ok(())
}

fn count(inner: &Inner, entry: &QueueEntry, r: janitor::Reclaimed) {
    inner.metrics.jobs_reclaimed(
        &entry.id.namespace,
        &entry.id.name,
        r.retried,
        r.dead_lettered,
    );
}

async fn reclaim(
    inner: &Inner,
    conn: &mut RedisConn,
    entry: &QueueEntry,
    consumer: &str,
) -> Result<(), QueueError> {
    let r =
        janitor::reclaim_consumer(conn, &entry.config, consumer, &inner.options.janitor).await?;
    count(inner, entry, r);
    if r.retried + r.dead_lettered > 0 {
        inner.reporter.queue_event(
            &entry.id,
            RuntimeEvent::normal(
                crate::operator::reasons::JOBS_RECLAIMED,
                format!(
                    "worker {consumer:?} is gone: {} job(s) handed to other workers, {} dead-lettered",
                    r.retried, r.dead_lettered
                ),
            ),
        );
    }
    tracing::info!(queue = %entry.id, consumer, retried = r.retried, dead_lettered = r.dead_lettered, "reclaimed jobs of a gone worker");
    Ok(())
}

/// [`super::Runtime::consumer_gone`].
pub(super) async fn reclaim_consumer(
    inner: &Inner,
    id: &ObjectId,
    consumer: &str,
) -> Result<(), QueueError> {
    let Some(entry) = lock(&inner.queues).get(id).map(|s| s.entry.clone()) else {
        return Ok(());
    };
    if entry.config.is_adopted() {
        return Ok(()); // its own system hands a lost worker's jobs on
    }
    let mut conn = inner.pool.get(&entry.redis_url).await?;
    reclaim(inner, &mut conn, &entry, consumer).await
}

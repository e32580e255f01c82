//! The runtime: everything that keeps queues healthy once they are declared, shared by the
//! cluster operator and local mode (docs/architecture.md#operator-loops). The two modes differ only in where
//! resources come from (they call [`Runtime::upsert_queue`] and friends), where status goes
//! (a [`Reporter`]) and what gets scaled (a [`Workers`]).
//!
//! Loops, all started by [`Runtime::run`]:
//! - metrics + scaling ([`scaler`]): one pipelined snapshot per Redis endpoint per tick for all
//!   its due queues; the pure policy decides; the workers are scaled only on change;
//! - janitor ([`janitor`]): delayed jobs, redelivery, dead letters, consumer cleanup,
//!   retention, and jobs held by consumers whose worker is gone;
//! - schedulers: one [`crate::queue::scheduler::Scheduler`] per Redis endpoint, plus a status
//!   poll of the schedules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, watch};

use crate::queue::config::QueueConfig;
use crate::queue::error::QueueError;
use crate::queue::janitor::JanitorOptions;
use crate::queue::metrics::{QueueMetrics, SnapshotOptions};
use crate::queue::provision::{self, Drift, Provisioned};
use crate::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerConfig, SchedulerHandle};
use crate::queue::schedules::{self, ScheduleDefinition, ScheduleError};
use crate::scaling::{History, Policy};

use super::metrics::{Metrics, ObjectLabels};

mod janitor;
mod pool;
mod report;
mod scaler;
mod schedule_status;
mod workers;

pub use pool::{RedisPool, is_connection_error};
pub use report::{ObjectId, QueueHealth, QueueObservation, Reporter, RuntimeEvent};
pub use workers::{Workers, WorkersError};

/// A queue as the runtime needs it, wherever it was declared.
pub struct QueueEntry {
    pub id: ObjectId,
    pub redis_url: String,
    /// TLS settings for `redis_url` beyond what the URL says.
    pub tls: crate::queue::conn::TlsOptions,
    pub config: QueueConfig,
    pub scaling: Option<ScalingSettings>,
    pub workers: Option<Arc<dyn Workers>>,
}

/// Autoscaling of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSettings {
    pub policy: Policy,
    pub poll_interval: Duration,
}

/// Tuning of the runtime (the operator's flags).
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// How often queues without a scaling policy are read (for status and metrics).
    pub default_poll_interval: Duration,
    /// Least time between two status reports of one queue (changes of replicas are reported
    /// at once): thousands of queues must not flood the API server.
    pub status_interval: Duration,
    /// Period of the janitor.
    pub janitor_interval: Duration,
    /// A consumer whose worker is gone is reclaimed once it has been idle this long (covers a
    /// worker that started so recently that the pod list has not caught up yet).
    pub dead_consumer_grace: Duration,
    pub janitor: JanitorOptions,
    pub scheduler: SchedulerConfig,
    pub snapshot: SnapshotOptions,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            default_poll_interval: Duration::from_secs(5),
            status_interval: Duration::from_secs(10),
            janitor_interval: Duration::from_secs(1),
            dead_consumer_grace: Duration::from_secs(2),
            janitor: JanitorOptions::default(),
            scheduler: SchedulerConfig::default(),
            snapshot: SnapshotOptions::default(),
        }
    }
}

/// Per-queue state kept between ticks.
struct QueueSlot {
    entry: Arc<QueueEntry>,
    history: History,
    next_poll: Instant,
    last_status: Option<Instant>,
    last_scale_time: Option<SystemTime>,
    last_metrics: Option<QueueMetrics>,
    replicas: Option<u32>,
}

/// A schedule the runtime knows, for its status poll.
#[derive(Debug, Clone)]
struct ScheduleSlot {
    queue: ObjectId,
    /// The keys of the queue it was written to (a queue's keys can change with its spec).
    keys: Option<crate::queue::keys::QueueKeys>,
    last_reported: Option<schedules::ScheduleState>,
    last_report_at: Option<Instant>,
}

struct SchedulerRun {
    handle: SchedulerHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) struct Inner {
    queues: Mutex<BTreeMap<ObjectId, QueueSlot>>,
    schedules: Mutex<BTreeMap<ObjectId, ScheduleSlot>>,
    schedulers: Mutex<HashMap<String, SchedulerRun>>,
    pool: RedisPool,
    metrics: Metrics,
    reporter: Arc<dyn Reporter>,
    options: RuntimeOptions,
    wake: Notify,
    shutdown: watch::Sender<bool>,
    /// Held by the scaler while it recreates a stream deleted out of band, and by
    /// [`Runtime::delete_queue_data`]: a pass that read the queue before its removal must not
    /// recreate what `deletionPolicy: Delete` just deleted.
    repair: tokio::sync::Mutex<()>,
    /// Requests a sweep of every served queue for runs of schedules that moved away.
    sweep: Notify,
}

impl Inner {
    /// Whether `entry` is still what the runtime serves (not removed or replaced since it was
    /// read).
    fn serves(&self, entry: &Arc<QueueEntry>) -> bool {
        lock(&self.queues)
            .get(&entry.id)
            .is_some_and(|slot| Arc::ptr_eq(&slot.entry, entry))
    }
}

/// The shared runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// Locks a std mutex, recovering from poisoning (a panicked holder left consistent data: every
/// critical section here is a plain map update).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    /// A runtime reporting to `reporter` and exporting `metrics`.
    pub fn new(options: RuntimeOptions, metrics: Metrics, reporter: Arc<dyn Reporter>) -> Self {
        let (shutdown, _) = watch::channel(false);
        Runtime {
            inner: Arc::new(Inner {
                queues: Mutex::default(),
                schedules: Mutex::default(),
                schedulers: Mutex::default(),
                pool: RedisPool::default(),
                metrics,
                reporter,
                options,
                wake: Notify::new(),
                shutdown,
                repair: tokio::sync::Mutex::new(()),
                sweep: Notify::new(),
            }),
        }
    }

    /// The connection pool (controllers use it for one-off commands).
    pub fn pool(&self) -> &RedisPool {
        &self.inner.pool
    }

    /// Provisions the queue's stream and group and starts (or keeps) serving it. Returns the
    /// drift repaired, if the queue was served before and its stream or group had vanished.
    pub async fn upsert_queue(
        &self,
        entry: QueueEntry,
    ) -> Result<(Provisioned, Option<Drift>), QueueError> {
        self.inner.pool.set_tls(&entry.redis_url, &entry.tls).await;
        let mut conn = self.inner.pool.get(&entry.redis_url).await?;
        let was_served = lock(&self.inner.queues).get(&entry.id).is_some_and(|s| {
            s.entry.redis_url == entry.redis_url && s.entry.config.keys == entry.config.keys
        });
        let provisioned = match provision::provision(&mut conn, &entry.config, was_served).await {
            Ok(p) => p,
            Err(e) => {
                self.inner
                    .pool
                    .forget_if_connection_error(&entry.redis_url, &e)
                    .await;
                return Err(e);
            }
        };
        let drift = provisioned.drift(&entry.config, was_served);
        let url = entry.redis_url.clone();
        let id = entry.id.clone();
        let keys = entry.config.keys.clone();
        let old_url = {
            let mut queues = lock(&self.inner.queues);
            let entry = Arc::new(entry);
            let id = entry.id.clone();
            match queues.get_mut(&id) {
                Some(slot) => {
                    let old = slot.entry.redis_url.clone();
                    slot.entry = entry;
                    slot.next_poll = Instant::now();
                    Some(old)
                }
                None => {
                    queues.insert(
                        id,
                        QueueSlot {
                            next_poll: Instant::now()
                                + jitter(&entry.id, poll_interval(&entry, &self.inner.options)),
                            entry,
                            history: History::new(),
                            last_status: None,
                            last_scale_time: None,
                            last_metrics: None,
                            replicas: None,
                        },
                    );
                    None
                }
            }
        };
        // After the queue is in the map (see upsert_schedule): after a restart a Schedule may
        // have been written to its new queue before this, its old one, was served again.
        if let Err(e) = drop_moved_schedules(&self.inner, &mut conn, &id, &keys).await {
            tracing::warn!(queue = %id, error = %e, "could not check the queue for schedules that moved away; the next reconcile retries");
        }
        self.refresh_scheduler(&url, Some(conn));
        if let Some(old) = old_url.filter(|o| *o != url) {
            self.refresh_scheduler(&old, None);
        }
        self.inner.wake.notify_one();
        Ok((provisioned, drift))
    }

    /// Stops serving a queue (its data stays; see [`Self::delete_queue_data`]).
    pub fn remove_queue(&self, id: &ObjectId) {
        let removed = lock(&self.inner.queues).remove(id);
        if let Some(slot) = removed {
            self.inner
                .metrics
                .forget_queue(&ObjectLabels::new(&id.namespace, &id.name));
            self.refresh_scheduler(&slot.entry.redis_url, None);
        }
    }

    /// Deletes every Redis key of a queue (`deletionPolicy: Delete`).
    pub async fn delete_queue_data(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<u64, QueueError> {
        let mut conn = self.inner.pool.get(redis_url).await?;
        let deleted = {
            let _repair = self.inner.repair.lock().await;
            provision::delete_queue(&mut conn, config).await?
        };
        Ok(deleted + self.remove_queue_schedules(redis_url, config).await?)
    }

    /// Removes every schedule armed on a queue (it is being deleted: nothing may fire into it
    /// again, even if a queue of the same name comes back; its Schedules then write anew).
    /// Returns how many were removed.
    pub async fn remove_queue_schedules(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<u64, QueueError> {
        let mut conn = self.inner.pool.get(redis_url).await?;
        let mut names = match schedules::armed(&mut conn, &config.keys).await {
            Ok(names) => names,
            Err(ScheduleError::Redis { op, source }) => return Err(QueueError::redis(op, source)),
            Err(e) => {
                return Err(QueueError::Protocol {
                    op: "listing the queue's schedules",
                    detail: e.to_string(),
                });
            }
        };
        // A suspended schedule has no armed run, only its hash: the runtime knows its name.
        names.extend(
            lock(&self.inner.schedules)
                .iter()
                .filter(|(_, slot)| slot.keys.as_ref() == Some(&config.keys))
                .map(|(id, _)| id.name.clone()),
        );
        names.sort();
        names.dedup();
        let mut removed = 0;
        for name in names {
            if schedules::remove(&mut conn, &config.keys, &name)
                .await
                .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Whether the queue `id` is being served.
    pub fn has_queue(&self, id: &ObjectId) -> bool {
        lock(&self.inner.queues).contains_key(id)
    }

    /// The queue's entry, if served.
    pub fn queue_entry(&self, id: &ObjectId) -> Option<Arc<QueueEntry>> {
        lock(&self.inner.queues).get(id).map(|s| s.entry.clone())
    }

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
            });
            let moved = slot.queue != *queue;
            if moved {
                slot.queue = queue.clone();
                slot.last_reported = None;
                slot.last_report_at = None;
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
        schedules::upsert(
            &mut conn,
            &entry.config.keys,
            def,
            chrono::Utc::now().timestamp_millis(),
        )
        .await?;
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

    /// Reclaims at once everything `consumer` holds in queue `id` (its worker is gone).
    pub async fn consumer_gone(&self, id: &ObjectId, consumer: &str) -> Result<(), QueueError> {
        janitor::reclaim_consumer(&self.inner, id, consumer).await
    }

    /// Runs the loops until `shutdown` completes, then stops them and the schedulers. Dropping
    /// the future stops them too (a leader that loses its lease is cancelled, and nothing it
    /// started may keep firing or scaling).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let _stop = StopOnDrop {
            inner: self.inner.clone(),
            loops: vec![
                tokio::spawn(scaler::run(self.inner.clone())),
                tokio::spawn(janitor::run(self.inner.clone())),
                tokio::spawn(schedule_status::run(self.inner.clone())),
                tokio::spawn(sweep_loop(self.inner.clone())),
            ],
        };
        shutdown.await;
    }

    /// Points the scheduler of `url` at the queues currently served there, starting it on
    /// first use (with `conn`, a live connection to that endpoint) and stopping it when no
    /// queue is left.
    fn refresh_scheduler(&self, url: &str, conn: Option<crate::queue::conn::RedisConn>) {
        let queues: Vec<ScheduledQueue> = lock(&self.inner.queues)
            .values()
            .filter(|s| s.entry.redis_url == url)
            .map(|s| ScheduledQueue {
                keys: s.entry.config.keys.clone(),
                group: s.entry.config.group.clone(),
            })
            .collect();
        let mut schedulers = lock(&self.inner.schedulers);
        if queues.is_empty() {
            if let Some(run) = schedulers.remove(url) {
                for t in run.tasks {
                    t.abort();
                }
            }
            return;
        }
        if let Some(run) = schedulers.get(url) {
            run.handle.set_queues(queues);
            return;
        }
        let Some(conn) = conn else { return };
        let scheduler = Scheduler::new(conn, self.inner.options.scheduler.clone());
        let handle = scheduler.handle();
        handle.set_queues(queues);
        let mut stop = self.inner.shutdown.subscribe();
        let task = tokio::spawn(scheduler.run(async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        }));
        let mut tasks = vec![task];
        // Other operator replicas or tools (a schedule written by `run --local` elsewhere)
        // announce changes on a channel; the in-process wake covers our own writes.
        if let Some(listen_url) = pubsub_url(url) {
            tasks.push(crate::queue::scheduler::spawn_change_listener(
                listen_url,
                handle.clone(),
            ));
        }
        schedulers.insert(url.to_string(), SchedulerRun { handle, tasks });
    }
}

/// Removes from a queue the armed runs of schedules this process knows to be written to
/// another queue (one ZRANGE when there are none).
async fn drop_moved_schedules(
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
async fn sweep_loop(inner: Arc<Inner>) {
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

/// Stops the runtime's loops and schedulers when dropped.
struct StopOnDrop {
    inner: Arc<Inner>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.inner.shutdown.send(true);
        for t in &self.loops {
            t.abort();
        }
        let runs: Vec<SchedulerRun> = lock(&self.inner.schedulers)
            .drain()
            .map(|(_, r)| r)
            .collect();
        for run in runs {
            for t in run.tasks {
                t.abort();
            }
        }
    }
}

/// A plain URL for the change listener: the URL itself, or the first seed of a cluster
/// (a PUBLISH reaches every node).
fn pubsub_url(url: &str) -> Option<String> {
    match crate::queue::conn::Endpoint::parse(url).ok()? {
        crate::queue::conn::Endpoint::Single(u) => Some(u),
        crate::queue::conn::Endpoint::Cluster(seeds) => seeds.into_iter().next(),
    }
}

/// Errors of runtime operations that span several parts.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("JobQueue {0} is not ready (not provisioned in Redis yet)")]
    QueueNotServed(ObjectId),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

fn poll_interval(entry: &QueueEntry, options: &RuntimeOptions) -> Duration {
    entry
        .scaling
        .as_ref()
        .map_or(options.default_poll_interval, |s| s.poll_interval)
}

/// A stable offset within one poll interval, so thousands of queues declared at once do not
/// all hit Redis in the same instant (docs/architecture.md#scaling).
fn jitter(id: &ObjectId, interval: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

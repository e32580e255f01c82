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
use crate::queue::metrics::{QueueMetrics, QueueState, SnapshotOptions, snapshot};
use crate::queue::provision::{self, Drift, Provisioned};
use crate::queue::scheduler::SchedulerConfig;
use crate::queue::schedules::{self, ScheduleError};
use crate::scaling::{History, Policy};

use super::dashboard::history::Trend;
use super::metrics::{Metrics, ObjectLabels};

mod janitor;
mod jobs;
mod pool;
mod quiet;
mod report;
mod restarts;
mod scaler;
mod schedule_runs;
mod schedule_status;
mod schedulers;
mod terms;
mod tracking;
mod views;
mod workers;

use schedule_runs::{drop_moved_schedules, sweep_loop};
use schedulers::{SchedulerRun, StopOnDrop};

pub use pool::{RedisPool, is_connection_error};
pub use report::{ObjectId, QueueHealth, QueueObservation, Reporter, RuntimeEvent};
pub use views::{QueueView, ScheduleRef};
pub use workers::{Workers, WorkersError};

/// A queue as the runtime needs it, wherever it was declared.
pub struct QueueEntry {
    pub id: ObjectId,
    /// The queue's Redis endpoint: the key [`Runtime::endpoint`] gives its URL and TLS
    /// settings (the plain URL when it has none).
    pub redis_url: String,
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
    /// Take a leadership term per Redis and fence older terms out (docs/architecture.md#operator-loops):
    /// in a cluster, where a deposed leader may still be running.
    pub fencing: bool,
    /// An idle queue whose keys Redis reports unchanged (client tracking) is read again after
    /// this at the latest; zero reads every queue at every poll, without tracking.
    pub quiet_read_interval: Duration,
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
            fencing: false,
            quiet_read_interval: Duration::from_secs(30),
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
    /// When the reading in `last_metrics` was started (it saw nothing newer than this).
    last_metrics_read: Option<Instant>,
    /// Writes Redis reported to the queue's keys (client tracking), and losses of the tracking
    /// connection: a reading is unchanged while this is what it was when the reading started.
    changes: u64,
    /// `changes` when the reading in `last_metrics` was sent, if it was made on the tracking
    /// connection.
    tracked_at_read: Option<u64>,
    /// A write to the idle queue asks for a poll before its turn.
    early_due: bool,
    /// An early poll was asked for since the last regular one (one per interval).
    woken_early: bool,
    replicas: Option<u32>,
    /// What the last poll could not read, if it failed.
    last_error: Option<String>,
    /// The autoscaler's last decision: replicas wanted and why.
    last_decision: Option<(u32, String)>,
    /// Recent readings and decisions, for the dashboard.
    trend: Trend,
}

/// A schedule the runtime knows, for its status poll.
#[derive(Debug, Clone)]
struct ScheduleSlot {
    queue: ObjectId,
    /// The keys of the queue it was written to (a queue's keys can change with its spec).
    keys: Option<crate::queue::keys::QueueKeys>,
    last_reported: Option<schedules::ScheduleState>,
    last_report_at: Option<Instant>,
    /// Definitions written by this process (each upsert counts one).
    writes: u64,
    /// When its state was last read, and `writes` then: a read is not repeated until the
    /// armed run comes due, this process writes it, or the quiet read interval passes.
    last_read: Option<(Instant, u64)>,
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
    libraries: jobs::Libraries,
    /// This runtime's leadership term per Redis endpoint.
    terms: terms::Terms,
    tracking: tracking::Tracking,
}

impl Inner {
    /// Whether `entry` is still what the runtime serves (not removed or replaced since it was
    /// read).
    fn serves(&self, entry: &Arc<QueueEntry>) -> bool {
        lock(&self.queues)
            .get(&entry.id)
            .is_some_and(|slot| Arc::ptr_eq(&slot.entry, entry))
    }

    /// Polls the queue before its turn (its stream or group was just recreated).
    fn poll_soon(&self, id: &ObjectId) {
        if let Some(slot) = lock(&self.queues).get_mut(id) {
            slot.early_due = true;
        }
        self.wake.notify_one();
    }

    /// The queue's last reading, for deciding what it can go without.
    fn reading(slot: &QueueSlot) -> Option<quiet::Reading<'_>> {
        Some(quiet::Reading {
            metrics: slot.last_metrics.as_ref()?,
            read_at: slot.last_metrics_read?,
            unchanged: slot.tracked_at_read == Some(slot.changes),
        })
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
                libraries: jobs::Libraries::default(),
                terms: terms::Terms::default(),
                tracking: tracking::Tracking::default(),
            }),
        }
    }

    /// The endpoint key of a Redis URL with its TLS settings, which [`QueueEntry::redis_url`]
    /// and every method taking a `redis_url` expect.
    pub fn endpoint(&self, url: &str, tls: &crate::queue::conn::TlsOptions) -> String {
        self.inner.pool.endpoint(url, tls)
    }

    /// The connection pool (controllers use it for one-off commands).
    pub fn pool(&self) -> &RedisPool {
        &self.inner.pool
    }

    /// Provisions the queue's stream and group, its job settings and the endpoint's function
    /// library, and starts (or keeps) serving it. Returns the
    /// drift repaired, if the queue was served before and its stream or group had vanished.
    pub async fn upsert_queue(
        &self,
        mut entry: QueueEntry,
    ) -> Result<(Provisioned, Option<Drift>), QueueError> {
        let mut conn = self.inner.pool.get(&entry.redis_url).await?;
        if self.inner.options.fencing && !entry.config.is_adopted() {
            entry.config.term = self.term(&entry.redis_url, &mut conn).await?;
        }
        let (was_served, changed) = match lock(&self.inner.queues).get(&entry.id) {
            Some(s) => (
                s.entry.redis_url == entry.redis_url && s.entry.config.keys == entry.config.keys,
                s.entry.redis_url != entry.redis_url || s.entry.config != entry.config,
            ),
            None => (false, true),
        };
        let (provisioned, drift) = if entry.config.is_adopted() {
            (self.read_adopted(&mut conn, &entry).await?, None)
        } else {
            let p = self
                .provision(&mut conn, &entry, was_served, changed)
                .await?;
            let drift = p.drift(&entry.config, was_served);
            (p, drift)
        };
        let url = entry.redis_url.clone();
        let id = entry.id.clone();
        let keys = entry.config.keys.clone();
        let adopted = entry.config.is_adopted();
        let old_entry = self.serve(entry);
        // After the queue is in the map (see upsert_schedule): after a restart a Schedule may
        // have been written to its new queue before this, its old one, was served again.
        // An adopted queue never holds a schedule, and its keys are not the operator's.
        if !adopted && let Err(e) = drop_moved_schedules(&self.inner, &mut conn, &id, &keys).await {
            tracing::warn!(queue = %id, error = %e, "could not check the queue for schedules that moved away; the next reconcile retries");
        }
        self.refresh_scheduler(&url, Some(conn));
        if let Some(old) = old_entry.filter(|o| o.redis_url != url || o.config.keys != keys) {
            if old.redis_url != url {
                self.refresh_scheduler(&old.redis_url, None);
            }
            // The stream it served before may be named by another queue now.
            if let Err(e) = self.release_claim(&old.redis_url, &old.config).await {
                tracing::warn!(queue = %id, error = %e, "could not release the claim on the stream the queue served before");
            }
        }
        self.inner.wake.notify_one();
        Ok((provisioned, drift))
    }

    /// Puts `entry` in the map of served queues (polled at once when it replaces an older
    /// entry, after a jittered delay when new); returns the entry it replaced.
    fn serve(&self, entry: QueueEntry) -> Option<Arc<QueueEntry>> {
        let mut queues = lock(&self.inner.queues);
        let entry = Arc::new(entry);
        match queues.get_mut(&entry.id) {
            Some(slot) => {
                slot.next_poll = Instant::now();
                slot.changes += 1; // its keys or settings may differ: read it anew
                Some(std::mem::replace(&mut slot.entry, entry))
            }
            None => {
                let first_poll =
                    Instant::now() + jitter(&entry.id, poll_interval(&entry, &self.inner.options));
                queues.insert(
                    entry.id.clone(),
                    QueueSlot {
                        next_poll: first_poll,
                        entry,
                        history: History::new(),
                        last_status: None,
                        last_scale_time: None,
                        last_metrics: None,
                        last_metrics_read: None,
                        changes: 0,
                        tracked_at_read: None,
                        early_due: false,
                        woken_early: false,
                        replicas: None,
                        last_error: None,
                        last_decision: None,
                        trend: Trend::default(),
                    },
                );
                None
            }
        }
    }

    /// An adopted queue is never provisioned: one reading checks that Redis answers and that
    /// the system's keys have the types it keeps (a wrong type fails here, before serving).
    async fn read_adopted(
        &self,
        conn: &mut crate::queue::conn::RedisConn,
        entry: &QueueEntry,
    ) -> Result<Provisioned, QueueError> {
        let read = snapshot(
            conn,
            std::slice::from_ref(&entry.config),
            self.inner.options.snapshot,
        )
        .await
        .and_then(|mut states| states.pop().transpose());
        match read {
            Ok(state) => Ok(Provisioned {
                stream_existed: true,
                group_existed: true,
                length: match state {
                    Some(QueueState::Ready(m)) => m.lag,
                    _ => 0,
                },
            }),
            Err(e) => {
                self.inner
                    .pool
                    .forget_if_connection_error(&entry.redis_url, &e)
                    .await;
                Err(e)
            }
        }
    }

    /// Provisions the queue's stream and group, then its job settings (`changed`: first
    /// served, or its spec changed, so a Redis without job records is announced).
    async fn provision(
        &self,
        conn: &mut crate::queue::conn::RedisConn,
        entry: &QueueEntry,
        was_served: bool,
        changed: bool,
    ) -> Result<Provisioned, QueueError> {
        let result = match provision::provision(conn, &entry.config, was_served).await {
            Ok(p) => {
                let lost_data = p.drift(&entry.config, was_served).is_some();
                jobs::provision(&self.inner, conn, entry, lost_data, changed)
                    .await
                    .map(|()| p)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.inner
                .pool
                .forget_if_connection_error(&entry.redis_url, e)
                .await;
        }
        result
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

    /// Deletes every Redis key of a queue (`deletionPolicy: Delete`). A stream another
    /// JobQueue owns is not this queue's: it is left whole.
    pub async fn delete_queue_data(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<u64, QueueError> {
        if config.is_adopted() {
            return Ok(0); // another system's keys: never deleted
        }
        let mut conn = self.inner.pool.get(redis_url).await?;
        if provision::foreign_owner(&mut conn, config).await?.is_some() {
            return Ok(0);
        }
        let deleted = {
            let _repair = self.inner.repair.lock().await;
            provision::delete_queue(&mut conn, config).await?
        };
        Ok(deleted + self.remove_queue_schedules(redis_url, config).await?)
    }

    /// A deleted queue under `deletionPolicy: Retain`: its jobs stay, the schedules armed on
    /// it go (see [`Self::remove_queue_schedules`]) and its claim on the stream is released.
    /// Nothing happens to a stream another JobQueue owns. Returns the schedules removed.
    pub async fn retain_queue_data(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<u64, QueueError> {
        if config.is_adopted() {
            return Ok(0);
        }
        let mut conn = self.inner.pool.get(redis_url).await?;
        if provision::foreign_owner(&mut conn, config).await?.is_some() {
            return Ok(0);
        }
        let removed = self.remove_queue_schedules(redis_url, config).await?;
        provision::release_claim(&mut conn, config).await?;
        Ok(removed)
    }

    /// The JobQueue owning the stream `config` names, when it is another than `config`'s.
    pub async fn foreign_owner(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<Option<String>, QueueError> {
        if config.is_adopted() {
            return Ok(None);
        }
        let mut conn = self.inner.pool.get(redis_url).await?;
        provision::foreign_owner(&mut conn, config).await
    }

    /// Releases the queue's claim on its stream (local mode: the queue is no longer declared).
    pub async fn release_claim(
        &self,
        redis_url: &str,
        config: &QueueConfig,
    ) -> Result<bool, QueueError> {
        let mut conn = self.inner.pool.get(redis_url).await?;
        provision::release_claim(&mut conn, config).await
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
}

/// Errors of runtime operations that span several parts.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("JobQueue {0} is not ready (not provisioned in Redis yet)")]
    QueueNotServed(ObjectId),
    #[error(
        "JobQueue {0} adopts another system's queue (spec.source), which the operator never writes; a Schedule needs a native JobQueue"
    )]
    QueueAdopted(ObjectId),
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

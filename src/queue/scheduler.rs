//! The scheduler loop: sleeps until the earliest armed run of its queues and fires what is
//! due (docs/architecture.md#scheduler).
//!
//! There is no polling period: the loop computes the earliest next fire time across its queues
//! and sleeps exactly until then, or until woken because schedules changed (the in-process
//! [`SchedulerHandle::wake`], or a `PUBLISH` on [`CHANGES_CHANNEL`] relayed by
//! [`spawn_change_listener`]). A sleep is capped ([`SchedulerConfig::max_sleep`]) as a safety
//! net for a lost wake-up. Any number of loops may serve the same queues: each fire is a
//! compare-and-set, so every run is enqueued exactly once. Between full passes (after a change,
//! and every [`FULL_PASS_INTERVAL`]) a pass reads only the queues with a run due and those
//! added since the last pass.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use redis::aio::ConnectionLike;
use tokio::sync::Notify;

use super::keys::QueueKeys;
use super::schedules::{
    self, CHANGES_CHANNEL, FireOutcome, FireRequest, ScheduleError, StoredSchedule,
};
use crate::schedule::{CronSchedule, DEFAULT_MISFIRE_GRACE, MisfireRules, decide};

/// A queue whose schedules a loop fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledQueue {
    pub keys: QueueKeys,
    /// The queue's consumer group (what `concurrencyPolicy: Forbid` looks at).
    pub group: String,
    /// The leadership term firing (0: none; see `QueueConfig::term`).
    pub term: u64,
}

/// Tuning of a scheduler loop.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How late a run may be reached and still fire as usual (see `crate::schedule::decide`).
    pub misfire_grace: Duration,
    /// Longest sleep, a safety net should a change notification be lost.
    pub max_sleep: Duration,
    /// Due schedules handled per queue per round trip.
    pub batch: usize,
    /// Pause after a Redis error before trying again.
    pub retry_delay: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            misfire_grace: DEFAULT_MISFIRE_GRACE,
            max_sleep: Duration::from_secs(5),
            batch: 1000,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// Controls a running loop from elsewhere: which queues it serves, and waking it early.
#[derive(Clone, Default)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
}

/// Lists the queues a loop serves, when asked after [`SchedulerHandle::queues_changed`].
pub type QueueSource = Arc<dyn Fn() -> Vec<ScheduledQueue> + Send + Sync>;

#[derive(Default)]
struct Shared {
    queues: Mutex<Arc<Vec<ScheduledQueue>>>,
    source: Mutex<Option<QueueSource>>,
    /// The source has a newer list than `queues`.
    stale: AtomicBool,
    wake: Notify,
    /// Schedules (or the queues) changed since the last full pass: the next pass reads every
    /// queue, not only those with an armed run.
    changed: AtomicBool,
}

impl SchedulerHandle {
    /// Replaces the set of queues served, and wakes the loop.
    pub fn set_queues(&self, queues: Vec<ScheduledQueue>) {
        *self.shared.queues.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(queues);
        self.wake();
    }

    /// Lets the loop read its queues from `source`, now and after each
    /// [`Self::queues_changed`]: a runtime serving thousands of queues marks a change per
    /// queue added, and the list is built once per pass instead of once per change.
    pub fn set_source(&self, source: QueueSource) {
        *self.shared.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        self.queues_changed();
    }

    /// The source's list changed: the next pass reads it anew, and reads the queues that
    /// joined (one may hold runs armed before a restart) without a full pass over the others.
    pub fn queues_changed(&self) {
        self.shared.stale.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// Wakes the loop now (schedules changed). A wake-up sent while the loop is busy is kept
    /// for its next sleep, so none is lost.
    pub fn wake(&self) {
        self.shared.changed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    fn queues(&self) -> Arc<Vec<ScheduledQueue>> {
        if self.shared.stale.swap(false, Ordering::SeqCst) {
            let source = self
                .shared
                .source
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(source) = source {
                *self.shared.queues.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(source());
            }
        }
        self.shared
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("queues", &self.queues().len())
            .finish()
    }
}

/// What one pass over the queues did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Jobs enqueued.
    pub fired: usize,
    /// Runs skipped by `concurrencyPolicy: Forbid`.
    pub skipped: usize,
    /// Runs counted as missed.
    pub missed: u64,
    /// Runs another loop fired first.
    pub lost_races: usize,
    /// Schedules that failed (logged); the others went ahead.
    pub errors: usize,
    /// More is due right now (a full batch, or a definition changed under us).
    pub more_due: bool,
    /// The earliest armed run across the queues after this pass (unix ms).
    pub next_due_ms: Option<i64>,
}

impl TickReport {
    fn progressed(&self) -> bool {
        self.fired + self.skipped + self.lost_races > 0 || self.missed > 0
    }
}

/// A compiled definition, valid while the stored revision is unchanged.
struct Compiled {
    revision: i64,
    cron: CronSchedule,
    tz: TimeZone,
    rules: MisfireRules,
}

/// One scheduler loop over a connection (single node or cluster).
pub struct Scheduler<C> {
    conn: C,
    handle: SchedulerHandle,
    config: SchedulerConfig,
    cache: HashMap<(String, String), Compiled>,
    /// The cache is dropped now and then so that removed schedules do not linger in memory.
    cache_since: std::time::Instant,
    /// Redis's clock minus this process's, at the last `TIME` read (ms).
    clock_offset_ms: i64,
    /// Each queue's earliest armed run (unix ms) as last read (`None`: never read). A pass
    /// reads only the queues with a run due, unless schedules changed or
    /// [`FULL_PASS_INTERVAL`] has passed: queues between runs cost nothing between full passes.
    armed: Option<HashMap<String, i64>>,
    /// The list of queues the last pass served, and their streams: a queue missing from these
    /// is new and read at the next pass even when it is a partial one.
    served: Option<(Arc<Vec<ScheduledQueue>>, HashSet<String>)>,
    last_full_pass: std::time::Instant,
}

/// How often a pass reads every queue even without a change notice (a schedule written by a
/// program that announces nothing is found within this).
const FULL_PASS_INTERVAL: Duration = Duration::from_secs(30);

/// How long a pass waits for more queues after one was added (never past a due run known
/// then): a pass walks every queue served, so thousands served one by one at start-up make a
/// few passes a second. A run already due in an added queue fires at most this late.
const QUEUE_GATHERING: Duration = Duration::from_millis(250);

/// How long compiled definitions are kept before they are read again.
const CACHE_LIFETIME: Duration = Duration::from_secs(600);

impl<C: ConnectionLike + Clone + Send> Scheduler<C> {
    /// A loop that serves no queue until [`SchedulerHandle::set_queues`] is called.
    pub fn new(conn: C, config: SchedulerConfig) -> Self {
        Scheduler {
            conn,
            handle: SchedulerHandle::default(),
            config,
            cache: HashMap::new(),
            cache_since: std::time::Instant::now(),
            clock_offset_ms: 0,
            armed: None,
            served: None,
            last_full_pass: std::time::Instant::now(),
        }
    }

    /// Redis's clock ([`schedules::redis_time_ms`]): it decides what is due.
    async fn redis_now(&mut self) -> Result<Timestamp, ScheduleError> {
        let ms = schedules::redis_time_ms(&mut self.conn).await?;
        self.clock_offset_ms = ms - Timestamp::now().as_millisecond();
        Timestamp::from_millisecond(ms).map_err(|e| ScheduleError::Protocol {
            op: "TIME",
            detail: e.to_string(),
        })
    }

    /// Redis's clock now, estimated from this process's and the last offset read.
    fn redis_now_estimate_ms(&self) -> i64 {
        Timestamp::now().as_millisecond() + self.clock_offset_ms
    }

    /// The handle that controls this loop.
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Fires everything due at `now` on every queue, once.
    pub async fn tick(&mut self, now: Timestamp) -> Result<TickReport, ScheduleError> {
        if self.cache_since.elapsed() > CACHE_LIFETIME {
            self.cache.clear();
            self.cache_since = std::time::Instant::now();
        }
        let all = self.handle.queues();
        let changed = self.handle.shared.changed.swap(false, Ordering::SeqCst);
        let full =
            changed || self.armed.is_none() || self.last_full_pass.elapsed() >= FULL_PASS_INTERVAL;
        let unchanged_list = matches!(&self.served, Some((list, _)) if Arc::ptr_eq(list, &all));
        let now_ms = now.as_millisecond();
        let queues: Vec<&ScheduledQueue> = match (&self.armed, &self.served, full) {
            (Some(armed), Some((_, known)), false) => all
                .iter()
                .filter(|q| {
                    armed.get(&q.keys.stream).is_some_and(|&ms| ms <= now_ms)
                        || (!unchanged_list && !known.contains(&q.keys.stream))
                })
                .collect(),
            _ => all.iter().collect(),
        };
        let mut report = TickReport::default();
        let all_keys: Vec<&QueueKeys> = queues.iter().map(|q| &q.keys).collect();
        let due = schedules::due_many(&mut self.conn, &all_keys, now_ms, self.config.batch).await;
        let due = self.full_pass_after_error(due)?;
        let mut work = Vec::new();
        for (&queue, due) in queues.iter().zip(due) {
            // One queue's trouble (a foreign key in its place, a failed round trip) is logged
            // and retried on the next pass; it does not hold back the other queues.
            match due {
                Ok(due) if due.is_empty() => {}
                Ok(due) => {
                    if due.len() >= self.config.batch {
                        report.more_due = true;
                    }
                    work.push((queue, due));
                }
                Err(e) => queue_failed(queue, &e, &mut report),
            }
        }
        self.fire_all(work, now, &mut report).await;
        let earliest = schedules::earliest_each(&mut self.conn, &all_keys).await;
        let earliest = self.full_pass_after_error(earliest)?;
        // The armed runs as read: a full pass replaces them all, a partial one those it read
        // (the others cannot have come earlier without a change notice).
        let armed = self.armed.get_or_insert_with(HashMap::new);
        if full {
            armed.clear();
        }
        for (queue, earliest) in queues.iter().zip(earliest) {
            match earliest {
                Some(ms) => armed.insert(queue.keys.stream.clone(), ms),
                None => armed.remove(&queue.keys.stream),
            };
        }
        if !unchanged_list {
            let streams: HashSet<String> = all.iter().map(|q| q.keys.stream.clone()).collect();
            // A queue no longer served must not keep the loop waking for its runs.
            armed.retain(|stream, _| streams.contains(stream));
            self.served = Some((all.clone(), streams));
        }
        report.next_due_ms = armed.values().min().copied();
        if full {
            self.last_full_pass = std::time::Instant::now();
        }
        Ok(report)
    }

    /// `result`, after making the next pass a full one when it failed (whatever changed
    /// meanwhile is read once Redis answers).
    fn full_pass_after_error<T>(
        &self,
        result: Result<T, ScheduleError>,
    ) -> Result<T, ScheduleError> {
        if result.is_err() {
            self.handle.shared.changed.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Fires the due runs of every queue in `work`: each queue's runs in one pipeline, all
    /// queues' pipelines in flight at once, so runs due in the same second on many queues
    /// wait for Redis to run them, not for one round trip after another.
    async fn fire_all(
        &mut self,
        work: Vec<(&ScheduledQueue, Vec<(String, i64)>)>,
        now: Timestamp,
        report: &mut TickReport,
    ) {
        let definitions = futures::future::join_all(work.iter().map(|(queue, due)| {
            let unknown = self.unknown(queue, due);
            let mut conn = self.conn.clone();
            async move {
                let loaded = schedules::get_many(&mut conn, &queue.keys, &unknown).await;
                (unknown, loaded)
            }
        }))
        .await;
        let mut ready = Vec::with_capacity(work.len());
        for ((queue, due), (unknown, loaded)) in work.into_iter().zip(definitions) {
            match self.learn(queue, &unknown, loaded, report).await {
                Ok(()) => ready.push((queue, self.requests(queue, &due, now))),
                Err(e) => queue_failed(queue, &e, report),
            }
        }
        let fired = futures::future::join_all(ready.iter().map(|(queue, (requests, _))| {
            let mut conn = self.conn.clone();
            async move {
                schedules::fire_many(&mut conn, &queue.keys, &queue.group, queue.term, requests)
                    .await
            }
        }))
        .await;
        for ((queue, (requests, missed)), outcomes) in ready.into_iter().zip(fired) {
            match outcomes {
                Ok(outcomes) => {
                    self.count_outcomes(&queue.keys.stream, &requests, missed, outcomes, report)
                }
                Err(e) => queue_failed(queue, &e, report),
            }
        }
    }

    /// The fire requests for one queue's due runs (whose definitions are known), and the runs
    /// each one missed.
    fn requests(
        &self,
        queue: &ScheduledQueue,
        due: &[(String, i64)],
        now: Timestamp,
    ) -> (Vec<FireRequest>, Vec<u64>) {
        let stream = &queue.keys.stream;
        let mut requests = Vec::with_capacity(due.len());
        let mut missed = Vec::with_capacity(due.len());
        for (name, score) in due {
            let Some(c) = self.cache.get(&(stream.clone(), name.clone())) else {
                continue;
            };
            let Ok(due_at) = Timestamp::from_millisecond(*score) else {
                continue;
            };
            let decision = decide(&c.cron, &c.tz, due_at, now, c.rules);
            missed.push(decision.missed);
            requests.push(FireRequest {
                name: name.clone(),
                expected_ms: *score,
                revision: c.revision,
                fire_ms: decision.fire.map(|t| t.as_millisecond()),
                next_ms: decision.next.map(|t| t.as_millisecond()),
                missed: decision.missed,
            });
        }
        (requests, missed)
    }

    /// The due schedules whose definitions are not in the cache yet.
    fn unknown(&self, queue: &ScheduledQueue, due: &[(String, i64)]) -> Vec<String> {
        let stream = &queue.keys.stream;
        due.iter()
            .filter(|(name, _)| !self.cache.contains_key(&(stream.clone(), name.clone())))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Compiles the definitions read for `unknown` into the cache; drops due runs whose
    /// schedule is gone.
    async fn learn(
        &mut self,
        queue: &ScheduledQueue,
        unknown: &[String],
        loaded: Result<Vec<Result<Option<StoredSchedule>, ScheduleError>>, ScheduleError>,
        report: &mut TickReport,
    ) -> Result<(), ScheduleError> {
        let stream = &queue.keys.stream;
        for (name, stored) in unknown.iter().zip(loaded?) {
            match stored.and_then(|s| s.map(|s| self.compile(s)).transpose()) {
                Ok(Some(c)) => {
                    self.cache.insert((stream.clone(), name.clone()), c);
                }
                Ok(None) => {
                    schedules::prune_orphan(&mut self.conn, &queue.keys, name).await?;
                    tracing::warn!(
                        stream,
                        schedule = name,
                        "dropped a due run whose schedule no longer exists"
                    );
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(stream, schedule = name, error = %e, "cannot fire schedule");
                }
            }
        }
        Ok(())
    }

    /// Counts what each fire did, and forgets definitions that changed under us.
    fn count_outcomes(
        &mut self,
        stream: &str,
        requests: &[FireRequest],
        missed: Vec<u64>,
        outcomes: Vec<Result<FireOutcome, ScheduleError>>,
        report: &mut TickReport,
    ) {
        for ((req, missed), outcome) in requests.iter().zip(missed).zip(outcomes) {
            match outcome {
                Ok(FireOutcome::Fired { .. }) => report.fired += 1,
                Ok(FireOutcome::Skipped) => report.skipped += 1,
                Ok(FireOutcome::Advanced) => {}
                Ok(FireOutcome::Stale) => {
                    report.lost_races += 1;
                    continue;
                }
                Ok(FireOutcome::DefinitionChanged) => {
                    self.cache.remove(&(stream.to_string(), req.name.clone()));
                    report.more_due = true;
                    continue;
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(stream, schedule = req.name, error = %e, "firing failed");
                    continue;
                }
            }
            if missed > 0 {
                report.missed += missed;
                tracing::info!(
                    stream,
                    schedule = req.name,
                    missed,
                    "runs missed while no scheduler could fire them"
                );
            }
        }
    }

    fn compile(&self, stored: StoredSchedule) -> Result<Compiled, ScheduleError> {
        let (cron, tz) = stored.definition.compile()?;
        Ok(Compiled {
            revision: stored.revision,
            cron,
            tz,
            rules: MisfireRules {
                policy: stored.definition.misfire_policy,
                starting_deadline: stored.definition.starting_deadline,
                grace: self.config.misfire_grace,
            },
        })
    }

    /// Runs until `shutdown` completes. Redis errors are logged and retried; they never end
    /// the loop.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_observed(shutdown, |_| {}).await
    }

    /// [`run`](Self::run), handing every pass's report to `observe` (for metrics: fires,
    /// misses, skips, errors).
    pub async fn run_observed(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut observe: impl FnMut(&TickReport),
    ) {
        tokio::pin!(shutdown);
        loop {
            let result = match self.redis_now().await {
                Ok(now) => self.tick(now).await.map(|r| (now, r)),
                Err(e) => Err(e),
            };
            if let Ok((_, report)) = &result {
                observe(report);
            }
            let wait = match result {
                Ok((_, report)) if report.more_due => Duration::ZERO,
                Ok((now, report)) => {
                    let until_due = report.next_due_ms.map_or(self.config.max_sleep, |ms| {
                        Duration::from_millis(
                            ms.saturating_sub(self.redis_now_estimate_ms()).max(0) as u64,
                        )
                    });
                    // A due run that made no progress (a broken definition) must not spin.
                    // One that came due while the pass ran is simply fired on the next pass.
                    let due_before_pass = report
                        .next_due_ms
                        .is_some_and(|ms| ms <= now.as_millisecond());
                    if until_due.is_zero() && !report.progressed() && due_before_pass {
                        self.config.retry_delay
                    } else {
                        until_due.min(self.config.max_sleep)
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    self.config.retry_delay
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = tokio::time::Instant::now() + wait;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.handle.shared.wake.notified() => {}
            }
            // Queues arrive one by one while a runtime starts serving thousands: gathering
            // them for a moment makes one pass (and one listing) of many.
            if !self.handle.shared.changed.load(Ordering::SeqCst) {
                let gather = (tokio::time::Instant::now() + QUEUE_GATHERING).min(deadline);
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep_until(gather) => {}
                }
            }
        }
    }
}

/// Relays [`CHANGES_CHANNEL`] messages from the Redis at `url` (a plain `redis://` URL; for a
/// cluster any one node, as PUBLISH reaches every node) to `handle.wake()`. Reconnects after
/// errors; ends when the handle's loop is gone is not tracked, so abort the task to stop it.
pub fn spawn_change_listener(
    url: String,
    tls: super::conn::TlsOptions,
    handle: SchedulerHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use futures::StreamExt;
        loop {
            let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = async {
                let client = super::conn::single_client(&url, &tls)?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANGES_CHANNEL).await?;
                // Anything may have changed while we were not subscribed.
                handle.wake();
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    handle.wake();
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "schedule change subscription failed; resubscribing");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Counts and logs one queue's failed pass (retried on the next pass).
fn queue_failed(queue: &ScheduledQueue, e: &ScheduleError, report: &mut TickReport) {
    report.errors += 1;
    tracing::warn!(stream = queue.keys.stream, error = %e, "cannot fire this queue's schedules");
}

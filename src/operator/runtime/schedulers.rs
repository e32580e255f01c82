//! One scheduler per Redis endpoint, serving every queue the runtime serves there
//! (docs/architecture.md#scheduler).

use std::sync::Arc;

use crate::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerHandle};

use super::{Inner, Runtime, lock};

/// A running scheduler: its handle, its loop and its change listener.
pub(super) struct SchedulerRun {
    pub(super) handle: SchedulerHandle,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Runtime {
    /// Points the scheduler of `url` at the queues currently served there, starting it on
    /// first use (with `conn`, a live connection to that endpoint: the queue being served)
    /// and stopping it when no queue is left. Cheap per call: the scheduler lists its queues
    /// once per pass, however many were added since.
    pub(super) fn refresh_scheduler(&self, url: &str, conn: Option<crate::queue::conn::RedisConn>) {
        let mut schedulers = lock(&self.inner.schedulers);
        // A queue was just served on `url` when a connection comes along; otherwise one may
        // have gone, and the scheduler with the last one.
        if conn.is_none() && scheduled_queues(&self.inner, url).is_empty() {
            if let Some(run) = schedulers.remove(url) {
                for t in run.tasks {
                    t.abort();
                }
            }
            return;
        }
        if let Some(run) = schedulers.get(url) {
            run.handle.queues_changed();
            return;
        }
        let Some(conn) = conn else { return };
        // Adopted queues alone need none (their keys are another system's).
        if scheduled_queues(&self.inner, url).is_empty() {
            return;
        }
        let scheduler = Scheduler::new(conn, self.inner.options.scheduler.clone());
        let handle = scheduler.handle();
        let (weak, key) = (Arc::downgrade(&self.inner), url.to_string());
        handle.set_source(Arc::new(move || {
            weak.upgrade()
                .map(|inner| scheduled_queues(&inner, &key))
                .unwrap_or_default()
        }));
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
        let (plain_url, tls) = self.inner.pool.target(url);
        if let Some(listen_url) = pubsub_url(&plain_url) {
            tasks.push(crate::queue::scheduler::spawn_change_listener(
                listen_url,
                tls,
                handle.clone(),
            ));
        }
        schedulers.insert(url.to_string(), SchedulerRun { handle, tasks });
    }
}

/// The native queues served on endpoint `url`, as its scheduler serves them.
fn scheduled_queues(inner: &Inner, url: &str) -> Vec<ScheduledQueue> {
    lock(&inner.queues)
        .values()
        .filter(|s| s.entry.redis_url == url && !s.entry.config.is_adopted())
        .map(|s| ScheduledQueue {
            keys: s.entry.config.keys.clone(),
            group: s.entry.config.group.clone(),
            term: s.entry.config.term,
        })
        .collect()
}

/// Stops the runtime's loops and schedulers when dropped.
pub(super) struct StopOnDrop {
    pub(super) inner: Arc<Inner>,
    pub(super) loops: Vec<tokio::task::JoinHandle<()>>,
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

//! Brings the runtime in line with the catalog: queues and schedules that appeared or changed
//! are upserted, those no longer declared are removed, and each queue's local workers follow its
//! template. What fails (Redis not reachable yet) stays pending and is retried by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::console::Console;
use super::launch::{self, Plan};
use super::manifest::{QueueDecl, ScheduleDecl};
use super::processes::{Exited, LocalWorkers, Stop};
use super::view::View;
use crate::api::DeletionPolicy;
use crate::operator::runtime::{ObjectId, QueueEntry, Runtime, RuntimeError, Workers};
use crate::plan::{self, PlanError, RedisInputs, RedisTarget};
use crate::queue::conn::{Endpoint, mask_password};
use crate::queue::error::QueueError;

struct AppliedQueue {
    decl: QueueDecl,
    /// Its Redis endpoint key (see `Runtime::endpoint`).
    url: String,
    workers: Option<Arc<LocalWorkers>>,
}

struct AppliedSchedule {
    decl: ScheduleDecl,
    generation: i64,
}

/// The resources applied to the runtime so far.
pub struct Applier {
    runtime: Runtime,
    console: Arc<Console>,
    view: Arc<View>,
    exits: mpsc::UnboundedSender<Option<Exited>>,
    default_url: String,
    queues: BTreeMap<ObjectId, AppliedQueue>,
    schedules: BTreeMap<ObjectId, AppliedSchedule>,
    /// Endpoints announced as unreachable (so the hint is printed once).
    unreachable: BTreeSet<String>,
    /// The last error printed per resource (so a retried failure is printed once).
    reported: BTreeMap<ObjectId, String>,
    /// Workers of removed queues, still stopping.
    retired: Vec<Arc<LocalWorkers>>,
}

impl Applier {
    pub fn new(
        runtime: Runtime,
        console: Arc<Console>,
        view: Arc<View>,
        exits: mpsc::UnboundedSender<Option<Exited>>,
        default_url: String,
    ) -> Self {
        Applier {
            runtime,
            console,
            view,
            exits,
            default_url,
            queues: BTreeMap::new(),
            schedules: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            reported: BTreeMap::new(),
            retired: Vec::new(),
        }
    }

    /// Applies `catalog`; returns whether everything in it is now applied.
    pub async fn apply(&mut self, catalog: &Catalog) -> bool {
        let mut complete = true;
        let gone: Vec<ObjectId> = self
            .schedules
            .iter()
            .filter(|(id, a)| {
                catalog
                    .schedules
                    .get(*id)
                    .is_none_or(|s| s.queue != a.decl.queue)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            complete &= self.remove_schedule(&id).await;
        }
        let gone: Vec<ObjectId> = self
            .queues
            .keys()
            .filter(|id| !catalog.queues.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remove_queue(&id).await;
        }
        for (id, decl) in &catalog.queues {
            complete &= self.upsert_queue(id, decl).await;
        }
        for (id, decl) in &catalog.schedules {
            complete &= self.upsert_schedule(id, decl).await;
        }
        self.retired.retain(|w| w.running() > 0);
        complete
    }

    /// Stops every worker (gracefully, or at once), including those of removed queues.
    pub async fn stop_workers(&self, how: Stop) {
        let all = self
            .queues
            .values()
            .filter_map(|q| q.workers.clone())
            .chain(self.retired.iter().cloned());
        futures::future::join_all(all.map(|w| async move { w.stop(how).await })).await;
    }

    /// The queue's Redis as the shared plan sees it without a cluster: no Secret can be read.
    fn redis_of(&self, decl: &QueueDecl) -> Result<RedisTarget, PlanError> {
        let inputs = RedisInputs {
            default_url: self.default_url.clone(),
            url_secret: None,
            ca_secret: None,
        };
        plan::target(&decl.resource, &inputs)
    }

    async fn upsert_queue(&mut self, id: &ObjectId, decl: &QueueDecl) -> bool {
        let redis = match self.redis_of(decl) {
            Ok(r) => r,
            Err(e) => {
                let what = format!("{}: JobQueue {id}", decl.file.display());
                self.report(id, format!("{what}: {e}"));
                return false;
            }
        };
        let url = redis.url.clone();
        let endpoint = self.runtime.endpoint(&url, &redis.tls);
        let previous = self.queues.get(id);
        if previous.is_some_and(|a| a.decl == *decl && a.url == endpoint) {
            return true;
        }
        let first = previous.is_none();
        let old_workers = previous.and_then(|a| a.workers.clone());
        let what = format!("{}: JobQueue {id}", decl.file.display());
        let (workers, why_none, notes) = self.workers_for(id, decl, &url, old_workers.clone());
        let entry = QueueEntry {
            id: id.clone(),
            redis_url: endpoint.clone(),
            config: decl.config.clone(),
            scaling: decl.scaling.clone(),
            workers: workers.clone().map(|w| w as Arc<dyn Workers>),
        };
        match self.runtime.upsert_queue(entry).await {
            Ok((_, drift)) => {
                self.reachable(&url);
                self.reported.remove(id);
                if let Some(old) = old_workers.filter(|_| workers.is_none()) {
                    self.retire(old);
                }
                if let Some(w) = &workers
                    && first
                {
                    w.start_with(decl.scaling.as_ref().map_or(1, |s| s.policy.min_replicas));
                }
                let notes: Vec<String> = notes.iter().chain(&redis.notes).cloned().collect();
                self.announce_queue(id, decl, &url, first, why_none.as_deref(), &notes);
                if let Some(d) = drift {
                    self.console.line(&format!("JobQueue {id}: {d}"));
                }
                self.view.track_queue(id, workers.clone());
                self.queues.insert(
                    id.clone(),
                    AppliedQueue {
                        decl: decl.clone(),
                        url: endpoint,
                        workers,
                    },
                );
                true
            }
            Err(e) => {
                // Workers created for this attempt never ran (0 replicas): drop them.
                if is_unreachable(&e) {
                    self.announce_unreachable(&url, &e);
                } else {
                    self.report(id, format!("{what}: cannot be provisioned: {e}"));
                }
                false
            }
        }
    }

    /// The queue's local workers: the running ones relaunched with the new template, new ones
    /// (not started yet), or none and why; plus the launcher's notes.
    fn workers_for(
        &self,
        id: &ObjectId,
        decl: &QueueDecl,
        url: &str,
        old_workers: Option<Arc<LocalWorkers>>,
    ) -> (Option<Arc<LocalWorkers>>, Option<String>, Vec<String>) {
        let dir = decl.file.parent().unwrap_or(Path::new("."));
        let (plan, notes) = launch::plan(&decl.resource, url, dir);
        let (workers, why_none) = match plan {
            Plan::Processes(l) => match old_workers {
                Some(w) => {
                    w.relaunch(l);
                    (Some(w), None)
                }
                None => {
                    let w = LocalWorkers::start(
                        id.clone(),
                        launch::label(&decl.resource),
                        l,
                        0,
                        self.console.clone(),
                        self.exits.clone(),
                    );
                    (Some(Arc::new(w)), None)
                }
            },
            Plan::None(why) => (None, Some(why)),
        };
        (workers, why_none, notes)
    }

    fn announce_queue(
        &self,
        id: &ObjectId,
        decl: &QueueDecl,
        url: &str,
        first: bool,
        why_none: Option<&str>,
        notes: &[String],
    ) {
        let file = decl.file.display();
        for n in notes {
            self.console
                .error(&format!("note: {file}: JobQueue {id}: {n}"));
        }
        let verb = if first { "serving" } else { "updated" };
        let workers = match (&decl.resource.spec.workers, why_none) {
            (_, Some(why)) => format!("no local workers: {why}"),
            _ => match &decl.scaling {
                Some(s) => format!(
                    "{}–{} local workers",
                    s.policy.min_replicas, s.policy.max_replicas
                ),
                None => "1 local worker (no spec.scaling)".into(),
            },
        };
        let what = match &decl.config.source {
            Some(a) => format!("{} (read only)", a.describe()),
            None => format!(
                "stream {} group {}",
                decl.config.keys.stream, decl.config.group
            ),
        };
        self.console.line(&format!(
            "JobQueue {id}: {verb}: {what} on {}; {workers}",
            mask_password(url)
        ));
    }

    async fn remove_queue(&mut self, id: &ObjectId) {
        let Some(applied) = self.queues.remove(id) else {
            return;
        };
        self.runtime.remove_queue(id);
        self.view.forget_queue(id);
        self.reported.remove(id);
        if let Some(w) = applied.workers {
            self.retire(w);
        }
        let mut message = format!("JobQueue {id}: no longer declared; stopped serving it");
        if applied.decl.resource.spec.deletion_policy == DeletionPolicy::Delete {
            match self
                .runtime
                .delete_queue_data(&applied.url, &applied.decl.config)
                .await
            {
                Ok(n) => message.push_str(&format!(
                    " and deleted its {n} Redis key(s) (deletionPolicy: Delete)"
                )),
                Err(e) => message.push_str(&format!(
                    "; deleting its data (deletionPolicy: Delete) failed: {e}"
                )),
            }
        } else {
            message.push_str(" (its data stays in Redis: deletionPolicy: Retain)");
            // Another queue may name the stream now.
            if let Err(e) = self
                .runtime
                .release_claim(&applied.url, &applied.decl.config)
                .await
            {
                message.push_str(&format!("; releasing its claim on the stream failed: {e}"));
            }
        }
        self.console.line(&message);
    }

    fn retire(&mut self, workers: Arc<LocalWorkers>) {
        let w = workers.clone();
        tokio::spawn(async move { w.stop(Stop::Graceful).await });
        self.retired.push(workers);
    }

    async fn upsert_schedule(&mut self, id: &ObjectId, decl: &ScheduleDecl) -> bool {
        let previous = self.schedules.get(id);
        if previous.is_some_and(|a| a.decl == *decl) {
            return true;
        }
        if !self.queues.contains_key(&decl.queue) {
            return false; // its queue is not served yet (Redis unreachable): retried
        }
        let generation = previous.map_or(decl.definition.generation, |a| a.generation + 1);
        let mut definition = decl.definition.clone();
        definition.generation = generation;
        match self
            .runtime
            .upsert_schedule(id, &decl.queue, &definition)
            .await
        {
            Ok(()) => {
                self.reported.remove(id);
                self.view.track_schedule(id, &decl.queue);
                let verb = if previous.is_some() {
                    "updated"
                } else {
                    "armed"
                };
                let state = if definition.suspend {
                    " (suspended)"
                } else {
                    ""
                };
                self.console.line(&format!(
                    "Schedule {id}: {verb}: {:?} in {} feeds JobQueue {}{state}",
                    definition.cron, definition.time_zone, decl.queue
                ));
                self.schedules.insert(
                    id.clone(),
                    AppliedSchedule {
                        decl: decl.clone(),
                        generation,
                    },
                );
                true
            }
            Err(e) => {
                if let RuntimeError::Queue(q) = &e
                    && is_unreachable(q)
                {
                    return false;
                }
                self.report(
                    id,
                    format!(
                        "{}: Schedule {id}: cannot be applied: {e}",
                        decl.file.display()
                    ),
                );
                false
            }
        }
    }

    async fn remove_schedule(&mut self, id: &ObjectId) -> bool {
        let Some(applied) = self.schedules.get(id) else {
            return true;
        };
        match self.runtime.remove_schedule(id, &applied.decl.queue).await {
            Ok(()) => {
                self.schedules.remove(id);
                self.view.forget_schedule(id);
                self.console
                    .line(&format!("Schedule {id}: no longer declared; removed"));
                true
            }
            Err(e) => {
                self.report(id, format!("Schedule {id}: cannot be removed yet: {e}"));
                false
            }
        }
    }

    fn report(&mut self, id: &ObjectId, message: String) {
        if self.reported.get(id) != Some(&message) {
            self.console.error(&format!("error: {message}"));
            self.reported.insert(id.clone(), message);
        }
    }

    fn announce_unreachable(&mut self, url: &str, e: &QueueError) {
        if !self.unreachable.insert(url.to_string()) {
            return;
        }
        self.console.error(&format!(
            "error: Redis at {} is not reachable ({e}). Start one with: redis-server --port {} --save '' --daemonize yes (or pass --redis URL); retrying",
            mask_password(url),
            port_of(url)
        ));
    }

    fn reachable(&mut self, url: &str) {
        if self.unreachable.remove(url) {
            self.console
                .line(&format!("Redis at {} is reachable", mask_password(url)));
        }
    }
}

fn is_unreachable(e: &QueueError) -> bool {
    crate::operator::runtime::is_connection_error(e)
}

/// The port to suggest for a local redis-server.
fn port_of(url: &str) -> u16 {
    let first = match Endpoint::parse(url) {
        Ok(Endpoint::Single(u)) => Some(u),
        Ok(Endpoint::Cluster(seeds)) => seeds.into_iter().next(),
        Err(_) => None,
    };
    first
        .and_then(|u| url::Url::parse(&u).ok())
        .and_then(|u| u.port())
        .unwrap_or(6379)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_port_follows_the_url() {
        assert_eq!(port_of("redis://127.0.0.1:7001"), 7001);
        assert_eq!(port_of("redis://localhost"), 6379);
        assert_eq!(port_of("redis+cluster://a:7000,b:7001"), 7000);
        assert_eq!(port_of("nonsense"), 6379);
    }
}

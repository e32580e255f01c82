//! The workers of one queue as local processes: what the runtime scales in local mode.
//!
//! Each worker slot is a task that keeps one process running: it starts the template's
//! command with a fresh consumer name, prefixes its output with `[queue#index]`, restarts it
//! with backoff when it exits on its own, and on scale-in sends SIGTERM and, after the grace
//! period, SIGKILL. Every exit is reported so the runtime reclaims the jobs that process held
//! at once (a restarted process is a new consumer and would never see them).

use std::collections::{BTreeMap, HashSet};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};

use super::choice::{self, SlotView};
use super::console::Console;
use super::launch::Launch;
use super::sys;
use crate::operator::runtime::{ObjectId, Workers, WorkersError};
use crate::queue::metrics::ConsumerInfo;

/// How long the output of an exited worker is awaited before its exit is reported.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// A worker process ended; whatever its consumer held must go to another worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    pub queue: ObjectId,
    pub consumer: String,
}

/// How a slot is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// SIGTERM, then SIGKILL after the grace period.
    Graceful,
    /// SIGKILL now.
    Now,
}

/// The worker processes of one queue.
pub struct LocalWorkers {
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Whether the runtime has scaled these workers yet.
    scaled: AtomicBool,
    /// Set by [`Self::stop`]: a scale decision still in flight must not start new workers.
    closed: AtomicBool,
}

struct Shared {
    queue: ObjectId,
    label: String,
    console: Arc<Console>,
    exits: mpsc::UnboundedSender<Option<Exited>>,
    launch: watch::Sender<Arc<Launch>>,
}

#[derive(Default)]
struct State {
    /// Slots the replica count asks for.
    slots: BTreeMap<u32, Slot>,
    /// Slots being stopped (their processes may still finish jobs).
    retiring: Vec<Slot>,
}

struct Slot {
    index: u32,
    /// Consumer name of the running process.
    consumer: Arc<Mutex<Option<String>>>,
    stop: watch::Sender<Stop>,
    /// Becomes true when the slot's task has ended (its process is gone).
    done: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalWorkers {
    /// Starts `replicas` workers of `queue` (shown as `label` in output).
    pub fn start(
        queue: ObjectId,
        label: String,
        launch: Launch,
        replicas: u32,
        console: Arc<Console>,
        exits: mpsc::UnboundedSender<Option<Exited>>,
    ) -> Self {
        let (launch, _) = watch::channel(Arc::new(launch));
        let workers = LocalWorkers {
            shared: Arc::new(Shared {
                queue,
                label,
                console,
                exits,
                launch,
            }),
            state: Mutex::default(),
            scaled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        };
        workers.set_replicas(replicas, &[]);
        workers
    }

    /// Sets the starting replica count, unless the runtime has already decided one.
    pub fn start_with(&self, replicas: u32) {
        if !self.scaled.load(Ordering::SeqCst) {
            self.set_replicas(replicas, &[]);
        }
    }

    /// Switches to a new command or environment: running workers are stopped gracefully and
    /// started again with it. Returns whether anything changed.
    pub fn relaunch(&self, launch: Launch) -> bool {
        self.shared.launch.send_if_modified(|current| {
            if **current == launch {
                return false;
            }
            *current = Arc::new(launch);
            true
        })
    }

    /// Processes running now (including ones being stopped).
    pub fn running(&self) -> usize {
        let state = lock(&self.state);
        state
            .slots
            .values()
            .chain(&state.retiring)
            .filter(|s| lock(&s.consumer).is_some())
            .count()
    }

    /// Stops every worker (`how`: gracefully or at once) and waits until all have exited. A
    /// second call with [`Stop::Now`] escalates a graceful stop in progress.
    pub async fn stop(&self, how: Stop) {
        let mut waiting: Vec<watch::Receiver<bool>> = {
            let mut state = lock(&self.state);
            self.closed.store(true, Ordering::SeqCst);
            let slots = std::mem::take(&mut state.slots);
            state.retiring.extend(slots.into_values());
            for s in &state.retiring {
                s.stop.send_if_modified(|cur| {
                    let escalate = *cur == Stop::Run || how == Stop::Now;
                    if escalate {
                        *cur = how;
                    }
                    escalate
                });
            }
            state.retiring.iter().map(|s| s.done.clone()).collect()
        };
        for done in &mut waiting {
            let _ = done.wait_for(|d| *d).await;
        }
        lock(&self.state).retiring.retain(|s| !*s.done.borrow());
    }

    fn set_replicas(&self, replicas: u32, consumers: &[ConsumerInfo]) {
        let mut state = lock(&self.state);
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        state.retiring.retain(|s| !*s.done.borrow());
        let current = state.slots.len();
        let wanted = replicas as usize;
        if wanted > current {
            for _ in current..wanted {
                let index = (0..)
                    .find(|i| {
                        !state.slots.contains_key(i)
                            && !state.retiring.iter().any(|s| s.index == *i)
                    })
                    .unwrap_or(u32::MAX);
                let slot = self.spawn_slot(index);
                state.slots.insert(index, slot);
            }
        } else if wanted < current {
            let views: Vec<SlotView> = state
                .slots
                .values()
                .map(|s| SlotView {
                    index: s.index,
                    consumer: lock(&s.consumer).clone(),
                })
                .collect();
            for index in choice::victims(&views, consumers, current - wanted) {
                if let Some(slot) = state.slots.remove(&index) {
                    let _ = slot.stop.send(Stop::Graceful);
                    state.retiring.push(slot);
                }
            }
        }
    }

    fn spawn_slot(&self, index: u32) -> Slot {
        let consumer = Arc::new(Mutex::new(None));
        let (stop, stop_rx) = watch::channel(Stop::Run);
        let (done_tx, done) = watch::channel(false);
        let task = SlotTask {
            shared: self.shared.clone(),
            index,
            consumer: consumer.clone(),
            stop: stop_rx,
            launch: self.shared.launch.subscribe(),
        };
        tokio::spawn(async move {
            run_slot(task).await;
            let _ = done_tx.send(true);
        });
        Slot {
            index,
            consumer,
            stop,
            done,
        }
    }
}

impl Workers for LocalWorkers {
    fn replicas(&self) -> BoxFuture<'_, Result<u32, WorkersError>> {
        let n = lock(&self.state).slots.len() as u32;
        Box::pin(async move { Ok(n) })
    }

    fn scale<'a>(
        &'a self,
        replicas: u32,
        consumers: &'a [ConsumerInfo],
    ) -> BoxFuture<'a, Result<(), WorkersError>> {
        self.scaled.store(true, Ordering::SeqCst);
        self.set_replicas(replicas, consumers);
        Box::pin(async { Ok(()) })
    }

    fn live_consumers(&self) -> BoxFuture<'_, Result<Option<HashSet<String>>, WorkersError>> {
        let state = lock(&self.state);
        let live: HashSet<String> = state
            .slots
            .values()
            .chain(&state.retiring)
            .filter_map(|s| lock(&s.consumer).clone())
            .collect();
        Box::pin(async move { Ok(Some(live)) })
    }
}

struct SlotTask {
    shared: Arc<Shared>,
    index: u32,
    consumer: Arc<Mutex<Option<String>>>,
    stop: watch::Receiver<Stop>,
    launch: watch::Receiver<Arc<Launch>>,
}

enum Ended {
    Exited(std::io::Result<ExitStatus>),
    Stopped,
    Relaunch,
}

/// A consumer name never used before: a restarted process must not inherit the pending
/// entries of its predecessor (they are reclaimed instead).
fn consumer_name(queue: &ObjectId, index: u32) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{index}-{}", queue.name, &id[..8])
}

async fn run_slot(mut t: SlotTask) {
    let prefix = format!("[{}#{}]", t.shared.label, t.index);
    let console = t.shared.console.clone();
    let mut crashes = 0u32;
    loop {
        if *t.stop.borrow() != Stop::Run {
            return;
        }
        let launch = t.launch.borrow_and_update().clone();
        let consumer = consumer_name(&t.shared.queue, t.index);
        let child = match spawn(&launch, &consumer) {
            Ok(c) => c,
            Err(e) => {
                crashes = crashes.saturating_add(1);
                let delay = choice::restart_delay(crashes);
                console.error(&format!(
                    "{prefix} cannot start {:?} in {}: {e}; retrying in {}",
                    launch.argv.join(" "),
                    launch.dir.display(),
                    secs(delay)
                ));
                if !pause(delay, &mut t).await {
                    return;
                }
                continue;
            }
        };
        let started = Instant::now();
        let (status, relaunch) = supervise(&mut t, &prefix, &launch, child, consumer).await;
        let status = describe(&status);
        if *t.stop.borrow() != Stop::Run {
            console.line(&format!("{prefix} stopped ({status})"));
            return;
        }
        if relaunch {
            console.line(&format!(
                "{prefix} stopped ({status}) to start with the new template"
            ));
            crashes = 0;
            continue;
        }
        crashes = choice::crashes_after(crashes, started.elapsed());
        let delay = choice::restart_delay(crashes);
        console.error(&format!(
            "{prefix} exited ({status}); its jobs go to other workers; restarting in {}",
            secs(delay)
        ));
        if !pause(delay, &mut t).await {
            return;
        }
    }
}

/// Watches one started process until it exits, is stopped or must start with a new template;
/// reports its exit. Returns how it ended and whether it is to be started again at once.
#[tracing::instrument(name = "worker", skip_all, fields(namespace = %t.shared.queue.namespace, name = %t.shared.queue.name, index = t.index, consumer = %consumer))]
async fn supervise(
    t: &mut SlotTask,
    prefix: &str,
    launch: &Launch,
    mut child: tokio::process::Child,
    consumer: String,
) -> (std::io::Result<ExitStatus>, bool) {
    let console = t.shared.console.clone();
    *lock(&t.consumer) = Some(consumer.clone());
    console.line(&format!(
        "{prefix} started pid {} as consumer {consumer}",
        child.id().unwrap_or(0)
    ));
    let mut forwarders = Vec::new();
    if let Some(out) = child.stdout.take() {
        forwarders.push(tokio::spawn(forward(
            out,
            prefix.to_string(),
            console.clone(),
            false,
        )));
    }
    if let Some(err) = child.stderr.take() {
        forwarders.push(tokio::spawn(forward(
            err,
            prefix.to_string(),
            console.clone(),
            true,
        )));
    }
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status),
        r = t.stop.changed() => match r {
            Ok(()) if *t.stop.borrow() == Stop::Run => Ended::Relaunch,
            _ => Ended::Stopped,
        },
        r = t.launch.changed() => if r.is_ok() { Ended::Relaunch } else { Ended::Stopped },
    };
    let relaunch = matches!(ended, Ended::Relaunch);
    let status = match ended {
        Ended::Exited(status) => status,
        Ended::Stopped | Ended::Relaunch => terminate(&mut child, launch.grace, &mut t.stop).await,
    };
    *lock(&t.consumer) = None;
    let _ = t.shared.exits.send(Some(Exited {
        queue: t.shared.queue.clone(),
        consumer,
    }));
    // The process's last words come before our line about its end (bounded: a program it
    // started may hold the pipes open).
    let _ = tokio::time::timeout(OUTPUT_DRAIN, futures::future::join_all(forwarders)).await;
    (status, relaunch)
}

fn spawn(launch: &Launch, consumer: &str) -> std::io::Result<tokio::process::Child> {
    let (argv, env) = launch.for_consumer(consumer);
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env)
        .current_dir(&launch.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sys::isolate(&mut cmd);
    cmd.spawn()
}

/// SIGTERM, then SIGKILL after `grace` (or at once when asked to stop now); waits for exit.
async fn terminate(
    child: &mut tokio::process::Child,
    grace: Duration,
    stop: &mut watch::Receiver<Stop>,
) -> std::io::Result<ExitStatus> {
    let kill = |child: &tokio::process::Child| {
        if let Some(pid) = child.id() {
            let _ = sys::signal_group(pid, libc::SIGKILL);
        }
    };
    if *stop.borrow() == Stop::Now {
        kill(child);
        return child.wait().await;
    }
    if let Some(pid) = child.id() {
        let _ = sys::signal_group(pid, libc::SIGTERM);
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            status = child.wait() => return status,
            _ = &mut deadline => {
                kill(child);
                return child.wait().await;
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() == Stop::Now {
                    kill(child);
                    return child.wait().await;
                }
            }
        }
    }
}

/// Waits `delay` before a restart; false when the slot is stopped meanwhile.
async fn pause(delay: Duration, t: &mut SlotTask) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        r = t.stop.changed() => r.is_ok() && *t.stop.borrow() == Stop::Run,
        r = t.launch.changed() => r.is_ok(),
    }
}

async fn forward(stream: impl AsyncRead + Unpin, prefix: String, console: Arc<Console>, err: bool) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = format!("{prefix} {}", text.trim_end_matches(['\n', '\r']));
                if err {
                    console.error(&line);
                } else {
                    console.line(&line);
                }
            }
        }
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("unknown status: {e}"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

//! Fault tests: jobs survive crashing consumers and a janitor killed with SIGKILL mid-run,
//! on a standalone redis-server and on a three-node Redis Cluster.

use jobqueue_test_support::without_operator_env;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::{
    EnqueueOptions, QueueConfig, RedisConn, connect, dead_letter, enqueue,
};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::Topology;
use jobqueue_test_support::wait::eventually;
use serde_json::json;

const STREAM: &str = "jobqueue:{faults/q}";
const JOBS: usize = 10_000;
const CONSUMERS: usize = 4;
const MAX_DELIVERIES: u32 = 3;
/// Probability that a consumer crashes while holding a job (dropping it unacknowledged).
const CRASH: f64 = 0.12;

#[derive(Default)]
struct Ledger {
    /// job id -> attempts delivered, in order.
    delivered: HashMap<String, Vec<u32>>,
    /// job id -> successful XACKs (the entry was still pending).
    acked: HashMap<String, u32>,
    /// (job id, attempt) of deliveries that ended without a successful ack.
    failed: HashSet<(String, u32)>,
    crashes: usize,
}

on_both_topologies!(
    ten_thousand_jobs_survive_randomly_crashing_consumers,
    janitor_killed_with_sigkill_loses_and_duplicates_nothing
);

async fn ten_thousand_jobs_survive_randomly_crashing_consumers(t: Topology) {
    let f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_millis(250);
        c.max_deliveries = MAX_DELIVERIES;
    })
    .await;
    let url = f.redis.url();
    let cfg = f.cfg.clone();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));

    // The janitor, as the operator runs it.
    let janitor_task = spawn_janitor_loop(f.conn.clone(), cfg.clone(), stop.clone());

    // Consumers: plain XREADGROUP/XACK. A crash drops what the consumer holds and restarts it
    // under a new name (a new pod); half the time the operator notices the dead pod and
    // reclaims its jobs at once, otherwise the visibility timeout does.
    let generation = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let crew = Crew {
            url: url.clone(),
            cfg: cfg.clone(),
            ledger: ledger.clone(),
            stop: stop.clone(),
            generation: generation.clone(),
        };
        consumers.push(spawn_crashing_consumer(c, crew));
    }

    // Produce while the consumers run.
    let ids = produce(&url, &cfg).await;

    let mut probe_conn = f.conn.clone();
    every_job_settled(&probe_conn, &cfg, &ledger).await;
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await.unwrap();
    }
    janitor_task.await.unwrap();

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let dead_ids = assert_dead_lettered_once(&mut probe_conn, &cfg).await;
    assert_none_lost(&ledger, &dead_ids, &ids);
    assert_nothing_left(&mut probe_conn, &cfg).await;
    assert!(
        ledger.crashes > 0 && !dead_ids.is_empty(),
        "the scenario exercised crashes and dead letters"
    );
    eprintln!(
        "{t:?}: {} crashes, {} dead letters, {} deliveries",
        ledger.crashes,
        dead_ids.len(),
        ledger.delivered.values().map(Vec::len).sum::<usize>()
    );
}

/// The janitor loop, as the operator runs it, until `stop`.
fn spawn_janitor_loop(
    mut conn: RedisConn,
    cfg: QueueConfig,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let opts = JanitorOptions::default();
        while !stop.load(Ordering::Relaxed) {
            janitor::tick(&mut conn, &cfg, &opts)
                .await
                .expect("janitor tick");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// What the consumers share: where the queue is, the ledger they write, when to stop, and the
/// counter naming restarted consumers.
struct Crew {
    url: String,
    cfg: QueueConfig,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    generation: Arc<AtomicUsize>,
}

/// Consumer `c`: reads, sometimes crashes holding its batch (restarting as a new pod, whose
/// predecessor's jobs the operator reclaims half the time), else acknowledges.
fn spawn_crashing_consumer(c: usize, crew: Crew) -> tokio::task::JoinHandle<()> {
    let Crew {
        url,
        cfg,
        ledger,
        stop,
        generation,
    } = crew;
    tokio::spawn(async move {
        let mut conn = connect(&url).await.unwrap();
        let mut name = format!("pod-{c}-0");
        while !stop.load(Ordering::Relaxed) {
            let batch = read(&mut conn, &cfg, &name, 10, Some(50)).await;
            let mut crashed = false;
            for d in batch {
                let (id, attempt) = (d.job_id().to_string(), d.attempt());
                ledger
                    .lock()
                    .unwrap()
                    .delivered
                    .entry(id.clone())
                    .or_default()
                    .push(attempt);
                if crashed || rand::random_bool(CRASH) {
                    crashed = true;
                    ledger.lock().unwrap().failed.insert((id, attempt));
                    continue;
                }
                if ack(&mut conn, &cfg, &d.entry_id).await {
                    *ledger.lock().unwrap().acked.entry(id).or_default() += 1;
                } else {
                    // Too slow: the janitor had already handed it out again.
                    ledger.lock().unwrap().failed.insert((id, attempt));
                }
            }
            if crashed {
                ledger.lock().unwrap().crashes += 1;
                let old = std::mem::replace(
                    &mut name,
                    format!("pod-{c}-{}", generation.fetch_add(1, Ordering::Relaxed) + 1),
                );
                if rand::random_bool(0.5) {
                    janitor::reclaim_consumer(&mut conn, &cfg, &old, &JanitorOptions::default())
                        .await
                        .unwrap();
                }
            }
        }
    })
}

/// Enqueues the jobs; returns their ids (each unique).
async fn produce(url: &str, cfg: &QueueConfig) -> HashSet<String> {
    let mut producer = connect(url).await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..JOBS {
        let job = enqueue(
            &mut producer,
            &cfg.keys,
            &json!({ "n": i }),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
        assert!(ids.insert(job.job_id), "job ids are unique");
    }
    ids
}

/// Waits until every job is acknowledged or dead-lettered and nothing is pending.
async fn every_job_settled(conn: &RedisConn, cfg: &QueueConfig, ledger: &Arc<Mutex<Ledger>>) {
    let probe_conn = conn.clone();
    let finished = eventually(
        Duration::from_secs(300),
        "every job to be acknowledged or dead-lettered",
        || {
            let (ledger, cfg, mut conn) = (ledger.clone(), cfg.clone(), probe_conn.clone());
            async move {
                let done = ledger.lock().unwrap().acked.len();
                let dead_n: u64 = redis::cmd("XLEN")
                    .arg(&cfg.dead_letter)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                (done as u64 + dead_n >= JOBS as u64 && pending(&mut conn, &cfg).await == 0)
                    .then_some(())
            }
        },
    );
    finished.await;
}

/// Each dead-lettered job is there once, after its last attempt; returns their ids.
async fn assert_dead_lettered_once(conn: &mut RedisConn, cfg: &QueueConfig) -> HashSet<String> {
    let dead = dead_letter::list(conn, cfg, JOBS).await.unwrap();
    let dead_ids: HashSet<String> = dead
        .iter()
        .map(|d| d.get("id").unwrap().to_string())
        .collect();
    assert_eq!(dead_ids.len(), dead.len(), "no job dead-lettered twice");
    assert!(dead.iter().all(
        |d| d.get("attempt") == Some("3") && d.get("reason") == Some("max_deliveries_exceeded")
    ));
    dead_ids
}

/// None lost: every job was acknowledged by a worker or dead-lettered, never both; deliveries
/// beyond retries never happened.
fn assert_none_lost(ledger: &Ledger, dead_ids: &HashSet<String>, ids: &HashSet<String>) {
    let acked: HashSet<String> = ledger.acked.keys().cloned().collect();
    assert!(acked.is_disjoint(dead_ids));
    let all: HashSet<String> = acked.union(dead_ids).cloned().collect();
    assert_eq!(&all, ids, "every job is accounted for");
    assert!(
        ledger.acked.values().all(|&n| n == 1),
        "each delivery chain ends in exactly one ack"
    );
    // The dead-letter stream holds exactly the jobs whose last allowed delivery failed.
    let exceeded: HashSet<String> = ledger
        .failed
        .iter()
        .filter(|(_, a)| *a == MAX_DELIVERIES)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(dead_ids, &exceeded);
    // No duplicate deliveries beyond retries: attempts of each job are 1, 2, ... once each.
    for (id, attempts) in &ledger.delivered {
        let want: Vec<u32> = (1..=attempts.len() as u32).collect();
        let mut got = attempts.clone();
        got.sort();
        assert_eq!(got, want, "job {id}");
    }
}

/// Nothing left anywhere: no pending, unread or delayed job.
async fn assert_nothing_left(conn: &mut RedisConn, cfg: &QueueConfig) {
    assert_eq!(pending(conn, cfg).await, 0);
    assert!(
        read(conn, cfg, "final", 10, None).await.is_empty(),
        "no unread job"
    );
    assert!(delayed(conn, cfg).await.is_empty());
}

fn spawn_janitor(url: &str) -> Child {
    without_operator_env(&mut Command::new(env!("CARGO_BIN_EXE_jobqueue-operator")))
        .args([
            "janitor",
            "--redis",
            url,
            STREAM,
            "--visibility-timeout",
            "1ms",
            "--max-deliveries",
            "2",
        ])
        .args(["--interval", "10ms", "--batch", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the janitor")
}

/// Runs the janitor binary until `done`, killing it with SIGKILL whenever it has made some
/// progress (and restarting it), `kills` times.
async fn run_janitor_with_kills(
    url: &str,
    kills: usize,
    conn: &RedisConn,
    cfg: &QueueConfig,
    progress: impl Fn(u64, u64) -> bool + Copy,
) -> usize {
    let mut killed_mid_run = 0;
    let (c, g) = (conn.clone(), cfg.clone());
    let state = move || {
        let (mut c, g) = (c.clone(), g.clone());
        async move {
            let p = pending(&mut c, &g).await;
            let d: u64 = redis::cmd("ZCARD")
                .arg(g.keys.delayed())
                .query_async(&mut c)
                .await
                .unwrap();
            p + d
        }
    };
    for _ in 0..kills {
        let before = state().await;
        if before == 0 {
            break;
        }
        let mut child = spawn_janitor(url);
        eventually(Duration::from_secs(60), "janitor progress", || {
            let s = state.clone();
            async move { progress(before, s().await).then_some(()) }
        })
        .await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if state().await > 0 {
            killed_mid_run += 1;
        }
    }
    let mut child = spawn_janitor(url);
    eventually(Duration::from_secs(120), "the janitor to finish", || {
        let s = state.clone();
        async move { (s().await == 0).then_some(()) }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    killed_mid_run
}

async fn janitor_killed_with_sigkill_loses_and_duplicates_nothing(t: Topology) {
    const N: usize = 1500;
    const DELAYED: usize = 500;
    let mut f = queue(t, STREAM, |c| c.max_deliveries = 2).await;
    let mut ids = HashSet::new();
    for i in 0..N {
        ids.insert(
            enqueue(
                &mut f.conn,
                &f.cfg.keys,
                &json!(i),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .job_id,
        );
    }
    // Everything is read and never acknowledged: every job needs the janitor.
    let mut held = 0;
    while held < N {
        held += read(&mut f.conn, &f.cfg, "doomed", 500, None).await.len();
    }
    // Delayed jobs, already due, from a foreign producer: they need the janitor too.
    for i in 0..DELAYED {
        let id = format!("delayed-{i}");
        let member = json!({ "id": id, "payload": "{}", "attempt": "1" }).to_string();
        let () = redis::cmd("ZADD")
            .arg(f.cfg.keys.delayed())
            .arg(1)
            .arg(member)
            .query_async(&mut f.conn)
            .await
            .map(|_: u64| ())
            .unwrap();
        ids.insert(id);
    }
    let url = f.redis.url();
    let some_progress = |before: u64, now: u64| now < before;
    let mid1 = run_janitor_with_kills(&url, 5, &f.conn, &f.cfg, some_progress).await;

    // Phase 1 done: each job is in the stream exactly once more, with attempt 2 (delayed: 1).
    let mut second = Vec::new();
    loop {
        let got = read(&mut f.conn, &f.cfg, "doomed-2", 500, None).await;
        if got.is_empty() {
            break;
        }
        second.extend(got);
    }
    let second_ids: Vec<String> = second.iter().map(|d| d.job_id().to_string()).collect();
    let unique: HashSet<String> = second_ids.iter().cloned().collect();
    assert_eq!(
        second_ids.len(),
        unique.len(),
        "no job duplicated by the killed janitor"
    );
    assert_eq!(unique, ids, "no job lost by the killed janitor");
    assert!(second.iter().all(|d| d.attempt()
        == if d.job_id().starts_with("delayed-") {
            1
        } else {
            2
        }));

    // Phase 2: the originally enqueued jobs fail their last delivery; kill again while the
    // janitor dead-letters (the delayed ones get one more try).
    let mid2 = run_janitor_with_kills(&url, 5, &f.conn, &f.cfg, some_progress).await;
    let dead = dead_letter::list(&mut f.conn, &f.cfg, 10 * N)
        .await
        .unwrap();
    let dead_ids: Vec<String> = dead
        .iter()
        .map(|d| d.get("id").unwrap().to_string())
        .collect();
    let dead_set: HashSet<String> = dead_ids.iter().cloned().collect();
    assert_eq!(dead_ids.len(), dead_set.len(), "no job dead-lettered twice");
    let third = read(&mut f.conn, &f.cfg, "last", 10 * N, None).await;
    let third_ids: HashSet<String> = third.iter().map(|d| d.job_id().to_string()).collect();
    assert_eq!(third.len(), third_ids.len());
    assert!(dead_set.is_disjoint(&third_ids));
    assert_eq!(dead_set.len(), N, "the enqueued jobs, each once");
    assert_eq!(third_ids.len(), DELAYED, "the delayed ones, retried once");
    let everything: HashSet<String> = dead_set.union(&third_ids).cloned().collect();
    assert_eq!(everything, ids);
    eprintln!("{t:?}: SIGKILLs that interrupted work: {mid1} + {mid2}");
}

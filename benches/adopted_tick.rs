//! Adopted queues: the cost of one metrics tick over 1,000 queues of RQ, Celery, Sidekiq or
//! BullMQ, next to 1,000 native queues and to a KEDA `redis` (lists) scaler's way of reading.
//!
//! One private redis-server holds all of them at once; blocks of the readings take turns so
//! that machine load hits all of them alike:
//! - `native`: `metrics::snapshot` over 1,000 provisioned streams (the reference);
//! - one row per system: `metrics::snapshot` over 1,000 adopted queues of that system (one
//!   pipelined round trip, one read-only script per queue);
//! - `KEDA redis (lists) style`: one `LLEN rq:queue:<q>` per RQ queue, each awaited (what
//!   KEDA's `redis` scaler does for one ScaledObject each).
//!
//! Every queue holds a realistic state in the key layouts and value formats the real
//! libraries write (RQ 3.0, Celery 5.7/kombu, Sidekiq 6.4, BullMQ 6.7), written here with
//! pipelined commands: 1,000 queues per system with a busy worker each cannot be run on one
//! machine. Every reading is checked against the numbers written, so the figure measures
//! correct readings. Redis's side comes from INFO on a second connection
//! (`common::RedisWork`).
//!
//! Run: `cargo bench --bench adopted_tick`

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use jobqueue_operator::queue::adopted::{Adopted, SCAN_BOUND, System};
use jobqueue_operator::queue::keys::default_stream;
use jobqueue_operator::queue::metrics::{QueueMetrics, QueueState, SnapshotOptions, snapshot};
use jobqueue_operator::queue::{Due, EnqueueOptions, QueueConfig, QueueError, RedisConn};
use jobqueue_operator::queue::{connect, enqueue};
use jobqueue_test_support::redis::RedisServer;
use redis::Pipeline;
use serde_json::{Value, json};

/// Queues per system (and native queues).
const N: usize = 1_000;
/// Measured blocks per reading; the readings take turns block by block.
const BLOCKS: usize = 5;
/// A block runs about this long (at least 2 and at most 20 ticks).
const BLOCK_MS: f64 = 1_500.0;
/// Queues written per setup pipeline.
const CHUNK: usize = 100;
/// Waiting jobs per queue.
const WAITING: u64 = 10;
/// How far ahead the future entries lie (scheduled jobs, retries, in-flight expiries): well
/// beyond the end of the run.
const AHEAD_S: f64 = 7_200.0;

const SYSTEMS: [System; 4] = [System::Rq, System::Celery, System::Sidekiq, System::BullMq];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Native,
    Adopted(System),
    KedaLists,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::Native,
        Mode::Adopted(System::Rq),
        Mode::Adopted(System::Celery),
        Mode::Adopted(System::Sidekiq),
        Mode::Adopted(System::BullMq),
        Mode::KedaLists,
    ];

    fn label(self) -> String {
        match self {
            Mode::Native => "native streams (engine, batched)".into(),
            Mode::Adopted(s) => format!("adopted {s} (engine, batched)"),
            Mode::KedaLists => "RQ lists, KEDA `redis` scaler style (LLEN each)".into(),
        }
    }

    /// Round trips the reading makes by design (Redis's socket reads are measured beside it):
    /// Celery and Sidekiq add one shared reading per endpoint to the pipelined tick.
    fn round_trips(self) -> usize {
        match self {
            Mode::KedaLists => N,
            Mode::Adopted(System::Celery | System::Sidekiq) => 2,
            _ => 1,
        }
    }
}

/// What a reading of one populated queue must return.
struct Expected {
    queued: u64,
    in_flight: u64,
    delayed: u64,
    failed: u64,
}

/// Per system: 10 waiting, 1 in flight, and where the system keeps them 1 scheduled job due
/// in two hours, 1 already due (waiting for a worker to promote it: queued) and 1 failed.
fn expected(system: System) -> Expected {
    match system {
        System::Rq | System::BullMq => Expected {
            queued: WAITING + 1,
            in_flight: 1,
            delayed: 1,
            failed: 1,
        },
        // No scheduled or failed keys in the broker.
        System::Celery => Expected {
            queued: WAITING,
            in_flight: 1,
            delayed: 0,
            failed: 0,
        },
        // The failed job waits in `retry` (a retry not yet due is delayed work); the reading
        // reports no failed count.
        System::Sidekiq => Expected {
            queued: WAITING + 1,
            in_flight: 1,
            delayed: 2,
            failed: 0,
        },
    }
}

#[derive(Default)]
struct Samples {
    wall_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
    reads: Vec<f64>,
    commands: Vec<f64>,
}

/// The queues of every row.
struct Queues {
    native: Vec<QueueConfig>,
    adopted: HashMap<System, Vec<QueueConfig>>,
    names: Vec<String>,
}

fn main() {
    let runtime = common::runtime();
    println!("## Adopted queues: metrics collection cost per tick, {N} queues per system\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    runtime.block_on(figure());
    println!("\nLoad average at end: {:.2}", common::load());
}

async fn figure() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.expect("connect");
    let mut admin = connect(&server.url()).await.expect("connect");
    let now = server_time(&mut conn).await;

    let names: Vec<String> = (0..N).map(|i| format!("q{i:04}")).collect();
    let native = setup_native(&mut conn, &names).await;
    let mut adopted = HashMap::new();
    for system in SYSTEMS {
        populate(&mut conn, system, &names, now).await;
        let queues = names
            .iter()
            .map(|q| QueueConfig::adopted(Adopted::new(system, q)))
            .collect::<Vec<_>>();
        adopted.insert(system, queues);
    }
    let queues = Queues {
        native,
        adopted,
        names,
    };
    describe(&mut conn).await;

    // Warm-up: loads the scripts and checks every reading; a second pass sets the ticks per
    // block.
    for mode in Mode::ALL {
        tick(&mut conn, mode, &queues).await;
    }
    let mut ticks = HashMap::new();
    for mode in Mode::ALL {
        let started = Instant::now();
        tick(&mut conn, mode, &queues).await;
        let once = common::ms(started.elapsed());
        ticks.insert(mode, ((BLOCK_MS / once).round() as usize).clamp(2, 20));
    }

    let mut samples: HashMap<Mode, Samples> = HashMap::new();
    for _ in 0..BLOCKS {
        for mode in Mode::ALL {
            let n = ticks[&mode];
            let s = samples.entry(mode).or_default();
            let before = common::RedisWork::read(&mut admin).await;
            for _ in 0..n {
                s.wall_ms
                    .push(common::ms(tick(&mut conn, mode, &queues).await));
            }
            let work = before.per_tick(&common::RedisWork::read(&mut admin).await, n);
            s.cpu_ms.push(work.cpu_ms);
            s.commands.push(work.commands);
            s.reads.push(work.reads);
        }
    }

    println!(
        "| reading, {N} queues | ticks measured | wall per tick, ms: median | p95 | Redis CPU per tick, ms: median (min–max) | commands Redis ran per tick (incl. inside scripts) | per queue | client round trips (by design) | Redis socket reads per tick | wall vs native |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let native_wall = common::summary(&samples[&Mode::Native].wall_ms).median;
    for mode in Mode::ALL {
        let s = &samples[&mode];
        let wall = common::summary(&s.wall_ms);
        let commands = common::summary(&s.commands).median;
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.0} | {:.1} | {} | {:.0} | {:.1}× |",
            mode.label(),
            wall.n,
            wall.median,
            wall.p95,
            common::summary(&s.cpu_ms).spread(2),
            commands,
            commands / N as f64,
            mode.round_trips(),
            common::summary(&s.reads).median,
            wall.median / native_wall,
        );
    }
}

/// One tick of `mode`, checked; its wall time (the check excluded).
async fn tick(conn: &mut RedisConn, mode: Mode, queues: &Queues) -> Duration {
    let options = SnapshotOptions::default();
    match mode {
        Mode::Native => {
            let started = Instant::now();
            let r = snapshot(conn, &queues.native, options)
                .await
                .expect("snapshot");
            let took = started.elapsed();
            check(&r, |_, m| check_native(m));
            took
        }
        Mode::Adopted(system) => {
            let qs = &queues.adopted[&system];
            let started = Instant::now();
            let r = snapshot(conn, qs, options).await.expect("snapshot");
            let took = started.elapsed();
            check(&r, |i, m| check_adopted(system, &queues.names[i], m));
            took
        }
        Mode::KedaLists => {
            let started = Instant::now();
            for q in &queues.names {
                let len: u64 = redis::cmd("LLEN")
                    .arg(format!("rq:queue:{q}"))
                    .query_async(conn)
                    .await
                    .expect("LLEN");
                assert_eq!(len, WAITING, "LLEN rq:queue:{q}");
            }
            started.elapsed()
        }
    }
}

fn check(r: &[Result<QueueState, QueueError>], each: impl Fn(usize, &QueueMetrics)) {
    assert_eq!(r.len(), N);
    for (i, s) in r.iter().enumerate() {
        match s {
            Ok(QueueState::Ready(m)) => each(i, m),
            other => panic!("queue {i}: unexpected snapshot result {other:?}"),
        }
    }
}

fn check_native(m: &QueueMetrics) {
    let got = (m.lag, m.pending, m.delayed, m.dead_letter_length);
    assert_eq!(got, (WAITING, 1, 1, 1), "native queue read as {m:?}");
    assert_eq!(m.consumers.len(), 1, "native queue read as {m:?}");
}

/// The populated numbers, and the one busy worker named as the system names it.
fn check_adopted(system: System, q: &str, m: &QueueMetrics) {
    let e = expected(system);
    let got = (m.lag, m.pending, m.delayed, m.dead_letter_length);
    let want = (e.queued, e.in_flight, e.delayed, e.failed);
    assert_eq!(got, want, "{system} queue {q} read as {m:?}");
    let busy: Vec<&str> = m
        .consumers
        .iter()
        .filter(|c| c.pending > 0)
        .map(|c| c.name.as_str())
        .collect();
    match system {
        System::Celery => assert!(m.consumers.is_empty(), "{system} {q}: {m:?}"),
        System::Rq | System::Sidekiq | System::BullMq => {
            assert_eq!(busy, [pod(system, q)], "{system} {q}: {m:?}");
            assert_eq!(m.consumers.len(), 1, "{system} {q}: {m:?}");
        }
    }
}

/// The worker pod serving queue `q` of `system` (its hostname and its worker name).
fn pod(system: System, q: &str) -> String {
    format!("{}-{q}-7d4b9c6f5-x2k4p", system.to_string().to_lowercase())
}

async fn server_time(conn: &mut RedisConn) -> f64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(conn).await.expect("TIME");
    s as f64 + us as f64 / 1e6
}

/// `n` distinct lower-case hex digits.
fn hex(n: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(n);
    s
}

fn hset(p: &mut Pipeline, key: &str, fields: &[(&str, String)]) {
    let c = p.cmd("HSET").arg(key);
    for (f, v) in fields {
        c.arg(*f).arg(v);
    }
    c.ignore();
}

/// 1,000 native queues as `metrics_tick` sets them up (stream and group, jobs in the wire
/// format, one delivered and pending), with 10 waiting, 1 delayed (through the producer) and
/// 1 dead letter each.
async fn setup_native(conn: &mut RedisConn, names: &[String]) -> Vec<QueueConfig> {
    let queues: Vec<QueueConfig> = names
        .iter()
        .map(|q| QueueConfig::new(default_stream("bench", q)))
        .collect();
    for chunk in queues.chunks(CHUNK) {
        let mut p = redis::pipe();
        for q in chunk {
            p.cmd("XGROUP")
                .arg(&["CREATE", q.stream(), &q.group, "$", "MKSTREAM"])
                .ignore();
            for j in 0..=WAITING {
                let payload = json!({ "to": format!("user{j}@example.com") }).to_string();
                p.cmd("XADD")
                    .arg(q.stream())
                    .arg("*")
                    .arg(&["id", &uuid::Uuid::now_v7().to_string()])
                    .arg(&["payload", &payload, "enqueued_at", "0", "attempt", "1"])
                    .ignore();
            }
            p.cmd("XREADGROUP")
                .arg(&["GROUP", &q.group, "worker-0", "COUNT", "1", "STREAMS"])
                .arg(&[q.stream(), ">"])
                .ignore();
            p.cmd("XADD")
                .arg(&q.dead_letter)
                .arg("*")
                .arg(&["id", &uuid::Uuid::now_v7().to_string(), "payload", "{}"])
                .arg(&["enqueued_at", "0", "attempt", "5"])
                .arg(&[
                    "reason",
                    "max_deliveries_exceeded",
                    "last_failure",
                    "failed",
                ])
                .arg(&["last_error", "boom", "last_consumer", "worker-0"])
                .arg(&["original_id", "0-1", "dead_at", "0"])
                .ignore();
        }
        let () = p.query_async(conn).await.expect("setting up native queues");
    }
    let later = EnqueueOptions {
        due: Due::After(Duration::from_secs_f64(AHEAD_S)),
        ..Default::default()
    };
    let (conn, later) = (&*conn, &later);
    stream::iter(&queues)
        .for_each_concurrent(common::queues::IN_FLIGHT, |q| async move {
            let mut conn = conn.clone();
            enqueue(&mut conn, &q.keys, &json!({ "later": true }), later)
                .await
                .expect("enqueue a delayed job");
        })
        .await;
    queues
}

/// Writes every queue's state of `system`, `CHUNK` queues per pipeline.
async fn populate(conn: &mut RedisConn, system: System, names: &[String], now: f64) {
    for chunk in names.chunks(CHUNK) {
        let mut p = redis::pipe();
        for q in chunk {
            let pod = pod(system, q);
            match system {
                System::Rq => rq(&mut p, q, &pod, now),
                System::Celery => celery(&mut p, q, now),
                System::Sidekiq => sidekiq(&mut p, q, &pod, now),
                System::BullMq => bullmq(&mut p, q, &pod, now),
            }
        }
        let () = p
            .query_async(conn)
            .await
            .unwrap_or_else(|e| panic!("populating {system} queues: {e}"));
    }
}

fn iso(t: f64) -> String {
    jiff::Timestamp::from_microsecond((t * 1e6) as i64)
        .expect("a time in range")
        .to_string()
}

/// RQ 3.0: job ids in `rq:queue:Q`, a job hash each; the running job in `rq:wip:Q` as
/// `<job>:<execution>` with its expiry as score, its execution hash, the busy worker's hash
/// (named after the pod, as `rq worker --name` gets it) in `rq:workers` and `rq:workers:Q`;
/// `rq:scheduled:Q` (score = run-at, whole seconds) and `rq:failed:Q` (score = expiry).
fn rq(p: &mut Pipeline, q: &str, pod: &str, now: f64) {
    let job = |p: &mut Pipeline, id: &str, status: &str, more: &[(&str, String)]| {
        let mut f = vec![
            ("status", status.to_string()),
            ("created_at", iso(now - 30.0)),
            // Stands in for the zlib-compressed pickle of (function, args, kwargs).
            ("data", format!("x\u{9c}k`\u{99}\u{1a}{}", hex(48))),
            ("origin", q.to_string()),
            ("description", "app.jobs.send_email(42)".to_string()),
            ("timeout", "180".to_string()),
        ];
        f.extend(more.iter().cloned());
        hset(p, &format!("rq:job:{id}"), &f);
    };
    let id = || uuid::Uuid::new_v4().to_string();
    let queue = format!("rq:queue:{q}");
    for _ in 0..WAITING {
        let j = id();
        job(p, &j, "queued", &[("enqueued_at", iso(now - 20.0))]);
        p.rpush(&queue, &j).ignore();
    }
    p.sadd("rq:queues", &queue).ignore();

    let (running, exec, worker) = (id(), hex(32), format!("rq:worker:{pod}"));
    let member = format!("{running}:{exec}");
    job(
        p,
        &running,
        "started",
        &[("started_at", iso(now - 5.0)), ("worker_name", pod.into())],
    );
    p.zadd(format!("rq:wip:{q}"), &member, (now + AHEAD_S).floor())
        .ignore();
    hset(
        p,
        &format!("rq:execution:{member}"),
        &[
            ("id", exec.clone()),
            ("job_id", running.clone()),
            ("created_at", iso(now - 5.0)),
            ("last_heartbeat", iso(now - 1.0)),
            ("worker_name", pod.into()),
        ],
    );
    p.zadd(format!("rq:executions:{running}"), &exec, now - 5.0)
        .ignore();
    p.sadd("rq:workers", &worker).ignore();
    p.sadd(format!("rq:workers:{q}"), &worker).ignore();
    hset(
        p,
        &worker,
        &[
            ("birth", iso(now - 3_600.0)),
            ("last_heartbeat", iso(now - 1.0)),
            ("queues", q.into()),
            ("pid", "1".into()),
            ("hostname", pod.into()),
            ("ip_address", "10.42.0.17:51234".into()),
            ("version", "3.0.0".into()),
            ("python_version", "3.12.3 (main) [GCC 13.2.0]".into()),
            ("state", "busy".into()),
            ("successful_job_count", "118".into()),
            ("failed_job_count", "1".into()),
            ("total_working_time", "352.4".into()),
        ],
    );
    p.sadd(format!("{worker}:executions"), &member).ignore();

    let (later, due, failed) = (id(), id(), id());
    job(p, &later, "scheduled", &[]);
    job(p, &due, "scheduled", &[]);
    p.zadd(format!("rq:scheduled:{q}"), &later, (now + AHEAD_S).floor())
        .ignore();
    p.zadd(format!("rq:scheduled:{q}"), &due, (now - 60.0).floor())
        .ignore();
    job(p, &failed, "failed", &[("ended_at", iso(now - 600.0))]);
    p.zadd(
        format!("rq:failed:{q}"),
        &failed,
        (now + 31_536_000.0).floor(),
    )
    .ignore();
}

/// A kombu message as Celery 5.7 sends `app.tasks.send_email.delay(42)` to queue `q`.
fn celery_message(q: &str) -> Value {
    let id = uuid::Uuid::new_v4().to_string();
    json!({
        // base64 of [[42], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]
        "body": "W1s0Ml0sIHt9LCB7ImNhbGxiYWNrcyI6IG51bGwsICJlcnJiYWNrcyI6IG51bGwsICJjaGFpbiI6IG51bGwsICJjaG9yZCI6IG51bGx9XQ==",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "app.tasks.send_email", "id": id, "shadow": null,
            "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0,
            "timelimit": [null, null], "root_id": id, "parent_id": null,
            "argsrepr": "(42,)", "kwargsrepr": "{}", "origin": "gen1@web-5f7c9d-abcde",
            "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null,
            "stamps": {}
        },
        "properties": {
            "correlation_id": id, "reply_to": uuid::Uuid::new_v4().to_string(),
            "delivery_mode": 2,
            "delivery_info": { "exchange": "", "routing_key": q },
            "priority": 0, "body_encoding": "base64",
            "delivery_tag": uuid::Uuid::new_v4().to_string()
        }
    })
}

/// Celery 5.7 / kombu, late acks: messages in the list named `q` (priority 0), its binding,
/// and the running task's message in the shared `unacked` hash (`[message, exchange,
/// routing key]`) with its `unacked_index` entry.
fn celery(p: &mut Pipeline, q: &str, now: f64) {
    for _ in 0..WAITING {
        p.lpush(q, celery_message(q).to_string()).ignore();
    }
    p.sadd(
        format!("_kombu.binding.{q}"),
        format!("{q}\x06\x16\x06\x16{q}"),
    )
    .ignore();
    let running = celery_message(q);
    let tag = running["properties"]["delivery_tag"]
        .as_str()
        .expect("a delivery tag")
        .to_string();
    p.hset("unacked", &tag, json!([running, "", q]).to_string())
        .ignore();
    p.zadd("unacked_index", &tag, now - 5.0).ignore();
}

/// A Sidekiq 6.4 job payload for queue `q`.
fn sidekiq_job(q: &str, now: f64) -> serde_json::Map<String, Value> {
    let Value::Object(m) = json!({
        "retry": true, "queue": q, "args": [42], "class": "MailJob", "jid": hex(24),
        "created_at": now - 30.0,
    }) else {
        unreachable!()
    };
    m
}

/// Sidekiq 6.4: payloads in `queue:Q`; one process per queue (identity
/// `<hostname>:<pid>:<nonce>` in `processes`, its hash with the `info` JSON and busy count,
/// `<identity>:workers` with the running job for Q); a scheduled job due later and one due
/// already in `schedule`, a failed job waiting for its retry in `retry`. The heartbeat TTLs
/// are left off: no process rewrites these hashes here.
fn sidekiq(p: &mut Pipeline, q: &str, pod: &str, now: f64) {
    for _ in 0..WAITING {
        let mut j = sidekiq_job(q, now);
        j.insert("enqueued_at".into(), json!(now - 20.0));
        p.lpush(format!("queue:{q}"), Value::Object(j).to_string())
            .ignore();
    }
    p.sadd("queues", q).ignore();

    let identity = format!("{pod}:1:{}", hex(12));
    let info = json!({
        "hostname": pod, "started_at": now - 3_600.0, "pid": 1, "tag": "app",
        "concurrency": 5, "queues": [q], "labels": [], "identity": identity,
    });
    p.sadd("processes", &identity).ignore();
    hset(
        p,
        &identity,
        &[
            ("info", info.to_string()),
            ("busy", "1".into()),
            ("beat", format!("{:.6}", now - 1.0)),
            ("quiet", "false".into()),
            ("rtt_us", "212".into()),
            ("rss", "98304".into()),
        ],
    );
    let mut running = sidekiq_job(q, now);
    running.insert("enqueued_at".into(), json!(now - 6.0));
    let work = json!({
        "queue": q,
        "payload": Value::Object(running).to_string(),
        "run_at": (now - 5.0).floor(),
    });
    p.hset(format!("{identity}:workers"), hex(4), work.to_string())
        .ignore();

    let scheduled = |p: &mut Pipeline, at: f64| {
        p.zadd(
            "schedule",
            Value::Object(sidekiq_job(q, now)).to_string(),
            at,
        )
        .ignore();
    };
    scheduled(p, now + AHEAD_S);
    scheduled(p, now - 60.0);
    let mut failed = sidekiq_job(q, now);
    for (k, v) in [
        ("enqueued_at", json!(now - 25.0)),
        (
            "error_message",
            json!("Net::ReadTimeout with #<TCPSocket:(closed)>"),
        ),
        ("error_class", json!("Net::ReadTimeout")),
        ("failed_at", json!(now - 20.0)),
        ("retry_count", json!(0)),
    ] {
        failed.insert(k.into(), v);
    }
    p.zadd("retry", Value::Object(failed).to_string(), now + AHEAD_S)
        .ignore();
}

/// BullMQ 6.7 (prefix `bull`): job hashes `bull:Q:<id>`; ids 1–10 in `wait`, 11 in `active`
/// with `pb` = the Worker's name (the pod) and its lock, 12 delayed to later and 13 already
/// due in `delayed` (score = run-at ms × 4096 + counter), 14 in `failed` (score = finishedOn).
fn bullmq(p: &mut Pipeline, q: &str, pod: &str, now: f64) {
    let now_ms = (now * 1000.0) as u64;
    let base = format!("bull:{q}");
    let job = |p: &mut Pipeline, id: u64, delay: u64, more: &[(&str, String)]| {
        let mut f = vec![
            ("name", "send-email".to_string()),
            (
                "data",
                json!({ "to": format!("user{id}@example.com") }).to_string(),
            ),
            ("opts", json!({ "attempts": 3, "delay": delay }).to_string()),
            ("timestamp", (now_ms - 30_000).to_string()),
            ("delay", delay.to_string()),
            ("priority", "0".to_string()),
        ];
        f.extend(more.iter().cloned());
        hset(p, &format!("{base}:{id}"), &f);
    };
    for id in 1..=WAITING {
        job(p, id, 0, &[]);
        p.lpush(format!("{base}:wait"), id).ignore();
    }
    p.zadd(format!("{base}:marker"), "0", 0).ignore();

    job(
        p,
        11,
        0,
        &[
            ("processedOn", (now_ms - 5_000).to_string()),
            ("ats", "1".into()),
            ("pb", pod.into()),
        ],
    );
    p.lpush(format!("{base}:active"), 11).ignore();
    p.set(
        format!("{base}:11:lock"),
        format!("{}:1", uuid::Uuid::new_v4()),
    )
    .ignore();

    let ahead_ms = (AHEAD_S * 1000.0) as u64;
    job(p, 12, ahead_ms, &[]);
    p.zadd(format!("{base}:delayed"), 12, (now_ms + ahead_ms) * 4096)
        .ignore();
    job(p, 13, 30_000, &[]);
    p.zadd(format!("{base}:delayed"), 13, (now_ms - 60_000) * 4096 + 1)
        .ignore();

    let finished = now_ms - 600_000;
    job(
        p,
        14,
        0,
        &[
            ("processedOn", (finished - 2_000).to_string()),
            ("finishedOn", finished.to_string()),
            ("atm", "3".into()),
            ("ats", "3".into()),
            ("failedReason", "connect ETIMEDOUT 10.0.0.25:587".into()),
            (
                "stacktrace",
                json!([
                    "Error: connect ETIMEDOUT 10.0.0.25:587\n    at TCPConnectWrap.afterConnect"
                ])
                .to_string(),
            ),
        ],
    );
    p.zadd(format!("{base}:failed"), 14, finished).ignore();
    p.set(format!("{base}:id"), 14).ignore();
    hset(
        p,
        &format!("{base}:meta"),
        &[
            ("opts.maxLenEvents", "10000".into()),
            ("version", "bullmq:6.7.6".into()),
        ],
    );
}

/// What every reading of `system` must return, in words.
fn reads(system: System) -> String {
    let e = expected(system);
    format!(
        "Read: queued {}, in flight {}, delayed {}, failed {}.",
        e.queued, e.in_flight, e.delayed, e.failed
    )
}

/// Where the keys come from, the state of every queue, and the shared keys the Celery and
/// Sidekiq readings walk (sizes as the server has them).
async fn describe(conn: &mut RedisConn) {
    let (unacked, sample, processes, schedule, retry, keys): (
        u64,
        Vec<String>,
        u64,
        u64,
        u64,
        u64,
    ) = redis::pipe()
        .hlen("unacked")
        .cmd("HRANDFIELD")
        .arg(&["unacked", "1", "WITHVALUES"])
        .scard("processes")
        .zcard("schedule")
        .zcard("retry")
        .cmd("DBSIZE")
        .query_async(conn)
        .await
        .expect("sizes");
    let message = sample.get(1).map_or(0, String::len);
    println!(
        "The keys were written by this bench (pipelined) in the key layouts and value formats \
         that RQ 3.0.0, Celery 5.7.0 (kombu), Sidekiq 6.4.1 and BullMQ 6.7.6 write, as \
         verified with the libraries themselves by tests/adopt_local.rs; they were not written \
         by the libraries: 4,000 real workers, each with a running job, cannot run on this \
         machine. All {N} × 4 adopted queues and {N} native ones share one redis-server \
         ({keys} keys).\n"
    );
    println!("Per queue:\n");
    println!(
        "- RQ: {WAITING} job ids in `rq:queue:Q` (a job hash each); 1 running job in `rq:wip:Q` \
         (`<job>:<execution>`, score = expiry in the future) with its busy worker \
         `rq:worker:<pod>` (state busy) in `rq:workers:Q`; `rq:scheduled:Q` with 1 job due \
         later and 1 already due (no `--with-scheduler` worker promoted it); 1 job in \
         `rq:failed:Q`. {}",
        reads(System::Rq)
    );
    println!(
        "- Celery (late acks): {WAITING} kombu messages in the list `Q`; the running task's \
         message in the shared `unacked` hash as `[message, \"\", \"Q\"]`. Celery keeps no \
         scheduled or failed jobs in the broker. {}",
        reads(System::Celery)
    );
    println!(
        "- Sidekiq: {WAITING} payloads in `queue:Q`; 1 process (identity in `processes`, `info` \
         JSON, busy 1) running 1 job of Q in `<identity>:workers`; in `schedule` 1 job due \
         later and 1 already due; 1 failed job waiting for its retry in `retry`. {}",
        reads(System::Sidekiq)
    );
    println!(
        "- BullMQ: {WAITING} ids in `bull:Q:wait`, 1 in `bull:Q:active` (job hash `pb` = the \
         pod), in `bull:Q:delayed` (score = ms × 4096 + counter) 1 job due later and 1 already \
         due, 1 in `bull:Q:failed`. {}",
        reads(System::BullMq)
    );
    println!(
        "- native: a provisioned stream with {WAITING} jobs waiting, 1 delivered and pending, \
         1 delayed, 1 dead letter.\n"
    );
    println!(
        "Every reading is checked against these numbers and the busy worker's name on every \
         tick. Shared keys the readings walk: Celery's `unacked` hash holds {unacked} entries \
         (one running task per queue, about {message} bytes each), fetched and decoded once \
         per tick for all Celery queues. Sidekiq's `processes` holds {processes} identities, \
         `schedule` {schedule} and `retry` {retry} entries: one shared reading per tick visits \
         every process (its `info`, `:work` and `:workers`) and decodes up to {SCAN_BOUND} \
         entries of each set on each side of now, for all Sidekiq queues.\n"
    );
}

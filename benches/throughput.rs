//! Figure 5: end-to-end job throughput (enqueue → worker → ack) on one private redis-server:
//! - the example Rust worker (`examples/raw_worker.rs`, release build) at 1, 2 and 4 processes,
//!   trivial job (`{"sleep": 0}`): workers are started and idle on the group first, then
//!   the jobs are enqueued in one pipelined batch; the time runs from the first XADD until
//!   the group has nothing left (lag 0, pending 0: every job read and acknowledged);
//! - the same protocol without the example's per-job sleep and log lines (this binary run
//!   as a worker: XREADGROUP COUNT 1, then XACK), to show what the protocol itself allows;
//! - Redis's own ceiling for the same commands per job (XADD, XREADGROUP COUNT 1, XACK) from
//!   one pipelined raw client, and `redis-benchmark` for XADD alone;
//! - RQ (`rq worker --burst`, its default forking worker and its SimpleWorker) on the same
//!   Redis in the same run, through `benches/rq/throughput.py` in `target/bench-venv`
//!   (created by `scripts/bench`).
//!
//! - one worker process of each client library (Rust, Python blocking and asyncio, TypeScript)
//!   with a handler returning a small result, on a queue provisioned as the operator does
//!   (job records on), timed the same way; every job's record is then checked to say
//!   `succeeded`. And what Redis does with those workers' two commands per job
//!   (`jobqueue_take`, `jobqueue_complete`): see `clients/mod.rs`.
//!
//! Run: `scripts/bench throughput` (builds the example worker, the RQ venv with the Python
//! client, and the TypeScript client first).

mod clients;
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clients::Client;
use jobqueue_operator::queue::{RedisConn, connect};
use jobqueue_test_support::redis::RedisServer;
use redis::aio::MultiplexedConnection;

const JOBS: usize = 5_000;
/// The raw client is fast; more jobs make its runs long enough to time.
const CEILING_JOBS: usize = 20_000;
const PROCESSES: [usize; 3] = [1, 2, 4];
const RUNS: usize = 3;
/// RQ is two orders of magnitude slower; fewer jobs keep its runs to seconds.
const RQ_JOBS: usize = 100;
const RQ_SIMPLE_JOBS: usize = 500;
/// Set in the environment of a child that should act as the minimal worker.
const MINIMAL_WORKER: &str = "JOBQUEUE_BENCH_MINIMAL_WORKER";
const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if std::env::var_os(MINIMAL_WORKER).is_some() {
        return minimal_worker();
    }
    if std::env::var_os(clients::RUST_CLIENT_WORKER).is_some() {
        return clients::rust_worker();
    }
    let runtime = common::runtime();
    runtime.block_on(run());
}

fn target_dir() -> PathBuf {
    // target/release/deps/throughput-<hash> → target/release
    std::env::current_exe()
        .expect("current exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

async fn run() {
    let worker = target_dir().join("examples").join("raw_worker");
    assert!(
        worker.exists(),
        "{} is missing: run `cargo build --release --example raw_worker` (scripts/bench does)",
        worker.display()
    );
    println!("## Figure 5: end-to-end throughput (enqueue → worker → ack)\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");

    println!(
        "| system | processes | jobs per run | jobs/s: median (min–max) of {RUNS} runs | vs Rust worker ×1 |"
    );
    println!("|---|---|---|---|---|");
    let mut rust_one = 0.0;
    let mut rust = Vec::new();
    let minimal = std::env::current_exe().expect("current exe");
    for (label, program, is_example) in [
        (
            "Rust raw-protocol example worker (`examples/raw_worker.rs`)",
            &worker,
            true,
        ),
        (
            "minimal Rust worker: same commands, no sleep or log line",
            &minimal,
            false,
        ),
    ] {
        for k in PROCESSES {
            let mut rates = Vec::new();
            for run in 0..RUNS {
                rates.push(worker_run(program, is_example, &redis.url(), &mut conn, k, run).await);
            }
            let s = common::summary(&rates);
            if k == 1 && is_example {
                rust_one = s.median;
            }
            if is_example {
                rust.push((k, s.median));
            }
            println!(
                "| {label} | {k} | {JOBS} | {} | {:.2}× |",
                s.spread(0),
                s.median / rust_one
            );
        }
    }
    let mut engine = connect(&redis.url()).await.expect("connect");
    let mut client_rows = Vec::new();
    for client in Client::ALL {
        match clients::client_rates(client, &redis.url(), &mut engine, &mut conn).await {
            Ok(rates) => {
                let s = common::summary(&rates);
                client_rows.push((client, s.median));
                println!(
                    "| {} | 1 | {JOBS} | {} | {:.2}× |",
                    client.label(),
                    s.spread(0),
                    s.median / rust_one
                );
            }
            Err(why) => println!("| {} | 1 | – | not measured: {why} | – |", client.label()),
        }
    }

    let mut ceiling = Vec::new();
    for run in 0..RUNS {
        ceiling.push(raw_ceiling(&mut conn, run).await);
    }
    let ceiling = common::summary(&ceiling);
    println!(
        "| Redis ceiling: XADD + XREADGROUP + XACK pipelined, 1 connection | 1 | {CEILING_JOBS} | {} | {:.2}× |",
        ceiling.spread(0),
        ceiling.median / rust_one
    );
    for (label, args) in [
        (
            "redis-benchmark XADD, 1 client, no pipelining",
            &["-n", "100000", "-c", "1", "-P", "1"],
        ),
        (
            "redis-benchmark XADD, 50 clients, pipeline 16",
            &["-n", "100000", "-c", "50", "-P", "16"],
        ),
    ] {
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            let xadd = ["XADD", "bench:redis-benchmark", "*", "payload", "{}"];
            rates.push(redis_benchmark(redis.port(), args, &xadd));
        }
        let s = common::summary(&rates);
        println!(
            "| {label} | – | 100000 commands | {} (commands/s) | – |",
            s.spread(0)
        );
    }
    let per_job = command_rows(&mut engine, &mut conn, &redis, rust_one).await;

    let python = venv_python();
    let mut rq = Vec::new();
    let mut rq_one = Vec::new();
    if python.exists() {
        for (label, class, jobs) in [
            (
                "RQ `rq worker --burst` (default Worker: fork per job)",
                "rq.Worker",
                RQ_JOBS,
            ),
            (
                "RQ `rq worker --burst -w rq.worker.SimpleWorker` (no fork)",
                "rq.worker.SimpleWorker",
                RQ_SIMPLE_JOBS,
            ),
        ] {
            for k in PROCESSES {
                let runs = rq_runs(&python, &redis.url(), jobs, k, class);
                let wall: Vec<f64> = runs.iter().map(|r| jobs as f64 / r.0).collect();
                let busy: Vec<f64> = runs.iter().map(|r| jobs as f64 / r.1).collect();
                let wall = common::summary(&wall);
                let busy = common::summary(&busy);
                if class == "rq.Worker" {
                    rq.push((k, busy.median));
                }
                if k == 1 {
                    rq_one.push((class, busy.median));
                }
                println!(
                    "| {label} | {k} | {jobs} | {} wall (incl. start-up); {} while busy | {:.3}× |",
                    wall.spread(0),
                    busy.spread(0),
                    busy.median / rust_one
                );
            }
        }
    } else {
        println!(
            "| RQ | – | – | not measured: {} is missing (scripts/bench creates it) | – |",
            python.display()
        );
    }

    println!();
    for (k, r) in &rust {
        let vs_rq = rq
            .iter()
            .find(|(rk, _)| rk == k)
            .map_or(String::new(), |(_, q)| {
                format!(", {:.0}× RQ (forking worker, busy)", r / q)
            });
        println!(
            "Rust worker ×{k}: {:.0}% of the pipelined Redis ceiling{vs_rq}",
            100.0 * r / ceiling.median
        );
    }
    print_goals(&client_rows, &rq_one, per_job);
    println!("Load average at end: {:.2}", common::load());
}

/// The rows of what Redis does with the client workers' two commands per job, from `RUNS`
/// runs; returns the jobs/s those rates allow (take and complete one after the other).
async fn command_rows(
    engine: &mut RedisConn,
    conn: &mut MultiplexedConnection,
    redis: &RedisServer,
    rust_one: f64,
) -> f64 {
    let mut runs = Vec::new();
    for run in 0..RUNS {
        runs.push(clients::command_rates(engine, conn, &redis.url(), redis.port(), run).await);
    }
    let take_benchmark: Vec<f64> = runs.iter().map(|r| r.take_benchmark).collect();
    let take_loop: Vec<f64> = runs.iter().map(|r| r.take_loop).collect();
    let complete_loop: Vec<f64> = runs.iter().map(|r| r.complete_loop).collect();
    let (take_benchmark, take_loop, complete_loop) = (
        common::summary(&take_benchmark),
        common::summary(&take_loop),
        common::summary(&complete_loop),
    );
    let n = clients::COMMAND_JOBS;
    for (label, s) in [
        (
            "redis-benchmark `FCALL jobqueue_take` (COUNT 1, pre-filled queue), 1 client, no pipelining",
            take_benchmark,
        ),
        (
            "the same take from one redis-rs connection, one command at a time",
            take_loop,
        ),
        (
            "`FCALL jobqueue_complete` from one redis-rs connection, one command at a time",
            complete_loop,
        ),
    ] {
        println!(
            "| {label} | – | {n} commands | {} (commands/s) | – |",
            s.spread(0)
        );
    }
    let per_job = 1.0 / (1.0 / take_benchmark.median + 1.0 / complete_loop.median);
    println!(
        "| take + complete per job at those rates: 1 / (1/take (redis-benchmark) + 1/complete) | – | – | {per_job:.0} | {:.2}× |",
        per_job / rust_one
    );
    per_job
}

/// The goals' ratios: the Python client against RQ's worker, the Rust client against what
/// redis-benchmark measures for its commands.
fn print_goals(client_rows: &[(Client, f64)], rq_one: &[(&str, f64)], per_job: f64) {
    let rate = |c: Client| client_rows.iter().find(|(k, _)| *k == c).map(|(_, r)| *r);
    let met = |ok: bool| if ok { "met" } else { "missed" };
    let simple = rq_one.iter().find(|(c, _)| *c == "rq.worker.SimpleWorker");
    let forking = rq_one.iter().find(|(c, _)| *c == "rq.Worker");
    for c in [Client::PythonSync, Client::PythonAsync] {
        let (Some(r), Some((_, s)), Some((_, f))) = (rate(c), simple, forking) else {
            println!("{}: not compared (a run is missing)", c.label());
            continue;
        };
        println!(
            "{} ×1: {r:.0} jobs/s = {:.1}× RQ SimpleWorker ×1, {:.1}× RQ default Worker ×1 (RQ while busy); goal ≥ 5×: {} against SimpleWorker, {} against the default Worker",
            c.label(),
            r / s,
            r / f,
            met(r >= 5.0 * s),
            met(r >= 5.0 * f)
        );
    }
    for c in [Client::Rust, Client::TypeScript] {
        if let Some(r) = rate(c) {
            let goal = if c == Client::Rust {
                format!("; goal ≥ 50 %: {}", met(r >= 0.5 * per_job))
            } else {
                String::new()
            };
            println!(
                "{} ×1: {r:.0} jobs/s = {:.0} % of take + complete at redis-benchmark rates ({per_job:.0} jobs/s){goal}",
                c.label(),
                100.0 * r / per_job
            );
        }
    }
}

/// The Python of the benchmark venv with RQ (scripts/bench creates it).
fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv/bin/python")
}

fn entry_cmd(pipe: &mut redis::Pipeline, stream: &str, i: usize) {
    pipe.cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("id")
        .arg(format!("job-{i}"))
        .arg("payload")
        .arg(r#"{"sleep":0}"#)
        .arg("enqueued_at")
        .arg(0)
        .arg("attempt")
        .arg(1)
        .ignore();
}

async fn create_group(conn: &mut MultiplexedConnection, stream: &str) {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .expect("XGROUP CREATE");
}

/// (lag, pending, entries-read) of the `workers` group.
async fn group_state(conn: &mut MultiplexedConnection, stream: &str) -> (i64, i64, i64) {
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .expect("XINFO GROUPS");
    let g = &groups[0];
    let int = |k: &str| match g.get(k) {
        Some(redis::Value::Int(n)) => *n,
        _ => -1, // nil lag: not computable, treat as not done
    };
    (int("lag"), int("pending"), int("entries-read"))
}

/// Waits until `k` connections are blocked in XREADGROUP: every worker is idle on the group
/// before the jobs come. (Redis 7.0 creates the consumer only when it first gets an entry, so
/// the client list is what shows this.)
async fn wait_blocked(conn: &mut MultiplexedConnection, k: usize) {
    let started = Instant::now();
    loop {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(conn)
            .await
            .expect("CLIENT LIST");
        let blocked = clients
            .lines()
            .filter(|l| l.contains(" flags=b ") && l.contains(" cmd=xreadgroup "))
            .count();
        if blocked == k {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "workers did not start: {clients}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn worker_run(
    program: &PathBuf,
    is_example: bool,
    url: &str,
    conn: &mut MultiplexedConnection,
    k: usize,
    run: usize,
) -> f64 {
    let stream = format!("jobqueue:{{bench/throughput-{is_example}-{k}-{run}}}");
    create_group(conn, &stream).await;
    let mut workers: Vec<Child> = (0..k)
        .map(|i| {
            let mut cmd = Command::new(program);
            if !is_example {
                cmd.env(MINIMAL_WORKER, "1");
            }
            cmd.env("REDIS_URL", url)
                .env("JOBQUEUE_STREAM", &stream)
                .env("JOBQUEUE_GROUP", "workers")
                .env("JOBQUEUE_CONSUMER", format!("w{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting the example worker")
        })
        .collect();
    wait_blocked(conn, k).await;

    let t0 = Instant::now();
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            entry_cmd(&mut pipe, &stream, i);
        }
        let () = pipe.query_async(conn).await.expect("XADD");
    }
    loop {
        let (lag, pending, read) = group_state(conn, &stream).await;
        if lag == 0 && pending == 0 {
            assert_eq!(read, JOBS as i64, "every job read once");
            break;
        }
        assert!(
            t0.elapsed() < LIMIT,
            "jobs not done: lag {lag}, pending {pending}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed();
    for w in &mut workers {
        // SAFETY: kill(2) on our own child's pid; SIGTERM lets it finish its loop.
        unsafe {
            libc::kill(w.id() as i32, libc::SIGTERM);
        }
    }
    for mut w in workers {
        let status = w.wait().expect("wait");
        // The minimal worker simply dies of the SIGTERM; the example exits cleanly.
        assert!(
            !is_example || status.success(),
            "worker exited with {status}"
        );
    }
    JOBS as f64 / elapsed.as_secs_f64()
}

/// The same three commands per job from one connection, pipelined 1,000 deep.
async fn raw_ceiling(conn: &mut MultiplexedConnection, run: usize) -> f64 {
    let stream = format!("jobqueue:{{bench/ceiling-{run}}}");
    create_group(conn, &stream).await;
    let t0 = Instant::now();
    for chunk in (0..CEILING_JOBS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            entry_cmd(&mut pipe, &stream, i);
        }
        let () = pipe.query_async(conn).await.expect("XADD");
        let mut pipe = redis::pipe();
        for _ in chunk {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg("workers")
                .arg("raw")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&stream)
                .arg(">");
        }
        let replies: Vec<redis::streams::StreamReadReply> =
            pipe.query_async(conn).await.expect("XREADGROUP");
        let mut pipe = redis::pipe();
        for reply in &replies {
            for id in reply.keys.iter().flat_map(|k| &k.ids) {
                pipe.cmd("XACK").arg(&stream).arg("workers").arg(&id.id);
            }
        }
        let acked: Vec<i64> = pipe.query_async(conn).await.expect("XACK");
        assert_eq!(acked.len(), chunk.len(), "one job per XREADGROUP");
        assert!(acked.iter().all(|&a| a == 1), "every job acknowledged once");
    }
    let elapsed = t0.elapsed();
    let (lag, pending, _) = group_state(conn, &stream).await;
    assert_eq!((lag, pending), (0, 0));
    CEILING_JOBS as f64 / elapsed.as_secs_f64()
}

/// Commands per second redis-benchmark reports for `command` with `args`.
fn redis_benchmark(port: u16, args: &[&str], command: &[&str]) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
        .args(args)
        .args(command)
        .output()
        .expect("running redis-benchmark (package redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...  then  "XADD bench:...","12345.67",...
    text.lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"))
}

/// (wall seconds, busy seconds) of each RQ run.
fn rq_runs(python: &PathBuf, url: &str, jobs: usize, k: usize, class: &str) -> Vec<(f64, f64)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/rq/throughput.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            url,
            &jobs.to_string(),
            &k.to_string(),
            &RUNS.to_string(),
            class,
        ])
        .output()
        .expect("running the RQ benchmark");
    assert!(
        out.status.success(),
        "RQ benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["wall_s"].as_f64().expect("wall_s"),
                v["busy_s"].as_f64().expect("busy_s"),
            )
        })
        .collect()
}

/// The worker protocol of docs/architecture.md#wire-format and nothing else: XREADGROUP one job, XACK it. Runs
/// until killed (the benchmark sends SIGTERM).
fn minimal_worker() {
    let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set"));
    let (url, stream, group, consumer) = (
        var("REDIS_URL"),
        var("JOBQUEUE_STREAM"),
        var("JOBQUEUE_GROUP"),
        var("JOBQUEUE_CONSUMER"),
    );
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connecting the minimal worker");
    loop {
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&group)
            .arg(&consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query(&mut conn)
            .expect("XREADGROUP");
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let _: i64 = redis::cmd("XACK")
                .arg(&stream)
                .arg(&group)
                .arg(&entry.id)
                .query(&mut conn)
                .expect("XACK");
        }
    }
}

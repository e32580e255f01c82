//! Figure 5's client rows: one worker process of each client library (the Rust crate
//! `jobqueue-client`, the Python package `jobqueue` in its blocking and asyncio forms, the
//! TypeScript package `@jobqueue/client`), each with a handler that returns `{"ok":true}`, on
//! a queue provisioned the way the operator provisions one (stream and group, stored settings
//! with job records on, the `jobqueue` function library). Then what Redis itself does with the
//! two commands those workers send per job while jobs are waiting: `redis-benchmark` running
//! `FCALL jobqueue_take` on a pre-filled queue, and `FCALL jobqueue_complete`, which
//! redis-benchmark cannot send (every call needs the id of a job in hand), from a one-command-
//! at-a-time loop on one connection, checked against redis-benchmark on the take.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jobqueue_client::{Outcome, Worker};
use jobqueue_operator::queue::RedisConn;
use jobqueue_operator::queue::keys::QueueKeys;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::common::queues;
use crate::{JOBS, LIMIT, RUNS, group_state, redis_benchmark, wait_blocked};

/// Set in the environment of a child that should run the Rust client's worker.
pub const RUST_CLIENT_WORKER: &str = "JOBQUEUE_BENCH_CLIENT_WORKER";
/// What every client's handler returns.
const RESULT: &str = r#"{"ok":true}"#;
/// Commands per redis-benchmark run (and per loop run) of the command rates.
pub const COMMAND_JOBS: usize = 10_000;
const GROUP: &str = "workers";

/// One worker process of a client library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Rust,
    PythonSync,
    PythonAsync,
    TypeScript,
}

impl Client {
    pub const ALL: [Client; 4] = [
        Client::Rust,
        Client::PythonSync,
        Client::PythonAsync,
        Client::TypeScript,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Client::Rust => "Rust client `jobqueue_client::Worker`",
            Client::PythonSync => "Python client `jobqueue.Worker` (blocking)",
            Client::PythonAsync => "Python client `jobqueue.aio.Worker` (asyncio)",
            Client::TypeScript => "TypeScript client `Worker` (node-redis)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Client::Rust => "rust",
            Client::PythonSync => "python-sync",
            Client::PythonAsync => "python-aio",
            Client::TypeScript => "typescript",
        }
    }

    /// The command that runs this worker, or why it cannot run here.
    fn command(self) -> Result<Command, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Client::Rust => {
                let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
                cmd.env(RUST_CLIENT_WORKER, "1");
                Ok(cmd)
            }
            Client::PythonSync | Client::PythonAsync => {
                let python = crate::venv_python();
                let importable = Command::new(&python)
                    .args(["-c", "import jobqueue"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !importable {
                    return Err(format!(
                        "the `jobqueue` package is not installed in {} (scripts/bench installs it)",
                        python.display()
                    ));
                }
                let mut cmd = Command::new(python);
                cmd.arg(root.join("benches/clients/python_worker.py")).arg(
                    if self == Client::PythonSync {
                        "sync"
                    } else {
                        "aio"
                    },
                );
                Ok(cmd)
            }
            Client::TypeScript => {
                let dist = root.join("clients/typescript/dist/index.js");
                if !dist.exists() {
                    return Err(format!(
                        "{} is missing (scripts/bench builds it)",
                        dist.display()
                    ));
                }
                let mut cmd = Command::new("node");
                cmd.arg(root.join("benches/clients/typescript_worker.mjs"));
                Ok(cmd)
            }
        }
    }
}

/// The Rust client's worker, as a user would run it (tokio's default multi-thread runtime),
/// until SIGTERM.
pub fn rust_worker() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = runtime.block_on(async {
        Worker::from_env()
            .expect("the worker's environment")
            .run(|_ctx| async { Outcome::Complete(Some(RESULT.into())) })
            .await
    });
    report.expect("the Rust client's worker");
}

/// Jobs/s of each run of one worker process of `client`, or why it was not measured.
pub async fn client_rates(
    client: Client,
    url: &str,
    conn: &mut RedisConn,
    mux: &mut MultiplexedConnection,
) -> Result<Vec<f64>, String> {
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let stream = format!("jobqueue:{{bench/client-{}-{run}}}", client.slug());
        let cfg = queues::provisioned(conn, &stream, true).await;
        let mut worker = client
            .command()?
            .env("REDIS_URL", url)
            .env("JOBQUEUE_STREAM", &stream)
            .env("JOBQUEUE_GROUP", GROUP)
            .env("JOBQUEUE_CONSUMER", "w0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the worker: {e}"))?;
        wait_blocked(mux, 1).await;

        let t0 = Instant::now();
        let ids = queues::enqueue_many(conn, &cfg.keys, JOBS).await;
        loop {
            let (lag, pending, read) = group_state(mux, &stream).await;
            if lag == 0 && pending == 0 {
                assert_eq!(read, JOBS as i64, "every job read once");
                break;
            }
            assert!(
                t0.elapsed() < LIMIT,
                "{}: jobs not done: lag {lag}, pending {pending}",
                client.label()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        rates.push(JOBS as f64 / t0.elapsed().as_secs_f64());

        // SAFETY: kill(2) on our own child's pid; SIGTERM makes the worker drain and return.
        unsafe {
            libc::kill(worker.id() as i32, libc::SIGTERM);
        }
        let status = worker.wait().expect("wait");
        assert!(status.success(), "{}: exited with {status}", client.label());
        assert_succeeded(mux, &cfg.keys, &ids).await;
    }
    Ok(rates)
}

/// Every job's stored record says `succeeded` with the handler's result: the worker settled
/// it through the library (a plain XACK would leave it `queued`).
async fn assert_succeeded(conn: &mut MultiplexedConnection, keys: &QueueKeys, ids: &[String]) {
    assert_eq!(ids.len(), JOBS);
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HMGET")
                .arg(keys.job(id))
                .arg("state")
                .arg("result");
        }
        let rows: Vec<(Option<String>, Option<String>)> =
            pipe.query_async(conn).await.expect("HMGET");
        for (id, (state, result)) in chunk.iter().zip(rows) {
            assert_eq!(state.as_deref(), Some("succeeded"), "job {id}");
            let result: serde_json::Value =
                serde_json::from_str(result.as_deref().unwrap_or("")).expect("a JSON result");
            assert_eq!(result["ok"], json!(true), "job {id}: {result}");
        }
    }
}

/// Commands/s of one run of each: redis-benchmark's `jobqueue_take`, the same take from the
/// loop, `jobqueue_complete` from the loop.
#[derive(Debug, Clone, Copy)]
pub struct CommandRates {
    pub take_benchmark: f64,
    pub take_loop: f64,
    pub complete_loop: f64,
}

/// One run of the command rates on a queue pre-filled with enough jobs that no take finds it
/// empty (an empty take is cheaper).
pub async fn command_rates(
    conn: &mut RedisConn,
    mux: &mut MultiplexedConnection,
    url: &str,
    port: u16,
    run: usize,
) -> CommandRates {
    let stream = format!("jobqueue:{{bench/commands-{run}}}");
    let cfg = queues::provisioned(conn, &stream, true).await;
    let _ = queues::enqueue_many(conn, &cfg.keys, 2 * COMMAND_JOBS + 1_000).await;
    let settings = cfg.keys.settings();
    let n = COMMAND_JOBS.to_string();
    let take = [
        "FCALL",
        "jobqueue_take",
        "2",
        &stream,
        &settings,
        GROUP,
        "benchmark",
        "1",
    ];
    let take_benchmark = redis_benchmark(port, &["-n", &n, "-c", "1", "-P", "1"], &take);
    let (lag, pending, _) = group_state(mux, &stream).await;
    assert!(
        lag > 0 && pending >= COMMAND_JOBS as i64,
        "redis-benchmark's takes each took a job: lag {lag}, pending {pending}"
    );

    let client = redis::Client::open(url).expect("url");
    let keys = cfg.keys.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = client.get_connection().expect("connect the loop");
        let take_loop = take_loop(&mut conn, &keys);
        let complete_loop = complete_loop(&mut conn, &keys);
        CommandRates {
            take_benchmark,
            take_loop,
            complete_loop,
        }
    })
    .await
    .expect("the loop")
}

/// `COMMAND_JOBS` takes of one job, one command at a time; commands/s.
fn take_loop(conn: &mut redis::Connection, keys: &QueueKeys) -> f64 {
    let t0 = Instant::now();
    for _ in 0..COMMAND_JOBS {
        let taken: Vec<(String, Vec<String>)> = redis::cmd("FCALL")
            .arg("jobqueue_take")
            .arg(2)
            .arg(&keys.stream)
            .arg(keys.settings())
            .arg(GROUP)
            .arg("loop")
            .arg(1)
            .query(conn)
            .expect("jobqueue_take");
        assert_eq!(taken.len(), 1, "the queue never runs dry");
    }
    COMMAND_JOBS as f64 / t0.elapsed().as_secs_f64()
}

/// Completes the jobs redis-benchmark took (the stream's first `COMMAND_JOBS` entries), one
/// command at a time; commands/s.
fn complete_loop(conn: &mut redis::Connection, keys: &QueueKeys) -> f64 {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&keys.stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(COMMAND_JOBS)
        .query(conn)
        .expect("XRANGE");
    let jobs: Vec<(String, String, String)> = entries
        .into_iter()
        .map(|(entry, fields)| {
            let id = fields
                .into_iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v)
                .expect("a job id");
            (entry, keys.job(&id), id)
        })
        .collect();
    let settings = keys.settings();
    let t0 = Instant::now();
    for (entry, key, id) in &jobs {
        let (state, _attempt): (String, i64) = redis::cmd("FCALL")
            .arg("jobqueue_complete")
            .arg(3)
            .arg(&keys.stream)
            .arg(&settings)
            .arg(key)
            .arg(GROUP)
            .arg(entry)
            .arg(id)
            .arg(RESULT)
            .arg(1)
            .query(conn)
            .expect("jobqueue_complete");
        assert_eq!(state, "succeeded", "job {id}");
    }
    COMMAND_JOBS as f64 / t0.elapsed().as_secs_f64()
}

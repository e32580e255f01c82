//! Figure 1: the cost of one metrics tick for 1, 100, 1,000 and 10,000 queues on one Redis.
//!
//! Three ways of reading the same queues, in the same run and on the same private
//! redis-server, blocks interleaved so that machine load hits all of them alike:
//! - `batched`: the engine's `metrics::snapshot` over all queues (one pipelined round trip);
//! - `per-queue`: the same snapshot called once per queue, awaiting each (the same script and
//!   data, one round trip per queue: what a scaler per queue does);
//! - `per-queue, KEDA-style`: `XINFO GROUPS` then `XPENDING` per queue, each awaited (the
//!   commands KEDA's redis-streams scaler issues for lag and pending).
//!
//! Redis's side comes from INFO on the private server (a second connection): CPU
//! (used_cpu_user + used_cpu_sys), commands run (commandstats, including the commands a Lua
//! script runs) and socket reads
//! (`total_reads_processed`, which counts the round trips the server saw).
//!
//! Run: `cargo bench --bench metrics_tick`

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::RedisWork;
use jobqueue_operator::queue::keys::default_stream;
use jobqueue_operator::queue::metrics::{QueueState, SnapshotOptions, snapshot};
use jobqueue_operator::queue::{QueueConfig, RedisConn, connect};
use jobqueue_test_support::redis::RedisServer;

const SIZES: [usize; 4] = [1, 100, 1_000, 10_000];
/// Measured blocks per mode; the modes take turns block by block.
const BLOCKS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Batched,
    PerQueue,
    Keda,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Batched, Mode::PerQueue, Mode::Keda];
    fn label(self) -> &'static str {
        match self {
            Mode::Batched => "batched (engine)",
            Mode::PerQueue => "per-queue, same script",
            Mode::Keda => "per-queue, KEDA-style",
        }
    }
}

/// Ticks per block: enough that small ticks add up to a measurable CPU delta.
fn ticks_per_block(n: usize, mode: Mode) -> usize {
    match (n, mode) {
        (1, _) => 200,
        (100, _) => 50,
        (1_000, Mode::Batched) => 20,
        (1_000, _) => 5,
        (_, Mode::Batched) => 10,
        _ => 2,
    }
}

#[derive(Default)]
struct Samples {
    wall_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
    reads: Vec<f64>,
    commands: Vec<f64>,
}

fn main() {
    let runtime = common::runtime();
    println!("## Figure 1: metrics collection cost per tick\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    println!(
        "| queues | mode | wall per tick, ms: median (min–max) | client round trips | Redis socket reads | commands Redis ran (incl. inside scripts) | Redis CPU per tick, ms: median (min–max) | wall vs batched |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in SIZES {
        runtime.block_on(figure(n));
    }
    println!("\nLoad average at end: {:.2}", common::load());
}

async fn figure(n: usize) {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.expect("connect");
    let mut admin = connect(&server.url()).await.expect("connect");
    let queues = setup(&mut conn, n).await;

    // Warm-up: loads the script, fills connection buffers and Redis's allocator.
    check(
        &snapshot(&mut conn, &queues, SnapshotOptions::default())
            .await
            .expect("snapshot"),
    );
    for q in queues.iter().take(100) {
        per_queue(&mut conn, std::slice::from_ref(q)).await;
        keda(&mut conn, std::slice::from_ref(q)).await;
    }

    let mut samples: HashMap<Mode, Samples> = HashMap::new();
    for _ in 0..BLOCKS {
        for mode in Mode::ALL {
            let ticks = ticks_per_block(n, mode);
            let before = RedisWork::read(&mut admin).await;
            let s = samples.entry(mode).or_default();
            for _ in 0..ticks {
                let started = Instant::now();
                match mode {
                    Mode::Batched => {
                        let r = snapshot(&mut conn, &queues, SnapshotOptions::default())
                            .await
                            .expect("snapshot");
                        s.wall_ms.push(common::ms(started.elapsed()));
                        check(&r);
                    }
                    Mode::PerQueue => {
                        per_queue(&mut conn, &queues).await;
                        s.wall_ms.push(common::ms(started.elapsed()));
                    }
                    Mode::Keda => {
                        keda(&mut conn, &queues).await;
                        s.wall_ms.push(common::ms(started.elapsed()));
                    }
                }
            }
            // The second reading's own INFO (its command and its read) is left out.
            let work = before.per_tick(&RedisWork::read(&mut admin).await, ticks);
            s.cpu_ms.push(work.cpu_ms);
            s.reads.push(work.reads);
            s.commands.push(work.commands);
        }
    }

    let batched_wall = common::summary(&samples[&Mode::Batched].wall_ms).median;
    for mode in Mode::ALL {
        let s = &samples[&mode];
        let wall = common::summary(&s.wall_ms);
        let round_trips = match mode {
            Mode::Batched => 1,
            Mode::PerQueue => n,
            Mode::Keda => 2 * n,
        };
        println!(
            "| {n} | {} | {} | {round_trips} | {:.0} | {:.0} | {} | {:.1}× |",
            mode.label(),
            wall.spread(3),
            common::summary(&s.reads).median,
            common::summary(&s.commands).median,
            common::summary(&s.cpu_ms).spread(3),
            wall.median / batched_wall,
        );
    }
}

/// `n` provisioned queues, each with three jobs of which one is delivered and pending (so the
/// script reads lag, pending, the oldest pending entry and a consumer).
async fn setup(conn: &mut RedisConn, n: usize) -> Vec<QueueConfig> {
    let queues: Vec<QueueConfig> = (0..n)
        .map(|i| QueueConfig::new(default_stream("bench", &format!("q{i:05}"))))
        .collect();
    for chunk in queues.chunks(500) {
        let mut pipe = redis::pipe();
        for q in chunk {
            pipe.cmd("XGROUP")
                .arg("CREATE")
                .arg(q.stream())
                .arg(&q.group)
                .arg("$")
                .arg("MKSTREAM")
                .ignore();
            for j in 0..3 {
                pipe.cmd("XADD")
                    .arg(q.stream())
                    .arg("*")
                    .arg("id")
                    .arg(format!("job-{j}"))
                    .arg("payload")
                    .arg("{}")
                    .arg("enqueued_at")
                    .arg(0)
                    .arg("attempt")
                    .arg(1)
                    .ignore();
            }
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&q.group)
                .arg("worker-0")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(q.stream())
                .arg(">")
                .ignore();
        }
        let () = pipe.query_async(conn).await.expect("setting up queues");
    }
    queues
}

/// Every queue read as set up: lag 2, pending 1 (the benchmark measures real reads).
fn check(r: &[Result<QueueState, jobqueue_operator::queue::QueueError>]) {
    for s in r {
        match s {
            Ok(QueueState::Ready(m)) if m.lag == 2 && m.pending == 1 => {}
            other => panic!("unexpected snapshot result {other:?}"),
        }
    }
}

async fn per_queue(conn: &mut RedisConn, queues: &[QueueConfig]) {
    for q in queues {
        let r = snapshot(conn, std::slice::from_ref(q), SnapshotOptions::default())
            .await
            .expect("snapshot");
        check(&r);
    }
}

async fn keda(conn: &mut RedisConn, queues: &[QueueConfig]) {
    for q in queues {
        let groups: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(q.stream())
            .query_async(conn)
            .await
            .expect("XINFO GROUPS");
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(q.stream())
            .arg(&q.group)
            .query_async(conn)
            .await
            .expect("XPENDING");
        assert!(matches!(groups, redis::Value::Array(ref g) if g.len() == 1));
        assert_eq!(pending.0, 1);
    }
}

//! Figure 6: what job records cost, in one process run on one private redis-server:
//! - throughput with records off and on: a queue is pre-filled with `JOBS` jobs through the
//!   library's `enqueue` (`IN_FLIGHT` calls in flight on one multiplexed connection; the
//!   enqueue rate is reported too), then one worker loop on its own connection drains it:
//!   XREADGROUP COUNT k (no BLOCK), then one awaited call per job (or, in the pipelined
//!   loop, the same calls of one read sent as one pipeline):
//!   - *off*: settings `tracking: false`; the worker XACKs each job (the protocol only, as
//!     figure 5's minimal worker);
//!   - *off, take*: `tracking: false`, the same worker as *on, take*: the pair that measures
//!     what records cost a worker (the other rows add what the worker calls cost over the
//!     protocol alone);
//!   - *on, take*: `tracking: true`; the worker reads with `jobqueue_take` (read and start in
//!     one call, COUNT k) instead of XREADGROUP, then calls `jobqueue_complete` with a small
//!     JSON result (`JobOps::take` / `complete`: what `work` does while jobs are waiting);
//!   - *on, start*: the same after a plain XREADGROUP, with `jobqueue_start` per job (what
//!     `work` does with a job a blocking read handed it);
//!   - *on, plain XACK*: `tracking: true`, the worker only XACKs (records written by enqueue,
//!     their end derived on read).
//!
//!   One more loop gives each job 1 ms of awaited work (`WORK_JOBS` jobs), the smallest real
//!   job, where the records' cost is measured against a job that does something.
//!
//!   Runs are interleaved (every mode and batch size once per round, `RUNS` rounds) and each
//!   starts from an empty Redis (FLUSHALL), so drift and leftovers hit every mode alike.
//! - memory per retained record: `MEMORY_JOBS` jobs run to success with a ~100-byte result,
//!   then `INFO memory` used_memory against the value before, with the stream, the events
//!   stream and the job counters measured (MEMORY USAGE) and deleted so that only the records
//!   remain; plus MEMORY USAGE of a sample of `:job:<id>` keys.
//!
//! Run: `scripts/bench job_records` or `cargo bench --bench job_records`.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::queues::{self, IN_FLIGHT};
use jobqueue_operator::queue::jobs::{Delivery, JobOps, Settled, Started, stats_key};
use jobqueue_operator::queue::{QueueConfig, RedisConn, connect};
use jobqueue_test_support::redis::RedisServer;
use redis::streams::StreamReadReply;

const JOBS: usize = 20_000;
const RUNS: usize = 5;
/// How the worker loop reads and settles: XREADGROUP COUNT (1 is what `work` reads) and
/// whether the per-job calls of one read go out as one pipeline (all starts, then all
/// completes) instead of one awaited call at a time.
/// The third number is the work each job does (ms, awaited like I/O): 0 measures the
/// per-job overhead alone, 1 ms a small real job.
const LOOPS: [Loop; 4] = [(1, false, 0), (10, false, 0), (10, true, 0), (1, false, 1)];
/// Jobs per run of a loop whose jobs do work (they take longer each).
const WORK_JOBS: usize = 2_000;

/// (XREADGROUP COUNT, pipelined, work ms per job).
type Loop = (usize, bool, u64);

fn jobs_of((_, _, work): Loop) -> usize {
    if work > 0 { WORK_JOBS } else { JOBS }
}
const MEMORY_JOBS: usize = 10_000;
/// Record keys whose MEMORY USAGE is read.
const SAMPLE: usize = 200;
const CONSUMER: &str = "bench";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Off,
    OffTake,
    OnTake,
    On,
    OnPlainAck,
}

const MODES: [Mode; 5] = [
    Mode::Off,
    Mode::OffTake,
    Mode::OnTake,
    Mode::On,
    Mode::OnPlainAck,
];

impl Mode {
    fn tracking(self) -> bool {
        !matches!(self, Mode::Off | Mode::OffTake)
    }

    /// Whether the worker reads with `jobqueue_take` and ends jobs with `jobqueue_complete`.
    fn takes(self) -> bool {
        matches!(self, Mode::OffTake | Mode::OnTake)
    }

    fn label(self) -> &'static str {
        match self {
            Mode::Off => "off: XACK",
            Mode::OffTake => "off, take: `jobqueue_take` + `jobqueue_complete`",
            Mode::OnTake => "on, take: `jobqueue_take` + `jobqueue_complete`",
            Mode::On => "on, start: XREADGROUP + `jobqueue_start` + `jobqueue_complete`",
            Mode::OnPlainAck => "on, plain XACK worker",
        }
    }
}

fn main() {
    let runtime = common::runtime();
    runtime.block_on(run());
}

async fn run() {
    println!("## Figure 6: job records, throughput and memory\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await.expect("connect");
    let mut worker = connect(&redis.url()).await.expect("connect the worker");

    // Drain rates per mode and loop; enqueue rates per mode.
    let mut drains = Drains::new();
    let mut fills: HashMap<Mode, Vec<f64>> = HashMap::new();
    for round in 0..RUNS {
        for lp in LOOPS {
            for mode in MODES {
                flush(&mut conn).await;
                let stream = format!("jobqueue:{{bench/records-{round}-{mode:?}}}");
                let cfg = queues::provisioned(&mut conn, &stream, mode.tracking()).await;
                let (fill, _) = fill(&conn, &cfg, jobs_of(lp)).await;
                if lp.2 == 0 {
                    fills.entry(mode).or_default().push(fill);
                }
                let drained = drain(&mut worker, &cfg, mode, lp, small_result, jobs_of(lp)).await;
                drains.entry((mode, lp)).or_default().push(drained);
                assert_done(&mut conn, &cfg).await;
            }
        }
    }
    print_throughput(&drains, &fills);
    flush(&mut conn).await;
    memory(&mut conn, &mut worker).await;
    println!("\nLoad average at end: {:.2}", common::load());
}

/// (mode, loop) → drain rates.
type Drains = HashMap<(Mode, Loop), Vec<f64>>;

fn print_throughput(drains: &Drains, fills: &HashMap<Mode, Vec<f64>>) {
    let rounds = RUNS * LOOPS.iter().filter(|l| l.2 == 0).count();
    println!(
        "| records / worker | XREADGROUP COUNT | per-job calls | work per job | jobs per run | drain jobs/s: median (min–max) of {RUNS} runs | vs off | enqueue jobs/s ({IN_FLIGHT} in flight), {rounds} runs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut lines = Vec::new();
    for lp @ (batch, pipelined, work) in LOOPS {
        let calls = if pipelined {
            "one pipeline per read"
        } else {
            "one at a time"
        };
        let off = common::summary(&drains[&(Mode::Off, lp)]).median;
        let off_take = common::summary(&drains[&(Mode::OffTake, lp)]).median;
        for mode in MODES {
            let s = common::summary(&drains[&(mode, lp)]);
            let f = common::summary(&fills[&mode]);
            println!(
                "| {} | {batch} | {calls} | {work} ms | {} | {} | {:.2}× | {} |",
                mode.label(),
                jobs_of(lp),
                s.spread(0),
                s.median / off,
                f.spread(0)
            );
            let at = format!("COUNT {batch}, {calls}, {work} ms of work per job");
            if mode == Mode::OnTake {
                lines.push(format!(
                    "{at}: **records** (tracking on against off, the same take + complete worker) cost {:.0} % of the drain rate",
                    100.0 * (1.0 - s.median / off_take)
                ));
            }
            if mode.tracking() {
                lines.push(format!(
                    "{at}, {}: records and worker calls against the protocol alone (off: XACK) cost {:.0} %",
                    mode.label(),
                    100.0 * (1.0 - s.median / off)
                ));
            }
        }
    }
    let off = common::summary(&fills[&Mode::Off]).median;
    let on = common::summary(&fills[&Mode::On]).median;
    println!();
    for l in lines {
        println!("{l}");
    }
    println!(
        "Enqueue: records cost {:.0} % of the enqueue rate (on/off {:.2}×)",
        100.0 * (1.0 - on / off),
        on / off
    );
}

/// An empty server for every run (the function library is reloaded by `setup`).
async fn flush(conn: &mut RedisConn) {
    let () = redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query_async(conn)
        .await
        .expect("FLUSHALL");
}

/// Enqueues `n` jobs, `IN_FLIGHT` at a time; returns (jobs/s, job ids).
async fn fill(conn: &RedisConn, cfg: &QueueConfig, n: usize) -> (f64, Vec<String>) {
    let t0 = Instant::now();
    let ids = queues::enqueue_many(conn, &cfg.keys, n).await;
    (n as f64 / t0.elapsed().as_secs_f64(), ids)
}

/// `{"ok":true,"n":<i>}`: the small result of the throughput runs.
fn small_result(i: usize) -> String {
    format!(r#"{{"ok":true,"n":{i}}}"#)
}

/// A result of about 100 bytes of JSON: the memory figure's.
fn hundred_byte_result(i: usize) -> String {
    format!(
        r#"{{"ok":true,"n":{i:06},"url":"https://example.com/reports/2026/12/{i:06}.pdf","pages":12,"bytes":48213}}"#
    )
}

/// One worker loop until the queue is empty (it was pre-filled); returns jobs/s.
async fn drain(
    conn: &mut RedisConn,
    cfg: &QueueConfig,
    mode: Mode,
    (batch, pipelined, work): Loop,
    result: fn(usize) -> String,
    expected: usize,
) -> f64 {
    let ops = JobOps {
        keys: cfg.keys.clone(),
        group: cfg.group.clone(),
        consumer: CONSUMER.into(),
    };
    let t0 = Instant::now();
    let mut done = 0;
    loop {
        let deliveries = if mode.takes() {
            ops.take(conn, batch).await.expect("jobqueue_take")
        } else {
            read(conn, cfg, batch).await
        };
        if deliveries.is_empty() {
            break;
        }
        if pipelined {
            let results: Vec<String> = (done..done + deliveries.len()).map(result).collect();
            settle_pipelined(conn, &ops, mode, &deliveries, &results).await;
            done += deliveries.len();
            continue;
        }
        for d in &deliveries {
            if work > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(work)).await;
            }
            settle(conn, &ops, mode, d, &result(done)).await;
            done += 1;
        }
    }
    assert_eq!(done, expected, "every job read once");
    done as f64 / t0.elapsed().as_secs_f64()
}

/// XREADGROUP COUNT `batch` without BLOCK: the next new jobs (none once the queue is drained).
async fn read(conn: &mut RedisConn, cfg: &QueueConfig, batch: usize) -> Vec<Delivery> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&cfg.group)
        .arg(CONSUMER)
        .arg("COUNT")
        .arg(batch)
        .arg("STREAMS")
        .arg(&cfg.keys.stream)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|entry| Delivery {
            job_id: entry.get("id").expect("a job id"),
            entry_id: entry.id,
            attempt: 1,
            ..Default::default()
        })
        .collect()
}

/// What the worker of `mode` does with one job.
async fn settle(conn: &mut RedisConn, ops: &JobOps, mode: Mode, d: &Delivery, result: &str) {
    match mode {
        Mode::Off | Mode::OnPlainAck => {
            let acked: i64 = redis::cmd("XACK")
                .arg(&ops.keys.stream)
                .arg(&ops.group)
                .arg(&d.entry_id)
                .query_async(conn)
                .await
                .expect("XACK");
            assert_eq!(acked, 1, "acknowledged once");
        }
        Mode::On | Mode::OnTake | Mode::OffTake => {
            if mode == Mode::On {
                let started = ops.start(conn, d).await.expect("jobqueue_start");
                assert_eq!(started, Started::Run);
            }
            let Settled { state, .. } = ops
                .complete(conn, d, Some(result))
                .await
                .expect("jobqueue_complete");
            assert_eq!(state, "succeeded");
        }
    }
}

/// The same calls as [`settle`] for a whole read, as pipelines: the XACKs; or the starts (when
/// the read did not start them), then the completes (a complete must not overtake its start).
async fn settle_pipelined(
    conn: &mut RedisConn,
    ops: &JobOps,
    mode: Mode,
    batch: &[Delivery],
    results: &[String],
) {
    let keys = &ops.keys;
    let fcall = |pipe: &mut redis::Pipeline, name: &str, d: &Delivery| {
        pipe.cmd("FCALL")
            .arg(name)
            .arg(3)
            .arg(&keys.stream)
            .arg(keys.settings())
            .arg(keys.job(&d.job_id))
            .arg(&ops.group);
    };
    if mode == Mode::Off || mode == Mode::OnPlainAck {
        let mut pipe = redis::pipe();
        for d in batch {
            pipe.cmd("XACK")
                .arg(&keys.stream)
                .arg(&ops.group)
                .arg(&d.entry_id);
        }
        let acked: Vec<i64> = pipe.query_async(conn).await.expect("XACK");
        assert!(acked.iter().all(|&a| a == 1), "acknowledged once");
        return;
    }
    if mode == Mode::On {
        let mut pipe = redis::pipe();
        for d in batch {
            fcall(&mut pipe, "jobqueue_start", d);
            pipe.arg(&ops.consumer).arg(&d.entry_id).arg(&d.job_id);
        }
        let started: Vec<(String, i64)> = pipe.query_async(conn).await.expect("jobqueue_start");
        assert!(started.iter().all(|(s, _)| s == "active"), "{started:?}");
    }
    let mut pipe = redis::pipe();
    for (d, result) in batch.iter().zip(results) {
        fcall(&mut pipe, "jobqueue_complete", d);
        pipe.arg(&d.entry_id)
            .arg(&d.job_id)
            .arg(result)
            .arg(d.attempt);
    }
    let completed: Vec<(String, i64)> = pipe.query_async(conn).await.expect("jobqueue_complete");
    assert!(
        completed.iter().all(|(s, _)| s == "succeeded"),
        "{completed:?}"
    );
}

/// Nothing left to read and nothing pending.
async fn assert_done(conn: &mut RedisConn, cfg: &QueueConfig) {
    let summary: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(&cfg.keys.stream)
        .arg(&cfg.group)
        .query_async(conn)
        .await
        .expect("XPENDING");
    assert_eq!(summary.0, 0, "no job pending");
}

async fn used_memory(conn: &mut RedisConn) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("INFO memory");
    common::parse_info(&info)["used_memory"]
        .parse()
        .expect("used_memory")
}

async fn memory_usage(conn: &mut RedisConn, key: &str) -> i64 {
    let bytes: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await
        .expect("MEMORY USAGE");
    bytes.unwrap_or(0)
}

async fn xlen(conn: &mut RedisConn, key: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// Bytes per retained record of a succeeded job with a ~100-byte result.
async fn memory(conn: &mut RedisConn, worker: &mut RedisConn) {
    let cfg = queues::provisioned(conn, "jobqueue:{bench/memory}", true).await;
    // One job end to end first, so that what is allocated once (functions, scripts, the
    // group's consumer) is in the baseline.
    let warm = queues::provisioned(conn, "jobqueue:{bench/warm-up}", true).await;
    fill(conn, &warm, 1).await;
    drain(
        worker,
        &warm,
        Mode::OnTake,
        (1, false, 0),
        hundred_byte_result,
        1,
    )
    .await;
    let before = used_memory(conn).await;
    let (_, ids) = fill(conn, &cfg, MEMORY_JOBS).await;
    drain(
        worker,
        &cfg,
        Mode::OnTake,
        (1, false, 0),
        hundred_byte_result,
        MEMORY_JOBS,
    )
    .await;
    let after = used_memory(conn).await;

    let stream = &cfg.keys.stream;
    let (events, stats) = (cfg.keys.events(), stats_key(&cfg.keys));
    let stream_bytes = memory_usage(conn, stream).await;
    let events_bytes = memory_usage(conn, &events).await;
    let events_len = xlen(conn, &events).await;
    let stats_bytes = memory_usage(conn, &stats).await;
    let mut sample = Vec::new();
    for id in ids.iter().step_by(MEMORY_JOBS / SAMPLE) {
        sample.push(memory_usage(conn, &cfg.keys.job(id)).await as f64);
    }
    let sample = common::summary(&sample);
    let _: i64 = redis::cmd("DEL")
        .arg(stream)
        .arg(&events)
        .arg(&stats)
        .query_async(conn)
        .await
        .expect("DEL");
    let records_only = used_memory(conn).await;

    let m = MEMORY_JOBS as f64;
    let per_record = (records_only - before) as f64 / m;
    println!("\n| {MEMORY_JOBS} succeeded jobs, ~100-byte result | bytes | per job |");
    println!("|---|---|---|");
    println!(
        "| used_memory delta, everything | {} | {:.0} |",
        after - before,
        (after - before) as f64 / m
    );
    println!(
        "| used_memory delta, records only (stream, events, counters deleted) | {} | **{per_record:.0}** |",
        records_only - before
    );
    println!(
        "| MEMORY USAGE of one `:job:<id>` key, {} sampled: median (min–max) | – | {} |",
        sample.n,
        sample.spread(0)
    );
    println!(
        "| the stream's entries (acknowledged, kept until trimmed; also with records off) | {stream_bytes} | {:.0} |",
        stream_bytes as f64 / m
    );
    println!(
        "| events stream, capped: {events_len} events (one per state change before the cap) | {events_bytes} | – |"
    );
    println!("| job counters (`jobstats`) | {stats_bytes} | – |");
    println!(
        "\nRecords: {per_record:.0} bytes each, {:.0} MiB per million retained (succeeded TTL 24 h by default)",
        per_record * 1e6 / 1024.0 / 1024.0
    );
}

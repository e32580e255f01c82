//! Figure 3: schedule firing lateness of the engine's scheduler loop (sleeps until the
//! earliest due run) against RQ's own schedulers, run for real on the same private
//! redis-server in the same run, 1,000 jobs due in the same second each round:
//! - the engine: `Scheduler::run` over 1,000 schedules `*/2 * * * * *`; lateness =
//!   `enqueued_at` (Redis's clock when the script ran XADD) − `scheduled_for`, the method of
//!   `benches/schedule_lateness.rs`;
//! - RQ's cron (`rq cron`), RQ's built-in scheduler (`rq worker --with-scheduler`) and
//!   rq-scheduler (`rqscheduler`, at its default 60 s interval and at 1 s), driven by
//!   `benches/rq/scheduling.py` in `target/bench-venv` (which `scripts/bench` creates);
//!   lateness = RQ's `enqueued_at` − the due time. A poller's phase against a due time is
//!   arbitrary, so the script spreads the rounds' due times evenly over the polling period.
//!
//! Run: `scripts/bench schedule_polling` (or `cargo bench --bench schedule_polling` once the
//! venv exists)

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_operator::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerConfig};
use jobqueue_operator::queue::schedules::{self, ScheduleDefinition};
use jobqueue_operator::queue::{RedisConn, connect};
use jobqueue_test_support::redis::RedisServer;
use redis::streams::StreamRangeReply;

const SCHEDULES: usize = 1000;
/// All 1,000 schedules come due together every 2 s.
const CRON: &str = "*/2 * * * * *";
const PERIOD_MS: i64 = 2000;
const WARM_UP_ROUNDS: usize = 1;
const ROUNDS: usize = 10;
/// Rounds of a 60 s poller: all served by one wake-up, at three phases.
const SLOW_ROUNDS: usize = 3;

/// RQ's schedulers: (label, `scheduling.py` arguments, rounds).
const PEERS: [(&str, &[&str], usize); 4] = [
    (
        "RQ 3.0 cron (`rq cron`, sleeps until the next cron time)",
        &["--scheduler", "rq-cron"],
        ROUNDS,
    ),
    (
        "RQ 3.0 built-in scheduler (`rq worker --with-scheduler`, `Queue.enqueue_at`; checks every 1 s)",
        &["--scheduler", "rq-builtin"],
        ROUNDS,
    ),
    (
        "rq-scheduler 0.14 `rqscheduler --interval 1`",
        &["--scheduler", "rq-scheduler", "--interval", "1"],
        ROUNDS,
    ),
    (
        "rq-scheduler 0.14 `rqscheduler` (default interval 60 s)",
        &["--scheduler", "rq-scheduler", "--interval", "60"],
        SLOW_ROUNDS,
    ),
];

fn main() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `scripts/bench schedule_polling` creates it (RQ and rq-scheduler)",
        python.display()
    );
    let runtime = common::runtime();
    runtime.block_on(async {
        println!("## Figure 3: schedule firing lateness, the engine vs RQ's schedulers\n");
        println!("Machine: {}", common::machine());
        println!("Load average at start: {:.2}\n", common::load());
        let server = RedisServer::start();
        let mut conn = connect(&server.url()).await.expect("connect");
        let engine = engine_lateness(&server, &mut conn).await;
        let peers: Vec<(&str, Lateness)> = PEERS
            .iter()
            .map(|(label, args, rounds)| (*label, peer_lateness(&python, &server.url(), args, *rounds)))
            .collect();
        println!(
            "| scheduler | jobs due together | runs measured | earliest (< 0: before due) | p50 | p99 | max | round medians (min–max) |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        println!("{}", row("engine loop (sleeps until due)", &engine));
        for (label, l) in &peers {
            println!("{}", row(label, l));
        }
        println!();
        // Early and late both miss the time: compare the worst deviation either way, and the
        // p50 only for schedulers that are never early (early runs pull a p50 down).
        let worst = |l: &Lateness| l.all.max.max(-l.all.min);
        for (label, l) in &peers {
            let p50 = if l.all.min >= 0.0 {
                format!("p50 {:.0}×, ", l.all.median / engine.all.median.max(0.001))
            } else {
                String::new()
            };
            println!(
                "- {label} / engine: {p50}worst deviation from the due time {:.0}×",
                worst(l) / worst(&engine).max(0.001)
            );
        }
        println!("Load average at end: {:.2}", common::load());
    });
}

struct Lateness {
    all: common::Summary,
    round_medians: common::Summary,
}

impl Lateness {
    fn of(rounds: &[Vec<f64>]) -> Self {
        let all: Vec<f64> = rounds.iter().flatten().copied().collect();
        let medians: Vec<f64> = rounds.iter().map(|r| common::summary(r).median).collect();
        Lateness {
            all: common::summary(&all),
            round_medians: common::summary(&medians),
        }
    }
}

fn row(label: &str, l: &Lateness) -> String {
    format!(
        "| {label} | {SCHEDULES} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0}–{:.0} ms |",
        l.all.n,
        l.all.min,
        l.all.median,
        l.all.p99,
        l.all.max,
        l.round_medians.min,
        l.round_medians.max
    )
}

/// One of RQ's schedulers through `benches/rq/scheduling.py` (it flushes the Redis first).
fn peer_lateness(python: &PathBuf, url: &str, args: &[&str], rounds: usize) -> Lateness {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/rq/scheduling.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--url", url, "--jobs", &SCHEDULES.to_string()])
        .args(["--rounds", &rounds.to_string()])
        .args(args)
        .output()
        .expect("running benches/rq/scheduling.py");
    assert!(
        out.status.success(),
        "scheduling.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON object");
    let measured: Vec<Vec<f64>> = v["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("a round")
                .iter()
                .map(|x| x.as_f64().expect("ms"))
                .collect()
        })
        .collect();
    assert_eq!(measured.len(), rounds, "{args:?}: rounds measured");
    assert!(
        measured.iter().all(|r| r.len() == SCHEDULES),
        "{args:?}: every job of every round enqueued once"
    );
    Lateness::of(&measured)
}

/// The engine's loop over 1,000 schedules due together every 2 s.
async fn engine_lateness(server: &RedisServer, conn: &mut RedisConn) -> Lateness {
    let keys = QueueKeys::new(default_stream("bench", "engine"));
    let now = jiff::Timestamp::now();
    for i in 0..SCHEDULES {
        schedules::upsert(
            conn,
            &keys,
            &ScheduleDefinition::new(format!("s{i:04}"), CRON),
            now.as_millisecond(),
        )
        .await
        .expect("writing a schedule");
    }
    // Every schedule is armed for the first due time after `now`.
    let first_run = (now.as_millisecond() / PERIOD_MS + 1) * PERIOD_MS;
    let rounds = WARM_UP_ROUNDS + ROUNDS;
    let scheduler = Scheduler::new(
        connect(&server.url()).await.expect("connect"),
        SchedulerConfig::default(),
    );
    scheduler.handle().set_queues(vec![ScheduledQueue {
        keys: keys.clone(),
        group: "workers".into(),
        term: 0,
    }]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now()
        + Duration::from_millis(PERIOD_MS as u64 * rounds as u64)
        + Duration::from_secs(30);
    while xlen(conn, &keys.stream).await < SCHEDULES * rounds {
        assert!(Instant::now() < deadline, "runs did not all fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    task.await.expect("scheduler task");

    let measured_from = first_run + WARM_UP_ROUNDS as i64 * PERIOD_MS;
    let last_run = first_run + (rounds as i64 - 1) * PERIOD_MS;
    let jobs: Vec<(i64, i64)> = lateness_of(conn, &keys.stream)
        .await
        .into_iter()
        .filter(|(scheduled, _)| *scheduled >= measured_from && *scheduled <= last_run)
        .collect();
    assert_eq!(jobs.len(), SCHEDULES * ROUNDS, "exactly one job per run");
    let by_round: Vec<Vec<f64>> = (0..ROUNDS as i64)
        .map(|r| {
            let at = measured_from + r * PERIOD_MS;
            jobs.iter()
                .filter(|(s, _)| *s == at)
                .map(|(_, l)| *l as f64)
                .collect()
        })
        .collect();
    Lateness::of(&by_round)
}

async fn xlen(conn: &mut RedisConn, stream: &str) -> usize {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// (scheduled_for, enqueued_at − scheduled_for) of every job in the stream.
async fn lateness_of(conn: &mut RedisConn, stream: &str) -> Vec<(i64, i64)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| {
            let int = |f: &str| -> i64 {
                let s: String = redis::from_redis_value_ref(&e.map[f]).expect("a job field");
                s.parse().expect("a number")
            };
            (
                int("scheduled_for"),
                int("enqueued_at") - int("scheduled_for"),
            )
        })
        .collect()
}

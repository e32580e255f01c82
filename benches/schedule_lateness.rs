//! Firing lateness: how long after its scheduled time a run's job is in the stream, for 1,000
//! schedules due in the same second, on a private redis-server.
//!
//! Lateness = `enqueued_at` (Redis's clock when the script ran XADD) − `scheduled_for`.
//! Scenarios: one scheduler loop (one active operator replica), and three loops racing on the
//! same schedules (the compare-and-set resolves every run to one job).
//!
//! Run: `cargo bench --bench schedule_lateness` (prints a Markdown table for BENCHMARKS.md).

mod common;

use std::time::{Duration, Instant};

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_operator::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerConfig};
use jobqueue_operator::queue::schedules::{self, ScheduleDefinition};
use jobqueue_operator::queue::{RedisConn, connect};
use jobqueue_test_support::redis::RedisServer;
use redis::streams::StreamRangeReply;

const SCHEDULES: usize = 1000;
/// Every schedule fires at seconds 0, 5, 10, ... so all 1,000 are due in the same second.
const CRON: &str = "*/5 * * * * *";
const WARM_UP_ROUNDS: usize = 1;
const MEASURED_ROUNDS: usize = 5;

fn main() {
    let runtime = common::runtime();
    println!("| scenario | schedules due in one second | runs measured | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for loops in [1, 3] {
        let row = runtime.block_on(scenario(loops));
        println!("{row}");
    }
}

async fn scenario(loops: usize) -> String {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new(default_stream("bench", "lateness"));
    let now = jiff::Timestamp::now();
    for i in 0..SCHEDULES {
        schedules::upsert(
            &mut conn,
            &keys,
            &ScheduleDefinition::new(format!("s{i:04}"), CRON),
            now.as_millisecond(),
        )
        .await
        .unwrap();
    }
    let first_run = (now.as_millisecond() / 5000 + 1) * 5000;

    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..loops {
        let scheduler = Scheduler::new(
            connect(&server.url()).await.unwrap(),
            SchedulerConfig::default(),
        );
        scheduler.handle().set_queues(vec![ScheduledQueue {
            keys: keys.clone(),
            group: "workers".into(),
            term: 0,
        }]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(scheduler.run(async move {
            let _ = stopped.await;
        })));
    }
    let rounds = WARM_UP_ROUNDS + MEASURED_ROUNDS;
    let last_run = first_run + (rounds as i64 - 1) * 5000;
    let deadline = Instant::now() + Duration::from_secs(5 * rounds as u64 + 30);
    // Polling XLEN (cheap) rather than reading the stream keeps the measurement undisturbed.
    while xlen(&mut conn, &keys.stream).await < SCHEDULES * rounds {
        assert!(Instant::now() < deadline, "runs did not all fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await.unwrap();
    }

    let measured_from = first_run + WARM_UP_ROUNDS as i64 * 5000;
    let mut lateness: Vec<i64> = lateness_of(&mut conn, &keys.stream)
        .await
        .into_iter()
        .filter(|(scheduled, _)| *scheduled >= measured_from && *scheduled <= last_run)
        .map(|(_, late)| late)
        .collect();
    assert_eq!(
        lateness.len(),
        SCHEDULES * MEASURED_ROUNDS,
        "exactly one job per run"
    );
    lateness.sort_unstable();
    let pct = |p: f64| lateness[((lateness.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    format!(
        "| {loops} scheduler loop{} | {SCHEDULES} | {} | {} ms | {} ms | {} ms |",
        if loops == 1 { "" } else { "s racing" },
        lateness.len(),
        pct(0.50),
        pct(0.99),
        lateness.last().unwrap()
    )
}

async fn xlen(conn: &mut RedisConn, stream: &str) -> usize {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .unwrap()
}

/// (scheduled_for, enqueued_at − scheduled_for) of every job in the stream.
async fn lateness_of(conn: &mut RedisConn, stream: &str) -> Vec<(i64, i64)> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|e| {
            let int = |f: &str| -> i64 {
                let s: String = redis::from_redis_value_ref(&e.map[f]).unwrap();
                s.parse().unwrap()
            };
            (
                int("scheduled_for"),
                int("enqueued_at") - int("scheduled_for"),
            )
        })
        .collect()
}

//! Figure 3: schedule firing lateness of the engine's scheduler loop (sleeps until the
//! earliest due run) against a one-second polling scheduler of the rq-scheduler kind, in the
//! same process, on the same private redis-server, for the same 1,000 schedules.
//!
//! Both fire through the same code (`Scheduler::tick`: ZRANGEBYSCORE of the due runs, then
//! the compare-and-set firing script, pipelined); only the wake-up differs. The poller's phase
//! against the due second is arbitrary in real life, so each round puts it at a different
//! phase, spread evenly over the second ((r + 0.5) / ROUNDS s after the due time).
//!
//! Lateness = `enqueued_at` (Redis's clock when the script ran XADD) − `scheduled_for`, the
//! method of `benches/schedule_lateness.rs`.
//!
//! Run: `cargo bench --bench schedule_polling`

mod common;

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
const POLL: Duration = Duration::from_secs(1);

fn main() {
    let runtime = common::runtime();
    runtime.block_on(async {
        println!("## Figure 3: schedule firing lateness, precise wake-up vs 1 s polling\n");
        println!("Machine: {}", common::machine());
        println!("Load average at start: {:.2}\n", common::load());
        let server = RedisServer::start();
        let mut conn = connect(&server.url()).await.expect("connect");
        println!(
            "| scheduler | schedules due together | runs measured | p50 | p99 | max | round medians (min–max) |"
        );
        println!("|---|---|---|---|---|---|---|");
        let precise = scenario(&server, &mut conn, "precise", false).await;
        let polling = scenario(&server, &mut conn, "polling", true).await;
        println!("{}", row("engine loop (sleeps until due)", &precise));
        println!("{}", row("1 s polling (rq-scheduler kind)", &polling));
        println!(
            "\np50 ratio polling / engine: {:.0}×",
            polling.all.median / precise.all.median.max(0.001)
        );
        println!("Load average at end: {:.2}", common::load());
    });
}

struct Lateness {
    all: common::Summary,
    round_medians: common::Summary,
}

fn row(label: &str, l: &Lateness) -> String {
    format!(
        "| {label} | {SCHEDULES} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0}–{:.0} ms |",
        l.all.n, l.all.median, l.all.p99, l.all.max, l.round_medians.min, l.round_medians.max
    )
}

async fn scenario(server: &RedisServer, conn: &mut RedisConn, name: &str, poll: bool) -> Lateness {
    let keys = QueueKeys::new(default_stream("bench", name));
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
    let mut scheduler = Scheduler::new(
        connect(&server.url()).await.expect("connect"),
        SchedulerConfig::default(),
    );
    scheduler.handle().set_queues(vec![ScheduledQueue {
        keys: keys.clone(),
        group: "workers".into(),
        term: 0,
    }]);

    if poll {
        for r in 0..rounds {
            // This round's poller phase: the tick before the due time finds nothing, the next
            // one fires the round.
            let due = first_run + r as i64 * PERIOD_MS;
            let phase_ms = ((r % ROUNDS) as f64 + 0.5) / ROUNDS as f64 * 1000.0;
            let mut next_tick = due - 1000 + phase_ms as i64;
            let mut fired = 0;
            while fired < SCHEDULES {
                let wait = next_tick - jiff::Timestamp::now().as_millisecond();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                fired += scheduler
                    .tick(jiff::Timestamp::now())
                    .await
                    .expect("tick")
                    .fired;
                next_tick += POLL.as_millis() as i64;
            }
        }
    } else {
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
    }

    let measured_from = first_run + WARM_UP_ROUNDS as i64 * PERIOD_MS;
    let last_run = first_run + (rounds as i64 - 1) * PERIOD_MS;
    let jobs: Vec<(i64, i64)> = lateness_of(conn, &keys.stream)
        .await
        .into_iter()
        .filter(|(scheduled, _)| *scheduled >= measured_from && *scheduled <= last_run)
        .collect();
    assert_eq!(jobs.len(), SCHEDULES * ROUNDS, "exactly one job per run");
    let all: Vec<f64> = jobs.iter().map(|(_, l)| *l as f64).collect();
    let round_medians: Vec<f64> = (0..ROUNDS as i64)
        .map(|r| {
            let at = measured_from + r * PERIOD_MS;
            let late: Vec<f64> = jobs
                .iter()
                .filter(|(s, _)| *s == at)
                .map(|(_, l)| *l as f64)
                .collect();
            common::summary(&late).median
        })
        .collect();
    Lateness {
        all: common::summary(&all),
        round_medians: common::summary(&round_medians),
    }
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

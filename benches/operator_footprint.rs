//! Figure 4: the operator process's memory and CPU with 1,000 JobQueues (each with a worker
//! template, so 1,000 owned Deployments, and `pollInterval: 1s` scaling) and 1,000 Schedules
//! (each firing twice a minute, spread over the minute) against the test API server and one
//! private redis-server; and the same 1,000 JobQueues with no Schedules and no jobs, where
//! the operator has nothing to do (the cost at rest); and once, 10,000 JobQueues and 10,000
//! Schedules firing hourly (how holding the objects grows the footprint).
//!
//! Each run starts from nothing (a fresh test API server and redis-server, the 2,000 resources
//! created), then starts `jobqueue-operator run`, waits until every JobQueue and Schedule
//! reports `Ready=True` for its generation, and measures a steady-state window. CPU is
//! utime + stime from /proc/<pid>/stat; memory is VmHWM (peak RSS) and VmRSS from
//! /proc/<pid>/status. The window also counts the operator's API requests (the test API
//! server's request log), the commands Redis ran (INFO commandstats, those inside scripts
//! included) and Redis's CPU (used_cpu_user + used_cpu_sys), per second.
//!
//! Run: `cargo bench --bench operator_footprint`

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::RedisWork;
use common::cluster::{Cluster, wait_for};
use jobqueue_operator::queue::connect;
use jobqueue_test_support::redis::RedisServer;
use serde_json::json;

const RUNS: usize = 3;
/// Longer than the quiet read interval (30 s), so an idle queue's safety read falls inside.
const STEADY: Duration = Duration::from_secs(30);

/// One row of the figure.
struct Scenario {
    label: &'static str,
    queues: usize,
    /// A Schedule per queue.
    schedules: bool,
    /// The Schedules fire once an hour (spread over it) instead of twice a minute: the cost of
    /// holding them, without the work of their jobs.
    hourly: bool,
    runs: usize,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        label: "1000 JobQueues + 1000 Schedules",
        queues: 1000,
        schedules: true,
        hourly: false,
        runs: RUNS,
    },
    Scenario {
        label: "1000 JobQueues, no Schedules, no jobs (at rest)",
        queues: 1000,
        schedules: false,
        hourly: false,
        runs: RUNS,
    },
    // One run: creating and reconciling 20,000 objects takes minutes on a 2-core machine. The
    // Schedules fire hourly: at twice a minute, 10,000 queues without workers would all fill
    // and be read at every 1 s poll, more work than this machine (which also runs the API
    // server and Redis) can do, and the row would measure that instead of the footprint.
    Scenario {
        label: "10000 JobQueues + 10000 Schedules (firing hourly)",
        queues: 10_000,
        schedules: true,
        hourly: true,
        runs: 1,
    },
];

fn main() {
    let runtime = common::runtime();
    runtime.block_on(run());
}

struct Sample {
    startup_s: f64,
    startup_cpu_s: f64,
    steady_cpu_pct: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
    api_per_s: f64,
    redis_per_s: f64,
    redis_cpu_ms_per_s: f64,
}

async fn run() {
    println!("## Figure 4: operator memory and CPU with 1,000 JobQueues and 1,000 Schedules\n");
    println!("Machine: {}", common::machine());
    println!("Load average at start: {:.2}\n", common::load());
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // Under a profiler (BENCH_OPERATOR_WRAPPER) one run of the first scenario gives the profile;
    // the table is then not a measurement.
    let profiling = std::env::var_os("BENCH_OPERATOR_WRAPPER").is_some();
    // BENCH_SCENARIO picks the rows whose label contains it (e.g. "10000" to profile that row).
    let only = std::env::var("BENCH_SCENARIO").unwrap_or_default();
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| s.label.contains(&only))
        .collect();
    let (scenarios, runs) = if profiling {
        println!(
            "Profiling run: the figures below are the profiler's process, not a measurement.\n"
        );
        (&chosen[..chosen.len().min(1)], Some(1))
    } else {
        (&chosen[..], None)
    };
    for scenario in scenarios {
        let label = scenario.label;
        let mut samples = Vec::new();
        let mut breakdown = (String::new(), String::new());
        for run in 0..runs.unwrap_or(scenario.runs) {
            let (sample, api, redis) = measure(scenario, run).await;
            samples.push(sample);
            breakdown = (api, redis);
        }
        rows.push((label, samples));
        notes.push(format!(
            "{label}, the last run's steady window: API requests {}; Redis commands {}",
            breakdown.0, breakdown.1
        ));
    }

    println!(
        "| resources | runs | start → all Ready, s | CPU until all Ready, s | steady CPU, % of one core | peak RSS (VmHWM), MiB | RSS at end, MiB | API requests/s | Redis commands/s | Redis CPU, ms/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, samples) in &rows {
        let col = |f: fn(&Sample) -> f64, d: usize| {
            common::summary(&samples.iter().map(f).collect::<Vec<_>>()).spread(d)
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            samples.len(),
            col(|s| s.startup_s, 1),
            col(|s| s.startup_cpu_s, 2),
            col(|s| s.steady_cpu_pct, 1),
            col(|s| s.peak_rss_mib, 0),
            col(|s| s.rss_mib, 0),
            col(|s| s.api_per_s, 1),
            col(|s| s.redis_per_s, 0),
            col(|s| s.redis_cpu_ms_per_s, 1),
        );
    }
    for n in notes {
        println!("\n{n}");
    }
    println!(
        "\nMedian (min–max) over the operator processes (runs) of each row; steady window {STEADY:?}."
    );
    println!("Load average at end: {:.2}", common::load());
}

/// One operator process from nothing to a steady window: the sample, and the window's API
/// requests and Redis commands by kind (per second).
async fn measure(scenario: &Scenario, run: usize) -> (Sample, String, String) {
    let (queues, schedules) = (scenario.queues, scenario.schedules);
    let redis = RedisServer::start();
    let cluster = Cluster::start().await;
    create_resources(&cluster, &redis.url(), scenario).await;
    let mut admin = connect(&redis.url()).await.expect("connect");
    let mut operator = cluster.operator("redis://127.0.0.1:1", &format!("bench-{run}"));
    let pid = operator.pid();
    let started = Instant::now();
    let want_schedules = if schedules { queues } else { 0 };
    // Listing 20,000 objects takes the benchmark's API server a good part of a core: the large
    // row checks every 5 s, so its own checks do not slow the operator it measures.
    wait_for(
        Duration::from_secs(if queues > 1000 { 1800 } else { 300 }),
        Duration::from_secs(if queues > 1000 { 5 } else { 1 }),
        "every JobQueue and Schedule Ready",
        || async {
            cluster.ready_count("JobQueue").await == queues
                && cluster.ready_count("Schedule").await == want_schedules
        },
    )
    .await;
    assert!(operator.running(), "operator exited:\n{}", operator.log());
    let startup = started.elapsed();
    let cpu_ready = common::process_cpu(pid).expect("/proc stat");
    let requests_before = cluster.server.requests().len();
    let calls_before = command_calls(&mut admin).await;
    let work_before = RedisWork::read(&mut admin).await;
    let window = Instant::now();
    tokio::time::sleep(STEADY).await;
    let cpu_end = common::process_cpu(pid).expect("/proc stat");
    let elapsed = window.elapsed().as_secs_f64();
    let work = work_before.per_tick(&RedisWork::read(&mut admin).await, 1);
    let calls_after = command_calls(&mut admin).await;
    let requests = cluster.server.requests();
    assert!(operator.running(), "operator exited:\n{}", operator.log());
    let in_window = &requests[requests_before..];
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in in_window {
        let sub = r
            .subresource
            .as_deref()
            .map_or(String::new(), |s| format!("/{s}"));
        *by_kind
            .entry(format!("{} {}{sub}", r.verb, r.resource))
            .or_default() += 1;
    }
    let api = by_kind
        .iter()
        .map(|(k, n)| format!("{k} {:.1}/s", *n as f64 / elapsed))
        .collect::<Vec<_>>()
        .join(", ");
    let mut commands: Vec<(String, f64)> = calls_after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, n)| {
            (
                name.clone(),
                n - calls_before.get(name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    commands.sort_by(|a, b| b.1.total_cmp(&a.1));
    let redis = commands
        .iter()
        .map(|(name, n)| format!("{} {:.0}/s", name.to_uppercase(), n / elapsed))
        .collect::<Vec<_>>()
        .join(", ");
    let sample = Sample {
        startup_s: startup.as_secs_f64(),
        startup_cpu_s: cpu_ready.as_secs_f64(),
        steady_cpu_pct: 100.0 * (cpu_end - cpu_ready).as_secs_f64() / elapsed,
        peak_rss_mib: common::process_mem_mib(pid, "VmHWM").expect("VmHWM"),
        rss_mib: common::process_mem_mib(pid, "VmRSS").expect("VmRSS"),
        api_per_s: in_window.len() as f64 / elapsed,
        redis_per_s: work.commands / elapsed,
        redis_cpu_ms_per_s: work.cpu_ms / elapsed,
    };
    operator.kill();
    (sample, api, redis)
}

/// `queues` JobQueues with a worker template, and (`schedules`) a Schedule on each firing twice
/// a minute.
async fn create_resources(cluster: &Cluster, redis_url: &str, scenario: &Scenario) {
    for i in 0..scenario.queues {
        cluster
            .create(
                "JobQueue",
                &format!("q{i:05}"),
                json!({
                    "redis": {"url": redis_url},
                    "workers": {"template": {"spec": {"containers": [
                        {"name": "worker", "image": "registry.example/worker:1"}
                    ]}}},
                    "scaling": {"maxReplicas": 4, "pollInterval": "1s"}
                }),
            )
            .await;
        if !scenario.schedules {
            continue;
        }
        let second = i % 30;
        let cron = if scenario.hourly {
            format!("{} {} * * * *", i % 60, (i / 60) % 60)
        } else {
            format!("{second},{} * * * * *", second + 30)
        };
        cluster
            .create(
                "Schedule",
                &format!("s{i:05}"),
                json!({
                    "schedule": cron,
                    "queueRef": {"name": format!("q{i:05}")},
                    "payload": {"n": i}
                }),
            )
            .await;
    }
}

/// Calls per command so far (INFO commandstats, those inside scripts included).
async fn command_calls(admin: &mut jobqueue_operator::queue::RedisConn) -> BTreeMap<String, f64> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .expect("INFO");
    common::calls_by_command(&common::parse_info(&text))
}

//! The demo directory (examples/demo) under `run --local`, with a short cooldown, stabilization
//! window and a schedule firing every second: schedules fire once per run, a burst of 2,000
//! jobs scales the Python workers up to maxReplicas, every job is acknowledged exactly once by
//! a worker, and the workers go back to zero after the cooldown.

use std::collections::BTreeMap;

use jobqueue_test_support::local::*;
use jobqueue_test_support::repo_dir;

const STREAM: &str = "jobqueue:{default/demo}";

fn demo_for_test() -> Vec<(&'static str, String)> {
    let queue = demo_file("jobqueue.yaml");
    let queue = edit(&queue, "cooldown: 20s", "cooldown: 2s");
    let queue = edit(
        &queue,
        "stabilizationWindow: 10s",
        "stabilizationWindow: 2s",
    );
    let queue = edit(&queue, "pollInterval: 500ms", "pollInterval: 200ms");
    let schedule = demo_file("schedule.yaml");
    let schedule = edit(&schedule, "\"0 * * * * *\"", "\"* * * * * *\"");
    let schedule = edit(&schedule, "sleep: 1", "sleep: 0");
    vec![("jobqueue.yaml", queue), ("schedule.yaml", schedule)]
}

/// Acked job ids → how many times each was acknowledged (by any worker).
fn acks(local: &Local) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, job, _) in worker_says(&local.lines(), "demo", "acked") {
        *counts.entry(job).or_insert(0) += 1;
    }
    counts
}

#[test]
fn demo_scales_up_under_a_burst_and_back_to_zero_with_every_job_acked_once() {
    let mut local = Local::start(&demo_for_test());
    local.wait_line("JobQueue default/demo: serving");
    local.wait_line("Schedule default/every-minute: armed");

    schedule_fires_once_per_run(&local);
    let burst_ids = burst_of_2000(&local);
    scaled_up_and_every_job_acked_once(&local, &burst_ids);
    back_to_zero_after_the_cooldown(&local);

    let status = local.terminate();
    assert!(status.success(), "{status:?}");
}

/// A job per second, each acknowledged by a worker started from zero; once suspended, the
/// stream holds one job per run, none missed, doubled or early.
fn schedule_fires_once_per_run(local: &Local) {
    // Schedules: a job per second, each acknowledged by a worker started from zero.
    let fired: Vec<String> = local.wait_for("three scheduled jobs acknowledged", |_| {
        let done: Vec<String> = acks(local)
            .into_keys()
            .filter(|j| j.starts_with("sched-every-minute-"))
            .collect();
        (done.len() >= 3).then_some(done)
    });
    let schedule = local.path("schedule.yaml");
    let text = std::fs::read_to_string(&schedule).unwrap();
    local.write(
        "schedule.yaml",
        &edit(&text, "timeZone: UTC", "timeZone: UTC\n  suspend: true"),
    );
    local.wait_line("Schedule default/every-minute: updated");

    let mut conn = local.conn();
    let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    let mut runs: Vec<(i64, i64)> = entries
        .iter()
        .filter(|(_, f)| f.get("schedule").map(String::as_str) == Some("every-minute"))
        .map(|(entry, f)| {
            let added: i64 = entry.split('-').next().unwrap().parse().unwrap();
            (f["scheduled_for"].parse().unwrap(), added)
        })
        .collect();
    runs.sort();
    assert!(runs.len() >= fired.len(), "{runs:?} vs {fired:?}");
    for pair in runs.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            1000,
            "one job per run, none missed or doubled: {runs:?}"
        );
    }
    for (scheduled_for, added) in &runs {
        assert!(added >= scheduled_for, "fired before its time: {runs:?}");
    }
}

/// 2,000 jobs enqueued by the demo's own producer script; returns their ids.
fn burst_of_2000(local: &Local) -> Vec<String> {
    let mut conn = local.conn();
    // A burst of 2,000 jobs, enqueued by the demo's own producer script.
    let burst = std::process::Command::new(repo_dir().join("target/venv/bin/python"))
        .arg(repo_dir().join("examples/demo/burst.py"))
        .args(["2000", "0.005"])
        .env("REDIS_URL", local.redis.url())
        .output()
        .unwrap();
    assert!(burst.status.success(), "{burst:?}");
    let burst_ids: Vec<String> = {
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg("-")
            .arg("+")
            .query(&mut conn)
            .unwrap();
        entries
            .into_iter()
            .filter(|(_, f)| !f.contains_key("schedule"))
            .map(|(_, f)| f["id"].clone())
            .collect()
    };
    assert_eq!(burst_ids.len(), 2000);
    burst_ids
}

/// Straight to maxReplicas, and every burst job acknowledged exactly once, none dead.
fn scaled_up_and_every_job_acked_once(local: &Local, burst_ids: &[String]) {
    let mut conn = local.conn();
    // From 0 or from the 1 worker the schedule woke, straight to maxReplicas.
    local.wait_for("a scale-up to 4", |lines| {
        lines
            .iter()
            .any(|l| l.text.contains("ScaledUp: scaled ") && l.text.contains(" → 4: "))
            .then_some(())
    });
    local.wait_for("four workers running", |lines| {
        let indexes: std::collections::BTreeSet<u32> =
            started(lines, "demo").into_iter().map(|s| s.0).collect();
        (indexes.len() >= 4).then_some(())
    });
    local.wait_for("every burst job acknowledged", |_| {
        let a = acks(local);
        burst_ids.iter().all(|id| a.contains_key(id)).then_some(())
    });
    let a = acks(local);
    let twice: Vec<_> = a.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "acknowledged more than once: {twice:?}");
    assert_eq!(
        local.count("] lost "),
        0,
        "a job was redelivered while in hand"
    );
    let pending: u64 = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg("workers")
        .query::<(u64, redis::Value, redis::Value, redis::Value)>(&mut conn)
        .unwrap()
        .0;
    assert_eq!(pending, 0);
    let dead: u64 = redis::cmd("XLEN")
        .arg("jobqueue:{default/demo}:dead")
        .query(&mut conn)
        .unwrap();
    assert_eq!(dead, 0);
}

/// Back to zero after the cooldown: every process started has stopped, gracefully.
fn back_to_zero_after_the_cooldown(local: &Local) {
    // Back to zero after the cooldown: every process started has stopped.
    // (N → 0 in one step when the window and the cooldown end together.)
    local.wait_line("ScaledToZero: scaled ");
    // The operator prints a worker's "stopped" line after reaping it: wait for the lines.
    local.wait_for("a stopped line for every worker started", |lines| {
        let stopped = lines
            .iter()
            .filter(|l| l.text.starts_with("[demo#") && l.text.contains("] stopped ("))
            .count();
        (stopped == started(lines, "demo").len()).then_some(())
    });
    let starts = started(&local.lines(), "demo");
    assert!(starts.iter().all(|(_, pid, _)| !alive(*pid)));
    assert_eq!(
        local.count("] stopped (exit code 0)"),
        starts.len(),
        "each worker stopped gracefully on SIGTERM"
    );
}

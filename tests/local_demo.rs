//! The demo directory (examples/demo) under `run --local` as a newcomer runs it: no `--redis`,
//! no `REDIS_URL` and nothing answering at the default URL, so the operator starts a private
//! redis-server. With a short cooldown, stabilization window and a schedule firing every
//! second: schedules fire once per run, a burst of 2,000 jobs made with `enqueue --count`
//! scales the `work` workers up to maxReplicas, every job is acknowledged exactly once by a
//! worker, the workers go back to zero after the cooldown, and after SIGTERM the private
//! redis-server is gone.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use jobqueue_test_support::local::{
    DEADLINE, Line, LocalRun, alive, demo_file, edit, started, worker_says,
};
use jobqueue_test_support::wait::blocking;
use jobqueue_test_support::{operator_binary, without_operator_env};

const STREAM: &str = "jobqueue:{default/demo}";

/// `run --local` on a directory with no Redis named: the default URL (the hidden
/// `JOBQUEUE_DEFAULT_REDIS`) is a loopback port held by a listener that never answers, so the
/// Redis on this machine's 6379, if any, is never touched.
struct Demo {
    run: LocalRun,
    _silent: TcpListener,
    /// The private Redis the operator printed, and its pid.
    redis_url: String,
    redis_pid: u32,
}

impl std::ops::Deref for Demo {
    type Target = LocalRun;
    fn deref(&self) -> &LocalRun {
        &self.run
    }
}

impl std::ops::DerefMut for Demo {
    fn deref_mut(&mut self) -> &mut LocalRun {
        &mut self.run
    }
}

impl Demo {
    fn start(files: &[(&str, String)], extra: &[&str]) -> Demo {
        let silent = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let default = format!("redis://{}", silent.local_addr().unwrap());
        let run = LocalRun::spawn(files, extra, &[("JOBQUEUE_DEFAULT_REDIS", default.clone())]);
        let mut demo = Demo {
            run,
            _silent: silent,
            redis_url: String::new(),
            redis_pid: 0,
        };
        if extra.is_empty() {
            let line = demo.wait_line("started a private redis-server (pid ");
            let (pid, url) = private_redis(&line).unwrap_or_else(|| panic!("{line}"));
            assert!(
                line.contains(&format!("nothing answers at {default}")),
                "{line}"
            );
            (demo.redis_pid, demo.redis_url) = (pid, url);
        }
        demo
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.redis_url.as_str())
            .expect("redis url")
            .get_connection()
            .expect("connect to the private redis")
    }
}

/// (pid, url) from "... started a private redis-server (pid P) at URL for this run ...".
fn private_redis(line: &str) -> Option<(u32, String)> {
    let rest = line.split_once("(pid ")?.1;
    let (pid, rest) = rest.split_once(") at ")?;
    let url = rest.split_whitespace().next()?;
    Some((pid.parse().ok()?, url.to_string()))
}

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
    let schedule = edit(&schedule, "sleep_ms: 1000", "sleep_ms: 0");
    vec![("jobqueue.yaml", queue), ("schedule.yaml", schedule)]
}

/// Acked job ids → how many times each was acknowledged (by any worker): the `work` command's
/// "job settled job=ID state=succeeded attempt=N" log lines.
fn acks(local: &Demo) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, job, _) in worker_says(&settled(&local.lines()), "demo", "succeeded") {
        *counts.entry(job).or_insert(0) += 1;
    }
    counts
}

/// Settled-job log lines rewritten as `[demo#i] <state> <job id> attempt <n>`, the shape
/// [`worker_says`] reads.
fn settled(lines: &[Line]) -> Vec<Line> {
    lines
        .iter()
        .filter_map(|l| {
            let (prefix, rest) = l.text.split_once("] ")?;
            let rest = rest.split_once("job settled ")?.1;
            let field = |name: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            };
            Some(Line {
                stderr: l.stderr,
                text: format!(
                    "{prefix}] {} {} attempt {}",
                    field("state")?,
                    field("job")?,
                    field("attempt")?
                ),
            })
        })
        .collect()
}

#[test]
fn demo_scales_up_under_a_burst_and_back_to_zero_with_every_job_acked_once() {
    let mut local = Demo::start(&demo_for_test(), &[]);
    local.wait_line("JobQueue default/demo: serving");
    local.wait_line("Schedule default/every-minute: armed");

    schedule_fires_once_per_run(&local);
    let burst_ids = burst_of_2000(&local);
    scaled_up_and_every_job_acked_once(&local, &burst_ids);
    back_to_zero_after_the_cooldown(&local);

    let status = local.terminate();
    assert!(status.success(), "{status:?}");
    private_redis_is_gone(&local);
}

/// After the operator stops, its redis-server process is gone and its port does not answer.
fn private_redis_is_gone(local: &Demo) {
    local.wait_line("stopped the private redis-server");
    blocking(DEADLINE, "the private redis-server to exit", || {
        (!alive(local.redis_pid)).then_some(())
    });
    let answered = redis::Client::open(local.redis_url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .is_ok();
    assert!(!answered, "{} still answers", local.redis_url);
}

#[test]
fn a_named_redis_that_does_not_answer_is_retried_not_replaced() {
    let url = "redis://127.0.0.1:1";
    let mut local = Demo::start(&demo_for_test(), &["--redis", url]);
    local.wait_line(&format!("redis: {url}"));
    local.wait_line("Redis at redis://127.0.0.1:1 is not reachable");
    assert_eq!(local.count("private redis-server"), 0, "{}", local.output());
    let status = local.terminate();
    assert!(status.success(), "{status:?}");
}

/// A job per second, each acknowledged by a worker started from zero; once suspended, the
/// stream holds one job per run, none missed, doubled or early.
fn schedule_fires_once_per_run(local: &Demo) {
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

/// 2,000 jobs enqueued with `enqueue --count` at the URL the operator printed; returns their ids.
fn burst_of_2000(local: &Demo) -> Vec<String> {
    let mut conn = local.conn();
    let mut cmd = Command::new(operator_binary());
    let burst = without_operator_env(&mut cmd)
        .arg("enqueue")
        .arg("-f")
        .arg(local.path("jobqueue.yaml"))
        .args([r#"{"sleep_ms": 5}"#, "--count", "2000", "--redis"])
        .arg(&local.redis_url)
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert!(burst.status.success(), "{burst:?}");
    let said = String::from_utf8_lossy(&burst.stdout);
    assert!(said.starts_with("enqueued 2000 jobs: first "), "{said}");
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
fn scaled_up_and_every_job_acked_once(local: &Demo, burst_ids: &[String]) {
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
        local.count("job was handed to another worker"),
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
fn back_to_zero_after_the_cooldown(local: &Demo) {
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

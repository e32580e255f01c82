//! `jobqueue-operator work` as a real process against a private Redis: jobs run as a command
//! (payload on stdin, result on stdout, progress on stderr), failures retry and go dead,
//! cancelled jobs never run, `job wait` follows them, and a worker killed with SIGKILL loses
//! nothing: its job is handed over with the next attempt and succeeds once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::jobs::{
    JobRecord, JobSettings, JobState, ensure_library, get_job, store_settings,
};
use jobqueue_operator::queue::{Backoff, QueueConfig};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::Topology;
use jobqueue_test_support::wait::eventually;
use jobqueue_test_support::without_operator_env;
use serde_json::json;

const STREAM: &str = "jobqueue:{shop/render}";
const WAIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_jobqueue-operator");

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    without_operator_env(&mut cmd);
    for var in ["JOBQUEUE_STREAM", "JOBQUEUE_GROUP", "JOBQUEUE_CONSUMER"] {
        cmd.env_remove(var);
    }
    cmd.args(args);
    cmd
}

fn cli(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jobqueue-operator")
    })
}

/// A running `work` process; killed when dropped. Its log goes to a file in `dir`.
struct Work {
    child: Child,
    log: PathBuf,
}

impl Work {
    fn start(url: &str, dir: &Path, consumer: &str, extra: &[&str], script: &str) -> Work {
        let log = dir.join(format!("{consumer}.log"));
        let mut args = vec!["work", "--redis", url, STREAM, "--consumer", consumer];
        args.extend(extra);
        args.extend(["--", "sh", "-c", script]);
        let child = command(&args)
            .env("DIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start work");
        Work { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tracked(t: Topology, tweak: impl FnOnce(&mut QueueConfig)) -> Fixture {
    let mut f = queue(t, STREAM, tweak).await;
    store_settings(&mut f.conn, &f.cfg, &JobSettings::default())
        .await
        .unwrap();
    ensure_library(&mut f.conn).await.unwrap();
    f
}

fn enqueue_cli(url: &str, payload: &str) -> String {
    let out = cli(&["enqueue", "--redis", url, STREAM, payload]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Polls the record of `id` until `pred` holds (bounded).
async fn record_when(
    f: &Fixture,
    id: &str,
    what: &str,
    pred: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    let (conn, cfg) = (f.conn.clone(), f.cfg.clone());
    eventually(WAIT, what, || {
        let (mut conn, cfg) = (conn.clone(), cfg.clone());
        let pred = &pred;
        async move {
            get_job(&mut conn, &cfg.keys, &cfg.group, id)
                .await
                .unwrap()
                .filter(|r| pred(r))
        }
    })
    .await
}

/// The states of job `id`'s events, oldest first (progress events left out).
async fn states(f: &mut Fixture, id: &str) -> Vec<String> {
    entries(&mut f.conn, &f.cfg.keys.events())
        .await
        .into_iter()
        .filter(|e| e.field("job") == id && !e.fields.contains_key("progress"))
        .map(|e| e.field("state").to_string())
        .collect()
}

on_both_topologies!(
    work_runs_a_job_with_progress_and_result,
    a_sigkilled_worker_loses_nothing,
);

async fn work_runs_a_job_with_progress_and_result(t: Topology) {
    let mut f = tracked(t, |_| {}).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let id = enqueue_cli(&url, r#"{"n":1}"#);
    let queued = record_when(&f, &id, "queued", |r| r.state == JobState::Queued).await;
    assert_eq!(queued.attempt, 1);
    let script = r#"p=$(cat); echo 'JOBQUEUE_PROGRESS {"step":1}' >&2
        while [ ! -e "$DIR/go" ]; do sleep 0.02; done
        echo "{\"got\":$p,\"id\":\"$JOBQUEUE_JOB_ID\",\"attempt\":$JOBQUEUE_ATTEMPT}""#;
    let work = Work::start(&url, dir.path(), "w1", &[], script);
    let active = record_when(&f, &id, "active with progress", |r| {
        r.state == JobState::Active && r.progress.is_some()
    })
    .await;
    assert_eq!(active.progress, Some(json!({"step": 1})));
    assert_eq!(active.consumer.as_deref(), Some("w1"));
    // `job wait` started while the job runs returns once it ends.
    let waiter = command(&["job", "wait", "--redis", &url, STREAM, &id, "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let out = tokio::task::block_in_place(|| waiter.wait_with_output().unwrap());
    assert!(out.status.success(), "{out:?}\n{}", work.log());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["state"], "succeeded");
    assert_eq!(
        json["result"],
        json!({"got": {"n": 1}, "id": id, "attempt": 1})
    );
    assert_eq!(states(&mut f, &id).await, ["queued", "active", "succeeded"]);
}

async fn a_sigkilled_worker_loses_nothing(t: Topology) {
    let mut f = tracked(t, |_| {}).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let script = r#"echo "$JOBQUEUE_ATTEMPT" >> "$DIR/runs"
        while [ -e "$DIR/hold" ]; do sleep 0.02; done; echo '"done"'"#;
    let mut first = Work::start(&url, dir.path(), "doomed", &[], script);
    let id = enqueue_cli(&url, "{}");
    record_when(&f, &id, "active", |r| r.state == JobState::Active).await;
    // The record turns active before the command is spawned: kill only once it really runs.
    let runs = dir.path().join("runs");
    eventually(WAIT, "the first run to start", || {
        let seen = std::fs::read_to_string(&runs).unwrap_or_default();
        async move { (seen == "1\n").then_some(()).ok_or(seen) }
    })
    .await;
    first.child.kill().unwrap(); // SIGKILL: no chance to settle anything
    first.child.wait().unwrap();
    let rec = record_when(&f, &id, "still active", |_| true).await;
    assert_eq!(
        (rec.state, rec.attempt),
        (JobState::Active, 1),
        "held by the dead worker"
    );

    // The hand-over the operator makes when the worker's pod is gone.
    let cfg = f.cfg.clone();
    let r = janitor::reclaim_consumer(&mut f.conn, &cfg, "doomed", &JanitorOptions::default())
        .await
        .unwrap();
    assert_eq!(r.retried, 1);
    let rec = record_when(&f, &id, "queued again", |_| true).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Queued, 2));

    std::fs::remove_file(&hold).unwrap(); // lets the orphaned first run end too
    let second = Work::start(&url, dir.path(), "heir", &[], script);
    let done = record_when(&f, &id, "succeeded", |r| r.state == JobState::Succeeded).await;
    assert_eq!(done.attempt, 2, "{}", second.log());
    assert_eq!(done.result, Some(json!("done")));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "1\n2\n");
    let states = states(&mut f, &id).await;
    assert_eq!(
        states.iter().filter(|s| *s == "succeeded").count(),
        1,
        "{states:?}"
    );
    assert!(entries(&mut f.conn, &f.cfg.dead_letter).await.is_empty());
    assert_eq!(pending(&mut f.conn, &f.cfg).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_retries_with_backoff_then_goes_dead() {
    let backoff = Backoff {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(1),
        multiplier: 1.0,
    };
    let f = tracked(Topology::Single, |c| {
        c.max_deliveries = 2;
        c.backoff = Some(backoff);
    })
    .await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let id = enqueue_cli(&url, "{}");
    let script = r#"echo "attempt $JOBQUEUE_ATTEMPT: disk full" >&2; exit 1"#;
    let work = Work::start(&url, dir.path(), "w1", &[], script);
    let retrying = record_when(&f, &id, "retrying", |r| r.state == JobState::Retrying).await;
    assert_eq!(retrying.attempt, 2);
    let err = retrying.error.unwrap();
    assert!(
        err.contains("exit code 1") && err.contains("attempt 1: disk full"),
        "{err}"
    );
    // The janitor (the operator's job) promotes the retry when its backoff is over.
    let (conn, cfg) = (f.conn.clone(), f.cfg.clone());
    let dead = eventually(WAIT, "the job to go dead", || {
        let (mut conn, cfg) = (conn.clone(), cfg.clone());
        let id = id.clone();
        async move {
            janitor::promote_due(&mut conn, &cfg, &JanitorOptions::default())
                .await
                .unwrap();
            get_job(&mut conn, &cfg.keys, &cfg.group, &id)
                .await
                .unwrap()
                .filter(|r| r.state == JobState::Dead)
        }
    })
    .await;
    assert_eq!(dead.attempt, 2, "{}", work.log());
    assert!(dead.error.unwrap().contains("attempt 2: disk full"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_or_a_timeout_ends_the_job() {
    let f = tracked(Topology::Single, |c| c.max_deliveries = 1).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let bad = enqueue_cli(&url, r#"{"kind":"bad"}"#);
    let slow = enqueue_cli(&url, r#"{"kind":"slow"}"#);
    let script = r#"case "$(cat)" in
        *bad*) echo "payload rejected" >&2; exit 65 ;;
        *) while true; do sleep 0.02; done ;;
        esac"#;
    let work = Work::start(&url, dir.path(), "w1", &["--timeout", "300ms"], script);
    let rec = record_when(&f, &bad, "dead", |r| r.state == JobState::Dead).await;
    assert_eq!(rec.attempt, 1);
    assert!(rec.error.unwrap().contains("payload rejected"));
    let rec = record_when(&f, &slow, "dead", |r| r.state == JobState::Dead).await;
    let err = rec.error.unwrap();
    assert!(err.contains("timed out"), "{err}\n{}", work.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_never_runs_and_sigterm_drains() {
    let f = tracked(Topology::Single, |_| {}).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    let cancelled = enqueue_cli(&url, "{}");
    let out = cli(&["job", "cancel", "--redis", &url, STREAM, &cancelled]);
    assert!(out.status.success(), "{out:?}");
    let kept = enqueue_cli(&url, "{}");
    let hold = dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let script = r#"echo "$JOBQUEUE_JOB_ID" >> "$DIR/ran"
        while [ -e "$DIR/hold" ]; do sleep 0.02; done"#;
    let mut work = Work::start(&url, dir.path(), "w1", &[], script);
    record_when(&f, &kept, "active", |r| r.state == JobState::Active).await;
    // SIGTERM: the running job is finished, then the worker exits cleanly.
    let pid = libc::pid_t::try_from(work.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::fs::remove_file(&hold).unwrap();
    let status = tokio::task::block_in_place(|| work.child.wait().unwrap());
    assert!(status.success(), "{status:?}\n{}", work.log());
    let rec = record_when(&f, &kept, "succeeded", |_| true).await;
    assert_eq!(rec.state, JobState::Succeeded);
    let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
    assert_eq!(ran.trim(), kept, "the cancelled job never ran");
    let rec = record_when(&f, &cancelled, "cancelled", |_| true).await;
    assert_eq!(rec.state, JobState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_on_a_missing_queue_fails_with_one_line() {
    let f = tracked(Topology::Single, |_| {}).await;
    let url = f.redis.url();
    let out = cli(&[
        "work",
        "--redis",
        &url,
        "jobqueue:{shop/typo}",
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_names_the_queue_for_work_and_job() {
    let stream = "jobqueue:{team-a/emails}";
    let mut f = queue(Topology::Single, stream, |c| c.group = "mailers".into()).await;
    store_settings(&mut f.conn, &f.cfg, &JobSettings::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("jq.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata:\n  name: emails\n  namespace: team-a\n\
             spec:\n  redis:\n    url: {}\n  consumerGroup: mailers\n",
            f.redis.url()
        ),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let out = cli(&["enqueue", "-f", m, r#"{"to":"x"}"#]);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut work = command(&["work", "-f", m, "--", "sh", "-c", "cat"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = cli(&[
        "job",
        "wait",
        "-f",
        m,
        &id,
        "--timeout",
        "30s",
        "-o",
        "json",
    ]);
    let _ = work.kill();
    let _ = work.wait();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["result"],
        json!({"to": "x"}),
        "the payload echoed back"
    );
    let out = cli(&["job", "get", "-f", m, &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("state: succeeded"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_takes_its_queue_from_the_environment_a_worker_pod_gets() {
    let f = queue(Topology::Single, STREAM, |c| c.group = "renderers".into()).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hold"), "").unwrap();
    let id = enqueue_cli(&url, "{}");
    let mut work = command(&["work", "--", "sh", "-c"])
        .arg(r#"while [ -e "$DIR/hold" ]; do sleep 0.02; done"#)
        .env("DIR", dir.path())
        .env("REDIS_URL", &url)
        .env("JOBQUEUE_STREAM", STREAM)
        .env("JOBQUEUE_GROUP", "renderers")
        .env("JOBQUEUE_CONSUMER", "render-7f9c")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rec = record_when(&f, &id, "active", |r| r.state == JobState::Active).await;
    assert_eq!(rec.consumer.as_deref(), Some("render-7f9c"));
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    record_when(&f, &id, "succeeded", |r| r.state == JobState::Succeeded).await;
    let _ = work.kill();
    let _ = work.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_runs_jobs_side_by_side() {
    let f = tracked(Topology::Single, |_| {}).await;
    let url = f.redis.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hold"), "").unwrap();
    let ids = [enqueue_cli(&url, "{}"), enqueue_cli(&url, "{}")];
    let script = r#"while [ -e "$DIR/hold" ]; do sleep 0.02; done"#;
    let work = Work::start(&url, dir.path(), "w1", &["--concurrency", "2"], script);
    for id in &ids {
        record_when(&f, id, "both active at once", |r| {
            r.state == JobState::Active
        })
        .await;
    }
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    for id in &ids {
        let rec = record_when(&f, id, "succeeded", |r| r.state.is_final()).await;
        assert_eq!(rec.state, JobState::Succeeded, "{}", work.log());
    }
}

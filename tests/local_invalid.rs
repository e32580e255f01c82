//! Bad input to `run --local`: a manifest with a bad field is named (file, resource, field)
//! and the other resources keep running; an invalid edit keeps the last valid version; a bad
//! path or Redis URL is a one-line error; an unreachable Redis gets one hint line and a retry.

mod local_common;

use jobqueue_test_support::redis::RedisServer;
use local_common::*;

fn queue(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: {name}
spec:
  delivery:
    maxDeliveries: 3{extra}
  workers:
    template:
      spec:
        containers:
          - name: worker
            command: [python3, worker.py]
"
    )
}

const BAD: &str = "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: broken
spec:
  workers:
    scaleTargetRef: {name: mailer}
  scaling:
    maxReplicas: 2
    metric: Fast
---
apiVersion: jobqueue.io/v1alpha1
kind: Schedule
metadata:
  name: nightly
spec:
  schedule: \"61 * * * *\"
  queueRef: {name: good}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
";

#[test]
fn a_bad_field_is_named_and_the_other_resources_keep_running() {
    let local = Local::start(&[
        ("bad.yaml", BAD.to_string()),
        ("good.yaml", queue("good", "")),
    ]);
    let bad = local.path("bad.yaml").display().to_string();
    let line = local.wait_line("JobQueue default/broken: spec.scaling.metric");
    assert_eq!(
        line,
        format!(
            "error: {bad}: JobQueue default/broken: spec.scaling.metric: Unsupported value: \"Fast\": supported values: \"Backlog\", \"Lag\", \"Pending\""
        )
    );
    let line = local.wait_line("Schedule default/nightly");
    assert!(
        line.starts_with(&format!(
            "error: {bad}: Schedule default/nightly: spec.schedule: Invalid value: \"61 * * * *\""
        )),
        "{line}"
    );
    local.wait_line(&format!("note: {bad}: ignored ConfigMap default/settings"));

    // The valid queue runs: a job is processed by its worker.
    local.wait_line("JobQueue default/good: serving");
    let mut conn = local.conn();
    enqueue(&mut conn, "jobqueue:{default/good}", "job-1", "{}");
    local.wait_line("acked job-1 attempt 1");
    let broken: bool = redis::cmd("EXISTS")
        .arg("jobqueue:{default/broken}")
        .query(&mut conn)
        .unwrap();
    assert!(!broken, "an invalid queue is not provisioned");

    // An invalid edit of the running queue: named, and the last valid version keeps running.
    local.write("good.yaml", &queue("good", "\n    visibilityTimeout: 0s"));
    let line = local.wait_line("spec.delivery.visibilityTimeout");
    let good = local.path("good.yaml").display().to_string();
    assert!(
        line.starts_with(&format!(
            "error: {good}: JobQueue default/good: spec.delivery.visibilityTimeout"
        )),
        "{line}"
    );
    local.wait_line("note: JobQueue default/good: keeps running its last valid version");
    enqueue(&mut conn, "jobqueue:{default/good}", "job-2", "{}");
    local.wait_line("acked job-2 attempt 1");
    assert_eq!(local.count("JobQueue default/good: updated"), 0);

    // Fixing the file applies it.
    local.write("good.yaml", &queue("good", "\n    visibilityTimeout: 30s"));
    local.wait_line("JobQueue default/good: updated");
}

#[test]
fn an_unreachable_redis_gets_one_hint_and_is_retried() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.kill();
    let mut local = Local::start_with(redis, &[("good.yaml", queue("good", ""))], &[]);
    let hint = local.wait_line("is not reachable");
    assert!(
        hint.contains(&format!(
            "Start one with: redis-server --port {port} --save '' --daemonize yes"
        )),
        "{hint}"
    );
    local.redis.restart();
    local.wait_line(&format!("Redis at redis://127.0.0.1:{port} is reachable"));
    local.wait_line("JobQueue default/good: serving");
    assert_eq!(
        local.count("is not reachable"),
        1,
        "the hint is printed once"
    );
    let mut conn = local.conn();
    enqueue(&mut conn, "jobqueue:{default/good}", "job-1", "{}");
    local.wait_line("acked job-1 attempt 1");
    assert!(local.terminate().success());
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "--local",
            "/nonexistent/manifests",
            "--metrics-addr",
            "off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: --local /nonexistent/manifests: No such file or directory"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--local"])
        .arg(dir.path())
        .args(["--redis", "http://localhost", "--metrics-addr", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: --redis: Invalid value: \"http://localhost\""),
        "{err}"
    );
}

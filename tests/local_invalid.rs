//! Bad input to `run --local`: a manifest with a bad field is named (file, resource, field)
//! and the other resources keep running; an invalid edit keeps the last valid version; a bad
//! path or Redis URL is a one-line error; an unreachable Redis gets one hint line and a retry.

use jobqueue_test_support::local::*;
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::{operator_binary, repo_dir};

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
    let out = std::process::Command::new(operator_binary())
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
    let out = std::process::Command::new(operator_binary())
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

#[test]
fn cluster_only_parts_are_explained_and_the_queue_is_still_served() {
    let external = "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: external
spec:
  workers:
    scaleTargetRef: {name: mailer}
  scaling: {maxReplicas: 3}
";
    let quickstart = |name: &str| {
        std::fs::read_to_string(repo_dir().join("examples/quickstart").join(name)).unwrap()
    };
    let local = Local::start(&[
        ("external.yaml", external.to_string()),
        (
            "missing.yaml",
            queue("missing", "").replace("[python3, worker.py]", "[no-such-program-7f3a]"),
        ),
        ("quickstart-queue.yaml", quickstart("jobqueue.yaml")),
        ("quickstart-schedule.yaml", quickstart("schedule.yaml")),
    ]);
    let line = local.wait_line("JobQueue default/external: serving");
    assert!(
        line.ends_with("no local workers: workers.scaleTargetRef (Deployment mailer) is a cluster workload, which cannot be scaled locally"),
        "{line}"
    );
    // The quickstart as kept for a cluster: the Secret is ignored, the URL comes from --redis,
    // the image's entrypoint cannot run here, and its schedule is armed.
    local.wait_line("ignored Secret default/redis");
    local.wait_line("JobQueue default/emails: spec.redis.urlSecretRef names a Kubernetes Secret");
    let line = local.wait_line("JobQueue default/emails: serving");
    assert!(
        line.contains(
            "no local workers: spec.workers.template.spec.containers[0].command: Required value"
        ),
        "{line}"
    );
    local.wait_line("Schedule default/daily-digest: armed");
    // A command that does not exist: said, and retried with backoff.
    let line = local.wait_line("[missing#0] cannot start");
    assert!(line.contains("no-such-program-7f3a"), "{line}");
    local.wait_for("a second attempt", |lines| {
        (lines
            .iter()
            .filter(|l| l.text.contains("[missing#0] cannot start"))
            .count()
            >= 2)
            .then_some(())
    });
}

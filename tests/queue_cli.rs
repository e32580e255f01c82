//! The queue commands of the real `jobqueue-operator` binary against a private Redis (and a
//! three-node Cluster): enqueue, inspect, dead-letter list/replay/purge, the hidden janitor,
//! and bad input that must fail with one line and write nothing.

use jobqueue_test_support::without_operator_env;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jobqueue_operator::queue::provision::provision;
use jobqueue_operator::queue::{QueueConfig, RedisConn, connect};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::{TestRedis, Topology};
use jobqueue_test_support::wait::eventually;

const STREAM: &str = "jobqueue:{shop/orders}";

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    tokio::task::block_in_place(|| {
        let mut child =
            without_operator_env(&mut Command::new(env!("CARGO_BIN_EXE_jobqueue-operator")))
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run jobqueue-operator");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The one-line error of a failed command.
fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

async fn dbsize(redis: &TestRedis) -> u64 {
    // On a Cluster DBSIZE goes to every primary and the counts are summed.
    let mut conn = connect(&redis.url()).await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

async fn provisioned(t: Topology) -> (TestRedis, RedisConn, QueueConfig) {
    let redis = TestRedis::start(t);
    let mut conn = connect(&redis.url()).await.unwrap();
    let cfg = QueueConfig::new(STREAM);
    provision(&mut conn, &cfg, false).await.unwrap();
    (redis, conn, cfg)
}

on_both_topologies!(
    failed_job_goes_to_dead_letters_and_replays_exactly_once,
    enqueue_options_and_inspect
);

async fn failed_job_goes_to_dead_letters_and_replays_exactly_once(t: Topology) {
    let (redis, mut conn, cfg) = provisioned(t).await;
    let url = redis.url();
    let job_id = ok(&cli(
        &["enqueue", "--redis", &url, STREAM, r#"{"order": 7}"#],
        None,
    ))
    .trim()
    .to_string();
    assert_eq!(job_id.len(), 36, "a UUID alone on stdout: {job_id:?}");
    let janitor = [
        "janitor",
        "--redis",
        &url,
        STREAM,
        "--once",
        "--visibility-timeout",
        "50ms",
        "--max-deliveries",
        "2",
    ];
    for attempt in 1..=2 {
        let got = read(&mut conn, &cfg, &format!("worker-{attempt}"), 10, None).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].job_id(), got[0].attempt()),
            (job_id.as_str(), attempt)
        );
        // Never acknowledged: the janitor hands it out again, then dead-letters it.
        let c = conn.clone();
        let cfg2 = cfg.clone();
        eventually(
            Duration::from_secs(30),
            "the janitor to reclaim the job",
            || {
                let (mut c, cfg2) = (c.clone(), cfg2.clone());
                async move {
                    ok(&cli(&janitor, None));
                    (pending(&mut c, &cfg2).await == 0).then_some(())
                }
            },
        )
        .await;
    }
    let list: serde_json::Value = serde_json::from_str(&ok(&cli(
        &["dead-letter", "list", "--redis", &url, STREAM, "-o", "json"],
        None,
    )))
    .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let f = &list[0]["fields"];
    assert_eq!(f["id"], job_id.as_str());
    assert_eq!(f["reason"], "max_deliveries_exceeded");
    assert_eq!(f["last_failure"], "visibility_timeout");
    assert_eq!(f["last_consumer"], "worker-2");
    assert_eq!(f["attempt"], "2");
    let table = ok(&cli(
        &["dead-letter", "list", "--redis", &url, STREAM],
        None,
    ));
    assert!(
        table.contains(&job_id) && table.contains("worker-2"),
        "{table}"
    );

    let out = ok(&cli(
        &["dead-letter", "replay", "--redis", &url, STREAM],
        None,
    ));
    assert!(out.contains("replayed 1 "), "{out}");
    let out = ok(&cli(
        &["dead-letter", "replay", "--redis", &url, STREAM],
        None,
    ));
    assert!(out.contains("replayed 0 "), "exactly once: {out}");
    let got = read(&mut conn, &cfg, "worker-3", 10, None).await;
    assert_eq!(got.len(), 1, "the job is back once");
    assert_eq!((got[0].job_id(), got[0].attempt()), (job_id.as_str(), 1));
    assert!(ack(&mut conn, &cfg, &got[0].entry_id).await);

    // Purge needs --yes; without it nothing is deleted.
    let () = redis::cmd("XADD")
        .arg(&cfg.dead_letter)
        .arg("*")
        .arg("id")
        .arg("x")
        .arg("payload")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .map(|_: String| ())
        .unwrap();
    let err = fails(&cli(
        &["dead-letter", "purge", "--redis", &url, STREAM],
        None,
    ));
    assert!(err.contains("--yes"), "{err}");
    let n: u64 = redis::cmd("XLEN")
        .arg(&cfg.dead_letter)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let out = ok(&cli(
        &["dead-letter", "purge", "--redis", &url, STREAM, "--yes"],
        None,
    ));
    assert!(out.contains("purged 1 "), "{out}");
}

async fn enqueue_options_and_inspect(t: Topology) {
    let (redis, mut conn, cfg) = provisioned(t).await;
    let url = redis.url();
    let a = ok(&cli(
        &[
            "enqueue",
            "--redis",
            &url,
            STREAM,
            "-",
            "--idempotency-key",
            "k1",
        ],
        Some(r#"{"from":"stdin"}"#),
    ));
    let b = ok(&cli(
        &[
            "enqueue",
            "--redis",
            &url,
            STREAM,
            r#"{"other":1}"#,
            "--idempotency-key",
            "k1",
        ],
        None,
    ));
    assert_eq!(a, b, "same key, same job id");
    ok(&cli(
        &["enqueue", "--redis", &url, STREAM, "[1,2]", "--delay", "1h"],
        None,
    ));
    ok(&cli(
        &[
            "enqueue",
            "--redis",
            &url,
            STREAM,
            "\"s\"",
            "--at",
            "2999-01-01T00:00:00Z",
        ],
        None,
    ));
    ok(&cli(&["enqueue", "--redis", &url, STREAM], None));
    let got = read(&mut conn, &cfg, "pod-1", 1, None).await;
    assert_eq!(got[0].field("payload"), r#"{"from":"stdin"}"#);

    let json: serde_json::Value = serde_json::from_str(&ok(&cli(
        &["inspect", "--redis", &url, STREAM, "-o", "json"],
        None,
    )))
    .unwrap();
    for key in [
        "length",
        "lag",
        "pending",
        "oldestPendingAge",
        "consumers",
        "delayed",
        "deadLetterLength",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["length"], 2);
    assert_eq!(json["lag"], 1);
    assert_eq!(json["pending"], 1);
    assert_eq!(json["delayed"], 2);
    assert_eq!(json["deadLetterLength"], 0);
    assert_eq!(json["consumers"][0]["name"], "pod-1");
    assert_eq!(json["consumers"][0]["pending"], 1);
    assert!(json["consumers"][0]["idle"].is_string());
    assert!(json["oldestPendingAge"].is_string());
    let table = ok(&cli(&["inspect", "--redis", &url, STREAM], None));
    assert!(
        table.contains("pod-1") && table.contains("DELAYED"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_supplies_stream_group_and_url() {
    let redis = TestRedis::start(Topology::Single);
    let mut conn = connect(&redis.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jq.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata:\n  name: emails\n  namespace: team-a\n\
             spec:\n  redis:\n    url: {}\n  consumerGroup: mailers\n",
            redis.url()
        ),
    )
    .unwrap();
    let mut cfg = QueueConfig::new("jobqueue:{team-a/emails}");
    cfg.group = "mailers".into();
    provision(&mut conn, &cfg, false).await.unwrap();
    let p = path.to_str().unwrap();
    let id = ok(&cli(&["enqueue", "-f", p, r#"{"x":1}"#], None));
    let got = read(&mut conn, &cfg, "m", 10, None).await;
    assert_eq!(got[0].job_id(), id.trim());
    let json: serde_json::Value =
        serde_json::from_str(&ok(&cli(&["inspect", "-f", p, "-o", "json"], None))).unwrap();
    assert_eq!(json["consumerGroup"], "mailers");
    assert_eq!(json["pending"], 1);
    let err = fails(&cli(&["inspect", "-f", p, "jobqueue:{x}"], None));
    assert!(err.contains("either STREAM"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_count_adds_that_many_jobs_each_its_own_id() {
    let (redis, mut conn, _cfg) = provisioned(Topology::Single).await;
    let url = redis.url();
    let said = ok(&cli(
        &[
            "enqueue",
            "--redis",
            &url,
            STREAM,
            r#"{"sleep_ms":5}"#,
            "--count",
            "450",
        ],
        None,
    ));
    let entries: Vec<(String, std::collections::BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), 450);
    let ids: std::collections::BTreeSet<&str> =
        entries.iter().map(|(_, f)| f["id"].as_str()).collect();
    assert_eq!(ids.len(), 450, "every job its own id");
    assert!(
        entries
            .iter()
            .all(|(_, f)| f["payload"] == r#"{"sleep_ms":5}"#)
    );
    let (first, last) = (&entries[0].1["id"], &entries[449].1["id"]);
    assert!(said.starts_with("enqueued 450 jobs: first "), "{said}");
    assert!(
        said.contains(first.as_str()) && said.contains(last.as_str()),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_one_line_and_writes_nothing() {
    let (redis, _conn, _cfg) = provisioned(Topology::Single).await;
    let url = redis.url();
    let before = dbsize(&redis).await;
    // Port 1 (tcpmux) is privileged and unused: nothing a concurrent test starts can take it.
    let dead_url = "redis://127.0.0.1:1".to_string();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["enqueue", "--redis", &url, "jobqueue:{shop/typo}", "{}"],
            "stream \"jobqueue:{shop/typo}\" does not exist",
        ),
        (
            vec!["enqueue", "--redis", &url, STREAM, "{not json"],
            "PAYLOAD is not valid JSON",
        ),
        (
            vec!["enqueue", "--redis", &url, STREAM, "{}", "--delay", "soon"],
            "--delay: invalid duration \"soon\"",
        ),
        (
            vec!["enqueue", "--redis", &url, STREAM, "{}", "--at", "tomorrow"],
            "--at: \"tomorrow\" is not an RFC 3339 time",
        ),
        (
            vec![
                "enqueue",
                "--redis",
                &url,
                STREAM,
                "{}",
                "--idempotency-key",
                "",
            ],
            "--idempotency-key must not be empty",
        ),
        (
            vec!["enqueue", "--redis", "http://localhost:6379", STREAM, "{}"],
            "invalid Redis URL \"http://localhost:6379\": unsupported scheme",
        ),
        (
            vec!["enqueue", "--redis", "redis://:hunter2@[bad", STREAM, "{}"],
            "invalid Redis URL",
        ),
        (
            vec!["enqueue", "--redis", &dead_url, STREAM, "{}"],
            "cannot reach Redis at",
        ),
        (vec!["enqueue", "--redis", &url], "missing STREAM"),
        (
            vec![
                "enqueue",
                "--redis",
                &url,
                STREAM,
                "{}",
                "--count",
                "3",
                "--idempotency-key",
                "k",
            ],
            "--count with --idempotency-key",
        ),
        (
            vec!["inspect", "--redis", &url, "jobqueue:{shop/typo}"],
            "does not exist",
        ),
        (
            vec!["inspect", "--redis", &url, STREAM, "--group", "nobody"],
            "consumer group \"nobody\" does not exist",
        ),
        (
            vec![
                "dead-letter",
                "replay",
                "--redis",
                &url,
                "jobqueue:{shop/typo}",
            ],
            "does not exist",
        ),
        (
            vec![
                "dead-letter",
                "replay",
                "--redis",
                &url,
                STREAM,
                "--id",
                "latest",
            ],
            "--id \"latest\" is not a stream entry id",
        ),
        (
            vec!["dead-letter", "purge", "--redis", &url, STREAM],
            "without --yes",
        ),
        (
            vec!["inspect", "-f", "/nonexistent/jq.yaml"],
            "reading /nonexistent/jq.yaml",
        ),
    ];
    for (args, want) in cases {
        let err = fails(&cli(&args, None));
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
        assert!(!err.contains("hunter2"), "password leaked: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: jobqueue.io/v1alpha1\nkind: JobQueue\nmetadata:\n  name: q\nspec:\n  delivery:\n    maxDeliveries: 0\n").unwrap();
    let err = fails(&cli(
        &[
            "enqueue",
            "--redis",
            &url,
            "-f",
            bad.to_str().unwrap(),
            "{}",
        ],
        None,
    ));
    assert!(err.contains("delivery.maxDeliveries"), "{err}");
    std::fs::write(&bad, "kind: ConfigMap\n").unwrap();
    let err = fails(&cli(
        &["inspect", "--redis", &url, "-f", bad.to_str().unwrap()],
        None,
    ));
    assert!(err.contains("contains no JobQueue"), "{err}");
    assert_eq!(dbsize(&redis).await, before, "nothing was written");
}

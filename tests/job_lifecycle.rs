//! Following jobs against a real redis-server (and the three-node Cluster): records written by
//! enqueue, the janitor and the worker functions; retention; cancel; the events stream; the
//! function library on every primary; and the `job` commands of the real binary.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::jobs::{
    CancelOutcome, Delivery, JobOps, JobRecord, JobSettings, JobState, LibraryStatus, Started,
    cancel_job, ensure_library, get_job, list_jobs, store_settings, wait_job,
};
use jobqueue_operator::queue::{Backoff, Due, EnqueueOptions, RedisConn, enqueue};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::{TestRedis, Topology};
use jobqueue_test_support::wait::eventually;
use jobqueue_test_support::without_operator_env;
use serde_json::json;

const STREAM: &str = "jobqueue:{shop/mail}";
const WAIT: Duration = Duration::from_secs(20);

/// A queue with stored settings (`settings` tweaks the defaults) and the library loaded.
async fn tracked(
    t: Topology,
    tweak: impl FnOnce(&mut jobqueue_operator::queue::QueueConfig),
    settings: JobSettings,
) -> Fixture {
    let mut f = queue(t, STREAM, tweak).await;
    store_settings(&mut f.conn, &f.cfg, &settings)
        .await
        .unwrap();
    ensure_library(&mut f.conn).await.unwrap();
    f
}

fn ops(f: &Fixture, consumer: &str) -> JobOps {
    JobOps {
        keys: f.cfg.keys.clone(),
        group: f.cfg.group.clone(),
        consumer: consumer.into(),
    }
}

async fn add(f: &mut Fixture, payload: serde_json::Value, due: Due) -> String {
    let opts = EnqueueOptions {
        due,
        ..Default::default()
    };
    enqueue(&mut f.conn, &f.cfg.keys, &payload, &opts)
        .await
        .unwrap()
        .job_id
}

/// Reads one delivery as a worker would (XREADGROUP, no blocking).
async fn take(f: &mut Fixture, consumer: &str) -> Delivery {
    let cfg = f.cfg.clone();
    let got = read(&mut f.conn, &cfg, consumer, 1, None).await;
    let d = got.first().expect("a job to read");
    Delivery {
        entry_id: d.entry_id.clone(),
        job_id: d.job_id().into(),
        attempt: d.attempt(),
        payload: d.field("payload").into(),
        ..Default::default()
    }
}

async fn record(f: &mut Fixture, id: &str) -> JobRecord {
    get_job(&mut f.conn, &f.cfg.keys, &f.cfg.group, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no record of {id}"))
}

async fn pttl(conn: &mut RedisConn, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// The (state, attempt) of every event of job `id`, oldest first.
async fn events(f: &mut Fixture, id: &str) -> Vec<(String, String)> {
    entries(&mut f.conn, &f.cfg.keys.events())
        .await
        .into_iter()
        .filter(|e| e.field("job") == id && !e.fields.contains_key("progress"))
        .map(|e| (e.field("state").to_string(), e.field("attempt").to_string()))
        .collect()
}

fn ev(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(s, a)| (s.to_string(), a.to_string()))
        .collect()
}

on_both_topologies!(
    a_job_is_followed_from_queued_to_succeeded,
    failures_retry_with_backoff_then_go_dead,
    a_permanent_failure_goes_dead_at_once,
    cancel_stops_waiting_jobs_and_flags_running_ones,
    an_xack_only_workers_job_reads_succeeded,
    records_expire_after_their_ttl_and_waiting_ones_are_bounded,
    a_reclaimed_job_reads_queued_with_the_next_attempt,
    wait_returns_when_the_job_ends_and_honours_the_timeout,
    the_library_is_loaded_on_every_primary,
    job_commands_get_wait_cancel_list,
    a_fired_schedule_run_and_a_replayed_dead_letter_get_records,
    take_reads_and_starts_jobs_and_skips_cancelled_ones,
    jobqueue_enqueue_adds_jobs_as_the_enqueue_command_does,
    a_malformed_attempt_is_dead_lettered_never_looped,
    functions_refuse_a_missing_stream_or_group_and_create_nothing,
    a_queue_without_tracking_runs_jobs_and_keeps_no_records,
);

async fn a_job_is_followed_from_queued_to_succeeded(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let id = add(&mut f, json!({"to": "a@b"}), Due::Now).await;
    let rec = record(&mut f, &id).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Queued, 1));
    assert!(rec.enqueued_at_ms.is_some());

    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    assert_eq!(w.start(&mut f.conn, &d).await.unwrap(), Started::Run);
    w.progress(&mut f.conn, &d, r#"{"pct":50}"#).await.unwrap();
    let rec = record(&mut f, &id).await;
    assert_eq!(rec.state, JobState::Active);
    assert_eq!(rec.consumer.as_deref(), Some("w1"));
    assert_eq!(rec.progress, Some(json!({"pct": 50})));
    assert!(rec.started_at_ms.is_some());

    let s = w
        .complete(&mut f.conn, &d, Some(r#"{"sent":true}"#))
        .await
        .unwrap();
    assert_eq!(s.state, "succeeded");
    let rec = record(&mut f, &id).await;
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.result, Some(json!({"sent": true})));
    assert!(rec.finished_at_ms.is_some() && !rec.derived);
    assert_eq!(
        pending(&mut f.conn, &f.cfg).await,
        0,
        "completed means acknowledged"
    );
    assert_eq!(
        events(&mut f, &id).await,
        ev(&[("queued", "1"), ("active", "1"), ("succeeded", "1")])
    );
    // A second complete of the same delivery changes nothing.
    let again = w.complete(&mut f.conn, &d, Some("1")).await.unwrap();
    assert_eq!(again.state, "stale");
    assert_eq!(
        record(&mut f, &id).await.result,
        Some(json!({"sent": true}))
    );
}

async fn failures_retry_with_backoff_then_go_dead(t: Topology) {
    let backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        multiplier: 2.0,
    };
    let mut f = tracked(
        t,
        |c| {
            c.max_deliveries = 2;
            c.backoff = Some(backoff);
        },
        JobSettings::default(),
    )
    .await;
    let id = add(&mut f, json!({}), Due::Now).await;
    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    let s = w
        .fail(&mut f.conn, &d, "smtp said no", false)
        .await
        .unwrap();
    assert_eq!((s.state.as_str(), s.attempt), ("retrying", 2));
    let rec = record(&mut f, &id).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Retrying, 2));
    assert_eq!(rec.error.as_deref(), Some("smtp said no"));
    assert!(rec.due_at_ms.is_some());
    assert_eq!(
        delayed(&mut f.conn, &f.cfg).await.len(),
        1,
        "waits out the backoff"
    );

    let cfg = f.cfg.clone();
    let mut conn = f.conn.clone();
    eventually(WAIT, "the retry to be promoted", || {
        let (cfg, mut conn) = (cfg.clone(), conn.clone());
        async move {
            let (n, _) = janitor::promote_due(&mut conn, &cfg, &JanitorOptions::default())
                .await
                .unwrap();
            (n == 1).then_some(())
        }
    })
    .await;
    let rec = record(&mut f, &id).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Queued, 2));
    let d2 = take(&mut f, "w1").await;
    assert_eq!(d2.attempt, 2);
    w.start(&mut f.conn, &d2).await.unwrap();
    let s = w.fail(&mut f.conn, &d2, "still no", false).await.unwrap();
    assert_eq!((s.state.as_str(), s.attempt), ("dead", 2));
    let rec = record(&mut f, &id).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Dead, 2));
    assert_eq!(rec.error.as_deref(), Some("still no"));
    let dead = entries(&mut conn, &f.cfg.dead_letter).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].field("reason"), "max_deliveries_exceeded");
    assert_eq!(dead[0].field("last_error"), "still no");
    assert_eq!(
        events(&mut f, &id).await,
        ev(&[
            ("queued", "1"),
            ("active", "1"),
            ("retrying", "2"),
            ("queued", "2"),
            ("active", "2"),
            ("dead", "2"),
        ])
    );
}

async fn a_permanent_failure_goes_dead_at_once(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let id = add(&mut f, json!({}), Due::Now).await;
    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    let s = w.fail(&mut f.conn, &d, "bad address", true).await.unwrap();
    assert_eq!((s.state.as_str(), s.attempt), ("dead", 1));
    let dead = entries(&mut f.conn, &f.cfg.dead_letter).await;
    assert_eq!(dead[0].field("reason"), "permanent_failure");
    assert_eq!(
        record(&mut f, &id).await.error.as_deref(),
        Some("bad address")
    );
    assert_eq!(pending(&mut f.conn, &f.cfg).await, 0);
}

async fn cancel_stops_waiting_jobs_and_flags_running_ones(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let keys = f.cfg.keys.clone();
    let group = f.cfg.group.clone();
    let queued = add(&mut f, json!({"n": 1}), Due::Now).await;
    let later = add(
        &mut f,
        json!({"n": 2}),
        Due::After(Duration::from_millis(100)),
    )
    .await;
    assert_eq!(record(&mut f, &later).await.state, JobState::Delayed);
    for id in [&queued, &later] {
        let out = cancel_job(&mut f.conn, &keys, &group, id).await.unwrap();
        assert_eq!(out, CancelOutcome::Cancelled);
        assert_eq!(record(&mut f, id).await.state, JobState::Cancelled);
    }
    // The queued one is acknowledged, not run, by a worker using the operations.
    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    assert_eq!(d.job_id, queued);
    assert_eq!(w.start(&mut f.conn, &d).await.unwrap(), Started::Cancelled);
    assert_eq!(pending(&mut f.conn, &f.cfg).await, 0);
    // The delayed one is dropped when due instead of being handed out.
    let cfg = f.cfg.clone();
    let conn = f.conn.clone();
    eventually(WAIT, "the delayed set to empty", || {
        let (cfg, mut conn) = (cfg.clone(), conn.clone());
        async move {
            janitor::promote_due(&mut conn, &cfg, &JanitorOptions::default())
                .await
                .unwrap();
            delayed(&mut conn, &cfg).await.is_empty().then_some(())
        }
    })
    .await;
    assert!(read(&mut f.conn, &cfg, "w1", 10, None).await.is_empty());
    assert_eq!(record(&mut f, &later).await.state, JobState::Cancelled);

    // A running job is flagged; its worker sees it and stops: the job ends cancelled.
    let running = add(&mut f, json!({"n": 3}), Due::Now).await;
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    let out = cancel_job(&mut f.conn, &keys, &group, &running)
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::Requested);
    assert!(record(&mut f, &running).await.cancel_requested);
    let beat = w.heartbeat(&mut f.conn, &d).await.unwrap();
    assert_eq!(
        beat,
        jobqueue_operator::queue::jobs::Liveness::Held {
            cancel_requested: true
        }
    );
    let s = w.fail(&mut f.conn, &d, "stopped", false).await.unwrap();
    assert_eq!(s.state, "cancelled");
    assert_eq!(record(&mut f, &running).await.state, JobState::Cancelled);
    let out = cancel_job(&mut f.conn, &keys, &group, &running)
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::AlreadyFinal("cancelled".into()));
    let out = cancel_job(&mut f.conn, &keys, &group, "nope")
        .await
        .unwrap();
    assert_eq!(out, CancelOutcome::Missing);
}

async fn an_xack_only_workers_job_reads_succeeded(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let id = add(&mut f, json!({}), Due::Now).await;
    let cfg = f.cfg.clone();
    let got = read(&mut f.conn, &cfg, "plain", 1, None).await;
    let rec = record(&mut f, &id).await;
    assert_eq!(rec.state, JobState::Active, "delivered and pending");
    assert_eq!(rec.consumer.as_deref(), Some("plain"));
    assert!(ack(&mut f.conn, &cfg, &got[0].entry_id).await);
    let rec = record(&mut f, &id).await;
    assert_eq!(rec.state, JobState::Succeeded);
    assert!(rec.derived && rec.result.is_none());
}

async fn records_expire_after_their_ttl_and_waiting_ones_are_bounded(t: Topology) {
    let settings = JobSettings {
        succeeded_ttl: Duration::from_millis(400),
        dead_ttl: Duration::from_secs(60),
        waiting_ttl: Duration::from_secs(30),
        ..JobSettings::default()
    };
    let mut f = tracked(t, |_| {}, settings).await;
    let keys = f.cfg.keys.clone();
    let waiting = add(&mut f, json!({}), Due::Now).await;
    let ttl = pttl(&mut f.conn, &keys.job(&waiting)).await;
    assert!(
        ttl > 0 && ttl <= 30_000,
        "a waiting record is bounded: {ttl}"
    );
    let later = add(&mut f, json!({}), Due::After(Duration::from_secs(100))).await;
    let ttl = pttl(&mut f.conn, &keys.job(&later)).await;
    assert!(ttl > 100_000 && ttl <= 130_000, "outlives its delay: {ttl}");

    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    w.complete(&mut f.conn, &d, None).await.unwrap();
    let ttl = pttl(&mut f.conn, &keys.job(&waiting)).await;
    assert!(ttl > 0 && ttl <= 400, "succeeded TTL: {ttl}");
    let conn = f.conn.clone();
    let key = keys.job(&waiting);
    eventually(WAIT, "the succeeded record to expire", || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move { (pttl(&mut conn, &key).await == -2).then_some(()) }
    })
    .await;
    assert!(
        get_job(&mut f.conn, &keys, &f.cfg.group, &waiting)
            .await
            .unwrap()
            .is_none()
    );
    // An oversized result is dropped, not stored.
    let mut small = tracked(
        Topology::Single,
        |_| {},
        JobSettings {
            max_result_size: 8,
            ..JobSettings::default()
        },
    )
    .await;
    let id = add(&mut small, json!({}), Due::Now).await;
    let w = ops(&small, "w1");
    let d = take(&mut small, "w1").await;
    w.start(&mut small.conn, &d).await.unwrap();
    w.complete(&mut small.conn, &d, Some(r#"{"much":"too long"}"#))
        .await
        .unwrap();
    let rec = record(&mut small, &id).await;
    assert_eq!((rec.state, rec.result), (JobState::Succeeded, None));
    assert!(rec.result_dropped.unwrap().contains("maxResultSize 8"));
}

async fn a_reclaimed_job_reads_queued_with_the_next_attempt(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let id = add(&mut f, json!({}), Due::Now).await;
    let w = ops(&f, "gone");
    let d = take(&mut f, "gone").await;
    w.start(&mut f.conn, &d).await.unwrap();
    let cfg = f.cfg.clone();
    let r = janitor::reclaim_consumer(&mut f.conn, &cfg, "gone", &JanitorOptions::default())
        .await
        .unwrap();
    assert_eq!(r.retried, 1);
    let rec = record(&mut f, &id).await;
    assert_eq!((rec.state, rec.attempt), (JobState::Queued, 2));
    assert_eq!(rec.error.as_deref(), Some("delivery failed: consumer_gone"));
    assert_eq!(rec.consumer, None);
    // The old delivery is no longer the worker's: its late outcome changes nothing.
    assert_eq!(
        w.complete(&mut f.conn, &d, None).await.unwrap().state,
        "stale"
    );
    assert_eq!(record(&mut f, &id).await.state, JobState::Queued);
}

async fn wait_returns_when_the_job_ends_and_honours_the_timeout(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let keys = f.cfg.keys.clone();
    let group = f.cfg.group.clone();
    let id = add(&mut f, json!({}), Due::Now).await;
    let started = std::time::Instant::now();
    let rec = wait_job(
        &mut f.conn,
        &keys,
        &group,
        &id,
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rec.state, JobState::Queued, "timed out while queued");
    assert!(started.elapsed() >= Duration::from_millis(300));

    let mut waiter = f.conn.clone();
    let (k, g, i) = (keys.clone(), group.clone(), id.clone());
    let waiting = tokio::spawn(async move { wait_job(&mut waiter, &k, &g, &i, Some(WAIT)).await });
    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    w.complete(&mut f.conn, &d, Some("\"ok\"")).await.unwrap();
    let rec = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.result),
        (JobState::Succeeded, Some(json!("ok")))
    );
    let listed = list_jobs(&mut f.conn, &keys, &group, Some(JobState::Succeeded), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
}

async fn the_library_is_loaded_on_every_primary(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    assert_eq!(
        ensure_library(&mut f.conn).await.unwrap(),
        LibraryStatus::Loaded
    );
    assert_eq!(
        ensure_library(&mut f.conn).await.unwrap(),
        LibraryStatus::Current
    );
    let nodes = match &f.redis {
        TestRedis::Single(s) => vec![s.url()],
        TestRedis::Cluster(c) => c.seed_urls(),
    };
    for url in &nodes {
        let mut node = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let v: i64 = redis::cmd("FCALL_RO")
            .arg("jobqueue_version")
            .arg(0)
            .query_async(&mut node)
            .await
            .unwrap();
        assert_eq!(v, jobqueue_operator::queue::jobs::LIBRARY_VERSION, "{url}");
        // A node that loses the library (restart without persistence) gets it back on use.
        let _: () = redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async(&mut node)
            .await
            .unwrap();
    }
    let id = add(&mut f, json!({}), Due::Now).await;
    assert_eq!(record(&mut f, &id).await.state, JobState::Queued);
    // A newer revision (a newer operator's) is never downgraded.
    let newer = "#!lua name=jobqueue\nredis.register_function{function_name='jobqueue_version', \
                 flags={'no-writes'}, callback=function() return 99 end}";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(newer)
        .query_async(&mut f.conn)
        .await
        .unwrap();
    assert_eq!(
        ensure_library(&mut f.conn).await.unwrap(),
        LibraryStatus::Newer
    );
    let v: i64 = redis::cmd("FCALL_RO")
        .arg("jobqueue_version")
        .arg(0)
        .query_async(&mut f.conn)
        .await
        .unwrap();
    assert_eq!(v, 99);
}

fn cli(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        without_operator_env(&mut Command::new(env!("CARGO_BIN_EXE_jobqueue-operator")))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jobqueue-operator")
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn job_commands_get_wait_cancel_list(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let url = f.redis.url();
    let out = cli(&["enqueue", "--redis", &url, STREAM, r#"{"n":1}"#]);
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).trim().to_string();
    let out = cli(&["job", "get", "--redis", &url, STREAM, &id, "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["state"], "queued");
    assert_eq!(json["attempt"], 1);
    for key in ["progress", "result", "error"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    // wait --timeout: gives up, prints the record, exits non-zero.
    let out = cli(&[
        "job",
        "wait",
        "--redis",
        &url,
        STREAM,
        &id,
        "--timeout",
        "300ms",
    ]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("state: queued"), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{out:?}"
    );

    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    w.complete(&mut f.conn, &d, Some("{\"ok\":1}"))
        .await
        .unwrap();
    let out = cli(&["job", "wait", "--redis", &url, STREAM, &id, "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["result"], json!({"ok": 1}));

    let other = add(&mut f, json!({}), Due::Now).await;
    let out = cli(&["job", "cancel", "--redis", &url, STREAM, &other]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&["job", "wait", "--redis", &url, STREAM, &other]);
    assert!(!out.status.success(), "a cancelled job is not a success");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended cancelled"));
    let out = cli(&[
        "job",
        "list",
        "--redis",
        &url,
        STREAM,
        "--state",
        "cancelled",
        "-o",
        "json",
    ]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], other.as_str());
    let out = cli(&["job", "get", "--redis", &url, STREAM, "no-such-job"]);
    assert!(!out.status.success());
}

async fn a_fired_schedule_run_and_a_replayed_dead_letter_get_records(t: Topology) {
    use jobqueue_operator::queue::dead_letter;
    use jobqueue_operator::queue::schedules::{FireOutcome, FireRequest, fire};
    let mut f = tracked(t, |c| c.max_deliveries = 1, JobSettings::default()).await;
    let keys = f.cfg.keys.clone();
    // A stored schedule armed at 1000 (what an upsert leaves behind).
    let _: () = redis::cmd("HSET")
        .arg(keys.schedule("nightly"))
        .arg("revision")
        .arg(1)
        .arg("payload")
        .arg("{}")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(keys.schedules())
        .arg(1000)
        .arg("nightly")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let request = FireRequest {
        name: "nightly".into(),
        expected_ms: 1000,
        revision: 1,
        fire_ms: Some(1000),
        next_ms: Some(2000),
        missed: 0,
    };
    let FireOutcome::Fired { job_id, .. } = fire(&mut f.conn, &keys, &f.cfg.group, &request)
        .await
        .unwrap()
    else {
        panic!("the run fires")
    };
    assert_eq!(record(&mut f, &job_id).await.state, JobState::Queued);

    let w = ops(&f, "w1");
    let d = take(&mut f, "w1").await;
    w.start(&mut f.conn, &d).await.unwrap();
    w.fail(&mut f.conn, &d, "once", false).await.unwrap();
    assert_eq!(record(&mut f, &job_id).await.state, JobState::Dead);
    let cfg = f.cfg.clone();
    dead_letter::replay(&mut f.conn, &cfg, &[], 10)
        .await
        .unwrap();
    let rec = record(&mut f, &job_id).await;
    assert_eq!(
        (rec.state, rec.attempt, rec.error),
        (JobState::Queued, 1, None)
    );
    let again = take(&mut f, "w1").await;
    assert_eq!(again.job_id, job_id);
    assert_eq!(again.attempt, 1);
}

async fn take_reads_and_starts_jobs_and_skips_cancelled_ones(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let ids = [
        add(&mut f, json!({"n": 1}), Due::Now).await,
        add(&mut f, json!({"n": 2}), Due::Now).await,
        add(&mut f, json!({"n": 3}), Due::Now).await,
        add(&mut f, json!({"n": 4}), Due::Now).await,
    ];
    for id in [&ids[0], &ids[2]] {
        let out = cancel_job(&mut f.conn, &f.cfg.keys, &f.cfg.group, id).await;
        assert_eq!(out.unwrap(), CancelOutcome::Cancelled);
    }
    let w = ops(&f, "w1");
    // One at a time: the cancelled first job is passed over, not answered as "nothing waits".
    let first = w.take(&mut f.conn, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].job_id.as_str(),
            first[0].attempt,
            first[0].payload.as_str()
        ),
        (ids[1].as_str(), 1, r#"{"n":2}"#)
    );
    let rest = w.take(&mut f.conn, 10).await.unwrap();
    let taken: Vec<&str> = rest.iter().map(|d| d.job_id.as_str()).collect();
    assert_eq!(
        taken,
        [ids[3].as_str()],
        "the cancelled third job is skipped"
    );
    for d in first.iter().chain(&rest) {
        let rec = record(&mut f, &d.job_id).await;
        assert_eq!(rec.state, JobState::Active);
        assert_eq!(rec.consumer.as_deref(), Some("w1"));
        assert!(rec.started_at_ms.is_some());
    }
    assert_eq!(
        pending(&mut f.conn, &f.cfg).await,
        2,
        "cancelled entries are acknowledged, taken ones held"
    );
    assert!(w.take(&mut f.conn, 10).await.unwrap().is_empty());

    // A taken job completes like a started one, and keeps its attempt.
    let done = w.complete(&mut f.conn, &first[0], Some("7")).await.unwrap();
    assert_eq!((done.state.as_str(), done.attempt), ("succeeded", 1));
    let rec = record(&mut f, &ids[1]).await;
    assert_eq!(
        (rec.state, rec.result),
        (JobState::Succeeded, Some(json!(7)))
    );
    assert_eq!(
        events(&mut f, &ids[1]).await,
        ev(&[("queued", "1"), ("active", "1"), ("succeeded", "1")])
    );
}

async fn fcall_enqueue(
    f: &mut Fixture,
    args: &[&str],
) -> redis::RedisResult<(String, i64, String)> {
    redis::cmd("FCALL")
        .arg("jobqueue_enqueue")
        .arg(2)
        .arg(&f.cfg.keys.stream)
        .arg(f.cfg.keys.settings())
        .arg(args)
        .query_async(&mut f.conn)
        .await
}

async fn jobqueue_enqueue_adds_jobs_as_the_enqueue_command_does(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let (id, added, entry) = fcall_enqueue(&mut f, &["j-now", r#"{"n":1}"#, "0", "", ""])
        .await
        .unwrap();
    assert_eq!((id.as_str(), added), ("j-now", 1));
    let rec = record(&mut f, "j-now").await;
    assert_eq!(
        (rec.state, rec.attempt, rec.entry_id.as_deref()),
        (JobState::Queued, 1, Some(entry.as_str()))
    );
    let d = ops(&f, "w1").take(&mut f.conn, 1).await.unwrap();
    assert_eq!(
        (d[0].job_id.as_str(), d[0].payload.as_str()),
        ("j-now", r#"{"n":1}"#)
    );
    // The same id enqueued again after it ended starts a fresh record: nothing of the first
    // run (result, consumer, times) is left in it.
    ops(&f, "w1")
        .complete(&mut f.conn, &d[0], Some(r#"{"first":true}"#))
        .await
        .unwrap();
    fcall_enqueue(&mut f, &["j-now", r#"{"n":2}"#, "0", "", ""])
        .await
        .unwrap();
    let rec = record(&mut f, "j-now").await;
    assert_eq!(
        (
            rec.state,
            rec.result,
            rec.consumer,
            rec.started_at_ms,
            rec.finished_at_ms
        ),
        (JobState::Queued, None, None, None, None)
    );
    let again = ops(&f, "w1").take(&mut f.conn, 1).await.unwrap();
    assert_eq!(again[0].payload, r#"{"n":2}"#);

    // Delayed, with an idempotency key: the second call answers the first job's id.
    let args = ["j-later", "{}", "+60000", "order-7", "", "tenant", "acme"];
    let (_, added, entry) = fcall_enqueue(&mut f, &args).await.unwrap();
    assert_eq!((added, entry.as_str()), (1, ""));
    let again = ["j-other", "{}", "0", "order-7", ""];
    let (id, added, _) = fcall_enqueue(&mut f, &again).await.unwrap();
    assert_eq!((id.as_str(), added), ("j-later", 0));
    let rec = record(&mut f, "j-later").await;
    assert_eq!(rec.state, JobState::Delayed);
    assert!(
        get_job(&mut f.conn, &f.cfg.keys, &f.cfg.group, "j-other")
            .await
            .unwrap()
            .is_none()
    );

    for (args, says) in [
        (vec!["", "{}", "0", "", ""], "job id"),
        (vec!["j", "not json", "0", "", ""], "payload"),
        (vec!["j", "{}", "soon", "", ""], "due"),
        (
            vec!["j", "{}", "0", "", "", "attempt", "9"],
            "attempt is reserved",
        ),
    ] {
        let err = fcall_enqueue(&mut f, &args).await.unwrap_err().to_string();
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Adds a raw job entry whose `attempt` field is `attempt`, as a producer might.
async fn xadd_with_attempt(f: &mut Fixture, id: &str, attempt: &str) {
    let _: String = redis::cmd("XADD")
        .arg(&f.cfg.keys.stream)
        .arg("*")
        .arg(&["id", id, "payload", "{}", "attempt", attempt])
        .query_async(&mut f.conn)
        .await
        .unwrap();
}

async fn a_malformed_attempt_is_dead_lettered_never_looped(t: Topology) {
    let mut f = tracked(t, |c| c.max_deliveries = 3, JobSettings::default()).await;
    for (id, attempt) in [
        ("neg", "-5"),
        ("text", "abc"),
        ("huge", "1e12"),
        ("ok", "2"),
    ] {
        xadd_with_attempt(&mut f, id, attempt).await;
    }
    let taken = ops(&f, "w1").take(&mut f.conn, 10).await.unwrap();
    let ids: Vec<&str> = taken.iter().map(|d| d.job_id.as_str()).collect();
    assert_eq!(ids, ["ok"], "malformed jobs are never handed out");
    assert_eq!(taken[0].attempt, 2);
    let dead = entries(&mut f.conn, &f.cfg.dead_letter).await;
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|e| (e.field("id"), e.field("reason")))
        .collect();
    assert_eq!(
        reasons,
        [
            ("neg", "malformed_attempt"),
            ("text", "malformed_attempt"),
            ("huge", "malformed_attempt")
        ]
    );
    assert!(
        dead[0].field("detail").contains("\"-5\""),
        "{:?}",
        dead[0].fields
    );
    let rec = record(&mut f, "neg").await;
    assert_eq!(rec.state, JobState::Dead);
    assert!(rec.error.unwrap_or_default().contains("attempt must be"));

    // A plain XREADGROUP worker that never acknowledges: the janitor dead-letters the job
    // at once instead of handing it out again with attempt -4, -3, ...
    xadd_with_attempt(&mut f, "neg2", "-5").await;
    let cfg = f.cfg.clone();
    let got = read(&mut f.conn, &cfg, "plain", 1, None).await;
    assert_eq!(got[0].job_id(), "neg2");
    let r = janitor::reclaim_consumer(&mut f.conn, &cfg, "plain", &JanitorOptions::default())
        .await
        .unwrap();
    assert_eq!((r.retried, r.dead_lettered), (0, 1));
    let dead = entries(&mut f.conn, &f.cfg.dead_letter).await;
    assert_eq!(dead.last().unwrap().field("reason"), "malformed_attempt");
    assert_eq!(
        pending(&mut f.conn, &f.cfg).await,
        1,
        "only the taken job is held"
    );
}

async fn key_type(conn: &mut RedisConn, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap()
}

/// The worker functions check the stream only when a read or write fails: a missing stream,
/// another type or a missing group still gets an error naming it, and nothing is created.
async fn functions_refuse_a_missing_stream_or_group_and_create_nothing(t: Topology) {
    let mut f = tracked(t, |_| {}, JobSettings::default()).await;
    let gone = jobqueue_operator::queue::keys::QueueKeys::new("jobqueue:{shop/mail}:gone");
    let enqueue_to = |keys: &jobqueue_operator::queue::keys::QueueKeys, due: &str| {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("jobqueue_enqueue")
            .arg(2)
            .arg(&keys.stream)
            .arg(keys.settings())
            .arg(&["j1", "{}", due, "", ""]);
        cmd
    };
    for due in ["0", "+60000"] {
        let err = enqueue_to(&gone, due)
            .query_async::<redis::Value>(&mut f.conn)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOSTREAM"), "due {due}: {err}");
    }
    assert_eq!(key_type(&mut f.conn, &gone.stream).await, "none");
    assert_eq!(key_type(&mut f.conn, &gone.delayed()).await, "none");
    assert_eq!(key_type(&mut f.conn, &gone.job("j1")).await, "none");

    let err = ops(&f, "w1").take(&mut f.conn, 1).await;
    assert!(err.is_ok(), "the real queue takes: {err:?}");
    let mut w = ops(&f, "w1");
    w.keys = gone.clone();
    let err = w.take(&mut f.conn, 1).await.unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");

    let () = redis::cmd("SET")
        .arg(&gone.stream)
        .arg("not a stream")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let err = enqueue_to(&gone, "0")
        .query_async::<redis::Value>(&mut f.conn)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("WRONGTYPE"), "{err}");
    let err = w.take(&mut f.conn, 1).await.unwrap_err().to_string();
    assert!(err.contains("holds a string, not a stream"), "{err}");

    let mut stranger = ops(&f, "w1");
    stranger.group = "nobody".into();
    let err = stranger.take(&mut f.conn, 1).await.unwrap_err().to_string();
    assert!(
        err.contains(r#"consumer group "nobody" does not exist"#),
        "{err}"
    );
}

/// `tracking: false`: the same worker calls run jobs (a failure is still retried), and no
/// record, event or counter is written.
async fn a_queue_without_tracking_runs_jobs_and_keeps_no_records(t: Topology) {
    let settings = JobSettings {
        tracking: false,
        ..JobSettings::default()
    };
    let mut f = tracked(t, |_| {}, settings).await;
    let keys = f.cfg.keys.clone();
    let first = add(&mut f, json!({"n": 1}), Due::Now).await;
    let second = add(&mut f, json!({"n": 2}), Due::Now).await;
    let w = ops(&f, "w1");
    let taken = w.take(&mut f.conn, 2).await.unwrap();
    assert_eq!(taken.len(), 2);
    let done = w
        .complete(&mut f.conn, &taken[0], Some("{}"))
        .await
        .unwrap();
    assert_eq!(done.state, "succeeded");
    let failed = w.fail(&mut f.conn, &taken[1], "boom", false).await.unwrap();
    assert_eq!(failed.state, "queued");
    let again = w.take(&mut f.conn, 1).await.unwrap();
    assert_eq!(
        (again[0].job_id.as_str(), again[0].attempt),
        (second.as_str(), 2)
    );
    for id in [&first, &second] {
        assert_eq!(key_type(&mut f.conn, &keys.job(id)).await, "none", "{id}");
    }
    assert_eq!(key_type(&mut f.conn, &keys.events()).await, "none");
    assert_eq!(
        key_type(
            &mut f.conn,
            &jobqueue_operator::queue::jobs::stats_key(&keys)
        )
        .await,
        "none"
    );
}

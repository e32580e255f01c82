//! The queue engine against a real redis-server, each test on a standalone server and on a
//! three-node Redis Cluster: provisioning and drift, producing, redelivery after the
//! visibility timeout, dead letters and replay, consumer reclaim, retention, metrics.

use std::time::Duration;

use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::metrics::{LagSource, QueueState, SnapshotOptions, snapshot};
use jobqueue_operator::queue::provision::{Drift, provision};
use jobqueue_operator::queue::{
    Backoff, Due, EnqueueOptions, QueueConfig, QueueError, Retention, StartFrom, dead_letter,
    enqueue,
};
use jobqueue_test_support::on_both_topologies;
use jobqueue_test_support::queue::*;
use jobqueue_test_support::redis::Topology;
use jobqueue_test_support::wait::eventually;
use serde_json::json;

const STREAM: &str = "jobqueue:{team-a/emails}";
const WAIT: Duration = Duration::from_secs(30);

fn opts() -> JanitorOptions {
    JanitorOptions::default()
}

async fn xadd_raw(
    conn: &mut jobqueue_operator::queue::RedisConn,
    key: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("n")
            .arg(i)
            .query_async(conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

on_both_topologies!(
    provisioning_is_idempotent_and_adopts_existing_data,
    drift_is_repaired_and_reported,
    enqueue_writes_the_documented_fields,
    idempotency_key_makes_a_retry_a_no_op,
    enqueue_to_an_unknown_queue_writes_nothing,
    delayed_jobs_arrive_when_due,
    foreign_and_malformed_delayed_members,
    unacked_job_is_redelivered_then_dead_lettered_then_replayed_once,
    backoff_routes_retries_through_the_delayed_set,
    reclaiming_a_gone_consumer_is_immediate,
    idle_consumers_holding_nothing_are_deleted,
    trimming_never_removes_unread_or_pending_entries,
    trimming_by_age_respects_every_group,
    metrics_for_many_queues_in_one_snapshot,
    nil_lag_is_estimated_not_replaced_by_xlen,
    random_trims_never_remove_needed_entries,
    xclaim_justid_keeps_a_long_job,
    script_errors_are_typed,
);

async fn provisioning_is_idempotent_and_adopts_existing_data(t: Topology) {
    let stream = "legacy-jobs"; // an adopted key without hash tag
    let f = queue(t, "jobqueue:{unused/x}", |_| {}).await;
    let mut conn = f.conn.clone();
    let existing = xadd_raw(&mut conn, stream, 3).await;
    let mut cfg = QueueConfig::new(stream);
    cfg.start_from = StartFrom::Beginning;
    let first = provision(&mut conn, &cfg, false).await.unwrap();
    assert!(first.stream_existed && !first.group_existed);
    assert_eq!(first.length, 3);
    assert_eq!(first.drift(&cfg, false), None);
    let again = provision(&mut conn, &cfg, true).await.unwrap();
    assert!(again.stream_existed && again.group_existed);
    assert_eq!(
        again.drift(&cfg, true),
        None,
        "nothing changed, nothing to report"
    );
    // Beginning: the adopted entries are delivered, untouched.
    let got = read(&mut conn, &cfg, "w1", 10, None).await;
    assert_eq!(
        got.iter().map(|d| d.entry_id.clone()).collect::<Vec<_>>(),
        existing
    );
    assert_eq!(got[0].field("n"), "0");

    // Latest on another adopted stream: the group starts after the existing entries.
    let other = "{legacy}:other";
    xadd_raw(&mut conn, other, 2).await;
    let cfg = QueueConfig::new(other);
    provision(&mut conn, &cfg, false).await.unwrap();
    assert!(read(&mut conn, &cfg, "w1", 10, None).await.is_empty());
    assert_eq!(
        entries(&mut conn, other).await.len(),
        2,
        "adoption keeps the data"
    );

    // A key of another type is reported, not overwritten.
    let () = redis::cmd("SET")
        .arg("{s}:notastream")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = provision(&mut conn, &QueueConfig::new("{s}:notastream"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueueError::WrongType { actual, .. } if actual == "string"),
        "{err}"
    );
}

async fn drift_is_repaired_and_reported(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    for i in 0..3 {
        enqueue(
            &mut f.conn,
            &f.cfg.keys,
            &json!({ "n": i }),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    }
    let () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(STREAM)
        .arg("workers")
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let out = provision(&mut f.conn, &f.cfg, true).await.unwrap();
    let drift = out.drift(&f.cfg, true).expect("group deletion is drift");
    assert!(
        matches!(drift, Drift::GroupRecreated { length: 3, .. }),
        "{drift:?}"
    );
    assert_eq!(drift.reason(), "ConsumerGroupRecreated");
    assert!(
        drift
            .to_string()
            .contains("3 entries will be delivered again"),
        "{drift}"
    );
    assert_eq!(
        read(&mut f.conn, &f.cfg, "w", 10, None).await.len(),
        3,
        "no job skipped"
    );

    let () = redis::cmd("DEL")
        .arg(STREAM)
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let out = provision(&mut f.conn, &f.cfg, true).await.unwrap();
    assert!(matches!(
        out.drift(&f.cfg, true),
        Some(Drift::StreamRecreated { .. })
    ));
    assert_eq!(
        provision(&mut f.conn, &f.cfg, true)
            .await
            .unwrap()
            .drift(&f.cfg, true),
        None
    );
}

async fn enqueue_writes_the_documented_fields(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let payload = json!({ "to": "a@example.com", "big": 12345678901234567890u64, "nested": [1, {"x": null}] });
    let a = enqueue(
        &mut f.conn,
        &f.cfg.keys,
        &payload,
        &EnqueueOptions::default(),
    )
    .await
    .unwrap();
    let b = enqueue(
        &mut f.conn,
        &f.cfg.keys,
        &json!("second"),
        &EnqueueOptions::default(),
    )
    .await
    .unwrap();
    assert!(a.added && b.added);
    assert_ne!(a.job_id, b.job_id, "job ids are unique");
    let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut f.conn).await.unwrap();
    let got = read(&mut f.conn, &f.cfg, "w", 10, None).await;
    assert_eq!(got.len(), 2);
    let job = &got[0];
    assert_eq!(Some(job.entry_id.clone()), a.entry_id);
    assert_eq!(job.job_id(), a.job_id);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(job.field("payload")).unwrap(),
        payload
    );
    assert_eq!(job.attempt(), 1);
    let enqueued_at: u64 = job.field("enqueued_at").parse().unwrap();
    assert!(
        enqueued_at <= secs * 1000 + 1000 && enqueued_at + 60_000 > secs * 1000,
        "unix ms: {enqueued_at}"
    );
    let mut names: Vec<_> = job.fields.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["attempt", "enqueued_at", "id", "payload"]);
}

async fn idempotency_key_makes_a_retry_a_no_op(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let opts = EnqueueOptions {
        idempotency_key: Some("order-42".into()),
        ..Default::default()
    };
    let first = enqueue(&mut f.conn, &f.cfg.keys, &json!(1), &opts)
        .await
        .unwrap();
    let second = enqueue(&mut f.conn, &f.cfg.keys, &json!(2), &opts)
        .await
        .unwrap();
    assert!(first.added && !second.added);
    assert_eq!(
        second.job_id, first.job_id,
        "the retry returns the first job id"
    );
    assert_eq!(entries(&mut f.conn, STREAM).await.len(), 1);
    // Expired key: a new job.
    let short = EnqueueOptions {
        idempotency_key: Some("short".into()),
        idempotency_ttl: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let a = enqueue(&mut f.conn, &f.cfg.keys, &json!(3), &short)
        .await
        .unwrap();
    let key = f.cfg.keys.idempotency("short");
    let mut conn = f.conn.clone();
    eventually(WAIT, "idempotency key expiry", || {
        let key = key.clone();
        let mut conn = conn.clone();
        async move {
            (redis::cmd("EXISTS")
                .arg(&key)
                .query_async::<u8>(&mut conn)
                .await
                .unwrap()
                == 0)
                .then_some(())
        }
    })
    .await;
    let b = enqueue(&mut conn, &f.cfg.keys, &json!(3), &short)
        .await
        .unwrap();
    assert!(b.added && b.job_id != a.job_id);
}

async fn enqueue_to_an_unknown_queue_writes_nothing(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let cfg = QueueConfig::new("jobqueue:{team-a/typo}");
    let opts = EnqueueOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    let err = enqueue(&mut f.conn, &cfg.keys, &json!({}), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueueError::NoSuchStream { stream } if stream == "jobqueue:{team-a/typo}"),
        "{err}"
    );
    for key in [
        cfg.stream().to_string(),
        cfg.keys.delayed(),
        cfg.keys.idempotency("k"),
    ] {
        let n: u8 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut f.conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{key} was written");
    }
}

async fn delayed_jobs_arrive_when_due(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let later = EnqueueOptions {
        // Long enough that "not due yet" below holds on a loaded machine.
        due: Due::After(Duration::from_secs(3)),
        ..Default::default()
    };
    let job = enqueue(&mut f.conn, &f.cfg.keys, &json!({"k": 1}), &later)
        .await
        .unwrap();
    assert!(job.added && job.entry_id.is_none());
    let far = EnqueueOptions {
        due: Due::After(Duration::from_secs(3600)),
        ..Default::default()
    };
    enqueue(&mut f.conn, &f.cfg.keys, &json!({"k": 2}), &far)
        .await
        .unwrap();
    let past = EnqueueOptions {
        due: Due::At(std::time::UNIX_EPOCH + Duration::from_secs(1)),
        ..Default::default()
    };
    let now_job = enqueue(&mut f.conn, &f.cfg.keys, &json!({"k": 3}), &past)
        .await
        .unwrap();
    assert!(now_job.entry_id.is_some(), "a time in the past means now");
    assert_eq!(delayed(&mut f.conn, &f.cfg).await.len(), 2);
    assert_eq!(
        janitor::promote_due(&mut f.conn, &f.cfg, &opts())
            .await
            .unwrap(),
        (0, 0),
        "not due yet"
    );
    let conn = f.conn.clone();
    let cfg = f.cfg.clone();
    eventually(WAIT, "the delayed job to become due", || {
        let (mut conn, cfg) = (conn.clone(), cfg.clone());
        async move {
            (janitor::promote_due(&mut conn, &cfg, &opts())
                .await
                .unwrap()
                .0
                == 1)
                .then_some(())
        }
    })
    .await;
    let got = read(&mut f.conn, &f.cfg, "w", 10, None).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].job_id(), job.job_id);
    assert_eq!(got[1].attempt(), 1);
    assert_eq!(
        delayed(&mut f.conn, &f.cfg).await.len(),
        1,
        "the far job still waits"
    );
}

async fn foreign_and_malformed_delayed_members(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    // A producer in another language adds to the zset directly, without id or attempt.
    let member = r#"{"payload":"{\"x\":1}","priority":"high","enqueued_at":1700000000000}"#;
    for (m, score) in [(member, 1), ("not json", 1), (r#"{"id":"j"}"#, 1)] {
        let () = redis::cmd("ZADD")
            .arg(f.cfg.keys.delayed())
            .arg(score)
            .arg(m)
            .query_async(&mut f.conn)
            .await
            .map(|_: i64| ())
            .unwrap();
    }
    let (promoted, malformed) = janitor::promote_due(&mut f.conn, &f.cfg, &opts())
        .await
        .unwrap();
    assert_eq!((promoted, malformed), (1, 2));
    let got = read(&mut f.conn, &f.cfg, "w", 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].field("payload"), r#"{"x":1}"#);
    assert_eq!(got[0].field("priority"), "high");
    assert_eq!(got[0].field("enqueued_at"), "1700000000000");
    assert_eq!(got[0].attempt(), 1);
    assert_eq!(
        got[0].job_id().len(),
        40,
        "a content hash stands in for a missing id"
    );
    let dead = dead_letter::list(&mut f.conn, &f.cfg, 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.get("reason") == Some("malformed_delayed_job"))
    );
    assert!(dead.iter().any(|d| d.get("raw") == Some("not json")));
    assert!(delayed(&mut f.conn, &f.cfg).await.is_empty());
    // Malformed dead letters are not jobs: replay leaves them.
    let r = dead_letter::replay(&mut f.conn, &f.cfg, &[], 100)
        .await
        .unwrap();
    assert_eq!((r.entry_ids.len(), r.skipped), (0, 2));
}

async fn unacked_job_is_redelivered_then_dead_lettered_then_replayed_once(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_millis(100);
        c.max_deliveries = 3;
    })
    .await;
    let job = enqueue(
        &mut f.conn,
        &f.cfg.keys,
        &json!({"task": "flaky"}),
        &EnqueueOptions::default(),
    )
    .await
    .unwrap();
    let mut last_consumer = String::new();
    for attempt in 1..=3u32 {
        let consumer = format!("worker-{attempt}");
        let got = read(&mut f.conn, &f.cfg, &consumer, 10, None).await;
        assert_eq!(got.len(), 1, "attempt {attempt} is delivered");
        assert_eq!(got[0].job_id(), job.job_id);
        assert_eq!(got[0].attempt(), attempt);
        last_consumer = consumer;
        // The consumer never acknowledges. Once the visibility timeout passes, the janitor acts.
        let (conn, cfg) = (f.conn.clone(), f.cfg.clone());
        let r = eventually(WAIT, "the visibility timeout to expire", || {
            let (mut conn, cfg) = (conn.clone(), cfg.clone());
            async move {
                let r = janitor::reclaim_expired(&mut conn, &cfg, &opts())
                    .await
                    .unwrap();
                (r.retried + r.dead_lettered > 0).then_some(r)
            }
        })
        .await;
        if attempt < 3 {
            assert_eq!((r.retried, r.dead_lettered), (1, 0));
        } else {
            assert_eq!((r.retried, r.dead_lettered), (0, 1));
        }
        assert_eq!(
            pending(&mut f.conn, &f.cfg).await,
            0,
            "the old delivery is acknowledged"
        );
    }
    assert!(
        read(&mut f.conn, &f.cfg, "worker-x", 10, None)
            .await
            .is_empty(),
        "nothing left to deliver"
    );
    let dead = dead_letter::list(&mut f.conn, &f.cfg, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.get("id"), Some(job.job_id.as_str()));
    assert_eq!(d.get("reason"), Some("max_deliveries_exceeded"));
    assert_eq!(d.get("last_failure"), Some("visibility_timeout"));
    assert_eq!(d.get("last_consumer"), Some(last_consumer.as_str()));
    assert_eq!(d.get("attempt"), Some("3"));
    assert!(d.get("original_id").is_some_and(|id| id.contains('-')));
    assert_eq!(d.get("payload"), Some(r#"{"task":"flaky"}"#));

    let replayed = dead_letter::replay(&mut f.conn, &f.cfg, &[], 100)
        .await
        .unwrap();
    assert_eq!(replayed.entry_ids.len(), 1);
    let again = dead_letter::replay(&mut f.conn, &f.cfg, &[], 100)
        .await
        .unwrap();
    assert!(again.entry_ids.is_empty(), "replay is exactly once");
    let got = read(&mut f.conn, &f.cfg, "worker-4", 10, None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job_id(), job.job_id);
    assert_eq!(got[0].attempt(), 1, "attempt is reset");
    assert!(
        !got[0].fields.contains_key("reason"),
        "dead-letter fields are dropped: {:?}",
        got[0]
    );
    assert!(ack(&mut f.conn, &f.cfg, &got[0].entry_id).await);
    assert!(
        dead_letter::list(&mut f.conn, &f.cfg, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn backoff_routes_retries_through_the_delayed_set(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_millis(50);
        c.backoff = Some(Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(600),
            multiplier: 2.0,
        });
    })
    .await;
    let job = enqueue(
        &mut f.conn,
        &f.cfg.keys,
        &json!(1),
        &EnqueueOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(read(&mut f.conn, &f.cfg, "w", 1, None).await.len(), 1);
    let (conn, cfg) = (f.conn.clone(), f.cfg.clone());
    eventually(WAIT, "the retry", || {
        let (mut conn, cfg) = (conn.clone(), cfg.clone());
        async move {
            (janitor::reclaim_expired(&mut conn, &cfg, &opts())
                .await
                .unwrap()
                .retried
                == 1)
                .then_some(())
        }
    })
    .await;
    let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut f.conn).await.unwrap();
    let waiting = delayed(&mut f.conn, &f.cfg).await;
    assert_eq!(waiting.len(), 1);
    let due = waiting[0].1;
    assert!(
        due > secs * 1000 + 50_000 && due <= secs * 1000 + 61_000,
        "due in ~60s: {due}"
    );
    let member: serde_json::Value = serde_json::from_str(&waiting[0].0).unwrap();
    assert_eq!(member["id"], job.job_id.as_str());
    assert_eq!(member["attempt"], "2");
    assert!(
        read(&mut f.conn, &f.cfg, "w", 1, None).await.is_empty(),
        "not before its backoff"
    );
    // Make it due now, as if the minute had passed.
    let () = redis::cmd("ZADD")
        .arg(f.cfg.keys.delayed())
        .arg(0)
        .arg(&waiting[0].0)
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    janitor::promote_due(&mut f.conn, &f.cfg, &opts())
        .await
        .unwrap();
    let got = read(&mut f.conn, &f.cfg, "w", 1, None).await;
    assert_eq!(
        (got[0].job_id(), got[0].attempt()),
        (job.job_id.as_str(), 2)
    );
}

async fn reclaiming_a_gone_consumer_is_immediate(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_secs(3600)
    })
    .await;
    for i in 0..5 {
        enqueue(
            &mut f.conn,
            &f.cfg.keys,
            &json!(i),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    }
    let held = read(&mut f.conn, &f.cfg, "pod-a", 3, None).await;
    let kept = read(&mut f.conn, &f.cfg, "pod-b", 2, None).await;
    assert_eq!((held.len(), kept.len()), (3, 2));
    let r = janitor::reclaim_consumer(&mut f.conn, &f.cfg, "pod-a", &opts())
        .await
        .unwrap();
    assert_eq!(r.retried, 3);
    let again = read(&mut f.conn, &f.cfg, "pod-c", 10, None).await;
    let mut ids: Vec<_> = again.iter().map(|d| d.job_id().to_string()).collect();
    let mut want: Vec<_> = held.iter().map(|d| d.job_id().to_string()).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
    assert!(again.iter().all(|d| d.attempt() == 2));
    assert_eq!(
        pending(&mut f.conn, &f.cfg).await,
        5,
        "pod-b's 2 untouched + 3 redelivered"
    );
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(STREAM)
        .arg("workers")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    assert_eq!(consumers.len(), 2, "pod-a is deleted");
}

async fn idle_consumers_holding_nothing_are_deleted(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    enqueue(
        &mut f.conn,
        &f.cfg.keys,
        &json!(1),
        &EnqueueOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(read(&mut f.conn, &f.cfg, "busy", 1, None).await.len(), 1);
    let created: u8 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(STREAM)
        .arg("workers")
        .arg("idle")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    assert_eq!(created, 1);
    let n = janitor::reap_idle_consumers(&mut f.conn, &f.cfg, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(n, 0, "not idle long enough");
    let n = janitor::reap_idle_consumers(&mut f.conn, &f.cfg, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the consumer holding nothing");
    let m = snapshot(
        &mut f.conn,
        std::slice::from_ref(&f.cfg),
        SnapshotOptions::default(),
    )
    .await
    .unwrap();
    let QueueState::Ready(m) = m[0].as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(
        m.consumers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["busy"]
    );
}

async fn trimming_never_removes_unread_or_pending_entries(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.retention = Retention {
            max_length: Some(10),
            max_age: None,
        }
    })
    .await;
    // A second group on the same stream (e.g. an audit reader) that is further behind.
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("audit")
        .arg("$")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for i in 0..100 {
        jobs.push(
            enqueue(
                &mut f.conn,
                &f.cfg.keys,
                &json!(i),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .job_id,
        );
    }
    let audit = QueueConfig {
        group: "audit".into(),
        ..f.cfg.clone()
    };
    let audit_read = read(&mut f.conn, &audit, "a", 20, None).await;
    for d in &audit_read[..15] {
        ack(&mut f.conn, &audit, &d.entry_id).await;
    }
    let got = read(&mut f.conn, &f.cfg, "w", 40, None).await;
    for d in &got[..30] {
        ack(&mut f.conn, &f.cfg, &d.entry_id).await;
    }
    // Backlog (60 unread by workers, 10 pending) is far above maxLength 10.
    let (removed, blocked) = janitor::trim(&mut f.conn, &f.cfg, &opts()).await.unwrap();
    assert_eq!(removed, 15, "only what both groups have acknowledged");
    assert!(blocked);
    let left = entries(&mut f.conn, STREAM).await;
    assert_eq!(left.len(), 85);
    assert_eq!(
        left[0].entry_id, audit_read[15].entry_id,
        "the audit group's oldest pending entry stays"
    );
    // Every pending entry is still there; every unread one is still delivered.
    let pending_ids: Vec<_> = got[30..].iter().map(|d| d.entry_id.clone()).collect();
    assert!(
        pending_ids
            .iter()
            .all(|id| left.iter().any(|e| &e.entry_id == id))
    );
    let rest = read(&mut f.conn, &f.cfg, "w", 1000, None).await;
    let delivered: Vec<_> = got
        .iter()
        .chain(&rest)
        .map(|d| d.job_id().to_string())
        .collect();
    assert_eq!(delivered, jobs, "every job delivered once, in order");
    // Once everything is consumed, the stream is trimmed to maxLength.
    for d in got[30..].iter().chain(&rest) {
        ack(&mut f.conn, &f.cfg, &d.entry_id).await;
    }
    for d in audit_read[15..]
        .iter()
        .chain(&read(&mut f.conn, &audit, "a", 1000, None).await)
    {
        ack(&mut f.conn, &audit, &d.entry_id).await;
    }
    let (removed, blocked) = janitor::trim(&mut f.conn, &f.cfg, &opts()).await.unwrap();
    assert_eq!((removed, blocked), (75, false));
    let left = entries(&mut f.conn, STREAM).await;
    assert_eq!(
        left.iter()
            .map(|d| d.job_id().to_string())
            .collect::<Vec<_>>(),
        jobs[90..]
    );
}

async fn trimming_by_age_respects_every_group(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.retention = Retention {
            max_length: None,
            max_age: Some(Duration::from_millis(1)),
        }
    })
    .await;
    for i in 0..20 {
        enqueue(
            &mut f.conn,
            &f.cfg.keys,
            &json!(i),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    }
    let got = read(&mut f.conn, &f.cfg, "w", 8, None).await;
    for d in &got[..5] {
        ack(&mut f.conn, &f.cfg, &d.entry_id).await;
    }
    let (conn, cfg) = (f.conn.clone(), f.cfg.clone());
    // Entries age a millisecond at a time: one pass may cut only some of the five.
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let removed = eventually(WAIT, "the acknowledged entries to age", || {
        let (mut conn, cfg, total) = (conn.clone(), cfg.clone(), total.clone());
        async move {
            let n = janitor::trim(&mut conn, &cfg, &opts()).await.unwrap().0;
            let sum = total.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
            Some(sum).filter(|s| *s >= 5)
        }
    })
    .await;
    assert_eq!(removed, 5);
    assert_eq!(
        entries(&mut f.conn, STREAM).await[0].entry_id,
        got[5].entry_id
    );
    // With no group at all nothing says what was consumed: nothing is trimmed.
    let () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(STREAM)
        .arg("workers")
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    assert_eq!(
        janitor::trim(&mut f.conn, &f.cfg, &opts()).await.unwrap().0,
        0
    );
    assert_eq!(entries(&mut f.conn, STREAM).await.len(), 15);
}

async fn metrics_for_many_queues_in_one_snapshot(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_secs(3600)
    })
    .await;
    // Queues spread over many slots (and so over all cluster nodes).
    let mut cfgs = Vec::new();
    for i in 0..12 {
        let cfg = QueueConfig::new(format!("jobqueue:{{ns/q{i}}}"));
        provision(&mut f.conn, &cfg, false).await.unwrap();
        for j in 0..i {
            enqueue(
                &mut f.conn,
                &cfg.keys,
                &json!(j),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap();
        }
        let got = match i / 2 {
            0 => Vec::new(), // COUNT 0 would mean "everything"
            n => read(&mut f.conn, &cfg, "w1", n, None).await,
        };
        if let Some(d) = got.first() {
            ack(&mut f.conn, &cfg, &d.entry_id).await;
        }
        let later = EnqueueOptions {
            due: Due::After(Duration::from_secs(600)),
            ..Default::default()
        };
        enqueue(&mut f.conn, &cfg.keys, &json!("later"), &later)
            .await
            .unwrap();
        cfgs.push(cfg);
    }
    let missing_stream = QueueConfig::new("jobqueue:{ns/missing}");
    let mut missing_group = QueueConfig::new("jobqueue:{ns/q3}");
    missing_group.group = "nobody".into();
    cfgs.push(missing_stream);
    cfgs.push(missing_group);
    let () = redis::cmd("SET")
        .arg("{bad}")
        .arg("x")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    cfgs.push(QueueConfig::new("{bad}"));

    let results = snapshot(&mut f.conn, &cfgs, SnapshotOptions::default())
        .await
        .unwrap();
    assert_eq!(results.len(), cfgs.len());
    for (i, r) in results.iter().take(12).enumerate() {
        let QueueState::Ready(m) = r.as_ref().unwrap() else {
            panic!("q{i}: {r:?}")
        };
        let i = i as u64;
        let read_n = i / 2;
        let acked = u64::from(read_n > 0);
        assert_eq!(m.length, i, "q{i}");
        assert_eq!(
            (m.lag, m.lag_source),
            (i - read_n, LagSource::Reported),
            "q{i}"
        );
        assert_eq!(m.pending, read_n - acked, "q{i}");
        assert_eq!(m.backlog(), i - read_n + read_n - acked);
        assert_eq!(m.delayed, 1);
        assert_eq!(m.dead_letter_length, 0);
        assert_eq!(m.oldest_pending_age.is_some(), m.pending > 0);
        if read_n > 0 {
            assert_eq!(m.consumers.len(), 1);
            assert_eq!(
                (m.consumers[0].name.as_str(), m.consumers[0].pending),
                ("w1", m.pending)
            );
        }
    }
    assert!(
        matches!(
            results[12],
            Ok(QueueState::StreamMissing { delayed: 0, .. })
        ),
        "{:?}",
        results[12]
    );
    assert!(
        matches!(results[13], Ok(QueueState::GroupMissing { length: 3, .. })),
        "{:?}",
        results[13]
    );
    assert!(
        matches!(&results[14], Err(QueueError::WrongType { .. })),
        "{:?}",
        results[14]
    );
}

async fn nil_lag_is_estimated_not_replaced_by_xlen(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let mut entry_ids = Vec::new();
    for i in 0..10 {
        entry_ids.push(
            enqueue(
                &mut f.conn,
                &f.cfg.keys,
                &json!(i),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .entry_id
            .unwrap(),
        );
    }
    for d in read(&mut f.conn, &f.cfg, "w", 4, None).await {
        ack(&mut f.conn, &f.cfg, &d.entry_id).await;
    }
    // Deleting an undelivered entry makes Redis report lag as nil.
    let () = redis::cmd("XDEL")
        .arg(STREAM)
        .arg(&entry_ids[7])
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let get = |r: Vec<Result<QueueState, QueueError>>| match r.into_iter().next().unwrap().unwrap()
    {
        QueueState::Ready(m) => m,
        other => panic!("{other:?}"),
    };
    let m = get(snapshot(
        &mut f.conn,
        std::slice::from_ref(&f.cfg),
        SnapshotOptions::default(),
    )
    .await
    .unwrap());
    assert_eq!(
        (m.lag, m.lag_source),
        (5, LagSource::Estimated),
        "entries 5..10 minus the deleted one"
    );
    assert_eq!(m.length, 9, "XLEN would have said 9");
    let m = get(snapshot(
        &mut f.conn,
        std::slice::from_ref(&f.cfg),
        SnapshotOptions {
            lag_estimate_bound: 3,
        },
    )
    .await
    .unwrap());
    assert_eq!((m.lag, m.lag_source), (3, LagSource::AtLeast));
    // XGROUP SETID without ENTRIESREAD: also nil.
    let () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(STREAM)
        .arg("workers")
        .arg(&entry_ids[1])
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let m = get(snapshot(
        &mut f.conn,
        std::slice::from_ref(&f.cfg),
        SnapshotOptions::default(),
    )
    .await
    .unwrap());
    assert_eq!(m.lag, 7, "entries after id 1, minus the deleted one");
    assert_ne!(m.lag_source, LagSource::Reported);
}

/// Random enqueues, reads and acks by two groups, with trims at random maxLength: after every
/// trim each entry some group has not delivered or acknowledged is still there, and the trim
/// went as far as it could (the head is needed, or the stream is within maxLength).
async fn random_trims_never_remove_needed_entries(t: Topology) {
    use rand::random_range;
    use std::collections::BTreeSet;
    let mut f = queue(t, STREAM, |_| {}).await;
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("audit")
        .arg("$")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let groups = [
        f.cfg.clone(),
        QueueConfig {
            group: "audit".into(),
            ..f.cfg.clone()
        },
    ];
    let mut all: Vec<String> = Vec::new(); // entry ids in stream order
    let mut delivered = [0usize; 2]; // prefix of `all` delivered to each group
    let mut pending: [BTreeSet<String>; 2] = Default::default();
    for round in 0..60 {
        match random_range(0..4) {
            0 => {
                for _ in 0..random_range(1..15) {
                    let e = enqueue(
                        &mut f.conn,
                        &f.cfg.keys,
                        &json!(round),
                        &EnqueueOptions::default(),
                    )
                    .await
                    .unwrap();
                    all.push(e.entry_id.unwrap());
                }
            }
            1 => {
                let g = random_range(0..2);
                for d in read(&mut f.conn, &groups[g], "c", random_range(1..12), None).await {
                    assert_eq!(
                        d.entry_id, all[delivered[g]],
                        "delivered in order, none skipped"
                    );
                    delivered[g] += 1;
                    pending[g].insert(d.entry_id);
                }
            }
            2 => {
                let g = random_range(0..2);
                let chosen: Vec<String> = pending[g]
                    .iter()
                    .filter(|_| rand::random_bool(0.6))
                    .cloned()
                    .collect();
                for id in chosen {
                    assert!(ack(&mut f.conn, &groups[g], &id).await);
                    pending[g].remove(&id);
                }
            }
            _ => {
                let max_len = random_range(0..20u64);
                let mut cfg = f.cfg.clone();
                cfg.retention = Retention {
                    max_length: Some(max_len),
                    max_age: None,
                };
                janitor::trim(&mut f.conn, &cfg, &opts()).await.unwrap();
                let left: BTreeSet<String> = entries(&mut f.conn, STREAM)
                    .await
                    .into_iter()
                    .map(|d| d.entry_id)
                    .collect();
                let mut needed: BTreeSet<String> = BTreeSet::new();
                for g in 0..2 {
                    needed.extend(pending[g].iter().cloned());
                    needed.extend(all[delivered[g]..].iter().cloned());
                }
                let lost: Vec<_> = needed.difference(&left).collect();
                assert!(
                    lost.is_empty(),
                    "round {round}: trimmed needed entries {lost:?}"
                );
                if let Some(head) = left.iter().next() {
                    assert!(
                        left.len() as u64 <= max_len || needed.contains(head),
                        "round {round}: trim stopped early at {head}"
                    );
                }
            }
        }
    }
}

/// The worker contract for long jobs: `XCLAIM <stream> <group> <me> 0 <id> JUSTID` resets the
/// idle time, so the janitor leaves the job alone. (Idle times are set explicitly with
/// XCLAIM IDLE instead of waiting.)
async fn xclaim_justid_keeps_a_long_job(t: Topology) {
    let mut f = queue(t, STREAM, |c| {
        c.visibility_timeout = Duration::from_secs(600)
    })
    .await;
    for i in 0..2 {
        enqueue(
            &mut f.conn,
            &f.cfg.keys,
            &json!(i),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    }
    let got = read(&mut f.conn, &f.cfg, "long-worker", 2, None).await;
    let xclaim = |id: &str, idle: Option<u64>| {
        let mut c = redis::cmd("XCLAIM");
        c.arg(STREAM)
            .arg("workers")
            .arg("long-worker")
            .arg(0)
            .arg(id);
        if let Some(ms) = idle {
            c.arg("IDLE").arg(ms);
        }
        c.arg("JUSTID");
        c
    };
    // Both deliveries look an hour old, past the 10 minute visibility timeout...
    for d in &got {
        let _: Vec<String> = xclaim(&d.entry_id, Some(3_600_000))
            .query_async(&mut f.conn)
            .await
            .unwrap();
    }
    // ...but the worker keeps the first one alive.
    let kept: Vec<String> = xclaim(&got[0].entry_id, None)
        .query_async(&mut f.conn)
        .await
        .unwrap();
    assert_eq!(kept, [got[0].entry_id.clone()]);
    let r = janitor::reclaim_expired(&mut f.conn, &f.cfg, &opts())
        .await
        .unwrap();
    assert_eq!(
        r.retried, 1,
        "only the job without keep-alive is handed out again"
    );
    assert!(
        ack(&mut f.conn, &f.cfg, &got[0].entry_id).await,
        "the kept job is still the worker's"
    );
    assert!(
        !ack(&mut f.conn, &f.cfg, &got[1].entry_id).await,
        "the other one was reclaimed"
    );
    let again = read(&mut f.conn, &f.cfg, "other", 10, None).await;
    assert_eq!(
        (again.len(), again[0].job_id(), again[0].attempt()),
        (1, got[1].job_id(), 2)
    );
}

async fn script_errors_are_typed(t: Topology) {
    let mut f = queue(t, STREAM, |_| {}).await;
    let () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(STREAM)
        .arg("workers")
        .query_async(&mut f.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let err = janitor::tick(&mut f.conn, &f.cfg, &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueueError::NoSuchGroup { group, .. } if group == "workers"),
        "{err}"
    );
    let () = redis::cmd("SET")
        .arg("{str}")
        .arg("x")
        .query_async(&mut f.conn)
        .await
        .unwrap();
    let cfg = QueueConfig::new("{str}");
    let err = enqueue(
        &mut f.conn,
        &cfg.keys,
        &json!(1),
        &EnqueueOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, QueueError::WrongType { key, actual, .. } if key == "{str}" && actual == "string"),
        "{err}"
    );
    let err = janitor::tick(&mut f.conn, &cfg, &opts()).await.unwrap_err();
    assert!(matches!(&err, QueueError::WrongType { .. }), "{err}");
    let gone = QueueConfig::new("jobqueue:{nowhere}");
    let err = janitor::tick(&mut f.conn, &gone, &opts())
        .await
        .unwrap_err();
    assert!(matches!(&err, QueueError::NoSuchStream { .. }), "{err}");
}

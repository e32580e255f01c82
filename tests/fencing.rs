//! Leadership fencing (docs/architecture.md#operator-loops), on a real redis-server: once a
//! queue is provisioned by leadership term 7, a janitor pass of term 6 (a deposed leader still
//! running) changes nothing and says `FENCED`, term 7 and later act, provisioning by an older
//! term is refused, and term 0 (local mode, the CLI) is never fenced.

use std::time::Duration;

use jobqueue_operator::queue::config::QueueConfig;
use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::keys::default_stream;
use jobqueue_operator::queue::{connect, provision};
use jobqueue_test_support::redis::RedisServer;

fn at_term(cfg: &QueueConfig, term: u64) -> QueueConfig {
    QueueConfig {
        term,
        ..cfg.clone()
    }
}

async fn pending(conn: &mut jobqueue_operator::queue::RedisConn, stream: &str) -> u64 {
    let summary: (u64, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg("workers")
        .query_async(conn)
        .await
        .expect("XPENDING");
    summary.0
}

#[tokio::test]
async fn an_older_leadership_term_is_fenced_out() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.expect("connect");
    let mut cfg = QueueConfig::new(default_stream("ns", "fenced"));
    cfg.retention.max_length = Some(1);
    let stream = cfg.stream().to_string();
    provision::provision(&mut conn, &at_term(&cfg, 7), false)
        .await
        .expect("provisioned by term 7");
    let epoch: String = redis::cmd("GET")
        .arg(cfg.keys.epoch())
        .query_async(&mut conn)
        .await
        .expect("GET epoch");
    assert_eq!(epoch, "7");

    for i in 0..3 {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("id")
            .arg(format!("j{i}"))
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("c1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP");
    let opts = JanitorOptions::default();

    // Term 6: every janitor step is refused and nothing moves.
    let old = at_term(&cfg, 6);
    let err = janitor::reclaim_consumer(&mut conn, &old, "c1", &opts)
        .await
        .expect_err("term 6 is fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");
    assert_eq!(pending(&mut conn, &stream).await, 1, "c1 keeps its job");
    let err = janitor::trim(&mut conn, &old, &opts)
        .await
        .expect_err("trim fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");
    let err = janitor::reap_idle_consumers(&mut conn, &old, Duration::ZERO)
        .await
        .expect_err("reap fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");
    // A due delayed job: promotion has work to do, and a pass of term 6 must not do it.
    let _: i64 = redis::cmd("ZADD")
        .arg(cfg.keys.delayed())
        .arg(0)
        .arg(r#"{"id":"late","payload":"{}"}"#)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    let err = janitor::promote_due(&mut conn, &old, &opts)
        .await
        .expect_err("promote fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");
    let waiting: i64 = redis::cmd("ZCARD")
        .arg(cfg.keys.delayed())
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    assert_eq!(waiting, 1, "the delayed job stays where it was");
    let err = provision::provision(&mut conn, &old, true)
        .await
        .expect_err("provisioning by term 6 is fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");

    // Term 7 acts.
    let reclaimed = janitor::reclaim_consumer(&mut conn, &at_term(&cfg, 7), "c1", &opts)
        .await
        .expect("term 7 acts");
    assert_eq!(reclaimed.retried, 1);
    assert_eq!(pending(&mut conn, &stream).await, 0);
    let (promoted, _) = janitor::promote_due(&mut conn, &at_term(&cfg, 7), &opts)
        .await
        .expect("term 7 promotes");
    assert_eq!(promoted, 1);

    // A newer term takes over; term 7 is fenced out in turn. Term 0 never is.
    provision::provision(&mut conn, &at_term(&cfg, 8), true)
        .await
        .expect("term 8 provisions");
    let err = janitor::trim(&mut conn, &at_term(&cfg, 7), &opts)
        .await
        .expect_err("term 7 fenced after term 8");
    assert!(err.to_string().contains("FENCED"), "{err}");
    janitor::trim(&mut conn, &at_term(&cfg, 0), &opts)
        .await
        .expect("term 0 is not fenced");
}

/// The scheduler's fire script is fenced the same way: a deposed leader's run fires nothing.
#[tokio::test]
async fn a_deposed_leaders_schedule_run_fires_nothing() {
    use jobqueue_operator::queue::schedules::{self, FireOutcome, FireRequest, ScheduleDefinition};

    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.expect("connect");
    let cfg = at_term(&QueueConfig::new(default_stream("ns", "cron")), 9);
    provision::provision(&mut conn, &cfg, false)
        .await
        .expect("provisioned by term 9");
    let now = schedules::redis_time_ms(&mut conn).await.expect("TIME");
    schedules::upsert(
        &mut conn,
        &cfg.keys,
        &ScheduleDefinition::new("minutely", "* * * * *"),
        now,
    )
    .await
    .expect("upsert");
    let stored = schedules::get(&mut conn, &cfg.keys, "minutely")
        .await
        .expect("get")
        .expect("stored");
    let due: Option<f64> = redis::cmd("ZSCORE")
        .arg(cfg.keys.schedules())
        .arg("minutely")
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    let due = due.expect("armed") as i64;
    let request = FireRequest {
        name: "minutely".into(),
        expected_ms: due,
        revision: stored.revision,
        fire_ms: Some(due),
        next_ms: Some(due + 60_000),
        missed: 0,
    };
    let old = schedules::fire_many(
        &mut conn,
        &cfg.keys,
        "workers",
        8,
        std::slice::from_ref(&request),
    )
    .await
    .expect("round trip");
    let err = old[0].as_ref().expect_err("term 8 is fenced");
    assert!(err.to_string().contains("FENCED"), "{err}");
    let len: u64 = redis::cmd("XLEN")
        .arg(cfg.stream())
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "nothing was enqueued");
    let current = schedules::fire_many(&mut conn, &cfg.keys, "workers", 9, &[request])
        .await
        .expect("round trip");
    assert!(
        matches!(current[0], Ok(FireOutcome::Fired { .. })),
        "{current:?}"
    );
}

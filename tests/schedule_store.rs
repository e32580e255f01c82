//! Schedule entries and the firing script on a real redis-server (and a real three-node
//! cluster), plus the scheduler loop's `Forbid` and wake-up behaviour.

use std::sync::Arc;
use std::time::Duration;

use jobqueue_operator::queue::config::{Backoff, QueueConfig};
use jobqueue_operator::queue::conn::{TlsOptions, connect_with};
use jobqueue_operator::queue::janitor::{self, JanitorOptions};
use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_operator::queue::scheduler::{
    ScheduledQueue, Scheduler, SchedulerConfig, spawn_change_listener,
};
use jobqueue_operator::queue::schedules::ConcurrencyPolicy;
use jobqueue_operator::queue::schedules::{
    self, FireOutcome, FireRequest, ScheduleDefinition, UpsertOutcome, job_id,
};
use jobqueue_operator::queue::{RedisConn, connect};
use jobqueue_test_support::redis::{RedisServer, TestRedis, TlsRedisServer, Topology};
use jobqueue_test_support::schedule::{by_schedule, jobs};
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;
use redis::AsyncCommands;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn ms(s: &str) -> i64 {
    t(s).as_millisecond()
}

async fn score(conn: &mut RedisConn, keys: &QueueKeys, name: &str) -> Option<i64> {
    let s: Option<f64> = conn.zscore(keys.schedules(), name).await.unwrap();
    s.map(|s| s as i64)
}

async fn revision(conn: &mut RedisConn, keys: &QueueKeys, name: &str) -> i64 {
    schedules::get(conn, keys, name)
        .await
        .unwrap()
        .expect("schedule exists")
        .revision
}

#[tokio::test]
async fn a_run_fires_exactly_once_when_two_schedulers_race_on_it() {
    for topology in Topology::ALL {
        let redis = TestRedis::start(topology);
        let (mut a, mut b) = (
            connect(&redis.url()).await.unwrap(),
            connect(&redis.url()).await.unwrap(),
        );
        let keys = QueueKeys::new(default_stream("team-a", "reports"));
        let mut def = ScheduleDefinition::new("nightly", "0 0 * * *");
        def.payload = r#"{"report":"daily"}"#.into();
        let armed = schedules::upsert(
            &mut a,
            &keys,
            &def,
            t("2026-05-04T10:00:00Z").as_millisecond(),
        )
        .await
        .unwrap();
        assert_eq!(
            armed,
            UpsertOutcome::Armed(t("2026-05-05T00:00:00Z").as_millisecond()),
            "{topology:?}"
        );
        let due = ms("2026-05-05T00:00:00Z");
        assert_eq!(score(&mut a, &keys, "nightly").await, Some(due));

        let request = FireRequest {
            name: "nightly".into(),
            expected_ms: due,
            revision: revision(&mut a, &keys, "nightly").await,
            fire_ms: Some(due),
            next_ms: Some(ms("2026-05-06T00:00:00Z")),
            missed: 0,
        };
        let (ra, rb) = tokio::join!(
            schedules::fire(&mut a, &keys, "workers", &request),
            schedules::fire(&mut b, &keys, "workers", &request),
        );
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let fired = outcomes
            .iter()
            .filter(|o| matches!(o, FireOutcome::Fired { .. }))
            .count();
        let stale = outcomes
            .iter()
            .filter(|o| **o == FireOutcome::Stale)
            .count();
        assert_eq!((fired, stale), (1, 1), "{topology:?}: {outcomes:?}");
        // A replay of the same request later changes nothing either.
        assert_eq!(
            schedules::fire(&mut b, &keys, "workers", &request)
                .await
                .unwrap(),
            FireOutcome::Stale
        );

        let jobs = jobs(&mut a, &keys.stream).await;
        assert_eq!(jobs.len(), 1, "{topology:?}");
        let job = &jobs[0];
        assert_eq!(job.id, job_id("nightly", due));
        assert_eq!(job.id, format!("sched-nightly-{due}"));
        assert_eq!(job.payload, r#"{"report":"daily"}"#);
        assert_eq!(
            (job.attempt, job.schedule.as_str(), job.scheduled_for),
            (1, "nightly", due)
        );
        let wall = Timestamp::now().as_millisecond();
        assert!(
            (job.enqueued_at - wall).abs() < 60_000,
            "enqueued_at is Redis's clock in unix ms: {}",
            job.enqueued_at
        );

        let state = schedules::get(&mut a, &keys, "nightly")
            .await
            .unwrap()
            .unwrap()
            .state;
        assert_eq!(
            state.last_schedule_ms,
            Some(t("2026-05-05T00:00:00Z").as_millisecond())
        );
        assert_eq!(
            state.next_schedule_ms,
            Some(t("2026-05-06T00:00:00Z").as_millisecond())
        );
        assert_eq!(state.last_job_id.as_deref(), Some(job.id.as_str()));
        assert_eq!(state.last_entry_id.as_deref(), Some(job.entry_id.as_str()));
        assert_eq!((state.missed_runs, state.skipped_runs), (0, 0));
    }
}

#[tokio::test]
async fn updates_never_fire_a_run_twice_nor_with_a_stale_definition() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new("legacy-jobs");
    let mut def = ScheduleDefinition::new("tick", "*/10 * * * * *");
    let t0 = "2026-05-04T10:00:00Z";
    assert_eq!(
        schedules::upsert(&mut conn, &keys, &def, t(t0).as_millisecond())
            .await
            .unwrap(),
        UpsertOutcome::Armed(t("2026-05-04T10:00:10Z").as_millisecond())
    );
    let old_revision = revision(&mut conn, &keys, "tick").await;

    // Same cron and zone, new payload: the armed run stays.
    def.payload = r#"{"v":2}"#.into();
    def.generation = 2;
    assert_eq!(
        schedules::upsert(
            &mut conn,
            &keys,
            &def,
            t("2026-05-04T10:00:05Z").as_millisecond()
        )
        .await
        .unwrap(),
        UpsertOutcome::Kept(t("2026-05-04T10:00:10Z").as_millisecond())
    );
    // A scheduler that computed with the old definition is refused, and enqueues nothing.
    let stale_def = FireRequest {
        name: "tick".into(),
        expected_ms: ms("2026-05-04T10:00:10Z"),
        revision: old_revision,
        fire_ms: Some(ms("2026-05-04T10:00:10Z")),
        next_ms: Some(ms("2026-05-04T10:00:20Z")),
        missed: 0,
    };
    assert_eq!(
        schedules::fire(&mut conn, &keys, "workers", &stale_def)
            .await
            .unwrap(),
        FireOutcome::DefinitionChanged
    );
    assert!(jobs(&mut conn, &keys.stream).await.is_empty());
    let current = FireRequest {
        revision: revision(&mut conn, &keys, "tick").await,
        ..stale_def
    };
    assert!(matches!(
        schedules::fire(&mut conn, &keys, "workers", &current)
            .await
            .unwrap(),
        FireOutcome::Fired { .. }
    ));
    assert_eq!(jobs(&mut conn, &keys.stream).await[0].payload, r#"{"v":2}"#);

    // A changed cron, applied by a replica whose clock lags the run already fired (10:00:10),
    // is armed strictly after that run rather than re-firing it.
    def.cron = "*/15 * * * * *".into();
    assert_eq!(
        schedules::upsert(
            &mut conn,
            &keys,
            &def,
            t("2026-05-04T10:00:05Z").as_millisecond()
        )
        .await
        .unwrap(),
        UpsertOutcome::Armed(t("2026-05-04T10:00:15Z").as_millisecond())
    );

    // Suspend disarms; resuming arms the next run after "now" (runs in between do not fire).
    def.suspend = true;
    assert_eq!(
        schedules::upsert(
            &mut conn,
            &keys,
            &def,
            t("2026-05-04T10:00:12Z").as_millisecond()
        )
        .await
        .unwrap(),
        UpsertOutcome::Suspended
    );
    assert_eq!(score(&mut conn, &keys, "tick").await, None);
    let state = schedules::get(&mut conn, &keys, "tick")
        .await
        .unwrap()
        .unwrap();
    assert!(state.definition.suspend);
    assert_eq!(state.state.next_schedule_ms, None);
    def.suspend = false;
    assert_eq!(
        schedules::upsert(
            &mut conn,
            &keys,
            &def,
            t("2026-05-04T10:01:00Z").as_millisecond()
        )
        .await
        .unwrap(),
        UpsertOutcome::Armed(t("2026-05-04T10:01:15Z").as_millisecond())
    );

    // Missed runs reported by a scheduler are counted without enqueuing anything.
    let advance = FireRequest {
        name: "tick".into(),
        expected_ms: ms("2026-05-04T10:01:15Z"),
        revision: revision(&mut conn, &keys, "tick").await,
        fire_ms: None,
        next_ms: Some(ms("2026-05-04T10:02:00Z")),
        missed: 3,
    };
    assert_eq!(
        schedules::fire(&mut conn, &keys, "workers", &advance)
            .await
            .unwrap(),
        FireOutcome::Advanced
    );
    let stored = schedules::get(&mut conn, &keys, "tick")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.missed_runs, 3);
    assert_eq!(
        stored.state.next_schedule_ms,
        Some(t("2026-05-04T10:02:00Z").as_millisecond())
    );
    assert_eq!(jobs(&mut conn, &keys.stream).await.len(), 1);

    // Removal deletes both the armed run and the hash.
    assert!(schedules::remove(&mut conn, &keys, "tick").await.unwrap());
    assert!(
        schedules::get(&mut conn, &keys, "tick")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(score(&mut conn, &keys, "tick").await, None);
    assert!(!schedules::remove(&mut conn, &keys, "tick").await.unwrap());
}

#[tokio::test]
async fn bad_definitions_are_rejected_before_anything_is_written() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new("q");
    let mut def = ScheduleDefinition::new("bad", "0 0 30 2 *");
    let err = schedules::upsert(&mut conn, &keys, &def, Timestamp::now().as_millisecond())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule \"bad\": spec.schedule: day-of-month field: \"30\" never occurs in the selected months \"2\""
    );
    def.cron = "@daily".into();
    def.time_zone = "Europe/Atlantis".into();
    let err = schedules::upsert(&mut conn, &keys, &def, Timestamp::now().as_millisecond())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.timeZone: unknown time zone \"Europe/Atlantis\""),
        "{err}"
    );
    let exists: bool = conn.exists(keys.schedule("bad")).await.unwrap();
    assert!(!exists);
}

fn queue(keys: &QueueKeys) -> ScheduledQueue {
    ScheduledQueue {
        keys: keys.clone(),
        group: "workers".into(),
        term: 0,
    }
}

/// Creates the queue's group, writes an every-second `concurrencyPolicy: Forbid` schedule
/// "sync" and starts a scheduler loop on it; send on the returned channel to stop the loop.
async fn start_forbid_schedule(
    url: &str,
    conn: &mut RedisConn,
    keys: &QueueKeys,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg("workers")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .unwrap();
    let mut def = ScheduleDefinition::new("sync", "* * * * * *");
    def.concurrency_policy = ConcurrencyPolicy::Forbid;
    schedules::upsert(conn, keys, &def, Timestamp::now().as_millisecond())
        .await
        .unwrap();
    let scheduler = Scheduler::new(connect(url).await.unwrap(), SchedulerConfig::default());
    scheduler.handle().set_queues(vec![queue(keys)]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test]
async fn forbid_skips_while_the_previous_job_is_unread_or_pending_and_fires_once_acked() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new(default_stream("ns", "forbid"));
    let (stop, task) = start_forbid_schedule(&server.url(), &mut conn, &keys).await;

    let state = |mut c: RedisConn, k: QueueKeys| async move {
        schedules::get(&mut c, &k, "sync")
            .await
            .unwrap()
            .unwrap()
            .state
    };
    let first = eventually(Duration::from_secs(10), "the first job", || {
        let mut c = conn.clone();
        let k = keys.clone();
        async move { jobs(&mut c, &k.stream).await.into_iter().next() }
    })
    .await;

    // Unread by the group: the following runs are skipped.
    eventually(
        Duration::from_secs(10),
        "two skipped runs while unread",
        || {
            let (c, k) = (conn.clone(), keys.clone());
            async move { (state(c, k).await.skipped_runs >= 2).then_some(()) }
        },
    )
    .await;
    assert_eq!(jobs(&mut conn, &keys.stream).await.len(), 1);

    // Delivered but not acknowledged: still skipped.
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 1);
    assert_eq!(read.keys[0].ids[0].id, first.entry_id);
    let skipped_while_unread = state(conn.clone(), keys.clone()).await.skipped_runs;
    eventually(Duration::from_secs(10), "two more skipped runs while pending", || {
        let (c, k) = (conn.clone(), keys.clone());
        async move { (state(c, k).await.skipped_runs >= skipped_while_unread + 2).then_some(()) }
    })
    .await;
    assert_eq!(jobs(&mut conn, &keys.stream).await.len(), 1);

    // Acknowledged: the next run fires.
    let acked: i64 = conn
        .xack(&keys.stream, "workers", &[&first.entry_id])
        .await
        .unwrap();
    assert_eq!(acked, 1);
    let second = eventually(Duration::from_secs(10), "a job after the ack", || {
        let mut c = conn.clone();
        let k = keys.clone();
        async move { jobs(&mut c, &k.stream).await.into_iter().nth(1) }
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();

    // Every run between the two jobs was skipped (or, had the loop stalled, missed): none lost
    // from the accounting, none fired.
    let s = state(conn.clone(), keys.clone()).await;
    let between = (second.scheduled_for - first.scheduled_for) / 1000 - 1;
    assert_eq!(s.skipped_runs + s.missed_runs, between as u64, "{s:?}");
    assert!(s.skipped_runs >= skipped_while_unread + 2);
    assert_eq!(s.last_job_id.as_deref(), Some(second.id.as_str()));
    assert_eq!(jobs(&mut conn, &keys.stream).await.len(), 2);
}

#[tokio::test]
async fn a_sleeping_scheduler_is_woken_by_a_change_published_elsewhere() {
    let server = RedisServer::start();
    woken_by_a_change(server.url(), TlsOptions::default()).await;
}

/// The change listener connects with the queue's TLS settings (here a private CA).
#[tokio::test]
async fn the_change_listener_uses_the_endpoints_tls_settings() {
    let server = TlsRedisServer::start();
    let tls = TlsOptions {
        ca_pem: Some(server.ca_pem().as_bytes().to_vec()),
        insecure_skip_verify: false,
    };
    woken_by_a_change(server.url(), tls).await;
}

async fn woken_by_a_change(url: String, tls: TlsOptions) {
    let mut conn = connect_with(&url, &tls).await.unwrap();
    let keys = QueueKeys::new(default_stream("ns", "wake"));
    // Only a far-away run exists, and the safety-net sleep is a minute: only the change
    // notification can make the loop fire within the deadline below.
    schedules::upsert(
        &mut conn,
        &keys,
        &ScheduleDefinition::new("yearly", "@yearly"),
        Timestamp::now().as_millisecond(),
    )
    .await
    .unwrap();
    let config = SchedulerConfig {
        max_sleep: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::new(connect_with(&url, &tls).await.unwrap(), config);
    let handle = scheduler.handle();
    handle.set_queues(vec![queue(&keys)]);
    let listener = spawn_change_listener(url.clone(), tls.clone(), handle.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    // Let the loop fall asleep on the yearly run and the listener subscribe.
    eventually(Duration::from_secs(10), "the listener to subscribe", || {
        let mut c = conn.clone();
        async move {
            let n: Vec<(String, i64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(schedules::CHANGES_CHANNEL)
                .query_async(&mut c)
                .await
                .unwrap();
            (n[0].1 == 1).then_some(())
        }
    })
    .await;

    let start = Timestamp::now();
    schedules::upsert(
        &mut conn,
        &keys,
        &ScheduleDefinition::new("soon", "* * * * * *"),
        start.as_millisecond(),
    )
    .await
    .unwrap();
    let job = eventually(Duration::from_secs(20), "the new schedule to fire", || {
        let mut c = conn.clone();
        let k = keys.clone();
        async move { jobs(&mut c, &k.stream).await.into_iter().next() }
    })
    .await;
    assert_eq!(job.schedule, "soon");
    assert!(job.scheduled_for > start.as_millisecond());
    let _ = stop.send(());
    task.await.unwrap();
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_fires_schedules_of_queues_in_different_cluster_slots() {
    let redis = TestRedis::start(Topology::Cluster);
    let mut conn = connect(&redis.url()).await.unwrap();
    let queues: Vec<QueueKeys> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|q| QueueKeys::new(default_stream("ns", q)))
        .collect();
    let start = Timestamp::now();
    for keys in &queues {
        for i in 0..10 {
            let def = ScheduleDefinition::new(format!("s{i}"), "* * * * * *");
            schedules::upsert(&mut conn, keys, &def, start.as_millisecond())
                .await
                .unwrap();
        }
    }
    let scheduler = Scheduler::new(
        connect(&redis.url()).await.unwrap(),
        SchedulerConfig::default(),
    );
    scheduler
        .handle()
        .set_queues(queues.iter().map(queue).collect());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));
    // Wait until every schedule of every queue has fired its third run.
    let third_run = (start.as_millisecond() / 1000 + 3) * 1000;
    for keys in &queues {
        eventually(
            Duration::from_secs(20),
            "three runs of every schedule",
            || {
                let (mut c, k) = (conn.clone(), keys.clone());
                async move {
                    let j = jobs(&mut c, &k.stream).await;
                    (j.iter().filter(|j| j.scheduled_for == third_run).count() == 10).then_some(())
                }
            },
        )
        .await;
    }
    let _ = stop.send(());
    task.await.unwrap();
    for keys in &queues {
        for (name, list) in by_schedule(&jobs(&mut conn, &keys.stream).await) {
            let seconds: Vec<i64> = list.iter().map(|j| j.scheduled_for).collect();
            let expected: Vec<i64> = (0..seconds.len() as i64)
                .map(|k| third_run - 2000 + k * 1000)
                .collect();
            assert_eq!(seconds, expected, "{}/{name}", keys.stream);
        }
    }
}

#[tokio::test]
async fn one_broken_queue_does_not_hold_back_the_others() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let [broken_set, broken_stream, healthy] =
        ["broken-set", "broken-stream", "healthy"].map(|q| QueueKeys::new(default_stream("ns", q)));
    let upserted = t("2026-05-04T10:00:00.500Z");
    for keys in [&broken_stream, &healthy] {
        schedules::upsert(
            &mut conn,
            keys,
            &ScheduleDefinition::new("s", "* * * * * *"),
            upserted.as_millisecond(),
        )
        .await
        .unwrap();
    }
    // Another program's keys of the wrong type where the schedules zset and a stream belong.
    let () = conn
        .set(broken_set.schedules(), "not a zset")
        .await
        .unwrap();
    let () = conn
        .set(&broken_stream.stream, "not a stream")
        .await
        .unwrap();

    let mut scheduler = Scheduler::new(conn.clone(), SchedulerConfig::default());
    scheduler
        .handle()
        .set_queues([&broken_set, &broken_stream, &healthy].map(queue).to_vec());
    let report = scheduler
        .tick("2026-05-04T10:00:01.200Z".parse().unwrap())
        .await
        .unwrap();
    assert_eq!((report.fired, report.errors), (1, 2), "{report:?}");
    let fired = jobs(&mut conn, &healthy.stream).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_for, ms("2026-05-04T10:00:01Z"));
    // The failed run stays armed for the next pass rather than being lost.
    assert_eq!(
        score(&mut conn, &broken_stream, "s").await,
        Some(ms("2026-05-04T10:00:01Z"))
    );
    assert_eq!(report.next_due_ms, Some(ms("2026-05-04T10:00:01Z")));
}

/// `concurrencyPolicy: Forbid` on a run whose job fails and is retried: the retry is the same
/// run, so no new run fires while it waits out its backoff, is unread or is pending; the next
/// run fires once the retry is acknowledged. On a single server and a Redis Cluster (the
/// retry updates the schedule's hash, a key of the same slot).
async fn forbid_follows_a_retried_run(topology: Topology) {
    let redis = TestRedis::start(topology);
    let mut conn = connect(&redis.url()).await.unwrap();
    let keys = QueueKeys::new(default_stream("ns", "forbid-retry"));
    let (stop, task) = start_forbid_schedule(&redis.url(), &mut conn, &keys).await;

    let skipped = |c: RedisConn, k: QueueKeys| async move {
        let mut c = c;
        schedules::get(&mut c, &k, "sync")
            .await
            .unwrap()
            .unwrap()
            .state
            .skipped_runs
    };
    let (skip_conn, skip_keys) = (conn.clone(), keys.clone());
    let two_more_skips = move |what: &'static str| {
        let (c, k) = (skip_conn.clone(), skip_keys.clone());
        async move {
            let from = skipped(c.clone(), k.clone()).await;
            eventually(Duration::from_secs(10), what, || {
                let (c, k) = (c.clone(), k.clone());
                async move { (skipped(c, k).await >= from + 2).then_some(()) }
            })
            .await;
        }
    };
    let read_one = |c: RedisConn, stream: String| async move {
        let mut c = c;
        let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("workers")
            .arg("w1")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(&mut c)
            .await
            .unwrap();
        read.keys[0].ids[0].id.clone()
    };
    let mut cfg = QueueConfig::new(keys.stream.clone());
    cfg.visibility_timeout = Duration::from_millis(1);
    let reclaim_conn = conn.clone();
    let reclaim = move |cfg: QueueConfig| {
        let c = reclaim_conn.clone();
        async move {
            eventually(Duration::from_secs(10), "the job to be retried", || {
                let (mut c, cfg) = (c.clone(), cfg.clone());
                async move {
                    let r = janitor::reclaim_expired(&mut c, &cfg, &JanitorOptions::default())
                        .await
                        .unwrap();
                    (r.retried == 1).then_some(())
                }
            })
            .await;
        }
    };

    let first = eventually(Duration::from_secs(10), "the first job", || {
        let mut c = conn.clone();
        let k = keys.clone();
        async move { jobs(&mut c, &k.stream).await.into_iter().next() }
    })
    .await;
    assert_eq!(
        read_one(conn.clone(), keys.stream.clone()).await,
        first.entry_id
    );

    // The worker lost it; the retry waits out an hour's backoff in the delayed set.
    let mut with_backoff = cfg.clone();
    with_backoff.backoff = Some(Backoff {
        initial: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
        multiplier: 1.0,
    });
    reclaim(with_backoff.clone()).await;
    two_more_skips("two skipped runs while the retry waits").await;
    assert_eq!(jobs(&mut conn, &keys.stream).await.len(), 1);
    // What an older fire script reads stays a stream id (it would fail on anything else).
    let last_entry: String = conn
        .hget(keys.schedule("sync"), "last_entry_id")
        .await
        .unwrap();
    assert_eq!(last_entry, first.entry_id);

    // Due now: promoted into the stream, unread, then delivered and lost once more (retried
    // at once this time).
    let members: Vec<String> = conn.zrange(keys.delayed(), 0, -1).await.unwrap();
    assert_eq!(members.len(), 1);
    let _: i64 = conn.zadd(keys.delayed(), &members[0], 0).await.unwrap();
    let (promoted, _) = janitor::promote_due(&mut conn, &cfg, &JanitorOptions::default())
        .await
        .unwrap();
    assert_eq!(promoted, 1);
    two_more_skips("two skipped runs while the promoted retry is unread").await;
    let promoted_entry = read_one(conn.clone(), keys.stream.clone()).await;
    reclaim(cfg.clone()).await;
    two_more_skips("two skipped runs while the second retry is unread").await;
    let all = jobs(&mut conn, &keys.stream).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().all(|j| j.id == first.id),
        "only retries: {all:?}"
    );
    assert_eq!(all[1].entry_id, promoted_entry);
    assert_eq!(all[2].attempt, 3);

    // Finished: the next run fires.
    let last = read_one(conn.clone(), keys.stream.clone()).await;
    assert_eq!(last, all[2].entry_id);
    let acked: i64 = conn.xack(&keys.stream, "workers", &[&last]).await.unwrap();
    assert_eq!(acked, 1);
    let next = eventually(Duration::from_secs(10), "a new run after the ack", || {
        let mut c = conn.clone();
        let k = keys.clone();
        let retried = first.id.clone();
        async move {
            jobs(&mut c, &k.stream)
                .await
                .into_iter()
                .find(|j| j.id != retried)
        }
    })
    .await;
    assert!(next.scheduled_for > first.scheduled_for);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_follows_a_retried_run_single() {
    forbid_follows_a_retried_run(Topology::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_follows_a_retried_run_cluster() {
    forbid_follows_a_retried_run(Topology::Cluster).await;
}

/// Calls of `command` Redis has run since its stats were last reset (scripts' calls included).
async fn calls(conn: &mut RedisConn, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{}:calls=", command.to_lowercase());
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn reset_stats(conn: &mut RedisConn) {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

/// Queues between runs cost nothing between full passes: a pass reads only the queues with a
/// run due, until a change notice (or the full-pass interval) makes it read all.
#[tokio::test]
async fn passes_read_only_queues_with_a_run_due_until_schedules_change() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let all: Vec<QueueKeys> = (0..20)
        .map(|i| QueueKeys::new(default_stream("rest", &format!("q{i}"))))
        .collect();
    let yearly = ScheduleDefinition::new("yearly", "0 0 0 1 1 *");
    let now = Timestamp::now();
    schedules::upsert(&mut conn, &all[0], &yearly, now.as_millisecond())
        .await
        .unwrap();
    let mut scheduler = Scheduler::new(connect(&server.url()).await.unwrap(), Default::default());
    let handle = scheduler.handle();
    handle.set_queues(all.iter().map(queue).collect());

    reset_stats(&mut conn).await;
    scheduler.tick(Timestamp::now()).await.unwrap();
    assert_eq!(
        calls(&mut conn, "ZRANGE").await,
        20,
        "the first pass reads every queue"
    );

    reset_stats(&mut conn).await;
    let report = scheduler.tick(Timestamp::now()).await.unwrap();
    assert_eq!(
        calls(&mut conn, "ZRANGE").await + calls(&mut conn, "ZRANGEBYSCORE").await,
        0,
        "then nothing: no run is due"
    );
    let yearly_at = score(&mut conn, &all[0], "yearly").await;
    assert_eq!(
        report.next_due_ms, yearly_at,
        "the sleep still ends at the armed run"
    );

    // A schedule added elsewhere, announced by a wake: the next pass reads every queue and
    // finds it; from then on only a queue whose run is due is read.
    let every_second = ScheduleDefinition::new("tick", "* * * * * *");
    schedules::upsert(&mut conn, &all[7], &every_second, now.as_millisecond())
        .await
        .unwrap();
    handle.wake();
    reset_stats(&mut conn).await;
    let report = scheduler.tick(Timestamp::now()).await.unwrap();
    assert_eq!(calls(&mut conn, "ZRANGE").await, 20);
    let tick_at = score(&mut conn, &all[7], "tick").await.unwrap();
    assert_eq!(report.next_due_ms, Some(tick_at));
    reset_stats(&mut conn).await;
    let report = scheduler
        .tick(Timestamp::from_millisecond(tick_at).unwrap())
        .await
        .unwrap();
    assert_eq!(report.fired, 1);
    assert_eq!(
        calls(&mut conn, "ZRANGE").await,
        1,
        "the queue with a run due, nothing else"
    );
    assert_eq!(jobs(&mut conn, &all[7].stream).await.len(), 1);
}

/// A runtime adds queues one by one (thousands at start-up): each added queue is read at the
/// next pass, armed runs and all, without a full pass over the queues already served.
#[tokio::test]
async fn an_added_queue_is_read_without_a_full_pass() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let all: Vec<QueueKeys> = (0..20)
        .map(|i| QueueKeys::new(default_stream("grow", &format!("q{i}"))))
        .collect();
    let every_second = ScheduleDefinition::new("tick", "* * * * * *");
    let now = Timestamp::now();
    schedules::upsert(&mut conn, &all[19], &every_second, now.as_millisecond())
        .await
        .unwrap();
    let served = Arc::new(std::sync::Mutex::new(19));
    let mut scheduler = Scheduler::new(connect(&server.url()).await.unwrap(), Default::default());
    let handle = scheduler.handle();
    let (source_served, source_all) = (served.clone(), all.clone());
    handle.set_source(Arc::new(move || {
        let n = *source_served.lock().unwrap();
        source_all[..n].iter().map(queue).collect()
    }));
    scheduler.tick(Timestamp::now()).await.unwrap();

    *served.lock().unwrap() = 20;
    handle.queues_changed();
    reset_stats(&mut conn).await;
    let due =
        Timestamp::from_millisecond(score(&mut conn, &all[19], "tick").await.unwrap()).unwrap();
    let report = scheduler.tick(due).await.unwrap();
    assert_eq!(report.fired, 1, "the added queue's armed run fires");
    assert_eq!(
        calls(&mut conn, "ZRANGE").await,
        1,
        "only the added queue is read"
    );
    assert_eq!(jobs(&mut conn, &all[19].stream).await.len(), 1);
}

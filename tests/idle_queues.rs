//! Idle queues under the runtime, on a private redis-server: a queue with nothing waiting,
//! delayed or pending is not read again while Redis reports none of its keys written (client
//! tracking), and a write to it — a job from any producer, a delayed job, a flush — is acted on
//! at once instead of at the next poll. Where tracking is lost or refused, queues are read at
//! every poll as before.
//!
//! Reads are counted with `INFO commandstats` (`XINFO GROUPS` runs only in the metrics
//! script); the "at once" tests poll once an hour, so only a reported write can explain a
//! reading within the test's wait.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use jobqueue_operator::operator::metrics::Metrics;
use jobqueue_operator::operator::runtime::{
    ObjectId, QueueEntry, QueueHealth, QueueObservation, Reporter, Runtime, RuntimeEvent,
    RuntimeOptions, ScalingSettings, Workers, WorkersError,
};
use jobqueue_operator::queue::metrics::ConsumerInfo;
use jobqueue_operator::queue::schedules::ScheduleState;
use jobqueue_operator::queue::{Due, EnqueueOptions, QueueConfig, enqueue};
use jobqueue_operator::scaling::Policy;
use jobqueue_test_support::redis::RedisServer;
use redis::aio::MultiplexedConnection;

const HOUR: Duration = Duration::from_secs(3600);
/// Longest wait for something the runtime does at once (a poll is an hour away).
const PROMPTLY: Duration = Duration::from_secs(20);

/// Every observation the runtime reports: (lag, pending, delayed) or `None` when unhealthy.
#[derive(Default)]
struct Observations(Mutex<Vec<Option<(u64, u64, u64)>>>);

impl Observations {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last(&self) -> Option<Option<(u64, u64, u64)>> {
        self.0.lock().unwrap().last().copied()
    }
}

impl Reporter for Observations {
    fn queue_observed(&self, _: &ObjectId, o: &QueueObservation) {
        let seen = match &o.health {
            QueueHealth::Ok(m) => Some((m.lag, m.pending, m.delayed)),
            _ => None,
        };
        self.0.lock().unwrap().push(seen);
    }
    fn schedule_observed(&self, _: &ObjectId, _: &ScheduleState) {}
    fn queue_event(&self, _: &ObjectId, _: RuntimeEvent) {}
}

/// Workers that only remember the replica count asked for.
#[derive(Default)]
struct Replicas(AtomicU32);

impl Workers for Replicas {
    fn replicas(&self) -> BoxFuture<'_, Result<u32, WorkersError>> {
        async { Ok(self.0.load(Ordering::SeqCst)) }.boxed()
    }
    fn scale<'a>(
        &'a self,
        replicas: u32,
        _: &'a [ConsumerInfo],
    ) -> BoxFuture<'a, Result<(), WorkersError>> {
        self.0.store(replicas, Ordering::SeqCst);
        async { Ok(()) }.boxed()
    }
    fn live_consumers(&self) -> BoxFuture<'_, Result<Option<HashSet<String>>, WorkersError>> {
        async { Ok(None) }.boxed()
    }
}

struct Harness {
    redis: RedisServer,
    admin: MultiplexedConnection,
    runtime: Runtime,
    seen: Arc<Observations>,
    workers: Arc<Replicas>,
    cfg: QueueConfig,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    /// One queue polled every `poll` with a 0..=1 worker policy, served by a running runtime
    /// that reports every poll; the operator connects as `user` (`None`: the default user).
    async fn start(poll: Duration, quiet_read: Duration, user: Option<&str>) -> Self {
        let redis = RedisServer::start();
        let client = redis::Client::open(redis.url()).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let url = match user {
            Some(user) => {
                let () = redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg(user)
                    .arg(&["on", ">pw", "~*", "&*", "+@all", "-client"])
                    .query_async(&mut admin)
                    .await
                    .unwrap();
                redis
                    .url()
                    .replacen("redis://", &format!("redis://{user}:pw@"), 1)
            }
            None => redis.url(),
        };
        let seen = Arc::new(Observations::default());
        let mut registry = prometheus_client::registry::Registry::default();
        let options = RuntimeOptions {
            status_interval: Duration::ZERO,
            janitor_interval: Duration::from_millis(100),
            quiet_read_interval: quiet_read,
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::new(options, Metrics::register(&mut registry), seen.clone());
        let cfg = QueueConfig::new("jobqueue:{team-a/emails}");
        let workers = Arc::new(Replicas::default());
        let entry = || QueueEntry {
            id: ObjectId::new("team-a", "emails"),
            redis_url: url.clone(),
            config: cfg.clone(),
            scaling: Some(ScalingSettings {
                policy: Policy {
                    target_per_replica: 1,
                    ..Policy::default()
                },
                poll_interval: poll,
            }),
            workers: Some(workers.clone() as Arc<dyn Workers>),
        };
        runtime.upsert_queue(entry()).await.expect("provisioned");
        // Served again: polled at once rather than after its first (jittered) interval.
        runtime.upsert_queue(entry()).await.expect("served");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let loops = runtime.clone();
        tokio::spawn(async move { loops.run(async move { drop(stop_rx.await) }).await });
        let h = Harness {
            redis,
            admin,
            runtime,
            seen,
            workers,
            cfg,
            _stop: stop,
        };
        h.wait_for("the first reading", |h| {
            h.seen.last() == Some(Some((0, 0, 0)))
        })
        .await;
        h
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < PROMPTLY,
                "waited {PROMPTLY:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` more observations arrived.
    async fn observations(&self, n: usize) {
        let target = self.seen.len() + n;
        self.wait_for(&format!("{n} more observations"), |h| {
            h.seen.len() >= target
        })
        .await;
    }

    /// Metrics readings Redis has run so far.
    async fn readings(&mut self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.admin)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_xinfo|groups:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    async fn xadd(&mut self) {
        let _: String = redis::cmd("XADD")
            .arg(self.cfg.stream())
            .arg("*")
            .arg(&["payload", "{}"])
            .query_async(&mut self.admin)
            .await
            .unwrap();
    }

    /// Waits until the metrics script has run more often than `before` times.
    async fn wait_for_a_reading(&mut self, before: u64) {
        let started = Instant::now();
        while self.readings().await <= before {
            assert!(
                started.elapsed() < PROMPTLY,
                "no reading within {PROMPTLY:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_queue_is_not_read_while_its_keys_stay_unwritten() {
    let mut h = Harness::start(Duration::from_millis(50), HOUR, None).await;
    let before = h.readings().await;
    // Twenty polls' worth of decisions, each on the standing reading.
    h.observations(20).await;
    assert_eq!(
        h.readings().await,
        before,
        "an idle, unchanged queue is not read again"
    );
    assert_eq!(h.seen.last(), Some(Some((0, 0, 0))));
    // Work arrives from a plain XADD producer: read again, scaled up.
    h.xadd().await;
    h.wait_for("the job to be seen", |h| {
        h.seen.last() == Some(Some((1, 0, 0)))
    })
    .await;
    assert!(h.readings().await > before);
    assert_eq!(h.workers.0.load(Ordering::SeqCst), 1, "scaled from zero");
    // While it has work it is read at every poll.
    let busy = h.readings().await;
    h.observations(5).await;
    assert!(
        h.readings().await >= busy + 4,
        "a queue with work is read every poll"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_an_idle_queue_wakes_its_poll_at_once() {
    let h = Harness::start(HOUR, HOUR, None).await;
    // The project's own producer (a raw XADD wakes it alike: see the first test).
    let mut conn = jobqueue_operator::queue::connect(&h.redis.url())
        .await
        .unwrap();
    let payload = serde_json::json!({"to": "a@example.com"});
    enqueue(&mut conn, &h.cfg.keys, &payload, &EnqueueOptions::default())
        .await
        .expect("enqueued");
    h.wait_for("the queue to be scaled up", |h| {
        h.workers.0.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(h.seen.last(), Some(Some((1, 0, 0))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_in_an_idle_queue_is_promoted_when_due() {
    let mut h = Harness::start(HOUR, HOUR, None).await;
    let mut conn = jobqueue_operator::queue::connect(&h.redis.url())
        .await
        .unwrap();
    let options = EnqueueOptions {
        due: Due::After(Duration::from_millis(300)),
        ..EnqueueOptions::default()
    };
    let payload = serde_json::json!({"to": "a@example.com"});
    enqueue(&mut conn, &h.cfg.keys, &payload, &options)
        .await
        .expect("enqueued");
    let stream = h.cfg.stream().to_string();
    let started = Instant::now();
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut h.admin)
            .await
            .unwrap();
        if len == 1 {
            break;
        }
        assert!(
            started.elapsed() < PROMPTLY,
            "the delayed job was never promoted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.wait_for("the queue to be scaled up", |h| {
        h.workers.0.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_is_noticed_and_the_queue_recreated() {
    let mut h = Harness::start(HOUR, HOUR, None).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut h.admin)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let groups: Result<Vec<redis::Value>, _> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(h.cfg.stream())
            .query_async(&mut h.admin)
            .await;
        if groups.is_ok_and(|g| g.len() == 1) {
            break;
        }
        assert!(started.elapsed() < PROMPTLY, "the queue was not recreated");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Tracked again: a job still wakes it.
    h.wait_for("a healthy reading", |h| {
        h.seen.last() == Some(Some((0, 0, 0)))
    })
    .await;
    h.xadd().await;
    h.wait_for("the job to be seen", |h| {
        h.seen.last() == Some(Some((1, 0, 0)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_makes_every_queue_read_again() {
    let mut h = Harness::start(HOUR, HOUR, None).await;
    let before = h.readings().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut h.admin)
        .await
        .unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("name=jobqueue-operator-tracking"))
        .and_then(|l| l.strip_prefix("id="))
        .and_then(|l| l.split(' ').next())
        .expect("the tracking connection is listed by its name")
        .to_string();
    let killed: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "ID", &id])
        .query_async(&mut h.admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    // Nothing it promised holds any more: the queue is read again, on a new connection.
    h.wait_for_a_reading(before).await;
    let tracked_again = |list: &str| {
        list.lines().any(|l| {
            l.contains("name=jobqueue-operator-tracking") && !l.starts_with(&format!("id={id} "))
        })
    };
    let started = Instant::now();
    loop {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut h.admin)
            .await
            .unwrap();
        if tracked_again(&list) {
            break;
        }
        assert!(
            started.elapsed() < PROMPTLY,
            "no new tracking connection: {list}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.xadd().await;
    h.wait_for("the job to be seen", |h| {
        h.seen.last() == Some(Some((1, 0, 0)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_tracking_every_poll_reads() {
    for (user, quiet_read) in [(Some("notrack"), HOUR), (None, Duration::ZERO)] {
        let mut h = Harness::start(Duration::from_millis(50), quiet_read, user).await;
        let before = h.readings().await;
        h.observations(10).await;
        assert!(
            h.readings().await >= before + 9,
            "user {user:?}, quiet reads {quiet_read:?}: every poll reads"
        );
        h.xadd().await;
        h.wait_for("the job to be seen", |h| {
            h.seen.last() == Some(Some((1, 0, 0)))
        })
        .await;
        drop(h.runtime);
    }
}

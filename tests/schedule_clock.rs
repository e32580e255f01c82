//! Schedules fire by Redis's clock, not the operator's (docs/architecture.md#scheduler): the
//! real binary runs with its clock 20 s ahead (libfaketime, Debian's `faketime`), and every
//! run of an every-2-seconds Schedule is still enqueued at or just after its time as Redis
//! tells it — never 20 s early, which is what firing by the operator's clock would do.
//!
//! Skips, saying so, without `faketime` (a failure under `CI=true`).

use jobqueue_test_support::local::LocalRun;
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::schedule::jobs;
use jobqueue_test_support::tools::require;
use jobqueue_test_support::wait::eventually;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

const MANIFEST: &str = "\
apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata: {name: clock}
spec: {}
---
apiVersion: jobqueue.io/v1alpha1
kind: Schedule
metadata: {name: every-2s}
spec:
  schedule: '*/2 * * * * *'
  queueRef: {name: clock}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_by_the_redis_clock_when_the_operators_runs_ahead() {
    let test = "schedule_clock::schedules_fire_by_the_redis_clock_when_the_operators_runs_ahead";
    if !require(test, "faketime", &["--version"], "apt-get install faketime") {
        return;
    }
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install faketime"
    );
    let redis = RedisServer::start();
    let _run = LocalRun::spawn(
        &[("clock.yaml", MANIFEST.to_string())],
        &["--redis", &redis.url()],
        &[
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME", "+20s".to_string()),
            // Timers and sleeps keep real time; only the wall clock is off.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ],
    );
    let conn = jobqueue_operator::queue::connect(&redis.url())
        .await
        .expect("connect");
    let fired = eventually(
        std::time::Duration::from_secs(30),
        "three runs of the schedule",
        || {
            let mut c = conn.clone();
            async move {
                let js = jobs(&mut c, "jobqueue:{default/clock}").await;
                (js.len() >= 3).then_some(js)
            }
        },
    )
    .await;
    for job in &fired[..3] {
        let late = job.enqueued_at - job.scheduled_for;
        assert!(
            (0..1500).contains(&late),
            "run for {} enqueued at {} (Redis clock): {late} ms late",
            job.scheduled_for,
            job.enqueued_at
        );
    }
}

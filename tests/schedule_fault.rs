//! A scheduler process (the real binary) killed with SIGKILL and restarted 10 s later: runs
//! that came due meanwhile follow `misfirePolicy` (Skip: none fired, all counted; FireOnce:
//! exactly one catch-up job), nothing is fired twice, and regular runs resume.

use jobqueue_test_support::without_operator_env;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_operator::queue::schedules::{self, ScheduleDefinition};
use jobqueue_operator::queue::{RedisConn, connect};
use jobqueue_operator::schedule::CronSchedule;
use jobqueue_operator::schedule::MisfirePolicy;
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::schedule::{Job, jobs};
use jobqueue_test_support::wait::eventually;
use k8s_openapi::jiff::Timestamp;

const CRON: &str = "*/5 * * * * *";
const DOWNTIME: Duration = Duration::from_secs(10);

/// The scheduler binary; SIGKILLed when dropped so a failing test leaves nothing behind.
struct SchedulerProcess(Child);

impl SchedulerProcess {
    fn start(url: &str, stream: &str) -> Self {
        let child =
            without_operator_env(&mut Command::new(env!("CARGO_BIN_EXE_jobqueue-operator")))
                .args(["schedule", "run", "--redis", url, "--stream", stream])
                // The boundary between "late" and "missed while down" is kept far from this test's
                // timings (5 s between runs, 10 s down).
                .args(["--misfire-grace", "2s"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the jobqueue-operator binary");
        SchedulerProcess(child)
    }

    fn sigkill(&mut self) {
        self.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
        self.0.wait().expect("reaping the killed scheduler");
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn at(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap()
}

async fn wait_for_job_after(conn: &RedisConn, stream: &str, after_ms: i64) -> Job {
    eventually(Duration::from_secs(20), "a job", || {
        let mut c = conn.clone();
        let s = stream.to_string();
        async move {
            jobs(&mut c, &s)
                .await
                .into_iter()
                .find(|j| j.scheduled_for > after_ms)
        }
    })
    .await
}

/// Runs the kill/restart scenario; returns (jobs, runs missed since the kill, last run
/// before the kill, restart instant).
async fn kill_and_restart(policy: MisfirePolicy) -> (Vec<Job>, u64, i64, i64) {
    let server = RedisServer::start();
    let conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new(default_stream(
        "fault",
        &format!("{policy:?}").to_lowercase(),
    ));
    let mut def = ScheduleDefinition::new("every5s", CRON);
    def.misfire_policy = policy;
    schedules::upsert(
        &mut conn.clone(),
        &keys,
        &def,
        jiff::Timestamp::now().as_millisecond(),
    )
    .await
    .unwrap();

    let mut first = SchedulerProcess::start(&server.url(), &keys.stream);
    let before_kill = wait_for_job_after(&conn, &keys.stream, 0).await;
    first.sigkill();
    let last_before_kill = before_kill.scheduled_for;
    // A slow first start may already have missed the very first run: count from here.
    let missed_at_kill = schedules::get(&mut conn.clone(), &keys, "every5s")
        .await
        .unwrap()
        .unwrap()
        .state
        .missed_runs;

    // Down for 10 s, then restart just after a run boundary (0.1-0.6 s past a multiple of
    // 5 s), so the restarted process has several seconds to start before the next run and
    // every run up to the restart came due while nothing ran.
    tokio::time::sleep(DOWNTIME).await;
    loop {
        let into_period = Timestamp::now().as_millisecond().rem_euclid(5000);
        if (100..600).contains(&into_period) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted_at = Timestamp::now().as_millisecond();
    let _second = SchedulerProcess::start(&server.url(), &keys.stream);
    // The first regular run after the restart shows the loop is back on schedule.
    let next_regular = restarted_at / 5000 * 5000 + 5000;
    wait_for_job_after(&conn, &keys.stream, next_regular - 1).await;

    let all = jobs(&mut conn.clone(), &keys.stream).await;
    let state = schedules::get(&mut conn.clone(), &keys, "every5s")
        .await
        .unwrap()
        .unwrap()
        .state;
    (
        all,
        state.missed_runs - missed_at_kill,
        last_before_kill,
        restarted_at,
    )
}

fn runs_between(after_ms: i64, until_ms: i64) -> Vec<i64> {
    let cron = CronSchedule::parse(CRON).unwrap();
    cron.iter_after(&jiff::tz::TimeZone::UTC, at(after_ms))
        .map(|t| t.as_millisecond())
        .take_while(|t| *t <= until_ms)
        .collect()
}

/// Checks what must hold under both policies: before the kill every run fired once, no run
/// fired twice, and the run after the restart fired on time.
fn common_checks(all: &[Job], last_before_kill: i64, restarted_at: i64) {
    let distinct: std::collections::HashSet<i64> = all.iter().map(|j| j.scheduled_for).collect();
    assert_eq!(distinct.len(), all.len(), "a run fired twice: {all:?}");
    let before: Vec<i64> = all
        .iter()
        .map(|j| j.scheduled_for)
        .filter(|t| *t <= last_before_kill)
        .collect();
    let expected_before = [vec![before[0]], runs_between(before[0], last_before_kill)].concat();
    assert_eq!(before, expected_before, "runs before the kill");
    let next_regular = CronSchedule::parse(CRON)
        .unwrap()
        .next_after(&jiff::tz::TimeZone::UTC, at(restarted_at))
        .map(|t| t.as_millisecond());
    assert!(
        all.iter().any(|j| Some(j.scheduled_for) == next_regular),
        "the first run after the restart fired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_counts_the_runs_missed_while_down_and_fires_none_of_them() {
    let (all, missed, last_before_kill, restarted_at) = kill_and_restart(MisfirePolicy::Skip).await;
    common_checks(&all, last_before_kill, restarted_at);
    let while_down = runs_between(last_before_kill, restarted_at);
    assert!(
        while_down.len() >= 2,
        "the downtime spans runs: {while_down:?}"
    );
    let fired_while_down: Vec<&Job> = all
        .iter()
        .filter(|j| while_down.contains(&j.scheduled_for))
        .collect();
    assert!(
        fired_while_down.is_empty(),
        "Skip fired missed runs: {fired_while_down:?}"
    );
    assert_eq!(missed, while_down.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_once_enqueues_exactly_one_catch_up_job_for_the_latest_missed_run() {
    let (all, missed, last_before_kill, restarted_at) =
        kill_and_restart(MisfirePolicy::FireOnce).await;
    common_checks(&all, last_before_kill, restarted_at);
    let while_down = runs_between(last_before_kill, restarted_at);
    assert!(
        while_down.len() >= 2,
        "the downtime spans runs: {while_down:?}"
    );
    let fired_while_down: Vec<i64> = all
        .iter()
        .map(|j| j.scheduled_for)
        .filter(|t| while_down.contains(t))
        .collect();
    assert_eq!(
        fired_while_down,
        [*while_down.last().unwrap()],
        "one catch-up job, for the latest missed run"
    );
    let catch_up = all
        .iter()
        .find(|j| j.scheduled_for == fired_while_down[0])
        .unwrap();
    assert!(
        catch_up.enqueued_at >= restarted_at,
        "the catch-up came from the restarted process"
    );
    assert_eq!(missed, while_down.len() as u64 - 1);
}

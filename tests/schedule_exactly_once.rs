//! Three scheduler loops serving the same 500 every-second schedules for 30 s on a real
//! redis-server: each (schedule, second) is enqueued exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobqueue_operator::queue::connect;
use jobqueue_operator::queue::keys::{QueueKeys, default_stream};
use jobqueue_operator::queue::scheduler::{ScheduledQueue, Scheduler, SchedulerConfig};
use jobqueue_operator::queue::schedules::{self, ScheduleDefinition, job_id};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::schedule::{by_schedule, jobs};
use k8s_openapi::jiff::Timestamp;

const SCHEDULES: usize = 500;
const LOOPS: usize = 3;
const RUN_FOR: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_loops_fire_each_schedule_second_exactly_once() {
    let server = RedisServer::start();
    let mut conn = connect(&server.url()).await.unwrap();
    let keys = QueueKeys::new(default_stream("load", "every-second"));
    let upserted_at = jiff::Timestamp::now();
    for i in 0..SCHEDULES {
        let mut def = ScheduleDefinition::new(format!("s{i:03}"), "* * * * * *");
        def.payload = format!(r#"{{"n":{i}}}"#);
        schedules::upsert(&mut conn, &keys, &def, upserted_at.as_millisecond())
            .await
            .unwrap();
    }

    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let fired = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    for _ in 0..LOOPS {
        let scheduler = Scheduler::new(
            connect(&server.url()).await.unwrap(),
            SchedulerConfig::default(),
        );
        scheduler.handle().set_queues(vec![ScheduledQueue {
            keys: keys.clone(),
            group: "workers".into(),
            term: 0,
        }]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        let (fired, lost) = (fired.clone(), lost.clone());
        tasks.push(tokio::spawn(scheduler.run_observed(
            async move {
                let _ = stopped.await;
            },
            move |report| {
                fired.fetch_add(report.fired, Ordering::Relaxed);
                lost.fetch_add(report.lost_races, Ordering::Relaxed);
            },
        )));
    }
    // The scenario's duration, not a synchronisation: the loops run on their own meanwhile.
    tokio::time::sleep(RUN_FOR).await;
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stopped_at = Timestamp::now().as_millisecond();

    let all = jobs(&mut conn, &keys.stream).await;
    let ids: HashSet<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "duplicate job ids");
    // The loops really raced, and every fire they reported is one job in the stream.
    assert!(
        lost.load(Ordering::Relaxed) > 0,
        "no loop ever lost a race: the test did not exercise the compare-and-set"
    );
    assert_eq!(fired.load(Ordering::Relaxed), all.len());
    let per_schedule = by_schedule(&all);
    assert_eq!(per_schedule.len(), SCHEDULES, "every schedule fired");

    // The first run of every schedule is the first whole second after the upsert.
    let first_run = (upserted_at.as_millisecond() / 1000 + 1) * 1000;
    // Every run more than a second before the loops stopped must have fired.
    let must_have_fired = (stopped_at - 1000) / 1000 * 1000;
    for (name, list) in &per_schedule {
        let seconds: Vec<i64> = list.iter().map(|j| j.scheduled_for).collect();
        assert_eq!(seconds[0], first_run, "{name}: first run");
        let last = *seconds.last().unwrap();
        assert!(
            last >= must_have_fired && last <= stopped_at,
            "{name}: last run {last}, stopped at {stopped_at}"
        );
        let expected: Vec<i64> = (0..)
            .map(|k| first_run + k * 1000)
            .take_while(|t| *t <= last)
            .collect();
        assert_eq!(seconds, expected, "{name}: every second exactly once");
        for job in list {
            assert_eq!(job.id, job_id(name, job.scheduled_for));
            assert_eq!(job.attempt, 1);
            assert_eq!(
                job.payload,
                format!(r#"{{"n":{}}}"#, &name[1..].parse::<usize>().unwrap())
            );
        }
        let state = schedules::get(&mut conn, &keys, name)
            .await
            .unwrap()
            .unwrap()
            .state;
        assert_eq!(state.missed_runs, 0, "{name}");
        assert_eq!(
            state.fired_runs,
            seconds.len() as u64,
            "{name}: runs counted"
        );
        assert_eq!(state.last_schedule_ms, Some(last), "{name}");
    }
    assert!(
        all.len() >= SCHEDULES * (RUN_FOR.as_secs() as usize - 2),
        "{} jobs",
        all.len()
    );
}

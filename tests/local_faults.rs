//! A worker process killed with SIGKILL while it holds a job: the job goes to another worker at
//! once (attempt 2), long before the visibility timeout, and the dead worker is restarted.

use jobqueue_test_support::local::*;

const QUEUE: &str = "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: crash
spec:
  delivery:
    visibilityTimeout: 10m   # far beyond the test's deadline: only the reclaim on exit can redeliver
  workers:
    template:
      spec:
        containers:
          - name: worker
            command: [python3, worker.py]
  scaling:
    minReplicas: 2
    maxReplicas: 2
    pollInterval: 200ms
";

const STREAM: &str = "jobqueue:{default/crash}";

#[test]
fn a_killed_worker_s_job_goes_to_another_worker_at_once_with_attempt_2() {
    let local = Local::start(&[("queue.yaml", QUEUE.to_string())]);
    local.wait_for("two workers reading", |lines| {
        (lines
            .iter()
            .filter(|l| l.text.contains(" reading "))
            .count()
            >= 2)
            .then_some(())
    });
    let mut conn = local.conn();
    enqueue(&mut conn, STREAM, "long-job", r#"{"sleep": 3600}"#);

    let holder = local.wait_for("a worker holding the job", |lines| {
        worker_says(lines, "crash", "got")
            .into_iter()
            .find(|(_, job, attempt)| job == "long-job" && *attempt == 1)
            .map(|(index, _, _)| index)
    });
    let (_, pid, consumer) = started(&local.lines(), "crash")
        .into_iter()
        .rfind(|(i, _, _)| *i == holder)
        .expect("the holder's start line");
    // The worker got its own consumer name (JOBQUEUE_CONSUMER) from the injected environment.
    local.wait_line(&format!(
        "[crash#{holder}] worker {consumer} (pid {pid}) reading {STREAM} as group workers"
    ));
    assert_eq!(
        pending(&mut conn, STREAM, "workers"),
        vec![(consumer.clone(), "long-job".to_string(), 1)]
    );

    signal(pid, libc::SIGKILL);

    let (taker, _, _) = local.wait_for("the job delivered again", |lines| {
        worker_says(lines, "crash", "got")
            .into_iter()
            .find(|(_, job, attempt)| job == "long-job" && *attempt == 2)
    });
    let now_pending = pending(&mut conn, STREAM, "workers");
    assert_eq!(
        now_pending.len(),
        1,
        "exactly one copy of the job: {now_pending:?}"
    );
    let (new_holder, job, deliveries) = &now_pending[0];
    assert_eq!((job.as_str(), *deliveries), ("long-job", 1));
    assert_ne!(new_holder, &consumer, "another worker has it");
    let taker_consumer = started(&local.lines(), "crash")
        .into_iter()
        .rfind(|(i, _, _)| *i == taker)
        .map(|s| s.2)
        .unwrap();
    assert_eq!(new_holder, &taker_consumer);
    local.wait_line(&format!("[crash#{holder}] exited (signal 9)"));

    // The dead worker's slot runs again, as a new consumer.
    local.wait_for("the killed worker restarted", |lines| {
        started(lines, "crash")
            .into_iter()
            .filter(|(i, _, _)| *i == holder)
            .count()
            .ge(&2)
            .then_some(())
    });
    let dead: u64 = redis::cmd("XLEN")
        .arg("jobqueue:{default/crash}:dead")
        .query(&mut conn)
        .unwrap();
    assert_eq!(dead, 0);
}

#[test]
fn a_worker_that_outlives_its_grace_period_is_killed() {
    let queue = "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: grace
spec:
  workers:
    template:
      spec:
        terminationGracePeriodSeconds: 1
        containers:
          - name: worker
            command: [python3, worker.py]
";
    let local = Local::start(&[("queue.yaml", queue.to_string())]);
    local.wait_line("[grace#0] worker ");
    let mut conn = local.conn();
    enqueue(
        &mut conn,
        "jobqueue:{default/grace}",
        "stuck",
        r#"{"sleep": 3600}"#,
    );
    local.wait_line("[grace#0] got stuck attempt 1");
    let (_, pid, _) = started(&local.lines(), "grace")[0].clone();
    // The queue is no longer declared: its worker gets SIGTERM, ignores it while the job
    // runs, and is killed once the grace period is over.
    std::fs::remove_file(local.path("queue.yaml")).unwrap();
    local.wait_line("JobQueue default/grace: no longer declared");
    local.wait_line("[grace#0] stopped (signal 9)");
    let lines: Vec<String> = local.lines().into_iter().map(|l| l.text).collect();
    let term = lines
        .iter()
        .position(|l| l == "[grace#0] signal 15: finishing the job in hand, then exiting")
        .expect("SIGTERM first");
    let kill = lines
        .iter()
        .position(|l| l == "[grace#0] stopped (signal 9)")
        .unwrap();
    assert!(term < kill, "{lines:?}");
    assert!(!alive(pid));
    assert_eq!(local.count("[grace#0] acked"), 0);
}

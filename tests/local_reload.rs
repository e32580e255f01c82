//! Manifests edited, added and removed while `run --local` runs: maxReplicas 4 → 2 takes
//! effect without a restart (and stops the idle workers, not the busy ones), a new file's queue
//! is served, a removed file's queue is no longer served (and its data deleted under
//! `deletionPolicy: Delete`).

use std::collections::BTreeSet;

use jobqueue_test_support::local::*;

const STREAM: &str = "jobqueue:{default/edit}";

fn queue(max: u32) -> String {
    format!(
        "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata:
  name: edit
spec:
  workers:
    template:
      spec:
        terminationGracePeriodSeconds: 60
        containers:
          - name: worker
            command: [python3, worker.py]
  scaling:
    maxReplicas: {max}
    targetPerReplica: 1
    pollInterval: 200ms
    cooldown: 10m
    scaleDown:
      stabilizationWindow: 10m   # nothing scales down on its own during the test
"
    )
}

#[test]
fn max_replicas_4_to_2_takes_effect_without_restart_and_stops_idle_workers() {
    let local = Local::start(&[("queue.yaml", queue(4))]);
    local.wait_line("JobQueue default/edit: serving");
    let mut conn = local.conn();
    for (id, payload) in [
        ("long-1", r#"{"sleep": 3600}"#),
        ("long-2", r#"{"sleep": 3600}"#),
        ("short-1", r#"{"sleep": 0}"#),
        ("short-2", r#"{"sleep": 0}"#),
    ] {
        enqueue(&mut conn, STREAM, id, payload);
    }
    // Straight to 4, or through 1 if a poll fell between the XADDs.
    local.wait_for("a scale-up to 4", |lines| {
        lines
            .iter()
            .any(|l| l.text.contains("ScaledUp: scaled ") && l.text.contains(" → 4: "))
            .then_some(())
    });
    // Two workers busy with the long jobs, the others idle.
    local.wait_for("short jobs done and long jobs taken", |lines| {
        let acked = worker_says(lines, "edit", "acked").len();
        let long = worker_says(lines, "edit", "got")
            .iter()
            .filter(|(_, j, _)| j.starts_with("long"))
            .count();
        (acked == 2 && long == 2).then_some(())
    });
    local.wait_for("four workers started", |lines| {
        (started(lines, "edit").len() == 4).then_some(())
    });
    let busy: BTreeSet<String> = pending(&mut conn, STREAM, "workers")
        .into_iter()
        .map(|(consumer, _, _)| consumer)
        .collect();
    assert_eq!(busy.len(), 2);

    local.write("queue.yaml", &queue(2));
    local.wait_line("JobQueue default/edit: updated");
    local.wait_line("ScaledDown: scaled 4 → 2");
    let stopped = local.wait_for("two workers stopped", |lines| {
        let stopped: Vec<u32> = lines
            .iter()
            .filter_map(|l| {
                let rest = l.text.strip_prefix("[edit#")?;
                let (index, rest) = rest.split_once("] ")?;
                rest.starts_with("stopped (").then(|| index.parse().ok())?
            })
            .collect();
        (stopped.len() == 2).then_some(stopped)
    });
    let starts = started(&local.lines(), "edit");
    for index in &stopped {
        let (_, pid, consumer) = starts.iter().find(|s| s.0 == *index).unwrap();
        assert!(
            !busy.contains(consumer),
            "a busy worker was stopped: {consumer}"
        );
        assert!(!alive(*pid));
    }
    for (_, pid, consumer) in starts.iter().filter(|s| busy.contains(&s.2)) {
        assert!(alive(*pid), "busy worker {consumer} must keep running");
    }
    // The busy workers still hold their jobs: nothing was redelivered.
    let still: Vec<(String, String, u64)> = pending(&mut conn, STREAM, "workers");
    assert_eq!(still.len(), 2);
    assert!(
        still
            .iter()
            .all(|(c, j, n)| busy.contains(c) && j.starts_with("long") && *n == 1)
    );
    assert_eq!(
        local.count("JobQueue default/edit: serving"),
        1,
        "never restarted"
    );

    // A file added: its queue is served; removed: no longer served (data kept).
    let extra = queue(1).replace("name: edit", "name: extra").replacen(
        "spec:\n",
        "spec:\n  deletionPolicy: Delete\n",
        1,
    );
    local.write("extra.yaml", &extra);
    local.wait_line("JobQueue default/extra: serving");
    let exists: bool = redis::cmd("EXISTS")
        .arg("jobqueue:{default/extra}")
        .query(&mut conn)
        .unwrap();
    assert!(exists, "provisioned");
    std::fs::remove_file(local.path("extra.yaml")).unwrap();
    let line = local.wait_line("JobQueue default/extra: no longer declared");
    assert!(
        line.contains("deleted its"),
        "deletionPolicy: Delete: {line}"
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg("jobqueue:{default/extra}")
        .query(&mut conn)
        .unwrap();
    assert!(!exists, "deleted with deletionPolicy: Delete");
}

//! Adopted queues under `run --local`: for each of RQ, Celery, Sidekiq and BullMQ, the real
//! worker program (tests/adopt/) runs as the JobQueue's local workers, a burst of short jobs
//! and then one long job are enqueued with that system's own client, and the operator —
//! reading only the system's own keys — scales the workers up, in while the long job runs
//! alone, and to zero after it. Every worker appends a JSON line per job start and end, and
//! one "term" line when it receives SIGTERM, to the file named by `ADOPT_LOG`; one append per
//! line, so the file's order is the order things happened in.
//!
//! From that log and the operator's `started`/`stopped` lines each test asserts:
//! (a) more than one worker ran at once, and jobs ran on more than one;
//! (b) every job started exactly once and ended in the process it started in;
//! (c) every stopped worker took nothing after SIGTERM and exited on its own (exit code 0, no
//!     SIGKILL after the grace period); where the system records who runs what (RQ, Sidekiq,
//!     named BullMQ workers), it records each worker under the operator's name for it, and
//!     every stopped worker was idle when SIGTERM reached it although workers were stopped
//!     while the long job ran (Celery's may have been finishing a job);
//! (d) the number of workers reached zero once, after the last job's end: the queue stays
//!     empty for longer than the cooldown while the long job runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jobqueue_test_support::local::{Line, LocalRun, alive, started};
use jobqueue_test_support::redis::RedisServer;
use jobqueue_test_support::repo_dir;
use jobqueue_test_support::tools::{require, require_node};
use jobqueue_test_support::wait::blocking;

/// Jobs in the burst and how long each runs: enough for the backlog to ask for more than one
/// worker (targetPerReplica 4, maxReplicas 3).
const JOBS: usize = 24;
const JOB_SECONDS: &str = "1";
/// The job enqueued after the burst: it runs alone, with the queue empty, for longer than
/// the stabilization window (the operator scales in while it runs) and than the cooldown (a
/// scaler blind to running jobs would go to zero under it).
const LONG_SECONDS: &str = "15";
/// The burst takes about JOBS / 3 seconds once scaled up, the long job LONG_SECONDS after
/// that; scaling up and back to zero adds the workers' start-up and the cooldown.
const DEADLINE: Duration = Duration::from_secs(120);

/// The system's queue name (`spec.source.queue`).
const QUEUE: &str = "default";

fn adopt_dir() -> PathBuf {
    repo_dir().join("tests/adopt")
}

fn venv_bin() -> PathBuf {
    repo_dir().join("target/venv/bin")
}

/// PATH with the test venv (rq, celery) first, as `run --local` users have their tools.
fn path_with_venv() -> String {
    format!(
        "{}:{}",
        venv_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The venv's python can import `module` (scripts/python-venv installs it; scripts/test runs
/// that first, so a missing module is a broken setup, not a missing tool).
fn assert_python_module(module: &str) {
    let ok = Command::new(venv_bin().join("python"))
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{module} is missing from {}: run scripts/python-venv",
        venv_bin().display()
    );
}

/// `npm ci` in tests/adopt/bullmq unless bullmq is installed there.
fn install_bullmq() {
    let dir = adopt_dir().join("bullmq");
    if dir.join("node_modules/bullmq/package.json").exists()
        && dir.join("node_modules/ioredis/package.json").exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("running npm ci");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// One adopted system: its JobQueue and how its own client enqueues.
struct Adopt {
    /// metadata.name, the `[name#i]` prefix of the operator's worker lines.
    name: &'static str,
    /// spec.source.system.
    system: &'static str,
    /// The worker's command (absolute paths: local mode runs it in the manifest's directory).
    command: Vec<String>,
    /// Extra container env (name, value).
    env: Vec<(&'static str, String)>,
    /// spec.scaling.cooldown and spec.scaling.scaleDown.stabilizationWindow.
    cooldown: &'static str,
    stabilization: &'static str,
    /// The producer: program and arguments, run with REDIS_URL and ADOPT_QUEUE set and given
    /// `--count N --seconds S`; prints one job id a line.
    enqueue: Vec<String>,
    /// Whether the system records which worker runs a job, so a scale-in spares busy ones.
    spares_busy: bool,
    /// The worker names the system records in Redis (what the operator matches its
    /// processes by), where it records them.
    recorded_names: Option<fn(&mut redis::Connection) -> Vec<String>>,
}

/// RQ: the queue's worker set holds `rq:worker:<--name>`.
fn rq_names(conn: &mut redis::Connection) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("rq:workers:{QUEUE}"))
        .query(conn)
        .unwrap_or_default();
    keys.iter()
        .filter_map(|k| k.strip_prefix("rq:worker:").map(str::to_string))
        .collect()
}

/// Sidekiq: each live process's `info` JSON has the hostname (DYNO when set).
fn sidekiq_names(conn: &mut redis::Connection) -> Vec<String> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg("processes")
        .query(conn)
        .unwrap_or_default();
    ids.iter()
        .filter_map(|id| {
            let info: Option<String> = redis::cmd("HGET").arg(id).arg("info").query(conn).ok()?;
            let info: serde_json::Value = serde_json::from_str(&info?).ok()?;
            Some(info["hostname"].as_str()?.to_string())
        })
        .collect()
}

/// BullMQ: a job a worker holds names that Worker (its `name` option) in the field `pb`.
fn bullmq_names(conn: &mut redis::Connection) -> Vec<String> {
    let active: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("bull:{QUEUE}:active"))
        .arg(0)
        .arg(-1)
        .query(conn)
        .unwrap_or_default();
    active
        .iter()
        .filter_map(|id| {
            redis::cmd("HGET")
                .arg(format!("bull:{QUEUE}:{id}"))
                .arg("pb")
                .query::<Option<String>>(conn)
                .ok()?
        })
        .collect()
}

impl Adopt {
    /// Enqueues `count` jobs of `seconds` with the system's client; returns their ids.
    fn enqueue(&self, url: &str, count: usize, seconds: &str) -> Vec<String> {
        let (program, args) = self.enqueue.split_first().unwrap();
        let out = Command::new(program)
            .args(args)
            .args(["--count", &count.to_string(), "--seconds", seconds])
            .env("REDIS_URL", url)
            .env("ADOPT_QUEUE", QUEUE)
            .env("PATH", path_with_venv())
            .current_dir(adopt_dir())
            .output()
            .expect("running the enqueue script");
        assert!(
            out.status.success(),
            "enqueue failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        assert_eq!(ids.len(), count, "job ids printed by the producer: {ids:?}");
        ids
    }

    fn manifest(&self, log: &Path) -> String {
        let json = |v: &str| serde_json::to_string(v).unwrap();
        let command = serde_json::to_string(&self.command).unwrap();
        let mut env = format!(
            "              - {{name: ADOPT_LOG, value: {}}}\n",
            json(&log.to_string_lossy())
        );
        for (k, v) in &self.env {
            env.push_str(&format!(
                "              - {{name: {k}, value: {}}}\n",
                json(v)
            ));
        }
        format!(
            "apiVersion: jobqueue.io/v1alpha1
kind: JobQueue
metadata: {{name: {name}}}
spec:
  source:
    system: {system}
    queue: {QUEUE}
  workers:
    template:
      spec:
        terminationGracePeriodSeconds: 60
        containers:
          - name: worker
            image: unused-locally
            command: {command}
            env:
{env}  scaling: {{minReplicas: 0, maxReplicas: 3, targetPerReplica: 4, pollInterval: 500ms, cooldown: {cooldown}, scaleDown: {{stabilizationWindow: {stabilization}}}}}
",
            name = self.name,
            system = self.system,
            cooldown = self.cooldown,
            stabilization = self.stabilization,
        )
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn path_str(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// One line of ADOPT_LOG.
#[derive(Debug, Clone, serde::Deserialize)]
struct Event {
    event: String,
    job: Option<String>,
    worker: String,
    pid: u32,
    #[allow(dead_code)]
    t: u64,
}

fn read_log(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: one being written while we read has no newline yet (read next time).
    let whole = text.rsplit_once('\n').map_or("", |(done, _)| done);
    whole
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad ADOPT_LOG line {l:?}: {e}"))
        })
        .collect()
}

/// A worker process as the operator reported it.
#[derive(Debug, Clone)]
struct Proc {
    index: u32,
    pid: u32,
    consumer: String,
    /// `stopped (...)` (a scale-in or shutdown) or `exited (...)` (on its own): the whole line.
    end: Option<String>,
}

/// Every worker process of `name`, in start order, with how it ended; and the number of
/// workers running after each start or end line, in order.
fn procs(lines: &[Line], name: &str) -> (Vec<Proc>, Vec<usize>) {
    let prefix = format!("[{name}#");
    let starts = started(lines, name);
    let mut starts = starts.into_iter();
    let mut all: Vec<Proc> = Vec::new();
    let mut running: BTreeMap<u32, usize> = BTreeMap::new();
    let mut counts = Vec::new();
    for l in lines {
        let Some(rest) = l.text.strip_prefix(&prefix) else {
            continue;
        };
        let Some((index, what)) = rest.split_once("] ") else {
            continue;
        };
        let Ok(index) = index.parse::<u32>() else {
            continue;
        };
        if what.starts_with("started pid ") && what.contains(" as consumer ") {
            let (i, pid, consumer) = starts.next().expect("started() saw this line");
            assert_eq!(i, index);
            running.insert(index, all.len());
            all.push(Proc {
                index,
                pid,
                consumer,
                end: None,
            });
            counts.push(running.len());
        } else if (what.starts_with("stopped (") || what.starts_with("exited ("))
            && let Some(at) = running.remove(&index)
        {
            all[at].end = Some(what.to_string());
            counts.push(running.len());
        }
    }
    (all, counts)
}

fn run_burst(adopt: &Adopt) {
    let redis = RedisServer::start();
    let url = redis.url();
    let logs = tempfile::Builder::new()
        .prefix("jobqueue-adopt-")
        .tempdir()
        .expect("temp dir");
    let log = logs.path().join("adopt.log");
    let mut local = LocalRun::spawn(
        &[("queue.yaml", adopt.manifest(&log))],
        &["--redis", &url],
        &[("PATH", path_with_venv())],
    );
    local.wait_line(&format!("JobQueue default/{}: serving", adopt.name));

    // The burst, then the long job, with the system's own client.
    let mut ids = adopt.enqueue(&url, JOBS, JOB_SECONDS);
    let long = adopt.enqueue(&url, 1, LONG_SECONDS).remove(0);
    ids.push(long.clone());
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        JOBS + 1,
        "job ids printed by the producer: {ids:?}"
    );

    // Every job ended, then every worker the operator started has stopped.
    let ended = |events: &[Event]| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e.event == "end")
            .filter_map(|e| e.job.clone())
            .collect()
    };
    // Meanwhile, the names the system itself records for its busy or live workers.
    let mut conn = redis::Client::open(url.as_str())
        .expect("redis url")
        .get_connection()
        .expect("connect to the test redis");
    let mut recorded: BTreeSet<String> = BTreeSet::new();
    blocking(DEADLINE, "every job to end", || {
        if let Some(names) = adopt.recorded_names {
            recorded.extend(names(&mut conn));
        }
        let done = ended(&read_log(&log));
        let missing: Vec<&String> = ids.iter().filter(|id| !done.contains(*id)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} not ended; operator output:\n{}",
                missing.len(),
                ids.len(),
                local.output()
            ))
        }
    });
    blocking(DEADLINE, "the workers to go back to zero", || {
        let (all, _) = procs(&local.lines(), adopt.name);
        if !all.is_empty() && all.iter().all(|p| p.end.is_some()) {
            Ok(())
        } else {
            Err(format!("{all:?}\noperator output:\n{}", local.output()))
        }
    });

    let events = read_log(&log);
    let lines = local.lines();
    let (all, counts) = procs(&lines, adopt.name);
    let context = format!(
        "processes: {all:#?}\nADOPT_LOG:\n{}\noperator output:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        local.output()
    );
    let consumers: BTreeSet<&str> = all.iter().map(|p| p.consumer.as_str()).collect();

    // The system names each worker as the operator does: without that, a scale-in cannot
    // tell the busy ones.
    if adopt.recorded_names.is_some() {
        let strangers: Vec<&String> = recorded
            .iter()
            .filter(|n| !consumers.contains(n.as_str()))
            .collect();
        assert!(
            !recorded.is_empty() && strangers.is_empty(),
            "{} recorded its workers as {recorded:?} in Redis, but the operator's are {consumers:?}\n{context}",
            adopt.system
        );
    }

    // (a) Scale-up: more than one worker at once, and the jobs spread over more than one.
    let peak = counts.iter().copied().max().unwrap_or(0);
    assert!(peak > 1, "never more than {peak} worker at once\n{context}");
    let ran_jobs: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.event == "start")
        .map(|e| e.worker.as_str())
        .collect();
    assert!(
        ran_jobs.len() > 1,
        "jobs ran on {ran_jobs:?} only\n{context}"
    );
    assert!(
        events.iter().all(|e| consumers.contains(e.worker.as_str())),
        "a log line from a worker the operator did not start (JOBQUEUE_CONSUMER not passed?)\n{context}"
    );

    // (b) Every job started exactly once and ended in the process it started in.
    for id in &ids {
        let of_job: Vec<(usize, &Event)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.job.as_deref() == Some(id.as_str()))
            .collect();
        let starts: Vec<&(usize, &Event)> =
            of_job.iter().filter(|(_, e)| e.event == "start").collect();
        let ends: Vec<&(usize, &Event)> = of_job.iter().filter(|(_, e)| e.event == "end").collect();
        assert!(
            starts.len() == 1 && ends.len() == 1,
            "job {id}: {} starts, {} ends\n{context}",
            starts.len(),
            ends.len()
        );
        let ((s_at, s), (e_at, e)) = (starts[0], ends[0]);
        assert!(
            s_at < e_at && s.worker == e.worker && s.pid == e.pid,
            "job {id} started as {s:?} and ended as {e:?}\n{context}"
        );
    }
    let known: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(
        events
            .iter()
            .filter_map(|e| e.job.as_deref())
            .all(|j| known.contains(j)),
        "a job nobody enqueued ran\n{context}"
    );

    // (c) Each stopped worker took nothing after SIGTERM and exited by itself (a job it was
    // running ended in it: (b)); none crashed. Where the system says who is busy, each was
    // idle when stopped, although some were stopped while the long job ran.
    for p in &all {
        let end = p.end.as_deref().unwrap();
        assert_eq!(
            end, "stopped (exit code 0)",
            "worker #{} ({}) did not stop gracefully\n{context}",
            p.index, p.consumer
        );
        let mine: Vec<(usize, &Event)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.worker == p.consumer)
            .collect();
        let terms: Vec<usize> = mine
            .iter()
            .filter(|(_, e)| e.event == "term")
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(
            terms.len(),
            1,
            "worker {} logged {} SIGTERMs (one expected: it was stopped once)\n{context}",
            p.consumer,
            terms.len()
        );
        let term = terms[0];
        let mut running: BTreeSet<&str> = BTreeSet::new();
        for (at, e) in &mine {
            let job = e.job.as_deref().unwrap_or("");
            match e.event.as_str() {
                "start" => {
                    assert!(
                        *at < term,
                        "worker {} started {job} after its SIGTERM\n{context}",
                        p.consumer
                    );
                    running.insert(job);
                }
                "end" => {
                    running.remove(job);
                }
                "term" => assert!(
                    running.is_empty() || !adopt.spares_busy,
                    "worker {} was stopped while running {running:?}\n{context}",
                    p.consumer
                ),
                other => panic!("unknown event {other:?}\n{context}"),
            }
        }
        assert!(
            mine.last().is_some_and(|(_, e)| e.event != "start"),
            "worker {}'s last line is a start\n{context}",
            p.consumer
        );
    }
    let long_start = events
        .iter()
        .position(|e| e.event == "start" && e.job.as_deref() == Some(long.as_str()))
        .unwrap();
    let long_end = events
        .iter()
        .position(|e| e.event == "end" && e.job.as_deref() == Some(long.as_str()))
        .unwrap();
    let stopped_meanwhile = events[long_start..long_end]
        .iter()
        .filter(|e| e.event == "term")
        .count();
    assert!(
        stopped_meanwhile > 0,
        "no worker was stopped while the long job ran alone: the scale-in was not exercised\n{context}"
    );

    // (d) Back to zero once, only after the last job ended: the count of running workers
    // touched zero only at the very end, and the last SIGTERM came after the last end.
    let zeros = counts.iter().filter(|c| **c == 0).count();
    assert!(
        zeros == 1 && counts.last() == Some(&0),
        "worker counts went {counts:?}: zero before the end\n{context}"
    );
    let last_end = events.iter().rposition(|e| e.event == "end").unwrap();
    let last_term = events.iter().rposition(|e| e.event == "term").unwrap();
    assert!(
        last_term > last_end,
        "the last worker was stopped before the last job ended\n{context}"
    );
    assert!(
        all.iter().all(|p| !alive(p.pid)),
        "a stopped worker is still running\n{context}"
    );

    let status = local.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn rq_burst_scales_up_and_back_to_zero_without_interrupting_a_job() {
    assert_python_module("rq");
    let adopt = adopt_dir();
    let python = path_str(venv_bin().join("python"));
    run_burst(&Adopt {
        name: "rq-default",
        system: "RQ",
        // RQ's forking worker (with a "term" line on SIGTERM), named by the operator.
        command: [
            strings(&["rq", "worker", "--path"]),
            vec![path_str(adopt.clone())],
            strings(&[
                "--worker-class",
                "rq_jobs.LoggedWorker",
                "--url",
                "$(REDIS_URL)",
                "--name",
                "$(JOBQUEUE_CONSUMER)",
                QUEUE,
            ]),
        ]
        .concat(),
        env: vec![],
        cooldown: "5s",
        stabilization: "3s",
        spares_busy: true,
        recorded_names: Some(rq_names),
        enqueue: [
            vec![python, path_str(adopt.join("rq_enqueue.py"))],
            strings(&["--queue", QUEUE]),
        ]
        .concat(),
    });
}

#[test]
fn celery_burst_scales_up_and_back_to_zero_without_interrupting_a_job() {
    assert_python_module("celery");
    let adopt = adopt_dir();
    let python = path_str(venv_bin().join("python"));
    run_burst(&Adopt {
        name: "celery-default",
        system: "Celery",
        // The solo pool runs the task in the process the operator signals; prefork's pool
        // children share its process group and would die on the group's SIGTERM mid-task.
        command: [
            strings(&["celery", "--workdir"]),
            vec![path_str(adopt.clone())],
            strings(&[
                "-A",
                "celery_app",
                "worker",
                "--pool",
                "solo",
                "-Q",
                QUEUE,
                "-n",
                "$(JOBQUEUE_CONSUMER)@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
            ]),
        ]
        .concat(),
        env: vec![("ADOPT_QUEUE", QUEUE.to_string())],
        cooldown: "5s",
        stabilization: "3s",
        spares_busy: false,
        recorded_names: None,
        enqueue: vec![python, path_str(adopt.join("celery_enqueue.py"))],
    });
}

#[test]
fn sidekiq_burst_scales_up_and_back_to_zero_without_interrupting_a_job() {
    const TEST: &str = "sidekiq_burst_scales_up_and_back_to_zero_without_interrupting_a_job";
    if !require(
        TEST,
        "ruby",
        &["-e", "require 'sidekiq'"],
        "apt-get install ruby-sidekiq",
    ) {
        return;
    }
    let adopt = adopt_dir();
    run_burst(&Adopt {
        name: "sidekiq-default",
        system: "Sidekiq",
        // Two threads per process: a process is busy while either runs a job.
        command: [
            strings(&["sidekiq", "-r"]),
            vec![path_str(adopt.join("sidekiq_jobs.rb"))],
            strings(&["-q", QUEUE, "-c", "2", "-t", "30"]),
        ]
        .concat(),
        // Sidekiq names its process (the hostname in its `processes` entry) after DYNO.
        env: vec![("DYNO", "$(JOBQUEUE_CONSUMER)".to_string())],
        // Sidekiq records what each process runs only at its heartbeat, every 5 s: a job it
        // has just fetched is in no Redis key until then. A stabilization window and a
        // cooldown above that keep every scale-in decision on readings that show it.
        cooldown: "8s",
        stabilization: "8s",
        spares_busy: true,
        recorded_names: Some(sidekiq_names),
        enqueue: [
            vec![
                "ruby".to_string(),
                path_str(adopt.join("sidekiq_enqueue.rb")),
            ],
            strings(&["--queue", QUEUE]),
        ]
        .concat(),
    });
}

#[test]
fn bullmq_burst_scales_up_and_back_to_zero_without_interrupting_a_job() {
    const TEST: &str = "bullmq_burst_scales_up_and_back_to_zero_without_interrupting_a_job";
    if !require_node(TEST) {
        return;
    }
    install_bullmq();
    let dir = adopt_dir().join("bullmq");
    run_burst(&Adopt {
        name: "bullmq-default",
        system: "BullMQ",
        command: vec![
            "node".to_string(),
            path_str(dir.join("worker.mjs")),
            QUEUE.to_string(),
        ],
        env: vec![],
        cooldown: "5s",
        stabilization: "3s",
        spares_busy: true,
        recorded_names: Some(bullmq_names),
        enqueue: [
            vec!["node".to_string(), path_str(dir.join("enqueue.mjs"))],
            strings(&["--queue", QUEUE]),
        ]
        .concat(),
    });
}

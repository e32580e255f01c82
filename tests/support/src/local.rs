//! Shared by the `local_*` tests: the real `jobqueue-operator run --local` binary on a
//! directory of manifests, against a private redis-server, with real worker processes (the
//! demo's Python worker, redis-py from `target/venv`, created by `scripts/python-venv`).
//! Every wait polls the captured output or Redis with a deadline; nothing sleeps blindly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis::RedisServer;
use crate::wait::blocking;
use crate::{operator_binary, repo_dir, without_operator_env};

/// Generous bound for anything that should take a second or two (2-core CI machines).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The demo's files, as shipped.
pub fn demo_file(name: &str) -> String {
    std::fs::read_to_string(repo_dir().join("examples/demo").join(name))
        .unwrap_or_else(|e| panic!("examples/demo/{name}: {e}"))
}

/// `text` with `from` replaced by `to`; panics if `from` is absent (the demo changed shape).
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "expected {from:?} in:\n{text}");
    text.replacen(from, to, 1)
}

/// PATH with the test venv (redis-py) first.
fn path_with_venv() -> String {
    let venv = repo_dir().join("target/venv/bin");
    let ok = Command::new(venv.join("python"))
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "redis-py is missing from {}: run scripts/python-venv",
        venv.display()
    );
    format!(
        "{}:{}",
        venv.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// One line of the operator's output.
#[derive(Debug, Clone)]
pub struct Line {
    pub stderr: bool,
    pub text: String,
}

/// A running `run --local`: its manifest directory and everything it printed.
pub struct LocalRun {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<Line>>>,
}

impl LocalRun {
    /// Writes `files` (name, text) into a fresh directory and starts `run --local` on it with
    /// `args` and `envs` (HTTP off; the runner's own operator variables removed).
    pub fn spawn(files: &[(&str, String)], args: &[&str], envs: &[(&str, String)]) -> LocalRun {
        let dir = tempfile::Builder::new()
            .prefix("jobqueue-local-")
            .tempdir()
            .expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("manifest");
        }
        let mut cmd = Command::new(operator_binary());
        without_operator_env(&mut cmd)
            .args(["run", "--local"])
            .arg(dir.path())
            .args(["--metrics-addr", "off"])
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting jobqueue-operator");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, stderr) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for text in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(Line { stderr, text });
                }
            });
        }
        LocalRun {
            dir,
            child: Some(child),
            lines,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces a manifest (written to a temporary name and renamed, as editors do).
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.path(name)).expect("rename manifest");
    }

    /// Everything printed so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// The output so far, one string (for assertion messages).
    pub fn output(&self) -> String {
        self.lines()
            .iter()
            .map(|l| format!("{}{}", if l.stderr { "E " } else { "  " }, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `cond` holds on the output; panics with the output after [`DEADLINE`].
    pub fn wait_for<T>(&self, what: &str, mut cond: impl FnMut(&[Line]) -> Option<T>) -> T {
        blocking(DEADLINE, what, || {
            cond(&self.lines()).ok_or_else(|| format!("output:\n{}", self.output()))
        })
    }

    /// Waits for a line containing `needle`; returns it.
    pub fn wait_line(&self, needle: &str) -> String {
        self.wait_for(&format!("a line containing {needle:?}"), |lines| {
            lines
                .iter()
                .find(|l| l.text.contains(needle))
                .map(|l| l.text.clone())
        })
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.text.contains(needle))
            .count()
    }

    /// Sends SIGTERM (like Ctrl-C) and waits for the exit, bounded.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                self.wait_for("the output to end", |l| {
                    l.iter().any(|l| l.text == "stopped").then_some(())
                });
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("jobqueue-operator did not exit; output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("jobqueue-operator output:\n{}", self.output());
        }
    }
}

/// A running `run --local` on a private redis-server, with the demo's Python worker in its
/// directory. Everything of [`LocalRun`] is reached through it.
pub struct Local {
    pub redis: RedisServer,
    run: LocalRun,
}

impl std::ops::Deref for Local {
    type Target = LocalRun;
    fn deref(&self) -> &LocalRun {
        &self.run
    }
}

impl std::ops::DerefMut for Local {
    fn deref_mut(&mut self) -> &mut LocalRun {
        &mut self.run
    }
}

impl Local {
    /// Writes `files` (name, text) and the demo worker into a fresh directory and starts the
    /// operator on it.
    pub fn start(files: &[(&str, String)]) -> Local {
        let redis = RedisServer::start();
        Self::start_with(redis, files, &[])
    }

    /// Like [`Self::start`] with a given Redis and extra arguments.
    pub fn start_with(redis: RedisServer, files: &[(&str, String)], extra: &[&str]) -> Local {
        let mut all: Vec<(&str, String)> = vec![("worker.py", demo_file("worker.py"))];
        all.extend(files.iter().map(|(n, t)| (*n, t.clone())));
        let url = redis.url();
        let args = [&["--redis", url.as_str()], extra].concat();
        let run = LocalRun::spawn(&all, &args, &[("PATH", path_with_venv())]);
        Local { redis, run }
    }

    /// A connection to the test Redis.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.redis.url())
            .expect("redis url")
            .get_connection()
            .expect("connect to the test redis")
    }

    /// Waits until `cond` holds on Redis.
    pub fn wait_redis<T>(
        &self,
        what: &str,
        mut cond: impl FnMut(&mut redis::Connection) -> Option<T>,
    ) -> T {
        let mut conn = self.conn();
        blocking(DEADLINE, what, || {
            cond(&mut conn).ok_or_else(|| format!("output:\n{}", self.output()))
        })
    }
}

/// Sends `sig` to one process.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `[queue#index] started pid P as consumer C` lines: (index, pid, consumer), in order.
pub fn started(lines: &[Line], queue: &str) -> Vec<(u32, u32, String)> {
    let prefix = format!("[{queue}#");
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.text.strip_prefix(&prefix)?;
            let (index, rest) = rest.split_once("] started pid ")?;
            let (pid, consumer) = rest.split_once(" as consumer ")?;
            Some((index.parse().ok()?, pid.parse().ok()?, consumer.to_string()))
        })
        .collect()
}

/// Worker lines `[queue#i] <verb> <job id> attempt <n>`: (index, job id, attempt).
pub fn worker_says(lines: &[Line], queue: &str, verb: &str) -> Vec<(u32, String, u32)> {
    let prefix = format!("[{queue}#");
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.text.strip_prefix(&prefix)?;
            let (index, rest) = rest.split_once("] ")?;
            let rest = rest.strip_prefix(verb)?.strip_prefix(' ')?;
            let (job, attempt) = rest.split_once(" attempt ")?;
            Some((index.parse().ok()?, job.to_string(), attempt.parse().ok()?))
        })
        .collect()
}

/// Enqueues a job the way any producer may (docs/architecture.md#wire-format); returns its id.
pub fn enqueue(conn: &mut redis::Connection, stream: &str, id: &str, payload: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let _: String = redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(&[
            "id",
            id,
            "payload",
            payload,
            "enqueued_at",
            &now,
            "attempt",
            "1",
        ])
        .query(conn)
        .expect("XADD");
}

/// (consumer, delivery count) of every pending entry of `group` on `stream`, with the job id.
pub fn pending(
    conn: &mut redis::Connection,
    stream: &str,
    group: &str,
) -> Vec<(String, String, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(1000)
        .query(conn)
        .expect("XPENDING");
    rows.into_iter()
        .map(|(entry, consumer, _, count)| {
            let fields: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&entry)
                .arg(&entry)
                .query(conn)
                .expect("XRANGE");
            let job = fields
                .first()
                .and_then(|(_, f)| f.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone()))
                .unwrap_or_default();
            (consumer, job, count)
        })
        .collect()
}

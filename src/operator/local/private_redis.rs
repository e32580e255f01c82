//! Which Redis local mode uses. `--redis` / `REDIS_URL` when given (one that does not answer is
//! retried, as always); else the default URL when something answers there; else a private
//! `redis-server` started for this run: a free loopback port, a temporary directory, no
//! persistence (`--save ''`), stopped when the run ends. It leads its own process group (a
//! terminal's Ctrl-C reaches only us, and we stop it after the workers) and, on Linux, is
//! killed by the kernel if the operator dies without stopping it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::console::Console;
use super::sys;
use crate::operator::settings::Settings;
use crate::queue::conn::mask_password;

/// How long a Redis at the default URL gets to answer a PING.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a started redis-server gets to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it gets to exit on SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Ports tried: another process may take a free port before redis-server binds it.
const ATTEMPTS: usize = 3;

/// Why no private redis-server runs.
#[derive(Debug, thiserror::Error)]
pub enum PrivateRedisError {
    #[error(
        "redis-server is not on PATH: install it (apt install redis-server, brew install redis), or start a Redis and pass --redis URL"
    )]
    NotInstalled,
    #[error("cannot start redis-server")]
    Spawn(#[source] std::io::Error),
    #[error("no free loopback port")]
    Port(#[source] std::io::Error),
    #[error("cannot create its directory {}", .0.display())]
    Dir(PathBuf, #[source] std::io::Error),
    #[error("redis-server did not answer on port {port} within {START_TIMEOUT:?}; its log:\n{log}")]
    NotReady { port: u16, log: String },
}

/// A redis-server this run started; stopped by [`PrivateRedis::stop`], killed if dropped.
pub struct PrivateRedis {
    child: Child,
    pid: u32,
    url: String,
    dir: PathBuf,
}

/// The Redis URL for resources that name none, and the private server when one was started.
/// Says which on the console.
pub async fn choose(
    args: &Settings,
    console: &Console,
) -> anyhow::Result<(String, Option<PrivateRedis>)> {
    let url = args.redis_url();
    crate::plan::validate::redis_url("--redis", &url).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.redis.is_some() || answers(&url).await {
        console.line(&format!("redis: {}", mask_password(&url)));
        return Ok((url, None));
    }
    match PrivateRedis::start().await {
        Ok(private) => {
            let url = private.url.clone();
            console.line(&format!(
                "redis: nothing answers at {}; started a private redis-server (pid {}) at {url} for this run, stopped on exit (enqueue/inspect: --redis {url})",
                mask_password(&args.default_redis),
                private.pid
            ));
            Ok((url, Some(private)))
        }
        Err(e) => {
            console.error(&format!(
                "warning: nothing answers at {} and no private Redis could be started: {}; retrying there until one answers",
                mask_password(&url),
                error_chain(&e)
            ));
            Ok((url, None))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Whether a Redis at `url` answers PING within [`PROBE_TIMEOUT`].
async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(_)))
}

impl PrivateRedis {
    /// Starts redis-server on a free loopback port and waits until it answers.
    pub async fn start() -> Result<PrivateRedis, PrivateRedisError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::start_once().await {
                Err(e @ PrivateRedisError::NotReady { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn start_once() -> Result<PrivateRedis, PrivateRedisError> {
        let port = free_port().map_err(PrivateRedisError::Port)?;
        let dir =
            std::env::temp_dir().join(format!("jobqueue-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| PrivateRedisError::Dir(dir.clone(), e))?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Spawned from the thread that runs local mode to its end: PR_SET_PDEATHSIG fires when
        // the spawning thread exits.
        sys::isolate(&mut cmd);
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PrivateRedisError::NotInstalled,
            _ => PrivateRedisError::Spawn(e),
        })?;
        let pid = child.id().unwrap_or_default();
        let mut private = PrivateRedis {
            child,
            pid,
            url: format!("redis://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if answers(&private.url).await {
                return Ok(private);
            }
            if matches!(private.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(private.dir.join("redis.log")).unwrap_or_default();
        private.stop().await;
        Err(PrivateRedisError::NotReady { port, log })
    }

    /// Stops the server (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and removes its directory.
    pub async fn stop(mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = sys::signal_group(self.pid, libc::SIGTERM);
            if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        // The child itself is killed by `kill_on_drop`.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

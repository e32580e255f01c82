//! Private `redis-server` processes for tests: one per test on a free loopback port, or a
//! three-node Redis Cluster. Tests never touch a Redis they did not start (a developer's
//! Redis on 127.0.0.1:6379 is left alone).
//!
//! Each server runs without persistence (`--save "" --appendonly no`) in its own temporary
//! directory and is killed (SIGKILL) when its handle is dropped. If the test is panicking at
//! that moment, the server's log is printed to stderr so a failure shows what Redis saw.
//!
//! Readiness is awaited by polling `PING` (and, for the cluster, `CLUSTER INFO`) with a
//! deadline, never by a fixed sleep.
//!
//! URLs: [`RedisServer::url`] is a plain `redis://127.0.0.1:PORT`. [`RedisCluster::url`] uses
//! the engine's cluster form `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (see
//! `jobqueue_operator::queue::conn`); [`RedisCluster::seed_urls`] gives plain per-node URLs.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long a fresh cluster may take to reach `cluster_state:ok` on every node.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// Interval between readiness polls (bounded by the deadlines above).
const POLL: Duration = Duration::from_millis(10);
/// Attempts at finding a port nobody else grabbed between our probe and redis-server's bind.
const PORT_ATTEMPTS: usize = 20;

/// Which kind of Redis a parametrised test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One `redis-server`.
    Single,
    /// Three masters sharing the 16384 slots, no replicas.
    Cluster,
}

impl Topology {
    /// Both topologies, for tests that must pass on each.
    pub const ALL: [Topology; 2] = [Topology::Single, Topology::Cluster];
}

/// A running Redis of either topology; lets one test body run on both.
pub enum TestRedis {
    /// A single server.
    Single(RedisServer),
    /// A three-node cluster.
    Cluster(RedisCluster),
}

impl TestRedis {
    /// Starts a Redis of the given topology and waits until it serves commands.
    pub fn start(topology: Topology) -> Self {
        match topology {
            Topology::Single => TestRedis::Single(RedisServer::start()),
            Topology::Cluster => TestRedis::Cluster(RedisCluster::start()),
        }
    }

    /// The URL the engine's `connect` understands for this Redis.
    pub fn url(&self) -> String {
        match self {
            TestRedis::Single(s) => s.url(),
            TestRedis::Cluster(c) => c.url(),
        }
    }

    /// The topology this Redis was started with.
    pub fn topology(&self) -> Topology {
        match self {
            TestRedis::Single(_) => Topology::Single,
            TestRedis::Cluster(_) => Topology::Cluster,
        }
    }

    /// The combined logs of every server (for assertion messages).
    pub fn log(&self) -> String {
        match self {
            TestRedis::Single(s) => s.log(),
            TestRedis::Cluster(c) => c
                .nodes
                .iter()
                .map(|n| n.log())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One private `redis-server` process.
pub struct RedisServer {
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    // Dropped last: the server's working directory and log.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a standalone server on a free loopback port and waits for PING.
    ///
    /// Panics with an install hint when `redis-server` is not on PATH.
    pub fn start() -> Self {
        Self::start_with(Vec::new(), |_| Vec::new())
    }

    /// Starts a server with extra arguments; `port_args` derives arguments that depend on
    /// the chosen port (the cluster bus port). Retries on a port taken in the meantime.
    fn start_with(extra: Vec<String>, port_args: impl Fn(u16) -> Vec<String>) -> Self {
        let mut dir = Some(
            tempfile::Builder::new()
                .prefix("jobqueue-redis-")
                .tempdir()
                .expect("creating a temporary directory for redis-server"),
        );
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut extra_args = extra.clone();
            extra_args.extend(port_args(port));
            let mut server = RedisServer {
                port,
                extra_args,
                child: None,
                dir: dir
                    .take()
                    .expect("directory is returned after each failed attempt"),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                // Someone took the port between our probe and the bind: try another one, in
                // the same directory so the log shows every attempt.
                Err(StartError::PortTaken) => dir = Some(server.into_dir()),
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("redis-server: no free loopback port after {PORT_ATTEMPTS} attempts")
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        let placeholder = tempfile::TempDir::new().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL and reaps it. Its data is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server process (SIGSTOP): connections stay open and nothing answers, as
    /// with a black-holed host. [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a [frozen](Self::freeze) server (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("the server runs").id();
        // SAFETY: kill(2) on our own child's pid, which is not reaped while `child` is held.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal {signal} to redis-server {pid} failed");
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill), or kills it
    /// first) and waits for PING.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old socket may linger for a moment; retry on the same port, bounded.
                Err(StartError::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(POLL);
                }
                Err(StartError::PortTaken) => {
                    panic!("redis-server: port {} still taken after restart", self.port)
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.log_path();
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log_path)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-server was not found on PATH. The integration tests start their own \
                 private Redis; install it (Debian/Ubuntu: `apt-get install redis-server`)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let mut child = self.child.take().expect("child");
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                let _ = child.wait(); // already exited (try_wait); reaps it for the record
                let log = self.log();
                let this_run = log.get(log_start as usize..).unwrap_or(&log);
                if this_run.contains("Address already in use") {
                    return Err(StartError::PortTaken);
                }
                return Err(StartError::Failed(format!(
                    "redis-server on port {} exited with {status} before answering PING.\n\
                     stderr:\n{stderr}\nlog:\n{this_run}",
                    self.port
                )));
            }
            if ping(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(StartError::Failed(format!(
                    "redis-server on port {} did not answer PING within {:?}.\nlog:\n{}",
                    self.port,
                    START_DEADLINE,
                    self.log()
                )));
            }
            thread::sleep(POLL);
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "---- redis-server 127.0.0.1:{} log ({}) ----\n{}---- end of redis-server log ----",
                self.port,
                self.dir().display(),
                self.log()
            );
        }
    }
}

enum StartError {
    PortTaken,
    Failed(String),
}

/// Three `redis-server` masters with cluster mode on, 16384 slots split between them.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, assigns the slots, joins them and waits (bounded) until every node
    /// reports `cluster_state:ok` and knows all three nodes.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        "nodes.conf".into(),
                        "--cluster-node-timeout".into(),
                        "5000".into(),
                        "--cluster-announce-ip".into(),
                        "127.0.0.1".into(),
                    ],
                    |_| vec!["--cluster-port".into(), free_port().to_string()],
                )
            })
            .collect();
        let cluster = RedisCluster { nodes };
        cluster.form();
        cluster
    }

    fn form(&self) {
        const SLOTS: u16 = 16384;
        let n = self.nodes.len() as u16;
        let mut cons: Vec<redis::Connection> = self.nodes.iter().map(|s| connect(s.port)).collect();
        for (i, con) in cons.iter_mut().enumerate() {
            let first = SLOTS / n * i as u16;
            let last = if i as u16 == n - 1 {
                SLOTS - 1
            } else {
                SLOTS / n * (i as u16 + 1) - 1
            };
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(con)
                .expect("CLUSTER ADDSLOTSRANGE");
            let _: () = redis::cmd("CLUSTER")
                .arg("SET-CONFIG-EPOCH")
                .arg(i + 1)
                .query(con)
                .expect("CLUSTER SET-CONFIG-EPOCH");
        }
        for node in &self.nodes[1..] {
            let bus = node.cluster_bus_port();
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .arg(bus)
                .query(&mut cons[0])
                .expect("CLUSTER MEET");
        }
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        loop {
            let ready = cons.iter_mut().all(|con| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(con)
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", n))
                    && info.contains("cluster_slots_assigned:16384")
            });
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Redis Cluster did not reach cluster_state:ok on all nodes within {:?}.\n{}",
                    CLUSTER_DEADLINE,
                    self.nodes
                        .iter()
                        .map(|n| n.log())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            thread::sleep(POLL);
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`: the engine's cluster URL form.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// One plain `redis://127.0.0.1:PORT` per node (seeds for `redis::cluster::ClusterClient`).
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, e.g. to inspect one node's log or kill it.
    pub fn nodes(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }
}

impl RedisServer {
    fn cluster_bus_port(&self) -> u16 {
        let i = self
            .extra_args
            .iter()
            .position(|a| a == "--cluster-port")
            .expect("cluster node");
        self.extra_args[i + 1].parse().expect("cluster port")
    }
}

/// A loopback port that was free a moment ago (the OS picks it; the bind is released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

fn connect(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("connecting to redis-server on port {port}: {e}"))
}

fn ping(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    redis::cmd("PING")
        .query::<String>(&mut con)
        .is_ok_and(|r| r == "PONG")
}

/// A standalone server that also listens with TLS, with certificates made for this test by a
/// throw-away CA (the plain port stays for the harness's readiness check).
pub struct TlsRedisServer {
    server: RedisServer,
    tls_port: u16,
    ca_pem: String,
    // Dropped after the server: its certificate files.
    _certs: tempfile::TempDir,
}

impl TlsRedisServer {
    /// Starts the server; its certificate is valid for 127.0.0.1 and signed by [`Self::ca_pem`].
    pub fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("generating a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "jobqueue test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signing the CA");
        let issuer = Issuer::new(ca_params, &ca_key);
        let server_key = KeyPair::generate().expect("generating a server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("signing the server certificate");

        let certs = tempfile::Builder::new()
            .prefix("jobqueue-tls-")
            .tempdir()
            .expect("temporary directory");
        let write = |name: &str, pem: String| {
            let path = certs.path().join(name);
            std::fs::write(&path, pem).expect("writing a certificate file");
            path.display().to_string()
        };
        let ca_file = write("ca.crt", ca_cert.pem());
        let cert_file = write("server.crt", server_cert.pem());
        let key_file = write("server.key", server_key.serialize_pem());
        let server = RedisServer::start_with(
            vec![
                "--tls-cert-file".into(),
                cert_file,
                "--tls-key-file".into(),
                key_file,
                "--tls-ca-cert-file".into(),
                ca_file,
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            // Picked per attempt, so a TLS port taken meanwhile is retried like the plain one.
            |_| vec!["--tls-port".into(), free_port().to_string()],
        );
        let tls_port = server
            .extra_args
            .iter()
            .skip_while(|a| *a != "--tls-port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("the TLS port the server was started with");
        TlsRedisServer {
            server,
            tls_port,
            ca_pem: ca_cert.pem(),
            _certs: certs,
        }
    }

    /// `rediss://127.0.0.1:<tls port>`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The underlying server (plain port, log).
    pub fn server(&self) -> &RedisServer {
        &self.server
    }
}

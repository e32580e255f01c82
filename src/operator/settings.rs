//! The operator's settings (flags and environment of `run`), shared by cluster and local mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use crate::api::Duration;
use crate::operator::runtime::RuntimeOptions;
use crate::operator::telemetry::LogFormat;
use crate::queue::scheduler::SchedulerConfig;

/// The operator's settings: the flags and environment variables of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Run the JobQueue and Schedule manifests in this file or directory on this machine,
    /// without a cluster: workers are local processes started from each queue's template.
    #[arg(long, value_name = "PATH")]
    pub local: Option<PathBuf>,

    /// Redis for resources that do not name one (`spec.redis` absent) [default:
    /// redis://127.0.0.1:6379; with --local, when nothing answers there, a private
    /// redis-server started for the run].
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub redis: Option<String>,

    /// The Redis used when neither --redis nor REDIS_URL names one. Hidden: it exists so tests
    /// can point "the default" at a port where nothing listens, whatever runs on 6379.
    #[arg(
        long,
        env = "JOBQUEUE_DEFAULT_REDIS",
        value_name = "URL",
        default_value = DEFAULT_REDIS_URL,
        hide = true
    )]
    pub default_redis: String,

    /// Namespaces to watch (repeat or comma-separate); all namespaces when absent.
    #[arg(
        long = "namespace",
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS"
    )]
    pub namespaces: Vec<String>,

    /// Address of /metrics, /healthz and /readyz (port 0 picks a free port; `off` disables)
    /// [default: 0.0.0.0:8080; with --local 127.0.0.1:8080].
    #[arg(long, env = "METRICS_ADDR", value_name = "HOST:PORT|off", value_parser = parse_addr)]
    pub metrics_addr: Option<MetricsAddr>,

    /// Address of the web dashboard (port 0 picks a free port; `off` disables) [default: off;
    /// with --local 127.0.0.1:0, a free loopback port whose URL is printed at start].
    #[arg(long, env = "DASHBOARD_ADDR", value_name = "HOST:PORT|off", value_parser = parse_addr)]
    pub dashboard_addr: Option<MetricsAddr>,

    /// Allow the dashboard's actions (replay or purge dead letters, cancel a job, retry a dead
    /// job). Each needs the bearer token; without this flag the dashboard is read-only.
    #[arg(long, env = "DASHBOARD_ACTIONS")]
    pub dashboard_actions: bool,

    /// File holding the bearer token of the dashboard's actions (a mounted Secret) [with
    /// --local and no token given: a new token, printed once at start].
    #[arg(long, env = "DASHBOARD_TOKEN_FILE", value_name = "PATH")]
    pub dashboard_token_file: Option<PathBuf>,

    /// The bearer token itself, from the environment (a Secret's key as an env var). Hidden:
    /// a token on the command line shows in process lists; prefer the file.
    #[arg(long, env = "DASHBOARD_TOKEN", hide = true, hide_env_values = true)]
    pub dashboard_token: Option<String>,

    /// Name of the coordination.k8s.io Lease that elects the active replica.
    #[arg(long, env = "LEASE_NAME", default_value = "jobqueue-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// How long a leader's lease lasts without renewal: a standby takes over after at most this.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s")]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How often queues without `spec.scaling` are read (status and metrics).
    #[arg(long, env = "DEFAULT_POLL_INTERVAL", default_value = "5s")]
    pub default_poll_interval: Duration,

    /// Least time between two status writes of one resource (replica changes go out at once).
    #[arg(long, env = "STATUS_INTERVAL", default_value = "10s")]
    pub status_interval: Duration,

    /// Period of the janitor (redelivery, dead letters, retention).
    #[arg(long, env = "JANITOR_INTERVAL", default_value = "1s")]
    pub janitor_interval: Duration,

    /// An idle queue (nothing waiting, delayed or pending) is read again after at most this
    /// while Redis reports none of its keys written (client tracking); a write wakes it at
    /// once. A Schedule's stored state is read as its runs come due, and at least this often.
    /// `0s` reads every queue at every poll, without tracking, and every Schedule every second.
    #[arg(long, env = "QUIET_READ_INTERVAL", default_value = "30s")]
    pub quiet_read_interval: Duration,

    /// How late a schedule's run may be reached and still fire as usual; runs further behind
    /// (the operator was down, a failover) follow the Schedule's misfirePolicy.
    #[arg(long, env = "MISFIRE_GRACE", default_value = "5s")]
    pub misfire_grace: Duration,

    /// A Redis user per queue on the default Redis, reaching that queue's keys only, whose
    /// URL the queue's workers get: `auto` falls back to the default URL (with a warning on
    /// the queue) where the operator may not manage users, `required` refuses such queues,
    /// `off` always gives workers the default URL.
    #[arg(long, env = "PER_QUEUE_USERS", value_enum, default_value_t = PerQueueUsers::Auto)]
    pub per_queue_users: PerQueueUsers,
}

/// Whether queues on the default Redis get a Redis user of their own (`--per-queue-users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PerQueueUsers {
    /// Where the default Redis lets the operator manage users; elsewhere the shared URL.
    #[default]
    Auto,
    /// Always; a queue is refused where it cannot have one.
    Required,
    /// Never: workers get the default URL.
    Off,
}

/// Where a cluster operator serves HTTP unless told otherwise.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";
/// Where local mode serves HTTP unless told otherwise: a developer's machine, so loopback only.
pub const DEFAULT_LOCAL_METRICS_ADDR: &str = "127.0.0.1:8080";
/// The Redis used when neither `--redis` nor `REDIS_URL` names one.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The dashboard token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DashboardTokenError {
    #[error("--dashboard-token-file {}: cannot read it: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("the dashboard token (--dashboard-token-file or DASHBOARD_TOKEN) is empty")]
    Empty,
}

/// A `--metrics-addr` value: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    At(SocketAddr),
}

fn parse_addr(s: &str) -> Result<MetricsAddr, String> {
    if s == "off" {
        return Ok(MetricsAddr::Off);
    }
    s.parse()
        .map(MetricsAddr::At)
        .map_err(|e| format!("{e}; expected host:port such as 0.0.0.0:8080, or off"))
}

impl Settings {
    /// The Redis for resources that do not name one: `--redis` / `REDIS_URL`, else the default.
    pub fn redis_url(&self) -> String {
        self.redis
            .clone()
            .unwrap_or_else(|| self.default_redis.clone())
    }

    /// The HTTP address (`None`: off); unless given, [`DEFAULT_LOCAL_METRICS_ADDR`] in local
    /// mode and [`DEFAULT_METRICS_ADDR`] in a cluster.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let default = match self.local {
            Some(_) => DEFAULT_LOCAL_METRICS_ADDR,
            None => DEFAULT_METRICS_ADDR,
        };
        match self.metrics_addr {
            Some(MetricsAddr::Off) => None,
            Some(MetricsAddr::At(addr)) => Some(addr),
            None => Some(default.parse().expect("a valid constant address")),
        }
    }

    /// The dashboard's address (`None`: off); unless given, a free loopback port in local mode
    /// and off in a cluster.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        match (self.dashboard_addr, &self.local) {
            (Some(MetricsAddr::Off), _) | (None, None) => None,
            (Some(MetricsAddr::At(addr)), _) => Some(addr),
            (None, Some(_)) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }

    /// The dashboard's bearer token, from `--dashboard-token-file` or `DASHBOARD_TOKEN`
    /// (surrounding white space, such as a file's final newline, is not part of it).
    pub fn dashboard_token(&self) -> Result<Option<String>, DashboardTokenError> {
        let token = match (&self.dashboard_token_file, &self.dashboard_token) {
            (Some(path), _) => {
                std::fs::read_to_string(path).map_err(|e| DashboardTokenError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            (None, Some(token)) => token.clone(),
            (None, None) => return Ok(None),
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(DashboardTokenError::Empty);
        }
        Ok(Some(token.to_string()))
    }

    /// The runtime tuning these flags describe.
    pub fn runtime_options(&self) -> RuntimeOptions {
        let nonzero =
            |d: Duration, floor_ms: u64| d.as_std().max(StdDuration::from_millis(floor_ms));
        RuntimeOptions {
            default_poll_interval: nonzero(self.default_poll_interval, 100),
            status_interval: self.status_interval.as_std(),
            janitor_interval: nonzero(self.janitor_interval, 50),
            quiet_read_interval: self.quiet_read_interval.as_std(),
            scheduler: SchedulerConfig {
                misfire_grace: self.misfire_grace.as_std(),
                ..SchedulerConfig::default()
            },
            ..RuntimeOptions::default()
        }
    }
}

/// `Settings` parsed from `run` arguments, for the unit tests of the modules that read them.
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Settings {
    use clap::Parser;

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        settings: Settings,
    }
    Run::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
        .unwrap()
        .settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mode_serves_http_on_loopback_unless_told_otherwise() {
        if std::env::var_os("METRICS_ADDR").is_some() {
            return; // the environment chooses the address: nothing to check
        }
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(parse(&[]).metrics_addr(), at("0.0.0.0:8080"));
        assert_eq!(
            parse(&["--local", "x"]).metrics_addr(),
            at("127.0.0.1:8080")
        );
        let given = parse(&["--local", "x", "--metrics-addr", "0.0.0.0:9"]);
        assert_eq!(given.metrics_addr(), at("0.0.0.0:9"));
        assert_eq!(parse(&["--metrics-addr", "off"]).metrics_addr(), None);
    }

    #[test]
    fn the_dashboard_is_off_in_a_cluster_and_on_loopback_locally_unless_told_otherwise() {
        if std::env::var_os("DASHBOARD_ADDR").is_some() {
            return; // the environment chooses the address: nothing to check
        }
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(parse(&[]).dashboard_addr(), None);
        assert_eq!(parse(&["--local", "x"]).dashboard_addr(), at("127.0.0.1:0"));
        let given = parse(&["--dashboard-addr", "0.0.0.0:8081"]);
        assert_eq!(given.dashboard_addr(), at("0.0.0.0:8081"));
        let off = parse(&["--local", "x", "--dashboard-addr", "off"]);
        assert_eq!(off.dashboard_addr(), None);
    }

    #[test]
    fn the_dashboard_token_is_read_from_its_file_without_the_newline() {
        if std::env::var_os("DASHBOARD_TOKEN").is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.to_str().unwrap();
        let s = parse(&["--dashboard-token-file", path]);
        assert_eq!(s.dashboard_token(), Ok(Some("s3cret".into())));
        std::fs::write(&file, " \n").unwrap();
        assert_eq!(s.dashboard_token(), Err(DashboardTokenError::Empty));
        let missing = parse(&["--dashboard-token-file", "/nonexistent/token"]);
        let err = missing.dashboard_token().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/token"), "{err}");
        if std::env::var_os("DASHBOARD_TOKEN_FILE").is_none() {
            assert_eq!(parse(&[]).dashboard_token(), Ok(None));
        }
    }

    #[test]
    fn the_redis_given_wins_over_the_default() {
        if std::env::var_os("REDIS_URL").is_some()
            || std::env::var_os("JOBQUEUE_DEFAULT_REDIS").is_some()
        {
            return; // the environment names a Redis: nothing to check
        }
        let default = parse(&[]);
        assert_eq!(default.redis, None);
        assert_eq!(default.redis_url(), DEFAULT_REDIS_URL);
        assert_eq!(
            parse(&["--redis", "redis://r:1"]).redis_url(),
            "redis://r:1"
        );
    }
}

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

    /// Redis for resources that do not name one (`spec.redis` absent).
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis: String,

    /// Namespaces to watch (repeat or comma-separate); all namespaces when absent.
    #[arg(
        long = "namespace",
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS"
    )]
    pub namespaces: Vec<String>,

    /// Address of /metrics, /healthz and /readyz (port 0 picks a free port; `off` disables).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    // Fully qualified so clap does not treat the field as optional: `parse_addr` returns the
    // Option itself (`off` → None); plain `Option<SocketAddr>` panics at parse time.
    pub metrics_addr: ::std::option::Option<SocketAddr>,

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

    /// How late a schedule's run may be reached and still fire as usual; runs further behind
    /// (the operator was down, a failover) follow the Schedule's misfirePolicy.
    #[arg(long, env = "MISFIRE_GRACE", default_value = "5s")]
    pub misfire_grace: Duration,
}

fn parse_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "off" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| format!("{e}; expected host:port such as 0.0.0.0:8080, or off"))
}

impl Settings {
    /// The runtime tuning these flags describe.
    pub fn runtime_options(&self) -> RuntimeOptions {
        let nonzero =
            |d: Duration, floor_ms: u64| d.as_std().max(StdDuration::from_millis(floor_ms));
        RuntimeOptions {
            default_poll_interval: nonzero(self.default_poll_interval, 100),
            status_interval: self.status_interval.as_std(),
            janitor_interval: nonzero(self.janitor_interval, 50),
            scheduler: SchedulerConfig {
                misfire_grace: self.misfire_grace.as_std(),
                ..SchedulerConfig::default()
            },
            ..RuntimeOptions::default()
        }
    }
}

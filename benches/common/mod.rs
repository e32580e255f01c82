//! Shared by the benchmark binaries: summary statistics, the machine description, the load
//! while a figure ran, and per-process CPU and memory from /proc.
//!
//! Every figure is printed as Markdown so that it can be pasted into BENCHMARKS.md as is.

#![allow(dead_code)] // each benchmark uses a different subset

pub mod cluster;
pub mod queues;

use std::time::Duration;

/// The runtime every benchmark runs on: two worker threads, as on the 2-core machines the
/// figures are measured on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Median, spread and tail of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=1).
fn rank(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

/// Summary of `samples` (panics on an empty set: a figure without samples is a bug).
pub fn summary(samples: &[f64]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    Summary {
        n: s.len(),
        min: s[0],
        median,
        p95: rank(&s, 0.95),
        p99: rank(&s, 0.99),
        max: s[s.len() - 1],
    }
}

impl Summary {
    /// `median (min–max)` with `digits` decimals.
    pub fn spread(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line naming the machine: cores, CPU model, RAM, kernel, redis-server version.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "?".into());
    format!(
        "{cores} cores, {model}, {ram_gb:.0} GB RAM, Linux {}, redis-server {redis}",
        kernel.trim()
    )
}

/// The 1-minute load average (other work on the machine disturbs the figures).
pub fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system) a process has used so far, from /proc/<pid>/stat.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64((utime + stime) as f64 / ticks))
}

/// A `VmXXX:` value of /proc/<pid>/status in MiB (e.g. `VmHWM`, peak resident set).
pub fn process_mem_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Fields of `INFO <section>` as name → value.
pub fn parse_info(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Redis's own account of its work so far, from `INFO everything` (on a connection of its
/// own): CPU (used_cpu_user + used_cpu_sys), commands run (commandstats `calls=`, including
/// the commands Lua scripts run) and socket reads (`total_reads_processed`, which counts the
/// round trips the server saw).
#[derive(Debug, Clone, Copy)]
pub struct RedisWork {
    pub cpu_ms: f64,
    pub commands: f64,
    pub reads: f64,
}

impl RedisWork {
    pub async fn read(admin: &mut jobqueue_operator::queue::RedisConn) -> RedisWork {
        let text: String = redis::cmd("INFO")
            .arg("everything")
            .query_async(admin)
            .await
            .expect("INFO");
        let info = parse_info(&text);
        RedisWork {
            cpu_ms: 1000.0 * (info_num(&info, "used_cpu_user") + info_num(&info, "used_cpu_sys")),
            commands: all_calls(&info),
            reads: info_num(&info, "total_reads_processed"),
        }
    }

    /// The work of one of `ticks` ticks run between `self` and `after`, less the INFO call
    /// (its command and its socket read) that separates the two readings.
    pub fn per_tick(&self, after: &RedisWork, ticks: usize) -> RedisWork {
        let t = ticks as f64;
        RedisWork {
            cpu_ms: (after.cpu_ms - self.cpu_ms) / t,
            commands: (after.commands - self.commands - 1.0) / t,
            reads: (after.reads - self.reads - 1.0) / t,
        }
    }
}

/// A numeric INFO field (panics when it is missing: the figure would be wrong).
pub fn info_num(info: &std::collections::HashMap<String, String>, field: &str) -> f64 {
    info.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no numeric {field}"))
}

/// Commands Redis has run (commandstats `calls=`, those inside Lua scripts included).
pub fn all_calls(info: &std::collections::HashMap<String, String>) -> f64 {
    calls_by_command(info).values().sum()
}

/// The same per command, by name in lower case (`xinfo|groups` for a subcommand).
pub fn calls_by_command(
    info: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, f64> {
    info.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?;
            let calls = v
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse::<f64>()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

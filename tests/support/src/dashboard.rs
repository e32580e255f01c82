//! The operator's web dashboard as a client sees it: its URL from local mode's output, and
//! plain HTTP/1.0 requests (GET the pages and JSON, POST the actions with chosen headers).

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::local::Line;

/// `http://HOST:PORT/` from local mode's `dashboard: URL (...)` line, if printed yet.
pub fn url(lines: &[Line]) -> Option<String> {
    lines.iter().find_map(|l| {
        let rest = l.text.strip_prefix("dashboard: ")?;
        Some(rest.split_whitespace().next()?.to_string())
    })
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `method path` to the dashboard at `base` (`http://HOST:PORT/`) with `headers`.
pub fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let authority = base
        .strip_prefix("http://")
        .unwrap_or(base)
        .trim_end_matches('/');
    let mut stream =
        TcpStream::connect(authority).unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {authority}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("writing a request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("reading a response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `GET path`.
pub fn get(base: &str, path: &str) -> Response {
    request(base, "GET", path, &[])
}

/// The rows of table `id` of a page's JSON, each cell's text.
pub fn table(page: &serde_json::Value, id: &str) -> Vec<Vec<String>> {
    page["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["id"] == id)
        .flat_map(|t| t["rows"].as_array().cloned().unwrap_or_default())
        .map(|row| {
            row.as_array()
                .into_iter()
                .flatten()
                .map(|c| c["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

/// A figure of a page's JSON by its label.
pub fn stat(page: &serde_json::Value, label: &str) -> Option<String> {
    page["stats"]
        .as_array()?
        .iter()
        .find(|s| s["label"] == label)
        .and_then(|s| s["value"].as_str())
        .map(str::to_string)
}

/// `run --local` on the demo's JobQueue and Schedule (workers are the operator's own `work`
/// command, so no Python is needed) against a private redis-server, with the dashboard on a
/// free loopback port and `args` added.
pub struct DemoDashboard {
    pub redis: crate::redis::RedisServer,
    pub run: crate::local::LocalRun,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl DemoDashboard {
    pub fn start(args: &[&str]) -> DemoDashboard {
        use crate::local::{LocalRun, demo_file};
        let redis = crate::redis::RedisServer::start();
        let redis_url = redis.url();
        let all = [
            &[
                "--redis",
                redis_url.as_str(),
                "--dashboard-addr",
                "127.0.0.1:0",
            ],
            args,
        ]
        .concat();
        let run = LocalRun::spawn(
            &[
                ("jobqueue.yaml", demo_file("jobqueue.yaml")),
                ("schedule.yaml", demo_file("schedule.yaml")),
            ],
            &all,
            &[],
        );
        let url = run.wait_for("the dashboard's URL", url);
        run.wait_line("JobQueue default/demo: serving");
        run.wait_line("Schedule default/every-minute: armed");
        DemoDashboard { redis, run, url }
    }

    /// `jobqueue-operator enqueue` of `count` jobs with `payload` into the demo queue; returns
    /// what it printed (the job id of a single job).
    pub fn enqueue(&self, payload: &str, count: u32) -> String {
        self.enqueue_with(payload, &["--count", &count.to_string()])
    }

    /// `jobqueue-operator enqueue` of `payload` with `extra` arguments (`--delay 1h`, ...).
    pub fn enqueue_with(&self, payload: &str, extra: &[&str]) -> String {
        let mut cmd = std::process::Command::new(crate::operator_binary());
        let out = crate::without_operator_env(&mut cmd)
            .arg("enqueue")
            .arg("-f")
            .arg(self.run.path("jobqueue.yaml"))
            .arg(payload)
            .args(extra)
            .args(["--redis", &self.redis.url()])
            .output()
            .expect("running jobqueue-operator enqueue");
        assert!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the page JSON at `path` satisfies `cond`; returns what `cond` returned.
    pub fn wait_page<T>(
        &self,
        what: &str,
        path: &str,
        mut cond: impl FnMut(&serde_json::Value) -> Option<T>,
    ) -> T {
        crate::wait::blocking(crate::local::DEADLINE, what, || {
            let page = get(&self.url, path).json();
            cond(&page).ok_or_else(|| format!("{page}\noutput:\n{}", self.run.output()))
        })
    }
}

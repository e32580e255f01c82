//! The options every queue command shares: which Redis (`--redis URL`), and which queue (a
//! stream key on the command line, or `-f jobqueue.yaml` whose settings then apply).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::ResourceExt;
use serde::Deserialize;

use crate::api::JobQueue;
use crate::queue::{QueueConfig, RedisConn, connect};

/// Where Redis is when neither `--redis`, the manifest, nor `REDIS_URL` says.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `--redis URL` and `-f FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Redis URL: redis://[:password@]host:port, rediss://... (TLS), or
    /// redis+cluster://host:port,host:port for a Redis Cluster. Default: the manifest's
    /// spec.redis.url, then $REDIS_URL, then redis://127.0.0.1:6379.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// A JobQueue manifest (YAML); the stream, group, dead-letter key and delivery settings
    /// come from it. Use `-` for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// A resolved queue: the URL to use and the engine's configuration of the queue.
#[derive(Debug, Clone)]
pub struct Target {
    /// The Redis URL.
    pub url: String,
    /// The queue.
    pub cfg: QueueConfig,
}

impl Target {
    /// Connects to the target's Redis.
    pub async fn connect(&self) -> anyhow::Result<RedisConn> {
        Ok(connect(&self.url).await?)
    }
}

impl TargetArgs {
    /// Resolves the queue from `-f` or `stream` (exactly one), and the Redis URL.
    pub fn resolve(&self, stream: Option<&str>, group: Option<&str>) -> anyhow::Result<Target> {
        let (cfg, manifest_url) = match (&self.file, stream) {
            (Some(_), Some(s)) => {
                bail!("give either STREAM ({s:?}) or -f FILE, not both")
            }
            (None, None) => {
                bail!("missing STREAM: give the queue's stream key, or -f jobqueue.yaml")
            }
            (None, Some(s)) => {
                if s.is_empty() {
                    bail!("STREAM must not be empty");
                }
                (QueueConfig::new(s), None)
            }
            (Some(path), None) => {
                let jq = read_manifest(path)?;
                let cfg = crate::plan::queue_config(&jq)
                    .with_context(|| format!("JobQueue {} in {}", jq.name_any(), path.display()))?;
                let url = match jq.spec.redis.as_ref() {
                    Some(r) if r.url.is_some() => r.url.clone(),
                    Some(r)
                        if r.url_secret_ref.is_some()
                            && self.redis.is_none()
                            && env_url().is_none() =>
                    {
                        let s = r.url_secret_ref.as_ref().expect("checked");
                        bail!(
                            "JobQueue {} reads its Redis URL from Secret {}/{}; pass --redis URL (or set REDIS_URL)",
                            jq.name_any(),
                            s.name,
                            s.key
                        )
                    }
                    _ => None,
                };
                (cfg, url)
            }
        };
        let mut cfg = cfg;
        if let Some(g) = group {
            if g.is_empty() {
                bail!("--group must not be empty");
            }
            cfg.group = g.to_string();
        }
        cfg.validate()?;
        let url = self
            .redis
            .clone()
            .or(manifest_url)
            .or_else(env_url)
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string());
        Ok(Target { url, cfg })
    }
}

fn env_url() -> Option<String> {
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
}

/// Reads the one JobQueue in a YAML file (other kinds in a multi-document file are skipped).
pub fn read_manifest(path: &Path) -> anyhow::Result<JobQueue> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the manifest from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut found = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("{} is not valid YAML", path.display()))?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) == Some("JobQueue") {
            let mut jq: JobQueue = serde_yaml::from_value(value)
                .with_context(|| format!("{}: invalid JobQueue", path.display()))?;
            if jq.metadata.namespace.is_none() {
                jq.metadata.namespace = Some("default".into());
            }
            found.push(jq);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("{} contains no JobQueue (kind: JobQueue)", path.display()),
        n => bail!(
            "{} contains {n} JobQueues; pass a file with exactly one",
            path.display()
        ),
    }
}

//! `jobqueue-operator enqueue`: add one job to a queue and print its id, or `--count N` jobs
//! with the same payload (each its own id) and print how many, with the first and last id.

use std::io::Read;
use std::str::FromStr;
use std::time::SystemTime;

use anyhow::{Context, bail};

use super::target::TargetArgs;
use crate::api::Duration;
use crate::queue::conn::RedisConn;
use crate::queue::keys::QueueKeys;
use crate::queue::{Due, EnqueueOptions, enqueue};

/// Jobs sent before waiting for their replies: one round trip per batch, not per job.
const BATCH: usize = 200;

/// Arguments of `enqueue`.
#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The queue's stream key (omit with -f).
    #[arg(value_name = "STREAM")]
    stream: Option<String>,
    /// The job payload as JSON; `-` reads it from stdin. Default: {}.
    #[arg(value_name = "PAYLOAD|-")]
    payload: Option<String>,
    /// Make the job available after this delay (e.g. 30s, 5m, 1h30m).
    #[arg(long, value_name = "DURATION", conflicts_with = "at")]
    delay: Option<String>,
    /// Make the job available at this time (RFC 3339, e.g. 2030-01-01T09:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// A second enqueue with the same key (within --idempotency-ttl) adds nothing and prints
    /// the first job's id.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// How long the idempotency key is remembered.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        requires = "idempotency_key"
    )]
    idempotency_ttl: String,
    /// Enqueue N jobs with this payload, each its own id (a burst); prints the count and the
    /// first and last id.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
}

/// Runs `enqueue`: validates everything before touching Redis, so bad input writes nothing.
pub async fn run(args: EnqueueArgs) -> anyhow::Result<()> {
    // With -f the first positional is the payload.
    let (stream, payload) = match (&args.target.file, args.stream, args.payload) {
        (Some(_), Some(p), None) => (None, Some(p)),
        (_, s, p) => (s, p),
    };
    let target = args.target.resolve(stream.as_deref(), None)?;
    let payload = parse_payload(payload.as_deref())?;
    let due = match (&args.delay, &args.at) {
        (Some(d), _) => Due::After(
            Duration::from_str(d)
                .map_err(|e| anyhow::anyhow!("--delay: {e}"))?
                .as_std(),
        ),
        (None, Some(at)) => {
            let t: jiff::Timestamp = at.parse().map_err(|e| {
                anyhow::anyhow!(
                    "--at: {at:?} is not an RFC 3339 time ({e}); e.g. 2030-01-01T09:00:00Z"
                )
            })?;
            Due::At(SystemTime::from(t))
        }
        (None, None) => Due::Now,
    };
    if let Some(k) = &args.idempotency_key
        && k.is_empty()
    {
        bail!("--idempotency-key must not be empty");
    }
    if args.count > 1 && args.idempotency_key.is_some() {
        bail!(
            "--count with --idempotency-key: one key stands for one job, so every job after the first would be dropped; leave out one of them"
        );
    }
    let ttl = Duration::from_str(&args.idempotency_ttl)
        .map_err(|e| anyhow::anyhow!("--idempotency-ttl: {e}"))?
        .as_std();
    if ttl.is_zero() {
        bail!("--idempotency-ttl must be greater than zero");
    }
    let options = EnqueueOptions {
        due,
        idempotency_key: args.idempotency_key,
        idempotency_ttl: Some(ttl),
        extra_fields: Vec::new(),
    };
    let mut conn = target.connect().await?;
    if args.count > 1 {
        return burst(conn, &target.cfg.keys, &payload, &options, args.count).await;
    }
    let job = enqueue(&mut conn, &target.cfg.keys, &payload, &options).await?;
    if !job.added {
        eprintln!("idempotency key already used: no new job, this is the first job's id");
    }
    println!("{}", job.job_id);
    Ok(())
}

/// Enqueues `count` (≥ 2) jobs. The first and the last go alone, so they are the stream's
/// first and last of the burst (the first also loads the script); the ones between go
/// [`BATCH`] at a time on the shared connection, which pipelines them.
async fn burst(
    mut conn: RedisConn,
    keys: &QueueKeys,
    payload: &serde_json::Value,
    options: &EnqueueOptions,
    count: u64,
) -> anyhow::Result<()> {
    let first = enqueue(&mut conn, keys, payload, options).await?.job_id;
    let mut done = 1u64;
    while done < count - 1 {
        let n = (count - 1 - done).min(BATCH as u64);
        let batch = (0..n).map(|_| {
            let mut conn = conn.clone();
            async move { enqueue(&mut conn, keys, payload, options).await }
        });
        futures::future::try_join_all(batch)
            .await
            .with_context(|| format!("after {done} of {count} jobs"))?;
        done += n;
    }
    let last = enqueue(&mut conn, keys, payload, options)
        .await
        .with_context(|| format!("after {done} of {count} jobs"))?
        .job_id;
    println!("enqueued {count} jobs: first {first}, last {last}");
    Ok(())
}

fn parse_payload(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let text = match arg {
        None => return Ok(serde_json::json!({})),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading PAYLOAD from stdin")?;
            s
        }
        Some(s) => s.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("PAYLOAD is not valid JSON: {e}"))
}

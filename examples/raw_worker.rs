//! A jobqueue worker in Rust that speaks plain Redis Streams with the `redis` crate: no
//! jobqueue library needed. The operator (or `run --local`) starts it with REDIS_URL,
//! JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER set.
//!
//! Loop: XREADGROUP one job, do the work, XACK. On SIGTERM (scale-in, shutdown) it finishes
//! the job in hand and exits; a job it never acknowledges goes to another worker (attempt + 1).
//!
//! ```text
//! cargo build --example raw_worker
//! # in a JobQueue's template: command: ["/path/to/target/debug/examples/raw_worker"]
//! ```
//!
//! The "work": sleep `payload.sleep` seconds (default 0.005); `payload.fail: true` skips the
//! XACK so the job is retried.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (the operator injects it)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, stream, group, consumer) = (
        env("REDIS_URL")?,
        env("JOBQUEUE_STREAM")?,
        env("JOBQUEUE_GROUP")?,
        env("JOBQUEUE_CONSUMER")?,
    );
    let client = redis::Client::open(url)?;
    // The default response timeout is shorter than the blocking read below.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    println!(
        "worker {consumer} (pid {}) reading {stream} as group {group}",
        std::process::id()
    );

    // Block at most a second per read so a SIGTERM on an empty queue is noticed quickly.
    let options = StreamReadOptions::default()
        .group(&group, &consumer)
        .count(1)
        .block(1000);
    let (keys, ids) = ([stream.as_str()], [">"]);
    loop {
        let reply: Option<StreamReadReply> = tokio::select! {
            r = conn.xread_options(&keys, &ids, &options) => r?,
            _ = term.recv() => break,
        };
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let job: String = entry.get("id").unwrap_or_default();
            let attempt: String = entry.get("attempt").unwrap_or_else(|| "1".into());
            let payload: String = entry.get("payload").unwrap_or_else(|| "{}".into());
            let payload: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
            println!("got {job} attempt {attempt}");
            let secs = payload["sleep"].as_f64().unwrap_or(0.005).max(0.0);
            // Even a zero sleep waits for the timer's next tick (~1 ms): skip it.
            if secs > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            if payload["fail"].as_bool() == Some(true) {
                println!("failed {job} attempt {attempt}");
                continue;
            }
            let acked: i64 = conn.xack(&stream, &group, &[&entry.id]).await?;
            if acked == 1 {
                println!("acked {job} attempt {attempt}");
            } else {
                // Handed to another worker meanwhile (visibility timeout passed).
                println!("lost {job} attempt {attempt}");
            }
        }
    }
    println!("worker {consumer} stopping");
    Ok(())
}

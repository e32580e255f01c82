//! A worker on the Rust client: what a worker container runs. The operator (or `run --local`)
//! starts it with REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER set.
//!
//! ```text
//! cargo build --example worker
//! # in a JobQueue's template: command: ["/path/to/target/debug/examples/worker"]
//! ```
//!
//! The "work": a payload `{"to": "..."}` is "sent" (its result says to whom); a payload without
//! `to` fails permanently (dead-lettered at once); `{"fail": true}` fails and is retried with
//! the queue's backoff. SIGTERM: no new job, the ones in hand finish, then it exits.

use jobqueue_client::{JobContext, Outcome, Worker};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = Worker::from_env()?.concurrency(4).run(handle).await?;
    eprintln!("worker stopped after {} jobs", report.ran);
    Ok(())
}

async fn handle(mut ctx: JobContext) -> Outcome {
    let payload: Value = serde_json::from_str(&ctx.delivery.payload).unwrap_or(Value::Null);
    if payload["fail"] == true {
        return Outcome::Fail {
            error: format!("asked to fail (attempt {})", ctx.delivery.attempt),
            permanent: false,
        };
    }
    let Some(to) = payload["to"].as_str() else {
        return Outcome::Fail {
            error: "no recipient (payload.to)".into(),
            permanent: true,
        };
    };
    // Progress is readable with `jobqueue-operator job get`; it also extends the job's lease.
    let _ = ctx.progress(r#"{"step":"sending"}"#).await;
    if let Some(run) = &ctx.delivery.schedule {
        eprintln!(
            "scheduled run of {run} at {:?}",
            ctx.delivery.scheduled_for_ms
        );
    }
    Outcome::Complete(Some(json!({"sent_to": to}).to_string()))
}

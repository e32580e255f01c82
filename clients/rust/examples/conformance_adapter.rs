//! The Rust client's conformance adapter (the contract is `clients/conformance/README.md`):
//! one command per run, configured by `REDIS_URL`, `JOBQUEUE_STREAM`, `JOBQUEUE_GROUP`,
//! `JOBQUEUE_CONSUMER` and `CONFORMANCE_LOG`; JSON on stdout.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use jobqueue_client::{Due, EnqueueOptions, Job, JobContext, Outcome, Queue, QueueError, Worker};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<ExitCode, QueueError> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    if arg(0) == "work" {
        let options: Value = serde_json::from_str(arg(1)).unwrap_or(json!({}));
        let n = options["concurrency"].as_u64().unwrap_or(1) as usize;
        Worker::from_env()?.concurrency(n).run(handle).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let stream = std::env::var("JOBQUEUE_STREAM").unwrap_or_default();
    let mut queue = Queue::from_url(&url, &stream).await?;
    if let Ok(group) = std::env::var("JOBQUEUE_GROUP") {
        queue = queue.with_group(group);
    }
    let out = match arg(0) {
        "enqueue" => {
            let spec: Value = serde_json::from_str(arg(1)).unwrap_or(json!({}));
            let mut options = EnqueueOptions::default();
            if let Some(ms) = spec["delay_ms"].as_u64() {
                options.due = Due::After(Duration::from_millis(ms));
            }
            if let Some(ms) = spec["at_ms"].as_u64() {
                options.due = Due::At(UNIX_EPOCH + Duration::from_millis(ms));
            }
            options.idempotency_key = spec["idempotency_key"].as_str().map(str::to_string);
            json!({"id": queue.enqueue(&spec["payload"], &options).await?})
        }
        "get" => queue
            .get_job(arg(1))
            .await?
            .as_ref()
            .map_or(Value::Null, job_json),
        "wait" => {
            let ms: u64 = arg(2).parse().unwrap_or(10_000);
            match queue.wait(arg(1), Duration::from_millis(ms)).await {
                Ok(job) => job_json(&job),
                Err(QueueError::Timeout { .. }) => return Ok(ExitCode::from(3)),
                Err(e) => return Err(e),
            }
        }
        "cancel" => json!({"outcome": queue.cancel(arg(1)).await?.as_str()}),
        other => {
            eprintln!("unknown command {other:?}: enqueue, get, wait, cancel or work");
            return Ok(ExitCode::from(2));
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn job_json(job: &Job) -> Value {
    json!({
        "id": job.id, "state": job.state.to_string(), "attempt": job.attempt,
        "progress": job.progress, "result": job.result, "error": job.error,
    })
}

fn log(event: &str, ctx: &JobContext) {
    let Ok(path) = std::env::var("CONFORMANCE_LOG") else {
        return;
    };
    let line = json!({"event": event, "id": ctx.delivery.job_id,
        "attempt": ctx.delivery.attempt, "lang": "rust"});
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

async fn handle(mut ctx: JobContext) -> Outcome {
    log("start", &ctx);
    let outcome = act(&mut ctx).await;
    log("end", &ctx);
    outcome
}

async fn act(ctx: &mut JobContext) -> Outcome {
    let payload: Value = serde_json::from_str(&ctx.delivery.payload).unwrap_or(Value::Null);
    let result = Outcome::Complete(Some(payload["result"].to_string()));
    let error = payload["error"].as_str().unwrap_or("failed").to_string();
    match payload["action"].as_str().unwrap_or("succeed") {
        "fail" => Outcome::Fail {
            error,
            permanent: false,
        },
        "fail_permanent" => Outcome::Fail {
            error,
            permanent: true,
        },
        "fail_until"
            if u64::from(ctx.delivery.attempt) < payload["attempt"].as_u64().unwrap_or(1) =>
        {
            Outcome::Fail {
                error,
                permanent: false,
            }
        }
        "progress" => {
            for step in payload["steps"].as_array().into_iter().flatten() {
                if let Err(e) = ctx.progress(&step.to_string()).await {
                    return Outcome::Fail {
                        error: e.to_string(),
                        permanent: false,
                    };
                }
            }
            result
        }
        "sleep" => {
            let ms = payload["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            result
        }
        "wait_cancel" => {
            let mut cancelled = ctx.cancelled();
            while !*cancelled.borrow_and_update() {
                if cancelled.changed().await.is_err() {
                    break;
                }
            }
            Outcome::Complete(Some(json!({"cancelled": true}).to_string()))
        }
        _ => result,
    }
}

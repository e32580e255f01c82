//! The per-team Redis user the README's tenancy section gives (the `ACL SETUSER` line is read
//! from README.md, so the two cannot drift): with it a team enqueues, works and follows its own
//! queue's jobs, and gets NOPERM on another team's queue and on the function library.

use std::time::Duration;

use jobqueue_client::{EnqueueOptions, JobState, Outcome, Queue, Worker};
use jobqueue_operator::queue::jobs::{JobSettings, ensure_library, store_settings};
use jobqueue_operator::queue::provision::provision;
use jobqueue_operator::queue::{QueueConfig, connect};
use jobqueue_test_support::redis::RedisServer;
use serde_json::json;
use tokio::sync::watch;

const A: &str = "jobqueue:{team-a/emails}";
const B: &str = "jobqueue:{team-b/emails}";
const PASSWORD: &str = "a-long-random-password";

/// The README's `ACL SETUSER team-a ...` line, with a password filled in.
fn readme_acl_line() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let line = readme
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ACL SETUSER team-a "))
        .expect("README's tenancy section gives an ACL SETUSER line for team-a");
    line.split_whitespace()
        .map(|w| w.replace(">LONG-RANDOM-PASSWORD", &format!(">{PASSWORD}")))
        .collect()
}

fn is_noperm(e: &impl std::fmt::Display) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("noperm") || text.contains("no permissions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_user_reaches_its_own_queue_only() {
    let redis = RedisServer::start();
    let mut admin = connect(&redis.url()).await.expect("connect");
    for stream in [A, B] {
        let cfg = QueueConfig::new(stream);
        provision(&mut admin, &cfg, false).await.expect("provision");
        store_settings(&mut admin, &cfg, &JobSettings::default())
            .await
            .expect("settings");
    }
    ensure_library(&mut admin).await.expect("library");
    let acl = readme_acl_line();
    assert!(acl.iter().any(|w| w == &format!(">{PASSWORD}")), "{acl:?}");
    let () = redis::cmd(&acl[0])
        .arg(&acl[1..])
        .query_async(&mut admin)
        .await
        .expect("the README's ACL SETUSER line runs");
    let team_a = redis
        .url()
        .replacen("redis://", &format!("redis://team-a:{PASSWORD}@"), 1);

    // Its own queue: enqueue, work, follow.
    let q = Queue::from_url(&team_a, A).await.expect("team-a's queue");
    let id = q
        .enqueue(&json!({"to": "a@example.com"}), &EnqueueOptions::default())
        .await
        .expect("enqueue");
    let (stop_tx, stop) = watch::channel(false);
    let worker = tokio::spawn(
        Worker::new(&team_a, A)
            .consumer("a-1")
            .run_until(stop, |_| async {
                Outcome::Complete(Some("\"sent\"".into()))
            }),
    );
    let done = q.wait(&id, Duration::from_secs(20)).await.expect("wait");
    assert_eq!(
        (done.state, done.result),
        (JobState::Succeeded, Some(json!("sent")))
    );
    stop_tx.send_replace(true);
    worker
        .await
        .expect("join")
        .expect("the worker ran as team-a");

    // Another team's queue and the shared library: refused.
    let other = Queue::from_url(&team_a, B)
        .await
        .expect("the library check is key-less");
    let e = other
        .enqueue(&json!({}), &EnqueueOptions::default())
        .await
        .expect_err("enqueue into team-b");
    assert!(is_noperm(&e), "{e}");
    let e = other.get_job("x").await.expect_err("read team-b's records");
    assert!(is_noperm(&e), "{e}");
    let mut conn = connect(&team_a).await.expect("connect as team-a");
    for cmd in [
        redis::cmd("XADD")
            .arg(B)
            .arg("*")
            .arg("id")
            .arg("x")
            .clone(),
        redis::cmd("XREADGROUP")
            .arg(&["GROUP", "workers", "a-1", "STREAMS", B, ">"])
            .clone(),
        redis::cmd("FUNCTION").arg("DELETE").arg("jobqueue").clone(),
        redis::cmd("FUNCTION").arg("FLUSH").clone(),
    ] {
        let e = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err("refused");
        assert!(is_noperm(&e), "{e}");
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(B)
        .query_async(&mut admin)
        .await
        .expect("XLEN");
    assert_eq!(len, 0, "team-b's stream untouched");
}

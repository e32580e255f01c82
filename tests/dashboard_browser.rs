//! The dashboard in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/`, installed with `npm ci`) through `node --test`, against `run --local` on
//! the demo with real workers and redis-server. It asserts what a person sees: the queue's row
//! and numbers, the chart, a dead letter's error, a job found by id, the replay button absent
//! while read-only and working with the token when actions are on. Screenshots go to
//! `target/screenshots/`.

use std::path::Path;
use std::process::Command;

use jobqueue_test_support::dashboard::{DemoDashboard, table};
use jobqueue_test_support::repo_dir;
use jobqueue_test_support::tools::{require_chromium, require_node};

const TEST: &str = "dashboard_browser";

/// `npm ci` in `tests/browser` unless playwright-core is installed there.
fn install(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("running npm ci");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Enqueues work and a poisoned job, waits until the job is a dead letter; returns its id.
fn with_data(d: &DemoDashboard) -> String {
    d.enqueue(r#"{"sleep_ms": 1}"#, 20);
    let id = d.enqueue(r#"{"poison": true}"#, 1);
    d.wait_page(
        "the poisoned job's dead letter",
        "/api/queues/default/demo",
        |page| {
            table(page, "dead")
                .iter()
                .any(|row| row[0] == id)
                .then_some(())
        },
    );
    id
}

fn run_browser(chromium: &str, d: &DemoDashboard, mode: &str, token: &str, job: &str) {
    let dir = repo_dir().join("tests/browser");
    let shots = repo_dir().join("target/screenshots");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "dashboard.test.mjs"])
        .current_dir(&dir)
        .env("DASHBOARD_URL", &d.url)
        .env("DASHBOARD_MODE", mode)
        .env("DASHBOARD_TOKEN", token)
        .env("POISONED_JOB", job)
        .env("CHROMIUM", chromium)
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("running node --test");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "browser tests ({mode}) failed:\n{report}\noperator output:\n{}",
        d.run.output()
    );
    eprintln!("{report}");
}

#[test]
fn a_person_sees_the_queue_its_dead_letters_and_acts_only_with_the_token() {
    let Some(chromium) = require_chromium(TEST) else {
        return;
    };
    if !require_node(TEST) {
        return;
    }
    install(&repo_dir().join("tests/browser"));

    let read_only = DemoDashboard::start(&[]);
    let job = with_data(&read_only);
    run_browser(&chromium, &read_only, "read-only", "", &job);
    drop(read_only);

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "browser-test-token\n").unwrap();
    let acting = DemoDashboard::start(&[
        "--dashboard-actions",
        "--dashboard-token-file",
        token_file.to_str().unwrap(),
    ]);
    let job = with_data(&acting);
    run_browser(&chromium, &acting, "actions", "browser-test-token", &job);
}

//! The operator's web dashboard over plain HTTP, in local mode on the demo queue with real
//! workers (the demo's `work` command) and a real redis-server: the JSON each page polls shows
//! the queue's numbers, a poisoned job's dead letter with its error and the job's attempts;
//! the dashboard is read-only unless actions are on, and an action needs the bearer token and
//! a same-origin request.

use jobqueue_test_support::dashboard::{DemoDashboard, get, request, stat, table};

const QUEUE: &str = "/api/queues/default/demo";
const REPLAY: &str = "/actions/queues/default/demo/dead-letters/replay";
const PURGE: &str = "/actions/queues/default/demo/dead-letters/purge";

/// Enqueues a poisoned job and waits until it is dead-lettered; returns its id.
fn poisoned(d: &DemoDashboard) -> String {
    let id = d.enqueue(r#"{"poison": true}"#, 1);
    d.wait_page("the poisoned job's dead letter", QUEUE, |page| {
        table(page, "dead").into_iter().find(|row| row[0] == id)
    });
    id
}

#[test]
fn pages_show_the_queue_its_dead_letters_a_job_and_the_schedule_read_only() {
    let d = DemoDashboard::start(&[]);
    assert!(
        d.run
            .output()
            .contains(&format!("dashboard: {} (read-only)", d.url)),
        "{}",
        d.run.output()
    );
    d.enqueue(r#"{"sleep_ms": 1}"#, 20);
    let id = poisoned(&d);

    // Overview: the queue's row, its numbers, and a chart with a line.
    let overview = d.wait_page(
        "the overview counting the dead letter",
        "/api/overview",
        |p| {
            let rows = table(p, "queues");
            rows.iter()
                .find(|r| r[0] == "default/demo" && r[5] == "1")
                .map(|_| p.clone())
        },
    );
    let row = &table(&overview, "queues")[0];
    assert_eq!(row.len(), 8, "{row:?}");
    assert!(row[1].parse::<u64>().unwrap() >= 21, "length: {row:?}");
    assert_eq!(stat(&overview, "Queues").as_deref(), Some("1"));
    let chart = overview["chart"].as_str().expect("a chart");
    assert!(chart.starts_with("<svg") && chart.contains("<polyline class=\"backlog\""));

    // Queue: the dead letter's reason, error and attempts; no action button.
    let queue = get(&d.url, QUEUE).json();
    let dead = table(&queue, "dead");
    let letter = dead.iter().find(|r| r[0] == id).expect("the dead letter");
    assert!(
        letter[1].starts_with("max_deliveries_exceeded"),
        "{letter:?}"
    );
    assert!(
        letter[2].contains(&format!("poisoned job {id}")),
        "{letter:?}"
    );
    assert_eq!(letter[3], "3", "attempts: {letter:?}");
    assert_eq!(
        letter.len(),
        5,
        "no Action column while read-only: {letter:?}"
    );
    assert!(!queue.to_string().contains("\"action\""), "{queue}");
    assert!(
        !table(&queue, "decisions").is_empty(),
        "the scale-up is listed"
    );

    // Job: dead, with its error and one queued → active pair per attempt.
    let job = get(&d.url, &format!("/api/jobs?id={id}")).json();
    assert_eq!(stat(&job, "State").as_deref(), Some("dead"));
    assert!(stat(&job, "Error").unwrap().contains("poisoned job"));
    let states: Vec<String> = table(&job, "timeline")
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "active").count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("dead"),
        "{states:?}"
    );
    let unknown = get(&d.url, "/api/jobs?id=no-such-job").json();
    assert!(
        unknown["notice"]
            .as_str()
            .unwrap()
            .contains("No served queue")
    );

    // Schedules: the expression, its zone and upcoming runs.
    let schedules = get(&d.url, "/api/schedules").json();
    let row = &table(&schedules, "schedules")[0];
    assert_eq!(row[0], "default/every-minute");
    assert_eq!((row[2].as_str(), row[3].as_str()), ("0 * * * * *", "UTC"));
    assert_eq!(
        row[4].matches(" UTC").count(),
        3,
        "three next runs: {row:?}"
    );

    // HTML: semantic tables, the script, and no Redis address anywhere.
    let html = get(&d.url, "/queues/default/demo");
    assert_eq!(html.status, 200);
    assert!(html.body.contains("<table id=\"dead\">"), "{}", html.body);
    assert!(html.body.contains("<th scope=\"col\">Error</th>"));
    assert!(
        !html.body.contains("data-action"),
        "no buttons while read-only"
    );
    assert!(html.header("content-security-policy").is_some());
    let redis_addr = d.redis.url().replace("redis://", "");
    for page in [
        "/",
        "/queues/default/demo",
        &format!("/jobs?id={id}"),
        "/schedules",
    ] {
        let body = get(&d.url, page).body;
        assert!(
            !body.contains(&redis_addr),
            "{page} shows the Redis address"
        );
    }
    assert_eq!(get(&d.url, "/queues/default/nope").status, 404);

    // Read-only: an action is refused whatever it carries.
    let r = request(
        &d.url,
        "POST",
        REPLAY,
        &[("Authorization", "Bearer anything")],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["message"].as_str().unwrap().contains("read-only"));
    let still = get(&d.url, QUEUE).json();
    assert!(table(&still, "dead").iter().any(|row| row[0] == id));
}

#[test]
fn actions_need_the_token_and_a_same_origin_request() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ken-for-tests\n").unwrap();
    let d = DemoDashboard::start(&[
        "--dashboard-actions",
        "--dashboard-token-file",
        token_file.to_str().unwrap(),
    ]);
    assert!(
        d.run.output().contains("(actions on)"),
        "{}",
        d.run.output()
    );
    assert!(
        !d.run.output().contains("t0ken-for-tests"),
        "a given token is never printed"
    );
    let id = poisoned(&d);
    let queue = get(&d.url, QUEUE).json();
    assert!(
        queue.to_string().contains(REPLAY),
        "replay buttons: {queue}"
    );

    let origin = format!(
        "http://{}",
        d.url.trim_start_matches("http://").trim_end_matches('/')
    );
    let good = "Bearer t0ken-for-tests";
    let cases: [(&[(&str, &str)], u16); 5] = [
        (&[], 401),
        (&[("Authorization", "Bearer wrong")], 401),
        (
            &[("Authorization", good), ("Origin", "http://evil.example")],
            403,
        ),
        (
            &[("Authorization", good), ("Sec-Fetch-Site", "cross-site")],
            403,
        ),
        (
            &[
                ("Origin", origin.as_str()),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            401,
        ),
    ];
    for (headers, status) in cases {
        let r = request(&d.url, "POST", PURGE, headers);
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
    }
    // Refused requests changed nothing.
    assert!(
        table(&get(&d.url, QUEUE).json(), "dead")
            .iter()
            .any(|r| r[0] == id)
    );
    assert_eq!(get(&d.url, REPLAY).status, 405, "actions are POSTs");

    let same_origin = [
        ("Authorization", good),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let r = request(&d.url, "POST", PURGE, &same_origin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["message"], "purged 1 dead letters of default/demo");
    d.wait_page("the dead letters gone", QUEUE, |p| {
        table(p, "dead").is_empty().then_some(())
    });

    // A delayed job, listed with its due time, is cancelled from its page's button.
    let later = d.enqueue_with(r#"{"sleep_ms": 1}"#, &["--delay", "1h"]);
    let due = d.wait_page("the delayed job listed", QUEUE, |p| {
        table(p, "delayed").into_iter().find(|r| r[0] == later)
    });
    assert!(
        due[1].contains("(in 59m") || due[1].contains("(in 1h"),
        "{due:?}"
    );
    let job_page = get(&d.url, &format!("/api/jobs?id={later}")).json();
    let cancel = format!("/actions/queues/default/demo/jobs/{later}/cancel");
    assert!(job_page.to_string().contains(&cancel), "{job_page}");
    let r = request(&d.url, "POST", &cancel, &same_origin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["message"], format!("job {later} cancelled"));
    let job_page = get(&d.url, &format!("/api/jobs?id={later}")).json();
    assert_eq!(stat(&job_page, "State").as_deref(), Some("cancelled"));
}

#[test]
fn local_mode_makes_up_a_token_and_prints_it_once() {
    let d = DemoDashboard::start(&["--dashboard-actions"]);
    let line = d.run.wait_line("dashboard token (shown once");
    let token = line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(token.len(), 64, "{line}");
    assert_eq!(d.run.count(&token), 1);
    let id = poisoned(&d);
    let auth = format!("Bearer {token}");
    let retry = format!("/actions/queues/default/demo/jobs/{id}/retry");
    let r = request(&d.url, "POST", &retry, &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body);
    // Retried: it runs (and fails) again, three more attempts.
    d.wait_page(
        "the retried job's new attempts",
        &format!("/api/jobs?id={id}"),
        |p| {
            let active = table(p, "timeline")
                .iter()
                .filter(|r| r[1] == "active")
                .count();
            (active >= 4).then_some(())
        },
    );
}

//! The operator's HTTP endpoints while a queue has a backlog: `/healthz`, `/readyz`, and every
//! documented series on `/metrics` (docs/architecture.md#metrics-snapshot). A step of
//! [`crate::provisioning`]'s story.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use jobqueue_test_support::metrics::{Sample, http_get, parse_metrics, value};
use jobqueue_test_support::wait::eventually;

/// `/healthz` and `/readyz` answer 200, and `/metrics` shows the backlog of `emails` (5,000
/// jobs, 8 replicas) and the ticking schedule.
pub async fn serve_the_backlog(addr: SocketAddr) {
    let (samples, types) = scrape_the_backlog(addr).await;
    assert_backlog_series(&samples, &types);
}

/// Health, readiness, and `/metrics` once it has both queue and schedule series.
async fn scrape_the_backlog(addr: SocketAddr) -> (Vec<Sample>, BTreeSet<String>) {
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let q = [("namespace", "default"), ("name", "emails")];
    eventually(
        Duration::from_secs(10),
        "queue and schedule series",
        || async {
            let (code, body) = http_get(addr, "/metrics").await;
            if code != 200 {
                return Err(format!("/metrics answered {code}: {body}"));
            }
            let (samples, types) = parse_metrics(&body);
            let fired = value(
                &samples,
                "jobqueue_schedule_fires_total",
                &[("name", "tick")],
            );
            let lag = value(&samples, "jobqueue_lag", &q);
            match (fired, lag) {
                (Some(f), Some(l)) if f >= 1.0 && l > 0.0 => Ok((samples, types)),
                _ => Err(body),
            }
        },
    )
    .await
}

/// Every series the architecture documents, with the backlog's values.
fn assert_backlog_series(samples: &[Sample], types: &BTreeSet<String>) {
    let q = [("namespace", "default"), ("name", "emails")];
    assert_eq!(value(samples, "jobqueue_replicas", &q), Some(8.0));
    assert_eq!(value(samples, "jobqueue_desired_replicas", &q), Some(8.0));
    assert_eq!(value(samples, "jobqueue_pending", &q), Some(0.0));
    assert_eq!(value(samples, "jobqueue_length", &q), Some(5000.0));
    assert_eq!(value(samples, "jobqueue_lag", &q), Some(5000.0));
    assert_eq!(
        value(
            samples,
            "jobqueue_scale_events_total",
            &[("name", "emails"), ("direction", "Up")]
        ),
        Some(1.0)
    );
    assert_eq!(value(samples, "jobqueue_leader", &[]), Some(1.0));
    assert!(
        value(
            samples,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "jobqueue")]
        )
        .is_some_and(|n| n >= 2.0)
    );
    assert!(
        value(
            samples,
            "jobqueue_reconcile_duration_seconds_count",
            &[("controller", "schedule")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    for documented in [
        "jobqueue_lag",
        "jobqueue_pending",
        "jobqueue_length",
        "jobqueue_delayed",
        "jobqueue_dead_letters",
        "jobqueue_oldest_pending_age_seconds",
        "jobqueue_consumers",
        "jobqueue_replicas",
        "jobqueue_desired_replicas",
        "jobqueue_scale_events",
        "jobqueue_redelivered",
        "jobqueue_dead_lettered",
        "jobqueue_schedule_fires",
        "jobqueue_schedule_missed",
        "jobqueue_schedule_skipped",
        "jobqueue_reconcile_duration_seconds",
        "jobqueue_metrics_poll_duration_seconds",
        "jobqueue_leader",
    ] {
        assert!(
            types.contains(documented),
            "/metrics lacks {documented}: {types:?}"
        );
    }
}

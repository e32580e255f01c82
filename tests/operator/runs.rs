//! A schedule's runs as Redis recorded them: every second either one job or one counted
//! missed run (docs/architecture.md#scheduler).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jobqueue_operator::queue::keys::QueueKeys;
use jobqueue_test_support::operator::jobs;

/// Every-second run times of a schedule's jobs, and its stored counters.
pub struct Runs {
    pub seconds: Vec<i64>,
    /// When each run's job was enqueued, by scheduled time.
    pub enqueued: BTreeMap<i64, i64>,
    pub missed: i64,
    /// The armed next run (exclusive end of what must be accounted for).
    pub next: i64,
}

/// The runs of `schedule` in `keys`' stream, checked for duplicates, with its counters.
pub async fn runs(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
    schedule: &str,
) -> Runs {
    let all = jobs(conn, &keys.stream).await;
    let mine: Vec<_> = all
        .iter()
        .filter(|j| j.schedule.as_deref() == Some(schedule))
        .collect();
    let ids: HashSet<&str> = mine.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        mine.len(),
        "{schedule}: a job id was enqueued twice: {mine:?}"
    );
    let mut seconds: Vec<i64> = mine
        .iter()
        .map(|j| j.scheduled_for.expect("scheduled_for"))
        .collect();
    seconds.sort_unstable();
    let distinct: BTreeSet<i64> = seconds.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seconds.len(),
        "{schedule}: a second was enqueued twice: {seconds:?}"
    );
    assert!(seconds.iter().all(|ms| ms % 1000 == 0), "{seconds:?}");
    let state: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys.schedule(schedule))
        .query_async(conn)
        .await
        .expect("HGETALL");
    let num = |f: &str| {
        state
            .get(f)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Runs {
        seconds,
        enqueued: mine
            .iter()
            .map(|j| (j.scheduled_for.expect("scheduled_for"), j.enqueued_at))
            .collect(),
        missed: num("missed_runs"),
        next: num("next_schedule_time"),
    }
}

/// Every run from the first job up to the armed next run either enqueued exactly one job or
/// was counted as missed: the count matches the elapsed seconds exactly.
pub fn assert_accounted(name: &str, r: &Runs) {
    let first = r.seconds[0];
    let runs_due = (r.next - first) / 1000;
    assert_eq!(
        r.seconds.len() as i64 + r.missed,
        runs_due,
        "{name}: {} jobs + {} missed != {runs_due} runs from {first} to {} (exclusive): {:?}",
        r.seconds.len(),
        r.missed,
        r.next,
        r.seconds
    );
}

/// Consecutive jobs more than a second apart: (last before, first after).
pub fn gaps(seconds: &[i64]) -> Vec<(i64, i64)> {
    seconds
        .windows(2)
        .filter(|w| w[1] - w[0] > 1000)
        .map(|w| (w[0], w[1]))
        .collect()
}

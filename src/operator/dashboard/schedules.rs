//! The schedules page: every served schedule's expression and zone, next runs, last run,
//! missed and skipped counts, and whether its concurrency policy holds a run back.

use crate::operator::runtime::{ObjectId, Runtime};
use crate::queue::jobs::get_job;
use crate::queue::schedules::{ConcurrencyPolicy, StoredSchedule, get};

use super::page::{Cell, Page, Table, job_href, queue_href, time_ms};

/// Upcoming runs shown per schedule.
const NEXT_RUNS: usize = 3;

pub async fn schedules_page(runtime: &Runtime) -> Page {
    let mut table = Table::new(
        "schedules",
        "Schedules",
        &[
            "Schedule",
            "Queue",
            "Expression",
            "Zone",
            "Next runs",
            "Last fired",
            "Fired",
            "Missed",
            "Skipped",
            "Concurrency",
        ],
        "No schedules are served.",
    );
    for s in runtime.schedule_refs() {
        table.rows.push(row(runtime, &s.id, &s.queue).await);
    }
    Page {
        title: "Schedules".into(),
        api: Some("/api/schedules".into()),
        tables: vec![table],
        ..Page::default()
    }
}

async fn row(runtime: &Runtime, id: &ObjectId, queue: &ObjectId) -> Vec<Cell> {
    let mut cells = vec![
        Cell::text(id),
        Cell::link(queue, queue_href(&queue.namespace, &queue.name)),
    ];
    let Some(entry) = runtime.queue_entry(queue) else {
        cells.push(Cell::text("its queue is not served").with_class("error"));
        return cells;
    };
    let read = async {
        let mut conn = runtime
            .pool()
            .get(&entry.redis_url)
            .await
            .map_err(|e| e.to_string())?;
        let stored = get(&mut conn, &entry.config.keys, &id.name)
            .await
            .map_err(|e| e.to_string())?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        // Forbid holds a run back while the previous run's job is unfinished.
        let last_state = match &stored.state.last_job_id {
            Some(job) => get_job(&mut conn, &entry.config.keys, &entry.config.group, job)
                .await
                .ok()
                .flatten()
                .map(|r| r.state),
            None => None,
        };
        Ok::<_, String>(Some((stored, last_state)))
    };
    match read.await {
        Ok(Some((stored, last_state))) => cells.extend(described(&stored, last_state)),
        Ok(None) => cells.push(Cell::text("not written to its queue yet")),
        Err(e) => cells.push(Cell::text(format!("cannot read it: {e}")).with_class("error")),
    }
    cells
}

fn described(s: &StoredSchedule, last_state: Option<crate::queue::jobs::JobState>) -> Vec<Cell> {
    let def = &s.definition;
    let next = if def.suspend {
        "suspended".to_string()
    } else {
        match def.compile() {
            Ok((cron, tz)) => {
                let runs: Vec<String> = cron
                    .iter_after(&tz, jiff::Timestamp::now())
                    .take(NEXT_RUNS)
                    .map(|t| {
                        t.to_zoned(tz.clone())
                            .strftime("%Y-%m-%d %H:%M:%S %Z")
                            .to_string()
                    })
                    .collect();
                if runs.is_empty() {
                    "never".into()
                } else {
                    runs.join(", ")
                }
            }
            Err(e) => e.to_string(),
        }
    };
    let last = match (&s.state.last_schedule_ms, &s.state.last_job_id) {
        (Some(ms), Some(job)) => Cell::link(format!("{} ({job})", time_ms(*ms)), job_href(job)),
        (Some(ms), None) => Cell::text(time_ms(*ms)),
        _ => Cell::text("never"),
    };
    let concurrency = match (def.concurrency_policy, last_state) {
        (ConcurrencyPolicy::Allow, _) => "Allow".to_string(),
        (ConcurrencyPolicy::Forbid, Some(st)) if !st.is_final() => {
            format!("Forbid: the previous run's job is {st}; the next run is skipped")
        }
        (ConcurrencyPolicy::Forbid, _) => "Forbid: nothing running".to_string(),
    };
    vec![
        Cell::text(&def.cron).with_class("mono"),
        Cell::text(&def.time_zone),
        Cell::text(next),
        last,
        Cell::num(s.state.fired_runs),
        Cell::num(s.state.missed_runs),
        Cell::num(s.state.skipped_runs),
        Cell::text(concurrency),
    ]
}

//! A job's page, found by id in the served queues: its state, attempts timeline (from the
//! queue's events stream), progress, result and error.

use std::sync::Arc;

use crate::operator::runtime::{QueueEntry, Runtime};
use crate::queue::browse::job_events;
use crate::queue::jobs::{JobRecord, JobState, get_job};

use super::page::{Cell, Page, Stat, Table, encode, queue_href, time_ms};
use super::queue::action_base;

/// Newest events read looking for one job's (the stream's default cap).
const EVENT_SCAN: usize = 10_000;

/// The first served queue holding a record of job `id`, with the record.
pub async fn find(
    runtime: &Runtime,
    id: &str,
) -> Result<Option<(Arc<QueueEntry>, JobRecord)>, String> {
    let mut errors = Vec::new();
    for view in runtime.queue_views(false) {
        let entry = view.entry;
        let found = async {
            let mut conn = runtime.pool().get(&entry.redis_url).await?;
            get_job(&mut conn, &entry.config.keys, &entry.config.group, id).await
        };
        match found.await {
            Ok(Some(rec)) => return Ok(Some((entry, rec))),
            Ok(None) => {}
            Err(e) => errors.push(format!("{}: {e}", entry.id)),
        }
    }
    if errors.is_empty() {
        Ok(None)
    } else {
        Err(errors.join("; "))
    }
}

pub async fn job_page(runtime: &Runtime, id: &str, actions: bool) -> Page {
    let mut page = Page {
        title: format!("Job {id}"),
        api: Some(format!("/api/jobs?id={}", encode(id))),
        ..Page::default()
    };
    let (entry, rec) = match find(runtime, id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            page.notice = Some(format!(
                "No served queue has a record of job {id}: the id may be wrong, its record may have expired (jobs.succeededTTL, jobs.deadTTL), or its queue does not track jobs."
            ));
            return page;
        }
        Err(e) => {
            page.notice = Some(format!("cannot look the job up: {e}"));
            return page;
        }
    };
    page.stats = stats(&rec);
    let queue = Stat::link(
        "Queue",
        &entry.id,
        queue_href(&entry.id.namespace, &entry.id.name),
    );
    page.stats.insert(0, queue);
    let mut timeline = Table::new(
        "timeline",
        "Attempts timeline",
        &["When", "State", "Attempt", "Progress"],
        "No event of this job is left in the queue's events stream.",
    );
    let events = async {
        let mut conn = runtime.pool().get(&entry.redis_url).await?;
        job_events(&mut conn, &entry.config.keys, id, EVENT_SCAN).await
    };
    match events.await {
        Ok(events) => {
            timeline.rows = events
                .into_iter()
                .map(|e| {
                    vec![
                        Cell::text(e.at_ms.map_or("–".into(), time_ms)),
                        Cell::text(e.state),
                        Cell::num(e.attempt.map_or("–".into(), |a| a.to_string())),
                        Cell::text(e.progress.unwrap_or_default()).with_class("mono"),
                    ]
                })
                .collect();
        }
        Err(e) => page.notice = Some(format!("cannot read the job's events: {e}")),
    }
    page.tables.push(timeline);
    if actions {
        let base = format!("{}/jobs/{}", action_base(&entry.id), encode(id));
        if !rec.state.is_final() {
            page.actions.push(Cell::button(
                "Cancel job",
                format!("{base}/cancel"),
                Some(format!("Cancel job {id}?")),
            ));
        }
        if rec.state == JobState::Dead {
            page.actions
                .push(Cell::button("Retry job", format!("{base}/retry"), None));
        }
    }
    page
}

fn stats(rec: &JobRecord) -> Vec<Stat> {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    let ms = |v: Option<i64>| v.map(time_ms);
    let mut stats = vec![
        Stat::new("State", rec.state),
        Stat::new("Attempt", rec.attempt),
    ];
    let optional = [
        ("Progress", json(&rec.progress)),
        ("Result", json(&rec.result)),
        ("Result dropped", rec.result_dropped.clone()),
        ("Error", rec.error.clone()),
        ("Consumer", rec.consumer.clone()),
        (
            "Cancel requested",
            rec.cancel_requested.then(|| "yes".to_string()),
        ),
        ("Enqueued", ms(rec.enqueued_at_ms)),
        ("Started", ms(rec.started_at_ms)),
        ("Finished", ms(rec.finished_at_ms)),
        ("Due", ms(rec.due_at_ms)),
        ("Updated", ms(rec.updated_at_ms)),
    ];
    stats.extend(
        optional
            .into_iter()
            .filter_map(|(label, v)| v.map(|v| Stat::new(label, v))),
    );
    stats
}

//! A queue's page: its numbers and chart, consumers, jobs in hand, recent scaling decisions,
//! delayed jobs and dead letters.

use std::time::{Duration, SystemTime};

use crate::operator::runtime::{ObjectId, QueueView, Runtime};
use crate::queue::browse::{DelayedJob, PendingJob, delayed_jobs, pending_jobs};
use crate::queue::dead_letter::{self, DeadLetter};

use super::chart;
use super::history::{WINDOW, combine, slot_since};
use super::page::{
    Cell, Page, Stat, Table, encode, job_href, now_ms, relative_ms, span, time, time_ms,
};

/// Most rows of each listing read from Redis.
const LIST: usize = 100;

/// The action addresses of queue `id` (`None` when actions are off).
pub fn action_base(id: &ObjectId) -> String {
    format!(
        "/actions/queues/{}/{}",
        encode(&id.namespace),
        encode(&id.name)
    )
}

pub async fn queue_page(runtime: &Runtime, id: &ObjectId, actions: bool) -> Option<Page> {
    let view = runtime.queue_view(id)?;
    let mut page = Page {
        title: format!("Queue {id}"),
        api: Some(format!(
            "/api/queues/{}/{}",
            encode(&id.namespace),
            encode(&id.name)
        )),
        notice: view.error.clone(),
        stats: stats(&view),
        chart: Some(chart::render(
            &combine([&view.points], slot_since(view.since, SystemTime::now())),
            SystemTime::now(),
            WINDOW,
        )),
        ..Page::default()
    };
    page.tables.push(consumers(&view));
    let entry = &view.entry;
    let lists = async {
        let mut conn = runtime.pool().get(&entry.redis_url).await?;
        let pending = pending_jobs(&mut conn, &entry.config, LIST).await?;
        let delayed = delayed_jobs(&mut conn, &entry.config, LIST).await?;
        let dead = dead_letter::list(&mut conn, &entry.config, LIST).await?;
        Ok::<_, crate::queue::QueueError>((pending, delayed, dead))
    };
    match lists.await {
        Ok((pending, delayed, dead)) => {
            listings(&mut page, &view, pending, delayed, &dead, actions);
        }
        Err(e) => {
            page.notice = Some(format!("cannot list the queue's jobs: {e}"));
            page.tables.push(decisions(&view));
        }
    }
    Some(page)
}

/// The listings read from Redis, as tables, and the dead-letter buttons.
fn listings(
    page: &mut Page,
    view: &QueueView,
    pending: Vec<PendingJob>,
    delayed: Vec<DelayedJob>,
    dead: &[DeadLetter],
    actions: bool,
) {
    let id = &view.entry.id;
    let now = now_ms();
    let mut t = Table::new(
        "pending",
        "Jobs in hand (delivered, not acknowledged)",
        &["Job", "Consumer", "Idle", "Deliveries"],
        "No job is in a worker's hands.",
    );
    t.rows = pending
        .into_iter()
        .map(|p| {
            vec![
                job_cell(p.job_id.as_deref(), &p.entry_id),
                Cell::text(p.consumer),
                Cell::num(span(Duration::from_millis(p.idle_ms))),
                Cell::num(p.deliveries),
            ]
        })
        .collect();
    page.tables.push(t);
    page.tables.push(decisions(view));
    let mut t = Table::new(
        "delayed",
        "Delayed jobs",
        &["Job", "Due", "Attempt"],
        "No delayed job.",
    );
    t.rows = delayed
        .into_iter()
        .map(|d| {
            vec![
                job_cell(d.job_id.as_deref(), "(not a job)"),
                Cell::text(format!(
                    "{} ({})",
                    time_ms(d.due_ms),
                    relative_ms(d.due_ms, now)
                )),
                Cell::num(d.attempt.map_or("–".into(), |a| a.to_string())),
            ]
        })
        .collect();
    page.tables.push(t);
    page.tables.push(dead_letters(id, dead, actions));
    if actions && !dead.is_empty() {
        let base = action_base(id);
        page.actions = vec![
            Cell::button(
                "Replay all dead letters",
                format!("{base}/dead-letters/replay"),
                Some(format!(
                    "Put every dead letter of {id} back into the queue?"
                )),
            ),
            Cell::button(
                "Purge dead letters",
                format!("{base}/dead-letters/purge"),
                Some(format!("Delete every dead letter of {id} for good?")),
            ),
        ];
    }
}

fn job_cell(job: Option<&str>, fallback: &str) -> Cell {
    match job {
        Some(j) => Cell::link(j, job_href(j)).with_class("mono"),
        None => Cell::text(fallback).with_class("mono"),
    }
}

fn stats(v: &QueueView) -> Vec<Stat> {
    let mut stats = Vec::new();
    if let Some(m) = &v.metrics {
        stats.extend([
            Stat::new("Length", m.length),
            Stat::new("Lag", m.lag),
            Stat::new("Pending", m.pending),
            Stat::new(
                "Oldest pending",
                m.oldest_pending_age.map_or("–".into(), span),
            ),
            Stat::new("Delayed", m.delayed),
            Stat::new("Dead letters", m.dead_letter_length),
            Stat::new("Consumers", m.consumers.len()),
            Stat::new("Succeeded", m.jobs.succeeded),
            Stat::new("Failed attempts", m.jobs.failed),
        ]);
    }
    stats.push(Stat::new(
        "Workers asked",
        v.replicas.map_or("–".into(), |r| r.to_string()),
    ));
    if let Some(d) = v.desired {
        stats.push(Stat::new("Autoscaler wants", d));
    }
    stats.push(Stat::new("Stream", v.entry.config.stream()));
    stats.push(Stat::new("Group", &v.entry.config.group));
    stats
}

fn consumers(v: &QueueView) -> Table {
    let mut t = Table::new(
        "consumers",
        "Consumers",
        &["Consumer", "Idle", "Jobs in hand"],
        "No consumer has read from the group.",
    );
    if let Some(m) = &v.metrics {
        t.rows = m
            .consumers
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.name).with_class("mono"),
                    Cell::num(span(c.idle)),
                    Cell::num(c.pending),
                ]
            })
            .collect();
    }
    t
}

fn decisions(v: &QueueView) -> Table {
    let mut t = Table::new(
        "decisions",
        "Recent scaling decisions",
        &["When", "Reason", "Decision"],
        "No scaling decision yet (the queue has no scaling policy, or no reading yet).",
    );
    t.rows = v
        .decisions
        .iter()
        .map(|d| {
            vec![
                Cell::text(time(d.at)),
                Cell::text(&d.reason),
                Cell::text(&d.message),
            ]
        })
        .collect();
    t
}

fn dead_letters(id: &ObjectId, dead: &[DeadLetter], actions: bool) -> Table {
    let mut headers = vec!["Job", "Reason", "Error", "Attempts", "Dead since"];
    if actions {
        headers.push("Action");
    }
    let mut t = Table::new("dead", "Dead letters", &headers, "No dead letters.");
    let base = action_base(id);
    t.rows = dead
        .iter()
        .map(|d| {
            let field = |k: &str| d.get(k).unwrap_or("–").to_string();
            let mut row = vec![
                job_cell(d.get("id"), &d.dead_id),
                Cell::text(match d.get("last_failure") {
                    Some(how) => format!("{} ({how})", field("reason")),
                    None => field("reason"),
                }),
                Cell::text(
                    d.get("last_error")
                        .filter(|e| !e.is_empty())
                        .or(d.get("last_failure"))
                        .unwrap_or("–"),
                )
                .with_class("error"),
                Cell::num(field("attempt")),
                Cell::text(
                    d.get("dead_at")
                        .and_then(|t| t.parse().ok())
                        .map_or("–".into(), time_ms),
                ),
            ];
            if actions {
                row.push(Cell::button(
                    "Replay",
                    format!("{base}/dead-letters/replay?entry={}", encode(&d.dead_id)),
                    None,
                ));
            }
            row
        })
        .collect();
    t
}

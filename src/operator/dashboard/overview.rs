//! The overview: every served queue (optionally of one namespace) with its numbers, and the
//! backlog and replicas of those queues over the last hour.

use std::collections::BTreeSet;
use std::time::SystemTime;

use crate::operator::runtime::{QueueView, Runtime};

use super::chart;
use super::history::{WINDOW, slot_since};
use super::page::{Cell, Page, Stat, Table, encode, queue_href};

pub fn overview(runtime: &Runtime, namespace: Option<&str>) -> Page {
    let all = runtime.queue_views(false);
    let namespaces: BTreeSet<String> = all.iter().map(|v| v.entry.id.namespace.clone()).collect();
    let views: Vec<QueueView> = all
        .into_iter()
        .filter(|v| namespace.is_none_or(|ns| v.entry.id.namespace == ns))
        .collect();
    let mut table = Table::new(
        "queues",
        "Queues",
        &[
            "Queue",
            "Length",
            "Lag",
            "Pending",
            "Delayed",
            "Dead letters",
            "Workers (consumers / asked)",
            "Status",
        ],
        "No queues are served yet.",
    );
    let (mut backlog, mut dead, mut asked) = (0u64, 0u64, 0u64);
    for v in &views {
        if let Some(m) = &v.metrics {
            backlog += m.backlog();
            dead += m.dead_letter_length;
        }
        asked += u64::from(v.replicas.unwrap_or(0));
        table.rows.push(row(v));
    }
    let now = SystemTime::now();
    let since = views.iter().filter_map(|v| v.since).min();
    let slot = slot_since(since, now);
    let trend = runtime.combined_trend(|id| namespace.is_none_or(|ns| id.namespace == ns), slot);
    let api = match namespace {
        Some(ns) => format!("/api/overview?namespace={}", encode(ns)),
        None => "/api/overview".to_string(),
    };
    Page {
        title: "Queues".into(),
        api: Some(api),
        stats: vec![
            Stat::new("Queues", views.len()),
            Stat::new("Backlog (lag + pending)", backlog),
            Stat::new("Dead letters", dead),
            Stat::new("Workers asked", asked),
        ],
        chart: Some(chart::render(&trend, now, WINDOW)),
        tables: vec![table],
        namespaces: namespaces.into_iter().collect(),
        namespace: namespace.map(str::to_string),
        ..Page::default()
    }
}

fn row(v: &QueueView) -> Vec<Cell> {
    let id = &v.entry.id;
    let name = Cell::link(id, queue_href(&id.namespace, &id.name));
    let workers = match (&v.metrics, v.replicas) {
        (Some(m), Some(r)) => format!("{} / {r}", m.consumers.len()),
        (Some(m), None) => format!("{} / –", m.consumers.len()),
        (None, Some(r)) => format!("? / {r}"),
        (None, None) => "–".into(),
    };
    let status = match (&v.error, &v.metrics) {
        (Some(e), _) => Cell::text(e).with_class("error"),
        (None, Some(_)) => Cell::text("ok"),
        (None, None) => Cell::text("waiting for the first reading"),
    };
    match &v.metrics {
        Some(m) => vec![
            name,
            Cell::num(m.length),
            Cell::num(m.lag),
            Cell::num(m.pending),
            Cell::num(m.delayed),
            Cell::num(m.dead_letter_length),
            Cell::num(workers),
            status,
        ],
        None => {
            let mut cells = vec![name];
            cells.extend((0..5).map(|_| Cell::num("–")));
            cells.extend([Cell::num(workers), status]);
            cells
        }
    }
}

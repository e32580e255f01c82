//! Where status goes in local mode (the runtime's [`Reporter`]): a live table on a terminal,
//! one line per queue (length, lag, pending, workers, next schedule), or plain log lines when
//! stdout is not a terminal. Events (scaling decisions, reclaimed jobs) and schedule runs are
//! log lines in both cases.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::console::Console;
use super::processes::LocalWorkers;
use crate::operator::runtime::{ObjectId, QueueHealth, QueueObservation, Reporter, RuntimeEvent};
use crate::queue::schedules::ScheduleState;

/// The local [`Reporter`].
pub struct View {
    console: Arc<Console>,
    /// Least time between two plain status lines of one queue (replica changes print at once).
    plain_interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queues: BTreeMap<ObjectId, QueueRow>,
    schedules: BTreeMap<ObjectId, ScheduleRow>,
}

#[derive(Default)]
struct QueueRow {
    workers: Option<Arc<LocalWorkers>>,
    observed: Option<QueueObservation>,
    printed_at: Option<Instant>,
    printed: Option<(Option<u32>, bool)>,
}

struct ScheduleRow {
    queue: ObjectId,
    state: Option<ScheduleState>,
}

/// One queue's line, as data (rendering is pure).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub queue: String,
    pub health: Option<QueueHealth>,
    /// Running processes and asked-for replicas; `None` for a queue without local workers.
    pub workers: Option<(usize, u32)>,
    pub next_schedule: Option<(Timestamp, String)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl View {
    pub fn new(console: Arc<Console>, plain_interval: Duration) -> Self {
        View {
            console,
            plain_interval,
            state: Mutex::default(),
        }
    }

    /// Shows queue `id`, whose workers (if any run here) are `workers`.
    pub fn track_queue(&self, id: &ObjectId, workers: Option<Arc<LocalWorkers>>) {
        lock(&self.state)
            .queues
            .entry(id.clone())
            .or_default()
            .workers = workers;
    }

    pub fn forget_queue(&self, id: &ObjectId) {
        lock(&self.state).queues.remove(id);
    }

    /// Shows schedule `id`'s next run on the line of `queue`.
    pub fn track_schedule(&self, id: &ObjectId, queue: &ObjectId) {
        let mut state = lock(&self.state);
        let row = state.schedules.entry(id.clone()).or_insert(ScheduleRow {
            queue: queue.clone(),
            state: None,
        });
        row.queue = queue.clone();
    }

    pub fn forget_schedule(&self, id: &ObjectId) {
        lock(&self.state).schedules.remove(id);
    }

    /// The table as it stands (header first).
    pub fn table(&self) -> Vec<String> {
        render(&self.lines(), Timestamp::now())
    }

    fn lines(&self) -> Vec<Line> {
        let state = lock(&self.state);
        state
            .queues
            .iter()
            .map(|(id, row)| line(id, row, &state.schedules))
            .collect()
    }
}

fn line(id: &ObjectId, row: &QueueRow, schedules: &BTreeMap<ObjectId, ScheduleRow>) -> Line {
    let next_schedule = schedules
        .iter()
        .filter(|(_, s)| &s.queue == id)
        .filter_map(|(sid, s)| {
            let next = Timestamp::from_millisecond(s.state.as_ref()?.next_schedule_ms?).ok()?;
            Some((next, sid.name.clone()))
        })
        .min();
    let asked = row.observed.as_ref().and_then(|o| o.replicas);
    Line {
        queue: id.to_string(),
        health: row.observed.as_ref().map(|o| o.health.clone()),
        workers: row
            .workers
            .as_ref()
            .map(|w| (w.running(), asked.unwrap_or(0))),
        next_schedule,
    }
}

impl Reporter for View {
    fn queue_observed(&self, queue: &ObjectId, observation: &QueueObservation) {
        let text = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            let Some(row) = state.queues.get_mut(queue) else {
                return;
            };
            row.observed = Some(observation.clone());
            if self.console.is_tty() {
                return;
            }
            let now = Instant::now();
            let key = (
                observation.replicas,
                matches!(observation.health, QueueHealth::Ok(_)),
            );
            let due = row
                .printed_at
                .is_none_or(|t| now.duration_since(t) >= self.plain_interval);
            if !due && row.printed == Some(key) {
                return;
            }
            row.printed_at = Some(now);
            row.printed = Some(key);
            let l = line(queue, row, &state.schedules);
            plain(&l, Timestamp::now())
        };
        self.console.line(&text);
    }

    fn schedule_observed(&self, schedule: &ObjectId, observed: &ScheduleState) {
        let fired = {
            let mut state = lock(&self.state);
            let Some(row) = state.schedules.get_mut(schedule) else {
                return;
            };
            let fired = row
                .state
                .as_ref()
                .is_some_and(|prev| prev.last_job_id != observed.last_job_id)
                && observed.last_job_id.is_some();
            row.state = Some(observed.clone());
            fired
        };
        if fired {
            let when = |ms: Option<i64>| {
                ms.and_then(|ms| Timestamp::from_millisecond(ms).ok())
                    .map_or("-".to_string(), |t| t.strftime("%H:%M:%S").to_string())
            };
            self.console.line(&format!(
                "schedule {schedule}: enqueued job {} for {}; next run {}",
                observed.last_job_id.as_deref().unwrap_or("-"),
                when(observed.last_schedule_ms),
                when(observed.next_schedule_ms),
            ));
        }
    }

    fn queue_event(&self, queue: &ObjectId, event: RuntimeEvent) {
        let text = format!("{queue}: {}: {}", event.reason, event.message);
        if event.warning {
            self.console.error(&format!("warning: {text}"));
        } else {
            self.console.line(&text);
        }
    }
}

const HEADER: [&str; 6] = [
    "QUEUE",
    "LENGTH",
    "LAG",
    "PENDING",
    "WORKERS",
    "NEXT SCHEDULE",
];

/// The live table: a header and one row per queue, columns padded to their widest cell.
pub fn render(lines: &[Line], now: Timestamp) -> Vec<String> {
    let mut cells: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    for l in lines {
        let (length, lag, pending) = match &l.health {
            Some(QueueHealth::Ok(m)) => (
                m.length.to_string(),
                m.lag.to_string(),
                m.pending.to_string(),
            ),
            Some(QueueHealth::RedisUnreachable(_)) => {
                ("Redis unreachable".into(), String::new(), String::new())
            }
            Some(QueueHealth::Error(e)) => (format!("error: {e}"), String::new(), String::new()),
            None => ("…".into(), String::new(), String::new()),
        };
        cells.push(vec![
            l.queue.clone(),
            length,
            lag,
            pending,
            workers(l.workers),
            next(&l.next_schedule, now),
        ]);
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    cells
        .iter()
        .map(|row| {
            let mut s = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                // Numbers align right, text left.
                if (1..=3).contains(&c) && !cell.starts_with(|ch: char| ch.is_alphabetic()) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                }
                s.push_str("  ");
            }
            s.trim_end().to_string()
        })
        .collect()
}

/// The plain log line of one queue.
pub fn plain(l: &Line, now: Timestamp) -> String {
    let numbers = match &l.health {
        Some(QueueHealth::Ok(m)) => {
            format!("length={} lag={} pending={}", m.length, m.lag, m.pending)
        }
        Some(QueueHealth::RedisUnreachable(e)) => format!("redis unreachable ({e})"),
        Some(QueueHealth::Error(e)) => format!("error ({e})"),
        None => "not read yet".into(),
    };
    format!(
        "status {}: {numbers} workers={} next-schedule={}",
        l.queue,
        workers(l.workers),
        next(&l.next_schedule, now).replace(' ', "_"),
    )
}

fn workers(w: Option<(usize, u32)>) -> String {
    match w {
        Some((running, asked)) => format!("{running}/{asked}"),
        None => "-".into(),
    }
}

fn next(n: &Option<(Timestamp, String)>, now: Timestamp) -> String {
    let Some((at, name)) = n else {
        return "-".into();
    };
    let secs = at.duration_since(now).as_secs();
    let when = match secs {
        s if s <= 0 => "now".to_string(),
        s if s < 120 => format!("in {s}s"),
        s if s < 7200 => format!("in {}m", s / 60),
        _ => at.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
    };
    format!("{when} ({name})")
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::queue::metrics::{LagSource, QueueMetrics};

    fn metrics(length: u64, lag: u64, pending: u64) -> QueueMetrics {
        QueueMetrics {
            length,
            lag,
            lag_source: LagSource::Reported,
            pending,
            oldest_pending_age: None,
            consumers: vec![],
            delayed: 0,
            dead_letter_length: 0,
            last_delivered_id: "0-0".into(),
            server_time_ms: 0,
            jobs: Default::default(),
        }
    }

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn table_rows_align() {
        let lines = vec![
            Line {
                queue: "default/demo".into(),
                health: Some(QueueHealth::Ok(metrics(2000, 1500, 200))),
                workers: Some((3, 4)),
                next_schedule: Some((now() + jiff::SignedDuration::from_secs(12), "tick".into())),
            },
            Line {
                queue: "team/x".into(),
                health: Some(QueueHealth::RedisUnreachable("refused".into())),
                workers: None,
                next_schedule: None,
            },
        ];
        assert_eq!(
            render(&lines, now()),
            vec![
                "QUEUE         LENGTH             LAG   PENDING  WORKERS  NEXT SCHEDULE",
                "default/demo               2000  1500      200  3/4      in 12s (tick)",
                "team/x        Redis unreachable                 -        -",
            ]
        );
    }

    #[test]
    fn plain_lines_carry_every_number() {
        let l = Line {
            queue: "default/demo".into(),
            health: Some(QueueHealth::Ok(metrics(5, 1, 2))),
            workers: Some((1, 2)),
            next_schedule: Some((now() + jiff::SignedDuration::from_mins(10), "tick".into())),
        };
        assert_eq!(
            plain(&l, now()),
            "status default/demo: length=5 lag=1 pending=2 workers=1/2 next-schedule=in_10m_(tick)"
        );
    }

    #[test]
    fn next_schedule_wording() {
        let at = |s: i64| Some((now() + jiff::SignedDuration::from_secs(s), "t".to_string()));
        assert_eq!(next(&None, now()), "-");
        assert_eq!(next(&at(-3), now()), "now (t)");
        assert_eq!(next(&at(119), now()), "in 119s (t)");
        assert_eq!(next(&at(3600), now()), "in 60m (t)");
        assert_eq!(next(&at(86400), now()), "2026-01-02 12:00:00Z (t)");
    }
}

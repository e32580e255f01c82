//! What the dashboard remembers of each queue between the scaler's polls: a bounded ring of
//! readings (backlog and replicas, for the chart) and of scaling decisions. Pure: the scaler
//! pushes, the pages read; memory stays bounded however long the operator runs.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// How far back the chart reaches.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Most readings kept per queue (one per second for the window at the shortest poll interval).
pub const MAX_POINTS: usize = 3600;
/// Most scaling decisions kept per queue.
pub const MAX_DECISIONS: usize = 50;

/// A queue with at most `capacity` items: pushing onto a full ring drops the oldest.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Ring<T> {
    /// An empty ring holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // Grown on demand: most queues of a large installation never fill theirs.
        Ring {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Adds `item`, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The newest item.
    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// Replaces the newest item (pushes when empty).
    pub fn replace_last(&mut self, item: T) {
        match self.items.back_mut() {
            Some(last) => *last = item,
            None => self.push(item),
        }
    }
}

/// One reading of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub at: SystemTime,
    /// Lag plus pending; `None` when the queue could not be read.
    pub backlog: Option<u64>,
    /// Worker replicas asked for, if the queue has workers.
    pub replicas: Option<u32>,
}

/// One scaling decision worth showing: the count changed, or the rule that holds it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    pub at: SystemTime,
    /// `ScaledUp`, `ScalingPaused`, ...
    pub reason: String,
    /// `scaled 2 → 7: backlog 3400 needs 7 × 500`.
    pub message: String,
}

/// A queue's recent readings and decisions.
#[derive(Debug, Clone)]
pub struct Trend {
    points: Ring<Point>,
    decisions: Ring<DecisionRecord>,
}

impl Default for Trend {
    fn default() -> Self {
        Trend {
            points: Ring::new(MAX_POINTS),
            decisions: Ring::new(MAX_DECISIONS),
        }
    }
}

impl Trend {
    /// Adds a reading, forgetting those older than [`WINDOW`] before it. A run of equal
    /// readings is kept as its first and its latest: an idle queue read every second holds two
    /// points, not an hour of them.
    pub fn observe(&mut self, point: Point) {
        if let Some(horizon) = point.at.checked_sub(WINDOW) {
            self.forget_before(horizon);
        }
        let same = |p: &Point| p.backlog == point.backlog && p.replicas == point.replicas;
        let run = {
            let mut newest = self.points.iter().rev();
            matches!((newest.next(), newest.next()), (Some(last), Some(before)) if same(last) && same(before))
        };
        if run {
            self.points.replace_last(point);
            return;
        }
        self.points.push(point);
    }

    /// Records a decision when the replica count changed (`changed`) or its reason differs
    /// from the last one recorded; a steady queue does not flood the list.
    pub fn decided(&mut self, changed: bool, record: DecisionRecord) {
        let same_rule = self
            .decisions
            .last()
            .is_some_and(|last| last.reason == record.reason);
        if changed || !same_rule {
            self.decisions.push(record);
        }
    }

    /// Drops readings older than `horizon`; a run of equal readings that began before it is
    /// cut at the horizon rather than dropped, so the chart still spans the whole window.
    fn forget_before(&mut self, horizon: SystemTime) {
        let items = &mut self.points.items;
        while let Some(first) = items.front().copied().filter(|p| p.at < horizon) {
            match items.get_mut(1) {
                Some(next)
                    if next.at >= horizon
                        && (next.backlog, next.replicas) == (first.backlog, first.replicas) =>
                {
                    items[0].at = horizon;
                    return;
                }
                _ => {
                    items.pop_front();
                }
            }
        }
    }

    /// Readings, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }

    /// Readings, oldest first, without copying them.
    pub fn iter_points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter()
    }

    /// When the oldest reading kept was taken.
    pub fn since(&self) -> Option<SystemTime> {
        self.points.iter().next().map(|p| p.at)
    }

    /// Decisions, newest first.
    pub fn decisions(&self) -> Vec<DecisionRecord> {
        self.decisions.iter().rev().cloned().collect()
    }
}

/// Slots of the chart: about 600 over the time `since` the oldest reading (at most
/// [`WINDOW`]), none shorter than a second, so a chart stays small however often queues
/// are read.
pub fn slot_since(since: Option<SystemTime>, now: SystemTime) -> Duration {
    let shown = since
        .and_then(|s| now.duration_since(s).ok())
        .unwrap_or_default()
        .min(WINDOW);
    (shown / 600).max(Duration::from_secs(1))
}

/// Sums several queues' readings into one series: time is cut into `bucket`-long slots, and
/// in every slot where any queue has a reading, each queue counts with its latest reading up
/// to that slot (a queue read less often than the slots, or whose equal readings were kept as
/// a run's ends, still counts between its readings); backlogs and replicas add up.
pub fn combine<'a, S>(series: impl IntoIterator<Item = S>, bucket: Duration) -> Vec<Point>
where
    S: IntoIterator<Item = &'a Point>,
{
    use std::collections::{BTreeMap, BTreeSet};
    let bucket_ms = bucket.as_millis().max(1);
    let per_series: Vec<BTreeMap<u128, Point>> = series
        .into_iter()
        .map(|points| {
            points
                .into_iter()
                .map(|p| {
                    let ms =
                        p.at.duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_millis();
                    (ms / bucket_ms, *p)
                })
                .collect()
        })
        .collect();
    let slots: BTreeSet<u128> = per_series.iter().flat_map(|m| m.keys().copied()).collect();
    slots
        .into_iter()
        .map(|slot| {
            let mut sum = Point {
                at: SystemTime::UNIX_EPOCH,
                backlog: None,
                replicas: None,
            };
            for readings in &per_series {
                if let Some((&at_slot, p)) = readings.range(..=slot).next_back() {
                    if at_slot == slot {
                        sum.at = sum.at.max(p.at);
                    }
                    sum.backlog = add(sum.backlog, p.backlog);
                    sum.replicas = add(sum.replicas, p.replicas);
                }
            }
            sum
        })
        .collect()
}

fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    #[test]
    fn a_full_ring_drops_the_oldest() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.last(), Some(&4));
    }

    #[test]
    fn readings_older_than_the_window_are_forgotten() {
        let mut t = Trend::default();
        for s in [0, 10, 3000, 3700] {
            t.observe(Point {
                at: at(s),
                backlog: Some(s),
                replicas: Some(1),
            });
        }
        let kept: Vec<_> = t.points().iter().map(|p| p.backlog).collect();
        assert_eq!(kept, vec![Some(3000), Some(3700)]);
    }

    #[test]
    fn the_points_stay_bounded_however_often_the_queue_is_read() {
        let mut t = Trend::default();
        for i in 0..(MAX_POINTS as u64 * 3) {
            t.observe(Point {
                at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + i),
                backlog: Some(i),
                replicas: None,
            });
        }
        assert_eq!(t.points().len(), MAX_POINTS);
    }

    #[test]
    fn only_changes_and_new_rules_are_recorded_newest_first() {
        let mut t = Trend::default();
        let d = |s, reason: &str, message: &str| DecisionRecord {
            at: at(s),
            reason: reason.into(),
            message: message.into(),
        };
        t.decided(false, d(0, "Steady", "holding 0"));
        t.decided(false, d(1, "Steady", "holding 0"));
        t.decided(true, d(2, "ScaledUp", "scaled 0 → 2"));
        t.decided(true, d(3, "ScaledUp", "scaled 2 → 4"));
        t.decided(false, d(4, "Steady", "holding 4"));
        let messages: Vec<_> = t.decisions().into_iter().map(|d| d.message).collect();
        assert_eq!(
            messages,
            vec!["holding 4", "scaled 2 → 4", "scaled 0 → 2", "holding 0"]
        );
        for i in 0..200 {
            t.decided(true, d(10 + i, "ScaledUp", "up"));
        }
        assert_eq!(t.decisions().len(), MAX_DECISIONS);
    }

    #[test]
    fn slots_keep_charts_small() {
        let now = at(10_000);
        assert_eq!(slot_since(None, now), Duration::from_secs(1));
        assert_eq!(slot_since(Some(at(9_990)), now), Duration::from_secs(1));
        assert_eq!(slot_since(Some(at(0)), now), Duration::from_secs(6));
    }

    #[test]
    fn queues_add_up_slot_by_slot() {
        let p = |ms: u64, backlog, replicas| Point {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            backlog,
            replicas,
        };
        let a = vec![p(1_000, Some(5), Some(1)), p(9_000, Some(7), Some(2))];
        let b = vec![p(2_000, Some(10), None), p(12_000, None, Some(3))];
        let sum = combine([&a, &b], Duration::from_secs(10));
        // In the second slot only b was read: a counts with its reading of the first.
        assert_eq!(
            sum,
            vec![p(9_000, Some(17), Some(2)), p(12_000, Some(7), Some(5))]
        );
        // Before its first reading a queue counts for nothing.
        let late = vec![p(15_000, Some(100), Some(9))];
        let sum = combine([&a, &late], Duration::from_secs(10));
        assert_eq!(
            sum,
            vec![p(9_000, Some(7), Some(2)), p(15_000, Some(107), Some(11))]
        );
    }

    #[test]
    fn a_run_of_equal_readings_keeps_its_ends_and_the_chart_its_shape() {
        let mut t = Trend::default();
        let reading = |s, backlog| Point {
            at: at(s),
            backlog: Some(backlog),
            replicas: Some(1),
        };
        for s in 0..600 {
            t.observe(reading(s, 0));
        }
        assert_eq!(t.points(), vec![reading(0, 0), reading(599, 0)]);
        t.observe(reading(600, 40));
        t.observe(reading(601, 0));
        t.observe(reading(602, 0));
        t.observe(reading(603, 0));
        assert_eq!(
            t.points(),
            vec![
                reading(0, 0),
                reading(599, 0),
                reading(600, 40),
                reading(601, 0),
                reading(603, 0)
            ]
        );
        // A run that began before the window is cut at its start.
        let mut idle = Trend::default();
        for s in (0..=7200).step_by(10) {
            idle.observe(reading(s, 0));
        }
        assert_eq!(idle.points(), vec![reading(3600, 0), reading(7200, 0)]);
        // Summed in one-second slots, the flat stretches are filled from their ends.
        let sum = combine([t.points().iter()], Duration::from_secs(1));
        assert_eq!(sum.first().map(|p| p.backlog), Some(Some(0)));
        assert_eq!(sum.iter().filter(|p| p.backlog == Some(40)).count(), 1);
    }
}

//! What the policy remembers about one queue between decisions, in bounded memory: the latest
//! reading, how long the queue has been observed idle, and the recommendations still inside the
//! stabilization window.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::{
    policy::{Metric, Policy},
    reason::Reason,
    recommend::{Decision, recommend},
    sample::{Lag, Reading, Sample},
};

/// The recent past of one queue. Feed it every reading with [`History::observe`] and every
/// decision with [`History::record`] (or do both steps with [`History::decide`]).
#[derive(Debug, Clone, Default)]
pub struct History {
    latest: Option<Sample>,
    /// The current run of readings with lag known to be 0.
    zero_lag: Option<Span>,
    /// The current run of readings with nothing pending.
    zero_pending: Option<Span>,
    /// Recommendations with strictly decreasing values from front (oldest) to back (newest): an
    /// older one that is not higher than a newer one can never be a window's maximum again, so
    /// the sliding-window maximum is the first one not yet expired. Memory stays below
    /// `max_replicas + 1` entries however short the poll interval.
    recommendations: VecDeque<(Instant, u32)>,
    /// Start of the current run of recommendations: scale-down waits until it spans the window,
    /// so a restart or the end of a pause cannot scale in on less than a window of evidence.
    recommending_since: Option<Instant>,
}

/// From the first to the latest of a run of readings that all showed something.
#[derive(Debug, Clone, Copy)]
struct Span {
    since: Instant,
    until: Instant,
}

/// Extends, ends or keeps a run: `seen` is whether the reading showed the condition, `None`
/// when it could not tell (a failed read, an unknown lag), which neither ends nor extends it.
fn extend(run: Option<Span>, at: Instant, seen: Option<bool>) -> Option<Span> {
    match seen {
        None => run,
        Some(false) => None,
        Some(true) => Some(Span {
            since: run.map_or(at, |r| r.since),
            until: at,
        }),
    }
}

impl History {
    pub fn new() -> Self {
        History::default()
    }

    /// Takes a reading into account. A reading older than the latest one is ignored (returns
    /// false): the metrics loop may deliver late, and the newest view of the queue wins.
    pub fn observe(&mut self, sample: Sample) -> bool {
        if self.latest.as_ref().is_some_and(|l| sample.at < l.at) {
            return false;
        }
        let (lag_zero, pending_zero) = match &sample.reading {
            Reading::Failed(_) => (None, None),
            Reading::Ok { lag, pending } => {
                let lag_zero = match lag {
                    Lag::Exact(n) | Lag::Estimated(n) => Some(*n == 0),
                    Lag::Unknown => None,
                };
                (lag_zero, Some(*pending == 0))
            }
        };
        self.zero_lag = extend(self.zero_lag, sample.at, lag_zero);
        self.zero_pending = extend(self.zero_pending, sample.at, pending_zero);
        self.latest = Some(sample);
        true
    }

    /// The newest reading.
    pub fn latest(&self) -> Option<&Sample> {
        self.latest.as_ref()
    }

    /// For how long the readings have shown no work for `metric` (the metric at 0 and nothing
    /// pending): from the first to the last reading of the current idle run. Readings that could
    /// not tell (failed, unknown lag) neither end the run nor count as seen; a reading showing
    /// work ends it.
    pub fn idle_for(&self, metric: Metric) -> Option<Duration> {
        let pending = self.zero_pending?;
        let (since, until) = match metric {
            Metric::Pending => (pending.since, pending.until),
            Metric::Backlog | Metric::Lag => {
                let lag = self.zero_lag?;
                (lag.since.max(pending.since), lag.until.min(pending.until))
            }
        };
        Some(until.saturating_duration_since(since))
    }

    /// The highest recommendation made at most `window` before `now`.
    pub fn highest_recommendation(&self, now: Instant, window: Duration) -> Option<u32> {
        self.recommendations
            .iter()
            .find(|(at, _)| now.saturating_duration_since(*at) <= window)
            .map(|(_, replicas)| *replicas)
    }

    /// When the current run of recorded recommendations began (`None`: nothing recorded yet,
    /// or the last decision was a pause).
    pub fn recommending_since(&self) -> Option<Instant> {
        self.recommending_since
    }

    /// Remembers the decision's recommendation for the stabilization window and forgets what
    /// has left it. A pause ends the run of recommendations; an unavailable metric does not
    /// (the readings around it speak for it), so flaky reads cannot block scale-down forever.
    pub fn record(&mut self, policy: &Policy, decision: &Decision) {
        if decision.reason == Reason::Paused {
            self.recommending_since = None;
        }
        if let Some(replicas) = decision.recommendation {
            self.recommending_since.get_or_insert(decision.at);
            // Keep the deque in time order even if decisions arrive out of order.
            let at = match self.recommendations.back() {
                Some((last, _)) => decision.at.max(*last),
                None => decision.at,
            };
            while self
                .recommendations
                .back()
                .is_some_and(|(_, r)| *r <= replicas)
            {
                self.recommendations.pop_back();
            }
            self.recommendations.push_back((at, replicas));
        }
        let window = policy.scale_down_window;
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| decision.at.saturating_duration_since(*at) > window)
        {
            self.recommendations.pop_front();
        }
    }

    /// [`recommend`] then [`History::record`]: one poll's decision.
    pub fn decide(&mut self, policy: &Policy, current_replicas: u32, now: Instant) -> Decision {
        let decision = recommend(policy, self, current_replicas, now);
        self.record(policy, &decision);
        decision
    }

    /// How many recommendations are kept (for tests of the memory bound).
    pub fn retained_recommendations(&self) -> usize {
        self.recommendations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn idle_time_is_measured_between_readings() {
        let t0 = Instant::now();
        let mut h = History::new();
        h.observe(Sample::ok(t0, Lag::Exact(5), 0));
        assert_eq!(h.idle_for(Metric::Backlog), None);
        h.observe(Sample::ok(t0 + secs(10), Lag::Exact(0), 2));
        assert_eq!(h.idle_for(Metric::Backlog), None);
        // Pending alone has been 0 since the first reading.
        assert_eq!(h.idle_for(Metric::Pending), None);
        h.observe(Sample::ok(t0 + secs(20), Lag::Exact(0), 0));
        h.observe(Sample::ok(t0 + secs(50), Lag::Estimated(0), 0));
        assert_eq!(h.idle_for(Metric::Backlog), Some(secs(30)));
        assert_eq!(h.idle_for(Metric::Lag), Some(secs(30)));
        assert_eq!(h.idle_for(Metric::Pending), Some(secs(30)));
    }

    #[test]
    fn pending_idle_ignores_lag() {
        let t0 = Instant::now();
        let mut h = History::new();
        h.observe(Sample::ok(t0, Lag::Unknown, 0));
        h.observe(Sample::ok(t0 + secs(7), Lag::Exact(9), 0));
        assert_eq!(h.idle_for(Metric::Pending), Some(secs(7)));
        assert_eq!(h.idle_for(Metric::Lag), None);
    }

    #[test]
    fn readings_that_cannot_tell_neither_end_nor_extend_the_idle_run() {
        let t0 = Instant::now();
        let mut h = History::new();
        h.observe(Sample::ok(t0, Lag::Exact(0), 0));
        h.observe(Sample::failed(t0 + secs(60), "timeout"));
        assert_eq!(h.idle_for(Metric::Backlog), Some(secs(0)));
        h.observe(Sample::ok(t0 + secs(61), Lag::Exact(0), 0));
        assert_eq!(h.idle_for(Metric::Backlog), Some(secs(61)));
        h.observe(Sample::ok(t0 + secs(80), Lag::Unknown, 0));
        assert_eq!(h.idle_for(Metric::Backlog), Some(secs(61)));
        assert_eq!(h.idle_for(Metric::Pending), Some(secs(80)));
        // Work seen after the outage ends the run.
        h.observe(Sample::failed(t0 + secs(90), "timeout"));
        h.observe(Sample::ok(t0 + secs(100), Lag::Exact(1), 0));
        assert_eq!(h.idle_for(Metric::Backlog), None);
        h.observe(Sample::ok(t0 + secs(101), Lag::Exact(0), 0));
        assert_eq!(h.idle_for(Metric::Backlog), Some(secs(0)));
    }

    #[test]
    fn a_late_reading_is_ignored() {
        let t0 = Instant::now();
        let mut h = History::new();
        assert!(h.observe(Sample::ok(t0 + secs(5), Lag::Exact(0), 0)));
        assert!(!h.observe(Sample::ok(t0, Lag::Exact(100), 0)));
        assert_eq!(h.latest().unwrap().at, t0 + secs(5));
    }

    #[test]
    fn window_maximum_expires_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let policy = Policy {
            max_replicas: 10,
            scale_down_window: secs(30),
            ..Policy::default()
        };
        let mut h = History::new();
        let rec = |at, r| Decision::for_test(at, r);
        h.record(&policy, &rec(t0, 7));
        h.record(&policy, &rec(t0 + secs(10), 3));
        h.record(&policy, &rec(t0 + secs(20), 5));
        // 3 is dominated by the newer 5 and was dropped.
        assert_eq!(h.retained_recommendations(), 2);
        assert_eq!(h.highest_recommendation(t0 + secs(30), secs(30)), Some(7));
        assert_eq!(h.highest_recommendation(t0 + secs(31), secs(30)), Some(5));
        assert_eq!(h.highest_recommendation(t0 + secs(50), secs(30)), Some(5));
        assert_eq!(h.highest_recommendation(t0 + secs(51), secs(30)), None);
        for i in 0..1000 {
            h.record(&policy, &rec(t0 + secs(21 + i), (i % 11) as u32));
        }
        assert!(h.retained_recommendations() <= 11);
    }
}

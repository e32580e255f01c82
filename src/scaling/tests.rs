//! Table tests, one group per rule of the policy, driven through time by a small loop that
//! applies every decision (as the operator's executor would).

use std::time::{Duration, Instant};

use super::*;

const S: Duration = Duration::from_secs(1);

fn policy(max: u32, target: u64) -> Policy {
    Policy {
        max_replicas: max,
        target_per_replica: target,
        ..Policy::default()
    }
}

/// One queue polled once per simulated second.
struct Queue {
    policy: Policy,
    history: History,
    t0: Instant,
    replicas: u32,
}

impl Queue {
    fn new(policy: Policy, replicas: u32) -> Self {
        Queue {
            policy,
            history: History::new(),
            t0: Instant::now(),
            replicas,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + S * secs as u32
    }

    /// Reads `sample` at second `secs`, decides, applies.
    fn poll(&mut self, secs: u64, reading: Reading) -> Decision {
        let at = self.at(secs);
        self.history.observe(Sample { at, reading });
        let d = self.history.decide(&self.policy, self.replicas, at);
        self.replicas = d.replicas;
        d
    }

    fn backlog(&mut self, secs: u64, lag: u64, pending: u64) -> Decision {
        self.poll(
            secs,
            Reading::Ok {
                lag: Lag::Exact(lag),
                pending,
            },
        )
    }

    /// Polls every second in `range` with the same reading; returns the decisions.
    fn hold_reading(
        &mut self,
        range: std::ops::Range<u64>,
        lag: u64,
        pending: u64,
    ) -> Vec<Decision> {
        range.map(|t| self.backlog(t, lag, pending)).collect()
    }
}

#[test]
fn desired_is_the_metric_divided_by_the_target_rounded_up() {
    // (metric, lag, pending, target, expected replicas from 1)
    let cases = [
        (Metric::Backlog, 3000, 400, 500, 7),
        (Metric::Backlog, 1000, 0, 500, 2),
        (Metric::Backlog, 1000, 1, 500, 3),
        (Metric::Backlog, 1, 0, 500, 1),
        (Metric::Lag, 1000, 900, 100, 10),
        (Metric::Pending, 1000, 900, 100, 9),
        (Metric::Backlog, u64::MAX, 0, 1, 10_000),
    ];
    for (metric, lag, pending, target, expected) in cases {
        let mut q = Queue::new(
            Policy {
                metric,
                min_replicas: 1,
                ..policy(10_000, target)
            },
            1,
        );
        let d = q.backlog(0, lag, pending);
        assert_eq!(
            d.replicas, expected,
            "{metric:?} lag {lag} pending {pending} / {target}: {d}"
        );
    }
}

#[test]
fn the_reason_reads_like_an_event() {
    let mut q = Queue::new(policy(20, 500), 2);
    let d = q.backlog(0, 3000, 400);
    assert_eq!(d.to_string(), "scaled 2 → 7: backlog 3400 needs 7 × 500");
    assert_eq!(d.event_reason(), "ScaledUp");
    let d = q.backlog(1, 3000, 400);
    assert!(!d.changed());
    assert_eq!(d.to_string(), "holding 7: backlog 3400 needs 7 × 500");
    assert_eq!(d.event_reason(), "Holding");
}

#[test]
fn results_are_clamped_to_the_bounds() {
    let mut q = Queue::new(policy(10, 100), 1);
    let d = q.backlog(0, 3000, 0);
    assert_eq!(d.replicas, 10);
    assert_eq!(d.limit, Some(Limit::MaxReplicas(10)));
    assert_eq!(
        d.to_string(),
        "scaled 1 → 10: backlog 3000 needs 30 × 100 (maxReplicas 10)"
    );

    let mut q = Queue::new(
        Policy {
            min_replicas: 2,
            ..policy(10, 100)
        },
        0,
    );
    let d = q.backlog(0, 0, 0);
    assert_eq!(d.replicas, 2);
    assert_eq!(d.to_string(), "scaled 0 → 2: no backlog (minReplicas 2)");
    // Idle for far longer than the cooldown and the window: never below minReplicas.
    let ds = q.hold_reading(1..2000, 0, 0);
    assert!(ds.iter().all(|d| d.replicas == 2), "min 2 kept");

    // Someone set 15 by hand, above maxReplicas: brought back at once, despite the step limit.
    let mut q = Queue::new(
        Policy {
            scale_down_max_step: Some(1),
            ..policy(10, 100)
        },
        15,
    );
    let d = q.backlog(0, 2000, 0);
    assert_eq!(d.replicas, 10);
    assert_eq!(d.limit, Some(Limit::MaxReplicas(10)));
}

#[test]
fn activation_gates_only_the_first_replica() {
    let p = Policy {
        activation_threshold: 10,
        ..policy(10, 100)
    };
    let mut q = Queue::new(p.clone(), 0);
    let d = q.backlog(0, 10, 0);
    assert_eq!(d.replicas, 0);
    assert_eq!(
        d.to_string(),
        "holding 0: backlog 10 ≤ activation threshold 10"
    );
    let d = q.backlog(1, 11, 0);
    assert_eq!(d.to_string(), "scaled 0 → 1: backlog 11 needs 1 × 100");
    // Leaving zero goes straight to what is needed.
    let mut q = Queue::new(p.clone(), 0);
    assert_eq!(q.backlog(0, 450, 0).replicas, 5);
    // Above zero, a backlog below the threshold still keeps a replica working on it.
    let mut q = Queue::new(p, 1);
    let ds = q.hold_reading(0..1000, 3, 0);
    assert!(ds.iter().all(|d| d.replicas == 1));
}

#[test]
fn pending_work_keeps_and_wakes_a_replica() {
    let p = Policy {
        metric: Metric::Lag,
        min_replicas: 0,
        cooldown: Duration::from_secs(60),
        scale_down_window: Duration::from_secs(30),
        ..policy(10, 100)
    };
    // Lag is 0 but two jobs are in flight: 3 → 1 after the window, never 0.
    let mut q = Queue::new(p.clone(), 3);
    let ds = q.hold_reading(0..600, 0, 2);
    assert_eq!(
        ds[0].to_string(),
        "holding 3: no lag, 2 pending, but readings cover only 0ms of the 30s window"
    );
    assert_eq!(ds[40].to_string(), "holding 1: no lag, 2 pending");
    assert!(ds.iter().all(|d| d.replicas >= 1));
    assert_eq!(q.replicas, 1);
    // At zero, a pending job wakes one replica even below the activation threshold.
    let mut q = Queue::new(
        Policy {
            activation_threshold: 50,
            metric: Metric::Backlog,
            ..p
        },
        0,
    );
    assert_eq!(q.backlog(0, 0, 1).replicas, 1);
}

#[test]
fn scale_up_is_immediate_and_bounded_by_its_step() {
    let mut q = Queue::new(policy(100, 10), 1);
    assert_eq!(q.backlog(0, 1000, 0).replicas, 100, "unbounded by default");

    let mut q = Queue::new(
        Policy {
            scale_up_max_step: Some(3),
            ..policy(100, 10)
        },
        0,
    );
    let got: Vec<u32> = (0..5).map(|t| q.backlog(t, 100, 0).replicas).collect();
    assert_eq!(got, [3, 6, 9, 10, 10]);
    let mut q = Queue::new(
        Policy {
            scale_up_max_step: Some(3),
            ..policy(100, 10)
        },
        2,
    );
    assert_eq!(
        q.backlog(0, 100, 0).to_string(),
        "scaled 2 → 5: backlog 100 needs 10 × 10 (scaleUp.maxStep 3)"
    );
}

#[test]
fn scale_down_waits_for_the_highest_recommendation_to_leave_the_window() {
    let window = Duration::from_secs(60);
    let mut q = Queue::new(
        Policy {
            min_replicas: 1,
            scale_down_window: window,
            ..policy(20, 100)
        },
        1,
    );
    assert_eq!(q.backlog(0, 800, 0).replicas, 8);
    assert_eq!(q.backlog(10, 500, 0).replicas, 8);
    let d = q.backlog(20, 200, 0);
    assert_eq!(
        d.to_string(),
        "holding 8: backlog 200 needs 2 × 100, but 8 recommended within the last 1m"
    );
    // After 60s the 8 (made at 0s) leaves the window; the 5 made at 10s is now the highest.
    let ds = q.hold_reading(21..100, 200, 0);
    let at = |t: u64| ds[(t - 21) as usize].replicas;
    assert_eq!(at(60), 8);
    assert_eq!(at(61), 5);
    assert_eq!(at(70), 5);
    assert_eq!(at(71), 2, "the 5 made at 10s has left too");
    assert_eq!(
        ds.last().unwrap().to_string(),
        "holding 2: backlog 200 needs 2 × 100"
    );
}

#[test]
fn a_zero_window_scales_down_at_once() {
    let mut q = Queue::new(
        Policy {
            min_replicas: 1,
            scale_down_window: Duration::ZERO,
            ..policy(20, 100)
        },
        1,
    );
    assert_eq!(q.backlog(0, 800, 0).replicas, 8);
    assert_eq!(q.backlog(1, 200, 0).replicas, 2);
}

#[test]
fn scale_down_removes_at_most_its_step_per_decision() {
    let mut q = Queue::new(
        Policy {
            min_replicas: 1,
            scale_down_window: Duration::from_secs(10),
            scale_down_max_step: Some(2),
            ..policy(20, 100)
        },
        9,
    );
    let got: Vec<u32> = (0..16).map(|t| q.backlog(t, 100, 0).replicas).collect();
    assert_eq!(got, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 7, 5, 3, 1, 1, 1]);
}

#[test]
fn zero_comes_only_after_the_cooldown_of_no_work() {
    let p = Policy {
        cooldown: Duration::from_secs(300),
        scale_down_window: Duration::from_secs(60),
        ..policy(10, 100)
    };
    let mut q = Queue::new(p, 1);
    assert_eq!(q.backlog(0, 500, 0).replicas, 5);
    // The last job is acknowledged at 100s; the queue is idle from 101s.
    q.hold_reading(1..101, 400, 100);
    let ds = q.hold_reading(101..700, 0, 0);
    let at = |t: u64| &ds[(t - 101) as usize];
    assert_eq!(
        at(101).to_string(),
        "holding 5: no backlog, but 5 recommended within the last 1m"
    );
    assert_eq!(
        at(160).replicas,
        5,
        "the 5 made at 100s is still in the window"
    );
    assert_eq!(at(161).replicas, 1, "window passed, cooldown not");
    assert_eq!(
        at(161).to_string(),
        "scaled 5 → 1: no backlog for 1m of 5m cooldown"
    );
    assert_eq!(at(400).replicas, 1);
    let d = at(401);
    assert_eq!(
        d.to_string(),
        "scaled 1 → 0: no backlog for 5m (cooldown 5m)"
    );
    assert_eq!(d.event_reason(), "ScaledToZero");
    assert!(ds[(401 - 101)..].iter().all(|d| d.replicas == 0));
}

#[test]
fn a_cooldown_shorter_than_the_window_still_waits_for_the_window() {
    let mut q = Queue::new(
        Policy {
            cooldown: Duration::from_secs(10),
            scale_down_window: Duration::from_secs(60),
            ..policy(10, 100)
        },
        1,
    );
    assert_eq!(q.backlog(0, 300, 0).replicas, 3);
    let ds = q.hold_reading(1..100, 0, 0);
    assert_eq!(ds[59].replicas, 3, "at 60s the 3 is still in the window");
    assert_eq!(ds[60].replicas, 0, "at 61s: window passed, idle for 60s");
}

#[test]
fn paused_keeps_the_count_even_outside_the_bounds() {
    let mut q = Queue::new(
        Policy {
            paused: true,
            ..policy(10, 100)
        },
        25,
    );
    let d = q.backlog(0, 0, 0);
    assert_eq!(d.replicas, 25);
    assert_eq!(d.to_string(), "holding 25: scaling is paused");
    assert_eq!(d.event_reason(), "ScalingPaused");
    assert_eq!(d.recommendation, None);
}

#[test]
fn a_read_error_holds_without_ending_the_idle_run() {
    let p = Policy {
        cooldown: Duration::from_secs(60),
        scale_down_window: Duration::from_secs(10),
        ..policy(10, 100)
    };
    let mut q = Queue::new(p.clone(), 4);
    let d = q.poll(0, Reading::Failed("connection refused".into()));
    assert_eq!(
        d.to_string(),
        "holding 4: metric unavailable (connection refused)"
    );
    assert_eq!(d.event_reason(), "MetricUnavailable");
    q.hold_reading(1..50, 0, 0);
    assert_eq!(q.replicas, 1, "cooling down at one replica");
    // Errors for far longer than the cooldown: hold, never zero on missing data.
    for t in 50..500 {
        let d = q.poll(t, Reading::Failed("timeout".into()));
        assert_eq!(d.replicas, 1);
    }
    // Readable and still idle: the readings on both sides of the outage make the run.
    let d = q.backlog(500, 0, 0);
    assert_eq!(
        d.to_string(),
        "scaled 1 → 0: no backlog for 8m19s (cooldown 1m)"
    );

    // Work seen after an outage starts the cooldown over.
    let mut q = Queue::new(p.clone(), 1);
    q.hold_reading(0..50, 0, 0);
    q.poll(50, Reading::Failed("timeout".into()));
    q.backlog(51, 0, 1);
    let ds = q.hold_reading(52..200, 0, 0);
    assert_eq!(ds[59].replicas, 1, "at 111s idle for 59s");
    assert_eq!(ds[60].replicas, 0);

    // One read in seven failing does not keep a worker up forever.
    let mut q = Queue::new(p, 3);
    for t in 0..200 {
        if t % 7 == 3 {
            q.poll(t, Reading::Failed("connection reset".into()));
        } else {
            q.backlog(t, 0, 0);
        }
    }
    assert_eq!(q.replicas, 0);
}

#[test]
fn no_reading_yet_holds() {
    let q = Queue::new(policy(10, 100), 3);
    let d = recommend(&q.policy, &q.history, 3, q.t0);
    assert_eq!(
        d.to_string(),
        "holding 3: metric unavailable (no reading yet)"
    );
    // ... but a count outside new bounds is brought inside.
    let d = recommend(&q.policy, &q.history, 12, q.t0);
    assert_eq!(d.replicas, 10);
}

#[test]
fn unknown_lag_holds_lag_metrics_and_an_estimate_is_used_and_said() {
    for metric in [Metric::Backlog, Metric::Lag] {
        let mut q = Queue::new(
            Policy {
                metric,
                cooldown: Duration::ZERO,
                scale_down_window: Duration::ZERO,
                ..policy(10, 100)
            },
            3,
        );
        for t in 0..100 {
            let d = q.poll(
                t,
                Reading::Ok {
                    lag: Lag::Unknown,
                    pending: 0,
                },
            );
            assert_eq!(d.replicas, 3, "{metric:?}: {d}");
            assert_eq!(
                d.to_string(),
                "holding 3: metric unavailable (lag unknown and no estimate)"
            );
        }
    }
    let mut q = Queue::new(policy(10, 100), 1);
    let d = q.poll(
        0,
        Reading::Ok {
            lag: Lag::Estimated(450),
            pending: 50,
        },
    );
    assert_eq!(
        d.to_string(),
        "scaled 1 → 5: backlog 500 (lag estimated) needs 5 × 100"
    );
    // Pending does not need lag.
    let mut q = Queue::new(
        Policy {
            metric: Metric::Pending,
            min_replicas: 1,
            ..policy(10, 100)
        },
        1,
    );
    let d = q.poll(
        0,
        Reading::Ok {
            lag: Lag::Unknown,
            pending: 250,
        },
    );
    assert_eq!(d.to_string(), "scaled 1 → 3: pending 250 needs 3 × 100");
}

#[test]
fn a_constant_metric_gives_a_constant_count() {
    let mut q = Queue::new(
        Policy {
            scale_down_window: Duration::from_secs(30),
            ..policy(10, 100)
        },
        9,
    );
    let ds = q.hold_reading(0..200, 420, 0);
    assert_eq!(ds[29].replicas, 9);
    assert_eq!(ds[30].replicas, 5);
    assert!(ds[31..].iter().all(|d| d.replicas == 5 && !d.changed()));
}

#[test]
fn after_a_start_or_a_pause_scale_down_waits_a_whole_window() {
    let mut q = Queue::new(
        Policy {
            min_replicas: 1,
            scale_down_window: Duration::from_secs(60),
            ..policy(20, 100)
        },
        6,
    );
    let d = q.backlog(0, 100, 0);
    assert_eq!(
        d.to_string(),
        "holding 6: backlog 100 needs 1 × 100, but readings cover only 0ms of the 1m window"
    );
    let ds = q.hold_reading(1..61, 100, 0);
    assert_eq!(ds[58].replicas, 6);
    assert_eq!(
        ds[59].to_string(),
        "scaled 6 → 1: backlog 100 needs 1 × 100"
    );

    // Paused for a while, set to 8 by hand, resumed: no scale-in on the first reading.
    q.policy.paused = true;
    q.hold_reading(61..400, 100, 0);
    q.replicas = 8;
    q.policy.paused = false;
    let ds = q.hold_reading(400..461, 100, 0);
    assert!(ds[..60].iter().all(|d| d.replicas == 8), "{}", ds[0]);
    assert_eq!(ds[60].replicas, 1);
}

//! The scaling policy driving a simulated queue and worker fleet, second by second.
//!
//! Jobs arrive on a synthetic curve (burst, steady, silence); each ready worker reads `rate`
//! jobs per second and acknowledges them one second later (so they show as pending meanwhile);
//! a new worker becomes ready `startup` seconds after it is requested, and scale-in removes the
//! newest (not yet ready) pods first. Every second the simulated metrics read is fed to the
//! policy and its decision applied, exactly as the operator's loop does.
//!
//! What a user relies on, checked on every run: the queue drains and no job is lost; the count
//! stays in its bounds; a scale-down never follows a scale-up by less than the stabilization
//! window (so the count reverses direction at most once per window); zero is reached only after
//! `cooldown` of a truly idle queue, and it is reached once the queue stays idle.

use std::time::{Duration, Instant};

use jobqueue_operator::scaling::{Decision, History, Lag, Metric, Policy, Reading, Sample};
use proptest::prelude::*;

/// Jobs per second arriving at second `t`.
#[derive(Debug, Clone)]
struct Curve {
    burst_rate: u64,
    burst_secs: u64,
    steady_rate: u64,
    steady_secs: u64,
    silence_secs: u64,
}

impl Curve {
    fn arrivals(&self, t: u64) -> u64 {
        if t < self.burst_secs {
            self.burst_rate
        } else if t < self.burst_secs + self.steady_secs {
            self.steady_rate
        } else {
            0
        }
    }

    fn silence_starts(&self) -> u64 {
        self.burst_secs + self.steady_secs
    }

    fn total_secs(&self) -> u64 {
        self.silence_starts() + self.silence_secs
    }
}

/// What the metrics read returns at second `t`, given the true lag and pending.
type Faults = fn(t: u64, lag: u64, pending: u64) -> Reading;

fn exact(_t: u64, lag: u64, pending: u64) -> Reading {
    Reading::Ok {
        lag: Lag::Exact(lag),
        pending,
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    policy: Policy,
    curve: Curve,
    /// Jobs one ready worker reads per second.
    rate: u64,
    /// Seconds from a pod being requested to it reading jobs.
    startup: u64,
    faults: Faults,
}

/// One simulated second, after the workers read and the policy decided.
#[derive(Debug)]
struct Tick {
    t: u64,
    lag: u64,
    pending: u64,
    decision: Decision,
}

impl Tick {
    fn idle(&self) -> bool {
        self.lag == 0 && self.pending == 0
    }
}

struct Run {
    ticks: Vec<Tick>,
    arrived: u64,
    completed: u64,
}

fn simulate(s: &Scenario) -> Run {
    let t0 = Instant::now();
    let mut history = History::new();
    let (mut lag, mut pending, mut arrived, mut completed) = (0u64, 0u64, 0u64, 0u64);
    // When each pod of the target reads its first job.
    let mut pods: Vec<u64> = Vec::new();
    let mut ticks = Vec::new();
    for t in 0..s.curve.total_secs() {
        completed += pending;
        let new = s.curve.arrivals(t);
        arrived += new;
        lag += new;
        let ready = pods.iter().filter(|&&ready_at| ready_at <= t).count() as u64;
        pending = lag.min(ready * s.rate);
        lag -= pending;
        assert_eq!(arrived, completed + pending + lag, "a job was lost at {t}s");

        let now = t0 + Duration::from_secs(t);
        history.observe(Sample {
            at: now,
            reading: (s.faults)(t, lag, pending),
        });
        let current = pods.len() as u32;
        let decision = history.decide(&s.policy, current, now);
        let want = decision.replicas as usize;
        if want > pods.len() {
            pods.resize(want, t + s.startup);
        } else {
            // Newest first: pods still starting, then the most recently started.
            pods.sort_unstable();
            pods.truncate(want);
        }
        ticks.push(Tick {
            t,
            lag,
            pending,
            decision,
        });
    }
    Run {
        ticks,
        arrived,
        completed,
    }
}

/// The checks every scenario must pass; returns the run for scenario-specific checks.
fn check(s: &Scenario) -> Run {
    let run = simulate(s);
    let p = &s.policy;
    let window = p.scale_down_window.as_secs();
    let cooldown = p.cooldown.as_secs();
    let last = run.ticks.last().expect("ticks");

    // The queue drains and nothing is lost.
    assert_eq!((last.lag, last.pending), (0, 0), "queue not drained");
    assert_eq!(run.completed, run.arrived);

    let mut last_up: Option<u64> = None;
    let mut idle_since: Option<u64> = None;
    for tick in &run.ticks {
        let d = &tick.decision;
        idle_since = if tick.idle() {
            idle_since.or(Some(tick.t))
        } else {
            None
        };
        assert!(
            (p.min_replicas..=p.max_replicas).contains(&d.replicas),
            "{}s: {d}",
            tick.t
        );
        if d.replicas > d.current {
            last_up = Some(tick.t);
        }
        if d.replicas < d.current
            && let Some(up) = last_up
        {
            assert!(
                tick.t - up >= window,
                "{}s: scaled down {}s after scaling up (window {window}s): {d}",
                tick.t,
                tick.t - up
            );
        }
        if d.replicas == 0 && d.current > 0 {
            let idle_for = idle_since.map(|since| tick.t - since);
            assert!(
                idle_for.is_some_and(|idle| idle >= cooldown),
                "{}s: scaled to zero after {idle_for:?}s idle (cooldown {cooldown}s): {d}",
                tick.t
            );
        }
    }
    run
}

/// When the count first reached zero after `from`, if it did.
fn reached_zero_at(run: &Run, from: u64) -> Option<u64> {
    run.ticks
        .iter()
        .find(|tick| tick.t >= from && tick.decision.replicas == 0)
        .map(|tick| tick.t)
}

fn changes(run: &Run) -> Vec<(u64, u32, u32)> {
    run.ticks
        .iter()
        .filter(|tick| tick.decision.changed())
        .map(|tick| (tick.t, tick.decision.current, tick.decision.replicas))
        .collect()
}

fn base_policy() -> Policy {
    Policy {
        min_replicas: 0,
        max_replicas: 30,
        metric: Metric::Backlog,
        // One worker reads 10 jobs/s and holds each for 1 s: 10 in flight per worker.
        target_per_replica: 10,
        activation_threshold: 0,
        cooldown: Duration::from_secs(300),
        scale_down_window: Duration::from_secs(300),
        scale_down_max_step: None,
        scale_up_max_step: None,
        paused: false,
    }
}

fn burst_steady_silence() -> Curve {
    Curve {
        burst_rate: 300,
        burst_secs: 20,
        steady_rate: 45,
        steady_secs: 900,
        silence_secs: 1800,
    }
}

fn scenario(policy: Policy) -> Scenario {
    Scenario {
        policy,
        curve: burst_steady_silence(),
        rate: 10,
        startup: 5,
        faults: exact,
    }
}

#[test]
fn burst_then_steady_then_silence() {
    let s = scenario(base_policy());
    let run = check(&s);
    let at = |t: u64| &run.ticks[t as usize];

    // The burst is met with the full fleet at once, and drained well before the steady phase ends.
    assert_eq!(
        at(0).decision.to_string(),
        "scaled 0 → 30: backlog 300 needs 30 × 10"
    );
    let steady_end = s.curve.silence_starts() - 1;
    assert_eq!(at(steady_end).lag, 0, "steady load is kept up with");
    // Steady 45 jobs/s at 10 per worker settles on 5 workers and stays there.
    assert_eq!(at(steady_end).decision.replicas, 5);
    let steady: Vec<u32> = (600..=steady_end)
        .map(|t| at(t).decision.replicas)
        .collect();
    assert!(steady.iter().all(|&r| r == 5), "{steady:?}");
    // Silence: zero after the cooldown, and then it stays there.
    let zero = reached_zero_at(&run, s.curve.silence_starts()).expect("reaches zero");
    assert!(
        zero <= s.curve.silence_starts() + 300 + 5,
        "zero at {zero}s"
    );
    assert!(
        run.ticks[zero as usize..]
            .iter()
            .all(|t| t.decision.replicas == 0)
    );
    assert_eq!(
        at(zero).decision.to_string(),
        "scaled 5 → 0: no backlog for 5m (cooldown 5m)"
    );
    // Up once for the burst, then only down: to the steady level, and to zero.
    let c = changes(&run);
    assert_eq!(c[0], (0, 0, 30));
    assert!(c[1..].iter().all(|(_, from, to)| to < from), "{c:?}");
}

#[test]
fn step_limits_and_a_floor() {
    let s = scenario(Policy {
        min_replicas: 1,
        scale_up_max_step: Some(4),
        scale_down_max_step: Some(2),
        scale_down_window: Duration::from_secs(120),
        ..base_policy()
    });
    let run = check(&s);
    for c in changes(&run) {
        let (t, from, to) = c;
        assert!(to <= from + 4 && from <= to + 2, "{t}s: {from} → {to}");
    }
    assert_eq!(run.ticks.last().unwrap().decision.replicas, 1);
    assert!(run.ticks.iter().all(|t| t.decision.replicas >= 1));
}

#[test]
fn read_errors_and_unknown_lag_hold_and_the_queue_still_drains() {
    // Every 7th read fails; nil lag the engine could not estimate during the burst, then with
    // an estimate; a 100 s outage under steady load; a 5 min outage and 200 s of unknown lag
    // in the silence.
    fn faults(t: u64, lag: u64, pending: u64) -> Reading {
        match t {
            _ if t % 7 == 3 => Reading::Failed("connection reset".into()),
            10..40 | 1250..1450 => Reading::Ok {
                lag: Lag::Unknown,
                pending,
            },
            40..200 => Reading::Ok {
                lag: Lag::Estimated(lag),
                pending,
            },
            400..500 | 950..1250 => Reading::Failed("connection refused".into()),
            _ => exact(t, lag, pending),
        }
    }
    let s = Scenario {
        faults,
        ..scenario(base_policy())
    };
    let run = check(&s);
    let mut blind = 0;
    for tick in &run.ticks {
        if let Reading::Failed(_)
        | Reading::Ok {
            lag: Lag::Unknown, ..
        } = (s.faults)(tick.t, tick.lag, tick.pending)
        {
            blind += 1;
            assert!(!tick.decision.changed(), "{}s: {}", tick.t, tick.decision);
            assert!(tick.decision.to_string().contains("metric unavailable"));
        }
    }
    assert!(blind > 800);
    let steady_end = s.curve.silence_starts() - 1;
    assert_eq!(run.ticks[steady_end as usize].lag, 0);
    // Idle from the silence on, but blind from 950 s to 1449 s: zero waits for a reading.
    let zero = reached_zero_at(&run, s.curve.silence_starts()).expect("reaches zero");
    assert!(zero >= 1450, "zero at {zero}s");
}

#[test]
fn lag_metric_sawtooth_reverses_at_most_once_per_window() {
    // Lag alone reads ~0 while workers keep up, so the count drops until lag builds up again:
    // the window must keep that from flapping.
    let s = scenario(Policy {
        metric: Metric::Lag,
        target_per_replica: 20,
        scale_down_window: Duration::from_secs(120),
        ..base_policy()
    });
    let run = check(&s);
    let c = changes(&run);
    assert!(c.len() > 3, "expected a sawtooth, got {c:?}");
}

#[test]
fn activation_threshold_leaves_a_trickle_waiting_at_zero() {
    let s = Scenario {
        curve: Curve {
            burst_rate: 1,
            burst_secs: 5,
            steady_rate: 0,
            steady_secs: 60,
            silence_secs: 600,
        },
        ..scenario(Policy {
            activation_threshold: 10,
            ..base_policy()
        })
    };
    let run = simulate(&s);
    assert!(run.ticks.iter().all(|t| t.decision.replicas == 0));
    assert_eq!(run.ticks.last().unwrap().lag, 5, "waits for more work");
}

fn curve() -> impl Strategy<Value = Curve> {
    (0u64..400, 0u64..120, 0u64..250, 0u64..1200).prop_map(
        |(burst_rate, burst_secs, steady_rate, steady_secs)| Curve {
            burst_rate,
            burst_secs,
            steady_rate,
            steady_secs,
            silence_secs: 1200,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any burst / steady / silence curve the fleet can absorb: the checks of `check` hold and
    /// zero is reached once the silence has lasted the cooldown (plus draining).
    #[test]
    fn any_curve_drains_without_flapping(
        curve in curve(),
        window in 0u64..400,
        cooldown in 0u64..400,
        startup in 0u64..30,
        up in proptest::option::of(1u32..8),
        down in proptest::option::of(1u32..8),
        metric in prop_oneof![Just(Metric::Backlog), Just(Metric::Lag)],
    ) {
        let s = Scenario {
            policy: Policy {
                metric,
                cooldown: Duration::from_secs(cooldown),
                scale_down_window: Duration::from_secs(window),
                scale_up_max_step: up,
                scale_down_max_step: down,
                ..base_policy()
            },
            curve,
            rate: 10,
            startup,
            faults: exact,
        };
        let run = check(&s);
        prop_assert_eq!(run.ticks.last().unwrap().decision.replicas, 0);
    }
}

//! Property tests of the invariants users rely on, over reachable histories: random policies and
//! random reading sequences (including errors, unknown and estimated lag, and replica counts
//! changed by hand), with every decision applied as the executor would.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![
        Just(Metric::Backlog),
        Just(Metric::Lag),
        Just(Metric::Pending)
    ]
}

fn secs(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_secs)
}

/// Valid policies with windows comparable to the simulated time spans.
fn policy() -> impl Strategy<Value = Policy> {
    (
        (0u32..4, 1u32..30, metric(), 1u64..300, 0u64..200),
        (secs(90), secs(90)),
        (
            proptest::option::of(1u32..6),
            proptest::option::of(1u32..6),
            proptest::bool::weighted(0.05),
        ),
    )
        .prop_map(
            |((min, extra, metric, target, activation), (cooldown, window), (down, up, paused))| {
                Policy {
                    min_replicas: min,
                    max_replicas: min + extra,
                    metric,
                    target_per_replica: target,
                    activation_threshold: activation,
                    cooldown,
                    scale_down_window: window,
                    scale_down_max_step: down,
                    scale_up_max_step: up,
                    paused,
                }
            },
        )
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 5 => 0u64..3000, 1 => Just(u64::MAX)]
}

fn reading() -> impl Strategy<Value = Reading> {
    prop_oneof![
        10 => (amount(), amount()).prop_map(|(lag, pending)| Reading::Ok { lag: Lag::Exact(lag), pending }),
        1 => (amount(), amount()).prop_map(|(lag, pending)| Reading::Ok { lag: Lag::Estimated(lag), pending }),
        1 => amount().prop_map(|pending| Reading::Ok { lag: Lag::Unknown, pending }),
        1 => Just(Reading::Failed("timeout".into())),
    ]
}

/// One poll: seconds since the previous one, the reading, and sometimes a replica count set by
/// hand just before it.
fn event() -> impl Strategy<Value = (u64, Reading, Option<u32>)> {
    (
        prop_oneof![5 => 0u64..3, 1 => 3u64..60],
        reading(),
        proptest::option::weighted(0.05, 0u32..50),
    )
}

fn pending_of(reading: &Reading) -> u64 {
    match reading {
        Reading::Ok { pending, .. } => *pending,
        Reading::Failed(_) => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every decision of a run obeys the rules that make the policy safe to automate.
    #[test]
    fn every_decision_respects_the_invariants(
        policy in policy(),
        start in 0u32..40,
        events in proptest::collection::vec(event(), 1..120),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut history = History::new();
        let mut current = start;
        for (gap, reading, by_hand) in events {
            now += Duration::from_secs(gap);
            if let Some(n) = by_hand {
                current = n;
            }
            let pending = pending_of(&reading);
            let readable = match &reading {
                Reading::Ok { lag: Lag::Unknown, .. } => !policy.metric.uses_lag(),
                Reading::Ok { .. } => true,
                Reading::Failed(_) => false,
            };
            history.observe(Sample { at: now, reading: reading.clone() });
            let highest = history.highest_recommendation(now, policy.scale_down_window);
            let idle_for = history.idle_for(policy.metric);
            let d = recommend(&policy, &history, current, now);

            if policy.paused {
                prop_assert_eq!(d.replicas, current, "paused: {}", d);
            } else {
                prop_assert!(
                    (policy.min_replicas..=policy.max_replicas).contains(&d.replicas),
                    "outside [{}, {}]: {}", policy.min_replicas, policy.max_replicas, d
                );
            }
            if readable && pending > 0 && !policy.paused {
                prop_assert!(d.replicas > 0, "zero with {} pending: {}", pending, d);
            }
            if d.replicas < current {
                let floor = highest.unwrap_or(0).max(d.recommendation.unwrap_or(0));
                prop_assert!(
                    d.replicas >= floor.min(policy.max_replicas),
                    "below the window's highest {}: {}", floor, d
                );
                if let Some(step) = policy.scale_down_max_step
                    && current <= policy.max_replicas
                {
                    prop_assert!(current - d.replicas <= step, "step {}: {}", step, d);
                }
            }
            if d.replicas > current
                && let Some(step) = policy.scale_up_max_step
                && current >= policy.min_replicas
            {
                prop_assert!(d.replicas - current <= step, "step {}: {}", step, d);
            }
            if d.replicas == 0 && current > 0 {
                prop_assert!(
                    idle_for.is_some_and(|idle| idle >= policy.cooldown),
                    "zero before {:?} of observed idleness ({:?}): {}",
                    policy.cooldown, idle_for, d
                );
            }
            if !readable {
                let held = if policy.paused {
                    current
                } else {
                    current.clamp(policy.min_replicas, policy.max_replicas)
                };
                prop_assert_eq!(d.replicas, held, "missing data moved the count: {}", d);
            }
            history.record(&policy, &d);
            prop_assert!(
                history.retained_recommendations() as u32
                    <= policy.max_replicas - policy.min_replicas + 1
            );
            current = d.replicas;
        }
    }

    /// More metric never asks for fewer replicas.
    #[test]
    fn the_decision_is_monotone_in_the_metric(
        policy in policy(),
        events in proptest::collection::vec(event(), 0..60),
        current in 0u32..40,
        lag in 0u64..5000,
        more in 0u64..5000,
        pending in amount(),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut history = History::new();
        let mut replicas = 0;
        for (gap, reading, _) in events {
            now += Duration::from_secs(gap);
            history.observe(Sample { at: now, reading });
            replicas = history.decide(&policy, replicas, now).replicas;
        }
        now += Duration::from_secs(1);
        let decide = |lag| {
            let mut h = history.clone();
            h.observe(Sample::ok(now, Lag::Exact(lag), pending));
            recommend(&policy, &h, current, now)
        };
        let (low, high) = (decide(lag), decide(lag + more));
        prop_assert!(low.replicas <= high.replicas, "{} vs {}", low, high);
    }

    /// A constant metric settles on one count and stays there: no flapping.
    #[test]
    fn a_constant_metric_settles_on_a_constant_count(
        policy in policy().prop_filter("not paused", |p| !p.paused),
        start in 0u32..40,
        lag in amount(),
        pending in amount(),
    ) {
        let t0 = Instant::now();
        let mut history = History::new();
        let mut current = start;
        let window = policy.scale_down_window.as_secs();
        let settle = window + policy.cooldown.as_secs() + 2 * u64::from(start.max(policy.max_replicas)) + 5;
        let mut last = Vec::new();
        for t in 0..settle + window + 10 {
            let now = t0 + Duration::from_secs(t);
            history.observe(Sample::ok(now, Lag::Exact(lag), pending));
            let d = history.decide(&policy, current, now);
            current = d.replicas;
            if t >= settle {
                last.push(d);
            }
        }
        let settled = last[0].replicas;
        for d in &last {
            prop_assert_eq!(d.replicas, settled, "{}", d);
            prop_assert!(!d.changed(), "{}", d);
        }
        // And it is the count the metric asks for.
        let value = match policy.metric {
            Metric::Backlog => lag.saturating_add(pending),
            Metric::Lag => lag,
            Metric::Pending => pending,
        };
        let need = u32::try_from(value.div_ceil(policy.target_per_replica)).unwrap_or(u32::MAX);
        let need = if pending > 0 { need.max(1) } else { need };
        let stays_at_zero =
            start == 0 && pending == 0 && value <= policy.activation_threshold;
        let expected = if stays_at_zero { 0 } else { need }
            .clamp(policy.min_replicas, policy.max_replicas);
        prop_assert_eq!(settled, expected);
    }

    /// Any policy at all, even one `validate` rejects, and any input: no panic, and the count
    /// stays inside the bounds as `recommend` reads them.
    #[test]
    fn never_panics_on_any_policy(
        min in any::<u32>(),
        max in any::<u32>(),
        target in any::<u64>(),
        activation in any::<u64>(),
        up in proptest::option::of(any::<u32>()),
        down in proptest::option::of(any::<u32>()),
        metric in metric(),
        current in any::<u32>(),
        lag in any::<u64>(),
        pending in any::<u64>(),
        cooldown in any::<u64>(),
        window in any::<u64>(),
    ) {
        let policy = Policy {
            min_replicas: min,
            max_replicas: max,
            metric,
            target_per_replica: target,
            activation_threshold: activation,
            cooldown: Duration::from_millis(cooldown),
            scale_down_window: Duration::from_millis(window),
            scale_down_max_step: down,
            scale_up_max_step: up,
            paused: false,
        };
        let t0 = Instant::now();
        let mut history = History::new();
        let mut current = current;
        for t in 0..3 {
            let now = t0 + Duration::from_secs(t);
            history.observe(Sample::ok(now, Lag::Exact(lag), pending));
            let d = history.decide(&policy, current, now);
            prop_assert!(d.replicas >= min && d.replicas <= max.max(min), "{}", d);
            let _ = d.to_string();
            current = d.replicas;
        }
    }
}

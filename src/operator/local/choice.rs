//! The two decisions about local worker processes that need no I/O: which workers a scale-in
//! stops (idle ones first, never one holding jobs while an idle one is left), and how long a
//! crashed worker waits before it is started again.

use std::time::Duration;

use crate::queue::metrics::ConsumerInfo;

/// A worker slot as the scale-in sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub index: u32,
    /// The consumer of its running process; `None` while it waits to be restarted.
    pub consumer: Option<String>,
}

/// The indexes of `count` slots to stop. Order: slots without a process, then the fewest
/// pending jobs, then the longest idle (a consumer the group has not seen yet is idle), then
/// the highest index.
pub fn victims(slots: &[SlotView], consumers: &[ConsumerInfo], count: usize) -> Vec<u32> {
    let mut ranked: Vec<(
        bool,
        u64,
        std::cmp::Reverse<Duration>,
        std::cmp::Reverse<u32>,
    )> = slots
        .iter()
        .map(|s| {
            let info = s
                .consumer
                .as_deref()
                .and_then(|c| consumers.iter().find(|i| i.name == c));
            (
                s.consumer.is_some(),
                info.map_or(0, |i| i.pending),
                std::cmp::Reverse(info.map_or(Duration::MAX, |i| i.idle)),
                std::cmp::Reverse(s.index),
            )
        })
        .collect();
    ranked.sort();
    ranked.into_iter().take(count).map(|r| r.3.0).collect()
}

/// First restart delay after a crash.
pub const RESTART_INITIAL: Duration = Duration::from_millis(500);
/// Longest restart delay.
pub const RESTART_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long is healthy again: its next crash restarts it quickly.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Delay before restarting a worker that crashed `crashes` times in a row (1-based):
/// 0.5s, 1s, 2s, ... up to 30s.
pub fn restart_delay(crashes: u32) -> Duration {
    let doublings = crashes.saturating_sub(1).min(16);
    RESTART_INITIAL
        .saturating_mul(1u32 << doublings)
        .min(RESTART_MAX)
}

/// Crashes in a row after a process that ran for `ran` exited.
pub fn crashes_after(previous: u32, ran: Duration) -> u32 {
    if ran >= HEALTHY_AFTER {
        1
    } else {
        previous.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn slot(index: u32, consumer: Option<&str>) -> SlotView {
        SlotView {
            index,
            consumer: consumer.map(str::to_string),
        }
    }

    fn info(name: &str, pending: u64, idle_ms: u64) -> ConsumerInfo {
        ConsumerInfo {
            name: name.into(),
            pending,
            idle: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn idle_first_then_least_busy() {
        let slots = [
            slot(0, Some("a")),
            slot(1, Some("b")),
            slot(2, Some("c")),
            slot(3, Some("d")),
        ];
        let consumers = [
            info("a", 3, 10),
            info("b", 0, 50),
            info("c", 1, 9000),
            info("d", 0, 5000),
        ];
        assert_eq!(victims(&slots, &consumers, 1), vec![3]);
        assert_eq!(victims(&slots, &consumers, 2), vec![3, 1]);
        assert_eq!(victims(&slots, &consumers, 3), vec![3, 1, 2]);
        assert_eq!(victims(&slots, &consumers, 9), vec![3, 1, 2, 0]);
    }

    #[test]
    fn waiting_slots_and_unseen_consumers_go_first() {
        let slots = [slot(0, Some("a")), slot(1, Some("new")), slot(2, None)];
        let consumers = [info("a", 0, 60_000)];
        assert_eq!(victims(&slots, &consumers, 2), vec![2, 1]);
    }

    #[test]
    fn restart_delays_grow_and_cap() {
        assert_eq!(restart_delay(1), Duration::from_millis(500));
        assert_eq!(restart_delay(2), Duration::from_secs(1));
        assert_eq!(restart_delay(4), Duration::from_secs(4));
        assert_eq!(restart_delay(10), RESTART_MAX);
        assert_eq!(restart_delay(u32::MAX), RESTART_MAX);
        assert_eq!(crashes_after(5, Duration::from_secs(1)), 6);
        assert_eq!(crashes_after(5, HEALTHY_AFTER), 1);
    }

    proptest! {
        #[test]
        fn never_stops_a_busy_worker_while_an_idle_one_is_left(
            pending in proptest::collection::vec((0u64..4, 0u64..10_000, any::<bool>()), 0..12),
            count in 0usize..14,
        ) {
            let slots: Vec<SlotView> = pending.iter().enumerate()
                .map(|(i, (_, _, running))| slot(i as u32, running.then(|| format!("c{i}")).as_deref()))
                .collect();
            let consumers: Vec<ConsumerInfo> = pending.iter().enumerate()
                .map(|(i, (p, idle, _))| info(&format!("c{i}"), *p, *idle))
                .collect();
            let chosen = victims(&slots, &consumers, count);
            prop_assert_eq!(chosen.len(), count.min(slots.len()));
            let mut unique = chosen.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), chosen.len());
            let load = |i: u32| {
                let (p, _, running) = pending[i as usize];
                if running { p } else { 0 }
            };
            let max_chosen = chosen.iter().map(|&i| load(i)).max().unwrap_or(0);
            for s in &slots {
                if !chosen.contains(&s.index) {
                    prop_assert!(load(s.index) >= max_chosen);
                }
            }
        }

        #[test]
        fn restart_delay_is_monotone_and_bounded(n in 1u32..100) {
            prop_assert!(restart_delay(n) <= restart_delay(n + 1));
            prop_assert!(restart_delay(n) >= RESTART_INITIAL && restart_delay(n) <= RESTART_MAX);
        }
    }
}

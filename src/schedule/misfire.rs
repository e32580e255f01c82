//! What to fire when a schedule's run comes due, including after downtime.
//!
//! A scheduler that reaches a run within `grace` of its time fires it, late or not, and then
//! moves on to the next run (so a brief stall loses nothing). A scheduler that finds itself
//! further behind than that concludes that the runs up to now came due while nothing could
//! fire them (the operator was down, a failover was in progress), and `misfirePolicy` decides:
//! - `Skip`: none of them fire; all are counted as missed;
//! - `FireOnce`: the most recent one fires (one catch-up job), the older ones are counted as
//!   missed.
//!
//! `startingDeadlineSeconds` caps lateness on top of that: a run later than the deadline never
//! fires (it is counted as missed), whatever the policy.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Runs missed while nothing could fire them: dropped (`Skip`) or one catch-up run (`FireOnce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MisfirePolicy {
    Skip,
    FireOnce,
}

use super::cron::CronSchedule;

/// How late a scheduler may reach a run and still fire it as usual.
pub const DEFAULT_MISFIRE_GRACE: Duration = Duration::from_secs(5);

/// Missed runs are counted one by one up to this many (an every-second schedule down for a
/// day); beyond it the count saturates so that a long outage cannot stall the scheduler.
pub const MAX_COUNTED_MISSES: u64 = 100_000;

/// The knobs of a schedule that govern late runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MisfireRules {
    pub policy: MisfirePolicy,
    pub starting_deadline: Option<Duration>,
    pub grace: Duration,
}

impl Default for MisfireRules {
    fn default() -> Self {
        MisfireRules {
            policy: MisfirePolicy::FireOnce,
            starting_deadline: None,
            grace: DEFAULT_MISFIRE_GRACE,
        }
    }
}

/// What a scheduler should do now about a schedule whose next run is `due`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The scheduled time of the run to fire now, if any.
    pub fire: Option<Timestamp>,
    /// Runs that will never fire.
    pub missed: u64,
    /// The next run to wait for (`None`: the expression never fires again).
    pub next: Option<Timestamp>,
}

/// Decides, for a schedule whose earliest unfired run is `due`, what happens at `now`.
pub fn decide(
    cron: &CronSchedule,
    tz: &TimeZone,
    due: Timestamp,
    now: Timestamp,
    rules: MisfireRules,
) -> Decision {
    if now < due {
        return Decision {
            fire: None,
            missed: 0,
            next: Some(due),
        };
    }
    let grace = match rules.starting_deadline {
        Some(deadline) => rules.grace.min(deadline),
        None => rules.grace,
    };
    if lateness(due, now) <= grace {
        return Decision {
            fire: Some(due),
            missed: 0,
            next: cron.next_after(tz, due),
        };
    }
    let latest = last_run_at_or_before(cron, tz, due, now);
    let older = count_runs(cron, tz, due, latest);
    let fire_latest = match rules.policy {
        MisfirePolicy::Skip => false,
        MisfirePolicy::FireOnce => rules
            .starting_deadline
            .is_none_or(|d| lateness(latest, now) <= d),
    };
    Decision {
        fire: fire_latest.then_some(latest),
        missed: if fire_latest {
            older
        } else {
            older.saturating_add(1).min(MAX_COUNTED_MISSES)
        },
        next: cron.next_after(tz, now),
    }
}

fn lateness(scheduled: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(scheduled)).unwrap_or(Duration::ZERO)
}

/// Runs in `[from, until)`, counting `from` itself, saturating at [`MAX_COUNTED_MISSES`].
fn count_runs(cron: &CronSchedule, tz: &TimeZone, from: Timestamp, until: Timestamp) -> u64 {
    if from >= until {
        return 0;
    }
    let later = cron.iter_after(tz, from).take_while(|t| *t < until);
    1 + later.take(MAX_COUNTED_MISSES as usize - 1).count() as u64
}

/// The last run at or before `now`, given that `due` (<= now) is one. Gallops backwards from
/// `now` so that a long outage costs a few searches rather than one per missed run.
fn last_run_at_or_before(
    cron: &CronSchedule,
    tz: &TimeZone,
    due: Timestamp,
    now: Timestamp,
) -> Timestamp {
    let mut back = SignedDuration::from_secs(1);
    loop {
        let from = now.checked_sub(back).unwrap_or(due);
        if from < due || back > SignedDuration::from_hours(24 * 366 * 20) {
            return walk_forward(cron, tz, due, now);
        }
        if let Some(first) = cron.next_after(tz, from).filter(|t| *t <= now) {
            return walk_forward(cron, tz, first, now);
        }
        back *= 2;
    }
}

fn walk_forward(
    cron: &CronSchedule,
    tz: &TimeZone,
    mut last: Timestamp,
    now: Timestamp,
) -> Timestamp {
    while let Some(t) = cron.next_after(tz, last).filter(|t| *t <= now) {
        last = t;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i16, mo: i8, d: i8, h: i8, m: i8, s: i8) -> Timestamp {
        jiff::civil::date(y, mo, d)
            .at(h, m, s, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
    }

    fn at(h: i8, m: i8, s: i8) -> Timestamp {
        utc(2026, 5, 4, h, m, s)
    }

    fn rules(policy: MisfirePolicy, deadline: Option<u64>) -> MisfireRules {
        MisfireRules {
            policy,
            starting_deadline: deadline.map(Duration::from_secs),
            grace: DEFAULT_MISFIRE_GRACE,
        }
    }

    fn every_minute() -> CronSchedule {
        CronSchedule::parse("* * * * *").unwrap()
    }

    #[test]
    fn not_yet_due_waits() {
        let d = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 0, 59),
            MisfireRules::default(),
        );
        assert_eq!(
            d,
            Decision {
                fire: None,
                missed: 0,
                next: Some(at(10, 1, 0))
            }
        );
    }

    #[test]
    fn on_time_and_slightly_late_runs_fire_and_advance_one_run() {
        for policy in [MisfirePolicy::Skip, MisfirePolicy::FireOnce] {
            for now in [at(10, 1, 0), at(10, 1, 5)] {
                let d = decide(
                    &every_minute(),
                    &TimeZone::UTC,
                    at(10, 1, 0),
                    now,
                    rules(policy, None),
                );
                assert_eq!(
                    d,
                    Decision {
                        fire: Some(at(10, 1, 0)),
                        missed: 0,
                        next: Some(at(10, 2, 0))
                    }
                );
            }
        }
    }

    #[test]
    fn a_stalled_scheduler_within_grace_fires_every_run_one_by_one() {
        let cron = CronSchedule::parse("* * * * * *").unwrap();
        let now = at(10, 0, 4);
        let mut due = at(10, 0, 0);
        let mut fired = vec![];
        loop {
            let d = decide(&cron, &TimeZone::UTC, due, now, MisfireRules::default());
            let Some(t) = d.fire else { break };
            assert_eq!(d.missed, 0);
            fired.push(t);
            due = d.next.unwrap();
        }
        assert_eq!(fired, (0..=4).map(|s| at(10, 0, s)).collect::<Vec<_>>());
        assert_eq!(due, at(10, 0, 5));
    }

    #[test]
    fn skip_after_downtime_fires_nothing_and_counts_every_run() {
        // Due 10:01; down until 10:10:30: runs 10:01 .. 10:10 (10 runs) were missed.
        let d = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 10, 30),
            rules(MisfirePolicy::Skip, None),
        );
        assert_eq!(
            d,
            Decision {
                fire: None,
                missed: 10,
                next: Some(at(10, 11, 0))
            }
        );
    }

    #[test]
    fn fire_once_after_downtime_fires_the_latest_run_only() {
        let d = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 10, 30),
            rules(MisfirePolicy::FireOnce, None),
        );
        assert_eq!(
            d,
            Decision {
                fire: Some(at(10, 10, 0)),
                missed: 9,
                next: Some(at(10, 11, 0))
            }
        );
    }

    #[test]
    fn fire_once_respects_the_starting_deadline() {
        // The latest run (10:10:00) is 30 s late: within a 60 s deadline, beyond a 10 s one.
        let within = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 10, 30),
            rules(MisfirePolicy::FireOnce, Some(60)),
        );
        assert_eq!(within.fire, Some(at(10, 10, 0)));
        assert_eq!(within.missed, 9);
        let beyond = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 10, 30),
            rules(MisfirePolicy::FireOnce, Some(10)),
        );
        assert_eq!(
            beyond,
            Decision {
                fire: None,
                missed: 10,
                next: Some(at(10, 11, 0))
            }
        );
    }

    #[test]
    fn a_deadline_shorter_than_grace_makes_late_runs_misfires() {
        let d = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 1, 3),
            rules(MisfirePolicy::Skip, Some(2)),
        );
        assert_eq!(
            d,
            Decision {
                fire: None,
                missed: 1,
                next: Some(at(10, 2, 0))
            }
        );
        let d = decide(
            &every_minute(),
            &TimeZone::UTC,
            at(10, 1, 0),
            at(10, 1, 2),
            rules(MisfirePolicy::Skip, Some(2)),
        );
        assert_eq!(d.fire, Some(at(10, 1, 0)));
    }

    #[test]
    fn a_long_outage_of_an_every_second_schedule_is_cheap_and_saturates() {
        let cron = CronSchedule::parse("* * * * * *").unwrap();
        let due = utc(2026, 1, 1, 0, 0, 0);
        let now = utc(2026, 3, 1, 0, 0, 0);
        let d = decide(
            &cron,
            &TimeZone::UTC,
            due,
            now,
            rules(MisfirePolicy::FireOnce, None),
        );
        assert_eq!(d.fire, Some(now));
        assert_eq!(d.missed, MAX_COUNTED_MISSES);
        assert_eq!(d.next, Some(now + SignedDuration::from_secs(1)));
    }

    #[test]
    fn sparse_schedules_find_the_latest_run_across_months() {
        let cron = CronSchedule::parse("0 9 1 * *").unwrap();
        let due = utc(2026, 1, 1, 9, 0, 0);
        let now = utc(2026, 6, 15, 0, 0, 0);
        let d = decide(
            &cron,
            &TimeZone::UTC,
            due,
            now,
            rules(MisfirePolicy::FireOnce, None),
        );
        assert_eq!(d.fire, Some(utc(2026, 6, 1, 9, 0, 0)));
        assert_eq!(d.missed, 5, "Jan..May");
        assert_eq!(d.next, Some(utc(2026, 7, 1, 9, 0, 0)));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::schedule::parse_time_zone;

    fn runs_in(cron: &CronSchedule, tz: &TimeZone, from: Timestamp, to: Timestamp) -> u64 {
        1 + cron
            .iter_after(tz, from)
            .take_while(|t| *t <= to)
            .take(MAX_COUNTED_MISSES as usize)
            .count() as u64
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Every run from `due` to `now` is accounted for exactly once: fired now, counted as
        /// missed, or (when the scheduler is merely late) left for the next decision; nothing
        /// at or before a fired run is ever armed again.
        #[test]
        fn every_due_run_is_fired_missed_or_still_armed(
            expr in proptest::sample::select(&["*/10 * * * * *", "*/7 * * * *", "0 */2 * * *", "30 9 * * MON-FRI", "0 0 1 * *"][..]),
            zone in proptest::sample::select(&["UTC", "Europe/Berlin", "Australia/Lord_Howe"][..]),
            start in 1_767_225_600i64..1_798_761_600i64,
            behind_ms in prop_oneof![0i64..20_000, 0i64..100_000_000],
            skip in any::<bool>(),
            deadline in proptest::option::of(0u64..100_000),
            grace_ms in 0u64..20_000,
        ) {
            let cron = CronSchedule::parse(expr).unwrap();
            let zone = &parse_time_zone(zone).unwrap();
            let due = cron.next_after(zone, Timestamp::from_second(start).unwrap()).unwrap();
            let now = due + SignedDuration::from_millis(behind_ms);
            let rules = MisfireRules {
                policy: if skip { MisfirePolicy::Skip } else { MisfirePolicy::FireOnce },
                starting_deadline: deadline.map(Duration::from_secs),
                grace: Duration::from_millis(grace_ms),
            };
            let d = decide(&cron, zone, due, now, rules);
            let next = d.next.expect("these expressions always fire again");
            if let Some(f) = d.fire {
                prop_assert!(f >= due && f <= now);
                prop_assert!(next > f);
                if skip { prop_assert_eq!(f, due, "Skip only fires on-time runs"); }
            }
            // Runs in [due, next) are decided now; the rest wait for `next`.
            let decided = runs_in(&cron, zone, due, next - SignedDuration::from_millis(1));
            let fired = d.fire.is_some() as u64;
            if decided < MAX_COUNTED_MISSES {
                prop_assert_eq!(fired + d.missed, decided, "{:?}", d);
            }
            if next <= now {
                prop_assert_eq!(d.fire, Some(due), "catching up run by run");
                prop_assert_eq!(d.missed, 0);
            }
        }
    }
}

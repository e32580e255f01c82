//! Next-fire tables across daylight-saving transitions, and a brute-force cross-check.

use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The first `n` fire times after `from`, as RFC 3339 UTC strings.
fn fires(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    let cron = CronSchedule::parse(expr).unwrap();
    let tz = parse_time_zone(zone).unwrap();
    cron.iter_after(&tz, utc(from))
        .take(n)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn next_fire_table() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &[&str])] = &[
        // Berlin, spring forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist.
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
            &["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]),
        // ... an hourly job loses the hour that does not exist but keeps firing every UTC hour.
        ("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z",
            &["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]),
        // Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, fires once (CEST).
        ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        // ... and the repeated 02:00 hour does not fire a second time for an hourly job.
        ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
            &["2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"]),
        // ... nor when asked from inside the second 02:00 hour.
        ("30 2 * * *", "Europe/Berlin", "2026-10-25T01:00:00Z",
            &["2026-10-26T01:30:00Z"]),
        // New York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT.
        ("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z",
            &["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"]),
        ("0 3 * * *", "America/New_York", "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"]),
        // New York, fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 fires once, in EDT.
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        ("*/30 * * * *", "America/New_York", "2026-11-01T05:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"]),
        // Lord Howe: 30-minute DST. 2026-10-04 02:00 +10:30 -> 02:30 +11:00 (02:00-02:29 skipped).
        ("*/30 * * * *", "Australia/Lord_Howe", "2026-10-03T14:45:00Z",
            &["2026-10-03T15:00:00Z", "2026-10-03T15:30:00Z", "2026-10-03T16:00:00Z"]),
        ("15 2 * * *", "Australia/Lord_Howe", "2026-10-02T00:00:00Z",
            &["2026-10-02T15:45:00Z", "2026-10-04T15:15:00Z"]),
        // 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:30-01:59 repeats and fires once.
        ("*/30 * * * *", "Australia/Lord_Howe", "2026-04-04T13:45:00Z",
            &["2026-04-04T14:00:00Z", "2026-04-04T14:30:00Z", "2026-04-04T15:30:00Z", "2026-04-04T16:00:00Z"]),
        // Feb 29 only in leap years; 2100 is not one.
        ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z",
            &["2104-02-29T00:00:00Z"]),
        // Day-of-month and day-of-week both restricted: either one matches (cron's OR rule).
        // February 2026 starts on a Sunday.
        ("0 0 1,15 * MON", "UTC", "2026-01-31T12:00:00Z",
            &["2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
              "2026-02-15T00:00:00Z", "2026-02-16T00:00:00Z", "2026-02-23T00:00:00Z",
              "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"]),
        // ... only one restricted: only that one counts.
        ("0 0 * * MON", "UTC", "2026-01-31T12:00:00Z",
            &["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]),
        ("0 0 1,15 * *", "UTC", "2026-01-31T12:00:00Z",
            &["2026-02-01T00:00:00Z", "2026-02-15T00:00:00Z"]),
        // */7 minutes restarts at :00 each hour.
        ("*/7 * * * *", "UTC", "2026-05-04T10:50:00Z",
            &["2026-05-04T10:56:00Z", "2026-05-04T11:00:00Z", "2026-05-04T11:07:00Z", "2026-05-04T11:14:00Z"]),
        // Seconds field.
        ("*/20 * * * * *", "UTC", "2026-05-04T10:00:50Z",
            &["2026-05-04T10:01:00Z", "2026-05-04T10:01:20Z", "2026-05-04T10:01:40Z"]),
        // Strictly after: an instant on a fire time does not return itself.
        ("0 * * * *", "UTC", "2026-05-04T10:00:00Z",
            &["2026-05-04T11:00:00Z"]),
        // Macros, year rollover, 31st only in long months.
        ("@yearly", "UTC", "2026-12-31T23:59:59Z", &["2027-01-01T00:00:00Z"]),
        ("@weekly", "Asia/Kolkata", "2026-05-04T00:00:00Z", &["2026-05-09T18:30:00Z"]),
        ("0 0 31 * *", "UTC", "2026-04-01T00:00:00Z",
            &["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"]),
        ("0 12 * JAN,jul SAT", "UTC", "2026-06-30T00:00:00Z",
            &["2026-07-04T12:00:00Z", "2026-07-11T12:00:00Z"]),
    ];
    for (expr, zone, from, want) in table {
        assert_eq!(
            fires(expr, zone, from, want.len()),
            *want,
            "{expr:?} in {zone} after {from}"
        );
    }
}

#[test]
fn sub_second_instants_are_handled() {
    let cron = CronSchedule::parse("* * * * * *").unwrap();
    let t = utc("2026-05-04T10:00:00.999Z");
    assert_eq!(
        cron.next_after(&TimeZone::UTC, t),
        Some(utc("2026-05-04T10:00:01Z"))
    );
}

#[test]
fn the_end_of_time_is_none_not_a_panic() {
    let cron = CronSchedule::parse("0 0 29 2 MON").unwrap();
    let end = Timestamp::MAX;
    assert_eq!(cron.next_after(&TimeZone::UTC, end), None);
}

// --- brute force cross-check -------------------------------------------------------------

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
];

/// The reference: walk every minute and keep the first one whose wall-clock time matches and
/// is that wall-clock time's first occurrence.
fn brute_next(
    cron: &CronSchedule,
    tz: &TimeZone,
    after: Timestamp,
    limit: Timestamp,
) -> Option<Timestamp> {
    let mut t = after.duration_trunc_minute() + SignedDuration::from_mins(1);
    while t <= limit {
        let local = tz.to_datetime(t);
        let instants = tz.to_ambiguous_timestamp(local);
        let first = match instants.offset() {
            AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
                instants.earlier().ok() == Some(t)
            }
            AmbiguousOffset::Gap { .. } => false,
        };
        if first && cron.matches_local(local) {
            return Some(t);
        }
        t += SignedDuration::from_mins(1);
    }
    None
}

trait TruncMinute {
    fn duration_trunc_minute(self) -> Self;
}

impl TruncMinute for Timestamp {
    fn duration_trunc_minute(self) -> Self {
        let secs = self.as_second().div_euclid(60) * 60;
        Timestamp::from_second(secs).unwrap()
    }
}

fn field(choices: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(choices)
}

fn expression() -> impl Strategy<Value = String> {
    (
        field(&["*", "*/7", "0", "30", "0,15,45", "10-20/5", "59"]),
        field(&["*", "0-3", "2", "*/5", "1,2,3", "23"]),
        field(&["*", "1", "13", "29", "31", "1-7", "*/10"]),
        field(&["*", "*", "3,10", "2", "11-12"]),
        field(&["*", "*", "0", "MON-FRI", "SAT,SUN", "5"]),
    )
        .prop_map(|(m, h, dom, mon, dow)| format!("{m} {h} {dom} {mon} {dow}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Within a 3-day window the fast search and the minute-by-minute walk agree exactly.
    #[test]
    fn next_after_agrees_with_brute_force(
        expr in expression(),
        zone in proptest::sample::select(ZONES),
        // 2026-01-01 .. 2028-12-31, concentrated enough to cross DST transitions often.
        secs in 1_767_225_600i64..1_861_920_000i64,
    ) {
        let Ok(cron) = CronSchedule::parse(&expr) else { return Ok(()) };
        let tz = parse_time_zone(zone).unwrap();
        let after = Timestamp::from_second(secs).unwrap();
        let limit = after + SignedDuration::from_hours(72);
        let fast = cron.next_after(&tz, after);
        match brute_next(&cron, &tz, after, limit) {
            Some(want) => prop_assert_eq!(fast, Some(want), "{} in {}", expr, zone),
            None => prop_assert!(fast.is_none_or(|t| t > limit), "{} in {}: {:?}", expr, zone, fast),
        }
    }

    /// Fire times strictly increase and each wall-clock time fires at most once.
    #[test]
    fn fire_times_increase_and_never_repeat_a_wall_clock_time(
        expr in expression(),
        zone in proptest::sample::select(ZONES),
        secs in 1_767_225_600i64..1_861_920_000i64,
    ) {
        let Ok(cron) = CronSchedule::parse(&expr) else { return Ok(()) };
        let tz = parse_time_zone(zone).unwrap();
        let after = Timestamp::from_second(secs).unwrap();
        let times: Vec<_> = cron.iter_after(&tz, after).take(50).collect();
        let mut seen = std::collections::HashSet::new();
        let mut prev = after;
        for t in times {
            prop_assert!(t > prev);
            prop_assert!(cron.matches_local(tz.to_datetime(t)));
            prop_assert!(seen.insert(tz.to_datetime(t)), "{} repeated", t);
            prev = t;
        }
    }

    /// Parsing never panics, and every rejection names a problem in one line.
    #[test]
    fn parse_never_panics(expr in "[0-9A-Za-z*/,?@ -]{0,30}") {
        if let Err(e) = CronSchedule::parse(&expr) {
            let msg = e.to_string();
            prop_assert!(!msg.is_empty() && !msg.contains('\n'));
        }
    }
}

//! Next fire times of a cron expression in a time zone.
//!
//! The expression is matched against local wall-clock times (what a person in that zone reads
//! on a clock), and each matching wall-clock time is then mapped to an instant:
//! - a wall-clock time skipped by a daylight-saving jump (02:30 on a spring-forward night in
//!   Berlin) does not exist, so it does not fire;
//! - a wall-clock time that occurs twice (01:30 on a fall-back night in New York) fires once,
//!   at its first occurrence.
//!
//! Mapping with the earliest offset keeps instants increasing with wall-clock time, so the
//! first matching candidate whose instant lies after the starting point is the answer.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::cron::CronSchedule;

/// How many years ahead a search may look: enough for Feb 29 across a skipped leap year (2100).
const SEARCH_YEARS: i32 = 9;

impl CronSchedule {
    /// The first fire time strictly after `after`, evaluated in `tz`. `None` only when no fire
    /// time exists in the next nine years (or before the last representable date, 9999-12-31).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let local = tz.to_datetime(after);
        // Every candidate at or before `local` maps to an instant at or before `after`.
        let mut from = local
            .with()
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(SignedDuration::from_secs(1))
            .ok()?;
        let last_year = i32::from(from.year()).saturating_add(SEARCH_YEARS);
        loop {
            let candidate = self.next_local_match(from, last_year)?;
            let instants = tz.to_ambiguous_timestamp(candidate);
            // A skipped wall-clock time does not fire; a repeated one fires at its first
            // occurrence.
            if !matches!(instants.offset(), AmbiguousOffset::Gap { .. })
                && let Ok(t) = instants.earlier()
                && t > after
            {
                return Some(t);
            }
            from = candidate.checked_add(SignedDuration::from_secs(1)).ok()?;
        }
    }

    /// The fire times strictly after `after`, in order.
    pub fn iter_after<'a>(
        &'a self,
        tz: &'a TimeZone,
        after: Timestamp,
    ) -> impl Iterator<Item = Timestamp> + 'a {
        std::iter::successors(self.next_after(tz, after), move |t| self.next_after(tz, *t))
    }

    /// Whether a wall-clock time matches every field (day fields under cron's OR rule).
    pub fn matches_local(&self, t: DateTime) -> bool {
        bit(self.seconds, t.second())
            && bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, t.month())
            && self.day_matches(t.date())
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = bit(self.days_of_month, date.day());
        let dow = bit(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.days_or { dom || dow } else { dom && dow }
    }

    /// The first wall-clock time at or after `from` that matches, skipping whole months, days,
    /// hours and minutes that cannot match.
    fn next_local_match(&self, from: DateTime, last_year: i32) -> Option<DateTime> {
        let mut date = from.date();
        let (mut h, mut m, mut s) = (from.hour(), from.minute(), from.second());
        loop {
            if i32::from(date.year()) > last_year {
                return None;
            }
            if !bit(self.months, date.month()) {
                date = first_of_next_month(date)?;
                (h, m, s) = (0, 0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.tomorrow().ok()?;
                (h, m, s) = (0, 0, 0);
                continue;
            }
            match next_bit(self.hours, h, 23) {
                None => {
                    date = date.tomorrow().ok()?;
                    (h, m, s) = (0, 0, 0);
                    continue;
                }
                Some(nh) if nh != h => (h, m, s) = (nh, 0, 0),
                Some(_) => {}
            }
            match next_bit(self.minutes, m, 59) {
                None => {
                    (m, s) = (0, 0);
                    h += 1;
                    if h > 23 {
                        date = date.tomorrow().ok()?;
                        h = 0;
                    }
                    continue;
                }
                Some(nm) if nm != m => (m, s) = (nm, 0),
                Some(_) => {}
            }
            match next_bit(self.seconds, s, 59) {
                None => {
                    s = 0;
                    m += 1;
                    if m > 59 {
                        m = 0;
                        h += 1;
                        if h > 23 {
                            date = date.tomorrow().ok()?;
                            h = 0;
                        }
                    }
                    continue;
                }
                Some(ns) => s = ns,
            }
            return Some(date.to_datetime(Time::new(h, m, s, 0).ok()?));
        }
    }
}

/// Whether `v` (a wall-clock field, never negative) is in `set`.
fn bit(set: u64, v: i8) -> bool {
    set & (1 << v) != 0
}

/// The smallest value `>= from` and `<= max` in `set`.
fn next_bit(set: u64, from: i8, max: i8) -> Option<i8> {
    let rest = set >> from;
    if rest == 0 {
        return None;
    }
    let v = from + rest.trailing_zeros() as i8;
    (v <= max).then_some(v)
}

fn first_of_next_month(date: Date) -> Option<Date> {
    let (y, m) = if date.month() == 12 {
        (date.year().checked_add(1)?, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    Date::new(y, m, 1).ok()
}

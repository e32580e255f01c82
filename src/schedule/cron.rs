//! Parsing cron expressions into one set of allowed values per field.
//!
//! Written by hand rather than taken from a crate because the matcher must run over local
//! wall-clock candidates (see `next.rs`) and the error messages must name the bad field; both
//! are small once the expression is a handful of bitsets.

use std::fmt;

/// One field of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    /// The values a user may write (day-of-week accepts 7 as a second Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// The upper end of `*` and of an open `N/step` (6, not 7, so Sunday is not doubled).
    fn star_max(self) -> u32 {
        match self {
            Field::DayOfWeek => 6,
            _ => self.bounds().1,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            Field::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }

    /// The first value a name stands for (JAN = 1, SUN = 0).
    fn name_base(self) -> u32 {
        match self {
            Field::Month => 1,
            _ => 0,
        }
    }

    fn allowed(self) -> String {
        let (lo, hi) = self.bounds();
        match self {
            Field::Month => format!("{lo}-{hi} or JAN-DEC"),
            Field::DayOfWeek => format!("{lo}-{hi} or SUN-SAT (0 and 7 are Sunday)"),
            _ => format!("{lo}-{hi}"),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// Why a cron expression was rejected. The message names the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron expression is empty")]
    Empty,
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading \
         second field), found {0}"
    )]
    FieldCount(usize),
    #[error(
        "unknown macro {0:?}; allowed: @yearly, @annually, @monthly, @weekly, @daily, \
         @midnight, @hourly"
    )]
    UnknownMacro(String),
    #[error("{field} field: {problem}")]
    Field { field: Field, problem: String },
}

impl CronError {
    fn field(field: Field, problem: impl Into<String>) -> Self {
        CronError::Field {
            field,
            problem: problem.into(),
        }
    }

    /// The field at fault, if the error is about one field.
    pub fn bad_field(&self) -> Option<Field> {
        match self {
            CronError::Field { field, .. } => Some(*field),
            _ => None,
        }
    }
}

/// A parsed cron expression: bit `v` of a set is on when value `v` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    source: String,
    pub(super) seconds: u64,
    pub(super) minutes: u64,
    pub(super) hours: u64,
    pub(super) days_of_month: u64,
    pub(super) months: u64,
    pub(super) days_of_week: u64,
    /// Cron's rule: when both day fields are restricted a day matches if EITHER matches;
    /// when one is `*` only the other one counts.
    pub(super) days_or: bool,
}

impl CronSchedule {
    /// Parses 5 fields (`minute hour day-of-month month day-of-week`), 6 fields (a leading
    /// `second`), or a macro. Fields take `*`, `?` (day fields), values, names (`JAN`, `MON`),
    /// ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`, and comma lists of those.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        let expanded = match trimmed.strip_prefix('@') {
            Some(name) => {
                expand_macro(name).ok_or_else(|| CronError::UnknownMacro(trimmed.into()))?
            }
            None => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount(n)),
        };
        let (seconds, _) = parse_field(Field::Second, second)?;
        let (minutes, _) = parse_field(Field::Minute, rest[0])?;
        let (hours, _) = parse_field(Field::Hour, rest[1])?;
        let (days_of_month, dom_star) = parse_field(Field::DayOfMonth, rest[2])?;
        let (months, _) = parse_field(Field::Month, rest[3])?;
        let (mut days_of_week, dow_star) = parse_field(Field::DayOfWeek, rest[4])?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let schedule = CronSchedule {
            source: trimmed.to_string(),
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            days_or: !dom_star && !dow_star,
        };
        // With the day-of-week unrestricted, "30 of February" would never fire: say so now
        // rather than let the schedule silently never run.
        if dow_star && !schedule.some_month_has_a_selected_day() {
            return Err(CronError::field(
                Field::DayOfMonth,
                format!(
                    "{:?} never occurs in the selected months {:?}",
                    rest[2], rest[3]
                ),
            ));
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    fn some_month_has_a_selected_day(&self) -> bool {
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|m| {
            self.months & (1 << m) != 0
                && (1..=LONGEST[m as usize - 1]).any(|d| self.days_of_month & (1 << d) != 0)
        })
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for CronSchedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

fn expand_macro(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses one field into a bitset; the flag says whether it was unrestricted (`*`, `?`, `*/1`),
/// which is what the day-of-month / day-of-week OR rule looks at (as in the Kubernetes CronJob).
fn parse_field(field: Field, text: &str) -> Result<(u64, bool), CronError> {
    let is_day = matches!(field, Field::DayOfMonth | Field::DayOfWeek);
    let star = matches!(text, "*" | "*/1") || (is_day && matches!(text, "?" | "?/1"));
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(CronError::field(
                field,
                format!("empty item in list {text:?}"),
            ));
        }
        bits |= parse_item(field, item, is_day)?;
    }
    Ok((bits, star))
}

fn parse_item(field: Field, item: &str, is_day: bool) -> Result<u64, CronError> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, step)?)),
        None => (item, None),
    };
    let (lo, hi) = if range == "*" || (range == "?" && is_day) {
        (field.bounds().0, field.star_max())
    } else if range == "?" {
        return Err(CronError::field(
            field,
            "\"?\" is only allowed in the day-of-month and day-of-week fields",
        ));
    } else if let Some((a, b)) = range.split_once('-') {
        if a.is_empty() || b.is_empty() {
            return Err(CronError::field(
                field,
                format!("{range:?} is not a range; write it as start-end, e.g. 1-5"),
            ));
        }
        let (lo, hi) = (value(field, a)?, value(field, b)?);
        if lo > hi {
            return Err(CronError::field(
                field,
                format!("range {range:?} is backwards: its start must not exceed its end"),
            ));
        }
        (lo, hi)
    } else {
        let v = value(field, range)?;
        // `a/n` means "from a to the end of the field, every n".
        (
            v,
            if step.is_some() {
                field.star_max().max(v)
            } else {
                v
            },
        )
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

fn parse_step(field: Field, text: &str) -> Result<u32, CronError> {
    match text.parse::<u32>() {
        Ok(0) => Err(CronError::field(
            field,
            "step 0 is not allowed; a step must be at least 1",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(CronError::field(
            field,
            format!("step {text:?} is not a positive whole number"),
        )),
    }
}

fn value(field: Field, text: &str) -> Result<u32, CronError> {
    let (lo, hi) = field.bounds();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(CronError::field(
                field,
                format!("{text} is out of range {}", field.allowed()),
            )),
        };
    }
    let upper = text.to_ascii_uppercase();
    match field.names().iter().position(|n| *n == upper) {
        Some(i) => Ok(i as u32 + field.name_base()),
        None => Err(CronError::field(
            field,
            format!(
                "{text:?} is not a number or name; allowed: {}",
                field.allowed()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(values: &[u32]) -> u64 {
        values.iter().fold(0, |b, v| b | 1 << v)
    }

    #[test]
    fn five_fields_fire_on_second_zero() {
        let c = CronSchedule::parse("*/15 9-17 * * MON-FRI").unwrap();
        assert_eq!(c.seconds, bits(&[0]));
        assert_eq!(c.minutes, bits(&[0, 15, 30, 45]));
        assert_eq!(c.hours, bits(&(9..=17).collect::<Vec<_>>()));
        assert_eq!(c.days_of_week, bits(&[1, 2, 3, 4, 5]));
        assert!(!c.days_or);
    }

    #[test]
    fn six_fields_lead_with_seconds() {
        let c = CronSchedule::parse("5,10 * * * * *").unwrap();
        assert_eq!(c.seconds, bits(&[5, 10]));
        assert_eq!(c.minutes, u64::MAX >> 4);
    }

    #[test]
    fn names_steps_and_lists() {
        let c = CronSchedule::parse("0 0 1/10 jan,Mar-MAY,dec sun,7,6").unwrap();
        assert_eq!(c.days_of_month, bits(&[1, 11, 21, 31]));
        assert_eq!(c.months, bits(&[1, 3, 4, 5, 12]));
        assert_eq!(c.days_of_week, bits(&[0, 6]), "7 folds into Sunday");
        assert!(c.days_or, "both day fields restricted");
        let c = CronSchedule::parse("10-40/15 0 * * 5-7").unwrap();
        assert_eq!(c.minutes, bits(&[10, 25, 40]));
        assert_eq!(c.days_of_week, bits(&[0, 5, 6]));
        let c = CronSchedule::parse("0 0 * * */2").unwrap();
        assert_eq!(c.days_of_week, bits(&[0, 2, 4, 6]), "*/2 does not reach 7");
    }

    #[test]
    fn macros_expand() {
        let cases = [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@HOURLY", "0 * * * *"),
        ];
        for (mac, expr) in cases {
            let (a, b) = (
                CronSchedule::parse(mac).unwrap(),
                CronSchedule::parse(expr).unwrap(),
            );
            assert_eq!(
                (a.minutes, a.hours, a.days_of_month),
                (b.minutes, b.hours, b.days_of_month)
            );
            assert_eq!(
                (a.months, a.days_of_week, a.days_or),
                (b.months, b.days_of_week, b.days_or)
            );
            assert_eq!(a.source(), mac);
        }
    }

    #[test]
    fn question_mark_and_star_leave_the_other_day_field_in_charge() {
        for expr in ["0 0 ? * MON", "0 0 * * MON", "0 0 */1 * MON"] {
            assert!(!CronSchedule::parse(expr).unwrap().days_or, "{expr}");
        }
        assert!(CronSchedule::parse("0 0 */2 * MON").unwrap().days_or);
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("61 * * * *", "minute field: 61 is out of range 0-59"),
            ("* 24 * * *", "hour field: 24 is out of range 0-23"),
            ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
            ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
            (
                "* * * 13 *",
                "month field: 13 is out of range 1-12 or JAN-DEC",
            ),
            (
                "* * * * 8",
                "day-of-week field: 8 is out of range 0-7 or SUN-SAT (0 and 7 are Sunday)",
            ),
            ("60 * * * * *", "second field: 60 is out of range 0-59"),
            (
                "* * * FOO *",
                "month field: \"FOO\" is not a number or name; allowed: 1-12 or JAN-DEC",
            ),
            (
                "* * * * MONDAY",
                "day-of-week field: \"MONDAY\" is not a number or name; allowed: 0-7 or SUN-SAT (0 and 7 are Sunday)",
            ),
            (
                "*/0 * * * *",
                "minute field: step 0 is not allowed; a step must be at least 1",
            ),
            (
                "*/x * * * *",
                "minute field: step \"x\" is not a positive whole number",
            ),
            (
                "30-10 * * * *",
                "minute field: range \"30-10\" is backwards: its start must not exceed its end",
            ),
            (
                "-5 * * * *",
                "minute field: \"-5\" is not a range; write it as start-end, e.g. 1-5",
            ),
            ("1,,2 * * * *", "minute field: empty item in list \"1,,2\""),
            (
                "? * * * *",
                "minute field: \"?\" is only allowed in the day-of-month and day-of-week fields",
            ),
            (
                "* * 30 2 *",
                "day-of-month field: \"30\" never occurs in the selected months \"2\"",
            ),
            (
                "0 0 31 4,6,9,11 *",
                "day-of-month field: \"31\" never occurs in the selected months \"4,6,9,11\"",
            ),
            ("", "cron expression is empty"),
            ("   ", "cron expression is empty"),
            (
                "* * * *",
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading second field), found 4",
            ),
            (
                "* * * * * * *",
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading second field), found 7",
            ),
            (
                "@every 5m",
                "unknown macro \"@every 5m\"; allowed: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly",
            ),
            (
                "1.5 * * * *",
                "minute field: \"1.5\" is not a number or name; allowed: 0-59",
            ),
            (
                "99999999999 * * * *",
                "minute field: 99999999999 is out of range 0-59",
            ),
        ];
        for (expr, message) in cases {
            let err = CronSchedule::parse(expr).expect_err(expr);
            assert_eq!(err.to_string(), *message, "for {expr:?}");
        }
    }

    #[test]
    fn feb_29_and_day_of_week_with_impossible_day_are_accepted() {
        CronSchedule::parse("0 0 29 2 *").unwrap();
        // With a restricted day-of-week the OR rule makes it fire on Mondays of February.
        CronSchedule::parse("0 0 30 2 MON").unwrap();
    }
}

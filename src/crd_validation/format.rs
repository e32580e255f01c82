//! The `format` keyword: the formats the API server checks for custom resources (a subset of
//! go-openapi's strfmt registry). Unknown formats are accepted, as the API server does.

use std::{net::IpAddr, sync::OnceLock};

use regex::Regex;
use serde_json::Value;

/// Whether `value` satisfies `format`. Formats apply only to values of their type (an integer
/// format on a string is ignored, as in the API server).
pub(super) fn conforms(format: &str, value: &Value) -> bool {
    match value {
        Value::Number(n) => match format {
            "int32" => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            "int64" => n.is_i64(),
            _ => true,
        },
        Value::String(s) => string_conforms(format, s),
        _ => true,
    }
}

fn string_conforms(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => is_date_time(s),
        "date" => is_date(s),
        "byte" => is_base64(s),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => matches(
            &UUID,
            r"^(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            s,
        ),
        "ipv4" => s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4()),
        "ipv6" => s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()),
        "cidr" => is_cidr(s),
        "mac" => matches(&MAC, r"^(?i)([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$", s),
        "hostname" => {
            s.len() <= 253
                && matches(
                    &HOSTNAME,
                    r"^(?i)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$",
                    s,
                )
        }
        _ => true,
    }
}

/// RFC 3339: `T`, `t` or a space between date and time, seconds required (`60` for a leap
/// second), any number of fraction digits, `Z`/`z` or an offset under 24 hours (its sign may be
/// U+2212). The grammar is checked here and the calendar by jiff: jiff's own parsers take more
/// (omitted seconds, `[annotations]`, basic format) and its `Timestamp` stops short of the end
/// of year 9999.
fn is_date_time(s: &str) -> bool {
    let pattern = r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|[+\-\x{2212}]([0-9]{2}):([0-9]{2}))$";
    let Some(c) = captures(&DATE_TIME, pattern, s) else {
        return false;
    };
    let n = |i: usize| {
        c.get(i)
            .map_or(0, |m| m.as_str().parse::<u32>().unwrap_or(u32::MAX))
    };
    calendar_date(&c[1], &c[2], &c[3])
        && n(4) < 24
        && n(5) < 60
        && n(6) <= 60
        && n(7) < 24
        && n(8) < 60
}

/// `YYYY-MM-DD`, ten characters, read as `%Y-%m-%d`: a number may follow spaces, month and day
/// may have one digit, and a signed year any number of digits (`+20243-1-1`).
fn is_date(s: &str) -> bool {
    let pattern = r"^\s*([0-9]{1,4}|[+-][0-9]+)-\s*([0-9]{1,2})-\s*([0-9]{1,2})$";
    s.len() == 10
        && captures(&DATE, pattern, s)
            .is_some_and(|c| calendar_date(c[1].trim_start_matches('+'), &c[2], &c[3]))
}

/// Whether the day exists in the proleptic Gregorian calendar. A year outside jiff's range is
/// checked as the year with the same place in the 400-year leap cycle.
fn calendar_date(year: &str, month: &str, day: &str) -> bool {
    let (Ok(year), Ok(month), Ok(day)) = (year.parse::<i64>(), month.parse(), day.parse()) else {
        return false;
    };
    let year = i16::try_from(year)
        .ok()
        .filter(|y| (-9999..=9999).contains(y))
        .unwrap_or(2000 + year.rem_euclid(400) as i16);
    jiff::civil::Date::new(year, month, day).is_ok()
}

static DATE_TIME: OnceLock<Regex> = OnceLock::new();
static DATE: OnceLock<Regex> = OnceLock::new();
static UUID: OnceLock<Regex> = OnceLock::new();
static MAC: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();

fn matches(cell: &'static OnceLock<Regex>, pattern: &str, s: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in format pattern compiles"))
        .is_match(s)
}

fn captures<'s>(
    cell: &'static OnceLock<Regex>,
    pattern: &str,
    s: &'s str,
) -> Option<regex::Captures<'s>> {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in format pattern compiles"))
        .captures(s)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

/// Standard base64 with padding, as Go's `base64.StdEncoding`.
fn is_base64(s: &str) -> bool {
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return false;
    }
    body.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_formats_check_the_range() {
        assert!(conforms("int32", &json!(2147483647)));
        assert!(!conforms("int32", &json!(2147483648_i64)));
        assert!(!conforms("int32", &json!(-2147483649_i64)));
        assert!(conforms("int64", &json!(i64::MIN)));
        assert!(!conforms("int64", &json!(u64::MAX)));
        // A format of another type does not apply.
        assert!(conforms("int32", &json!("not a number")));
    }

    #[test]
    fn string_formats() {
        let good = [
            ("date-time", "2024-02-29T12:00:00Z"),
            ("date-time", "2024-02-29T12:00:00.123+02:00"),
            ("date", "2024-02-29"),
            ("byte", "aGVsbG8="),
            ("byte", ""),
            ("uuid", "0190a3c2-7f3e-7a11-9d2e-3b1f0c9e8d7a"),
            ("ipv4", "10.0.0.1"),
            ("ipv6", "::1"),
            ("cidr", "10.0.0.0/8"),
            ("cidr", "fd00::/64"),
            ("mac", "aa:bb:cc:dd:ee:ff"),
            ("hostname", "redis.default.svc"),
            ("no-such-format", "anything"),
        ];
        for (f, s) in good {
            assert!(conforms(f, &json!(s)), "{f} should accept {s:?}");
        }
        let bad = [
            ("date-time", "yesterday"),
            ("date-time", "2024-02-30T12:00:00Z"),
            ("date", "2023-02-29"),
            ("date", "2024-2-1"),
            ("byte", "abc"),
            ("byte", "a==="),
            ("uuid", "0190a3c27f3e7a119d2e3b1f0c9e8d7a"),
            ("ipv4", "::1"),
            ("ipv6", "10.0.0.1"),
            ("cidr", "10.0.0.0/33"),
            ("cidr", "10.0.0.0"),
            ("mac", "aa:bb:cc"),
            ("hostname", "-bad-"),
        ];
        for (f, s) in bad {
            assert!(!conforms(f, &json!(s)), "{f} should reject {s:?}");
        }
    }

    /// The edges of `date-time` and `date`, accepted and refused.
    #[test]
    fn date_and_date_time_edges() {
        let good = [
            ("date-time", "2024-02-29t12:00:00z"),
            ("date-time", "2024-02-29 12:00:00Z"),
            ("date-time", "2024-02-29T23:59:60Z"),
            ("date-time", "2024-02-29T12:00:00.1234567891234Z"),
            ("date-time", "2024-02-29T12:00:00+23:59"),
            ("date-time", "2024-02-29T12:00:00-00:00"),
            ("date-time", "2024-02-29T12:00:00\u{2212}01:00"),
            ("date-time", "0000-01-01T00:00:00Z"),
            ("date-time", "9999-12-31T23:59:59Z"),
            ("date", "2024-12-31"),
            ("date", "0000-01-01"),
            ("date", "-001-01-01"),
            ("date", "+2024-2-01"),
            ("date", "+20240-2-1"),
            ("date", " 024-02-29"),
            ("date", "   1-01-01"),
        ];
        for (f, s) in good {
            assert!(conforms(f, &json!(s)), "{f} should accept {s:?}");
        }
        let bad = [
            ("date-time", "2024-02-29T12:00Z"),
            ("date-time", "2024-02-29T12:00:00"),
            ("date-time", "2024-02-29T12:00:00.Z"),
            ("date-time", "2024-02-29T24:00:00Z"),
            ("date-time", "2024-02-29T12:60:00Z"),
            ("date-time", "2024-02-29T12:00:61Z"),
            ("date-time", "2024-02-29T12:00:00+24:00"),
            ("date-time", "2024-02-29T12:00:00+02:60"),
            ("date-time", "2024-02-29T12:00:00+0200"),
            ("date-time", "2024-02-29T12:00:00+02"),
            ("date-time", "2024-02-29T12:00:00+01:00:00"),
            ("date-time", "20240229T120000Z"),
            ("date-time", "2024-02-29T12:00:00,5Z"),
            ("date-time", "2024-02-29T12:00:00Z[UTC]"),
            ("date-time", "+002024-02-29T12:00:00Z"),
            ("date-time", " 2024-02-29T12:00:00Z"),
            ("date-time", "2024-02-29T12:00:00Z "),
            ("date-time", "2024-2-29T12:00:00Z"),
            ("date-time", "\u{661}024-02-29T12:00:00Z"),
            ("date", "2024-00-01"),
            ("date", "2024-01-00"),
            ("date", "2024-13-01"),
            ("date", "2024/02/29"),
            ("date", "2024-02-29 "),
            ("date", "02024-2-01"),
            ("date", "+20243-2-29"),
            ("date", "0999-1-1"),
            ("date", "2024-02-29T00:00:00Z"),
        ];
        for (f, s) in bad {
            assert!(!conforms(f, &json!(s)), "{f} should reject {s:?}");
        }
    }
}

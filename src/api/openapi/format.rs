//! The `format` keyword: the formats the API server checks for custom resources (a subset of
//! go-openapi's strfmt registry). Unknown formats are accepted, as the API server does.

use std::{net::IpAddr, sync::OnceLock};

use regex::Regex;
use serde_json::Value;

/// Whether `value` satisfies `format`. Formats apply only to values of their type (an integer
/// format on a string is ignored, as in the API server).
pub(crate) fn conforms(format: &str, value: &Value) -> bool {
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
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10,
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

static UUID: OnceLock<Regex> = OnceLock::new();
static MAC: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();

fn matches(cell: &'static OnceLock<Regex>, pattern: &str, s: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in format pattern compiles"))
        .is_match(s)
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
}

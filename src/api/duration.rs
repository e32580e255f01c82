//! Durations written the Kubernetes way (`"30s"`, `"5m"`, `"1h30m"`, `"250ms"`), parsed once when
//! a resource is read and carried as a typed value from then on.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration as StdDuration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern the CRD schema enforces, so the API server rejects a bad duration before the
/// operator ever sees it (Go's `time.ParseDuration` grammar minus negatives and `µs`, which the
/// CEL `duration()` of the CRD's rules does not accept everywhere; `us` is the same unit).
pub const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$";

/// A non-negative duration such as `5m` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(StdDuration);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (use a number and a unit, e.g. \"30s\", \"5m\", \"1h30m\", \"250ms\")"
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(StdDuration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(StdDuration::from_millis(ms))
    }

    /// The standard-library value.
    pub const fn as_std(self) -> StdDuration {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for StdDuration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        if input == "0" {
            return Ok(Duration::default());
        }
        if input.is_empty() {
            return Err(err("empty"));
        }
        let mut rest = input;
        let mut total_ns: u128 = 0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("missing a unit"))?;
            let (number, after) = rest.split_at(num_len);
            if number.is_empty() {
                return Err(err("expected a number"));
            }
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let unit_ns: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(err("unknown unit; allowed: ns, us, ms, s, m, h")),
            };
            let (whole, frac) = match number.split_once('.') {
                Some((w, f)) if !w.is_empty() && !f.is_empty() && !f.contains('.') => (w, f),
                Some(_) => return Err(err("malformed number")),
                None => (number, ""),
            };
            let whole: u128 = whole.parse().map_err(|_| err("number too large"))?;
            let mut part = whole.checked_mul(unit_ns).ok_or_else(|| err("too large"))?;
            // Fractions are exact to the nanosecond; digits beyond that are dropped (as Go does).
            let mut scale = unit_ns;
            for digit in frac.bytes() {
                scale /= 10;
                part += u128::from(digit - b'0') * scale;
            }
            total_ns = total_ns.checked_add(part).ok_or_else(|| err("too large"))?;
            rest = after;
        }
        let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| err("too large"))?;
        Ok(Duration(StdDuration::new(
            secs,
            (total_ns % 1_000_000_000) as u32,
        )))
    }
}

impl fmt::Display for Duration {
    /// The shortest form that parses back to the same value: `1h30m`, `45s`, `1.5s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0;
        if total.is_zero() {
            return f.write_str("0s");
        }
        let nanos = total.subsec_nanos();
        let secs = total.as_secs();
        if secs == 0 {
            return if nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos.is_multiple_of(1_000) {
                write!(f, "{}us", nanos / 1_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos == 0 {
                write!(f, "{s}s")?;
            } else {
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> StdDuration {
        s.parse::<Duration>().unwrap().as_std()
    }

    #[test]
    fn parses_kubernetes_durations() {
        assert_eq!(d("30s"), StdDuration::from_secs(30));
        assert_eq!(d("5m"), StdDuration::from_secs(300));
        assert_eq!(d("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(d("250ms"), StdDuration::from_millis(250));
        assert_eq!(d("1.5s"), StdDuration::from_millis(1500));
        assert_eq!(
            d("2h45m30.5s"),
            StdDuration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
        );
        assert_eq!(d("0"), StdDuration::ZERO);
        assert_eq!(d("10us"), StdDuration::from_micros(10));
    }

    #[test]
    fn rejects_bad_durations_with_a_hint() {
        for bad in [
            "",
            "5",
            "5x",
            "-5s",
            "s",
            "1..5s",
            ".5s",
            "inf",
            "NaNs",
            "1e3s",
            "5 m",
            "99999999999999999999999h",
        ] {
            let err = bad.parse::<Duration>().unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
            assert!(err.contains("\"30s\""), "{bad}: hint missing in {err}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(ns in 0u64..(400 * 3600 * 1_000_000_000u64)) {
            let dur = Duration(StdDuration::from_nanos(ns));
            let text = dur.to_string();
            prop_assert_eq!(text.parse::<Duration>().unwrap(), dur, "{}", text);
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = s.parse::<Duration>();
        }
    }
}

//! IANA time zone names, from the tz database compiled into chrono-tz.

use chrono_tz::Tz;

/// Why a time zone name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    #[error("time zone is empty; use an IANA name such as \"UTC\" or \"Europe/Berlin\"")]
    Empty,
    #[error(
        "unknown time zone {name:?}{hint}; use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""
    )]
    Unknown { name: String, hint: String },
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`). Names are case-sensitive as in the
/// tz database; a wrong case gets a hint with the right spelling.
pub fn parse_time_zone(name: &str) -> Result<Tz, TimeZoneError> {
    if name.trim().is_empty() {
        return Err(TimeZoneError::Empty);
    }
    name.parse::<Tz>().map_err(|_| {
        let hint = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name.trim()))
            .map(|tz| format!(" (did you mean {:?}?)", tz.name()))
            .unwrap_or_default();
        TimeZoneError::Unknown {
            name: name.to_string(),
            hint,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_zones_parse() {
        for name in [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ] {
            assert_eq!(parse_time_zone(name).unwrap().name(), name);
        }
    }

    #[test]
    fn unknown_zones_are_named_in_the_error() {
        assert_eq!(
            parse_time_zone("Europe/Berln").unwrap_err().to_string(),
            "unknown time zone \"Europe/Berln\"; use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""
        );
        assert_eq!(
            parse_time_zone("europe/berlin").unwrap_err().to_string(),
            "unknown time zone \"europe/berlin\" (did you mean \"Europe/Berlin\"?); use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\""
        );
        assert_eq!(parse_time_zone(" ").unwrap_err(), TimeZoneError::Empty);
        assert!(parse_time_zone("+02:00").is_err());
    }
}

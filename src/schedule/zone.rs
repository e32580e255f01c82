//! IANA time zone names, from the tz database compiled into the binary (jiff's bundled copy):
//! a schedule fires the same whatever the host's `/usr/share/zoneinfo` holds.

use std::sync::OnceLock;

use jiff::tz::{TimeZone, TimeZoneDatabase};

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
pub fn parse_time_zone(name: &str) -> Result<TimeZone, TimeZoneError> {
    if name.trim().is_empty() {
        return Err(TimeZoneError::Empty);
    }
    let unknown = |hint: String| TimeZoneError::Unknown {
        name: name.to_string(),
        hint,
    };
    // The database matches names without regard to case; its own spelling tells them apart.
    match database().get(name.trim()) {
        Ok(tz) if tz.iana_name() == Some(name) => Ok(tz),
        Ok(tz) => Err(unknown(
            tz.iana_name()
                .map(|right| format!(" (did you mean {right:?}?)"))
                .unwrap_or_default(),
        )),
        Err(_) => Err(unknown(String::new())),
    }
}

/// The bundled tz database, opened once.
fn database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
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
            assert_eq!(parse_time_zone(name).unwrap().iana_name(), Some(name));
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

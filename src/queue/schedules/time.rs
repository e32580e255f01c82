//! The one bridge between this module's unix-ms instants and `crate::schedule`, which still
//! speaks chrono; it goes away once the cron engine takes unix-ms or jiff instants.

use chrono::{DateTime, Utc};

/// A unix-ms instant as chrono (clamped to chrono's range, which is far beyond any cron run).
pub(super) fn to_chrono(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A chrono instant as unix ms.
pub(super) fn from_chrono(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

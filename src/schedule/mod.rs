//! Cron expressions and time zones: next fire times and misfires (pure, no I/O).
//!
//! The scheduler (`queue::scheduler`), the `schedule preview` command and the Schedule
//! validation all go through this module, so a preview shows exactly what will fire.

mod cron;
mod misfire;
mod next;
mod zone;

pub use cron::{CronError, CronSchedule, Field};
pub use misfire::{
    DEFAULT_MISFIRE_GRACE, Decision, MAX_COUNTED_MISSES, MisfirePolicy, MisfireRules, decide,
};
pub use zone::{TimeZoneError, parse_time_zone};

#[cfg(test)]
mod tests;

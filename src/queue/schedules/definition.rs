//! What the scheduler needs to know about one schedule, and the checks it runs before any
//! write.

use std::time::Duration;

use jiff::tz::TimeZone;

use super::ScheduleError;
use crate::schedule::{CronSchedule, MisfirePolicy, parse_time_zone};

/// Overlap between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    /// Always fire.
    #[default]
    Allow,
    /// Skip a run while the previous run's job is unread or unacknowledged.
    Forbid,
}

impl ConcurrencyPolicy {
    /// The word stored in the schedule's hash.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
        }
    }
}

/// The word stored in the schedule's hash.
pub(super) fn misfire_str(p: MisfirePolicy) -> &'static str {
    match p {
        MisfirePolicy::Skip => "Skip",
        MisfirePolicy::FireOnce => "FireOnce",
    }
}

/// Everything the scheduler needs to know about one schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDefinition {
    /// Unique within the queue; part of the job id.
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    /// JSON text delivered as the job's `payload`.
    pub payload: String,
    /// Bumped on every change of the definition (the resource's `metadata.generation`).
    pub generation: i64,
    pub suspend: bool,
    pub misfire_policy: MisfirePolicy,
    pub concurrency_policy: ConcurrencyPolicy,
    pub starting_deadline: Option<Duration>,
}

impl ScheduleDefinition {
    /// A schedule with the defaults of the Schedule resource (UTC, `{}` payload, FireOnce,
    /// Allow, no deadline).
    pub fn new(name: impl Into<String>, cron: impl Into<String>) -> Self {
        ScheduleDefinition {
            name: name.into(),
            cron: cron.into(),
            time_zone: "UTC".into(),
            payload: "{}".into(),
            generation: 1,
            suspend: false,
            misfire_policy: MisfirePolicy::FireOnce,
            concurrency_policy: ConcurrencyPolicy::default(),
            starting_deadline: None,
        }
    }

    /// Parses the expression and zone, and checks the name and payload.
    pub fn compile(&self) -> Result<(CronSchedule, TimeZone), ScheduleError> {
        let invalid = |field, reason: String| ScheduleError::Invalid {
            name: self.name.clone(),
            field,
            reason,
        };
        if self.name.is_empty()
            || self
                .name
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(
                "metadata.name",
                "must be non-empty, without spaces or control characters".into(),
            ));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&self.payload) {
            return Err(invalid("spec.payload", format!("not valid JSON: {e}")));
        }
        let cron = CronSchedule::parse(&self.cron).map_err(|source| ScheduleError::Cron {
            name: self.name.clone(),
            source,
        })?;
        let tz = parse_time_zone(&self.time_zone).map_err(|source| ScheduleError::TimeZone {
            name: self.name.clone(),
            source,
        })?;
        Ok((cron, tz))
    }
}

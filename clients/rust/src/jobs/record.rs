//! A job's record as read from Redis (see `lua/jobs.lua` for the fields): pure parsing.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    /// In the stream, not yet handed to a worker.
    Queued,
    /// Enqueued for later (in the delayed set).
    Delayed,
    /// Held by a worker.
    Active,
    /// Failed; waiting out the backoff before its next attempt.
    Retrying,
    /// Done.
    Succeeded,
    /// Dead-lettered: a permanent failure or out of attempts.
    Dead,
    /// Cancelled before it ran to the end.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Delayed,
        JobState::Active,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended (nothing will happen to it any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job state {0:?}; use queued, delayed, active, retrying, succeeded, dead or cancelled"
)]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// One job's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job id.
    pub id: String,
    /// Its state.
    pub state: JobState,
    /// The attempt (1-based) running, waiting or last made.
    pub attempt: u32,
    /// Progress the worker last reported (JSON).
    pub progress: Option<serde_json::Value>,
    /// The result of a succeeded job (JSON), if the worker gave one.
    pub result: Option<serde_json::Value>,
    /// Why the result was not kept (too large).
    pub result_dropped: Option<String>,
    /// The last failure's text.
    pub error: Option<String>,
    /// The consumer holding the job while active.
    pub consumer: Option<String>,
    /// A cancel was requested while the job was active.
    pub cancel_requested: bool,
    /// The state was derived from the consumer group (a worker that only XACKs).
    pub derived: bool,
    /// Unix ms (Redis clock) the job was enqueued.
    pub enqueued_at_ms: Option<i64>,
    /// Unix ms the current or last attempt started.
    pub started_at_ms: Option<i64>,
    /// Unix ms the job ended.
    pub finished_at_ms: Option<i64>,
    /// Unix ms a delayed or retrying job becomes available.
    pub due_at_ms: Option<i64>,
    /// Unix ms of the last change.
    pub updated_at_ms: Option<i64>,
    /// The stream entry of a queued or active job.
    pub entry_id: Option<String>,
}

/// The record's fields could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {id}: {reason}")]
pub struct BadRecord {
    /// The job id.
    pub id: String,
    /// What is wrong.
    pub reason: String,
}

impl JobRecord {
    /// Builds a record from the hash fields of job `id`.
    pub fn from_fields(id: &str, fields: HashMap<String, String>) -> Result<Self, BadRecord> {
        let bad = |reason: String| BadRecord {
            id: id.to_string(),
            reason,
        };
        let text = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        let ms = |k: &str| text(k).and_then(|v| v.parse::<i64>().ok());
        let json = |k: &str| {
            text(k).map(|v| serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)))
        };
        let state = text("state")
            .ok_or_else(|| bad("no state".into()))?
            .parse::<JobState>()
            .map_err(|e| bad(e.to_string()))?;
        Ok(JobRecord {
            id: id.to_string(),
            state,
            attempt: text("attempt").and_then(|a| a.parse().ok()).unwrap_or(1),
            progress: json("progress"),
            result: json("result"),
            result_dropped: text("result_dropped"),
            error: text("error"),
            consumer: text("consumer"),
            cancel_requested: text("cancel_requested").as_deref() == Some("1"),
            derived: text("derived").as_deref() == Some("1"),
            enqueued_at_ms: ms("enqueued_at"),
            started_at_ms: ms("started_at"),
            finished_at_ms: ms("finished_at"),
            due_at_ms: ms("due"),
            updated_at_ms: ms("updated_at"),
            entry_id: text("entry"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn states_round_trip_and_final_ones_are_known() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>(), Ok(st));
        }
        assert!(JobState::Dead.is_final() && !JobState::Retrying.is_final());
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn record_fields_parse_with_json_values() {
        let r = JobRecord::from_fields(
            "j",
            fields(&[
                ("state", "succeeded"),
                ("attempt", "2"),
                ("result", r#"{"ok":true}"#),
                ("progress", "50"),
                ("finished_at", "1700000000000"),
                ("error", ""),
            ]),
        )
        .unwrap();
        assert_eq!(r.state, JobState::Succeeded);
        assert_eq!(r.attempt, 2);
        assert_eq!(r.result, Some(serde_json::json!({"ok": true})));
        assert_eq!(r.progress, Some(serde_json::json!(50)));
        assert_eq!(r.error, None, "empty fields read as absent");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["state"], "succeeded");
        assert_eq!(json["finishedAtMs"], 1700000000000i64);
    }

    #[test]
    fn a_record_without_state_is_rejected() {
        let err = JobRecord::from_fields("j", fields(&[("attempt", "1")])).unwrap_err();
        assert!(err.to_string().contains("no state"), "{err}");
    }
}

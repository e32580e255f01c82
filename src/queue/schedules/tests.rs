//! Unit tests of the definitions (the Redis side is covered by `tests/schedule_store.rs`).

use super::*;

#[test]
fn job_ids_are_deterministic() {
    assert_eq!(
        job_id("nightly", 1_767_225_600_000),
        "sched-nightly-1767225600000"
    );
}

#[test]
fn definitions_are_checked_before_any_write() {
    let err = |def: ScheduleDefinition| def.compile().unwrap_err().to_string();
    assert_eq!(
        err(ScheduleDefinition::new("s", "61 * * * *")),
        "schedule \"s\": spec.schedule: minute field: 61 is out of range 0-59"
    );
    let mut def = ScheduleDefinition::new("s", "* * * * *");
    def.time_zone = "Mars/Olympus".into();
    assert!(
        err(def).starts_with("schedule \"s\": spec.timeZone: unknown time zone \"Mars/Olympus\"")
    );
    let mut def = ScheduleDefinition::new("s", "* * * * *");
    def.payload = "{not json".into();
    assert!(err(def).starts_with("schedule \"s\": spec.payload: not valid JSON"));
    assert!(err(ScheduleDefinition::new("", "* * * * *")).contains("metadata.name"));
}

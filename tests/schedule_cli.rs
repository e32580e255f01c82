//! `jobqueue-operator schedule preview`, run as a user runs it: the real binary.

use std::process::{Command, Output};

fn preview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobqueue-operator"))
        .arg("schedule")
        .arg("preview")
        .args(args)
        .output()
        .expect("running jobqueue-operator")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[test]
fn json_lists_the_next_fire_times_in_utc_across_a_dst_jump() {
    let out = preview(&[
        "0 2 * * *",
        "--time-zone",
        "America/New_York",
        "--from",
        "2026-03-07T00:00:00Z",
        "-n",
        "3",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let times: Vec<String> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    // 02:00 does not exist on 2026-03-08 in New York: that day has no run.
    assert_eq!(
        times,
        [
            "2026-03-07T07:00:00Z",
            "2026-03-09T06:00:00Z",
            "2026-03-10T06:00:00Z"
        ]
    );
}

#[test]
fn text_shows_local_time_and_utc() {
    let out = preview(&[
        "@daily",
        "-z",
        "Asia/Kolkata",
        "--from",
        "2026-01-01T00:00:00Z",
        "-n",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "LOCAL (Asia/Kolkata)              UTC\n2026-01-02 00:00:00 IST (+05:30)  2026-01-01T18:30:00Z\n"
    );
}

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["0 25 * * *"],
            "error: cron expression \"0 25 * * *\": hour field: 25 is out of range 0-23\n",
        ),
        (
            &["* * * * BOB"],
            "error: cron expression \"* * * * BOB\": day-of-week field: \"BOB\" is not a number or name; allowed: 0-7 or SUN-SAT (0 and 7 are Sunday)\n",
        ),
        (
            &["@daily", "--time-zone", "Europe/Paris2"],
            "error: --time-zone: unknown time zone \"Europe/Paris2\"; use an IANA name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"\n",
        ),
    ];
    for (args, want) in cases {
        let out = preview(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(text(&out.stderr), *want, "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {}",
            text(&out.stdout)
        );
    }
}

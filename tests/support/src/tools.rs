//! Outside tools a test needs (kubectl, the Python venv's Helm library, chromium).
//!
//! A missing tool must never let a test pass silently. Under `CI=true` it fails the test
//! with a message naming the tool. Elsewhere the test returns early, and the skip is
//! recorded as a file under `target/test-skips/`, which `scripts/test` lists at the end of
//! the run (cargo hides a passing test's stderr, so a note there alone would go unseen).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory where skipped tests leave one file each: `<test>` holding the reason.
pub fn skips_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-skips")
}

/// Whether `CI=true` (or `1`) is set: then every tool must be present.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Returns whether `program --version`-style `probe` args run successfully. Under CI a
/// missing tool panics with `install` as the hint; elsewhere the skip of `test` is recorded
/// and `false` is returned, so the caller returns early.
pub fn require(test: &str, program: &str, probe: &[&str], install: &str) -> bool {
    let found = Command::new(program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let reason = format!("{program} is not installed ({install})");
    assert!(!in_ci(), "{test}: {reason}; CI must run every test");
    record_skip(test, &reason);
    false
}

/// `kubectl` on PATH, as [`require`] checks it.
pub fn require_kubectl(test: &str) -> bool {
    require(
        test,
        "kubectl",
        &["version", "--client"],
        "install kubectl to run the kubectl tests",
    )
}

/// Records that `test` was skipped, and says so on stderr too.
pub fn record_skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
    let dir = skips_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(test), format!("{reason}\n"));
    }
}

/// A chromium to drive (`CHROMIUM`, else `chromium` on PATH), as [`require`] checks it;
/// returns its full path.
pub fn require_chromium(test: &str) -> Option<String> {
    let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let found = require(
        test,
        &program,
        &["--version"],
        "apt-get install chromium, or set CHROMIUM to a chromium executable",
    );
    if !found {
        return None;
    }
    if program.contains('/') {
        return Some(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(&program))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// `node` and `npm` on PATH, as [`require`] checks them.
pub fn require_node(test: &str) -> bool {
    require(test, "node", &["--version"], "apt-get install nodejs npm")
        && require(test, "npm", &["--version"], "apt-get install npm")
}

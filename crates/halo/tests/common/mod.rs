//! Helpers shared by the namespace tests (examples_netns.rs, vrrp_netns.rs).

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::process::Command;

/// Whether a test that needs root can run; panics in CI when it cannot.
pub(crate) fn can_run(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root (network namespaces) and CI runs as root"
    );
    // The skip must be visible in the test output (the one place it shows).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED {test}: needs root for network namespaces (runs in CI)");
    }
    false
}

/// Runs a command; panics with its stderr when it fails.
pub(crate) fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `program` (an absolute path) is installed; panics in CI when it
/// is not (scripts/test installs `package`), says SKIPPED otherwise.
pub(crate) fn have(program: &str, package: &str) -> bool {
    if std::path::Path::new(program).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is missing in CI: scripts/test installs {package}"
    );
    #[allow(clippy::print_stderr, reason = "a skipped test says so")]
    {
        eprintln!("SKIPPED: {program} not installed (apt-get install {package})");
    }
    false
}

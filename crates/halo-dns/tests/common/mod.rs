//! Shared by the integration tests that drive Debian's DNS tools.

use std::path::Path;

/// Whether `program` (an absolute path) is installed. scripts/test installs
/// `package`, so in CI a missing one fails the test; elsewhere, as non-root,
/// the test is skipped and says so.
pub(crate) fn have(program: &str, package: &str) -> bool {
    if Path::new(program).exists() {
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

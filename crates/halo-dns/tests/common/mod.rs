//! Shared by the integration tests that drive Debian's DNS tools.

use std::path::Path;
use std::time::Duration;

/// Whether `program` (an absolute path) is installed. scripts/test installs
/// `package`, so in CI a missing one fails the test; elsewhere, as non-root,
/// the test is skipped and says so.
#[allow(dead_code, reason = "not every test binary drives a Debian tool")]
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

/// A site node's `[node]` and its one-server pool `app` at `app` (ip:port),
/// checked over TCP every 100 ms (rise 1, fall 1): what each node of the
/// peering tests answers for its own site.
#[allow(dead_code, reason = "not every test binary runs federations")]
pub(crate) fn site_node(site: &str, app: &str) -> String {
    format!(
        r#"
[node]
name = "{site}-1"
site = "{site}"
[[pool]]
name = "app"
  [pool.check]
  type = "tcp"
  interval = "100ms"
  timeout = "100ms"
  rise = 1
  fall = 1
  [[pool.server]]
  name = "app-0"
  address = "{app}"
"#
    )
}

/// Polls `check` every 20 ms until it is Ok; panics with its last Err once
/// `limit` has passed.
#[track_caller]
#[allow(dead_code, reason = "not every test binary runs federations")]
pub(crate) fn wait_for(limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    #[allow(
        clippy::disallowed_methods,
        reason = "real processes and sockets: a wall-clock deadline"
    )]
    let deadline = std::time::Instant::now() + limit;
    loop {
        let Err(why) = check() else { return };
        #[allow(clippy::disallowed_methods, reason = "see above")]
        let late = std::time::Instant::now() > deadline;
        assert!(!late, "{why}");
        #[allow(
            clippy::disallowed_methods,
            reason = "poll interval of a real-time condition"
        )]
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[allow(dead_code, reason = "not every test binary runs federations")]
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

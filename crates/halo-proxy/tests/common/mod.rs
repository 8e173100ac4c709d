//! What the TCP, HTTP and TLS tests share: a proxy built from config text as
//! `halo run` builds it, and the check for a tool a test needs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use halo_health::{HealthHub, Registry, ServerKey};
use halo_proxy::Proxy;

pub(crate) struct Running {
    pub(crate) proxy: Proxy,
    #[allow(dead_code, reason = "not every test file reads it")]
    pub(crate) registry: Registry,
}

impl Running {
    pub(crate) async fn start(toml: &str) -> Self {
        Self::start_as(Path::new("test.toml"), toml).await
    }

    /// As [`Self::start`], as if read from `path` (relative file names in it
    /// start at its folder).
    pub(crate) async fn start_as(path: &Path, toml: &str) -> Self {
        let config = halo_config::parse(path, toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let mut registry = Registry::new(HealthHub::new(7));
        registry.apply(&config);
        let proxy = Proxy::start(&config, &registry, 7).await.unwrap();
        Self { proxy, registry }
    }

    /// The first listener's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.proxy.bound()[0].1
    }

    /// Waits until `pool/server` is down by health (deadline 20s).
    #[allow(dead_code, reason = "not every test file uses it")]
    pub(crate) async fn wait_down(&self, pool: &str, server: &str) {
        let health = self.registry.health(&ServerKey::new(pool, server)).unwrap();
        let mut events = self.registry.hub().subscribe();
        tokio::time::timeout(Duration::from_secs(20), async {
            while health.is_up() {
                let _ = events.recv().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{pool}/{server} not down in time"));
    }
}

/// Whether `program` (an absolute path) is installed; panics in CI when it
/// is not (scripts/test installs `package`), says SKIPPED otherwise.
#[allow(dead_code, reason = "not every test file needs a tool")]
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
        eprintln!("SKIPPED: needs {program} (apt-get install {package}); CI has it");
    }
    false
}

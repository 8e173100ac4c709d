//! The servers of one pool as passive ejection sees them. Passive evidence
//! (errors on live traffic) is weaker than a failed check: a client can
//! provoke it, and an overloaded pool shows it everywhere at once. So, as
//! Envoy's `max_ejection_percent` does, it never leaves more than a share of
//! a pool down, and never takes the pool's last server serving (UP and ready): that
//! server's traffic would otherwise get 503 from halo instead of a slow or
//! partial answer from it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use halo_log::Spell;

use crate::monitor::ServerHealth;

/// Whether a pool of `servers`, `up` of them serving (UP and ready; the one
/// to eject among them), can lose one more to passive evidence with at most
/// `max_percent` of its servers out of service after it.
#[must_use]
pub fn may_eject(servers: usize, up: usize, max_percent: u8) -> bool {
    let down_after = servers.saturating_sub(up) + 1;
    up >= 2 && down_after * 100 <= servers * usize::from(max_percent)
}

/// One pool's servers, shared by their monitors; replaced at each
/// [`crate::Registry::apply`].
#[derive(Debug)]
pub(crate) struct PoolGroup {
    name: Arc<str>,
    inner: Mutex<Members>,
}

#[derive(Debug)]
struct Members {
    servers: Vec<Arc<ServerHealth>>,
    max_percent: u8,
    refused: Spell,
}

impl PoolGroup {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            inner: Mutex::new(Members {
                servers: Vec::new(),
                max_percent: 50,
                refused: Spell::new(Duration::from_secs(60)),
            }),
        }
    }

    pub(crate) fn set(&self, servers: Vec<Arc<ServerHealth>>, max_percent: u8) {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        m.servers = servers;
        m.max_percent = max_percent;
    }

    /// Runs `eject` (which marks `server` down and publishes it) if the pool
    /// can spare it, under the group's lock so that two servers of the pool
    /// never both decide on the same count; else logs (once per spell)
    /// that it stays.
    pub(crate) fn eject_if_allowed(
        &self,
        server: &str,
        now: std::time::Instant,
        eject: impl FnOnce(),
    ) {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Serving, not merely UP: a server in drain or maint is UP by
        // health but takes no new traffic, so it cannot stand in for the
        // one ejected.
        let servers = m.servers.len();
        let up = m.servers.iter().filter(|s| s.is_serving()).count();
        if may_eject(servers, up, m.max_percent) {
            eject();
            return;
        }
        if let Some(line) = m.refused.event(now) {
            tracing::warn!(
                pool = %self.name, server, up, servers, max_ejection_percent = m.max_percent,
                unlogged = line.folded,
                "passive errors would mark this server down, but the pool cannot spare it: \
                 it stays up (passive evidence never takes the last server serving, nor more than \
                 max_ejection_percent of the pool)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_eject;

    #[test]
    fn passive_ejection_leaves_the_pool_a_share_and_its_last_server() {
        // (servers, up, percent, allowed)
        let table = [
            (1, 1, 100, false), // the last server up: never
            (2, 2, 50, true),
            (2, 1, 50, false),
            (2, 2, 10, false), // 1 of 2 is 50 %, over 10 %
            (3, 3, 50, true),
            (3, 2, 50, false), // 2 of 3 down is over half
            (3, 2, 100, true),
            (3, 1, 100, false),
            (10, 10, 50, true),
            (10, 6, 50, true), // 5 of 10 down after: exactly half
            (10, 5, 50, false),
            (10, 10, 0, false),
            (0, 0, 100, false),
        ];
        for (servers, up, percent, allowed) in table {
            assert_eq!(
                may_eject(servers, up, percent),
                allowed,
                "{servers} servers, {up} up, {percent} %"
            );
        }
    }
}

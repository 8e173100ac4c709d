//! The host's own limits, as the tiers meet them: failed accepts ridden out
//! without spinning or flooding the log ([`AcceptErrors`]), errors that are
//! this host's and not a peer's ([`is_local`]), and the descriptor limit
//! raised at start ([`raise_fd_limit`]).

use std::io;
use std::time::Duration;

use halo_log::Spell;

/// The first pause after an accept failed, and the longest.
const PAUSE_MIN: Duration = Duration::from_millis(10);
const PAUSE_MAX: Duration = Duration::from_millis(500);

/// Whether an error means this host ran out of something (descriptors,
/// memory, socket buffers): nothing a retry at once can cure.
#[must_use]
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether a failed connect is this host's fault, not the server's: out of
/// descriptors, memory or buffers, or of local ports (`EADDRNOTAVAIL`). Such
/// a failure says nothing about the server's health.
#[must_use]
pub fn is_local(e: &io::Error) -> bool {
    is_exhaustion(e) || e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
}

/// An accept loop's failures. An accept that fails because this host is out
/// of descriptors or memory ([`is_exhaustion`]) pauses accepting, 10 ms
/// doubling to 500 ms while failures go on (nginx stops accepting for a
/// moment, HAProxy pauses the listener), so the loop neither spins on a core
/// nor writes a line per attempt; other errors concern one connection
/// (aborted before it was accepted, refused by a firewall rule) and the loop
/// goes on at once. Either way one warning starts a spell of failures, a
/// reminder comes at most once a minute, and one line ends it at the next
/// accept. The caller counts every failure.
#[derive(Debug)]
pub struct AcceptErrors {
    spell: Spell,
    pause: Duration,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        Self {
            spell: Spell::new(Duration::from_secs(10)),
            pause: PAUSE_MIN,
        }
    }
}

impl AcceptErrors {
    /// After a failed accept on `listener`: logs if a spell starts (or is
    /// due a reminder), then pauses.
    pub async fn failed(&mut self, error: &io::Error, listener: &str) {
        let now = tokio::time::Instant::now().into_std();
        if let Some(line) = self.spell.event(now) {
            if line.starts {
                tracing::warn!(
                    listener, error = %error,
                    "accept failed; accepting pauses while it fails (one line per spell, each failure counted)"
                );
            } else {
                tracing::warn!(listener, error = %error, failed = line.folded + 1, "accepts still failing");
            }
        }
        if is_exhaustion(error) {
            tokio::time::sleep(self.pause).await;
            self.pause = (self.pause * 2).min(PAUSE_MAX);
        }
    }

    /// After an accept: ends a spell of failures with one line.
    pub fn accepted(&mut self, listener: &str) {
        if let Some(folded) = self.spell.end() {
            self.pause = PAUSE_MIN;
            tracing::info!(listener, failed_unlogged = folded, "accepting again");
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit (a
/// service under systemd starts with 1,024, which a busy proxy outgrows):
/// the soft limit before and after.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok((soft, soft.max(hard)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_are_the_hosts_own() {
        for n in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(is_local(&io::Error::from_raw_os_error(n)), "{n}");
        }
        for n in [
            libc::ECONNREFUSED,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::ECONNRESET,
        ] {
            assert!(!is_local(&io::Error::from_raw_os_error(n)), "{n}");
        }
        assert!(!is_local(&io::Error::other("TLS handshake failed")));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_pause_longer_until_one_succeeds() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let start = tokio::time::Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let before = tokio::time::Instant::now();
            errors.failed(&emfile, "l").await;
            pauses.push(before.elapsed().as_millis());
        }
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 500, 500]);
        assert_eq!(start.elapsed().as_millis(), 1630);
        errors.accepted("l");
        let before = tokio::time::Instant::now();
        errors.failed(&emfile, "l").await;
        assert_eq!(before.elapsed().as_millis(), 10);
        // A connection aborted before its accept: no pause.
        let before = tokio::time::Instant::now();
        errors
            .failed(&io::Error::from_raw_os_error(libc::ECONNABORTED), "l")
            .await;
        assert_eq!(before.elapsed().as_millis(), 0);
    }
}

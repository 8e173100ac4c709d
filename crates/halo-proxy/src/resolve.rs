//! Servers given by name (`address = "app.internal:8080"`): resolved at start,
//! then re-resolved in the background while in use, never on a connection's
//! path once an address is known.
//!
//! HAProxy resolves at start (`init-addr libc`) and, with a `resolvers`
//! section, again every `hold valid` (10s by default). halo does the same
//! without a section: each name's addresses are kept for [`REFRESH`]; the
//! first connection after that starts one background lookup and goes on with
//! the addresses it has. A lookup that fails keeps the last good addresses (a
//! DNS hiccup must not take servers away); a name that has never resolved is
//! looked up on the connection's path, so it is followed as soon as it exists.
//! Resolvers live outside the snapshot (in [`crate::stats::Stats`]), so a
//! reload keeps what is known.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long resolved addresses are used before they are looked up again.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);

type Lookup = dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>
    + Send
    + Sync;

/// One `host:port` and what it resolved to.
pub(crate) struct Resolver {
    host: String,
    port: u16,
    /// The addresses, and when they were looked up (`None`: never).
    known: Mutex<(Arc<[SocketAddr]>, Option<Instant>)>,
    refreshing: AtomicBool,
    lookup: Box<Lookup>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver using the system's (getaddrinfo, on tokio's blocking pool).
    pub(crate) fn new(host: &str, port: u16) -> Self {
        Self::with_lookup(
            host,
            port,
            Box::new(|host, port| {
                Box::pin(async move {
                    Ok(tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .collect())
                })
            }),
        )
    }

    fn with_lookup(host: &str, port: u16, lookup: Box<Lookup>) -> Self {
        Self {
            host: host.to_owned(),
            port,
            known: Mutex::new((Arc::from([]), None)),
            refreshing: AtomicBool::new(false),
            lookup,
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, (Arc<[SocketAddr]>, Option<Instant>)> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves now, blocking the thread: for start-up, before any runtime
    /// serves traffic. A failure is logged; connections will try again.
    pub(crate) fn resolve_blocking(&self) {
        match (self.host.as_str(), self.port).to_socket_addrs() {
            Ok(addrs) => {
                self.store(addrs.collect());
            }
            Err(e) => {
                tracing::warn!(host = %self.host, error = %e, "server name does not resolve yet");
            }
        }
    }

    /// The addresses to connect to.
    pub(crate) async fn addrs(self: &Arc<Self>) -> io::Result<Arc<[SocketAddr]>> {
        let (addrs, at) = self.known().clone();
        match at {
            _ if addrs.is_empty() => self.refresh().await,
            Some(at) if at.elapsed() >= REFRESH => {
                if !self.refreshing.swap(true, Ordering::AcqRel) {
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let _ = me.refresh().await;
                        me.refreshing.store(false, Ordering::Release);
                    });
                }
                Ok(addrs)
            }
            _ => Ok(addrs),
        }
    }

    /// Looks the name up now; on failure the last good addresses stay (and
    /// are kept for another [`REFRESH`]).
    async fn refresh(&self) -> io::Result<Arc<[SocketAddr]>> {
        match (self.lookup)(self.host.clone(), self.port).await {
            Ok(addrs) if !addrs.is_empty() => Ok(self.store(addrs)),
            result => {
                let error = result.err().unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the name has no addresses")
                });
                let mut known = self.known();
                if known.0.is_empty() {
                    return Err(error);
                }
                tracing::warn!(host = %self.host, error = %error, "server name lookup failed; keeping its last addresses");
                known.1 = Some(Instant::now());
                Ok(Arc::clone(&known.0))
            }
        }
    }

    fn store(&self, addrs: Vec<SocketAddr>) -> Arc<[SocketAddr]> {
        let addrs: Arc<[SocketAddr]> = addrs.into();
        let mut known = self.known();
        if !known.0.is_empty() && known.0 != addrs {
            tracing::info!(host = %self.host, from = ?known.0, to = ?addrs, "server name resolves to new addresses");
        }
        *known = (Arc::clone(&addrs), Some(Instant::now()));
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver whose lookups answer from `answers` (shared, so the test
    /// can change what the "DNS" says), counting calls.
    fn scripted(
        answers: Arc<Mutex<io::Result<Vec<SocketAddr>>>>,
        calls: Arc<Mutex<u32>>,
    ) -> Arc<Resolver> {
        Arc::new(Resolver::with_lookup(
            "app.internal",
            80,
            Box::new(move |_, _| {
                *calls.lock().unwrap() += 1;
                let answer = match &*answers.lock().unwrap() {
                    Ok(a) => Ok(a.clone()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                Box::pin(async move { answer })
            }),
        ))
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn names_are_re_resolved_in_the_background_and_kept_on_failure() {
        let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:80".parse().unwrap();
        let answers = Arc::new(Mutex::new(Ok(vec![a])));
        let calls = Arc::new(Mutex::new(0));
        let r = scripted(Arc::clone(&answers), Arc::clone(&calls));

        // First use: looked up on the spot.
        assert_eq!(&*r.addrs().await.unwrap(), &[a]);
        // Within REFRESH: no lookup.
        *answers.lock().unwrap() = Ok(vec![b]);
        tokio::time::advance(REFRESH / 2).await;
        assert_eq!(&*r.addrs().await.unwrap(), &[a]);
        assert_eq!(*calls.lock().unwrap(), 1);
        // After REFRESH: the old answer now, the new one once the background
        // lookup ran.
        tokio::time::advance(REFRESH).await;
        assert_eq!(&*r.addrs().await.unwrap(), &[a]);
        settle().await;
        assert_eq!(&*r.addrs().await.unwrap(), &[b]);
        assert_eq!(*calls.lock().unwrap(), 2);
        // The DNS fails: the last good addresses stay.
        *answers.lock().unwrap() = Err(io::Error::other("SERVFAIL"));
        tokio::time::advance(REFRESH).await;
        let _ = r.addrs().await.unwrap();
        settle().await;
        assert_eq!(&*r.addrs().await.unwrap(), &[b]);
        assert_eq!(*calls.lock().unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_never_resolved_is_tried_on_every_use() {
        let answers = Arc::new(Mutex::new(Err(io::Error::other("NXDOMAIN"))));
        let calls = Arc::new(Mutex::new(0));
        let r = scripted(Arc::clone(&answers), Arc::clone(&calls));
        assert!(r.addrs().await.is_err());
        assert!(r.addrs().await.is_err());
        let a: SocketAddr = "192.0.2.1:80".parse().unwrap();
        *answers.lock().unwrap() = Ok(vec![a]);
        assert_eq!(&*r.addrs().await.unwrap(), &[a]);
        assert_eq!(*calls.lock().unwrap(), 3);
    }
}

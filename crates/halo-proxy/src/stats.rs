//! In-process counters per listener, pool and server, for the admin API and
//! `/metrics` to read. Relaxed atomics: each is a count on its own, nothing
//! orders one against another.
//!
//! They live outside the reloadable [`crate::Snapshot`]: a reload that keeps a
//! name keeps its counters, so totals never go backwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::resolve::Resolver;

/// Counters of one listener, pool or server.
#[derive(Debug, Default)]
pub struct Counters {
    /// HTTP requests, or TCP connections, handled.
    pub requests: AtomicU64,
    /// Responses by class: index 0 = 1xx … 4 = 5xx (HTTP only).
    pub responses: [AtomicU64; 5],
    /// Requests or connections that ended in an error halo generated or saw
    /// (connect failure after retries, bad response, timeout, reset).
    pub errors: AtomicU64,
    /// Retries: another attempt after a failed one.
    pub retries: AtomicU64,
    /// Client connections (listener) or requests in flight (pool, server) now.
    pub active: AtomicU64,
    /// Bytes from clients to servers (bodies, or the stream in TCP mode).
    pub bytes_in: AtomicU64,
    /// Bytes from servers to clients.
    pub bytes_out: AtomicU64,
    /// Listener: accepts that failed (out of descriptors, most often).
    pub accept_errors: AtomicU64,
    /// Server: connects that failed on this host's own limits (descriptors,
    /// memory, local ports), which do not count against the server.
    pub local_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds a finished transfer: `up` bytes client → server, `down` back.
    pub(crate) fn transfer(&self, up: u64, down: u64) {
        Self::add(&self.bytes_in, up);
        Self::add(&self.bytes_out, down);
    }

    pub(crate) fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy for display.
    #[must_use]
    pub fn read(&self) -> CountersView {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersView {
            requests: l(&self.requests),
            responses: [
                l(&self.responses[0]),
                l(&self.responses[1]),
                l(&self.responses[2]),
                l(&self.responses[3]),
                l(&self.responses[4]),
            ],
            errors: l(&self.errors),
            retries: l(&self.retries),
            active: l(&self.active),
            bytes_in: l(&self.bytes_in),
            bytes_out: l(&self.bytes_out),
            accept_errors: l(&self.accept_errors),
            local_errors: l(&self.local_errors),
        }
    }
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersView {
    /// See [`Counters::requests`].
    pub requests: u64,
    /// See [`Counters::responses`].
    pub responses: [u64; 5],
    /// See [`Counters::errors`].
    pub errors: u64,
    /// See [`Counters::retries`].
    pub retries: u64,
    /// See [`Counters::active`].
    pub active: u64,
    /// See [`Counters::bytes_in`].
    pub bytes_in: u64,
    /// See [`Counters::bytes_out`].
    pub bytes_out: u64,
    /// See [`Counters::accept_errors`].
    pub accept_errors: u64,
    /// See [`Counters::local_errors`].
    pub local_errors: u64,
}

/// Decrements an `active` counter when dropped.
#[derive(Debug)]
pub(crate) struct Active(Arc<Counters>);

impl Active {
    pub(crate) fn new(counters: &Arc<Counters>) -> Self {
        counters.active.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counters))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every counter set by name: `listener`, `pool`, and `pool/server`; and
/// what servers given by name resolved to. All of it outlives a snapshot, so
/// a reload keeps it.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsMaps>,
    resolvers: Mutex<HashMap<(String, u16), Arc<Resolver>>>,
}

#[derive(Debug, Default)]
struct StatsMaps {
    listeners: HashMap<String, Arc<Counters>>,
    pools: HashMap<String, Arc<Counters>>,
    servers: HashMap<(String, String), Arc<Counters>>,
}

impl Stats {
    pub(crate) fn listener(&self, name: &str) -> Arc<Counters> {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(m.listeners.entry(name.to_owned()).or_default())
    }

    pub(crate) fn pool(&self, name: &str) -> Arc<Counters> {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(m.pools.entry(name.to_owned()).or_default())
    }

    pub(crate) fn server(&self, pool: &str, server: &str) -> Arc<Counters> {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            m.servers
                .entry((pool.to_owned(), server.to_owned()))
                .or_default(),
        )
    }

    /// The resolver of `host:port`, made (and resolved at once, blocking,
    /// when `now`) on first use.
    pub(crate) fn resolver(&self, host: &str, port: u16, now: bool) -> Arc<Resolver> {
        let (r, new) = {
            let mut m = self
                .resolvers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match m.get(&(host.to_owned(), port)) {
                Some(r) => (Arc::clone(r), false),
                None => {
                    let r = Arc::new(Resolver::new(host, port));
                    m.insert((host.to_owned(), port), Arc::clone(&r));
                    (r, true)
                }
            }
        };
        // Outside the lock: a slow lookup holds nobody else up.
        if new && now {
            r.resolve_blocking();
        }
        r
    }

    /// Copies of every listener's counters, sorted by name.
    #[must_use]
    pub fn listeners(&self) -> Vec<(String, CountersView)> {
        let m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        sorted(m.listeners.iter().map(|(k, v)| (k.clone(), v.read())))
    }

    /// Copies of every pool's counters, sorted by name.
    #[must_use]
    pub fn pools(&self) -> Vec<(String, CountersView)> {
        let m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        sorted(m.pools.iter().map(|(k, v)| (k.clone(), v.read())))
    }

    /// Copies of every server's counters as `(pool, server)`, sorted.
    #[must_use]
    pub fn servers(&self) -> Vec<((String, String), CountersView)> {
        let m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        sorted(m.servers.iter().map(|(k, v)| (k.clone(), v.read())))
    }
}

fn sorted<K: Ord, V>(it: impl Iterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut v: Vec<_> = it.collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

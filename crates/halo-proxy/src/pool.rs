//! A pool at run time: its servers' health and load, and the choice of a server
//! with HAProxy's failover tiers and `max_conns` queue.
//!
//! Tier rule (HAProxy): primaries while any primary is serving; backups only when
//! none is, and then only the first serving backup unless `use_all_backups`.
//! A serving server at `max_conns` keeps its tier: the request waits in the
//! pool's queue for a free slot, up to `timeouts.queue`, then gets a 503.
//! One departure, to save traffic rather than refuse it: when every serving
//! primary has already failed this request (retries), the backups are tried
//! before giving up.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use halo_config::{Pool, Server, ServerAddress};
use halo_health::{Registry, ServerHealth, ServerKey};
use halo_log::SharedSpell;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::balance::{Balancer, Candidate, mix64};
use crate::stats::{Counters, Stats};

/// One server of a running pool.
#[derive(Debug)]
pub struct ServerRuntime {
    /// Its config.
    pub config: Server,
    /// Its health, shared with its monitor.
    pub health: Arc<ServerHealth>,
    /// Its counters; `active` is the in-flight count the balancers read. Kept
    /// across reloads, so requests still running on an old snapshot count.
    pub counters: Arc<Counters>,
    /// Idle keep-alive connections (HTTP mode).
    pub(crate) idle: crate::http::upstream::IdlePool,
    /// Where connections go.
    pub(crate) target: Target,
    /// `[pool.tls]`: the client side (or why it could not be built) and the
    /// name to verify when `sni` is not set (the host name or IP address).
    pub(crate) tls: Option<(halo_health::PoolTlsClient, String)>,
    id_hash: u64,
}

impl ServerRuntime {
    /// Its weight now: set at run time (admin API), else configured.
    #[must_use]
    pub fn weight(&self) -> u16 {
        self.health.weight().unwrap_or(self.config.weight)
    }

    /// Requests or connections in flight to it now.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        u32::try_from(self.counters.active.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }

    fn has_room(&self) -> bool {
        self.config.max_conns == 0 || self.in_flight() < self.config.max_conns
    }
}

/// Where a server's connections go.
#[derive(Debug)]
pub(crate) enum Target {
    Socket(std::net::SocketAddr),
    /// A name, and what it resolves to.
    Name(Arc<crate::resolve::Resolver>),
}

/// What [`PoolRuntime::select`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// This server (index into [`PoolRuntime::servers`]).
    Server(usize),
    /// The tier that should serve is at `max_conns`: wait for a slot.
    Full,
    /// No serving server is left to try.
    Unavailable,
}

/// Why [`PoolRuntime::acquire`] found no server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoServer {
    /// Nothing healthy (or everything healthy already failed this request).
    Unavailable,
    /// Every candidate stayed at `max_conns` for `timeouts.queue`.
    QueueTimeout,
}

/// A pool with live health and load.
#[derive(Debug)]
pub struct PoolRuntime {
    /// Its config.
    pub config: Pool,
    /// Its counters.
    pub counters: Arc<Counters>,
    servers: Vec<ServerRuntime>,
    balancer: Balancer,
    /// Signalled when a request ends on a server with `max_conns`.
    slot_freed: Notify,
}

impl PoolRuntime {
    /// Builds the runtime of `config`, taking each server's health from
    /// `registry` (which must have applied the same config) and its counters
    /// and name resolvers from `stats` (`resolve_now`: resolve a name not
    /// seen before at once, blocking; for start-up).
    ///
    /// # Panics
    /// If `registry` lacks one of the pool's servers: the caller applies the
    /// config to the registry first, so that is a bug.
    #[must_use]
    pub fn new(
        config: &Pool,
        registry: &Registry,
        stats: &Stats,
        seed: u64,
        resolve_now: bool,
    ) -> Self {
        // The registry's, built when it applied the config (checked before
        // that, at start or in prepare_reload; a file that went bad since
        // fails the connections, saying why).
        let tls = registry.pool_tls(&config.name);
        let servers = config
            .servers
            .iter()
            .map(|s| {
                let key = ServerKey::new(&config.name, &s.name);
                let health = registry.health(&key).unwrap_or_else(|| {
                    panic!("no monitor for {key}: apply the config to the registry first")
                });
                let mut h = DefaultHasher::new();
                s.name.hash(&mut h);
                ServerRuntime {
                    config: s.clone(),
                    health,
                    counters: stats.server(&config.name, &s.name),
                    idle: crate::http::upstream::IdlePool::default(),
                    target: match &s.address {
                        ServerAddress::Socket(a) => Target::Socket(*a),
                        ServerAddress::Name { host, port } => {
                            Target::Name(stats.resolver(host, *port, resolve_now))
                        }
                    },
                    tls: tls.as_ref().map(|t| {
                        let host = match &s.address {
                            ServerAddress::Socket(a) => a.ip().to_string(),
                            ServerAddress::Name { host, .. } => host.clone(),
                        };
                        (Arc::clone(t), host)
                    }),
                    id_hash: h.finish(),
                }
            })
            .collect();
        Self {
            balancer: Balancer::new(config.balance, config.servers.len(), seed),
            counters: stats.pool(&config.name),
            config: config.clone(),
            servers,
            slot_freed: Notify::new(),
        }
    }

    /// The pool's servers, in file order.
    #[must_use]
    pub fn servers(&self) -> &[ServerRuntime] {
        &self.servers
    }

    /// Chooses a server for a client, skipping `tried` (servers this request
    /// already failed on).
    #[must_use]
    pub fn select(&self, client: IpAddr, tried: &[usize]) -> Pick {
        let client_hash = hash_ip(client);
        let usable = |i: usize, s: &ServerRuntime| {
            s.health.is_serving() && s.weight() > 0 && !tried.contains(&i)
        };
        let candidate = |i: usize, s: &ServerRuntime| Candidate {
            index: i,
            weight: u32::from(s.weight()),
            in_flight: s.in_flight(),
            id_hash: s.id_hash,
        };

        let mut full = false;
        let mut primaries = Candidates::default();
        for (i, s) in self.servers.iter().enumerate() {
            if !s.config.backup && usable(i, s) {
                if s.has_room() {
                    primaries.push(candidate(i, s));
                } else {
                    full = true;
                }
            }
        }
        if let Some(i) = self.balancer.pick(primaries.as_slice(), client_hash) {
            return Pick::Server(i);
        }
        if full {
            return Pick::Full;
        }
        let mut backups = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| s.config.backup && usable(*i, s));
        if self.config.use_all_backups {
            let mut all = Candidates::default();
            for (i, s) in backups {
                if s.has_room() {
                    all.push(candidate(i, s));
                } else {
                    full = true;
                }
            }
            match self.balancer.pick(all.as_slice(), client_hash) {
                Some(i) => Pick::Server(i),
                None if full => Pick::Full,
                None => Pick::Unavailable,
            }
        } else {
            match backups.next() {
                Some((i, s)) if s.has_room() => Pick::Server(i),
                Some(_) => Pick::Full,
                None => Pick::Unavailable,
            }
        }
    }

    /// Chooses a server as [`Self::select`] does and counts the request as in
    /// flight on it; when the tier is full, waits for a slot up to
    /// `timeouts.queue`.
    ///
    /// # Errors
    /// [`NoServer`] when nothing can take the request.
    pub async fn acquire(
        self: &Arc<Self>,
        client: IpAddr,
        tried: &[usize],
    ) -> Result<InFlight, NoServer> {
        // Fast path: no queue bookkeeping unless the tier is full.
        match self.select(client, tried) {
            Pick::Server(i) => return Ok(self.start(i)),
            Pick::Unavailable => return Err(NoServer::Unavailable),
            Pick::Full => {}
        }
        let deadline = Instant::now() + self.config.timeouts.queue;
        loop {
            let notified = self.slot_freed.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a slot freed in between wakes us.
            notified.as_mut().enable();
            match self.select(client, tried) {
                Pick::Server(i) => return Ok(self.start(i)),
                Pick::Unavailable => return Err(NoServer::Unavailable),
                Pick::Full => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(NoServer::QueueTimeout);
                    }
                }
            }
        }
    }

    /// Counts a request or connection to server `index` as in flight until the
    /// returned guard is dropped.
    #[must_use]
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        self.servers[index]
            .counters
            .active
            .fetch_add(1, Ordering::Relaxed);
        self.counters.active.fetch_add(1, Ordering::Relaxed);
        InFlight {
            pool: Arc::clone(self),
            index,
        }
    }
}

/// The eligible servers of one pick. Every request picks, so pools of up to
/// `INLINE` servers are collected on the stack; larger ones spill to the heap.
struct Candidates {
    inline: [Candidate; Self::INLINE],
    len: usize,
    spill: Vec<Candidate>,
}

impl Candidates {
    const INLINE: usize = 16;
    const NONE: Candidate = Candidate {
        index: 0,
        weight: 0,
        in_flight: 0,
        id_hash: 0,
    };

    fn push(&mut self, c: Candidate) {
        if self.spill.is_empty() && self.len < Self::INLINE {
            self.inline[self.len] = c;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(c);
        }
    }

    fn as_slice(&self) -> &[Candidate] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

impl Default for Candidates {
    fn default() -> Self {
        Self {
            inline: [Self::NONE; Self::INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }
}

/// Keeps a server's in-flight count up while alive.
#[derive(Debug)]
pub struct InFlight {
    pool: Arc<PoolRuntime>,
    index: usize,
}

impl InFlight {
    /// The server.
    #[must_use]
    pub fn server(&self) -> &ServerRuntime {
        &self.pool.servers[self.index]
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &Arc<PoolRuntime> {
        &self.pool
    }

    /// The server's index in the pool.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records a failed attempt on this server (passive health, counters, a
    /// log line) and decides whether the request goes on to another server:
    /// only if the failure kind may be retried (`allowed`) and `retries` has
    /// room. When it does, the server joins `tried` and `retries_done` grows.
    ///
    /// A failure of this host's own ([`Blame::Local`]: out of descriptors,
    /// memory or local ports) is counted apart and never held against the
    /// server's health (a healthy server was marked down for 30 s while
    /// halo was at its descriptor limit); it is logged once per spell.
    pub fn failed(
        &self,
        tried: &mut Vec<usize>,
        retries_done: &mut u32,
        allowed: bool,
        (error, blame): (&str, Blame),
    ) -> bool {
        let server = self.server();
        let retry = allowed && *retries_done < u32::from(self.pool.config.retries);
        match blame {
            Blame::Connect | Blame::Answer => {
                let observe = self.pool.config.passive.observe;
                let counts = match blame {
                    Blame::Connect => observe.connects(),
                    _ => observe.answers(),
                };
                if counts {
                    server.health.report_error();
                }
                server.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    pool = %self.pool.config.name, server = %server.config.name, error,
                    retry, "server attempt failed"
                );
            }
            Blame::Local => {
                server.counters.local_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(line) = LOCAL_FAILURES.event(Instant::now().into_std()) {
                    tracing::warn!(
                        pool = %self.pool.config.name, server = %server.config.name, error,
                        unlogged = line.folded,
                        "cannot open a connection to a server: this host is out of resources \
                         (not held against the server; one line per spell, each counted)"
                    );
                }
            }
        }
        if retry {
            tried.push(self.index);
            *retries_done += 1;
            server.counters.retries.fetch_add(1, Ordering::Relaxed);
            self.pool.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        retry
    }
}

/// Who a failed attempt on a server is down to, and so whether passive
/// health counts it (`[pool.passive] observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The server could not be reached: refused, unreachable, connect
    /// timeout, failed TLS handshake (counted from `layer4` on). No client
    /// can cause it.
    Connect,
    /// The server took the request and answered badly or not at all:
    /// closed, reset, invalid head, no head in time (counted at `layer7`
    /// only, since a client can provoke it with a request of its choosing).
    Answer,
    /// This host: see [`halo_net::is_local`]. Never counted.
    Local,
}

impl Blame {
    /// Whether a failed connect may go on to another server: as `retry_on`
    /// says (`conn_failure`), unless the failure was this host's own, which
    /// another server would meet too.
    #[must_use]
    pub fn retry_connect(self, conn_failure: bool) -> bool {
        conn_failure && self != Self::Local
    }

    /// The blame for a failed connect.
    #[must_use]
    pub fn of_connect(e: &std::io::Error) -> Self {
        if halo_net::is_local(e) {
            Self::Local
        } else {
            Self::Connect
        }
    }
}

/// Connect failures on this host's own limits, over every pool: one log line
/// per spell.
static LOCAL_FAILURES: SharedSpell = SharedSpell::new(Duration::from_secs(10));

impl Drop for InFlight {
    fn drop(&mut self) {
        let server = &self.pool.servers[self.index];
        server.counters.active.fetch_sub(1, Ordering::Relaxed);
        self.pool.counters.active.fetch_sub(1, Ordering::Relaxed);
        if server.config.max_conns != 0 {
            self.pool.slot_freed.notify_one();
        }
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        // An IPv4-mapped client hashes like its IPv4 form.
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.to_bits(), |v4| u128::from(v4.to_bits())),
    };
    #[allow(clippy::cast_possible_truncation)]
    let (hi, lo) = ((bits >> 64) as u64, bits as u64);
    mix64(hi ^ mix64(lo))
}

#[cfg(test)]
mod tests {
    use super::{Candidate, Candidates};

    #[test]
    fn candidates_keep_order_on_the_stack_and_past_it() {
        for n in [0, 1, Candidates::INLINE, Candidates::INLINE + 1, 40] {
            let mut c = Candidates::default();
            for index in 0..n {
                c.push(Candidate {
                    index,
                    weight: 1,
                    in_flight: 0,
                    id_hash: index as u64,
                });
            }
            let got: Vec<usize> = c.as_slice().iter().map(|c| c.index).collect();
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "{n} candidates");
        }
    }
}

//! halo's proxy tier: listeners, pools and server selection.
//!
//! ```text
//!  TcpListener ─accept─▶ tcp::handle / http::handle ─Router─▶ PoolRuntime ─Balancer─▶ server
//!        │                        ▲                              ▲ health (halo-health atomics)
//!        └── reads the current Snapshot (arc-swap): a reload swaps it, the
//!            data path never waits on a lock to see the new pools.
//! ```
//!
//! Built so far: `tcp` and `http` listeners. `https` and `tls-passthrough` come
//! with TLS.

#![forbid(unsafe_code)]

pub mod balance;
mod http;
pub mod pool;
pub mod proxy_protocol;
mod resolve;
pub mod stats;
mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use halo_config::{Config, Protocol};
use halo_health::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub use pool::PoolRuntime;
pub use stats::Stats;

use crate::http::route::Router;
use crate::stats::Counters;

/// Why the proxy could not start or take a new config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A listener address could not be bound.
    #[error("listener \"{listener}\": cannot bind {addr}: {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A protocol this build does not serve yet.
    #[error("listener \"{listener}\": protocol \"{protocol}\" is not supported yet")]
    Unsupported {
        /// Listener name.
        listener: String,
        /// Its protocol.
        protocol: &'static str,
    },
    /// A proxy thread could not be started.
    #[error("cannot start a proxy thread: {0}")]
    Thread(std::io::Error),
    /// The new config adds, removes or rebinds listeners, which a reload
    /// cannot do yet (routes and pools can change).
    #[error(
        "the reload adds, removes or rebinds a [[listener]] (name, bind or protocol), which needs a restart in this build; routes, default_pool, access_log and accept_proxy can change"
    )]
    ListenersChanged,
}

/// The immutable view a request or connection works with.
#[derive(Debug)]
pub(crate) struct Snapshot {
    listeners: HashMap<String, ListenerRuntime>,
}

/// One listener's part of a [`Snapshot`].
#[derive(Debug)]
pub(crate) struct ListenerRuntime {
    pub(crate) router: Router,
    pub(crate) access_log: bool,
    pub(crate) accept_proxy: bool,
    /// Applies before the route (and so the pool) is known: the shortest
    /// `request_header` of the pools the listener can reach.
    pub(crate) request_header: std::time::Duration,
    /// Likewise for halo's own answers (400, 404, 431): the shortest
    /// `timeouts.client`.
    pub(crate) client: std::time::Duration,
    pub(crate) counters: Arc<Counters>,
}

impl Snapshot {
    /// `resolve_now`: servers given by name and not seen before are resolved
    /// at once (start-up); otherwise on first use (a reload does not block).
    fn build(
        config: &Config,
        registry: &Registry,
        stats: &Stats,
        seed: u64,
        resolve_now: bool,
    ) -> Self {
        let pools: HashMap<String, Arc<PoolRuntime>> = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.clone(),
                    Arc::new(PoolRuntime::new(
                        p,
                        registry,
                        stats,
                        seed ^ (i as u64),
                        resolve_now,
                    )),
                )
            })
            .collect();
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let reachable = l.pools().filter_map(|p| pools.get(p));
                let shortest = reachable
                    .map(|p| (p.config.timeouts.request_header, p.config.timeouts.client))
                    .reduce(|(h, c), (h2, c2)| (h.min(h2), c.min(c2)));
                // No pool reachable: every request gets a 404; the defaults.
                let (request_header, client) = shortest.unwrap_or((
                    std::time::Duration::from_secs(10),
                    std::time::Duration::from_secs(30),
                ));
                let runtime = ListenerRuntime {
                    router: Router::build(l, &pools),
                    access_log: l.access_log,
                    accept_proxy: l.accept_proxy,
                    request_header,
                    client,
                    counters: stats.listener(&l.name),
                };
                (l.name.clone(), runtime)
            })
            .collect();
        Self { listeners }
    }

    pub(crate) fn listener(&self, name: &str) -> Option<&ListenerRuntime> {
        self.listeners.get(name)
    }
}

/// The running proxy: bound listeners serving the current snapshot.
#[derive(Debug)]
pub struct Proxy {
    snapshot: Arc<ArcSwap<Snapshot>>,
    listeners: Vec<halo_config::Listener>,
    bound: Vec<(String, SocketAddr)>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<Worker>,
    stats: Arc<Stats>,
    seed: u64,
}

/// One bound copy of a listener's address.
#[derive(Debug)]
struct Bound {
    socket: std::net::TcpListener,
    addr: SocketAddr,
    name: Arc<str>,
    protocol: Protocol,
}

fn serve_listener(
    listener: TcpListener,
    name: Arc<str>,
    protocol: Protocol,
    snapshot: Arc<ArcSwap<Snapshot>>,
) -> JoinHandle<()> {
    if protocol == Protocol::Tcp {
        tokio::spawn(accept_loop(listener, name, snapshot, tcp::handle))
    } else {
        tokio::spawn(accept_loop(listener, name, snapshot, http::serve))
    }
}

/// A proxy thread: a single-threaded tokio runtime serving its own copies of
/// the listeners until stopped.
#[derive(Debug)]
struct Worker {
    /// Stop accepting (the connections go on).
    quiet: Option<tokio::sync::oneshot::Sender<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(
        index: usize,
        sockets: Vec<Bound>,
        snapshot: Arc<ArcSwap<Snapshot>>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (quiet, quieted) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("halo-proxy-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut accepts = Vec::new();
                    for b in sockets {
                        match TcpListener::from_std(b.socket) {
                            Ok(l) => {
                                accepts.push(serve_listener(
                                    l,
                                    b.name,
                                    b.protocol,
                                    Arc::clone(&snapshot),
                                ));
                            }
                            Err(e) => {
                                tracing::error!(listener = %b.name, error = %e, "cannot serve");
                            }
                        }
                    }
                    // Runs until the Proxy is dropped; dropping the runtime
                    // then ends every connection task of this thread. Before
                    // that, a drain closes the listening sockets (the accept
                    // tasks own them) while connections go on.
                    tokio::select! {
                        _ = quieted => {
                            for a in &accepts {
                                a.abort();
                            }
                            let _ = (&mut stopped).await;
                        }
                        _ = &mut stopped => {}
                    }
                });
            })?;
        Ok(Self {
            quiet: Some(quiet),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Proxy {
    /// Binds every listener of `config` and serves on the caller's tokio
    /// runtime. `registry` must have applied `config`.
    ///
    /// # Errors
    /// A listener that cannot be bound, or whose protocol is not built yet.
    pub async fn start(
        config: &Config,
        registry: &Registry,
        seed: u64,
    ) -> Result<Self, ProxyError> {
        Self::start_inner(config, registry, seed, None)
    }

    /// Binds every listener of `config` once per thread (`SO_REUSEPORT`, so
    /// the kernel spreads connections) and serves each copy on its own thread
    /// with a single-threaded runtime, like HAProxy's `nbthread`: a
    /// connection never changes thread, and tasks are never handed between
    /// cores. `threads` 0 = one per CPU this process may run on.
    ///
    /// # Errors
    /// As [`Self::start`], or a thread that cannot be started.
    pub fn start_threaded(
        config: &Config,
        registry: &Registry,
        seed: u64,
        threads: usize,
    ) -> Result<Self, ProxyError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        Self::start_inner(config, registry, seed, Some(threads))
    }

    fn start_inner(
        config: &Config,
        registry: &Registry,
        seed: u64,
        threads: Option<usize>,
    ) -> Result<Self, ProxyError> {
        let stats = Arc::new(Stats::default());
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::build(
            config, registry, &stats, seed, true,
        )));
        let mut proxy = Self {
            snapshot,
            listeners: config.listeners.clone(),
            bound: Vec::new(),
            tasks: Vec::new(),
            workers: Vec::new(),
            stats,
            seed,
        };
        // Per worker thread (or the caller's runtime): its sockets.
        let copies = threads.unwrap_or(1);
        let mut sockets: Vec<Vec<Bound>> = (0..copies).map(|_| Vec::new()).collect();
        for l in &config.listeners {
            if !matches!(l.protocol, Protocol::Tcp | Protocol::Http) {
                return Err(ProxyError::Unsupported {
                    listener: l.name.clone(),
                    protocol: l.protocol.as_str(),
                });
            }
            let name: Arc<str> = l.name.as_str().into();
            for &addr in &l.binds {
                let err = |source| ProxyError::Bind {
                    listener: l.name.clone(),
                    addr,
                    source,
                };
                let first = bind(addr, threads.is_some()).map_err(err)?;
                // Port 0: the other copies join the port the first one got.
                let local = first.local_addr().unwrap_or(addr);
                tracing::info!(listener = %l.name, addr = %local, protocol = l.protocol.as_str(), threads = copies, "listening");
                proxy.bound.push((l.name.clone(), local));
                let mut socket = Some(first);
                for worker in &mut sockets {
                    let socket = match socket.take() {
                        Some(s) => s,
                        None => bind(local, true).map_err(err)?,
                    };
                    worker.push(Bound {
                        socket,
                        addr: local,
                        name: Arc::clone(&name),
                        protocol: l.protocol,
                    });
                }
            }
        }
        match threads {
            None => {
                for b in sockets.into_iter().flatten() {
                    let listener =
                        TcpListener::from_std(b.socket).map_err(|source| ProxyError::Bind {
                            listener: b.name.to_string(),
                            addr: b.addr,
                            source,
                        })?;
                    proxy.tasks.push(serve_listener(
                        listener,
                        b.name,
                        b.protocol,
                        Arc::clone(&proxy.snapshot),
                    ));
                }
            }
            Some(_) => {
                for (i, bound) in sockets.into_iter().enumerate() {
                    let worker = Worker::start(i, bound, Arc::clone(&proxy.snapshot))
                        .map_err(ProxyError::Thread)?;
                    proxy.workers.push(worker);
                }
            }
        }
        Ok(proxy)
    }

    /// Counters of every listener, pool and server (kept across reloads).
    #[must_use]
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The addresses actually bound (port 0 resolved), by listener name.
    #[must_use]
    pub fn bound(&self) -> &[(String, SocketAddr)] {
        &self.bound
    }

    /// Whether [`Self::reload`] would accept `config`; asks before anything changes.
    ///
    /// # Errors
    /// As [`Self::reload`].
    pub fn check_reload(&self, config: &Config) -> Result<(), ProxyError> {
        // What the sockets are bound for: routes, pools, access_log and
        // accept_proxy live in the snapshot and change freely.
        let sockets = |ls: &[halo_config::Listener]| -> Vec<(String, Vec<SocketAddr>, Protocol)> {
            ls.iter()
                .map(|l| (l.name.clone(), l.binds.clone(), l.protocol))
                .collect()
        };
        if sockets(&config.listeners) == sockets(&self.listeners) {
            Ok(())
        } else {
            Err(ProxyError::ListenersChanged)
        }
    }

    /// Takes a new config: pools and servers change for new connections at once;
    /// connections already open finish on the snapshot they started with.
    ///
    /// # Errors
    /// [`ProxyError::ListenersChanged`] if a listener is added, removed or
    /// rebound (not built yet); the running config stays.
    pub fn reload(&mut self, config: &Config, registry: &Registry) -> Result<(), ProxyError> {
        self.check_reload(config)?;
        self.listeners.clone_from(&config.listeners);
        self.snapshot.store(Arc::new(Snapshot::build(
            config,
            registry,
            &self.stats,
            self.seed,
            false,
        )));
        Ok(())
    }
}

impl Proxy {
    /// Graceful stop, first half: closes every listening socket (no new
    /// connections), then waits until no request or TCP connection is in
    /// flight to any server, or `grace` has passed. Dropping the proxy
    /// afterwards ends what is left (idle keep-alive connections, and
    /// whatever outlived the grace). Returns what was still in flight.
    pub async fn drain(&mut self, grace: std::time::Duration) -> u64 {
        for t in &self.tasks {
            t.abort();
        }
        for w in &mut self.workers {
            if let Some(q) = w.quiet.take() {
                let _ = q.send(());
            }
        }
        let in_flight =
            |stats: &Stats| -> u64 { stats.servers().iter().map(|(_, c)| c.active).sum() };
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left = in_flight(&self.stats);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            // A poll interval: the counters have no change notification.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The client's address and the address it connected to: the socket's, or
/// with `accept_proxy` (given as its time limit) those of the PROXY header.
/// `None`: the header was bad or late, and the connection should be closed.
async fn client_addresses(
    stream: &mut TcpStream,
    peer: SocketAddr,
    accept_proxy: Option<std::time::Duration>,
    listener: &str,
    counters: &Counters,
) -> Option<(SocketAddr, SocketAddr)> {
    let local = stream.local_addr().unwrap_or(peer);
    let Some(limit) = accept_proxy else {
        return Some((peer, local));
    };
    match tokio::time::timeout(limit, proxy_protocol::read_header(stream)).await {
        Ok(Ok(Some(addrs))) => Some(addrs),
        // LOCAL: the sender's own health check; its addresses stand.
        Ok(Ok(None)) => Some((peer, local)),
        Ok(Err(e)) => {
            Counters::add(&counters.errors, 1);
            tracing::warn!(listener, client = %peer, error = %e, "bad PROXY header, closing");
            None
        }
        Err(_) => {
            Counters::add(&counters.errors, 1);
            tracing::warn!(listener, client = %peer, "no PROXY header in time, closing");
            None
        }
    }
}

/// Accepts connections for ever, each served by `handle` in its own task.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<str>, Arc<ArcSwap<Snapshot>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(
                    stream,
                    peer,
                    Arc::clone(&name),
                    Arc::clone(&snapshot),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving what we can.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A listening socket with a deep backlog; IPv6 sockets are IPv6-only so
/// `[::]:80` and `0.0.0.0:80` can both be bound. `reuse_port` lets each proxy
/// thread bind its own copy.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

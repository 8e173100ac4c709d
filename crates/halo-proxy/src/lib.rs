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
pub mod client_hello;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod pool;
pub mod proxy_protocol;
mod resolve;
pub mod stats;
mod tcp;
pub mod tls;

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
    /// A proxy thread could not be started.
    #[error("cannot start a proxy thread: {0}")]
    Thread(std::io::Error),
    /// A pool's `[pool.tls]` files cannot be used.
    #[error("pool \"{pool}\": {problem}")]
    PoolTls {
        /// Pool name.
        pool: String,
        /// Where and why.
        problem: Box<halo_config::Diagnostic>,
    },
    /// Certificates of an `https` listener cannot serve.
    #[error("listener \"{listener}\": {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Certificates {
        /// Listener name.
        listener: String,
        /// One per certificate that cannot serve, at its place in the file.
        problems: Vec<halo_config::Diagnostic>,
    },
}

/// The immutable view a request or connection works with.
#[derive(Debug)]
pub(crate) struct Snapshot {
    listeners: HashMap<String, ListenerRuntime>,
    /// Which listener each listening socket serves. In the snapshot, so one
    /// swap moves a socket to another listener (renamed, or an address moved)
    /// together with the listeners themselves: the socket stays open.
    by_socket: HashMap<SocketId, Arc<str>>,
}

/// One listener's part of a [`Snapshot`].
#[derive(Debug)]
pub(crate) struct ListenerRuntime {
    /// Which handler a new connection gets.
    pub(crate) protocol: Protocol,
    /// `https`: the TLS server side (certificates by SNI, ALPN, versions).
    pub(crate) tls: Option<Acceptor>,
    /// `https`: time for the handshake; `tls-passthrough`: for the ClientHello.
    pub(crate) handshake_timeout: std::time::Duration,
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
        terminators: &Terminators,
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
                    protocol: l.protocol,
                    tls: terminators
                        .get(&l.name)
                        .map(|t| Acceptor(tokio_rustls::TlsAcceptor::from(t.config(&l.tls)))),
                    handshake_timeout: l.tls.handshake_timeout,
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
        Self {
            listeners,
            by_socket: HashMap::new(),
        }
    }

    /// The same, with `held` telling which listener each socket serves.
    fn with_sockets(mut self, held: &[Held]) -> Self {
        self.by_socket = held.iter().map(|h| (h.id, Arc::clone(&h.key.0))).collect();
        self
    }

    pub(crate) fn listener(&self, name: &str) -> Option<&ListenerRuntime> {
        self.listeners.get(name)
    }
}

/// A `tokio_rustls::TlsAcceptor` that can be printed with the snapshot.
#[derive(Clone)]
pub(crate) struct Acceptor(pub(crate) tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// Each `https` listener's TLS, by listener name.
type Terminators = HashMap<String, Arc<tls::Terminator>>;

/// The running proxy: bound listeners serving the current snapshot.
#[derive(Debug)]
pub struct Proxy {
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Shared with the task that reloads certificates changed on disk.
    terminators: Arc<ArcSwap<Terminators>>,
    watcher: Option<JoinHandle<()>>,
    /// Every listening address. A reload keeps the sockets of the pairs it
    /// keeps, and those of addresses that move to another listener.
    sockets: Vec<Held>,
    /// One per proxy thread, or one task on the caller's runtime.
    workers: Vec<Worker>,
    stats: Arc<Stats>,
    seed: u64,
}

/// What a listening socket is for: a listener name and one of its binds as
/// written. (With the name in it, two listeners may both bind port 0.)
type SocketKey = (Arc<str>, SocketAddr);

/// One listening address's sockets (a copy per worker share the id).
type SocketId = u64;

static NEXT_SOCKET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An address the proxy listens on: for which listener and bind as written,
/// where it is bound (port 0 resolved), and its sockets' id.
#[derive(Debug, Clone)]
struct Held {
    key: SocketKey,
    local: SocketAddr,
    id: SocketId,
}

/// One bound copy of a listener's address, on its way to a worker.
#[derive(Debug)]
struct Bound {
    socket: std::net::TcpListener,
    key: SocketKey,
    id: SocketId,
}

/// A reload that has bound what it adds and can no longer fail: from
/// [`Proxy::prepare_reload`], for [`Proxy::apply_reload`]. Dropping it
/// instead closes the new sockets and changes nothing.
#[derive(Debug)]
pub struct PreparedReload {
    /// Certificates of `https` listeners, read and checked: new listeners'
    /// TLS, kept listeners' new certificates.
    terminators: Vec<(String, NewTls)>,
    /// Per worker, its copies of the new sockets.
    added: Vec<Vec<Bound>>,
    added_addrs: Vec<Held>,
    removed: Vec<Held>,
    /// Sockets that stay open for another listener: as held, and for whom.
    moved: Vec<(Held, SocketKey)>,
}

/// A listener's TLS after a reload.
#[derive(Debug)]
enum NewTls {
    Start(Arc<tls::Terminator>),
    Replace(tls::Loaded),
}

/// What a worker is told after it starts.
#[derive(Debug)]
enum WorkerCommand {
    /// Accept on these too.
    Serve(Vec<Bound>),
    /// Close these listening sockets (their connections go on).
    Close(Vec<SocketId>),
    /// Close every listening socket: the drain before a stop.
    Quiet,
}

/// A proxy thread (a single-threaded tokio runtime) or a task on the
/// caller's runtime, accepting on its own copies of the listening sockets.
/// Dropping it stops it: a thread ends every connection it serves, a task
/// only stops accepting.
#[derive(Debug)]
struct Worker {
    commands: Option<tokio::sync::mpsc::UnboundedSender<WorkerCommand>>,
    thread: Option<std::thread::JoinHandle<()>>,
    task: Option<JoinHandle<()>>,
}

/// The accept tasks of one worker, by socket; dropping it (the worker's
/// end) closes every listening socket.
#[derive(Default)]
struct AcceptTasks(HashMap<SocketId, JoinHandle<()>>);

impl AcceptTasks {
    fn serve(&mut self, bound: Vec<Bound>, snapshot: &Arc<ArcSwap<Snapshot>>) {
        for b in bound {
            match TcpListener::from_std(b.socket) {
                Ok(l) => {
                    let task = tokio::spawn(accept_loop(l, b.id, Arc::clone(snapshot)));
                    if let Some(old) = self.0.insert(b.id, task) {
                        old.abort();
                    }
                }
                Err(e) => {
                    tracing::error!(listener = %b.key.0, addr = %b.key.1, error = %e, "cannot serve");
                }
            }
        }
    }

    fn close(&mut self, ids: &[SocketId]) {
        for k in ids {
            if let Some(task) = self.0.remove(k) {
                task.abort();
            }
        }
    }
}

impl Drop for AcceptTasks {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

/// A worker's life: accept on what it is given until its [`Worker`] is dropped.
async fn work(
    bound: Vec<Bound>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<WorkerCommand>,
) {
    let mut accepts = AcceptTasks::default();
    accepts.serve(bound, &snapshot);
    while let Some(cmd) = commands.recv().await {
        match cmd {
            WorkerCommand::Serve(bound) => accepts.serve(bound, &snapshot),
            WorkerCommand::Close(ids) => accepts.close(&ids),
            WorkerCommand::Quiet => {
                for (_, task) in accepts.0.drain() {
                    task.abort();
                }
            }
        }
    }
}

impl Worker {
    /// A thread of its own, like HAProxy's `nbthread`.
    fn thread(
        index: usize,
        bound: Vec<Bound>,
        snapshot: Arc<ArcSwap<Snapshot>>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (commands, rx) = tokio::sync::mpsc::unbounded_channel();
        // Runs until the Worker is dropped; dropping the runtime then ends
        // every connection task of this thread.
        let thread = std::thread::Builder::new()
            .name(format!("halo-proxy-{index}"))
            .spawn(move || runtime.block_on(work(bound, snapshot, rx)))?;
        Ok(Self {
            commands: Some(commands),
            thread: Some(thread),
            task: None,
        })
    }

    /// A task on the caller's runtime.
    fn task(bound: Vec<Bound>, snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        let (commands, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            commands: Some(commands),
            thread: None,
            task: Some(tokio::spawn(work(bound, snapshot, rx))),
        }
    }

    fn tell(&self, cmd: WorkerCommand) {
        if let Some(c) = &self.commands {
            // A worker that is gone has nothing left to serve or close.
            let _ = c.send(cmd);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(t) = self.task.take() {
            t.abort();
        }
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
        check_pool_tls(config)?;
        let stats = Arc::new(Stats::default());
        let mut terminators = Terminators::new();
        for l in config
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Https)
        {
            let t = tls::Terminator::new(&l.tls).map_err(|problems| ProxyError::Certificates {
                listener: l.name.clone(),
                problems,
            })?;
            terminators.insert(l.name.clone(), Arc::new(t));
        }
        let PreparedReload {
            added, added_addrs, ..
        } = bind_new(&[], config, threads.unwrap_or(1))?;
        let snapshot = Arc::new(ArcSwap::from_pointee(
            Snapshot::build(config, registry, &stats, seed, true, &terminators)
                .with_sockets(&added_addrs),
        ));
        let terminators = Arc::new(ArcSwap::from_pointee(terminators));
        let mut proxy = Self {
            snapshot,
            watcher: tokio::runtime::Handle::try_current()
                .ok()
                .map(|rt| rt.spawn(watch_certificates(Arc::clone(&terminators)))),
            terminators,
            sockets: Vec::new(),
            workers: Vec::new(),
            stats,
            seed,
        };
        log_listening(&added_addrs, config, threads.unwrap_or(1));
        proxy.sockets = added_addrs;
        for (i, bound) in added.into_iter().enumerate() {
            let worker = match threads {
                None => Worker::task(bound, Arc::clone(&proxy.snapshot)),
                Some(_) => Worker::thread(i, bound, Arc::clone(&proxy.snapshot))
                    .map_err(ProxyError::Thread)?,
            };
            proxy.workers.push(worker);
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
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.sockets
            .iter()
            .map(|h| (h.key.0.to_string(), h.local))
            .collect()
    }

    /// The first half of a reload: binds the addresses `config` adds, so
    /// that a port in use or a protocol not built refuses the reload before
    /// anything changes (here or in the other tiers).
    ///
    /// # Errors
    /// An address that cannot be bound, or a protocol not built yet.
    pub fn prepare_reload(&self, config: &Config) -> Result<PreparedReload, ProxyError> {
        check_pool_tls(config)?;
        let mut prepared = bind_new(&self.sockets, config, self.workers.len())?;
        let running = self.terminators.load();
        for l in config
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Https)
        {
            let err = |problems| ProxyError::Certificates {
                listener: l.name.clone(),
                problems,
            };
            let tls = match running.get(&l.name) {
                Some(_) => NewTls::Replace(tls::prepare(&l.tls.certificates).map_err(err)?),
                None => NewTls::Start(Arc::new(tls::Terminator::new(&l.tls).map_err(err)?)),
            };
            prepared.terminators.push((l.name.clone(), tls));
        }
        Ok(prepared)
    }

    /// The second half: pools, routes and listeners change for new
    /// connections at once; new addresses start accepting, removed ones stop
    /// (their connections finish, on the snapshot they started with).
    /// Addresses kept keep their sockets: nothing is refused meanwhile.
    pub fn apply_reload(&mut self, prepared: PreparedReload, config: &Config, registry: &Registry) {
        let PreparedReload {
            terminators,
            added,
            added_addrs,
            removed,
            moved,
        } = prepared;
        let running = self.terminators.load_full();
        let mut next = Terminators::new();
        for (name, tls) in terminators {
            let Some(l) = config.listeners.iter().find(|l| l.name == name) else {
                continue;
            };
            let t = match tls {
                NewTls::Start(t) => t,
                NewTls::Replace(loaded) => match running.get(&name) {
                    Some(t) => {
                        t.replace(loaded, &l.tls);
                        Arc::clone(t)
                    }
                    // Not reachable: prepare saw it running.
                    None => continue,
                },
            };
            tracing::info!(listener = %name, certificates = %t.summary().join("; "), "TLS certificates");
            next.insert(name, t);
        }
        // What is listened on after: kept, moved (the new listener's key),
        // added.
        let mut sockets: Vec<Held> = self
            .sockets
            .iter()
            .filter(|h| !removed.iter().any(|r| r.id == h.id))
            .map(|h| match moved.iter().find(|(m, _)| m.id == h.id) {
                Some((_, to)) => Held {
                    key: to.clone(),
                    ..h.clone()
                },
                None => h.clone(),
            })
            .collect();
        sockets.extend(added_addrs.iter().cloned());
        // The snapshot first: a new socket's first connection finds its
        // listener, and a moved socket serves its new listener from here on.
        self.snapshot.store(Arc::new(
            Snapshot::build(config, registry, &self.stats, self.seed, false, &next)
                .with_sockets(&sockets),
        ));
        self.terminators.store(Arc::new(next));
        log_listening(&added_addrs, config, self.workers.len());
        for (worker, bound) in self.workers.iter().zip(added) {
            if !bound.is_empty() {
                worker.tell(WorkerCommand::Serve(bound));
            }
        }
        for (from, (to, _)) in &moved {
            tracing::info!(listener = %to, addr = %from.local, from = %from.key.0, "the socket now serves another listener (kept open)");
        }
        if !removed.is_empty() {
            for h in &removed {
                tracing::info!(listener = %h.key.0, addr = %h.local, "closing: the reload removed it");
            }
            let ids: Vec<SocketId> = removed.iter().map(|h| h.id).collect();
            for worker in &self.workers {
                worker.tell(WorkerCommand::Close(ids.clone()));
            }
        }
        self.sockets = sockets;
    }

    /// [`Self::prepare_reload`] then [`Self::apply_reload`].
    ///
    /// # Errors
    /// As [`Self::prepare_reload`]; the running config stays.
    pub fn reload(&mut self, config: &Config, registry: &Registry) -> Result<(), ProxyError> {
        let prepared = self.prepare_reload(config)?;
        self.apply_reload(prepared, config, registry);
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// Every second, each `https` listener whose `watch_interval` has passed
/// looks at its certificate files; a change loads them again (a broken new
/// file is logged and the certificates serving stay).
async fn watch_certificates(terminators: Arc<ArcSwap<Terminators>>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tick.tick().await;
        let all = terminators.load_full();
        for (name, t) in all.iter() {
            if !t.due(now) {
                continue;
            }
            // Reading and parsing files blocks: off the runtime's thread.
            let t = Arc::clone(t);
            let outcome = tokio::task::spawn_blocking(move || t.reload_if_changed()).await;
            match outcome {
                Ok(Some(Ok(summary))) => {
                    tracing::info!(listener = %name, certificates = %summary.join("; "), "TLS certificates changed on disk: reloaded");
                }
                Ok(Some(Err(problems))) => {
                    let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    tracing::error!(listener = %name, "TLS certificates changed on disk but cannot serve; the old ones stay:\n{}", why.join("\n"));
                }
                Ok(None) | Err(_) => {}
            }
        }
    }
}

impl Proxy {
    /// Graceful stop, first half: closes every listening socket (no new
    /// connections), then waits until no request or TCP connection is in
    /// flight to any server, or `grace` has passed. Dropping the proxy
    /// afterwards ends what is left (idle keep-alive connections, and
    /// whatever outlived the grace). Returns what was still in flight.
    pub async fn drain(&mut self, grace: std::time::Duration) -> u64 {
        for w in &self.workers {
            w.tell(WorkerCommand::Quiet);
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

/// Every `[pool.tls]` must load (CA file, client certificate) before the
/// proxy starts or takes a reload.
fn check_pool_tls(config: &Config) -> Result<(), ProxyError> {
    for p in &config.pools {
        if let Some(t) = &p.tls {
            halo_health::ServerTls::new(t).map_err(|d| ProxyError::PoolTls {
                pool: p.name.clone(),
                problem: Box::new(d),
            })?;
        }
    }
    Ok(())
}

/// Binds, `copies` times each, the addresses of `config` not in `held` yet;
/// lists those in `held` that `config` drops, and those it gives to another
/// listener (kept open: matched by the bind as written or as bound, not
/// port 0).
fn bind_new(held: &[Held], config: &Config, copies: usize) -> Result<PreparedReload, ProxyError> {
    let mut prepared = PreparedReload {
        terminators: Vec::new(),
        added: (0..copies).map(|_| Vec::new()).collect(),
        added_addrs: Vec::new(),
        removed: Vec::new(),
        moved: Vec::new(),
    };
    let wanted = |k: &SocketKey| {
        config
            .listeners
            .iter()
            .any(|l| *l.name == *k.0 && l.binds.contains(&k.1))
    };
    for l in &config.listeners {
        let name: Arc<str> = l.name.as_str().into();
        for &addr in &l.binds {
            let key = (Arc::clone(&name), addr);
            if held.iter().any(|h| h.key == key) {
                continue;
            }
            let free = |h: &&Held| {
                addr.port() != 0
                    && (h.key.1 == addr || h.local == addr)
                    && !wanted(&h.key)
                    && !prepared.moved.iter().any(|(m, _)| m.id == h.id)
            };
            if let Some(h) = held.iter().find(free) {
                prepared.moved.push((h.clone(), key));
                continue;
            }
            let err = |source| ProxyError::Bind {
                listener: l.name.clone(),
                addr,
                source,
            };
            let first = bind(addr).map_err(err)?;
            // Port 0: the other copies join the port the first one got.
            let local = first.local_addr().unwrap_or(addr);
            let id = NEXT_SOCKET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prepared.added_addrs.push(Held {
                key: key.clone(),
                local,
                id,
            });
            let mut socket = Some(first);
            for worker in &mut prepared.added {
                let socket = match socket.take() {
                    Some(s) => s,
                    None => bind(local).map_err(err)?,
                };
                worker.push(Bound {
                    socket,
                    key: key.clone(),
                    id,
                });
            }
        }
    }
    prepared.removed = held
        .iter()
        .filter(|h| !wanted(&h.key) && !prepared.moved.iter().any(|(m, _)| m.id == h.id))
        .cloned()
        .collect();
    Ok(prepared)
}

fn log_listening(added: &[Held], config: &Config, threads: usize) {
    for Held { key, local, .. } in added {
        let protocol = config
            .listeners
            .iter()
            .find(|l| *l.name == *key.0)
            .map_or("?", |l| l.protocol.as_str());
        tracing::info!(listener = %key.0, addr = %local, protocol, threads, "listening");
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
            bad_proxy_header(listener, peer, &e.to_string(), counters);
            None
        }
        Err(_) => {
            bad_proxy_header(listener, peer, "no PROXY header in time", counters);
            None
        }
    }
}

/// A connection closed for its PROXY header: counted, and logged once per
/// spell (any client can send them at will).
fn bad_proxy_header(listener: &str, peer: SocketAddr, why: &str, counters: &Counters) {
    static SPELL: halo_log::SharedSpell =
        halo_log::SharedSpell::new(std::time::Duration::from_secs(10));
    Counters::add(&counters.errors, 1);
    if let Some(line) = SPELL.event(tokio::time::Instant::now().into_std()) {
        tracing::warn!(
            listener, client = %peer, error = why, unlogged = line.folded,
            "bad PROXY header, closing (one line per spell, each counted in the listener's errors)"
        );
    }
}

/// Accepts connections for ever, each served in its own task by the
/// protocol its listener has in the current snapshot (a reload may change
/// it and keep the socket).
async fn accept_loop(listener: TcpListener, id: SocketId, snapshot: Arc<ArcSwap<Snapshot>>) {
    let mut errors = halo_net::AcceptErrors::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                // The snapshot of the accept, handed on: the connection
                // starts on it (and a TCP one stays on it). It also says
                // which listener this socket serves now.
                let accepted = snapshot.load_full();
                let Some(name) = accepted.by_socket.get(&id).cloned() else {
                    // Removed by a reload whose close has not reached this
                    // task yet.
                    drop(stream);
                    continue;
                };
                errors.accepted(&name);
                let protocol = accepted.listener(&name).map(|l| l.protocol);
                match protocol {
                    Some(Protocol::Tcp | Protocol::TlsPassthrough) => {
                        tokio::spawn(tcp::handle(stream, peer, name, accepted));
                    }
                    Some(Protocol::Http) => {
                        let live = Arc::clone(&snapshot);
                        tokio::spawn(http::serve(stream, peer, name, live, accepted));
                    }
                    Some(Protocol::Https) => {
                        let live = Arc::clone(&snapshot);
                        tokio::spawn(http::serve_tls(stream, peer, name, live, accepted));
                    }
                    // Removed by a reload whose close has not reached this
                    // task yet.
                    _ => drop(stream),
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: counted, logged once
                // per spell, and accepting pauses a moment (a busy loop would
                // take a core and flood the log) while open connections go on.
                // (The snapshot is not held across the pause.)
                let name = {
                    let snap = snapshot.load();
                    let name = snap.by_socket.get(&id).cloned();
                    if let Some(l) = name.as_deref().and_then(|n| snap.listener(n)) {
                        Counters::add(&l.counters.accept_errors, 1);
                    }
                    name
                };
                errors.failed(&e, name.as_deref().unwrap_or("")).await;
            }
        }
    }
}

/// A listening socket with a deep backlog; IPv6 sockets are IPv6-only so
/// `[::]:80` and `0.0.0.0:80` can both be bound. `SO_REUSEPORT` always: each
/// proxy thread binds its own copy. (A reload that gives an address to
/// another listener keeps its sockets: see [`Snapshot`]'s `by_socket`.)
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

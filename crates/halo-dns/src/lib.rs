//! The global DNS tier's I/O: an authoritative server for `gslb.zone` and the
//! peer client, around the decisions of `halo-gslb`.
//!
//! ```text
//!  health events ─┐                         ┌─▶ NOTIFY to peers
//!  peer answers ──┼─▶ control::Controller ──┤
//!  NOTIFY in ─────┘     (control runtime)   └─▶ ArcSwap<Published> ◀── server workers
//!                                                                    (UDP + TCP, one
//!                                                                     thread each)
//! ```
//!
//! * [`wire`]: parse queries in place, write replies into a reused buffer.
//! * `server`: the per-query path (`Answerer`) and the TCP loop.
//! * `udp`: the UDP loop, batched with `recvmmsg`/`sendmmsg`, replying from
//!   the address asked when bound to a wildcard.
//! * `control`: snapshots from health and peers; peer polling and NOTIFY.

#![forbid(unsafe_code)]

mod control;
#[doc(hidden)]
pub mod fuzzing;
mod server;
mod udp;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use halo_config::Config;
use halo_health::{PoolTlsClient, Registry};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

pub use halo_gslb::PeerStatus;

pub use server::{Counters, Published, Stats, Totals};

use crate::control::{Control, Plan};
use crate::server::Answerer;

/// Asks the DNS server at `server` for `name` (dotted) of `qtype`, as a
/// resolver would: UDP, one retry after `timeout`, TCP if truncated. For
/// the admin status ("what each site answers now"). None: no answer.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: std::time::Duration,
) -> Option<wire::PeerAnswer> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // An ID an off-path sender cannot guess (a keyed hash of a counter).
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), n);
    control::query(server, name, qtype, (id >> 48) as u16, timeout).await
}

/// Why the DNS tier could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A listen address could not be bound.
    #[error("cannot listen for DNS on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread could not start.
    #[error("cannot start a DNS worker thread: {0}")]
    Thread(std::io::Error),
    /// The config has no `[gslb]`.
    #[error("the config has no [gslb]")]
    NoGslb,
    /// A probe's TLS files (`ca_file`, `cert`, `key`) do not serve.
    #[error("{0}")]
    ProbeTls(halo_config::Diagnostic),
}

/// The running DNS tier. Dropping it stops the workers and the controller.
#[derive(Debug)]
pub struct Dns {
    published: Arc<ArcSwap<Published>>,
    stats: Arc<Stats>,
    /// One per `gslb.listen` address, in order; dropping one stops its
    /// threads (Worker::drop).
    listening: Vec<Listening>,
    threads: usize,
    seed: u64,
    /// Where workers report a NOTIFY from a peer.
    notify: UnboundedSender<std::net::IpAddr>,
    control: UnboundedSender<Control>,
    controller: tokio::task::JoinHandle<()>,
    peer_status: Arc<ArcSwap<Vec<PeerStatus>>>,
}

/// One `gslb.listen` address: `threads` workers, each on its own copy.
#[derive(Debug)]
struct Listening {
    /// As configured.
    addr: SocketAddr,
    /// As bound (port 0 resolved).
    local: SocketAddr,
    /// Held so dropping the `Listening` stops the threads.
    _workers: Vec<Worker>,
}

/// Sockets bound for one new listen address, one UDP/TCP pair per worker.
type Copies = Vec<(std::net::UdpSocket, std::net::TcpListener)>;

/// A reload that has bound the addresses it adds: from
/// [`Dns::prepare_reload`], for [`Dns::apply_reload`]. Dropping it closes
/// them and changes nothing.
#[derive(Debug)]
pub struct PreparedDns {
    /// `gslb.listen` of the new config.
    listen: Vec<SocketAddr>,
    /// The addresses not listened on yet: configured, bound, sockets.
    added: Vec<(SocketAddr, SocketAddr, Copies)>,
    threads: usize,
    /// Per service, the TLS client of its probe (read once per load).
    probe_tls: Vec<Option<PoolTlsClient>>,
}

/// Builds the TLS client of each service's probe, so that a CA file that
/// cannot be read refuses the config instead of failing every probe (which
/// would vote every other site down).
fn probe_tls(g: &halo_config::Gslb) -> Result<Vec<Option<PoolTlsClient>>, DnsError> {
    g.services
        .iter()
        .map(|s| {
            s.probe
                .as_ref()
                .and_then(|p| p.tls.as_ref())
                .map(|t| {
                    halo_health::ServerTls::new(t)
                        .map(|c| Arc::new(Ok(c)))
                        .map_err(DnsError::ProbeTls)
                })
                .transpose()
        })
        .collect()
}

/// Binds `threads` copies of each address of `listen` not in `existing`.
fn bind(
    listen: &[SocketAddr],
    existing: &[Listening],
    threads: usize,
) -> Result<Vec<(SocketAddr, SocketAddr, Copies)>, DnsError> {
    let mut added = Vec::new();
    for &addr in listen {
        if existing.iter().any(|l| l.addr == addr) {
            continue;
        }
        let err = |source| DnsError::Bind { addr, source };
        let (udp, tcp) = bind_pair(addr).map_err(err)?;
        let local = udp.local_addr().map_err(err)?;
        let mut copies = vec![(udp, tcp)];
        for _ in 1..threads {
            copies.push(bind_pair(local).map_err(err)?);
        }
        added.push((addr, local, copies));
    }
    Ok(added)
}

impl Dns {
    /// Binds `gslb.listen` (UDP and TCP, `threads` sockets each with
    /// SO_REUSEPORT; 0 = one per CPU) and starts answering. Local endpoint
    /// health comes from `registry` (after `registry.apply(config)`).
    ///
    /// # Errors
    /// [`DnsError`] if an address cannot be bound or a thread cannot start.
    ///
    /// # Panics
    /// Outside a tokio runtime (the controller is a task on it).
    pub fn start(
        config: &Config,
        registry: &Registry,
        seed: u64,
        threads: usize,
    ) -> Result<Self, DnsError> {
        let prepared = Self::prepare(config, threads)?;
        Self::start_prepared(prepared, config, registry, seed)
    }

    /// The first half of [`Self::start`]: binds `gslb.listen`, `threads`
    /// copies each (0 = one per CPU), so that a reload adding `[gslb]` is
    /// refused on a port in use before anything changes.
    ///
    /// # Errors
    /// [`DnsError::NoGslb`], or [`DnsError::Bind`].
    pub fn prepare(config: &Config, threads: usize) -> Result<PreparedDns, DnsError> {
        let g = config.gslb.as_ref().ok_or(DnsError::NoGslb)?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        Ok(PreparedDns {
            listen: g.listen.clone(),
            probe_tls: probe_tls(g)?,
            added: bind(&g.listen, &[], threads)?,
            threads,
        })
    }

    /// The second half of [`Self::start`]. `registry` must have applied
    /// `config`.
    ///
    /// # Errors
    /// [`DnsError::NoGslb`], or a thread that cannot start.
    ///
    /// # Panics
    /// Outside a tokio runtime (the controller is a task on it).
    pub fn start_prepared(
        prepared: PreparedDns,
        config: &Config,
        registry: &Registry,
        seed: u64,
    ) -> Result<Self, DnsError> {
        let PreparedDns {
            added,
            threads,
            probe_tls,
            ..
        } = prepared;
        let plan = Plan::new(config, registry, probe_tls).ok_or(DnsError::NoGslb)?;
        let (published, controller, results) = control::first(plan, seed);
        let (notify_tx, notify_rx) = unbounded_channel();
        let stats = Arc::new(Stats::default());
        let (control_tx, control_rx) = unbounded_channel();
        let health = registry.hub().subscribe();
        let peer_status = controller.status();
        let controller = tokio::spawn(controller.run(results, notify_rx, control_rx, health));
        let mut dns = Self {
            published,
            stats,
            listening: Vec::new(),
            threads,
            seed,
            notify: notify_tx,
            control: control_tx,
            controller,
            peer_status,
        };
        // On an error `dns` drops here, stopping what already started.
        for (addr, local, copies) in added {
            let listening = dns.listen_on(addr, local, copies)?;
            dns.listening.push(listening);
        }
        Ok(dns)
    }

    /// Starts the workers of one bound address.
    fn listen_on(
        &self,
        addr: SocketAddr,
        local: SocketAddr,
        copies: Copies,
    ) -> Result<Listening, DnsError> {
        let mut workers = Vec::new();
        for (i, pair) in copies.into_iter().enumerate() {
            let counters = self.stats.add();
            let worker_seed = self.seed
                ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ u64::from(local.port()).rotate_left(32);
            workers.push(
                Worker::start(
                    i,
                    pair,
                    &self.published,
                    &counters,
                    &self.notify,
                    worker_seed,
                )
                .map_err(DnsError::Thread)?,
            );
        }
        tracing::info!(addr = %local, threads = self.threads, "DNS listening (UDP and TCP)");
        Ok(Listening {
            addr,
            local,
            _workers: workers,
        })
    }

    /// Each peer's state, in config order: reachable or not, when it last
    /// answered, how many addresses it publishes (or published before it fell
    /// silent, until they are stale).
    #[must_use]
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.peer_status.load().as_ref().clone()
    }

    /// The addresses bound (port 0 resolved), in `gslb.listen` order.
    #[must_use]
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.listening.iter().map(|l| l.local).collect()
    }

    /// Query counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// What the query path answers from now.
    #[must_use]
    pub fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// The first half of a reload: binds the `gslb.listen` addresses the
    /// config adds, so that a port in use refuses the reload before anything
    /// changes (here or in the other tiers).
    ///
    /// # Errors
    /// [`DnsError::NoGslb`], or [`DnsError::Bind`].
    pub fn prepare_reload(&self, config: &Config) -> Result<PreparedDns, DnsError> {
        let g = config.gslb.as_ref().ok_or(DnsError::NoGslb)?;
        Ok(PreparedDns {
            listen: g.listen.clone(),
            probe_tls: probe_tls(g)?,
            added: bind(&g.listen, &self.listening, self.threads)?,
            threads: self.threads,
        })
    }

    /// The second half: zone, services and peers change (what peers said is
    /// kept for peers and services that remain); addresses kept keep their
    /// sockets, new ones start answering, removed ones stop. `registry` must
    /// have applied `config`.
    ///
    /// # Errors
    /// [`DnsError::NoGslb`], or [`DnsError::Thread`] if a new address's
    /// worker cannot start (the others are served).
    pub fn apply_reload(
        &mut self,
        prepared: PreparedDns,
        config: &Config,
        registry: &Registry,
    ) -> Result<(), DnsError> {
        let PreparedDns {
            listen,
            added,
            probe_tls,
            ..
        } = prepared;
        let plan = Plan::new(config, registry, probe_tls).ok_or(DnsError::NoGslb)?;
        let _ = self.control.send(Control::Reload(Box::new(plan)));
        self.listening.retain(|l| {
            let keep = listen.contains(&l.addr);
            if !keep {
                tracing::info!(addr = %l.local, "DNS listener closed: the reload removed it");
            }
            keep
        });
        let mut result = Ok(());
        for (addr, local, copies) in added {
            match self.listen_on(addr, local, copies) {
                Ok(l) => self.listening.push(l),
                Err(e) => result = Err(e),
            }
        }
        // Back in `gslb.listen` order.
        self.listening
            .sort_by_key(|l| listen.iter().position(|a| *a == l.addr));
        result
    }

    /// [`Self::prepare_reload`] then [`Self::apply_reload`].
    ///
    /// # Errors
    /// As those; a bind error leaves the running config as it was.
    pub fn reload(&mut self, config: &Config, registry: &Registry) -> Result<(), DnsError> {
        let prepared = self.prepare_reload(config)?;
        self.apply_reload(prepared, config, registry)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// A UDP socket and a TCP listener on the same port. With port 0 the kernel
/// picks the UDP port, which TCP may have in use elsewhere: then another
/// port is drawn (a few times) instead of failing.
fn bind_pair(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut tries = if addr.port() == 0 { 8 } else { 1 };
    loop {
        match bind_pair_once(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries > 1 => tries -= 1,
            other => return other,
        }
    }
}

fn bind_pair_once(
    addr: SocketAddr,
) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let udp = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        udp.set_only_v6(true)?;
    }
    udp.set_reuse_port(true)?;
    udp.set_nonblocking(true)?;
    halo_net::omit_path_mtu(&udp, addr.is_ipv6())?;
    udp.bind(&addr.into())?;
    // TCP on the port UDP got (the same when the config names it).
    let local = udp.local_addr()?.as_socket().unwrap_or(addr);
    let tcp = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if local.is_ipv6() {
        tcp.set_only_v6(true)?;
    }
    tcp.set_reuse_address(true)?;
    tcp.set_reuse_port(true)?;
    tcp.set_nonblocking(true)?;
    tcp.bind(&local.into())?;
    tcp.listen(1024)?;
    Ok((udp.into(), tcp.into()))
}

/// One worker of one listen address: a thread for its UDP socket (blocking,
/// batched: `udp`) and one with a small runtime for its TCP listener, on
/// its own copy of the address.
#[derive(Debug)]
struct Worker {
    stop: Arc<AtomicBool>,
    tcp_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// A handle on the UDP socket, to wake its blocked receive on stop.
    udp_socket: Option<std::net::UdpSocket>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(
        index: usize,
        (udp, listener): (std::net::UdpSocket, std::net::TcpListener),
        published: &Arc<ArcSwap<Published>>,
        counters: &Arc<Counters>,
        notify: &UnboundedSender<std::net::IpAddr>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let make = {
            let published = Arc::clone(published);
            let counters = Arc::clone(counters);
            let notify = notify.clone();
            move |s: u64| {
                Answerer::new(
                    Arc::clone(&published),
                    Arc::clone(&counters),
                    notify.clone(),
                    s,
                )
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tcp_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut worker = Self {
            stop: Arc::new(AtomicBool::new(false)),
            tcp_stop: Some(tcp_stop),
            udp_socket: None,
            threads: Vec::new(),
        };
        udp::prepare(&udp)?;
        worker.udp_socket = Some(udp.try_clone()?);
        let answerer = make(seed);
        let tcp_counters = Arc::clone(counters);
        let stop = Arc::clone(&worker.stop);
        // On error `worker` drops here and stops the threads already started.
        worker.threads.push(
            std::thread::Builder::new()
                .name(format!("halo-dns-udp-{index}"))
                .spawn(move || udp::serve(udp, answerer, stop))?,
        );
        worker.threads.push(
            std::thread::Builder::new()
                .name(format!("halo-dns-tcp-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let counter = std::sync::atomic::AtomicU64::new(seed);
                        match TcpListener::from_std(listener) {
                            Ok(t) => {
                                tokio::spawn(server::serve_tcp(t, tcp_counters, move || {
                                    make(counter.fetch_add(1, Ordering::Relaxed))
                                }));
                            }
                            Err(e) => tracing::error!(error = %e, "cannot serve DNS socket"),
                        }
                        // Runs until the Dns is dropped; dropping the runtime
                        // then ends this thread's connection tasks.
                        let _ = stopped.await;
                    });
                })?,
        );
        Ok(worker)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = &self.udp_socket {
            // Wakes a receive blocked on the socket (Linux does so even for an
            // unconnected UDP socket, while reporting ENOTCONN); the receive
            // timeout is the fallback.
            let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Read);
        }
        if let Some(stop) = self.tcp_stop.take() {
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

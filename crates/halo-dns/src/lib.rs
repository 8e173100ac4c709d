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
use halo_health::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

pub use halo_gslb::PeerStatus;

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
pub use server::{Counters, Published, Stats, Totals};

use crate::control::{Control, Plan};
use crate::server::Answerer;

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
    /// Changing `gslb.listen` needs a restart (for now).
    #[error(
        "gslb.listen changed; restart halo to listen elsewhere (the running DNS tier is unchanged)"
    )]
    ListenChanged,
    /// The config has no `[gslb]`.
    #[error("the config has no [gslb]")]
    NoGslb,
}

/// The running DNS tier. Dropping it stops the workers and the controller.
#[derive(Debug)]
pub struct Dns {
    published: Arc<ArcSwap<Published>>,
    stats: Arc<Stats>,
    listen: Vec<SocketAddr>,
    bound: Vec<SocketAddr>,
    control: UnboundedSender<Control>,
    controller: tokio::task::JoinHandle<()>,
    peer_status: Arc<ArcSwap<Vec<PeerStatus>>>,
    // Held so dropping the Dns stops the threads (Worker::drop).
    _workers: Vec<Worker>,
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
        let plan = Plan::new(config, registry).ok_or(DnsError::NoGslb)?;
        let listen = config
            .gslb
            .as_ref()
            .map(|g| g.listen.clone())
            .unwrap_or_default();
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        let (published, controller, results) = control::first(plan, seed);
        let (notify_tx, notify_rx) = unbounded_channel();
        let stats = Arc::new(Stats::default());

        let mut per_worker: Vec<Vec<(std::net::UdpSocket, std::net::TcpListener)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut bound = Vec::new();
        for &addr in &listen {
            let err = |source| DnsError::Bind { addr, source };
            let (udp, tcp) = bind_pair(addr).map_err(err)?;
            let local = udp.local_addr().map_err(err)?;
            tracing::info!(addr = %local, threads, "DNS listening (UDP and TCP)");
            bound.push(local);
            let mut first = Some((udp, tcp));
            for w in &mut per_worker {
                let pair = match first.take() {
                    Some(p) => p,
                    None => bind_pair(local).map_err(err)?,
                };
                w.push(pair);
            }
        }
        let mut workers = Vec::new();
        for (i, sockets) in per_worker.into_iter().enumerate() {
            let counters = stats.add();
            let worker_seed = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            workers.push(
                Worker::start(i, sockets, &published, &counters, &notify_tx, worker_seed)
                    .map_err(DnsError::Thread)?,
            );
        }
        let (control_tx, control_rx) = unbounded_channel();
        let health = registry.hub().subscribe();
        let peer_status = controller.status();
        let controller = tokio::spawn(controller.run(results, notify_rx, control_rx, health));
        Ok(Self {
            published,
            stats,
            listen,
            bound,
            control: control_tx,
            controller,
            peer_status,
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
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
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

    /// Whether [`Self::reload`] would take `config`.
    ///
    /// # Errors
    /// [`DnsError::ListenChanged`] or [`DnsError::NoGslb`].
    pub fn check_reload(&self, config: &Config) -> Result<(), DnsError> {
        match &config.gslb {
            None => Err(DnsError::NoGslb),
            Some(g) if g.listen != self.listen => Err(DnsError::ListenChanged),
            Some(_) => Ok(()),
        }
    }

    /// Takes a new config: zone, services and peers change; what peers said
    /// is kept for peers and services that remain. Sockets stay.
    ///
    /// # Errors
    /// As [`Self::check_reload`]; the running config stays.
    pub fn reload(&mut self, config: &Config, registry: &Registry) -> Result<(), DnsError> {
        self.check_reload(config)?;
        let plan = Plan::new(config, registry).ok_or(DnsError::NoGslb)?;
        let _ = self.control.send(Control::Reload(Box::new(plan)));
        Ok(())
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

/// One worker: a thread per UDP socket (blocking, batched: `udp`) and one
/// thread with a small runtime for the TCP listeners, each on its own copy
/// of every listen address.
#[derive(Debug)]
struct Worker {
    stop: Arc<AtomicBool>,
    tcp_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Handles on the UDP sockets, to wake their blocked receives on stop.
    udp_sockets: Vec<std::net::UdpSocket>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(
        index: usize,
        sockets: Vec<(std::net::UdpSocket, std::net::TcpListener)>,
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
            udp_sockets: Vec::new(),
            threads: Vec::new(),
        };
        let mut tcp = Vec::new();
        for (n, (udp, listener)) in sockets.into_iter().enumerate() {
            udp::prepare(&udp)?;
            worker.udp_sockets.push(udp.try_clone()?);
            let answerer = make(seed ^ n as u64);
            let stop = Arc::clone(&worker.stop);
            // On error `worker` drops here and stops the threads already started.
            worker.threads.push(
                std::thread::Builder::new()
                    .name(format!("halo-dns-udp-{index}"))
                    .spawn(move || udp::serve(udp, answerer, stop))?,
            );
            tcp.push(listener);
        }
        worker.threads.push(
            std::thread::Builder::new()
                .name(format!("halo-dns-tcp-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let counter = Arc::new(std::sync::atomic::AtomicU64::new(seed));
                        for listener in tcp {
                            match TcpListener::from_std(listener) {
                                Ok(t) => {
                                    let make = make.clone();
                                    let counter = Arc::clone(&counter);
                                    tokio::spawn(server::serve_tcp(t, move || {
                                        make(counter.fetch_add(1, Ordering::Relaxed))
                                    }));
                                }
                                Err(e) => tracing::error!(error = %e, "cannot serve DNS socket"),
                            }
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
        for s in &self.udp_sockets {
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

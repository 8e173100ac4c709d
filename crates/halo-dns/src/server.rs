//! The query path: answers from the current snapshot, and the TCP loop.
//!
//! Each worker has its own UDP socket per listen address (SO_REUSEPORT
//! spreads queries over them), served by `udp`, and its own TCP listener,
//! served here on a single-threaded runtime. An [`Answerer`] keeps its buffer
//! and its [`Picker`] between queries, so answering a query allocates nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use halo_gslb::{Client, Picker, Query, Rcode, Snapshot};
use halo_log::{SharedSpell, Spell};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;

use crate::wire::{self, MAX_NAME, OPCODE_NOTIFY, Reject};

/// How long a TCP connection may sit idle between queries (RFC 7766 §6.2.3
/// suggests seconds, not minutes), take to send one query, or leave a
/// reply unread: a client that sends queries and never reads the replies
/// is cut off too (it would otherwise hold its socket buffers for ever).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Open TCP connections per worker thread, at most (BIND's `tcp-clients`
/// is 150 per server); one more is closed at once, and counted.
pub(crate) const TCP_CLIENTS: usize = 256;

/// What the query path reads: the answers, and who may send NOTIFY.
#[derive(Debug)]
pub struct Published {
    /// Current health state and zone.
    pub snapshot: Snapshot,
    /// Peer addresses whose NOTIFY is accepted (any port).
    pub peer_ips: Vec<IpAddr>,
}

/// Counters of the DNS tier (summed over workers by [`Stats::total`]).
#[derive(Debug, Default)]
pub struct Counters {
    /// Queries answered over UDP.
    pub udp: AtomicU64,
    /// Queries answered over TCP.
    pub tcp: AtomicU64,
    /// Replies by RCODE 0..=5 (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED).
    pub rcode: [AtomicU64; 6],
    /// Messages dropped without a reply (too short, or responses).
    pub dropped: AtomicU64,
    /// UDP replies cut with TC=1.
    pub truncated: AtomicU64,
    /// NOTIFY accepted from peers.
    pub notify: AtomicU64,
    /// TCP accepts that failed (out of descriptors, most often).
    pub tcp_accept_errors: AtomicU64,
    /// TCP connections closed at once: the worker had [`TCP_CLIENTS`] open.
    pub tcp_refused: AtomicU64,
}

/// The counters of every worker.
#[derive(Debug, Default)]
pub struct Stats {
    workers: std::sync::Mutex<Vec<Arc<Counters>>>,
}

/// A sum of [`Counters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// See [`Counters::udp`].
    pub udp: u64,
    /// See [`Counters::tcp`].
    pub tcp: u64,
    /// See [`Counters::rcode`].
    pub rcode: [u64; 6],
    /// See [`Counters::dropped`].
    pub dropped: u64,
    /// See [`Counters::truncated`].
    pub truncated: u64,
    /// See [`Counters::notify`].
    pub notify: u64,
    /// See [`Counters::tcp_accept_errors`].
    pub tcp_accept_errors: u64,
    /// See [`Counters::tcp_refused`].
    pub tcp_refused: u64,
}

impl Stats {
    pub(crate) fn add(&self) -> Arc<Counters> {
        let c = Arc::new(Counters::default());
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::clone(&c));
        c
    }

    /// The sum over workers.
    #[must_use]
    pub fn total(&self) -> Totals {
        let mut t = Totals::default();
        for c in self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            t.udp += c.udp.load(Ordering::Relaxed);
            t.tcp += c.tcp.load(Ordering::Relaxed);
            for (i, r) in c.rcode.iter().enumerate() {
                t.rcode[i] += r.load(Ordering::Relaxed);
            }
            t.dropped += c.dropped.load(Ordering::Relaxed);
            t.truncated += c.truncated.load(Ordering::Relaxed);
            t.notify += c.notify.load(Ordering::Relaxed);
            t.tcp_accept_errors += c.tcp_accept_errors.load(Ordering::Relaxed);
            t.tcp_refused += c.tcp_refused.load(Ordering::Relaxed);
        }
        t
    }
}

/// One worker's reusable state. Replies go into the caller's buffer: the UDP
/// loop's slot for the reply, so a batch is sent without copying.
pub(crate) struct Answerer {
    pub(crate) published: Arc<ArcSwap<Published>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) notify: UnboundedSender<IpAddr>,
    picker: Picker,
    /// The question's name, lower-cased and dotted (kept between queries
    /// rather than zeroed anew for each).
    name: [u8; MAX_NAME],
}

impl Answerer {
    pub(crate) fn new(
        published: Arc<ArcSwap<Published>>,
        counters: Arc<Counters>,
        notify: UnboundedSender<IpAddr>,
        seed: u64,
    ) -> Self {
        Self {
            published,
            counters,
            notify,
            picker: Picker::new(seed),
            name: [0; MAX_NAME],
        }
    }

    /// [`Self::answer_from`] the current snapshot.
    pub(crate) fn answer(
        &mut self,
        msg: &[u8],
        src: SocketAddr,
        udp: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let published = Arc::clone(&self.published);
        self.answer_from(&published.load(), msg, src, udp, out)
    }

    /// Writes the reply to `msg` from `src` into `out` (replacing what it
    /// held), answering from `published` (the UDP loop loads it once per
    /// batch); false = drop, nothing to send.
    pub(crate) fn answer_from(
        &mut self,
        published: &Published,
        msg: &[u8],
        src: SocketAddr,
        udp: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let (q, dotted) = match wire::parse_query(msg, &mut self.name) {
            Ok(ok) => ok,
            Err(reject) => {
                if matches!(reject, Reject::Ignore) {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.count(rcode_of(&reject));
                }
                tracing::debug!(client = %src, problem = reject.kind(), len = msg.len(), "malformed DNS message");
                return wire::write_reject(out, &reject);
            }
        };
        if q.opcode == OPCODE_NOTIFY {
            let known = published.peer_ips.contains(&src.ip());
            let rcode = if known {
                Rcode::NoError
            } else {
                Rcode::Refused
            };
            if known {
                self.counters.notify.fetch_add(1, Ordering::Relaxed);
                // The controller re-queries that peer now.
                let _ = self.notify.send(src.ip());
            } else {
                // Any source can be forged over UDP: once per spell (the
                // REFUSED replies are counted by RCODE).
                static SPELL: SharedSpell = SharedSpell::new(Duration::from_secs(10));
                if let Some(line) = SPELL.event(tokio::time::Instant::now().into_std()) {
                    tracing::info!(
                        client = %src, unlogged = line.folded,
                        "NOTIFY from an address that is not a peer refused (one line per spell)"
                    );
                }
            }
            self.count(rcode);
            wire::write_bare(out, &q, rcode, true);
            return true;
        }
        // Only class IN; zone transfers are not offered.
        if q.qclass != 1 || matches!(q.qtype, 251 | 252) {
            self.count(Rcode::Refused);
            wire::write_bare(out, &q, Rcode::Refused, false);
            return true;
        }
        let client = match q.edns.and_then(|e| e.ecs) {
            Some(ecs) if ecs.source > 0 => Some(Client {
                address: ecs.address,
                prefix: ecs.source,
                ecs: true,
            }),
            // ECS with SOURCE 0 opts out of being located.
            Some(_) => None,
            None => Some(Client {
                address: src.ip(),
                prefix: if src.is_ipv4() { 32 } else { 128 },
                ecs: false,
            }),
        };
        let query = Query {
            name: &self.name[..dotted],
            qtype: q.qtype,
            client,
        };
        let snapshot = &published.snapshot;
        let response = snapshot.resolve(&query, &mut self.picker);
        let counters = &self.counters;
        counters.rcode[response.rcode as usize].fetch_add(1, Ordering::Relaxed);
        if udp {
            counters.udp.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.tcp.fetch_add(1, Ordering::Relaxed);
        }
        wire::write_response(out, &q, dotted, &response, snapshot, udp);
        if udp && wire::is_truncated(out) {
            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    fn count(&self, rcode: Rcode) {
        self.counters.rcode[rcode as usize].fetch_add(1, Ordering::Relaxed);
    }
}

fn rcode_of(reject: &Reject<'_>) -> Rcode {
    match reject {
        Reject::Error { rcode, .. } => *rcode,
        // BADVERS is an extended code; count it with FORMERR.
        Reject::Ignore | Reject::BadVersion { .. } => Rcode::FormErr,
    }
}

/// Accepts and answers DNS over TCP; `counters` are the worker's (every
/// answerer `make` gives shares them).
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    counters: Arc<Counters>,
    make: impl Fn() -> Answerer,
) {
    let mut errors = halo_net::AcceptErrors::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(TCP_CLIENTS));
    let mut full = Spell::new(Duration::from_secs(10));
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                counters.tcp_accept_errors.fetch_add(1, Ordering::Relaxed);
                errors.failed(&e, "dns").await;
                continue;
            }
        };
        errors.accepted("dns");
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
            if let Some(line) = full.event(tokio::time::Instant::now().into_std()) {
                tracing::warn!(
                    client = %src, open = TCP_CLIENTS, unlogged = line.folded,
                    "DNS TCP connection closed: this worker has as many open as it takes \
                     (one line per spell, each counted)"
                );
            }
            continue;
        };
        let answerer = make();
        tokio::spawn(async move {
            tcp_connection(stream, src, answerer).await;
            drop(slot);
        });
    }
}

/// Length-prefixed messages, several per connection (RFC 7766), answered in order.
async fn tcp_connection(mut stream: TcpStream, src: SocketAddr, mut answerer: Answerer) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 512];
    // Length prefix + reply, kept for the connection's life: one write per
    // reply, no allocation per query.
    let mut reply = Vec::with_capacity(512);
    let mut framed = Vec::with_capacity(514);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = usize::from(u16::from_be_bytes(len));
        if buf.len() < n {
            buf.resize(n, 0);
        }
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf[..n])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        if !answerer.answer(&buf[..n], src, false, &mut reply) {
            continue;
        }
        let Ok(rlen) = u16::try_from(reply.len()) else {
            return;
        };
        framed.clear();
        framed.extend_from_slice(&rlen.to_be_bytes());
        framed.extend_from_slice(&reply);
        match tokio::time::timeout(TCP_IDLE, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                // Reset, not closed: a close would leave the unread replies
                // queued in the kernel, with the buffers they hold (as
                // nginx's reset_timedout_connection).
                let _ = stream.set_zero_linger();
                return;
            }
        }
    }
}

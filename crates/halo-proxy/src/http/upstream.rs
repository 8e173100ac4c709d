//! Connections to servers: opening them (with an optional PROXY header) and
//! keeping idle keep-alive ones per server for reuse.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use halo_config::SendProxy;
use tokio::time::Instant;

use super::h1::Conn;
use super::peer_io::ServerIo;
use crate::pool::ServerRuntime;

/// Idle connections beyond this many per server and thread are closed rather
/// than kept.
const MAX_IDLE: usize = 512;
/// Idle connections unused this long are closed when the pool is next touched
/// (HAProxy purges its idle server connections over `pool-purge-delay`, 5s;
/// servers commonly close theirs after 5s, Node.js among them).
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Each proxy thread keeps its own idle connections: a socket is registered
/// with the thread's event loop that opened it. (`halo run` runs one
/// single-threaded runtime per proxy thread; on a multi-threaded runtime a
/// connection may come back on another worker and be reused less.)
const SLOTS: usize = 16;

thread_local! {
    static SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS
    };
}

/// A server's idle keep-alive connections, most recently used last: reusing
/// the warmest one first lets the cold ones age out.
#[derive(Default)]
pub(crate) struct IdlePool {
    slots: [Mutex<Vec<(Conn, Instant)>>; SLOTS],
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self
            .slots
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        f.debug_struct("IdlePool").field("idle", &n).finish()
    }
}

impl IdlePool {
    fn slot(&self) -> std::sync::MutexGuard<'_, Vec<(Conn, Instant)>> {
        self.slots[SLOT.with(|s| *s)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection that can carry a request, if there is one.
    /// Connections the server has closed meanwhile are dropped on the way.
    pub(crate) fn take(&self) -> Option<Conn> {
        let mut conns = self.slot();
        while let Some((conn, _)) = conns.pop() {
            if conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to this server.
    pub(crate) fn put(&self, conn: Conn) {
        let now = Instant::now();
        let mut conns = self.slot();
        // The oldest are first: close those idle too long.
        let stale = conns
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
            .count();
        conns.drain(..stale);
        if conns.len() < MAX_IDLE {
            conns.push((conn, now));
        }
    }
}

/// Opens a new connection to `server`. With `send_proxy`, the PROXY header
/// naming `client` goes first; such a connection belongs to that client and
/// must not be pooled.
pub(crate) async fn connect(
    server: &ServerRuntime,
    send_proxy: SendProxy,
    client: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<Conn> {
    let header = (send_proxy != SendProxy::Off)
        .then(|| crate::proxy_protocol::header(send_proxy, client, local));
    Ok(Conn::new(
        match crate::tcp::open(server, header.as_deref()).await? {
            crate::tcp::Upstream::Plain(s) => ServerIo::Plain(s),
            crate::tcp::Upstream::Tls(s) => ServerIo::tls(*s),
        },
    ))
}

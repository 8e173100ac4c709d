//! Connections to servers: opening them (with an optional PROXY header) and
//! keeping idle keep-alive ones per server for reuse.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use halo_config::SendProxy;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::body::Body;
use crate::pool::ServerRuntime;

/// The request side of one HTTP/1.1 server connection.
pub(crate) type Sender = http1::SendRequest<Body>;

/// Idle connections beyond this many per server are closed rather than kept.
const MAX_IDLE_PER_SERVER: usize = 512;

/// A server's idle keep-alive connections, most recently used last: reusing
/// the warmest one first lets the cold ones age out at the server.
#[derive(Default)]
pub(crate) struct IdlePool {
    conns: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("IdlePool").field("idle", &n).finish()
    }
}

impl IdlePool {
    /// An idle connection that is ready for a request, if there is one.
    /// Connections the server has closed meanwhile are dropped on the way.
    pub(crate) async fn take(&self) -> Option<Sender> {
        loop {
            let mut sender = self
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            if sender.is_closed() {
                continue;
            }
            // Usually ready at once; right after a response ended, the
            // connection task may still be finishing it.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Keeps `sender` for the next request to this server.
    pub(crate) fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if conns.len() < MAX_IDLE_PER_SERVER {
            conns.push(sender);
        }
    }
}

/// Opens a new connection to `server` and starts its HTTP/1.1 client task.
/// With `send_proxy`, the PROXY header naming `client` goes first; such a
/// connection belongs to that client and must not be pooled.
pub(crate) async fn connect(
    server: &ServerRuntime,
    send_proxy: SendProxy,
    client: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<Sender> {
    let mut stream = crate::tcp::connect(&server.config.address).await?;
    if send_proxy != SendProxy::Off {
        let header = crate::proxy_protocol::header(send_proxy, client, local);
        stream.write_all(&header).await?;
    }
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    let name = server.config.name.clone();
    tokio::spawn(async move {
        // Upgrades hand the socket to a tunnel task instead of closing it.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(server = %name, error = %e, "server connection ended");
        }
    });
    Ok(sender)
}

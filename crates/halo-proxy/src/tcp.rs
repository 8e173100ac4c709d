//! TCP mode: accept, choose a server, connect (retrying other servers on
//! connect failure: nothing was sent yet, so it is always safe), then copy bytes
//! both ways until both sides close or the tunnel sits idle too long.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use halo_config::{SendProxy, ServerAddress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

use crate::Snapshot;

const COPY_BUFFER: usize = 32 * 1024;

pub(crate) async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let _ = client.set_nodelay(true);
                let snap = snapshot.load_full();
                tokio::spawn(handle(client, peer, Arc::clone(&name), snap));
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving what we can.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn handle(client: TcpStream, peer: SocketAddr, listener: Arc<str>, snapshot: Arc<Snapshot>) {
    let started = Instant::now();
    let Some(pool) = snapshot.default_pool(&listener) else {
        tracing::error!(listener = %listener, "listener has no pool in the running config");
        return;
    };
    let timeouts = pool.config.timeouts;
    let mut tried = Vec::new();
    for attempt in 0..=pool.config.retries {
        let Some(index) = pool.select(peer.ip(), &tried) else {
            break;
        };
        let in_flight = pool.start(index);
        let server = in_flight.server();
        match timeout(timeouts.connect, connect(&server.config.address)).await {
            Ok(Ok(mut upstream)) => {
                server.health.report_success();
                if pool.config.send_proxy != SendProxy::Off {
                    let local = client.local_addr().unwrap_or(peer);
                    let header = crate::proxy_protocol::header(pool.config.send_proxy, peer, local);
                    if let Err(e) = upstream.write_all(&header).await {
                        tracing::warn!(listener = %listener, server = %server.config.name, error = %e, "cannot send the PROXY header");
                        return;
                    }
                }
                let outcome = pump(client, upstream, timeouts.tunnel).await;
                let (up, down, result) = match &outcome {
                    Ok((up, down)) => (*up, *down, "closed".to_owned()),
                    Err(PumpError { up, down, error }) => (*up, *down, error.to_string()),
                };
                tracing::info!(
                    target: "halo::access",
                    listener = %listener, client = %peer, pool = %pool.config.name, server = %server.config.name,
                    bytes_up = up, bytes_down = down, retries = attempt, ms = started.elapsed().as_millis(),
                    result, "tcp"
                );
                return;
            }
            Ok(Err(e)) => {
                server.health.report_error();
                tracing::warn!(listener = %listener, pool = %pool.config.name, server = %server.config.name, error = %e, "connect failed, trying another server");
            }
            Err(_) => {
                server.health.report_error();
                tracing::warn!(listener = %listener, pool = %pool.config.name, server = %server.config.name, "connect timed out, trying another server");
            }
        }
        tried.push(index);
    }
    tracing::warn!(
        target: "halo::access",
        listener = %listener, client = %peer, pool = %pool.config.name, tried = tried.len(),
        ms = started.elapsed().as_millis(), result = "no server available", "tcp"
    );
}

async fn connect(address: &ServerAddress) -> std::io::Result<TcpStream> {
    let stream = match address {
        ServerAddress::Socket(a) => TcpStream::connect(a).await?,
        // Resolved on every connect, so a server whose address changes is followed.
        ServerAddress::Name { host, port } => TcpStream::connect((host.as_str(), *port)).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[derive(Debug)]
struct PumpError {
    up: u64,
    down: u64,
    error: std::io::Error,
}

/// Copies both directions concurrently. Each direction forwards EOF as a
/// half-close. It ends when both are done, on an error, or when neither side
/// has sent a byte for `idle`.
async fn pump(
    client: TcpStream,
    server: TcpStream,
    idle: Duration,
) -> Result<(u64, u64), PumpError> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let origin = Instant::now();
    // Milliseconds since `origin` of the last byte either way.
    let last = AtomicU64::new(0);
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);
    let up = copy_half(
        &mut client_read,
        &mut server_write,
        &last,
        &up_bytes,
        origin,
    );
    let down = copy_half(
        &mut server_read,
        &mut client_write,
        &last,
        &down_bytes,
        origin,
    );
    let watchdog = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = origin + since + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let result = tokio::select! {
        r = async { tokio::try_join!(up, down) } => r.map(|_| ()),
        () = watchdog => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("idle for {}s", idle.as_secs()))),
    };
    let (u, d) = (
        up_bytes.load(Ordering::Relaxed),
        down_bytes.load(Ordering::Relaxed),
    );
    match result {
        Ok(()) => Ok((u, d)),
        Err(error) => Err(PumpError {
            up: u,
            down: d,
            error,
        }),
    }
}

async fn copy_half<R, W>(
    from: &mut R,
    to: &mut W,
    last: &AtomicU64,
    bytes: &AtomicU64,
    origin: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other side may still be sending.
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        last.store(
            u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

//! TCP mode: accept, choose a server, connect (retrying other servers on
//! connect failure: nothing was sent yet, so it is always safe), then copy bytes
//! both ways until both sides close or the tunnel sits idle too long.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use halo_config::{Protocol, SendProxy};

use crate::pool::{ServerRuntime, Target};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::Snapshot;
use crate::pool::{Blame, NoServer};
use crate::stats::{Active, Counters};

const COPY_BUFFER: usize = 32 * 1024;

/// A `tcp` or `tls-passthrough` connection. `tls-passthrough` first reads
/// the ClientHello (up to `tls.handshake_timeout`) and routes its SNI like a
/// Host (exact, then wildcard; no SNI or no match: `default_pool`, else the
/// connection is closed); then every byte goes through untouched, the hello
/// first.
pub(crate) async fn handle(
    mut client: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    snapshot: Arc<Snapshot>,
) {
    let started = Instant::now();
    // A connection keeps the snapshot it started with, however long it lives.
    let Some(listener) = snapshot.listener(&name) else {
        return;
    };
    let counters = &listener.counters;
    let _active = Active::new(counters);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let passthrough = listener.protocol == Protocol::TlsPassthrough;
    let limit = if passthrough {
        listener.handshake_timeout
    } else {
        listener.request_header
    };
    let Some((peer, local)) = crate::client_addresses(
        &mut client,
        peer,
        listener.accept_proxy.then_some(limit),
        &name,
        counters,
    )
    .await
    else {
        return;
    };
    let (pool, hello) = if passthrough {
        match route_hello(&mut client, listener, &name, peer, started).await {
            Some(routed) => routed,
            None => return,
        }
    } else {
        match listener.router.default_pool() {
            Some(pool) => (pool, Vec::new()),
            None => {
                tracing::error!(listener = %name, "listener has no pool in the running config");
                return;
            }
        }
    };
    forward(
        client,
        (peer, local),
        &name,
        listener,
        pool,
        &hello,
        started,
    )
    .await;
}

/// Reads the ClientHello and picks the pool for its SNI; None: the
/// connection is to be closed (logged and counted).
async fn route_hello<'l>(
    client: &mut TcpStream,
    listener: &'l crate::ListenerRuntime,
    name: &str,
    peer: SocketAddr,
    started: Instant,
) -> Option<(&'l Arc<crate::PoolRuntime>, Vec<u8>)> {
    use crate::client_hello::{Hello, parse};
    let counters = &listener.counters;
    let refuse = |why: &str| {
        Counters::add(&counters.errors, 1);
        tracing::info!(target: "halo::access", listener = %name, client = %peer, result = why, "tls-passthrough");
    };
    let mut hello = Vec::with_capacity(2048);
    let sni = loop {
        match parse(&hello) {
            Hello::Complete(sni) => break sni,
            Hello::NeedMore => {}
            Hello::Invalid(why) => {
                refuse(why);
                return None;
            }
        }
        let read = timeout_at(
            started + listener.handshake_timeout,
            client.read_buf(&mut hello),
        );
        match read.await {
            Ok(Ok(1..)) => {}
            Ok(Ok(0) | Err(_)) => return None,
            Err(_) => {
                refuse("no ClientHello in time");
                return None;
            }
        }
    };
    let pool = match &sni {
        Some(host) => listener.router.route(host, "/"),
        None => listener.router.default_pool(),
    };
    if pool.is_none() {
        refuse(&format!(
            "no route for the SNI name {}",
            sni.as_deref().unwrap_or("(none)")
        ));
    }
    Some((pool?, hello))
}

/// Connects to a server of `pool` (another one on a connect failure), sends
/// `early` (bytes already read from the client), then copies both ways.
async fn forward(
    client: TcpStream,
    (peer, local): (SocketAddr, SocketAddr),
    name: &str,
    listener: &crate::ListenerRuntime,
    pool: &Arc<crate::PoolRuntime>,
    early: &[u8],
    started: Instant,
) {
    let counters = &listener.counters;
    pool.counters.requests.fetch_add(1, Ordering::Relaxed);
    let timeouts = pool.config.timeouts;
    let mut tried = Vec::new();
    let mut attempt: u32 = 0;
    let failure = loop {
        let in_flight = match pool.acquire(peer.ip(), &tried).await {
            Ok(f) => f,
            Err(NoServer::Unavailable) => break "no server available",
            Err(NoServer::QueueTimeout) => break "queue timeout",
        };
        let server = in_flight.server();
        let header = (pool.config.send_proxy != SendProxy::Off)
            .then(|| crate::proxy_protocol::header(pool.config.send_proxy, peer, local));
        let error = match timeout(timeouts.connect, open(server, header.as_deref())).await {
            Ok(Ok(mut upstream)) => {
                server.health.report_success();
                server.counters.requests.fetch_add(1, Ordering::Relaxed);
                if !early.is_empty() {
                    if let Err(e) = upstream.write_all(early).await {
                        tracing::warn!(listener = %name, server = %server.config.name, error = %e, "cannot send the ClientHello");
                        return;
                    }
                }
                let (cr, cw) = client.into_split();
                let outcome = match upstream {
                    Upstream::Plain(s) => {
                        let (sr, sw) = s.into_split();
                        pump(cr, cw, sr, sw, timeouts.tunnel).await
                    }
                    Upstream::Tls(s) => {
                        let (sr, sw) = tokio::io::split(s);
                        pump(cr, cw, sr, sw, timeouts.tunnel).await
                    }
                };
                let early = early.len() as u64;
                let (up, down, result) = match &outcome {
                    Ok((up, down)) => (*up + early, *down, None),
                    Err(PumpError { up, down, error }) => (*up + early, *down, Some(error)),
                };
                for c in [&server.counters, &pool.counters, counters] {
                    c.transfer(up, down);
                }
                if result.is_some() {
                    Counters::add(&server.counters.errors, 1);
                }
                if listener.access_log {
                    tracing::info!(
                        target: "halo::access",
                        listener = %name, client = %peer, pool = %pool.config.name, server = %server.config.name,
                        bytes_up = up, bytes_down = down, retries = attempt, ms = started.elapsed().as_millis(),
                        result = result.map_or_else(|| "closed".to_owned(), ToString::to_string), "tcp"
                    );
                }
                return;
            }
            Ok(Err(e)) => (e.to_string(), Blame::of_connect(&e)),
            Err(_) => (
                format!("connect timed out after {}ms", timeouts.connect.as_millis()),
                Blame::Connect,
            ),
        };
        let retry = error.1.retry_connect(pool.config.retry_on.conn_failure);
        if !in_flight.failed(&mut tried, &mut attempt, retry, (&error.0, error.1)) {
            break match error.1 {
                Blame::Local => "connect failed: local resources",
                Blame::Connect | Blame::Answer => "connect failed",
            };
        }
    };
    Counters::add(&pool.counters.errors, 1);
    Counters::add(&counters.errors, 1);
    if listener.access_log {
        tracing::warn!(
            target: "halo::access",
            listener = %name, client = %peer, pool = %pool.config.name, retries = attempt,
            ms = started.elapsed().as_millis(), result = failure, "tcp"
        );
    }
}

/// A connection to a server, in clear or over `[pool.tls]`.
pub(crate) enum Upstream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Upstream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(bytes).await,
            Self::Tls(s) => s.write_all(bytes).await,
        }
    }
}

/// Connects to `server`, sends `proxy_header` (in clear, as HAProxy sends
/// it before TLS), then does the TLS handshake if the pool speaks TLS. A
/// failed handshake is a failed connect (another server may be tried).
pub(crate) async fn open(
    server: &ServerRuntime,
    proxy_header: Option<&[u8]>,
) -> std::io::Result<Upstream> {
    let mut tcp = connect(server).await?;
    if let Some(h) = proxy_header {
        tcp.write_all(h).await?;
    }
    let Some((tls, host)) = &server.tls else {
        return Ok(Upstream::Plain(tcp));
    };
    match tls.as_ref() {
        Ok(tls) => Ok(Upstream::Tls(Box::new(
            tls.connect(tcp, host)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake: {e}")))?,
        ))),
        Err(why) => Err(std::io::Error::other(format!("TLS setup: {why}"))),
    }
}

pub(crate) async fn connect(server: &ServerRuntime) -> std::io::Result<TcpStream> {
    let stream = match &server.target {
        Target::Socket(a) => TcpStream::connect(a).await?,
        // Each resolved address in turn, in getaddrinfo's order.
        Target::Name(r) => TcpStream::connect(&r.addrs().await?[..]).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[derive(Debug)]
pub(crate) struct PumpError {
    pub(crate) up: u64,
    pub(crate) down: u64,
    pub(crate) error: std::io::Error,
}

/// Copies both directions concurrently. Each direction forwards EOF as a
/// half-close. It ends when both are done, on an error, or when neither side
/// has sent a byte for `idle`.
pub(crate) async fn pump<CR, CW, SR, SW>(
    mut client_read: CR,
    mut client_write: CW,
    mut server_read: SR,
    mut server_write: SW,
    idle: Duration,
) -> Result<(u64, u64), PumpError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
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

//! HTTP mode: HTTP/1.1 (keep-alive, pipelining) and HTTP/2 cleartext (prior
//! knowledge) from clients, HTTP/1.1 with pooled keep-alive connections to
//! servers.
//!
//! HTTP/1.1 clients are served by halo itself ([`server`]): heads parsed with
//! httparse, the server's head written from the client's bytes and the
//! client's from the server's, no `HeaderMap` either way. HTTP/2 clients go
//! through hyper's server ([`h2`]). Both meet in [`forward`].
//!
//! A request goes: route by Host and path → pick a server (health, tiers,
//! `max_conns` queue) → a pooled or new connection → forward, streaming the
//! body both ways. Failures are retried on another server when that is safe:
//! always when nothing was sent (connect failure), and for idempotent
//! requests without a body also when the server closed, reset, sent junk or
//! timed out before the first response byte (`retry_on`). A reused keep-alive
//! connection the server closed just as we sent is retried on a new connection
//! to the same server without counting as a retry: that is the keep-alive race,
//! not a sick server.

pub(crate) mod body;
pub(crate) mod h1;
mod h2;
pub(crate) mod peer_io;
pub(crate) mod request;
pub(crate) mod route;
mod server;
pub(crate) mod upstream;

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use halo_config::SendProxy;
use halo_log::escaped;
use http::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use self::body::{Counted, Decoder, UpstreamBody, Writer};
use self::h1::{Conn, Framing, HeadError, ResponseHead};
use crate::Snapshot;
use crate::pool::{Blame, InFlight, NoServer, PoolRuntime};
use crate::stats::{Active, Counters};

/// Request heads (request line and headers) larger than this get a 431.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// What every request of one client connection shares.
#[derive(Debug)]
struct ConnCtx {
    listener: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The snapshot of the connection's accept: if a reload removes the
    /// listener, its open connections finish their requests on it.
    accepted: Arc<Snapshot>,
    client: SocketAddr,
    local: SocketAddr,
    /// The client's address as an X-Forwarded-For element, made once per
    /// connection.
    client_ip: Box<[u8]>,
    counters: Arc<Counters>,
    /// The listener's limit for a request head, and for an idle keep-alive
    /// connection.
    request_header: Duration,
    /// The listener's limit for writing halo's own answers.
    client_timeout: Duration,
    /// The client spoke TLS to halo (X-Forwarded-Proto: https).
    https: bool,
}

impl ConnCtx {
    /// The listener (name, live snapshot, snapshot at accept), the client's
    /// and the local address, the listener's counters, its
    /// `request_header` and `client` limits, and whether TLS was spoken.
    fn new(
        (listener, snapshot, accepted): (Arc<str>, Arc<ArcSwap<Snapshot>>, Arc<Snapshot>),
        (client, local): (SocketAddr, SocketAddr),
        counters: Arc<Counters>,
        (request_header, client_timeout): (Duration, Duration),
        https: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            listener,
            snapshot,
            accepted,
            client,
            local,
            client_ip: client.ip().to_string().into_bytes().into_boxed_slice(),
            counters,
            request_header,
            client_timeout,
            https,
        })
    }

    /// X-Forwarded-Proto.
    fn proto(&self) -> &'static [u8] {
        if self.https { b"https" } else { b"http" }
    }
}

/// An `https` connection: the PROXY header if expected, the TLS handshake
/// (within `tls.handshake_timeout`), then HTTP/2 if ALPN chose it, else
/// HTTP/1.1, both served by hyper over the TLS stream.
pub(crate) async fn serve_tls(
    mut stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    accepted: Arc<Snapshot>,
) {
    let Some(l) = accepted.listener(&name) else {
        return;
    };
    let Some(crate::Acceptor(acceptor)) = l.tls.clone() else {
        return;
    };
    let (accept_proxy, handshake, request_header, client_timeout) = (
        l.accept_proxy,
        l.handshake_timeout,
        l.request_header,
        l.client,
    );
    let counters = Arc::clone(&l.counters);
    let _active = Active::new(&counters);
    let started = Instant::now();
    let Some((client, local)) = crate::client_addresses(
        &mut stream,
        peer,
        accept_proxy.then_some(handshake),
        &name,
        &counters,
    )
    .await
    else {
        return;
    };
    let tls = match tokio::time::timeout_at(started + handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            Counters::add(&counters.errors, 1);
            tracing::info!(target: "halo::access", listener = %name, client = %client, result = "TLS handshake failed", error = %e, "https");
            return;
        }
        Err(_) => {
            Counters::add(&counters.errors, 1);
            tracing::info!(target: "halo::access", listener = %name, client = %client, result = "TLS handshake not done in time", "https");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let ctx = ConnCtx::new(
        (name, snapshot, accepted),
        (client, local),
        counters,
        (request_header, client_timeout),
        true,
    );
    if h2 {
        h2::serve(ctx, tls, bytes::Bytes::new()).await;
    } else {
        // HTTP/1.1: halo's own engine, as for cleartext.
        let io = peer_io::ClientIo::tls(tls);
        server::serve(ctx, io).await;
    }
}

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    accepted: Arc<Snapshot>,
) {
    let (accept_proxy, request_header, counters) = match accepted.listener(&name) {
        Some(l) => (l.accept_proxy, l.request_header, Arc::clone(&l.counters)),
        None => return,
    };
    let active = Active::new(&counters);
    // Until the client sends its first byte, its connection costs only this
    // small future: the HTTP machinery is allocated once there is a request.
    // A client that sends nothing within `request_header` is closed.
    // (`readable()` is not enough: a fresh socket may report ready with no
    // data; peeking one byte waits for a real one, or for EOF.)
    // (`poll_peek` parks on the socket's own reader slot; tokio's `peek()`
    // future carries a waiter node, which every idle connection would keep.)
    let first_byte = std::future::poll_fn(|cx| {
        stream.poll_peek(cx, &mut tokio::io::ReadBuf::new(&mut [0u8; 1]))
    });
    if !matches!(timeout(request_header, first_byte).await, Ok(Ok(1..))) {
        return;
    }
    let settings = ConnSettings {
        accepted,
        accept_proxy,
        request_header,
        counters,
        _active: active,
    };
    Box::pin(serve_active(stream, peer, name, snapshot, settings)).await;
}

/// The listener settings a connection reads once, at accept.
struct ConnSettings {
    accepted: Arc<Snapshot>,
    accept_proxy: bool,
    request_header: Duration,
    counters: Arc<Counters>,
    /// Counts the connection in the listener's `active` from accept to close.
    _active: Active,
}

async fn serve_active(
    mut stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    settings: ConnSettings,
) {
    let ConnSettings {
        accepted,
        accept_proxy,
        request_header,
        counters,
        _active,
    } = settings;
    let Some((client, local)) = crate::client_addresses(
        &mut stream,
        peer,
        accept_proxy.then_some(request_header),
        &name,
        &counters,
    )
    .await
    else {
        return;
    };
    // Read here, not at accept: an idle connection's future stays small.
    let client_timeout = snapshot
        .load()
        .listener(&name)
        .map_or(Duration::from_secs(30), |l| l.client);
    let ctx = ConnCtx::new(
        (name, snapshot, accepted),
        (client, local),
        counters,
        (request_header, client_timeout),
        false,
    );
    server::serve(ctx, peer_io::ClientIo::Plain(stream)).await;
}

/// One line per request, written when the response body is done.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    listener: Arc<str>,
    client: SocketAddr,
    method: Method,
    host: String,
    path: String,
    status: u16,
    pool: String,
    server: String,
    retries: u32,
    started: Instant,
    head_ms: u128,
    pub(crate) result: &'static str,
}

impl AccessRecord {
    pub(crate) fn write(&self, bytes: u64) {
        tracing::info!(
            target: "halo::access",
            listener = %self.listener, client = %self.client, method = %self.method,
            host = %escaped(&self.host), path = %escaped(&self.path), status = self.status,
            pool = %self.pool,
            server = %self.server, retries = self.retries, head_ms = self.head_ms,
            ms = self.started.elapsed().as_millis(), bytes, result = self.result, "http"
        );
    }
}

/// Idempotent methods (RFC 9110 §9.2.2): safe to send twice.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A routed request, ready for [`forward`]: whichever side it came from.
pub(crate) struct Outgoing {
    /// The head for the server (see [`h1::encode_request`]).
    head: Vec<u8>,
    method: Method,
    /// The client's body, until a writer takes it.
    body: Option<Counted>,
    /// halo chunks the body (its length is unknown).
    chunked: bool,
    /// An HTTP/1.1 Upgrade request.
    upgrade: bool,
    /// An HTTP/1.1 client waiting for `100 Continue` before its body: told
    /// once a server has the head.
    send_continue: Option<Arc<peer_io::ClientIo>>,
    started: Instant,
    /// Host and path for the access log, when it is on.
    log: Option<(String, String)>,
}

/// What a request gets.
pub(crate) enum Reply {
    /// The server's head and its body (on a 101, the connection to tunnel).
    Server(ResponseHead, UpstreamBody),
    /// halo's own answer, already counted and logged.
    Generated(Generated),
}

/// A short plain-text answer written by halo. (Whether the connection
/// goes on after it is the HTTP/1.1 side's to say: it knows whether the
/// request's body was read.)
pub(crate) struct Generated {
    status: StatusCode,
    msg: String,
}

impl Generated {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }
}

/// Where [`route`] sends a request.
pub(crate) struct Routed {
    pool: Arc<PoolRuntime>,
    /// Write an access log line.
    log: bool,
    /// A reload removed the listener: this request is served on the
    /// connection's first snapshot, and the connection closes after it.
    retired: bool,
}

/// Routes a request on the listener's current table; `Err` is the 404,
/// counted and logged.
fn route(
    ctx: &ConnCtx,
    host: &str,
    path: &str,
    method: &Method,
    started: Instant,
) -> Result<Routed, Generated> {
    let snap = ctx.snapshot.load();
    let (listener, retired) = match snap.listener(&ctx.listener) {
        Some(l) => (l, false),
        None => match ctx.accepted.listener(&ctx.listener) {
            Some(l) => (l, true),
            None => {
                return Err(Generated::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 listener removed\n",
                ));
            }
        },
    };
    listener.counters.requests.fetch_add(1, Ordering::Relaxed);
    let log =
        listener.access_log && tracing::enabled!(target: "halo::access", tracing::Level::INFO);
    let host = route::normalize_host(host);
    match listener.router.route(&host, path) {
        Some(pool) => Ok(Routed {
            pool: Arc::clone(pool),
            log,
            retired,
        }),
        None => {
            let reply = Generated::new(
                StatusCode::NOT_FOUND,
                format!("404 no route for host \"{host}\"\n"),
            );
            let logged = log.then(|| (host.into_owned(), path.to_owned()));
            log_generated(
                ctx,
                &reply,
                method,
                logged.as_ref(),
                started,
                None,
                0,
                "no route",
            );
            Err(reply)
        }
    }
}

/// A request halo refuses before routing: counted and logged here (an HTTP/1.1
/// connection then closes).
fn client_error(
    ctx: &ConnCtx,
    status: StatusCode,
    msg: impl Into<String>,
    what: &str,
) -> Generated {
    Counters::add(&ctx.counters.errors, 1);
    ctx.counters.response(status.as_u16());
    tracing::info!(
        target: "halo::access",
        listener = %ctx.listener, client = %ctx.client, status = status.as_u16(),
        result = what, "http"
    );
    Generated::new(status, msg)
}

/// How one attempt on a server ended, when it did not produce a response.
enum Failure {
    /// Could not connect (nothing was sent), and whose fault that was.
    Connect(String, Blame),
    /// Closed or reset before any response byte.
    Empty(String),
    /// An unparsable response head.
    Junk(String),
    /// No response head within `timeouts.server`.
    Timeout,
}

#[allow(clippy::too_many_lines)] // one retry loop reads best in one place
async fn forward(mut out: Outgoing, ctx: &ConnCtx, pool: Arc<PoolRuntime>) -> Reply {
    pool.counters.requests.fetch_add(1, Ordering::Relaxed);
    let head_request = out.method == Method::HEAD;
    let cfg = &pool.config;
    // Requests that may be sent twice: idempotent, and no body to replay.
    let replayable = is_idempotent(&out.method) && out.body.is_none() && !out.upgrade;
    // A pooled connection carries other clients' requests: never with a PROXY
    // header (it names one client), never for an upgrade (the socket leaves).
    let poolable = cfg.send_proxy == SendProxy::Off && !out.upgrade;
    let mut tried: Vec<usize> = Vec::new();
    let mut retries: u32 = 0;
    let mut last_failure = None;

    let (status, msg, result) = 'servers: loop {
        let in_flight = match pool.acquire(ctx.client.ip(), &tried).await {
            Ok(f) => f,
            Err(why) => {
                break match (why, &last_failure) {
                    (NoServer::QueueTimeout, _) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 every server is busy: queue timeout\n",
                        "queue timeout",
                    ),
                    (NoServer::Unavailable, None) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 no server available\n",
                        "no server available",
                    ),
                    (NoServer::Unavailable, Some(f)) => failure_response(f),
                };
            }
        };
        let server = in_flight.server();
        let mut use_idle = poolable;

        // One server: a pooled connection, or a new one, until a response or
        // a failure that ends this server's turn.
        let (failure, allowed) = loop {
            let (mut conn, reused) = match use_idle.then(|| server.idle.take()).flatten() {
                Some(c) => (c, true),
                None => match timeout(
                    cfg.timeouts.connect,
                    upstream::connect(server, cfg.send_proxy, ctx.client, ctx.local),
                )
                .await
                {
                    Ok(Ok(c)) => (c, false),
                    Ok(Err(e)) => {
                        let blame = Blame::of_connect(&e);
                        let retry = blame.retry_connect(cfg.retry_on.conn_failure);
                        break (Failure::Connect(e.to_string(), blame), retry);
                    }
                    Err(_) => {
                        let e = format!(
                            "connect timed out after {}ms",
                            cfg.timeouts.connect.as_millis()
                        );
                        break (
                            Failure::Connect(e, Blame::Connect),
                            cfg.retry_on.conn_failure,
                        );
                    }
                },
            };

            if let Err(e) = conn.io.write_all(&mut [IoSlice::new(&out.head)]).await {
                // No request left: safe to send anywhere.
                if reused {
                    continue; // a pooled connection that just closed
                }
                let blame = Blame::of_connect(&e);
                let retry = blame.retry_connect(cfg.retry_on.conn_failure);
                break (Failure::Connect(e.to_string(), blame), retry);
            }
            if let Some(client) = out.send_continue.take() {
                // A client that cannot hear this will not send its body
                // either; the body writer then reports it.
                let _ = client
                    .write_all(&mut [IoSlice::new(server::CONTINUE)])
                    .await;
            }
            let writer = out
                .body
                .take()
                .map(|b| Writer::spawn(Arc::clone(&conn.io), b, out.chunked, cfg.timeouts.client));

            let read = timeout(cfg.timeouts.server, h1::read_head(&mut conn, head_request)).await;
            let client_failed = writer.as_ref().and_then(Writer::client_failed);
            if !matches!(read, Ok(Ok(_)))
                && let Some(stalled) = client_failed
            {
                // The client's fault, not the server's: no passive error.
                break 'servers if stalled {
                    (
                        StatusCode::REQUEST_TIMEOUT,
                        "408 the request body did not arrive in time\n",
                        "client timeout in body",
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        "400 the request body was cut short or malformed\n",
                        "client body error",
                    )
                };
            }
            match read {
                Ok(Ok(resp)) if resp.framing == Framing::Upgrade && !out.upgrade => {
                    let e = "101 Switching Protocols to a request that asked for no upgrade";
                    break (Failure::Junk(e.into()), false);
                }
                Ok(Ok(resp)) => {
                    return respond(resp, conn, writer, in_flight, ctx, retries, out);
                }
                Ok(Err(HeadError::Closed(e))) => {
                    let allowed = replayable && cfg.retry_on.empty_response;
                    if allowed && reused {
                        // The keep-alive race: try a fresh connection first.
                        use_idle = false;
                        continue;
                    }
                    break (Failure::Empty(e), allowed);
                }
                Ok(Err(HeadError::Junk(e))) => {
                    break (Failure::Junk(e), replayable && cfg.retry_on.junk_response);
                }
                Err(_) => {
                    break (
                        Failure::Timeout,
                        replayable && cfg.retry_on.response_timeout,
                    );
                }
            }
        };
        let (detail, blame) = match &failure {
            Failure::Connect(e, blame) => (e.as_str(), *blame),
            Failure::Empty(e) | Failure::Junk(e) => (e.as_str(), Blame::Answer),
            Failure::Timeout => ("response timeout", Blame::Answer),
        };
        if !in_flight.failed(&mut tried, &mut retries, allowed, (detail, blame)) {
            break failure_response(&failure);
        }
        last_failure = Some(failure);
    };
    // Out of servers or retries, the failure may not be retried, or the
    // client stalled.
    pool.counters.errors.fetch_add(1, Ordering::Relaxed);
    let reply = Generated::new(status, msg);
    log_generated(
        ctx,
        &reply,
        &out.method,
        out.log.as_ref(),
        out.started,
        Some(&pool),
        retries,
        result,
    );
    Reply::Generated(reply)
}

fn failure_response(f: &Failure) -> (StatusCode, &'static str, &'static str) {
    match f {
        // HAProxy answers a connect failure after its retries with 503.
        Failure::Connect(_, Blame::Local) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 the proxy is out of resources for a new server connection\n",
            "connect failed: local resources",
        ),
        Failure::Connect(_, Blame::Connect | Blame::Answer) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 no server could be reached\n",
            "connect failed",
        ),
        Failure::Empty(_) => (
            StatusCode::BAD_GATEWAY,
            "502 the server closed the connection without a response\n",
            "empty response",
        ),
        Failure::Junk(_) => (
            StatusCode::BAD_GATEWAY,
            "502 the server sent an invalid response\n",
            "invalid response",
        ),
        Failure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "504 the server did not answer in time\n",
            "server timeout",
        ),
    }
}

/// A server answered: counts it, judges it for passive health, and hands
/// the body (or the upgraded connection) over with the connection and the
/// in-flight slot, which the body frees when it ends.
fn respond(
    resp: ResponseHead,
    conn: Conn,
    writer: Option<Writer>,
    in_flight: InFlight,
    ctx: &ConnCtx,
    retries: u32,
    out: Outgoing,
) -> Reply {
    let server = in_flight.server();
    let status = resp.status;
    // HAProxy `observe layer7`: 100-499, 501 and 505 are good answers.
    // Counted only when the pool observes answers (`layer7`): a client that
    // knows a URL the server answers with 5xx could otherwise eject it.
    let bad = status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED;
    // (At `layer4`, any answer shows the server reachable.)
    if bad && in_flight.pool().config.passive.observe.answers() {
        server.health.report_error();
    } else {
        server.health.report_success();
    }
    server.counters.requests.fetch_add(1, Ordering::Relaxed);
    server.counters.response(status.as_u16());
    in_flight.pool().counters.response(status.as_u16());
    ctx.counters.response(status.as_u16());

    let pool = in_flight.pool();
    let record = out.log.map(|(host, path)| {
        Box::new(AccessRecord {
            listener: Arc::clone(&ctx.listener),
            client: ctx.client,
            method: out.method,
            host,
            path,
            status: status.as_u16(),
            pool: pool.config.name.clone(),
            server: server.config.name.clone(),
            retries,
            started: out.started,
            head_ms: out.started.elapsed().as_millis(),
            result: "ok",
        })
    });
    let mut body = UpstreamBody {
        conn: Some(conn),
        decoder: Decoder::new(resp.framing),
        keep_alive: resp.keep_alive,
        writer,
        listener: Arc::clone(&ctx.counters),
        idle: pool.config.timeouts.server,
        in_flight,
        sleep: None,
        bytes: 0,
        log: record,
    };
    if matches!(body.decoder, Decoder::Done) && resp.framing != Framing::Upgrade {
        // No body (HEAD, 204, 304, length 0): the connection is free now.
        body.finish();
    }
    Reply::Server(resp, body)
}

/// Counts and logs an answer halo wrote itself.
#[allow(clippy::too_many_arguments)]
fn log_generated(
    ctx: &ConnCtx,
    reply: &Generated,
    method: &Method,
    log: Option<&(String, String)>,
    started: Instant,
    pool: Option<&Arc<PoolRuntime>>,
    retries: u32,
    result: &'static str,
) {
    let status = reply.status.as_u16();
    ctx.counters.response(status);
    ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
    if let Some(p) = pool {
        p.counters.response(status);
    }
    if let Some((host, path)) = log {
        tracing::info!(
            target: "halo::access",
            listener = %ctx.listener, client = %ctx.client, method = %method,
            host = %escaped(host), path = %escaped(path),
            status, pool = pool.map_or("", |p| p.config.name.as_str()),
            server = "", retries, ms = started.elapsed().as_millis(), bytes = 0u64,
            result, "http"
        );
    }
}

//! HTTP mode: HTTP/1.1 (keep-alive) and HTTP/2 cleartext (prior knowledge)
//! from clients, HTTP/1.1 with pooled keep-alive connections to servers.
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
pub(crate) mod route;
pub(crate) mod upstream;

use std::convert::Infallible;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use halo_config::SendProxy;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use self::body::{Body, Counted, Decoder, UpstreamBody, Writer};
use self::h1::{Conn, Framing, HeadError, RequestBody, ResponseHead};
use crate::Snapshot;
use crate::pool::{InFlight, NoServer, PoolRuntime};
use crate::stats::{Active, Counters};

/// Request heads (request line and headers) larger than this get a 431.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// What every request of one client connection shares.
#[derive(Debug)]
struct ConnCtx {
    listener: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    client: SocketAddr,
    local: SocketAddr,
    /// The client's address as an X-Forwarded-For element, made once per
    /// connection.
    client_ip: HeaderValue,
    proto: HeaderValue,
    counters: Arc<Counters>,
}

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    snapshot: Arc<ArcSwap<Snapshot>>,
) {
    let (accept_proxy, request_header, counters) = match snapshot.load().listener(&name) {
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
        accept_proxy,
        request_header,
        counters,
        _active: active,
    };
    Box::pin(serve_active(stream, peer, name, snapshot, settings)).await;
}

/// The listener settings a connection reads once, at accept.
struct ConnSettings {
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
    let ctx = Arc::new(ConnCtx {
        listener: Arc::clone(&name),
        snapshot,
        client,
        local,
        client_ip: HeaderValue::from_str(&client.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown")),
        proto: HeaderValue::from_static("http"),
        counters,
    });

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also closes an idle keep-alive connection (HAProxy's
        // `timeout http-keep-alive` falls back to `http-request` too).
        .header_read_timeout(request_header)
        .max_buf_size(MAX_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
    let service = {
        let ctx = Arc::clone(&ctx);
        service_fn(move |req| handle(req, Arc::clone(&ctx)))
    };
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        report_connection_error(&ctx, e.as_ref());
    }
}

/// Connection-level errors are the client's: malformed heads (answered 400 or
/// 431 by hyper before we see a request), slow heads, resets.
fn report_connection_error(ctx: &ConnCtx, e: &(dyn std::error::Error + 'static)) {
    let hyper_err = e.downcast_ref::<hyper::Error>();
    let what = match hyper_err {
        Some(h) if h.is_parse_too_large() => "request head too large (431)",
        Some(h) if h.is_parse() => "malformed request (400)",
        Some(h) if h.is_timeout() => "request head not received in time",
        Some(h) if h.is_incomplete_message() => "client closed mid-request",
        _ => "client connection error",
    };
    Counters::add(&ctx.counters.errors, 1);
    tracing::info!(
        target: "halo::access",
        listener = %ctx.listener, client = %ctx.client, result = what, error = %e, "http"
    );
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
            host = %self.host, path = %self.path, status = self.status, pool = %self.pool,
            server = %self.server, retries = self.retries, head_ms = self.head_ms,
            ms = self.started.elapsed().as_millis(), bytes, result = self.result, "http"
        );
    }
}

async fn handle(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let snap = ctx.snapshot.load();
    let Some(listener) = snap.listener(&ctx.listener) else {
        return Ok(generated(
            StatusCode::SERVICE_UNAVAILABLE,
            "listener removed\n",
        ));
    };
    listener.counters.requests.fetch_add(1, Ordering::Relaxed);
    let log =
        listener.access_log && tracing::enabled!(target: "halo::access", tracing::Level::INFO);

    let host_value = request_host(&req);
    let raw_host = host_value
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = route::normalize_host(raw_host);
    let Some(pool) = listener.router.route(&host, req.uri().path()).cloned() else {
        let msg = format!("404 no route for host \"{host}\"\n");
        let resp = generated(StatusCode::NOT_FOUND, msg);
        let path = log.then(|| path_and_query(req.uri()));
        log_generated(
            &ctx,
            log,
            req.method(),
            &host,
            path.as_deref(),
            started,
            &resp,
            None,
            0,
            "no route",
        );
        return Ok(resp);
    };
    drop(snap);
    Ok(forward(req, host_value, ctx, pool, started, log).await)
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(String::new, ToString::to_string)
}

/// The Host header, or HTTP/2's :authority.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.headers().get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}

/// Idempotent methods (RFC 9110 §9.2.2): safe to send twice.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// How one attempt on a server ended, when it did not produce a response.
enum Failure {
    /// Could not connect (nothing was sent).
    Connect(String),
    /// Closed or reset before any response byte.
    Empty(String),
    /// An unparsable response head.
    Junk(String),
    /// No response head within `timeouts.server`.
    Timeout,
}

#[allow(clippy::too_many_lines)] // one retry loop reads best in one place
async fn forward(
    mut req: Request<Incoming>,
    host: Option<HeaderValue>,
    ctx: Arc<ConnCtx>,
    pool: Arc<PoolRuntime>,
    started: Instant,
    log: bool,
) -> Response<Body> {
    pool.counters.requests.fetch_add(1, Ordering::Relaxed);
    let upgrade = wants_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, incoming) = req.into_parts();
    let method = parts.method.clone();
    let path_for_log = log.then(|| path_and_query(&parts.uri));
    let raw_host = host.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");

    let has_body = !incoming.is_end_stream();
    let framing = if !has_body {
        RequestBody::None
    } else if parts.headers.contains_key(header::CONTENT_LENGTH) {
        RequestBody::Raw
    } else {
        RequestBody::Chunked
    };
    // Written once; a retry sends the same bytes.
    let head = h1::encode_request(
        &parts,
        &h1::Forwarded {
            host: host.as_ref(),
            client_ip: &ctx.client_ip,
            proto: &ctx.proto,
        },
        upgrade,
        framing,
    );
    let head_request = method == Method::HEAD;
    drop(parts);

    let cfg = &pool.config;
    // Requests that may be sent twice: idempotent, and no body to replay.
    let replayable = is_idempotent(&method) && !has_body && !upgrade;
    let mut body = has_body.then(|| Counted {
        inner: incoming,
        bytes: 0,
        counters: [Arc::clone(&ctx.counters), Arc::clone(&pool.counters)],
    });
    // A pooled connection carries other clients' requests: never with a PROXY
    // header (it names one client), never for an upgrade (the socket leaves).
    let poolable = cfg.send_proxy == SendProxy::Off && !upgrade;
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
                        break (Failure::Connect(e.to_string()), cfg.retry_on.conn_failure);
                    }
                    Err(_) => {
                        let e = format!(
                            "connect timed out after {}ms",
                            cfg.timeouts.connect.as_millis()
                        );
                        break (Failure::Connect(e), cfg.retry_on.conn_failure);
                    }
                },
            };

            if let Err(e) = h1::write_all(&conn.io, &mut [IoSlice::new(&head)]).await {
                // No request left: safe to send anywhere.
                if reused {
                    continue; // a pooled connection that just closed
                }
                break (Failure::Connect(e.to_string()), cfg.retry_on.conn_failure);
            }
            let writer = body.take().map(|b| {
                let chunked = framing == RequestBody::Chunked;
                Writer::spawn(Arc::clone(&conn.io), b, chunked, cfg.timeouts.client)
            });

            let read = timeout(cfg.timeouts.server, h1::read_head(&mut conn, head_request)).await;
            if !matches!(read, Ok(Ok(_))) && writer.as_ref().is_some_and(Writer::client_stalled) {
                // The client stalled, not the server: no passive error.
                break 'servers (
                    StatusCode::REQUEST_TIMEOUT,
                    "408 the request body did not arrive in time\n",
                    "client timeout in body",
                );
            }
            match read {
                Ok(Ok(resp)) if resp.framing == Framing::Upgrade && client_upgrade.is_none() => {
                    let e = "101 Switching Protocols to a request that asked for no upgrade";
                    break (Failure::Junk(e.into()), false);
                }
                Ok(Ok(resp)) => {
                    return respond(
                        resp,
                        conn,
                        writer,
                        in_flight,
                        &ctx,
                        client_upgrade,
                        retries,
                        started,
                        log.then(|| {
                            (
                                method,
                                raw_host.to_owned(),
                                path_for_log.unwrap_or_default(),
                            )
                        }),
                        cfg.timeouts.server,
                        cfg.timeouts.tunnel,
                    );
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
        let detail = match &failure {
            Failure::Connect(e) | Failure::Empty(e) | Failure::Junk(e) => e.as_str(),
            Failure::Timeout => "response timeout",
        };
        if !in_flight.failed(&mut tried, &mut retries, allowed, detail) {
            break failure_response(&failure);
        }
        last_failure = Some(failure);
    };
    // Out of servers or retries, the failure may not be retried, or the
    // client stalled.
    pool.counters.errors.fetch_add(1, Ordering::Relaxed);
    let mut resp = generated(status, msg);
    if status == StatusCode::REQUEST_TIMEOUT {
        // Its body is unread: the connection cannot carry another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    log_generated(
        &ctx,
        log,
        &method,
        raw_host,
        path_for_log.as_deref(),
        started,
        &resp,
        Some(&pool),
        retries,
        result,
    );
    resp
}

fn failure_response(f: &Failure) -> (StatusCode, &'static str, &'static str) {
    match f {
        // HAProxy answers a connect failure after its retries with 503.
        Failure::Connect(_) => (
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

#[allow(clippy::too_many_arguments)]
fn respond(
    resp: ResponseHead,
    conn: Conn,
    writer: Option<Writer>,
    in_flight: InFlight,
    ctx: &Arc<ConnCtx>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    retries: u32,
    started: Instant,
    log: Option<(Method, String, String)>,
    server_timeout: Duration,
    tunnel_timeout: Duration,
) -> Response<Body> {
    let server = in_flight.server();
    let status = resp.status;
    // HAProxy `observe layer7`: 100-499, 501 and 505 are good answers.
    let bad = status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED;
    if bad {
        server.health.report_error();
    } else {
        server.health.report_success();
    }
    server.counters.requests.fetch_add(1, Ordering::Relaxed);
    server.counters.response(status.as_u16());
    in_flight.pool().counters.response(status.as_u16());
    ctx.counters.response(status.as_u16());

    let record = log.map(|(method, host, path)| {
        Box::new(AccessRecord {
            listener: Arc::clone(&ctx.listener),
            client: ctx.client,
            method,
            host,
            path,
            status: status.as_u16(),
            pool: in_flight.pool().config.name.clone(),
            server: server.config.name.clone(),
            retries,
            started,
            head_ms: started.elapsed().as_millis(),
            result: "ok",
        })
    });

    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    // The version stays hyper's: it speaks the client's own version, and an
    // HTTP/1.0 server must not end the client's keep-alive.
    *response.headers_mut() = resp.headers;
    if resp.framing == Framing::Upgrade
        && let Some(client_upgrade) = client_upgrade
    {
        // The server switched protocols, as the client asked (`forward`
        // turns an unasked 101 into a bad-server failure).
        drop(writer);
        let Conn { io, buf } = conn;
        let Ok(io) = Arc::try_unwrap(io) else {
            return generated(StatusCode::BAD_GATEWAY, "502 upgrade failed\n");
        };
        tokio::spawn(tunnel(
            client_upgrade,
            io,
            buf.freeze(),
            in_flight,
            Arc::clone(&ctx.counters),
            tunnel_timeout,
            record,
        ));
        return response;
    }
    let mut body = UpstreamBody {
        conn: Some(conn),
        decoder: Decoder::new(resp.framing),
        keep_alive: resp.keep_alive,
        writer,
        in_flight,
        listener: Arc::clone(&ctx.counters),
        idle: server_timeout,
        sleep: None,
        bytes: 0,
        log: record,
    };
    if matches!(body.decoder, Decoder::Done) {
        // No body (HEAD, 204, 304, length 0): the connection is free now, not
        // whenever hyper drops the empty body.
        body.finish();
    }
    *response.body_mut() = Body::Upstream(body);
    response
}

/// Joins an upgraded client connection to the server's connection (`early`:
/// bytes the server sent right behind its 101).
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    server: TcpStream,
    early: Bytes,
    in_flight: InFlight,
    listener: Arc<Counters>,
    idle: Duration,
    record: Option<Box<AccessRecord>>,
) {
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "client upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let outcome = if early.is_empty() {
        Ok(())
    } else {
        client.write_all(&early).await
    };
    let outcome = match outcome {
        Ok(()) => {
            let (cr, cw) = tokio::io::split(client);
            let (sr, sw) = server.into_split();
            crate::tcp::pump(cr, cw, sr, sw, idle)
                .await
                .map(|(up, down)| (up, down + early.len() as u64))
        }
        Err(error) => Err(crate::tcp::PumpError {
            up: 0,
            down: 0,
            error,
        }),
    };
    let (up, down) = match &outcome {
        Ok(b) => *b,
        Err(e) => (e.up, e.down),
    };
    for c in [
        &in_flight.server().counters,
        &in_flight.pool().counters,
        &listener,
    ] {
        c.transfer(up, down);
    }
    if let Some(mut r) = record {
        r.result = if outcome.is_ok() {
            "tunnel closed"
        } else {
            "tunnel error"
        };
        r.write(down);
    }
}

/// A response halo wrote itself: short plain text, never cached.
fn generated(status: StatusCode, msg: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::text(msg));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[allow(clippy::too_many_arguments)]
fn log_generated(
    ctx: &ConnCtx,
    log: bool,
    method: &Method,
    host: &str,
    path: Option<&str>,
    started: Instant,
    resp: &Response<Body>,
    pool: Option<&Arc<PoolRuntime>>,
    retries: u32,
    result: &'static str,
) {
    let status = resp.status().as_u16();
    ctx.counters.response(status);
    ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
    if let Some(p) = pool {
        p.counters.response(status);
    }
    if log {
        tracing::info!(
            target: "halo::access",
            listener = %ctx.listener, client = %ctx.client, method = %method, host,
            path = path.unwrap_or_default(), status,
            pool = pool.map_or("", |p| p.config.name.as_str()),
            server = "", retries, ms = started.elapsed().as_millis(), bytes = 0u64,
            result, "http"
        );
    }
}

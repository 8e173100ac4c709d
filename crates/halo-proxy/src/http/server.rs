//! HTTP/1.1 from clients, served by halo (keep-alive and pipelining).
//!
//! Why not hyper's server: after halo's own client side, `bench/instructions.sh`
//! put most of the remaining user-space work per request in hyper's server
//! (request parse into a `HeaderMap`, a boxed timer per request, the response
//! `HeaderMap` halo had to build for it and its re-encoding). Here the
//! request head is parsed with httparse and the server's head is written
//! straight from its bytes; the server's response head goes to the client as
//! the bytes [`h1::read_head`] kept, plus framing and connection headers.
//! It also lets halo answer malformed requests with a body (hyper writes only
//! a status line) and bound writes to a client that stops reading
//! (`timeouts.client`).
//!
//! Request framing follows RFC 9112 §6.3: Transfer-Encoding with chunked last
//! is decoded (chunked wins over a Content-Length, and the connection closes
//! after), other codings get 501, a bad or conflicting Content-Length gets
//! 400. HTTP/2's preface on a new connection hands it to [`super::h2`].

use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::peer_io::{self, ClientIo};
use bytes::{Buf as _, BytesMut};
use http::{Method, StatusCode};
use tokio::time::{Instant, timeout, timeout_at};

use super::body::{
    self, ClientBody, Counted, Decoder, H1Body, LAST_CHUNK, SIZE_LINE, UpstreamBody, Writer,
};
use super::h1::{self, RequestBody, ResponseHead};
use super::{
    ConnCtx, Generated, MAX_HEAD, Outgoing, Reply, client_error, forward, h2, request, route,
};
use crate::pool::PoolRuntime;
use crate::stats::Counters;

/// What a client that sent `Expect: 100-continue` waits for.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Room made before each read of a request head.
const HEAD_READ: usize = 4 * 1024;

/// What the client's request asks of its connection.
#[derive(Debug, Clone, Copy)]
struct Conn {
    http11: bool,
    /// The client wants the connection kept open after the response.
    keep_alive: bool,
    head_request: bool,
    /// The request has a body (which must be read whole before the next
    /// request can be).
    has_body: bool,
}

/// A parsed request head, owned: what is left once its bytes are consumed.
enum Step {
    /// HTTP/2's preface.
    H2,
    /// halo answers itself (malformed, no route), then goes on or closes;
    /// the head's length (0: the connection closes anyway).
    Answer(usize, Conn, Generated),
    /// To a server.
    Forward(Box<Prepared>),
}

struct Prepared {
    len: usize,
    conn: Conn,
    pool: Arc<PoolRuntime>,
    out: Outgoing,
    /// Content-Length, or `None` for chunked; only when `conn.has_body`.
    length: Option<u64>,
    expect_continue: bool,
}

/// What a request halo refuses before reading it whole leaves: nothing to
/// go on with.
const REFUSED: Conn = Conn {
    http11: true,
    keep_alive: false,
    head_request: false,
    has_body: false,
};

/// Serves one client connection (its first byte has arrived).
pub(super) async fn serve(ctx: Arc<ConnCtx>, io: ClientIo) {
    let mut io = Arc::new(io);
    let mut buf = BytesMut::new();
    let mut first = true;
    loop {
        // The head, within `request_header` of when we started waiting for
        // it (which also bounds an idle keep-alive connection).
        let deadline = Instant::now() + ctx.request_header;
        let step = loop {
            // Only the first MAX_HEAD bytes may hold the head: a read can
            // carry the buffer past the limit together with the head's end.
            if let Some(step) = parse(&ctx, &buf[..buf.len().min(MAX_HEAD)], first) {
                break step;
            }
            if buf.len() >= MAX_HEAD {
                let g = client_error(
                    &ctx,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("431 request head over {} KiB\n", MAX_HEAD / 1024),
                    "request head too large",
                );
                break Step::Answer(0, REFUSED, g);
            }
            let fill =
                std::future::poll_fn(|cx| peer_io::poll_fill(&mut io, &mut buf, HEAD_READ, cx));
            match timeout_at(deadline, fill).await {
                Ok(Ok(1..)) => {}
                Ok(Ok(0) | Err(_)) => {
                    if !buf.is_empty() {
                        Counters::add(&ctx.counters.errors, 1);
                        tracing::info!(
                            target: "halo::access", listener = %ctx.listener,
                            client = %ctx.client, result = "client closed mid-request", "http"
                        );
                    }
                    return;
                }
                Err(_) if buf.is_empty() => return, // idle keep-alive: just close
                Err(_) => {
                    let g = client_error(
                        &ctx,
                        StatusCode::REQUEST_TIMEOUT,
                        "408 the request head did not arrive in time\n",
                        "request head not received in time",
                    );
                    break Step::Answer(0, REFUSED, g);
                }
            }
        };
        first = false;

        let (conn, reply) = match step {
            Step::H2 => {
                match Arc::try_unwrap(io) {
                    Ok(ClientIo::Plain(s)) => h2::serve(ctx, s, buf.freeze()).await,
                    // (Over TLS, ALPN chose HTTP/1.1, yet the client speaks
                    // HTTP/2: served all the same.)
                    Ok(ClientIo::Tls(m)) => {
                        let tls = m
                            .into_inner()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        h2::serve(ctx, tls, buf.freeze()).await;
                    }
                    Err(_) => {}
                }
                return;
            }
            Step::Answer(len, conn, g) => {
                buf.advance(len);
                (conn, Reply::Generated(g))
            }
            Step::Forward(p) => {
                let Prepared {
                    len,
                    conn,
                    pool,
                    mut out,
                    length,
                    expect_continue,
                } = *p;
                buf.advance(len);
                if conn.has_body {
                    let body = H1Body::new(Arc::clone(&io), std::mem::take(&mut buf), length);
                    out.body = Some(Counted {
                        inner: ClientBody::H1(body),
                        bytes: 0,
                        counters: [Arc::clone(&ctx.counters), Arc::clone(&pool.counters)],
                    });
                    out.send_continue = expect_continue.then(|| Arc::clone(&io));
                }
                (conn, forward(out, &ctx, pool).await)
            }
        };

        match reply {
            Reply::Generated(g) => {
                // A body halo did not read whole leaves the connection
                // unusable.
                let close = !conn.keep_alive || conn.has_body;
                let sent = write_generated(&ctx, &io, &g, conn.head_request, conn.http11, close);
                if !sent.await {
                    return;
                }
                if close {
                    linger(&io).await;
                    return;
                }
            }
            Reply::Server(head, body) if head.framing == h1::Framing::Upgrade => {
                tunnel(io, buf, head, body).await;
                return;
            }
            Reply::Server(head, body) => {
                let Some(writer) = write_response(&io, head, body, conn).await else {
                    return;
                };
                // The request body was read whole: the connection's buffer
                // (maybe holding the next request) comes back with it.
                if let Some(writer) = writer {
                    let Some(mut body) = writer.into_body().await else {
                        return;
                    };
                    if let ClientBody::H1(b) = &mut body.inner {
                        buf = std::mem::take(&mut b.buf);
                    }
                }
            }
        }
    }
}

/// Parses, checks and routes a request head at the start of `buf`; `None`
/// until the head is whole.
#[allow(clippy::too_many_lines)] // the head's rules, in the order RFC 9112 gives them
fn parse(ctx: &ConnCtx, buf: &[u8], first: bool) -> Option<Step> {
    if first {
        let n = buf.len().min(h2::PREFACE.len());
        if buf[..n] == h2::PREFACE[..n] {
            return (n == h2::PREFACE.len()).then_some(Step::H2);
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
    let req = match request::parse(buf, &mut headers) {
        request::Parsed::Partial => return None,
        request::Parsed::Request(req) => req,
        request::Parsed::Refused(r) => {
            let what = if r.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
                "request head too large"
            } else {
                "malformed request"
            };
            let msg = format!("{} {}\n", r.status.as_u16(), r.why);
            let g = client_error(ctx, r.status, msg, what);
            return Some(Step::Answer(0, REFUSED, g));
        }
    };
    let started = Instant::now();
    let has_body = req.has_body();
    let mut conn = Conn {
        http11: req.http11,
        keep_alive: req.keep_alive,
        head_request: req.method == Method::HEAD,
        has_body,
    };
    let path = req.target.split('?').next().unwrap_or("");
    let routed = route(ctx, req.host, path, &req.method, started);
    let super::Routed { pool, log, retired } = match routed {
        Ok(routed) => routed,
        Err(g) => return Some(Step::Answer(req.len, conn, g)),
    };
    // The listener is gone: this request is its last on the connection.
    conn.keep_alive &= !retired;
    let head = h1::encode_request(
        req.method.as_str().as_bytes(),
        req.target.as_bytes(),
        || req.header_pairs(),
        &h1::Forwarded {
            host: (!req.host.is_empty()).then_some(req.host.as_bytes()),
            replace_host: req.host_from_target,
            client_ip: &ctx.client_ip,
            proto: ctx.proto(),
        },
        req.upgrade,
        req.body,
    );
    let log = log.then(|| (req.host.to_owned(), req.target.clone().into_owned()));
    let chunked = req.body == RequestBody::Chunked;
    Some(Step::Forward(Box::new(Prepared {
        len: req.len,
        conn,
        pool,
        out: Outgoing {
            head,
            method: req.method,
            body: None,
            chunked,
            upgrade: req.upgrade,
            send_continue: None,
            started,
            log,
        },
        length: match req.body {
            RequestBody::Length(n) => Some(n),
            RequestBody::None | RequestBody::Chunked => None,
        },
        expect_continue: req.expect_continue,
    })))
}

/// Writes halo's own answer; `false` when the client could not take it.
async fn write_generated(
    ctx: &ConnCtx,
    io: &ClientIo,
    g: &Generated,
    head_request: bool,
    http11: bool,
    close: bool,
) -> bool {
    let mut out = Vec::with_capacity(192 + g.msg.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         cache-control: no-store\r\ncontent-length: {}\r\n",
        g.status.as_u16(),
        g.status.canonical_reason().unwrap_or(""),
        g.msg.len()
    );
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !http11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(g.msg.as_bytes());
    }
    let mut bufs = [IoSlice::new(&out)];
    let write = io.write_all(&mut bufs);
    matches!(timeout(ctx.client_timeout, write).await, Ok(Ok(())))
}

/// Closes after an answer that left client bytes unread: our side is shut
/// first and what the client still sends is read and dropped for a moment
/// (nginx's lingering close), because closing a socket with unread input
/// sends a reset, which can destroy the answer before the client reads it.
async fn linger(io: &ClientIo) {
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAIN: usize = 1 << 20;
    let deadline = Instant::now() + LINGER;
    if timeout_at(deadline, io.shutdown_write()).await.is_err() {
        return;
    }
    let mut drained = 0;
    let mut scratch = [0u8; 4096];
    while drained < MAX_DRAIN {
        match timeout_at(deadline, io.read_some(&mut scratch)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => drained += n,
        }
    }
}

/// Streams a server's response to the client. `None`: the connection is
/// done (the client asked, the framing needs a close, the body failed, or
/// the client stopped reading); otherwise the request-body writer, if any.
async fn write_response(
    io: &ClientIo,
    resp: ResponseHead,
    mut body: UpstreamBody,
    conn: Conn,
) -> Option<Option<Writer>> {
    let client_timeout = body.in_flight.pool().config.timeouts.client;
    // A body without a length: chunked for an HTTP/1.1 client; an HTTP/1.0
    // client reads it to the close.
    let open_ended = matches!(body.decoder, Decoder::Chunked(_) | Decoder::Close);
    let chunk = open_ended && conn.http11;
    let keep = conn.keep_alive && (conn.http11 || !open_ended);
    let mut head = resp.head;
    if chunk {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep {
        head.extend_from_slice(b"connection: close\r\n");
    } else if !conn.http11 {
        head.extend_from_slice(b"connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");

    let mut head = Some(head);
    loop {
        // The first frame rides with the head when it is already here (a
        // small response: one write for all of it).
        let polled = if head.is_some() {
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await
        } else {
            Poll::Ready(std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await)
        };
        let first = head.take();
        let first = first.as_deref().unwrap_or_default();
        let (data, end) = match &polled {
            Poll::Pending => (&[][..], false),
            Poll::Ready(Some(Ok(frame))) => (frame.data_ref().map_or(&[][..], |d| &d[..]), false),
            Poll::Ready(None) => (&[][..], true),
            // The server failed mid-body (logged by the body): the client
            // sees its response cut short.
            Poll::Ready(Some(Err(_))) => return None,
        };
        let mut line = [0u8; SIZE_LINE];
        let framed: [&[u8]; 3] = match (chunk, end) {
            (false, _) => [data, b"", b""],
            (true, true) => [LAST_CHUNK, b"", b""],
            (true, false) if data.is_empty() => [b"", b"", b""],
            (true, false) => body::chunk(data, &mut line),
        };
        let mut bufs = [first, framed[0], framed[1], framed[2]].map(IoSlice::new);
        if bufs.iter().any(|b| !b.is_empty()) {
            match timeout(client_timeout, io.write_all(&mut bufs)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    body.set_result("client aborted");
                    return None;
                }
                Err(_) => {
                    body.set_result("client timeout");
                    return None;
                }
            }
        }
        if end {
            break;
        }
    }
    let writer = body.writer.take();
    drop(body);
    keep.then_some(writer)
}

/// After a 101: the client's connection and the server's carry the new
/// protocol, bytes either side sent early first.
async fn tunnel(io: Arc<ClientIo>, early_up: BytesMut, resp: ResponseHead, mut body: UpstreamBody) {
    let Some(conn) = body.conn.take() else {
        return;
    };
    let (Ok(client), Ok(server)) = (Arc::try_unwrap(io), Arc::try_unwrap(conn.io)) else {
        body.set_result("tunnel error");
        return;
    };
    let early_down = conn.buf;
    let mut head = resp.head;
    head.extend_from_slice(b"\r\n");
    let idle = body.in_flight.pool().config.timeouts.tunnel;
    let started = async {
        client
            .write_all(&mut [IoSlice::new(&head), IoSlice::new(&early_down)])
            .await?;
        if !early_up.is_empty() {
            server.write_all(&mut [IoSlice::new(&early_up)]).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let outcome = match started.await {
        Ok(()) => {
            let (cr, cw) = client.into_halves();
            let (sr, sw) = server.into_halves();
            crate::tcp::pump(cr, cw, sr, sw, idle).await
        }
        Err(error) => Err(crate::tcp::PumpError {
            up: 0,
            down: 0,
            error,
        }),
    };
    body.end_tunnel(outcome, early_up.len() as u64, early_down.len() as u64);
}

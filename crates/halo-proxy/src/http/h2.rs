//! HTTP/2 from clients (cleartext with prior knowledge, or over TLS by
//! ALPN), served by hyper; each request meets the HTTP/1.1 server side in
//! [`forward`].

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::body::{Body, ClientBody, Counted};
use super::h1::{self, RequestBody};
use super::{ConnCtx, Generated, MAX_HEAD, Outgoing, Reply, client_error, forward, route};
use crate::stats::Counters;

/// The bytes an HTTP/2 client opens with (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves an HTTP/2 connection whose first bytes (`read`) were already read
/// to tell it from HTTP/1.1.
///
/// The connection is shut gracefully (GOAWAY; open streams finish) when no
/// stream has been open for the listener's `request_header` (as an idle
/// HTTP/1.1 keep-alive connection is closed, and HAProxy closes an idle
/// HTTP/2 one), or when a reload removed its listener (checked at the same
/// pace, at most `request_header` apart).
pub(super) async fn serve<IO>(ctx: Arc<ConnCtx>, io: IO, read: Bytes)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
    let activity = Arc::new(Activity::new());
    let service = {
        let ctx = Arc::clone(&ctx);
        let activity = Arc::clone(&activity);
        service_fn(move |req| handle(req, Arc::clone(&ctx), Open::new(&activity)))
    };
    let io = TokioIo::new(Rewind { read, io });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let idle = ctx.request_header;
    let mut closing = false;
    let result = loop {
        let check = activity.next_check(idle);
        tokio::select! {
            r = conn.as_mut() => break r,
            () = tokio::time::sleep_until(check), if !closing => {
                let retired = ctx.snapshot.load().listener(&ctx.listener).is_none();
                if retired || activity.idle_for(idle) {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    };
    if let Err(e) = result {
        Counters::add(&ctx.counters.errors, 1);
        tracing::info!(
            target: "halo::access",
            listener = %ctx.listener, client = %ctx.client, result = "client connection error",
            error = %e, "http"
        );
    }
}

/// The streams of one connection being answered, and when the last one
/// ended.
struct Activity {
    open: AtomicUsize,
    last_end: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            last_end: Mutex::new(Instant::now()),
        }
    }

    fn last_end(&self) -> Instant {
        *self.last_end.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// No stream open, and none for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        self.open.load(Ordering::Acquire) == 0 && self.last_end().elapsed() >= idle
    }

    /// When to look again: `idle` after the last stream ended, or `idle`
    /// from now while streams are open.
    fn next_check(&self, idle: Duration) -> Instant {
        let now = Instant::now();
        if self.open.load(Ordering::Acquire) > 0 {
            now + idle
        } else {
            (self.last_end() + idle).max(now)
        }
    }
}

/// One open stream of an [`Activity`]: counted from the request until its
/// response body is done or dropped (a reset stream included).
struct Open(Arc<Activity>);

impl Open {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // The time first, so a check that sees no stream open sees it.
        *self
            .0
            .last_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its stream counted as open.
struct Tracked {
    body: Body,
    _open: Open,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
    open: Open,
) -> Result<Response<Tracked>, Infallible> {
    let resp = respond(req, ctx).await;
    Ok(resp.map(|body| Tracked { body, _open: open }))
}

async fn respond(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Response<Body> {
    let started = Instant::now();
    // :authority, or a Host header.
    let host = match req.headers().get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let host_str = host.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
    // (On a listener a reload removed, streams are routed on the
    // connection's first snapshot until `serve` shuts the connection.)
    let (pool, log) = match route(&ctx, host_str, req.uri().path(), req.method(), started) {
        Ok(routed) => (routed.pool, routed.log),
        Err(reply) => return generated(reply),
    };
    let (parts, incoming) = req.into_parts();
    let has_body = !incoming.is_end_stream();
    // (The h2 layer checked the length against the DATA frames; halo still
    // reads it itself, to write the one it forwards.)
    let mut length = None;
    for v in parts.headers.get_all(header::CONTENT_LENGTH) {
        match h1::merge_length(length, v.as_bytes()) {
            Ok(n) => length = Some(n),
            Err(why) => {
                let status = http::StatusCode::BAD_REQUEST;
                return generated(client_error(&ctx, status, format!("400 {why}\n"), why));
            }
        }
    }
    let framing = match length {
        Some(n) => RequestBody::Length(n),
        None if has_body => RequestBody::Chunked,
        None => RequestBody::None,
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let head = h1::encode_request(
        parts.method.as_str().as_bytes(),
        target.as_bytes(),
        || {
            parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        },
        &h1::Forwarded {
            host: host.as_ref().map(HeaderValue::as_bytes),
            replace_host: false,
            client_ip: &ctx.client_ip,
            proto: ctx.proto(),
        },
        false,
        framing,
    );
    let log = log.then(|| (host_str.to_owned(), target.to_owned()));
    let out = Outgoing {
        head,
        method: parts.method,
        body: has_body.then(|| Counted {
            inner: ClientBody::H2(incoming),
            bytes: 0,
            counters: [Arc::clone(&ctx.counters), Arc::clone(&pool.counters)],
        }),
        chunked: framing == RequestBody::Chunked,
        upgrade: false,
        send_continue: None,
        started,
        log,
    };
    match forward(out, &ctx, pool).await {
        Reply::Server(head, body) => {
            let mut resp = Response::new(Body::Upstream(body));
            *resp.status_mut() = head.status;
            *resp.headers_mut() = head.header_map();
            resp
        }
        Reply::Generated(reply) => generated(reply),
    }
}

/// halo's own answer as a response for hyper.
fn generated(reply: Generated) -> Response<Body> {
    let mut resp = Response::new(Body::text(reply.msg));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A socket whose first bytes were already read: they are read again first.
struct Rewind<IO> {
    read: Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

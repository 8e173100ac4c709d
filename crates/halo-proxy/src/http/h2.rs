//! HTTP/2 from clients (cleartext with prior knowledge, or over TLS by
//! ALPN), served by hyper; each request meets the HTTP/1.1 server side in
//! [`forward`].

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
use super::{ConnCtx, Generated, MAX_HEAD, Outgoing, Reply, forward, route};
use crate::stats::Counters;

/// The bytes an HTTP/2 client opens with (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves an HTTP/2 connection whose first bytes (`read`) were already read
/// to tell it from HTTP/1.1.
pub(super) async fn serve<IO>(ctx: Arc<ConnCtx>, io: IO, read: Bytes)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
    let service = {
        let ctx = Arc::clone(&ctx);
        service_fn(move |req| handle(req, Arc::clone(&ctx)))
    };
    let io = TokioIo::new(Rewind { read, io });
    if let Err(e) = builder.serve_connection(io, service).await {
        Counters::add(&ctx.counters.errors, 1);
        tracing::info!(
            target: "halo::access",
            listener = %ctx.listener, client = %ctx.client, result = "client connection error",
            error = %e, "http"
        );
    }
}

async fn handle(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Result<Response<Body>, Infallible> {
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
    // (An HTTP/2 connection on a listener a reload removed goes on until
    // the client closes it; its streams are routed on its first snapshot.)
    let (pool, log) = match route(&ctx, host_str, req.uri().path(), req.method(), started) {
        Ok(routed) => (routed.pool, routed.log),
        Err(reply) => return Ok(generated(reply)),
    };
    let (parts, incoming) = req.into_parts();
    let has_body = !incoming.is_end_stream();
    let framing = if !has_body {
        RequestBody::None
    } else if parts.headers.contains_key(header::CONTENT_LENGTH) {
        RequestBody::Raw
    } else {
        RequestBody::Chunked
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
    Ok(match forward(out, &ctx, pool).await {
        Reply::Server(head, body) => {
            let mut resp = Response::new(Body::Upstream(body));
            *resp.status_mut() = head.status;
            *resp.headers_mut() = head.header_map();
            resp
        }
        Reply::Generated(reply) => generated(reply),
    })
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

//! The one body type of HTTP mode, in both directions. Bodies are streamed
//! frame by frame; none is ever collected whole.

use std::future::Future as _;
use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::h1::{self, Chunked, Conn, Decoded, Framing};
use crate::pool::InFlight;
use crate::stats::Counters;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way to a server, or a response body on its way to a
/// client.
#[derive(Debug)]
pub(crate) enum Body {
    /// A body halo generated (error pages).
    Full(Option<Bytes>),
    /// A server's response body; see [`UpstreamBody`].
    Upstream(UpstreamBody),
}

impl Body {
    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        Self::Full(Some(text.into()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Upstream(u) => Pin::new(u).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(data) => data.is_none(),
            Self::Upstream(u) => matches!(u.decoder, Decoder::Done),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Upstream(u) => match u.decoder {
                Decoder::Length(n) => SizeHint::with_exact(n),
                Decoder::Done => SizeHint::with_exact(0),
                Decoder::Chunked(_) | Decoder::Close => SizeHint::default(),
            },
        }
    }
}

/// A client's request body as it arrives.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// From an HTTP/2 stream (hyper).
    H2(Incoming),
    /// From an HTTP/1.1 connection, read by halo.
    H1(H1Body),
}

/// An HTTP/1.1 request body read from the client's connection (shared with
/// the task writing the response). Its buffer holds what the client sent
/// after the head: the body, and maybe the next request, which goes back to
/// the connection when the body is done.
#[derive(Debug)]
pub(crate) struct H1Body {
    pub(crate) io: Arc<super::peer_io::ClientIo>,
    pub(crate) buf: BytesMut,
    decoder: Decoder,
}

impl H1Body {
    /// A body of `length` bytes, or chunked (`None`).
    pub(crate) fn new(
        io: Arc<super::peer_io::ClientIo>,
        buf: BytesMut,
        length: Option<u64>,
    ) -> Self {
        let decoder = match length {
            Some(0) => Decoder::Done,
            Some(n) => Decoder::Length(n),
            None => Decoder::Chunked(Chunked::new()),
        };
        Self { io, buf, decoder }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(d)) => return Poll::Ready(Some(Ok(d))),
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
            match ready!(super::peer_io::poll_fill(
                &mut self.io,
                &mut self.buf,
                h1::BODY_READ,
                cx
            )) {
                Ok(0) => {
                    return Poll::Ready(Some(Err(
                        "the client closed the connection mid-body".into()
                    )));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }
}

/// A client's body, counting bytes into a listener's and a pool's counters
/// when it is dropped (one atomic add each per request, not per frame).
#[derive(Debug)]
pub(crate) struct Counted {
    pub(crate) inner: ClientBody,
    pub(crate) bytes: u64,
    /// The listener's and the pool's.
    pub(crate) counters: [Arc<Counters>; 2],
}

impl Counted {
    /// The client has sent the whole body: what was read is all there is.
    fn is_whole(&self) -> bool {
        match &self.inner {
            ClientBody::H1(b) => matches!(b.decoder, Decoder::Done),
            ClientBody::H2(incoming) => incoming.is_end_stream(),
        }
    }

    /// The next piece of data (trailers are not forwarded).
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        let data = match &mut self.inner {
            ClientBody::H1(b) => ready!(b.poll_data(cx)),
            ClientBody::H2(incoming) => loop {
                match ready!(Pin::new(&mut *incoming).poll_frame(cx)) {
                    None => break None,
                    Some(Err(e)) => break Some(Err(e.into())),
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            break Some(Ok(d));
                        }
                    }
                }
            },
        };
        if let Some(Ok(d)) = &data {
            self.bytes += d.len() as u64;
        }
        Poll::Ready(data)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        for c in &self.counters {
            Counters::add(&c.bytes_in, self.bytes);
        }
    }
}

/// How far a response body has been read.
#[derive(Debug)]
pub(crate) enum Decoder {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Until the server closes.
    Close,
    /// Read to its end.
    Done,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(0) | Framing::Upgrade => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Chunked::new()),
            Framing::Close => Self::Close,
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        match self {
            Self::Done => Ok(Decoded::End),
            Self::Length(_) | Self::Close if buf.is_empty() => Ok(Decoded::NeedMore),
            Self::Length(left) => {
                let (data, left) = h1::take(buf, *left);
                *self = if left == 0 {
                    Self::Done
                } else {
                    Self::Length(left)
                };
                Ok(Decoded::Data(data))
            }
            Self::Chunked(c) => {
                let d = c.decode(buf)?;
                if d == Decoded::End {
                    *self = Self::Done;
                }
                Ok(d)
            }
            Self::Close => Ok(Decoded::Data(buf.split().freeze())),
        }
    }
}

/// A task writing a request body to the server while the response is read
/// (a server may answer, or stream its answer, before the body ends). Aborted
/// when dropped: a body nobody waits for any more is not worth sending.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Ends with the body when it was written whole (an HTTP/1.1 client's
    /// connection wants its buffer back).
    task: Option<tokio::task::JoinHandle<Option<Counted>>>,
    /// One of the `BUSY`.. `ENDING` states below: `ENDING` before the write
    /// that completes the body, the others when the task ends (a client
    /// failure also just before the server's side is shut).
    state: Arc<AtomicU8>,
    /// Bounds the wait for the body's last write in [`Writer::into_body`].
    client_timeout: Duration,
}

/// A chunk-size line at most: 16 hex digits and CRLF.
pub(crate) const SIZE_LINE: usize = 16 + 2;

/// The last chunk and an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One chunk of `data` (not empty) as its three pieces: the size line
/// (formatted on the stack into `line`: no allocation per chunk), the data,
/// CRLF.
pub(crate) fn chunk<'a>(data: &'a [u8], line: &'a mut [u8; SIZE_LINE]) -> [&'a [u8]; 3] {
    let mut rest = &mut line[..];
    let _ = write!(rest, "{:x}\r\n", data.len());
    let used = SIZE_LINE - rest.len();
    [&line[..used], data, b"\r\n"]
}

/// The body is still being written.
const BUSY: u8 = 0;
/// The whole body was written.
const DONE: u8 = 1;
/// The client sent nothing for `timeouts.client`: the server's side was shut.
const CLIENT_TIMEOUT: u8 = 2;
/// The server stopped reading the body.
const FAILED: u8 = 3;
/// The client's body broke off (closed, reset, bad chunked encoding): the
/// server's side was shut for writing.
const CLIENT_ERROR: u8 = 4;
/// The client's body is whole; the writes that complete it for the server
/// are under way. Set before them: the server cannot answer a whole body
/// before this is visible, so the response side never mistakes a finishing
/// body for an unfinished one.
const ENDING: u8 = 5;

impl Writer {
    /// Starts writing `body` to the server (`chunked`: halo frames it). A
    /// client that sends nothing for `client_timeout` ends it: the server's
    /// side is shut for writing, so it sees the body cut short.
    pub(crate) fn spawn(
        io: Arc<super::peer_io::ServerIo>,
        mut body: Counted,
        chunked: bool,
        client_timeout: Duration,
    ) -> Self {
        let state = Arc::new(AtomicU8::new(BUSY));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let end = loop {
                let next = std::future::poll_fn(|cx| body.poll_data(cx));
                let data = match tokio::time::timeout(client_timeout, next).await {
                    Err(_) => {
                        // Known before the server can react to the cut.
                        shared.store(CLIENT_TIMEOUT, Ordering::Release);
                        io.shutdown_write().await;
                        break CLIENT_TIMEOUT;
                    }
                    Ok(None) => {
                        shared.store(ENDING, Ordering::Release);
                        let last = if chunked {
                            io.write_all(&mut [IoSlice::new(LAST_CHUNK)]).await
                        } else {
                            Ok(())
                        };
                        break if last.is_ok() { DONE } else { FAILED };
                    }
                    Ok(Some(Ok(data))) => data,
                    Ok(Some(Err(e))) => {
                        tracing::debug!(error = %e, "client request body failed");
                        // The server must not wait for the rest; the state
                        // is known before the server can react to the cut.
                        shared.store(CLIENT_ERROR, Ordering::Release);
                        io.shutdown_write().await;
                        break CLIENT_ERROR;
                    }
                };
                if data.is_empty() {
                    continue;
                }
                if !chunked && body.is_whole() {
                    // This write completes the body (a chunked one ends
                    // with its last chunk, above).
                    shared.store(ENDING, Ordering::Release);
                }
                let written = if chunked {
                    let mut line = [0u8; SIZE_LINE];
                    let mut bufs = chunk(&data, &mut line).map(IoSlice::new);
                    io.write_all(&mut bufs).await
                } else {
                    io.write_all(&mut [IoSlice::new(&data)]).await
                };
                if let Err(e) = written {
                    tracing::debug!(error = %e, "server stopped reading the request body");
                    break FAILED;
                }
            };
            // Let go of the socket first: a finished writer means the
            // response side holds the only handle.
            drop(io);
            shared.store(end, Ordering::Release);
            (end == DONE).then_some(body)
        });
        Self {
            task: Some(task),
            state,
            client_timeout,
        }
    }

    /// The whole body went out (and the task has let go of the socket).
    pub(crate) fn done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Why the client's body did not arrive whole, if it is the client's
    /// fault (the server's side was then shut): `Some(true)` it stalled for
    /// `timeouts.client`, `Some(false)` it broke off.
    pub(crate) fn client_failed(&self) -> Option<bool> {
        match self.state.load(Ordering::Acquire) {
            CLIENT_TIMEOUT => Some(true),
            CLIENT_ERROR => Some(false),
            _ => None,
        }
    }

    /// The body, if the client sent it whole and it was written whole. A
    /// body still arriving from the client gives None at once (the
    /// connection cannot carry another request); one whose last write is
    /// under way is waited for, up to `timeouts.client`.
    pub(crate) async fn into_body(mut self) -> Option<Counted> {
        if !matches!(self.state.load(Ordering::Acquire), DONE | ENDING) {
            return None;
        }
        let mut task = self.task.take()?;
        if let Ok(joined) = tokio::time::timeout(self.client_timeout, &mut task).await {
            joined.ok().flatten()
        } else {
            task.abort();
            None
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A server's response body, read from the connection by the task that
/// forwards it. It gives the connection back to the server's idle pool once
/// the body has been read to its end (and the request body written), cuts
/// the response when the server sends nothing for `idle` (`timeouts.server`),
/// and counts bytes.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// The connection, until the body ends or fails.
    pub(crate) conn: Option<Conn>,
    pub(crate) decoder: Decoder,
    /// The server lets the connection carry another request.
    pub(crate) keep_alive: bool,
    pub(crate) writer: Option<Writer>,
    /// Held until the body ends, so least-conn and `max_conns` see a
    /// streaming response as in flight.
    pub(crate) in_flight: InFlight,
    pub(crate) listener: Arc<Counters>,
    pub(crate) idle: Duration,
    /// Made only once the server has kept us waiting: most small responses
    /// arrive with their head and never touch the timer.
    pub(crate) sleep: Option<Pin<Box<Sleep>>>,
    pub(crate) bytes: u64,
    /// The access log line, written when the body ends or is dropped.
    pub(crate) log: Option<Box<super::AccessRecord>>,
}

impl UpstreamBody {
    pub(crate) fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => {
                    this.bytes += data.len() as u64;
                    if let Some(sleep) = &mut this.sleep {
                        sleep.as_mut().reset(Instant::now() + this.idle);
                    }
                    if matches!(this.decoder, Decoder::Done) {
                        // The last bytes are in hand: free the connection
                        // now; hyper may not poll an ended body again.
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return this.fail("invalid response body", e.into()),
            }
            match super::peer_io::poll_fill(&mut conn.io, &mut conn.buf, h1::BODY_READ, cx) {
                Poll::Ready(Ok(0)) if matches!(this.decoder, Decoder::Close) => {
                    // The close is this body's end; the connection is spent.
                    this.decoder = Decoder::Done;
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return this.fail(
                        "server aborted the body",
                        "the server closed the connection mid-body".into(),
                    );
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail("server aborted the body", e.into()),
                Poll::Pending => {
                    let idle = this.idle;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    ready!(sleep.as_mut().poll(cx));
                    return this.fail(
                        "server timeout in body",
                        format!("server sent nothing for {}ms", idle.as_millis()).into(),
                    );
                }
            }
        }
    }

    /// Sets what the access log line will say of the request.
    /// A tunnel after a 101 ended: counts its bytes (plus what either side
    /// sent early, before the pump) and says how it ended in the log line
    /// the body's drop writes.
    pub(crate) fn end_tunnel(
        &mut self,
        outcome: Result<(u64, u64), crate::tcp::PumpError>,
        early_up: u64,
        early_down: u64,
    ) {
        let ok = outcome.is_ok();
        let (up, down) = match outcome {
            Ok(b) => b,
            Err(e) => (e.up, e.down),
        };
        for c in [
            &self.in_flight.server().counters,
            &self.in_flight.pool().counters,
            &self.listener,
        ] {
            Counters::add(&c.bytes_in, up + early_up);
        }
        self.bytes = down + early_down;
        self.set_result(if ok { "tunnel closed" } else { "tunnel error" });
    }

    pub(crate) fn set_result(&mut self, result: &'static str) {
        if let Some(log) = &mut self.log {
            log.result = result;
        }
    }

    /// The body cannot be completed: the connection is dropped mid-body.
    fn fail(
        &mut self,
        result: &'static str,
        error: BoxError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.set_result(result);
        self.conn = None;
        self.writer = None;
        Poll::Ready(Some(Err(error)))
    }

    /// The body was read to its end: the connection can serve another
    /// request if the server allows it, nothing unread follows, and the
    /// request body went out whole (its writer has let go of the socket).
    pub(crate) fn finish(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // The writer stays: an HTTP/1.1 client's connection takes its body back.
        let written = self.writer.as_ref().is_none_or(Writer::done);
        if self.keep_alive && written && conn.buf.is_empty() && Arc::get_mut(&mut conn.io).is_some()
        {
            self.in_flight.server().idle.put(conn);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        Counters::add(&self.in_flight.server().counters.bytes_out, self.bytes);
        Counters::add(&self.in_flight.pool().counters.bytes_out, self.bytes);
        Counters::add(&self.listener.bytes_out, self.bytes);
        if let Some(log) = self.log.take() {
            log.write(self.bytes);
        }
    }
}

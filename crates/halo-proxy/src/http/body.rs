//! The one body type of HTTP mode, in both directions. Bodies are streamed
//! frame by frame; none is ever collected whole.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::upstream::Sender;
use crate::pool::InFlight;
use crate::stats::Counters;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way to a server, or a response body on its way to a
/// client.
#[derive(Debug)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A body halo generated (error pages).
    Full(Option<Bytes>),
    /// A client's request body, counted into `bytes_in` as it passes.
    Request(Counted),
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
            Self::Empty => Poll::Ready(None),
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Request(c) => Pin::new(c).poll_frame(cx),
            Self::Upstream(u) => Pin::new(u).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(data) => data.is_none(),
            Self::Request(c) => c.inner.is_end_stream(),
            Self::Upstream(u) => u.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Request(c) => c.inner.size_hint(),
            Self::Upstream(u) => u.inner.size_hint(),
        }
    }
}

/// A client's body, counting bytes into a listener's and a pool's counters
/// when it is dropped (one atomic add each per request, not per frame).
#[derive(Debug)]
pub(crate) struct Counted {
    pub(crate) inner: Incoming,
    pub(crate) bytes: u64,
    /// The listener's and the pool's.
    pub(crate) counters: [Arc<Counters>; 2],
}

impl Counted {
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(d) = f.data_ref()
        {
            this.bytes += d.len() as u64;
        }
        Poll::Ready(frame.map(|r| r.map_err(Into::into)))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        for c in &self.counters {
            Counters::add(&c.bytes_in, self.bytes);
        }
    }
}

/// A server's response body. It gives the connection back to the server's idle
/// pool once the body has been read to its end, cuts the response when the
/// server sends nothing for `idle` (`timeouts.server`), and counts bytes.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    pub(crate) inner: Incoming,
    /// Held until the body ends, so least-conn and `max_conns` see a
    /// streaming response as in flight.
    pub(crate) in_flight: InFlight,
    /// The connection, while it may still go back to the idle pool.
    pub(crate) sender: Option<Sender>,
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
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                match &frame {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            this.bytes += d.len() as u64;
                        }
                        if let Some(sleep) = &mut this.sleep {
                            sleep.as_mut().reset(Instant::now() + this.idle);
                        }
                    }
                    Some(Err(_)) => {
                        if let Some(log) = &mut this.log {
                            log.result = "server aborted the body";
                        }
                        this.sender = None;
                    }
                    None => this.finish(),
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(sleep.as_mut().poll(cx));
                if let Some(log) = &mut this.log {
                    log.result = "server timeout in body";
                }
                // The connection is mid-body: it cannot be reused.
                this.sender = None;
                Poll::Ready(Some(Err(format!(
                    "server sent nothing for {}ms",
                    idle.as_millis()
                )
                .into())))
            }
        }
    }

    /// The body was read to its end: the connection can serve another request.
    fn finish(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.in_flight.server().idle.put(sender);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body that was empty from the start (204, HEAD, Content-Length: 0)
        // is never polled; it still ended cleanly.
        if self.inner.is_end_stream() {
            self.finish();
        }
        Counters::add(&self.in_flight.server().counters.bytes_out, self.bytes);
        Counters::add(&self.in_flight.pool().counters.bytes_out, self.bytes);
        Counters::add(&self.listener.bytes_out, self.bytes);
        if let Some(log) = self.log.take() {
            log.write(self.bytes);
        }
    }
}

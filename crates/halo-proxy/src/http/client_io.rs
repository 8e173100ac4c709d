//! A client's connection as halo's HTTP/1.1 engine (`server`) uses it: a
//! socket, or a TLS stream over one (`https`). The engine shares it between
//! the request's task and a request-body reader (`Arc`); a TLS stream's
//! state is one, so it sits behind a mutex that is only held for one poll
//! (the engine's tasks of a connection run on one thread: it never waits).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// One client connection.
#[derive(Debug)]
pub(crate) enum ClientIo {
    Plain(TcpStream),
    /// Boxed: a TLS stream is over a kilobyte, a socket 40 bytes.
    Tls(Box<Mutex<Tls>>),
}

fn lock(m: &Mutex<Tls>) -> MutexGuard<'_, Tls> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientIo {
    /// Writes all of `bufs` (vectored: head and body in one system call on a
    /// socket; one TLS flush).
    pub(crate) async fn write_all(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        match self {
            Self::Plain(s) => super::h1::write_all(s, bufs).await,
            Self::Tls(m) => {
                let mut bufs = bufs;
                while !bufs.is_empty() {
                    let n = std::future::poll_fn(|cx| {
                        Pin::new(&mut *lock(m)).poll_write_vectored(cx, bufs)
                    })
                    .await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    IoSlice::advance_slices(&mut bufs, n);
                }
                std::future::poll_fn(|cx| Pin::new(&mut *lock(m)).poll_flush(cx)).await
            }
        }
    }

    /// No more bytes to the client (TLS: close_notify first).
    pub(crate) async fn shutdown_write(&self) {
        match self {
            Self::Plain(s) => {
                let _ = socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write);
            }
            Self::Tls(m) => {
                let _ = std::future::poll_fn(|cx| Pin::new(&mut *lock(m)).poll_shutdown(cx)).await;
            }
        }
    }

    /// Reads and drops up to `scratch` bytes; `Ok(0)` at the client's close.
    pub(crate) async fn read_some(&self, scratch: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => loop {
                s.readable().await?;
                match s.try_read(scratch) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => return r,
                }
            },
            Self::Tls(m) => {
                std::future::poll_fn(|cx| {
                    let mut rb = tokio::io::ReadBuf::new(scratch);
                    ready!(Pin::new(&mut *lock(m)).poll_read(cx, &mut rb))?;
                    Poll::Ready(Ok(rb.filled().len()))
                })
                .await
            }
        }
    }

    /// Both ways as halves, for a tunnel after a 101.
    pub(crate) fn into_halves(
        self,
    ) -> (
        Box<dyn AsyncRead + Unpin + Send>,
        Box<dyn AsyncWrite + Unpin + Send>,
    ) {
        match self {
            Self::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Self::Tls(m) => {
                let (r, w) =
                    tokio::io::split(m.into_inner().unwrap_or_else(PoisonError::into_inner));
                (Box::new(r), Box::new(w))
            }
        }
    }
}

/// Reads what the client has sent into `buf`, making room for `room` bytes
/// first. `Ok(0)` is the client's close.
pub(crate) fn poll_fill(
    io: &mut Arc<ClientIo>,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    super::h1::make_room(buf, room);
    // Ours alone: through `AsyncRead` (on a socket tokio then knows a short
    // read drained it and skips the read that would only say EAGAIN).
    if let Some(io) = Arc::get_mut(io) {
        return match io {
            ClientIo::Plain(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
            ClientIo::Tls(m) => {
                let tls = m.get_mut().unwrap_or_else(PoisonError::into_inner);
                tokio_util::io::poll_read_buf(Pin::new(tls), cx, buf)
            }
        };
    }
    // A request-body reader or a 100-continue writer holds the other handle.
    match &**io {
        ClientIo::Plain(s) => super::h1::poll_read_shared(s, buf, cx),
        ClientIo::Tls(m) => tokio_util::io::poll_read_buf(Pin::new(&mut *lock(m)), cx, buf),
    }
}

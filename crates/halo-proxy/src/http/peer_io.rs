//! A connection as halo's HTTP/1.1 engine uses it, on either side: a socket,
//! or a TLS stream over one (a client of an `https` listener: [`ClientIo`];
//! a server of a pool with `[pool.tls]`: [`ServerIo`]). The engine shares it
//! between the request's task and a body reader or writer (`Arc`); a TLS
//! stream's state is one, so it sits behind a mutex that is only held for
//! one poll (the engine's tasks of a connection run on one thread: it never
//! waits).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// One connection: a socket, or TLS over one (`T`).
#[derive(Debug)]
pub(crate) enum Io<T> {
    Plain(TcpStream),
    /// Boxed: a TLS stream is over a kilobyte, a socket 40 bytes.
    Tls(Box<Mutex<T>>),
}

/// A client's connection.
pub(crate) type ClientIo = Io<tokio_rustls::server::TlsStream<TcpStream>>;
/// A connection to a server.
pub(crate) type ServerIo = Io<tokio_rustls::client::TlsStream<TcpStream>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io<T> {
    pub(crate) fn tls(stream: T) -> Self {
        Self::Tls(Box::new(Mutex::new(stream)))
    }

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

    /// No more bytes to the peer (TLS: close_notify first).
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

    /// Reads and drops up to `scratch` bytes; `Ok(0)` at the peer's close.
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

/// Reads what the peer has sent into `buf`, making room for `room` bytes
/// first. `Ok(0)` is the peer's close.
pub(crate) fn poll_fill<T: AsyncRead + Unpin>(
    io: &mut Arc<Io<T>>,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    super::h1::make_room(buf, room);
    // Ours alone: through `AsyncRead` (on a socket tokio then knows a short
    // read drained it and skips the read that would only say EAGAIN).
    if let Some(io) = Arc::get_mut(io) {
        return match io {
            Io::Plain(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
            Io::Tls(m) => {
                let tls = m.get_mut().unwrap_or_else(PoisonError::into_inner);
                tokio_util::io::poll_read_buf(Pin::new(tls), cx, buf)
            }
        };
    }
    // A body reader or writer, or a 100-continue writer, holds the other handle.
    match &**io {
        Io::Plain(s) => super::h1::poll_read_shared(s, buf, cx),
        Io::Tls(m) => tokio_util::io::poll_read_buf(Pin::new(&mut *lock(m)), cx, buf),
    }
}

impl ServerIo {
    /// Whether an idle server connection can still carry a request: no byte
    /// and no close from the server since its last response. Costs no
    /// system call unless the socket has become readable.
    pub(crate) fn is_usable(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self {
            Self::Plain(s) => match s.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                // Readable: a close, a reset, or bytes nobody asked for; or
                // a stale readiness, which a one-byte probe read tells apart.
                Poll::Ready(Ok(())) => {
                    matches!(s.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                }
                Poll::Ready(Err(_)) => false,
            },
            // A read that finds no application data is Pending (records
            // such as session tickets are taken in passing); data, a
            // close_notify or an error mean the connection is done.
            Self::Tls(m) => {
                let mut one = [0u8; 1];
                let mut rb = tokio::io::ReadBuf::new(&mut one);
                Pin::new(&mut *lock(m))
                    .poll_read(&mut cx, &mut rb)
                    .is_pending()
            }
        }
    }
}

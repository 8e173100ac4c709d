//! The admin listener's connections, bounded: the admin API must never be
//! the way to starve a node (before, 1,100 idle connections at the
//! descriptor limit stopped the proxy and DNS over TCP).
//!
//! - at most [`MAX_CONNECTIONS`] open at once, [`MAX_PER_CLIENT`] from one
//!   address; one more is closed at once (and counted);
//! - a request head must arrive within [`HEAD_TIMEOUT`] of the connection
//!   or of the previous answer (so an idle keep-alive connection closes
//!   then too), in at most [`MAX_HEAD`] bytes;
//! - a connection lives at most [`LIFETIME`], then closes after its answer
//!   in progress (a client that stops reading is cut off then);
//! - a failed accept pauses accepting ([`halo_net::AcceptErrors`]).
//!
//! Bodies are read by the handlers that take one, after the token check,
//! within [`MAX_BODY`] and [`BODY_TIMEOUT`] ([`read_body`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower_service::Service as _;

/// Open admin connections, at most.
pub const MAX_CONNECTIONS: usize = 64;
/// Open admin connections from one client address, at most.
pub const MAX_PER_CLIENT: usize = 16;
/// Time for a request head to arrive (also an idle connection's limit).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a request head, at most (hyper answers 431 past it).
pub const MAX_HEAD: usize = 16 * 1024;
/// A connection's whole life, at most.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// Bytes of a request body, at most (413 past it).
pub const MAX_BODY: usize = 64 * 1024;
/// Time for a request body to arrive (408 past it).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the listener refused, for [`crate::status::AdminCounters`].
#[derive(Debug, Default)]
pub(crate) struct Refused {
    /// Connections closed at once, over the limits.
    pub(crate) connections: AtomicU64,
    /// Accepts that failed.
    pub(crate) accepts: AtomicU64,
    /// Changes without a valid token.
    pub(crate) unauthorized: AtomicU64,
}

/// Who holds the listener's connection slots.
#[derive(Debug, Default)]
struct Slots {
    open: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One connection's slot, given back when dropped.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.open -= 1;
        if let Some(n) = s.by_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.by_client.remove(&self.ip);
            }
        }
    }
}

fn take_slot(slots: &Arc<Mutex<Slots>>, ip: IpAddr) -> Option<Slot> {
    let mut s = slots.lock().unwrap_or_else(PoisonError::into_inner);
    let mine = s.by_client.get(&ip).copied().unwrap_or(0);
    if s.open >= MAX_CONNECTIONS || mine >= MAX_PER_CLIENT {
        return None;
    }
    s.open += 1;
    *s.by_client.entry(ip).or_insert(0) += 1;
    Some(Slot {
        slots: Arc::clone(slots),
        ip,
    })
}

/// Accepts and serves `app` on `listener` until the task is aborted.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    refused: Arc<Refused>,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut errors = halo_net::AcceptErrors::default();
    let mut full = halo_log::Spell::new(Duration::from_secs(10));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                refused.accepts.fetch_add(1, Ordering::Relaxed);
                errors.failed(&e, "admin").await;
                continue;
            }
        };
        errors.accepted("admin");
        let Some(slot) = take_slot(&slots, peer.ip()) else {
            refused.connections.fetch_add(1, Ordering::Relaxed);
            if let Some(line) = full.event(tokio::time::Instant::now().into_std()) {
                tracing::warn!(
                    client = %peer, max = MAX_CONNECTIONS, per_client = MAX_PER_CLIENT,
                    unlogged = line.folded,
                    "admin connection closed: too many open (one line per spell, each counted)"
                );
            }
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            connection(stream, peer, app).await;
            drop(slot);
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, app: axum::Router) {
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let resp: Result<_, Infallible> = app.call(req.map(axum::body::Body::new)).await;
                resp
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = tokio::time::sleep(LIFETIME) => {
            // Ends after the answer in progress; one that does not end soon
            // (a client that stopped reading) is dropped.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HEAD_TIMEOUT, conn).await;
        }
    }
}

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// A request body, read whole within [`MAX_BODY`] and [`BODY_TIMEOUT`].
/// Called after the token check: an unauthenticated client gets no body
/// read at all.
pub(crate) async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, BodyError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
        Err(_) => Err(BodyError::TooSlow),
    }
}

//! halo's admin API (`[admin]`): the dashboard at `/`, `GET /api/status` (JSON), `GET /metrics`
//! (Prometheus text), `GET /healthz`, `GET /readyz`, and changes behind a
//! bearer token: `POST /api/pools/{pool}/servers/{server}` and
//! `POST /api/reload`.
//!
//! The server owns no state of the tiers. Every request becomes a
//! [`Command`] sent to the binary's main loop, which owns the running config,
//! health registry, proxy, DNS and VRRP, answers from them and applies
//! changes one at a time, so an API change and a SIGHUP reload never race.

#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
mod serve;
pub mod status;
mod token;

pub use serve::{
    BODY_TIMEOUT, HEAD_TIMEOUT, LIFETIME, MAX_BODY, MAX_CONNECTIONS, MAX_HEAD, MAX_PER_CLIENT,
};
pub use token::{MIN_TOKEN_LEN, TokenError, read_token_file};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use halo_log::escaped;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use status::Status;

/// What the API asks of the main loop.
#[derive(Debug)]
pub enum Command {
    /// A snapshot for `/api/status` and `/metrics`.
    Status {
        /// Also ask each GSLB peer what it answers for every service (the
        /// dashboard and `halo status` want it; a metrics scrape does not).
        ask_peers: bool,
        /// Where the status goes.
        reply: oneshot::Sender<Status>,
    },
    /// Set a server's admin state (`ready`, `drain`, `maint`) and/or weight.
    SetServer {
        /// Pool name.
        pool: String,
        /// Server name.
        server: String,
        /// The new state, if asked.
        state: Option<ServerState>,
        /// The new weight (0..=256), if asked.
        weight: Option<u16>,
        /// Who asked (the client's address), for the log.
        who: String,
        /// Ok(what changed) or Err(why not: unknown pool/server).
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Reload the config file.
    Reload {
        /// Who asked, for the log.
        who: String,
        /// Ok(summary of the new config) or Err(why the file was rejected).
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// A server's admin state, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Normal.
    Ready,
    /// No new load-balanced traffic; checks continue.
    Drain,
    /// No traffic, no checks.
    Maint,
}

/// Body of `POST /api/pools/{pool}/servers/{server}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerChange {
    /// New admin state.
    pub state: Option<ServerState>,
    /// New weight, 0..=256 (HAProxy's `set weight`); kept until a reload
    /// changes the server or the process restarts.
    pub weight: Option<u16>,
}

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Shared by the handlers.
#[derive(Debug)]
struct Shared {
    commands: mpsc::Sender<Command>,
    token: RwLock<Option<String>>,
    ready: AtomicBool,
    /// What the listener refused (counted, and logged once per spell).
    refused: Arc<serve::Refused>,
    unauthorized_log: halo_log::SharedSpell,
}

impl Shared {
    /// The admin listener's counters, into a status the main loop built.
    fn with_counters(&self, mut st: Status) -> Status {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        st.admin = status::AdminCounters {
            connections_refused: n(&self.refused.connections),
            accept_errors: n(&self.refused.accepts),
            unauthorized: n(&self.refused.unauthorized),
        };
        st
    }

    /// Counts a change refused for its token, and logs it once per spell
    /// (any client can send them at will).
    fn unauthorized(&self, peer: SocketAddr, what: &str) {
        self.refused.unauthorized.fetch_add(1, Ordering::Relaxed);
        let now = tokio::time::Instant::now().into_std();
        if let Some(line) = self.unauthorized_log.event(now) {
            tracing::warn!(
                from = %peer, what = %escaped(what), unlogged = line.folded,
                "admin change refused (no valid token; one line per spell, each counted)"
            );
        }
    }
}

/// The running admin listener; stops when dropped.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Admin {
    /// Binds `listen` and serves. `token`: the bearer token changes need;
    /// without one every change is refused (403).
    ///
    /// # Errors
    /// [`AdminError::Bind`].
    pub async fn start(
        listen: SocketAddr,
        token: Option<String>,
        commands: mpsc::Sender<Command>,
    ) -> Result<Self, AdminError> {
        Self::serve(Self::bind(listen)?, token, commands)
    }

    /// The first half of [`Self::start`]: the listening socket (a reload
    /// that moves the admin API binds before anything changes).
    ///
    /// # Errors
    /// [`AdminError::Bind`].
    pub fn bind(listen: SocketAddr) -> Result<std::net::TcpListener, AdminError> {
        let err = |source| AdminError::Bind {
            addr: listen,
            source,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(listener)
    }

    /// The second half of [`Self::start`]: serves on `listener`.
    ///
    /// # Errors
    /// [`AdminError::Bind`] if tokio cannot take the socket.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn serve(
        listener: std::net::TcpListener,
        token: Option<String>,
        commands: mpsc::Sender<Command>,
    ) -> Result<Self, AdminError> {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| AdminError::Bind { addr, source })?;
        let refused = Arc::new(serve::Refused::default());
        let shared = Arc::new(Shared {
            commands,
            token: RwLock::new(token),
            ready: AtomicBool::new(true),
            refused: Arc::clone(&refused),
            unauthorized_log: halo_log::SharedSpell::new(std::time::Duration::from_secs(10)),
        });
        let app = axum::Router::new()
            .route("/", get(dashboard))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/api/status", get(status))
            .route("/metrics", get(metrics_page))
            .route("/api/pools/{pool}/servers/{server}", post(set_server))
            .route("/api/reload", post(reload))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(serve::serve(listener, app, refused));
        tracing::info!(%addr, "admin API listening");
        Ok(Self { addr, shared, task })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `/readyz` answers 503 from now on (the node is stopping).
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Relaxed);
    }

    /// Swaps the token (a reload re-reads `token_file`).
    pub fn set_token(&self, token: Option<String>) {
        *self
            .shared
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type SharedState = State<Arc<Shared>>;

/// The dashboard: one self-contained page (no CDN) that polls /api/status.
const DASHBOARD: &str = include_str!("dashboard.html");

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn readyz(State(s): SharedState) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    }
}

/// Sends the main loop a command and waits for its reply; None when the
/// loop is gone (halo is stopping).
async fn ask<T>(s: &Shared, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    s.commands.send(command(tx)).await.ok()?;
    rx.await.ok()
}

fn stopping() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "halo is stopping\n").into_response()
}

async fn status(State(s): SharedState) -> Response {
    let command = |reply| Command::Status {
        ask_peers: true,
        reply,
    };
    match ask(&s, command).await {
        Some(st) => Json(s.with_counters(st)).into_response(),
        None => stopping(),
    }
}

async fn metrics_page(State(s): SharedState) -> Response {
    let command = |reply| Command::Status {
        ask_peers: false,
        reply,
    };
    match ask(&s, command).await {
        Some(st) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics::render(&s.with_counters(st)),
        )
            .into_response(),
        None => stopping(),
    }
}

/// None, or the 401/403 to send. Compares in constant time.
fn refusal(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = s
        .token
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(token) = token else {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "changes are off: set [admin] token_file to allow them\n",
            )
                .into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    (!same_secret(given, token.as_bytes())).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token\n",
        )
            .into_response()
    })
}

/// The body of `POST /api/pools/{pool}/servers/{server}`, checked: a state
/// and/or a weight of 0 to 256; `Err` is the 400's text.
///
/// # Errors
/// What is wrong with the body, and what to send instead.
pub fn parse_change(body: &[u8]) -> Result<ServerChange, String> {
    let change: ServerChange = serde_json::from_slice(body)
        .map_err(|e| format!("body: {e}; send e.g. {{\"state\": \"drain\"}}\n"))?;
    if change.weight.is_some_and(|w| w > 256) {
        return Err("weight: 0 to 256\n".into());
    }
    if change.state.is_none() && change.weight.is_none() {
        return Err(
            "send {\"state\": \"ready\" | \"drain\" | \"maint\"} and/or {\"weight\": 0..256}\n"
                .into(),
        );
    }
    Ok(change)
}

/// Whether `given` is `secret`, in a time that depends on the secret's
/// length only: every byte of the secret is compared whatever `given` is,
/// and a length difference is folded into the result rather than returned
/// early (which would tell a client the token's length).
#[must_use]
pub fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = given.len() ^ secret.len();
    for (i, s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(g ^ s));
    }
    diff == 0
}

async fn set_server(
    State(s): SharedState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((pool, server)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The token first: an unauthenticated client's body is never read.
    if let Some(r) = refusal(&s, &headers) {
        s.unauthorized(peer, &format!("{pool}/{server}"));
        return r;
    }
    let body = match serve::read_body(body).await {
        Ok(b) => b,
        Err(serve::BodyError::TooLarge) => {
            let msg = format!("body over {} KiB\n", MAX_BODY / 1024);
            return (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response();
        }
        Err(serve::BodyError::TooSlow) => {
            return (StatusCode::REQUEST_TIMEOUT, "body not received in time\n").into_response();
        }
        Err(serve::BodyError::Broken) => {
            return (StatusCode::BAD_REQUEST, "body cut short\n").into_response();
        }
    };
    let change = match parse_change(&body) {
        Ok(c) => c,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let answer = ask(&s, |reply| Command::SetServer {
        pool,
        server,
        state: change.state,
        weight: change.weight,
        who: peer.to_string(),
        reply,
    });
    match answer.await {
        Some(Ok(done)) => (StatusCode::OK, format!("{done}\n")).into_response(),
        Some(Err(why)) => (StatusCode::NOT_FOUND, format!("{why}\n")).into_response(),
        None => stopping(),
    }
}

async fn reload(
    State(s): SharedState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        s.unauthorized(peer, "reload");
        return r;
    }
    let answer = ask(&s, |reply| Command::Reload {
        who: peer.to_string(),
        reply,
    });
    match answer.await {
        Some(Ok(summary)) => (StatusCode::OK, format!("reloaded: {summary}\n")).into_response(),
        Some(Err(why)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload rejected, the running config stays:\n{why}\n"),
        )
            .into_response(),
        None => stopping(),
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole_whatever_the_length_given() {
        let secret = b"0123456789abcdef";
        assert!(same_secret(secret, secret));
        for given in [
            &b""[..],
            b"0123456789abcde",
            b"0123456789abcdef0",
            b"0123456789abcdeF",
            b"\x000123456789abcdef",
        ] {
            assert!(!same_secret(given, secret), "{given:?}");
        }
    }
}

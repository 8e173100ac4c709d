//! One active check against a real server: TCP connect, or an HTTP/1.1 request
//! through hyper. Details follow HAProxy's check status codes (`L4OK`, `L4CON`,
//! `L4TOUT`, `L7OK`, `L7STS`, `L7RSP`, `L7TOUT`) so logs read the same.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use halo_config::{Check, CheckKind, HttpCheck, ServerAddress};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Bodies are read only as far as this when `expect_body` is set.
const MAX_CHECK_BODY: usize = 64 * 1024;

/// Where a check connects: the server's address, its port replaced by the
/// check's `port` when set. Names are resolved on every check, so a server that
/// moves is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Host (IP or name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// A literal address, when the host is one (no resolution needed).
    pub addr: Option<SocketAddr>,
}

impl ProbeTarget {
    /// The target for `address`, with an optional port override.
    #[must_use]
    pub fn new(address: &ServerAddress, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| address.port());
        match address {
            ServerAddress::Socket(a) => Self {
                host: a.ip().to_string(),
                port,
                addr: Some(SocketAddr::new(a.ip(), port)),
            },
            ServerAddress::Name { host, .. } => Self {
                host: host.clone(),
                port,
                addr: None,
            },
        }
    }

    /// The Host header value a check sends when none is configured.
    fn authority(&self) -> String {
        let host = match self.addr {
            Some(SocketAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{a}"),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Passed.
    pub ok: bool,
    /// HAProxy-style status and detail, e.g. `L7STS 500 Internal Server Error`.
    pub detail: String,
    /// The check could not run on this host's own limits (out of
    /// descriptors, memory or local ports): not a verdict on the server.
    pub local: bool,
}

impl ProbeOutcome {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
            local: false,
        }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
            local: false,
        }
    }

    /// A failed connect: the server's fault, or this host's.
    fn connect_failed(e: &std::io::Error) -> Self {
        Self {
            local: halo_net::is_local(e),
            ..Self::fail(format!("L4CON {e}"))
        }
    }
}

/// Runs `check` once against `target`, within `check.timeout` in total.
pub async fn probe(target: &ProbeTarget, check: &Check) -> ProbeOutcome {
    probe_tls(target, check, None).await
}

/// As [`probe`], over TLS when `tls` is given (`[pool.tls]`): a TCP check
/// then also completes the handshake (`L6OK`), an HTTP check asks over TLS.
pub async fn probe_tls(
    target: &ProbeTarget,
    check: &Check,
    tls: Option<&crate::ServerTls>,
) -> ProbeOutcome {
    let limit = check.timeout;
    match &check.kind {
        CheckKind::Tcp => {
            let attempt = async {
                let tcp = connect(target)
                    .await
                    .map_err(|e| ProbeOutcome::connect_failed(&e))?;
                match tls {
                    None => Ok(ProbeOutcome::pass("L4OK")),
                    Some(t) => t
                        .connect(tcp, &target.host)
                        .await
                        .map(|_| ProbeOutcome::pass("L6OK"))
                        .map_err(|e| ProbeOutcome::fail(format!("L6RSP {e}"))),
                }
            };
            match timeout(limit, attempt).await {
                Ok(Ok(outcome) | Err(outcome)) => outcome,
                Err(_) => ProbeOutcome::fail(format!(
                    "{} timeout after {}",
                    if tls.is_some() {
                        "L6TOUT handshake"
                    } else {
                        "L4TOUT connect"
                    },
                    fmt_duration(limit)
                )),
            }
        }
        CheckKind::Http(http) => match timeout(limit, http_probe(target, http, tls)).await {
            Ok(outcome) => outcome,
            Err(_) => ProbeOutcome::fail(format!(
                "L7TOUT no complete response within {}",
                fmt_duration(limit)
            )),
        },
    }
}

async fn connect(target: &ProbeTarget) -> std::io::Result<TcpStream> {
    let stream = match target.addr {
        Some(a) => TcpStream::connect(a).await?,
        None => TcpStream::connect((target.host.as_str(), target.port)).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn http_probe(
    target: &ProbeTarget,
    http: &HttpCheck,
    tls: Option<&crate::ServerTls>,
) -> ProbeOutcome {
    let stream = match connect(target).await {
        Ok(s) => s,
        Err(e) => return ProbeOutcome::connect_failed(&e),
    };
    match tls {
        None => http_exchange(stream, target, http).await,
        Some(t) => match t.connect(stream, &target.host).await {
            Ok(s) => http_exchange(s, target, http).await,
            Err(e) => ProbeOutcome::fail(format!("L6RSP {e}")),
        },
    }
}

async fn http_exchange<IO>(stream: IO, target: &ProbeTarget, http: &HttpCheck) -> ProbeOutcome
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return ProbeOutcome::fail(format!("L6RSP {e}")),
    };
    // The connection task ends with the probe: the whole probe is under a
    // timeout, and dropping `sender` closes the connection.
    let driver = tokio::spawn(conn);
    let host = http.host.clone().unwrap_or_else(|| target.authority());
    let request = hyper::Request::builder()
        .method(http.method.as_str())
        .uri(http.path.as_str())
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("halo-health/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => return ProbeOutcome::fail(format!("L7RSP cannot build request: {e}")),
    };
    let outcome = match sender.send_request(request).await {
        Err(e) => ProbeOutcome::fail(format!("L7RSP {e}")),
        Ok(response) => {
            let status = response.status();
            let code = status.as_u16();
            let reason = status.canonical_reason().unwrap_or("");
            if !http.expect_status.contains(code) {
                ProbeOutcome::fail(format!("L7STS {code} {reason}").trim_end().to_owned())
            } else if let Some(needle) = &http.expect_body {
                match Limited::new(response.into_body(), MAX_CHECK_BODY)
                    .collect()
                    .await
                {
                    Ok(body) => {
                        let body = body.to_bytes();
                        if contains(&body, needle.as_bytes()) {
                            ProbeOutcome::pass(format!("L7OK {code}, body matched"))
                        } else {
                            ProbeOutcome::fail(format!("L7RSP {code}, body lacks \"{needle}\""))
                        }
                    }
                    Err(e) => ProbeOutcome::fail(format!("L7RSP {code}, body: {e}")),
                }
            } else {
                ProbeOutcome::pass(format!("L7OK {code}"))
            }
        }
    };
    drop(sender);
    driver.abort();
    outcome
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

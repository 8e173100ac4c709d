//! An HTTP/1.x request head from a client, read and judged, sans-io: what
//! halo accepts, and how it frames the body, is decided here once, for the
//! server side ([`super::server`]) and the fuzz target ([`crate::fuzzing`])
//! alike.
//!
//! The rules, in RFC 9112's order: the head is parsed with httparse (obs-fold,
//! bare CR, control characters, whitespace before a colon and malformed
//! request lines are errors: 400); the target is origin-form, absolute-form
//! (its authority then overrides Host, §3.2.2) or `*` for OPTIONS; HTTP/1.1
//! needs exactly one Host (§3.2); Transfer-Encoding is decided by
//! [`h1::Codings`] (§6.1, §6.3: chunked must be final and alone, else 400;
//! another coding before it, 501; any in HTTP/1.0, 400) and wins over a
//! Content-Length (the connection then closes after the request);
//! Content-Length lines are merged by [`h1::merge_length`] (§8.6: equal
//! values are one length, different or malformed ones 400). CONNECT gets 501.
//! An Upgrade naming h2c is not an upgrade (see [`Request::upgrade`]).

use std::borrow::Cow;

use http::{Method, StatusCode};

use super::h1::{self, Kind, RequestBody};

/// Headers in one request head, at most (more: 431).
pub(crate) const MAX_HEADERS: usize = 128;

/// A request head halo accepted.
#[derive(Debug)]
pub(crate) struct Request<'b, 'h> {
    /// Bytes of the head, its blank line included.
    pub(crate) len: usize,
    pub(crate) method: Method,
    pub(crate) http11: bool,
    /// The target for the server: origin-form (or `*`).
    pub(crate) target: Cow<'b, str>,
    /// The host to route by: an absolute-form target's authority, else
    /// Host (empty for HTTP/1.0 without one).
    pub(crate) host: &'b str,
    /// The host came from the target, and replaces the Host lines.
    pub(crate) host_from_target: bool,
    /// The client lets the connection carry another request after this one
    /// (Connection, version, and not both framings at once).
    pub(crate) keep_alive: bool,
    /// How the body is framed: halo reads it so, and writes this framing
    /// to the server.
    pub(crate) body: RequestBody,
    /// An HTTP/1.1 Upgrade halo will tunnel: Upgrade and Connection: upgrade,
    /// no body, and not h2c. h2c is never tunnelled: past a 101 the client
    /// would speak HTTP/2 to the server directly, its requests unseen,
    /// unrouted and unlogged by halo (h2c smuggling); such a request goes on
    /// as a plain one.
    pub(crate) upgrade: bool,
    pub(crate) expect_continue: bool,
    /// The header lines as parsed, for [`h1::encode_request`].
    pub(crate) headers: &'h [httparse::Header<'b>],
}

impl Request<'_, '_> {
    /// Whether a body follows the head.
    pub(crate) fn has_body(&self) -> bool {
        carries_body(self.body)
    }

    /// The header lines as (name, value) pairs.
    pub(crate) fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().map(|h| (h.name.as_bytes(), h.value))
    }
}

fn carries_body(body: RequestBody) -> bool {
    matches!(body, RequestBody::Chunked | RequestBody::Length(1..))
}

/// Why halo answers a head itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// What is wrong, for the answer's body and the log.
    pub(crate) why: Cow<'static, str>,
}

impl Refusal {
    fn new(status: StatusCode, why: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            why: why.into(),
        }
    }

    fn bad(why: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, why)
    }
}

/// What the bytes at the start of a connection's buffer are.
#[derive(Debug)]
pub(crate) enum Parsed<'b, 'h> {
    /// Not a whole head yet.
    Partial,
    Request(Request<'b, 'h>),
    /// halo answers with an error and closes.
    Refused(Refusal),
}

/// Reads the request head at the start of `buf` into `headers` (room for
/// [`MAX_HEADERS`]).
pub(crate) fn parse<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
) -> Parsed<'b, 'h> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(Refusal::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {MAX_HEADERS} request headers"),
            ));
        }
        Err(e) => {
            return Parsed::Refused(Refusal::bad(format!("malformed request: {e}")));
        }
    };
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let line = Line {
        len,
        method: method.unwrap_or(""),
        target: path.unwrap_or(""),
        http11: version == Some(1),
    };
    match judge(&line, headers) {
        Ok(r) => Parsed::Request(r),
        Err(refusal) => Parsed::Refused(refusal),
    }
}

/// The request line of a parsed head, and the head's length.
struct Line<'b> {
    len: usize,
    method: &'b str,
    target: &'b str,
    http11: bool,
}

fn judge<'b, 'h>(
    line: &Line<'b>,
    headers: &'h [httparse::Header<'b>],
) -> Result<Request<'b, 'h>, Refusal> {
    let method =
        Method::from_bytes(line.method.as_bytes()).map_err(|_| Refusal::bad("invalid method"))?;
    if method == Method::CONNECT {
        return Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported",
        ));
    }
    let (http11, raw_target) = (line.http11, line.target);
    // Absolute-form (a request meant for a proxy): its authority is the
    // host, and the server gets origin-form.
    let (authority, target) = match absolute_form(raw_target) {
        // RFC 9112 §3.2.2: the authority is the host; userinfo is not sent
        // in http(s) URIs (RFC 9110 §4.2.4), and an empty one names nothing.
        Some((authority, _)) if authority.is_empty() || authority.contains('@') => {
            return Err(Refusal::bad(
                "invalid authority in an absolute request target",
            ));
        }
        Some((authority, path)) => (Some(authority), path),
        None if raw_target.starts_with('/') => (None, Cow::Borrowed(raw_target)),
        None if raw_target == "*" && method == Method::OPTIONS => (None, Cow::Borrowed("*")),
        None => return Err(Refusal::bad("invalid request target")),
    };

    let mut host: Option<&[u8]> = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_header = false;
    let mut h2c = false;
    let mut expect_continue = false;
    let mut codings: Option<h1::Codings> = None;
    let mut length: Option<u64> = None;
    for h in headers {
        match h1::kind(h.name.as_bytes()) {
            Kind::Host => {
                if host.is_some() {
                    return Err(Refusal::bad("more than one Host header"));
                }
                host = Some(h.value);
            }
            Kind::Expect => {
                expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            Kind::Upgrade => {
                upgrade_header = true;
                h2c |= h1::has_token(h.value, b"h2c");
            }
            Kind::Connection => {
                close |= h1::has_token(h.value, b"close");
                keep_alive |= h1::has_token(h.value, b"keep-alive");
                conn_upgrade |= h1::has_token(h.value, b"upgrade");
            }
            Kind::ContentLength => {
                length = Some(h1::merge_length(length, h.value).map_err(Refusal::bad)?);
            }
            Kind::TransferEncoding => codings.get_or_insert_default().add(h.value),
            Kind::HopByHop | Kind::Forwarded | Kind::Other => {}
        }
    }
    let chunked = match codings.map(h1::Codings::verdict) {
        None => false,
        // RFC 9112 §6.1: faulty framing; the server must not trust it.
        Some(_) if !http11 => return Err(Refusal::bad("Transfer-Encoding in an HTTP/1.0 request")),
        Some(h1::Coding::Chunked) => true,
        Some(h1::Coding::NotFinal) => {
            return Err(Refusal::bad(
                "Transfer-Encoding does not end with chunked (once)",
            ));
        }
        Some(h1::Coding::Unsupported) => {
            return Err(Refusal::new(
                StatusCode::NOT_IMPLEMENTED,
                "unsupported Transfer-Encoding (only chunked)",
            ));
        }
    };
    let host = match authority {
        Some(a) => a,
        None => match host {
            Some(h) => std::str::from_utf8(h).map_err(|_| Refusal::bad("invalid Host header"))?,
            None if http11 => return Err(Refusal::bad("missing Host header")),
            None => "",
        },
    };
    let body = match length {
        _ if chunked => RequestBody::Chunked,
        Some(n) => RequestBody::Length(n),
        None => RequestBody::None,
    };
    // Both framings (a smuggling attempt or a broken client): the body is
    // read as chunked, and the connection is not trusted after it.
    let both_framings = chunked && length.is_some();
    let has_body = carries_body(body);
    Ok(Request {
        len: line.len,
        http11,
        target,
        host,
        host_from_target: authority.is_some(),
        keep_alive: (if http11 { !close } else { keep_alive }) && !both_framings,
        body,
        upgrade: http11 && upgrade_header && conn_upgrade && !has_body && !h2c,
        expect_continue,
        headers,
        method,
    })
}

/// `http://host[:port]/path` → (`host[:port]`, `/path`); a target with no
/// path gets `/`, one with only a query `/?query`.
fn absolute_form(target: &str) -> Option<(&str, Cow<'_, str>)> {
    let scheme = target.find("://")?;
    if !target[..scheme].eq_ignore_ascii_case("http")
        && !target[..scheme].eq_ignore_ascii_case("https")
    {
        return None;
    }
    let rest = &target[scheme + 3..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let path = match &rest[end..] {
        "" => Cow::Borrowed("/"),
        p if p.starts_with('?') => Cow::Owned(format!("/{p}")),
        p => Cow::Borrowed(p),
    };
    Some((&rest[..end], path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host, target, body, keep-alive and upgrade of an accepted head.
    type Judged = (String, String, RequestBody, bool, bool);

    fn judge(raw: &str) -> Result<Judged, (u16, String)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse(raw.as_bytes(), &mut headers) {
            Parsed::Partial => panic!("partial: {raw:?}"),
            Parsed::Refused(r) => Err((r.status.as_u16(), r.why.into_owned())),
            Parsed::Request(r) => Ok((
                r.host.to_owned(),
                r.target.into_owned(),
                r.body,
                r.keep_alive,
                r.upgrade,
            )),
        }
    }

    #[test]
    fn framing_and_targets_follow_rfc_9112() {
        use RequestBody::{Chunked, Length, None as NoBody};
        let ok = [
            (
                "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
                "h",
                "/a",
                NoBody,
                true,
            ),
            (
                "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                "h",
                "/a",
                Length(0),
                true,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 05, 5\r\n\r\n",
                "h",
                "/",
                Length(5),
                true,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,Chunked\r\n\r\n",
                "h",
                "/",
                Chunked,
                true,
            ),
            // Both: chunked, and the connection closes after.
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "h",
                "/",
                Chunked,
                false,
            ),
            // Connection cannot remove the length.
            (
                "POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: 7\r\n\r\n",
                "h",
                "/",
                Length(7),
                true,
            ),
            ("GET / HTTP/1.0\r\n\r\n", "", "/", NoBody, false),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                "",
                "/",
                NoBody,
                true,
            ),
            (
                "GET http://Other:8080?q HTTP/1.1\r\nHost: h\r\n\r\n",
                "Other:8080",
                "/?q",
                NoBody,
                true,
            ),
            (
                "GET https://o/p/q HTTP/1.1\r\n\r\n",
                "o",
                "/p/q",
                NoBody,
                true,
            ),
            (
                "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                "h",
                "*",
                NoBody,
                true,
            ),
        ];
        for (raw, host, target, body, keep) in ok {
            let (h, t, b, k, _) = judge(raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"));
            assert_eq!(
                (h.as_str(), t.as_str(), b, k),
                (host, target, body, keep),
                "{raw:?}"
            );
        }
        let refused = [
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET a HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
        ];
        for (raw, status) in refused {
            assert_eq!(judge(raw).map_err(|e| e.0).err(), Some(status), "{raw:?}");
        }
    }

    #[test]
    fn h2c_is_never_an_upgrade() {
        let ws = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(judge(ws).unwrap().4);
        for raw in [
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket, H2C\r\n\r\n",
            // A body: not an upgrade either.
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\n",
        ] {
            assert!(!judge(raw).unwrap().4, "{raw:?}");
        }
    }
}

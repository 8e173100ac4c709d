//! HTTP/1.1 on the wire, both sides: what halo writes to a server and how it
//! reads the answer (over a socket or TLS stream owned by the request's task),
//! and the header rules the client side ([`super::server`]) shares.
//!
//! Why not hyper's client: `bench/instructions.sh` counted hyper's client
//! connection task at 38% of halo's user-space instructions per request (its own
//! task per connection, an mpsc + oneshot hand-off and wake-ups per request, a
//! second head serialisation from a `HeaderMap` we had just rewritten). Here the
//! request head is written once, straight from the client's head, the response
//! head is parsed with httparse and kept as the bytes the client will get
//! (hop-by-hop headers dropped), and the body is decoded in the task that
//! forwards it.
//!
//! The framing rules are RFC 9112 §6: a response to HEAD, a 1xx, 204 or 304 has
//! no body; Transfer-Encoding chunked is decoded ([`Chunked`]); otherwise
//! Content-Length, otherwise the body runs to the server's close. Interim 1xx
//! responses (100, 102, 103) are skipped; 101 hands the socket to a tunnel.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpStream;

use super::peer_io::ServerIo;

/// Response heads larger than this are a bad server (502).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Headers in one response head, at most (hyper's client allows 100 too).
const MAX_HEADERS: usize = 100;
/// Room made before each read of a head, and of a body.
const HEAD_READ: usize = 8 * 1024;
pub(crate) const BODY_READ: usize = 64 * 1024;

/// One server connection: the socket or TLS stream (shared with a
/// request-body writer task while one runs) and the bytes read from it but
/// not yet used.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) io: Arc<ServerIo>,
    pub(crate) buf: BytesMut,
}

impl Conn {
    pub(crate) fn new(io: ServerIo) -> Self {
        Self {
            io: Arc::new(io),
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can still carry a request: nothing
    /// unread, and see [`ServerIo::is_usable`].
    pub(crate) fn is_usable(&self) -> bool {
        self.buf.is_empty() && self.io.is_usable()
    }
}

/// Room for `room` more bytes in `buf` (grown in steps, not per read).
pub(crate) fn make_room(buf: &mut BytesMut, room: usize) {
    if buf.capacity() - buf.len() < room / 4 {
        buf.reserve(room);
    }
}

/// A read through a shared handle on the socket.
pub(crate) fn poll_read_shared(
    io: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_read_ready(cx))?;
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
    }
}

/// Writes all of `bufs` (vectored: a chunk's size line, data and CRLF go out
/// in one system call).
pub(crate) async fn write_all(io: &TcpStream, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match io.try_write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a header name means to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Concerns one connection only (RFC 9110 §7.6.1): never forwarded.
    HopByHop,
    /// X-Forwarded-For / -Proto / -Host: halo writes its own.
    Forwarded,
    Host,
    Connection,
    Upgrade,
    ContentLength,
    TransferEncoding,
    Expect,
    Other,
}

/// Classifies a header name in any letter case, by length first (most names
/// are settled by one comparison).
pub(crate) fn kind(name: &[u8]) -> Kind {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is(b"te") => Kind::HopByHop,
        4 if is(b"host") => Kind::Host,
        6 if is(b"expect") => Kind::Expect,
        7 if is(b"upgrade") => Kind::Upgrade,
        7 if is(b"trailer") => Kind::HopByHop,
        10 if is(b"connection") => Kind::Connection,
        10 if is(b"keep-alive") => Kind::HopByHop,
        14 if is(b"content-length") => Kind::ContentLength,
        // Connection-specific in HTTP/2's h2c upgrade (RFC 7540 §3.2.1),
        // which halo never performs.
        14 if is(b"http2-settings") => Kind::HopByHop,
        15 if is(b"x-forwarded-for") => Kind::Forwarded,
        16 if is(b"proxy-connection") => Kind::HopByHop,
        16 if is(b"x-forwarded-host") => Kind::Forwarded,
        17 if is(b"transfer-encoding") => Kind::TransferEncoding,
        17 if is(b"x-forwarded-proto") => Kind::Forwarded,
        _ => Kind::Other,
    }
}

/// The tokens of a Connection value that make other fields hop-by-hop.
///
/// RFC 9110 §7.6.1 lets a sender list any field name in Connection, and a
/// proxy then removes that field. halo honours it only for fields whose
/// removal changes nothing halo relies on ([`Kind::Other`], Expect). The
/// framing fields (Content-Length, Transfer-Encoding), Host and the
/// X-Forwarded-* fields halo writes itself are never removed that way:
/// without its Content-Length a request's body would reach the server as
/// the start of a second request halo never saw (request smuggling), a
/// response's would leave the client with no framing, and a client could
/// erase what halo vouches for. Connection and Upgrade are halo's to write
/// (close, keep-alive and upgrade are read by name), and the fields that are
/// always hop-by-hop are removed anyway. RFC 9110 §7.6.1 also says a sender
/// must not list a field meant for all recipients, so a message that lists
/// these is wrong, and ignoring that part of it is the safe reading.
fn connection_names(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty() && matches!(kind(t), Kind::Other | Kind::Expect))
        .filter(|t| !t.eq_ignore_ascii_case(b"close"))
}

/// Whether a comma-separated header value holds `token`.
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// What [`encode_request`] adds for halo.
pub(crate) struct Forwarded<'a> {
    /// The request's host (Host, or the authority of an absolute-form target
    /// or HTTP/2's :authority), for X-Forwarded-Host and for Host when the
    /// request has none.
    pub(crate) host: Option<&'a [u8]>,
    /// The host came from the target, which overrides a Host header
    /// (RFC 9112 §3.2.2): the client's Host lines are replaced.
    pub(crate) replace_host: bool,
    /// The client's address, appended to X-Forwarded-For.
    pub(crate) client_ip: &'a [u8],
    /// X-Forwarded-Proto.
    pub(crate) proto: &'a [u8],
}

/// How a request body goes to the server. halo writes the framing field
/// itself (the client's Content-Length and Transfer-Encoding lines never go
/// on as sent), so what the server reads is exactly what halo read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    /// No body, and no Content-Length.
    None,
    /// `content-length: N` and the body's bytes as received (`Length(0)`:
    /// the client sent a length of 0, which some servers require on POST).
    Length(u64),
    /// Chunked by halo (HTTP/1 chunked from the client, or HTTP/2 without a
    /// Content-Length).
    Chunked,
}

/// The request head for the server: origin-form `target`, HTTP/1.1, the
/// client's headers (raw HTTP/1.1 ones or hyper's HTTP/2 map) minus
/// hop-by-hop and framing ones, Host, X-Forwarded-For (appended), -Proto
/// and -Host, then halo's own framing field. Written once per request,
/// replayed as is on a retry.
pub(crate) fn encode_request<'h, F, I>(
    method: &[u8],
    target: &[u8],
    headers: F,
    fwd: &Forwarded<'_>,
    upgrade: bool,
    body: RequestBody,
) -> Vec<u8>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'h [u8], &'h [u8])>,
{
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() { b"/" } else { target });
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // Names listed in Connection are hop-by-hop too (rare: most requests
    // have no such list, and this stays empty and unallocated).
    let named: Vec<&[u8]> = headers()
        .filter(|(n, _)| kind(n) == Kind::Connection)
        .flat_map(|(_, v)| connection_names(v))
        .collect();
    let mut has_host = false;
    for (name, value) in headers() {
        match kind(name) {
            Kind::HopByHop
            | Kind::Forwarded
            | Kind::Connection
            | Kind::Upgrade
            | Kind::ContentLength
            | Kind::TransferEncoding => continue,
            Kind::Host if fwd.replace_host => continue,
            Kind::Host => has_host = true,
            Kind::Expect | Kind::Other => {
                if named.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    continue;
                }
            }
        }
        put_header(&mut out, name, value);
    }
    if !has_host {
        // An HTTP/1.0 request may have none; HTTP/1.1 needs one, empty when
        // there is no authority (RFC 9112 §3.2).
        put_header(&mut out, b"host", fwd.host.unwrap_or_default());
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for (name, prev) in headers() {
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    put_header(&mut out, b"x-forwarded-proto", fwd.proto);
    if let Some(host) = fwd.host {
        put_header(&mut out, b"x-forwarded-host", host);
    }
    if upgrade {
        for (name, v) in headers() {
            if kind(name) == Kind::Upgrade {
                put_header(&mut out, b"upgrade", v);
            }
        }
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    match body {
        RequestBody::None => {}
        RequestBody::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub(crate) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Until the server closes the connection.
    Close,
    /// 101: the connection now carries another protocol.
    Upgrade,
}

/// A response head as it goes on to the client.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    /// `HTTP/1.1 <code> <reason>` and the server's header lines without
    /// hop-by-hop ones (Upgrade and Connection kept on a 101), each
    /// `name: value\r\n`; no blank line yet: the HTTP/1.1 side adds its
    /// framing and connection headers, then ends it.
    pub(crate) head: Vec<u8>,
    pub(crate) framing: Framing,
    /// The server lets the connection carry another request after this one.
    pub(crate) keep_alive: bool,
}

impl ResponseHead {
    /// The header lines (after the status line).
    fn header_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let start = self
            .head
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(self.head.len(), |p| p + 2);
        self.head[start..]
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r")?;
                let colon = line.iter().position(|&b| b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii_start()))
            })
    }

    /// The headers as a map, for hyper's HTTP/2 side.
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.header_lines() {
            // Both were checked by httparse; an odd name HTTP/2 cannot carry
            // is left out rather than failing the response.
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                map.append(n, v);
            }
        }
        map
    }
}

/// Why no response head was read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The server closed or reset the connection before a whole head.
    Closed(String),
    /// What the server sent is not an HTTP/1 response head.
    Junk(String),
}

/// Reads the response head for a request (`head_request`: it was a HEAD),
/// skipping interim 1xx responses.
pub(crate) async fn read_head(
    conn: &mut Conn,
    head_request: bool,
) -> Result<ResponseHead, HeadError> {
    loop {
        if !conn.buf.is_empty()
            && let Some(head) = parse_head(&mut conn.buf, head_request)?
        {
            if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                continue;
            }
            return Ok(head);
        }
        if conn.buf.len() >= MAX_RESPONSE_HEAD {
            return Err(HeadError::Junk(format!(
                "response head over {} KiB",
                MAX_RESPONSE_HEAD / 1024
            )));
        }
        let Conn { io, buf } = conn;
        match std::future::poll_fn(|cx| super::peer_io::poll_fill(io, buf, HEAD_READ, cx)).await {
            Ok(0) if buf.is_empty() => {
                return Err(HeadError::Closed(
                    "the server closed the connection before responding".into(),
                ));
            }
            Ok(0) => {
                return Err(HeadError::Closed(
                    "the server closed the connection mid-head".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(HeadError::Closed(e.to_string())),
        }
    }
}

/// Parses a whole head at the start of `buf` and consumes it; `Ok(None)` when
/// more bytes are needed.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    let junk = |why: &str| HeadError::Junk(why.to_owned());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Junk(format!("invalid response head: {e}"))),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| junk("invalid status code"))?;
    let http10 = resp.version == Some(0);

    // One pass over the raw headers for what framing and reuse depend on.
    let mut close = false;
    let mut keep_alive = false;
    let mut named = false;
    let mut codings: Option<Codings> = None;
    let mut length: Option<u64> = None;
    for h in resp.headers.iter() {
        match kind(h.name.as_bytes()) {
            Kind::Connection => {
                close |= has_token(h.value, b"close");
                keep_alive |= has_token(h.value, b"keep-alive");
                named |= connection_names(h.value).next().is_some();
            }
            Kind::TransferEncoding => codings.get_or_insert_default().add(h.value),
            Kind::ContentLength => length = Some(merge_length(length, h.value).map_err(junk)?),
            _ => {}
        }
    }
    let chunked = match &codings {
        None => false,
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        Some(_) if http10 => return Err(junk("Transfer-Encoding in an HTTP/1.0 response")),
        Some(c) => match c.verdict() {
            Coding::Chunked => true,
            // Read to the close (RFC 9112 §6.3 (4)), the client would get
            // the bytes without the coding halo cannot pass on: refused,
            // as HAProxy does.
            Coding::NotFinal | Coding::Unsupported => {
                return Err(junk("a transfer coding other than chunked"));
            }
        },
    };
    let bodiless = status.is_informational() || status == StatusCode::NO_CONTENT;
    // A 101 is an upgrade whatever the request was (an upgrade never asked
    // for, e.g. to a HEAD, is then refused as a bad answer).
    let framing = if status == StatusCode::SWITCHING_PROTOCOLS {
        Framing::Upgrade
    } else if head_request || bodiless || status == StatusCode::NOT_MODIFIED {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else {
        length.map_or(Framing::Close, Framing::Length)
    };
    // Both framings at once (RFC 9112 §6.1): answer it, then close, and
    // never pass the Content-Length on.
    let both = chunked && length.is_some();
    let keep_alive = (keep_alive || !http10) && !close && framing != Framing::Close && !both;

    // Only when the server named headers in Connection (rare): those too.
    let listed: Vec<&[u8]> = if named {
        resp.headers
            .iter()
            .filter(|h| kind(h.name.as_bytes()) == Kind::Connection)
            .flat_map(|h| connection_names(h.value))
            .collect()
    } else {
        Vec::new()
    };
    let upgrade = framing == Framing::Upgrade;
    let mut head = Vec::with_capacity(len + 64);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let skip = match kind(name) {
            Kind::Connection | Kind::Upgrade => !upgrade,
            // halo writes the one length itself, below.
            Kind::HopByHop | Kind::TransferEncoding | Kind::ContentLength => true,
            Kind::Host | Kind::Forwarded | Kind::Expect | Kind::Other => false,
        } || listed.iter().any(|l| l.eq_ignore_ascii_case(name));
        if !skip {
            put_header(&mut head, name, h.value);
        }
    }
    // One Content-Length, the value halo read (RFC 9110 §8.6: a repeated
    // one is merged), also on a HEAD or 304 answer, where it describes the
    // representation; never beside chunked, nor on 1xx or 204.
    if let Some(n) = length
        && !both
        && !bodiless
    {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    buf.advance(len);
    Ok(Some(ResponseHead {
        status,
        head,
        framing,
        keep_alive,
    }))
}

/// The transfer codings of a message's Transfer-Encoding lines, in order
/// (several lines are one list, RFC 9110 §5.3).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Codings {
    chunked: u32,
    last_chunked: bool,
    other: bool,
}

/// What [`Codings`] mean for framing (RFC 9112 §6.1, §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Exactly `chunked`, once: the body is chunked.
    Chunked,
    /// chunked is not the final coding, or is there twice (or nothing is
    /// listed): the length cannot be known; a request gets 400 (§6.3 (4)).
    NotFinal,
    /// chunked last, after a coding halo does not implement: a request gets
    /// 501 (§6.1).
    Unsupported,
}

impl Codings {
    pub(crate) fn add(&mut self, value: &[u8]) {
        for t in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if t.is_empty() {
                continue; // empty list elements are allowed (RFC 9110 §5.6.1)
            }
            self.last_chunked = t.eq_ignore_ascii_case(b"chunked");
            if self.last_chunked {
                self.chunked += 1;
            } else {
                self.other = true;
            }
        }
    }

    pub(crate) fn verdict(self) -> Coding {
        if !self.last_chunked || self.chunked > 1 {
            Coding::NotFinal
        } else if self.other {
            Coding::Unsupported
        } else {
            Coding::Chunked
        }
    }
}

/// Adds one Content-Length line to what earlier lines said (RFC 9110 §8.6):
/// every element of the list must be 1*DIGIT and all must be equal, which
/// merges `5` and `05`, or `5, 5`, into one length.
pub(crate) fn merge_length(seen: Option<u64>, value: &[u8]) -> Result<u64, &'static str> {
    let mut n = seen;
    for element in value.split(|&b| b == b',') {
        let v = parse_length(element).ok_or("invalid Content-Length")?;
        if n.is_some_and(|l| l != v) {
            return Err("conflicting Content-Length values");
        }
        n = Some(v);
    }
    n.ok_or("invalid Content-Length")
}

/// One Content-Length value: digits only (RFC 9110 §8.6), optional
/// whitespace around them.
fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A chunked body decoder (RFC 9112 §7.1), sans-io: fed the connection's
/// buffer, it takes what it can and says what it needs. Chunk extensions and
/// trailers are read and dropped (halo writes its own framing onward), but
/// checked: every line ends with CRLF, and a bare LF or another control
/// character in an extension or trailer is an error, as is whitespace before
/// the size. Another parser in front of or behind halo could take such a
/// byte for a line end, and so see other chunk boundaries than halo does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// In a chunk-size line: the size so far and whether a digit was seen.
    Size(u64, bool),
    /// Whitespace after the size: more of it, `;` or CR may follow.
    SizeWs(u64),
    /// In the extensions, up to CR, and their length so far.
    Ext(u64, u16),
    /// Expecting the LF that ends the size line.
    SizeLf(u64),
    /// Data bytes left in this chunk.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart(u32),
    /// In a trailer line; the bytes of trailers so far.
    Trailer(u32),
    TrailerLf(u32),
    /// Expecting the LF of the final empty line.
    EndLf,
    Done,
}

/// What the chunked decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    NeedMore,
    End,
}

/// Takes up to `left` bytes from the front of `buf`; returns them and how
/// many are still to come.
pub(crate) fn take(buf: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
    (buf.split_to(n).freeze(), left - n as u64)
}

/// Trailer sections over this many bytes are an error.
const MAX_TRAILERS: u32 = 64 * 1024;
/// Chunk extensions over this many bytes on one line are an error (they are
/// never used; a client could otherwise send them forever).
const MAX_EXTENSION: u16 = 4096;

/// A byte allowed inside an extension or a trailer line: HTAB, visible
/// ASCII, space and obs-text; no other control character (RFC 9110 §5.5).
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl Chunked {
    pub(crate) fn new() -> Self {
        Self::Size(0, false)
    }

    /// Consumes from `buf` up to the next data or the end.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            if let Self::Data(left) = *self {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let (data, left) = take(buf, left);
                *self = if left == 0 {
                    Self::DataCr
                } else {
                    Self::Data(left)
                };
                return Ok(Decoded::Data(data));
            }
            if *self == Self::Done {
                return Ok(Decoded::End);
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            *self = match (*self, b) {
                (Self::Size(n, _), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if n >> 60 != 0 {
                        return Err("chunk size too large");
                    }
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    Self::Size(n << 4 | digit, true)
                }
                (Self::Size(n, true) | Self::SizeWs(n) | Self::Ext(n, _), b'\r') => Self::SizeLf(n),
                // Whitespace after the size (BWS), then extensions, which
                // are skipped; nothing else (`5 x` is not a chunk size).
                (Self::Size(n, true) | Self::SizeWs(n), b' ' | b'\t') => Self::SizeWs(n),
                (Self::Size(n, true) | Self::SizeWs(n), b';') => Self::Ext(n, 1),
                (Self::Ext(n, len), b) if is_field_byte(b) => {
                    if len >= MAX_EXTENSION {
                        return Err("chunk extension too long");
                    }
                    Self::Ext(n, len + 1)
                }
                (Self::SizeLf(0), b'\n') => Self::TrailerStart(0),
                (Self::SizeLf(n), b'\n') => Self::Data(n),
                (Self::DataCr, b'\r') => Self::DataLf,
                (Self::DataLf, b'\n') => Self::Size(0, false),
                (Self::TrailerStart(_), b'\r') => Self::EndLf,
                (Self::EndLf, b'\n') => {
                    *self = Self::Done;
                    return Ok(Decoded::End);
                }
                (Self::Trailer(t), b'\r') => Self::TrailerLf(t),
                (Self::TrailerStart(t) | Self::Trailer(t), b) if is_field_byte(b) => {
                    if t >= MAX_TRAILERS {
                        return Err("trailers too large");
                    }
                    Self::Trailer(t + 1)
                }
                (Self::TrailerLf(t), b'\n') => Self::TrailerStart(t),
                _ => return Err("invalid chunked encoding"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<Vec<u8>, &'static str> {
        let mut dec = Chunked::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            match dec.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok(out),
                Decoded::NeedMore => {
                    if rest.is_empty() {
                        return Err("incomplete");
                    }
                    let n = split.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n";
        // Whitespace after the size, quoted extensions.
        let odd = b"5 ;a=\"x;y\"\r\nhello\r\n3\t\r\nabc\r\n0\r\n\r\n";
        assert_eq!(decode_all(odd, 1).unwrap(), b"helloabc");
        for split in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_all(body, split).unwrap(),
                b"hello, world!!!",
                "split {split}"
            );
        }
        assert_eq!(decode_all(b"0\r\n\r\n", 1).unwrap(), b"");
    }

    #[test]
    fn bad_chunked_bodies_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"fffffffffffffffff\r\n",
            // Whitespace before the size, a bare LF or a control character
            // in an extension or a trailer, an endless extension.
            b" 5\r\nhello\r\n",
            b"5 x\r\nhello\r\n",
            b"5;a\nb\r\nhello\r\n",
            b"5;a\x00\r\nhello\r\n",
            b"0\r\nX: a\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nX: a\x0bb\r\n\r\n",
            &[&b"5;"[..], &[b'a'; 5000]].concat(),
        ] {
            assert!(
                decode_all(bad, 4).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn decoder_leaves_the_next_response_in_the_buffer() {
        let mut buf = BytesMut::from(&b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        let mut dec = Chunked::new();
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"ok")))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Decoded::End));
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
    }

    fn parse(raw: &str, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
        parse_head(&mut BytesMut::from(raw.as_bytes()), head_request)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Framing::Length(0),
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Length(0),
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                Framing::Length(0),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false,
                Framing::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                false,
                Framing::Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                false,
                Framing::Length(1),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                false,
                Framing::Upgrade,
                true,
            ),
            // Connection cannot take the framing away (RFC 9110 §7.6.1).
            (
                "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n",
                false,
                Framing::Length(2),
                true,
            ),
            // The same length twice, or as a list, is one length.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02, 2\r\n\r\n",
                false,
                Framing::Length(2),
                true,
            ),
        ];
        for (raw, head_request, framing, keep_alive) in cases {
            let head = parse(raw, head_request).unwrap().unwrap();
            assert_eq!(
                (head.framing, head.keep_alive),
                (framing, keep_alive),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn response_heads_lose_hop_by_hop_headers_only() {
        let raw = "HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive, X-Private\r\n\
                   Keep-Alive: timeout=5\r\nX-Private: 1\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\
                   Transfer-Encoding: chunked\r\n\r\nrest";
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&head.head),
            "HTTP/1.1 200 OK\r\nServer: s\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n"
        );
        let map = head.header_map();
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["server", "set-cookie"]);
        assert_eq!(map.get_all("set-cookie").iter().count(), 2);
        assert_eq!(&buf[..], b"rest");
        // Both framings: the Content-Length is not passed on.
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = parse(both, false).unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(&head.head), "HTTP/1.1 200 OK\r\n");
        // One length, halo's, whatever the server wrote; Connection cannot
        // remove it; none on a 204.
        for raw in [
            "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 05\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n",
        ] {
            let head = parse(raw, false).unwrap().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&head.head),
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n",
                "{raw:?}"
            );
        }
        let head = parse("HTTP/1.1 204 No\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(
            String::from_utf8_lossy(&head.unwrap().unwrap().head),
            "HTTP/1.1 204 No\r\n"
        );
        for raw in [
            "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade, X-P\r\nX-P: 1\r\n\r\n",
        ] {
            let up = parse(raw, false).unwrap().unwrap().header_map();
            assert!(up.contains_key("upgrade") && up.contains_key("connection"));
            assert!(!up.contains_key("x-p"), "{raw:?}");
        }
    }

    #[test]
    fn bad_response_heads_are_junk_and_partial_ones_wait() {
        assert!(
            parse("HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
        for bad in [
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            "HTTP/1.1 99 Low\r\n\r\n",
            // Faulty framing (RFC 9112 §6.1), and codings halo cannot pass on.
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad, false), Err(HeadError::Junk(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn request_heads_are_rewritten_for_the_server() {
        let headers: [(&[u8], &[u8]); 10] = [
            (
                b"Connection",
                b"keep-alive, x-hop, content-length, host, x-forwarded-for",
            ),
            (b"HTTP2-Settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
            (b"Content-Length", b"05"),
            (b"X-Hop", b"1"),
            (b"TE", b"trailers"),
            (b"X-Forwarded-For", b"192.0.2.1"),
            (b"x-forwarded-proto", b"https"),
            (b"Content-Type", b"text/plain"),
            (b"Host", b"wrong.example"),
            (b"Content-Length", b"5"),
        ];
        let fwd = Forwarded {
            host: Some(b"app.example"),
            replace_host: true,
            client_ip: b"198.51.100.7",
            proto: b"http",
        };
        let encode = |body| {
            let head = encode_request(
                b"POST",
                b"/a?b=1",
                || headers.iter().copied(),
                &fwd,
                false,
                body,
            );
            String::from_utf8(head).unwrap()
        };
        assert_eq!(
            encode(RequestBody::Chunked),
            "POST /a?b=1 HTTP/1.1\r\nContent-Type: text/plain\r\nhost: app.example\r\n\
             x-forwarded-for: 192.0.2.1, 198.51.100.7\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: app.example\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // A body sent as received gets one length, halo's; none without one.
        let raw = encode(RequestBody::Length(5));
        assert!(raw.ends_with("\r\ncontent-length: 5\r\n\r\n"), "{raw}");
        assert_eq!(raw.matches("ength:").count(), 1, "{raw}");
        assert!(!encode(RequestBody::None).contains("ength:"));
    }
}

//! The proxy's parsers of network bytes as fuzz targets, with the property
//! each must keep besides not panicking. Used by `fuzz/fuzz_targets/` (cargo
//! fuzz, coverage-guided, in every `scripts/test`) and by the `fuzz_parsers`
//! test (mutations of valid inputs, run by `cargo test`). Not part of
//! halo's API.
//!
//! - [`request_head`]: what halo forwards parses, by halo's own rules, to the
//!   same request (method, target, host, body framing, upgrade) as what it
//!   accepted, and carries one Host and at most one framing field: the round
//!   trip that makes request smuggling through halo impossible.
//! - [`response_head`]: what a client gets parses to the same framing as
//!   what halo read from the server.
//! - [`chunked`]: a chunked body decodes the same whatever the read sizes,
//!   and re-chunked by halo decodes to the same bytes.
//! - [`client_hello`]: the SNI name is bounded, lower-case, without a
//!   trailing dot.
//! - [`proxy_header`]: a parsed header lies within the input; addresses
//!   written by halo's own encoder parse back.

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use halo_config::SendProxy;

use crate::http::h1::{self, Chunked, Decoded, Framing};
use crate::http::request::{self, MAX_HEADERS, Parsed};

/// One request head (and whatever follows it) as a client sends it.
///
/// # Panics
/// When the round trip fails: that is the finding.
pub fn request_head(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Parsed::Request(req) = request::parse(data, &mut headers) else {
        return;
    };
    let fwd = h1::Forwarded {
        host: (!req.host.is_empty()).then_some(req.host.as_bytes()),
        replace_host: req.host_from_target,
        client_ip: b"192.0.2.1",
        proto: b"http",
    };
    let out = h1::encode_request(
        req.method.as_str().as_bytes(),
        req.target.as_bytes(),
        || req.header_pairs(),
        &fwd,
        req.upgrade,
        req.body,
    );
    let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let back = match request::parse(&out, &mut again) {
        Parsed::Request(r) => r,
        other => panic!(
            "halo's own head does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(back.len, out.len(), "the head is all that was written");
    assert_eq!(back.method, req.method);
    assert_eq!(back.target, req.target);
    if !req.host.is_empty() {
        assert!(back.host.eq_ignore_ascii_case(req.host), "host");
    }
    assert_eq!(back.body, req.body, "framing");
    assert_eq!(back.upgrade, req.upgrade, "upgrade");
    let count = |name: &str| {
        back.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert!(count("host") <= 1, "one Host");
    assert!(
        count("content-length") + count("transfer-encoding") <= 1,
        "one framing field"
    );
}

/// One response head (and what follows) as a server sends it, to a GET and
/// to a HEAD request.
///
/// # Panics
/// When the framing a client would read differs from halo's.
pub fn response_head(data: &[u8]) {
    for head_request in [false, true] {
        let Ok(Some(head)) = h1::parse_head(&mut BytesMut::from(data), head_request) else {
            continue;
        };
        // What the HTTP/1.1 client side adds: chunked for a body without a
        // length, then the blank line.
        let mut client = head.head.clone();
        let chunked = matches!(head.framing, Framing::Chunked | Framing::Close);
        if chunked {
            client.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        client.extend_from_slice(b"\r\n");
        let back = match h1::parse_head(&mut BytesMut::from(&client[..]), head_request) {
            Ok(Some(back)) => back,
            // A head at halo's limit of lines, plus the framing line halo
            // adds: over the limit of halo's own parser (a client's limits
            // are its own), not a disagreement on framing.
            Err(h1::HeadError::Junk(e)) if e.ends_with("too many headers") => continue,
            other => panic!("halo's own head does not parse: {other:?}"),
        };
        let expected = match head.framing {
            Framing::Close => Framing::Chunked,
            f => f,
        };
        assert_eq!(
            back.framing,
            expected,
            "{}",
            String::from_utf8_lossy(&client)
        );
        assert_eq!(back.status, head.status);
    }
}

/// A chunked body, fed in pieces of every size from 1 to 7 bytes.
///
/// # Panics
/// When the read sizes change the result, or re-chunking does.
pub fn chunked(data: &[u8]) {
    let whole = decode(data, data.len().max(1));
    for step in 1..8 {
        assert_eq!(decode(data, step), whole, "read size {step}");
    }
    if let Some(Ok(body)) = whole {
        let mut line = [0u8; crate::http::body::SIZE_LINE];
        let mut again = Vec::new();
        for piece in body.chunks(7) {
            for part in crate::http::body::chunk(piece, &mut line) {
                again.extend_from_slice(part);
            }
        }
        again.extend_from_slice(crate::http::body::LAST_CHUNK);
        assert_eq!(decode(&again, 3), Some(Ok(body)), "re-chunked");
    }
}

/// The body, `Some(Err)` for an error, `None` when the input ends first.
fn decode(data: &[u8], step: usize) -> Option<Result<Vec<u8>, &'static str>> {
    let mut dec = Chunked::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        match dec.decode(&mut buf) {
            Err(e) => return Some(Err(e)),
            Ok(Decoded::Data(d)) => out.extend_from_slice(&d),
            Ok(Decoded::End) => return Some(Ok(out)),
            Ok(Decoded::NeedMore) => {
                if rest.is_empty() {
                    return None;
                }
                let n = step.min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

/// The first bytes of a `tls-passthrough` connection.
///
/// # Panics
/// When a name comes out unbounded, upper-case or with a trailing dot.
pub fn client_hello(data: &[u8]) {
    if let crate::client_hello::Hello::Complete(Some(name)) = crate::client_hello::parse(data) {
        assert!(name.len() <= 255, "name of {} bytes", name.len());
        assert!(!name.ends_with('.'), "{name:?}");
        assert_eq!(name, name.to_ascii_lowercase());
    }
}

/// The first bytes of an `accept_proxy` connection.
///
/// # Panics
/// When a header claims more bytes than it has, or halo's own header of the
/// addresses it parsed does not parse back to them.
pub fn proxy_header(data: &[u8]) {
    let Ok(Some(p)) = crate::proxy_protocol::parse(data) else {
        return;
    };
    assert!(p.len <= data.len(), "header longer than the input");
    if let Some((src, dst)) = p.addrs {
        // halo writes both in one family (v4-mapped ones as IPv4 when both
        // are, else IPv4 mapped into IPv6).
        let expected = crate::proxy_protocol::same_family(src, dst);
        for version in [SendProxy::V1, SendProxy::V2] {
            let h = crate::proxy_protocol::header(version, src, dst);
            let back = crate::proxy_protocol::parse(&h)
                .expect("halo's own header parses")
                .expect("whole");
            assert_eq!(back.len, h.len());
            assert_eq!(back.addrs, Some(expected), "{version:?}");
        }
    }
}

/// Valid inputs of each kind to start mutating from: (requests, responses,
/// chunked bodies, ClientHellos, PROXY headers).
#[must_use]
pub fn seeds() -> [Vec<Vec<u8>>; 5] {
    let requests = [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 5\r\nConnection: keep-alive, x-h\r\nX-H: 1\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"GET http://b.example/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nExpect: 100-continue\r\nConnection: content-length\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AA\r\n\r\n",
    ];
    let responses = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive, content-length\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nbody",
    ];
    let chunks = [
        &b"5\r\nhello\r\n0\r\n\r\n"[..],
        b"3;a=b;c=\"d\"\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        b"0\r\n\r\n",
    ];
    let hellos = [client_hello_seed("app.example.com"), client_hello_seed("")];
    let v4 = |a: [u8; 4], p| SocketAddr::new(IpAddr::from(a), p);
    let proxies = [
        crate::proxy_protocol::header(
            SendProxy::V1,
            v4([192, 0, 2, 1], 1234),
            v4([192, 0, 2, 2], 80),
        ),
        crate::proxy_protocol::header(
            SendProxy::V2,
            v4([192, 0, 2, 1], 1234),
            v4([192, 0, 2, 2], 80),
        ),
        crate::proxy_protocol::header(
            SendProxy::V2,
            "[2001:db8::1]:5".parse().expect("valid"),
            "[2001:db8::2]:443".parse().expect("valid"),
        ),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ];
    let owned = |v: &[&[u8]]| v.iter().map(|s| s.to_vec()).collect::<Vec<_>>();
    [
        owned(&requests),
        owned(&responses),
        owned(&chunks),
        hellos.to_vec(),
        proxies.to_vec(),
    ]
}

/// A minimal TLS 1.2 ClientHello record naming `sni` (none when empty).
fn client_hello_seed(sni: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    if !sni.is_empty() {
        let name = sni.as_bytes();
        let list_len = 3 + name.len();
        ext.extend_from_slice(&[0, 0]); // server_name
        ext.extend_from_slice(&u16::try_from(list_len + 2).unwrap_or(0).to_be_bytes());
        ext.extend_from_slice(&u16::try_from(list_len).unwrap_or(0).to_be_bytes());
        ext.push(0); // host_name
        ext.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_be_bytes());
        ext.extend_from_slice(name);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap_or(0).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16::try_from(hs.len()).unwrap_or(0).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

//! The probes of the differential desync suite (`tests/desync.rs`): known
//! request-smuggling and response-desync shapes, each with the RFC section
//! that decides it and the outcome halo must have.
//!
//! In `send`, `{P}` is the probe's own path (`/<name>`), so every request a
//! server receives names the probe it came from; `{L}` is replaced by the
//! length of the bytes between `{B}` and `{/B}` (a body whose length depends
//! on the path). A probe whose `answer` is set gets that raw answer from the
//! server for its request to `{P}/r` (the response-side probes); every other
//! request gets `200` with a body naming the request, a request to a path
//! ending in `/slow` 300 ms late.

/// One probe.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) name: &'static str,
    /// RFC 9110 / 9112 (or 9113) section that decides the outcome.
    pub(crate) rfc: &'static str,
    /// What a client sends on one connection (then it shuts its side).
    pub(crate) send: &'static [u8],
    /// The server's raw answer to `{P}/r`, and whether it then closes.
    pub(crate) answer: Option<(&'static [u8], bool)>,
    /// The final statuses halo's client gets, in order.
    pub(crate) statuses: &'static [u16],
    /// How many different requests of this probe reach the server through
    /// halo.
    pub(crate) forwarded: usize,
    /// The first request is a HEAD (its answer has no body).
    pub(crate) head_first: bool,
}

const fn req(
    name: &'static str,
    rfc: &'static str,
    send: &'static [u8],
    statuses: &'static [u16],
    forwarded: usize,
) -> Probe {
    Probe {
        name,
        rfc,
        send,
        answer: None,
        statuses,
        forwarded,
        head_first: false,
    }
}

/// A response-side probe: `GET {P}/r` answered with `answer`, then a
/// pipelined `GET {P}/after` that must get its own answer.
const fn resp(
    name: &'static str,
    rfc: &'static str,
    answer: &'static [u8],
    close: bool,
    statuses: &'static [u16],
) -> Probe {
    Probe {
        name,
        rfc,
        send: b"GET {P}/r HTTP/1.1\r\nHost: x\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        answer: Some((answer, close)),
        statuses,
        forwarded: 2,
        head_first: false,
    }
}

pub(crate) const PROBES: &[Probe] = &[
    // ---- Content-Length and Transfer-Encoding together, and TE obfuscations.
    req(
        "cl-te",
        "RFC 9112 §6.3 (3): chunked wins over Content-Length; close after",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET {P}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200],
        1,
    ),
    req(
        "te-cl",
        "RFC 9112 §6.3 (3): chunked wins over Content-Length; close after",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          8\r\nSMUGGLED\r\n0\r\n\r\n",
        &[200],
        1,
    ),
    req(
        "te-xchunked",
        "RFC 9112 §6.3 (4): chunked not final in a request: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-space-before-colon",
        "RFC 9112 §5.1: whitespace before the colon: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-two-lines-last-identity",
        "RFC 9112 §6.3 (4): the codings of both lines in order; chunked not final: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\
          Content-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-two-lines-chunked-last",
        "RFC 9112 §6.1: a coding halo does not implement before chunked: 501",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\n",
        &[501],
        0,
    ),
    req(
        "te-tab",
        "RFC 9110 §5.6.3: HTAB is optional whitespace",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "te-chunked-identity",
        "RFC 9112 §6.3 (4): chunked not final: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "te-identity-chunked",
        "RFC 9112 §6.1: a coding halo does not implement (identity is unregistered): 501",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        &[501],
        0,
    ),
    req(
        "te-chunked-twice",
        "RFC 9112 §6.1: chunked applied more than once: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "te-upper-case",
        "RFC 9112 §7: coding names are case-insensitive",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "te-vertical-tab",
        "RFC 9110 §5.5: a control character in a field value: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-obs-fold",
        "RFC 9112 §5.2: obs-fold in a request: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-folded-into-other",
        "RFC 9112 §5.2: obs-fold in a request: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-quoted",
        "RFC 9112 §6.3 (4): \"chunked\" is not chunked: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-empty",
        "RFC 9112 §6.3 (4): Transfer-Encoding without chunked: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "te-nul",
        "RFC 9110 §5.5: NUL in a field value: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x00\r\nContent-Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "http10-te",
        "RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding: faulty framing, 400 and close",
        b"POST {P} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET {P}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "http10-te-cl",
        "RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding, even with Content-Length: 400",
        b"POST {P} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {P}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    // ---- Content-Length values.
    req(
        "cl-conflict",
        "RFC 9112 §6.3 (5): two different lengths: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        &[400],
        0,
    ),
    req(
        "cl-same-twice",
        "RFC 9110 §8.6: the same length twice is merged into one",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "cl-list-same",
        "RFC 9110 §8.6: a list of one length is merged into one",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "cl-list-conflict",
        "RFC 9112 §6.3 (5): a list of different lengths: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        &[400],
        0,
    ),
    req(
        "cl-plus",
        "RFC 9110 §8.6: 1*DIGIT only: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-negative",
        "RFC 9110 §8.6: 1*DIGIT only: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-hex",
        "RFC 9110 §8.6: 1*DIGIT only: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-inner-space",
        "RFC 9110 §8.6: 1*DIGIT only: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-overflow",
        "RFC 9110 §8.6: a length that does not fit: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-space-before-colon",
        "RFC 9112 §5.1: whitespace before the colon: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "cl-no-space",
        "RFC 9110 §5.6.3: the whitespace after the colon is optional",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length:5\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    // ---- Hop-by-hop abuse: Connection naming fields halo needs.
    req(
        "connection-content-length",
        "RFC 9110 §7.6.1: Connection may not remove the framing; the body stays a body",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: {L}\r\n\r\n\
          {B}GET {P}/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n{/B}",
        &[200],
        1,
    ),
    req(
        "connection-content-length-pooled",
        "RFC 9110 §7.6.1: as above; the server answers the smuggled request late, so \
         the answer would wait on the pooled connection for the next client",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: {L}\r\n\r\n\
          {B}GET {P}/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n{/B}",
        &[200],
        1,
    ),
    req(
        "connection-close-content-length",
        "RFC 9110 §7.6.1: Connection may not remove the framing; the body stays a body",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nConnection: close, content-length\r\nContent-Length: {L}\r\n\r\n\
          {B}GET {P}/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n{/B}",
        &[200],
        1,
    ),
    req(
        "connection-transfer-encoding",
        "RFC 9110 §7.6.1: Connection may not remove the framing",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n\
          8\r\nSMUGGLED\r\n0\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "connection-host",
        "RFC 9110 §7.6.1, RFC 9112 §3.2: Host is never hop-by-hop",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n",
        &[200],
        1,
    ),
    req(
        "connection-x-forwarded-for",
        "RFC 9110 §7.6.1: the proxy's own fields are not the client's to remove",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
        &[200],
        1,
    ),
    // ---- Chunked bodies.
    req(
        "chunk-size-0x",
        "RFC 9112 §7.1: chunk-size is 1*HEXDIG: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-size-leading-space",
        "RFC 9112 §7.1: chunk-size is 1*HEXDIG: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-ext-bare-lf",
        "RFC 9112 §7.1.1, §2.2: a bare LF inside a chunk extension: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-data-bare-lf",
        "RFC 9112 §7.1: chunk data ends with CRLF: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-size-bare-lf",
        "RFC 9112 §7.1: the chunk-size line ends with CRLF: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-size-overflow",
        "RFC 9112 §7.1: a size that does not fit: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-data-longer",
        "RFC 9112 §7.1: more data than the size: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-size-negative",
        "RFC 9112 §7.1: chunk-size is 1*HEXDIG: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-trailer-bare-lf",
        "RFC 9112 §7.1.2, §2.2: a bare LF in the trailer section: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\nGET {P}/smuggled HTTP/1.1\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-size-then-junk",
        "RFC 9112 §7.1.1: after the size only whitespace, `;` and extensions: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n",
        &[400],
        1,
    ),
    req(
        "chunk-ext-valid",
        "RFC 9112 §7.1.1: extensions are read and dropped",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"v;x\"\r\nhello\r\n0\r\n\r\n\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    // ---- Line endings, whitespace, control characters, request lines.
    req(
        "head-bare-lf",
        "RFC 9112 §2.2: a bare LF may end a line; halo writes CRLF",
        b"GET {P} HTTP/1.1\nHost: x\n\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "head-bare-cr",
        "RFC 9112 §2.2: a bare CR: 400",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "header-nul",
        "RFC 9110 §5.5: NUL in a field value: 400",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "header-name-space",
        "RFC 9110 §5.1: a field name is a token: 400",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent Length: 5\r\n\r\nhello",
        &[400],
        0,
    ),
    req(
        "request-line-two-spaces",
        "RFC 9112 §3: one SP between the parts: 400",
        b"GET  {P} HTTP/1.1\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "target-not-a-path",
        "RFC 9112 §3.2: origin-form starts with /: 400",
        b"GET x{P} HTTP/1.1\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "http09",
        "RFC 9112 §2.3: no HTTP/0.9: 400",
        b"GET {P}\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "version-2-in-h1",
        "RFC 9112 §2.3: only HTTP/1.x here: 400",
        b"GET {P} HTTP/2.0\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "host-twice",
        "RFC 9112 §3.2: more than one Host: 400",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "host-missing",
        "RFC 9112 §3.2: HTTP/1.1 without Host: 400",
        b"GET {P} HTTP/1.1\r\nX: y\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "http10-no-host",
        "RFC 9112 §3.2: HTTP/1.0 may omit Host; the HTTP/1.1 request halo sends has one",
        b"GET {P} HTTP/1.0\r\n\r\n",
        &[200],
        1,
    ),
    req(
        "absolute-form-userinfo",
        "RFC 9110 §4.2.4, RFC 9112 §3.2.2: no userinfo in an http(s) target: 400",
        b"GET http://user@other.example{P} HTTP/1.1\r\nHost: x\r\n\r\n",
        &[400],
        0,
    ),
    req(
        "absolute-form",
        "RFC 9112 §3.2.2: the target's authority is the host; origin-form to the server",
        b"GET http://other.example{P} HTTP/1.1\r\nHost: x\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    // ---- Pipelining after bodies.
    req(
        "pipeline-after-length",
        "RFC 9112 §9.3.2: the next request starts after the body",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "pipeline-after-chunked",
        "RFC 9112 §9.3.2: the next request starts after the last chunk",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "get-with-body",
        "RFC 9110 §9.3.1: a GET's body is framed like any other",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "expect-continue-pipelined",
        "RFC 9110 §10.1.1: a body sent without waiting for 100",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "zero-length-then-bytes",
        "RFC 9112 §6.3 (6): Content-Length 0; what follows is the next request",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    // ---- Upgrades: h2c and WebSocket.
    req(
        "h2c-upgrade",
        "RFC 9113 §3.1: h2c upgrade is obsolete; halo never tunnels it (a plain request)",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
          HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "h2c-upgrade-listed",
        "RFC 9113 §3.1: h2c anywhere in Upgrade is not tunnelled",
        b"GET {P} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n\
          GET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    req(
        "h2-preface-mid-connection",
        "RFC 9113 §3.4: the preface only opens a connection: 400",
        b"GET {P} HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        &[200, 400],
        1,
    ),
    req(
        "upgrade-with-body",
        "RFC 9110 §7.8: an upgrade request with a body goes as a plain request",
        b"POST {P} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\n\
          helloGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        2,
    ),
    Probe {
        name: "upgrade-refused",
        rfc: "RFC 9110 §7.8: no 101, no tunnel: the next request is parsed",
        send: b"GET {P}/r HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Version: 1\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        answer: Some((
            b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n",
            false,
        )),
        statuses: &[426, 200],
        forwarded: 2,
        head_first: false,
    },
    // ---- Response side: what servers send.
    resp(
        "resp-connection-content-length",
        "RFC 9110 §7.6.1: Connection may not remove the response's framing",
        b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok",
        false,
        &[200, 200],
    ),
    resp(
        "resp-connection-transfer-encoding",
        "RFC 9110 §7.6.1: Connection may not remove the response's framing",
        b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\nok\r\n0\r\n\r\n",
        false,
        &[200, 200],
    ),
    resp(
        "resp-cl-same-twice",
        "RFC 9110 §8.6: the same length twice is merged into one",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\nok",
        false,
        &[200, 200],
    ),
    resp(
        "resp-cl-conflict",
        "RFC 9112 §6.3 (5): two different lengths: 502",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        false,
        &[502, 200],
    ),
    resp(
        "resp-cl-plus",
        "RFC 9110 §8.6: 1*DIGIT only: 502",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        false,
        &[502, 200],
    ),
    resp(
        "resp-te-and-cl",
        "RFC 9112 §6.3 (3): chunked wins; the length is not passed on",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        false,
        &[200, 200],
    ),
    resp(
        "resp-http10-te",
        "RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding: faulty framing, 502",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        false,
        &[502, 200],
    ),
    resp(
        "resp-te-not-chunked",
        "RFC 9112 §6.1, §6.3 (4): a coding halo cannot pass on (the body would lose it): 502",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes",
        true,
        &[502, 200],
    ),
    resp(
        "resp-obs-fold",
        "RFC 9112 §5.2: obs-fold in a response: 502",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        false,
        &[502, 200],
    ),
    resp(
        "resp-bare-cr",
        "RFC 9112 §2.2: a bare CR: 502",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
        false,
        &[502, 200],
    ),
    resp(
        "resp-space-before-colon",
        "RFC 9112 §5.1: whitespace before the colon: 502",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        false,
        &[502, 200],
    ),
    resp(
        "resp-extra-response",
        "RFC 9112 §9.3: bytes after a response are not an answer to the next request",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
        false,
        &[200, 200],
    ),
    resp(
        "resp-204-with-body",
        "RFC 9112 §6.3 (1): a 204 has no body; what follows is not an answer",
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
        false,
        &[204, 200],
    ),
    resp(
        "resp-103-then-200",
        "RFC 9110 §15.2: interim responses are skipped",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        false,
        &[200, 200],
    ),
    Probe {
        name: "resp-head-with-body",
        rfc: "RFC 9110 §9.3.2: a response to HEAD has no body; what follows is not an answer",
        send: b"HEAD {P}/r HTTP/1.1\r\nHost: x\r\n\r\nGET {P}/after HTTP/1.1\r\nHost: x\r\n\r\n",
        answer: Some((
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON",
            false,
        )),
        statuses: &[200, 200],
        forwarded: 2,
        head_first: true,
    },
];

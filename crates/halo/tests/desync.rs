//! The differential desync suite: every probe of `desync/probes.rs` is sent
//! through halo (the real binary, one proxy thread, JSON access log) to a
//! raw-socket server that records exactly the bytes it receives and parses
//! them strictly (RFC 9112, no leniency). A probe passes when
//!
//! - every request the server parsed is one halo logged (no unlogged request:
//!   nothing was smuggled past halo's view);
//! - what halo sent the server is unambiguous (one Host, at most one
//!   Content-Length, Transfer-Encoding exactly `chunked` and never with a
//!   Content-Length, CRLF line ends, no obs-fold, well-formed chunks) and
//!   carries halo's own X-Forwarded-For;
//! - the client gets the statuses the probe expects, each answer from the
//!   server naming a request of this probe (no answer meant for another);
//! - a victim request on a new connection afterwards gets its own answer (a
//!   pooled server connection was not poisoned).
//!
//! HAProxy runs the same probes against the same server as the reference; its
//! outcomes are printed beside halo's (`cargo test -p halo --test desync --
//! --nocapture`) and not asserted: the table in docs/security.md is made from
//! that output.

#[path = "desync/probes.rs"]
mod probes;

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::PROBES;

const DEADLINE: Duration = Duration::from_secs(10);

/// `{P}`, `{L}`, `{B}` and `{/B}` of a probe's bytes filled in.
fn fill(template: &[u8], path: &str) -> Vec<u8> {
    let mut out = replace(template, b"{P}", path.as_bytes());
    if let (Some(b), Some(e)) = (find(&out, b"{B}"), find(&out, b"{/B}")) {
        let len = (e - b - 3).to_string();
        let mut body = out[..b].to_vec();
        body.extend_from_slice(&out[b + 3..e]);
        body.extend_from_slice(&out[e + 4..]);
        out = replace(&body, b"{L}", len.as_bytes());
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(p) = find(rest, from) {
        out.extend_from_slice(&rest[..p]);
        out.extend_from_slice(to);
        rest = &rest[p + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

// ---------------------------------------------------------------------------
// The recording server.

/// What the server saw: every request (method and target) and every way in
/// which the bytes it received were not a clean HTTP/1.1 stream (with the
/// target of the request it was in, when its request line parsed).
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<(String, String)>,
    problems: Vec<(Option<String>, String)>,
}

/// Canned answers by target (`{P}/r`): the bytes, and whether to close.
type Answers = HashMap<String, (Vec<u8>, bool)>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Server {
    fn start(answers: Answers) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let answers = Arc::new(answers);
        let shared = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let seen = Arc::clone(&shared);
                let answers = Arc::clone(&answers);
                std::thread::spawn(move || serve(conn, &seen, &answers));
            }
        });
        Self { addr, seen }
    }

    /// The requests seen whose target starts with `path`, and the problems
    /// whose text names it.
    fn of(&self, path: &str) -> (BTreeSet<(String, String)>, Vec<String>) {
        let seen = self.seen.lock().unwrap();
        let mine = |t: &str| t == path || t.starts_with(&format!("{path}/"));
        (
            seen.requests
                .iter()
                .filter(|(_, t)| mine(t))
                .cloned()
                .collect(),
            seen.problems
                .iter()
                .filter(|(target, text)| match target {
                    Some(t) => mine(t),
                    None => {
                        text.contains(&format!("{path} ")) || text.contains(&format!("{path}/"))
                    }
                })
                .map(|(_, text)| text.clone())
                .collect(),
        )
    }
}

/// Reads and answers requests on one connection until it closes or is not
/// clean HTTP/1.1.
fn serve(mut conn: TcpStream, seen: &Mutex<Seen>, answers: &Answers) {
    let mut buf = Vec::new();
    loop {
        let Head {
            method,
            target,
            framing,
            problem,
            soft,
        } = match read_request(&mut conn, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                seen.lock().unwrap().problems.push((None, e));
                return;
            }
        };
        let mut seen_now = seen.lock().unwrap();
        seen_now.requests.push((method.clone(), target.clone()));
        for p in soft {
            seen_now.problems.push((Some(target.clone()), p));
        }
        if let Some(problem) = problem {
            seen_now.problems.push((Some(target), problem));
            return;
        }
        drop(seen_now);
        match read_body(&mut conn, &mut buf, framing) {
            Ok(true) => {}
            // The proxy gave up on the body (its client's fault): not a
            // problem of the stream.
            Ok(false) => return,
            Err(e) => {
                seen.lock().unwrap().problems.push((Some(target), e));
                return;
            }
        }
        let (answer, close) = match answers.get(&target) {
            Some((a, close)) => (a.clone(), *close),
            None if framing.upgrade => (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    .to_vec(),
                false,
            ),
            None => {
                let body = format!("{method} {target}");
                (
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                    false,
                )
            }
        };
        if target.ends_with("/slow") {
            // Late, as a slow application answers: not synchronisation.
            #[allow(clippy::disallowed_methods, reason = "a slow server, on purpose")]
            std::thread::sleep(Duration::from_millis(300));
        }
        if conn.write_all(&answer).is_err() || close {
            return;
        }
        // After a 101 this server goes on reading requests on the
        // connection: a client that reached it through a tunnel would be
        // served unseen by the proxy (as a real h2c server would be).
    }
}

#[derive(Debug, Clone, Copy)]
struct Framing {
    length: u64,
    chunked: bool,
    upgrade: bool,
}

/// A request head the server read.
struct Head {
    method: String,
    target: String,
    framing: Framing,
    /// How the head was not clean, past its request line, so that its
    /// framing is unclear.
    problem: Option<String>,
    /// How it was not clean otherwise.
    soft: Vec<String>,
}

/// One request head, parsed strictly; `Ok(None)` at a clean close, `Err`
/// when not even its request line parses.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Head>, String> {
    let end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        if !more(conn, buf) {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(format!(
                    "closed mid-head: {:?}",
                    String::from_utf8_lossy(buf)
                ))
            };
        }
    };
    let head: Vec<u8> = buf.drain(..end + 4).collect();
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(first.strip_suffix(b"\r").unwrap_or(first));
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3
        || !["HTTP/1.1", "HTTP/1.0"].contains(&parts[2])
        || parts.iter().any(|p| p.is_empty())
    {
        return Err(format!("bad request line in {text:?}"));
    }
    let mut request = Head {
        method: parts[0].to_owned(),
        target: parts[1].to_owned(),
        framing: Framing {
            length: 0,
            chunked: false,
            upgrade: false,
        },
        problem: None,
        soft: Vec::new(),
    };
    match check_head(&head[..end], parts[2] == "HTTP/1.0") {
        Ok(_) if !request.target.starts_with('/') => {
            request.problem = Some(format!("target not in origin-form in {text:?}"));
        }
        Ok((framing, soft)) => {
            request.framing = framing;
            request.soft = soft.iter().map(|p| format!("{p} in {text:?}")).collect();
        }
        Err(what) => request.problem = Some(format!("{what} in {text:?}")),
    }
    Ok(Some(request))
}

/// The strict checks of a head (without its final CRLFCRLF): its framing and
/// the problems that leave it clear, or the problem that does not.
fn check_head(head: &[u8], http10: bool) -> Result<(Framing, Vec<String>), String> {
    if head.iter().any(|&b| b == 0 || b == 0x7f) {
        return Err("NUL or DEL".into());
    }
    let all: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let last = all.len() - 1;
    let mut lines = Vec::new();
    for (i, line) in all.into_iter().enumerate() {
        // The last line's CRLF is the start of the CRLFCRLF cut off.
        let line = if i == last {
            line
        } else {
            line.strip_suffix(b"\r").ok_or("bare LF")?
        };
        if line.contains(&b'\r') {
            return Err("bare CR".into());
        }
        lines.push(line);
    }
    let (mut hosts, mut lengths, mut codings, mut xff) = (0, Vec::new(), Vec::new(), Vec::new());
    let (mut upgrade, mut conn_upgrade) = (false, false);
    for line in &lines[1..] {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err("obs-fold".into());
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let name = &line[..colon];
        let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        if name.is_empty() || !name.iter().all(tchar) {
            return Err("bad field name".into());
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b < 0x20 && b != b'\t') {
            return Err("control character in a value".into());
        }
        let value = String::from_utf8_lossy(value).into_owned();
        match name.to_ascii_lowercase().as_slice() {
            b"host" => hosts += 1,
            b"content-length" => lengths.push(value),
            b"transfer-encoding" => codings.push(value),
            b"x-forwarded-for" => xff.push(value),
            b"upgrade" => upgrade = true,
            b"connection" => {
                conn_upgrade |= value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
            }
            _ => {}
        }
    }
    // Problems that leave the framing clear: the request is still answered
    // (a smuggled request's answer must be able to reach someone).
    let mut soft = Vec::new();
    if hosts != 1 {
        soft.push(format!("{hosts} Host fields"));
    }
    // (Several lines are one list, RFC 9110 §5.3: the last is the proxy's.)
    if !xff.last().is_some_and(|v| v.ends_with("127.0.0.1")) {
        soft.push("no X-Forwarded-For ending with the client".to_owned());
    }
    if lengths.len() > 1 || codings.len() > 1 || !(lengths.is_empty() || codings.is_empty()) {
        return Err("more than one framing field".into());
    }
    if http10 && !codings.is_empty() {
        return Err("Transfer-Encoding in HTTP/1.0".into());
    }
    let length = match lengths.first() {
        Some(v) if !v.is_empty() && v.len() < 19 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().unwrap()
        }
        Some(_) => return Err("bad Content-Length".into()),
        None => 0,
    };
    let chunked = match codings.first() {
        Some(v) if v.eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err("Transfer-Encoding other than chunked".into()),
        None => false,
    };
    let framing = Framing {
        length,
        chunked,
        upgrade: upgrade && conn_upgrade,
    };
    Ok((framing, soft))
}

/// Reads a request body strictly: `Ok(false)` when the proxy closed or
/// stopped mid-body.
fn read_body(conn: &mut TcpStream, buf: &mut Vec<u8>, framing: Framing) -> Result<bool, String> {
    if !framing.chunked {
        let n = usize::try_from(framing.length).unwrap();
        while buf.len() < n {
            if !more(conn, buf) {
                return Ok(false);
            }
        }
        buf.drain(..n);
        return Ok(true);
    }
    loop {
        let Some(line) = line_of(conn, buf)? else {
            return Ok(false);
        };
        let size = line.split(|&b| b == b';').next().unwrap();
        if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) || size.len() > 15 {
            return Err(format!(
                "bad chunk-size line {:?}",
                String::from_utf8_lossy(&line)
            ));
        }
        let n = usize::from_str_radix(std::str::from_utf8(size).unwrap(), 16).unwrap();
        if n == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(t) = line_of(conn, buf)? else {
                    return Ok(false);
                };
                if t.is_empty() {
                    return Ok(true);
                }
            }
        }
        while buf.len() < n + 2 {
            if !more(conn, buf) {
                return Ok(false);
            }
        }
        if &buf[n..n + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        buf.drain(..n + 2);
    }
}

/// One CRLF-terminated line (a bare LF or CR is a problem).
fn line_of(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    loop {
        if let Some(p) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=p).collect();
            let Some(line) = line.strip_suffix(b"\r\n") else {
                return Err("bare LF in a chunked body".into());
            };
            if line.contains(&b'\r') {
                return Err("bare CR in a chunked body".into());
            }
            return Ok(Some(line.to_vec()));
        }
        if !more(conn, buf) {
            return Ok(None);
        }
    }
}

fn more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

// ---------------------------------------------------------------------------
// The client side.

/// Sends `bytes` on a new connection, shuts the sending side, and returns
/// what came back until the proxy closed (or the deadline).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut sock) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    sock.write_all(bytes).unwrap();
    let _ = sock.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = sock.read_to_end(&mut out);
    out
}

/// The final responses in what a client received (interim 1xx skipped):
/// status and body; `Err` names what did not parse.
fn responses(mut data: &[u8], head_first: bool) -> Result<Vec<(u16, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(end) = find(data, b"\r\n\r\n") else {
            return Err(format!(
                "trailing bytes {:?}",
                String::from_utf8_lossy(data)
            ));
        };
        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
        data = &data[end + 4..];
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let field = |n: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.trim() == n)
                .map(|(_, v)| v.trim().to_owned())
                .collect::<Vec<_>>()
        };
        let lengths = field("content-length");
        if lengths.len() > 1 {
            return Err(format!("{} Content-Length fields: {head:?}", lengths.len()));
        }
        let no_body = (head_first && out.is_empty()) || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if field("transfer-encoding")
            .iter()
            .any(|v| v.ends_with("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let p = find(data, b"\r\n").ok_or("cut in a chunk size")?;
                let size = std::str::from_utf8(&data[..p]).map_err(|_| "chunk size")?;
                let n = usize::from_str_radix(size.split(';').next().unwrap(), 16)
                    .map_err(|_| format!("chunk size {size:?}"))?;
                if data.len() < p + 2 + n + 2 {
                    return Err("cut in a chunk".into());
                }
                body.extend_from_slice(&data[p + 2..p + 2 + n]);
                data = &data[p + 2 + n + 2..];
                if n == 0 {
                    break;
                }
            }
            body
        } else if let Some(n) = lengths.first() {
            let n: usize = n.parse().map_err(|_| format!("length {n:?}"))?;
            if data.len() < n {
                return Err("cut in a body".into());
            }
            let (body, rest) = data.split_at(n);
            data = rest;
            body.to_vec()
        } else {
            std::mem::take(&mut data).to_vec()
        };
        out.push((status, body));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The proxies.

/// Access log lines: the (method, target) of every request a proxy logged.
trait Logs {
    fn logged(&mut self) -> &BTreeSet<(String, String)>;
}

/// halo's JSON access lines, read as they come.
struct HaloLogs {
    lines: Receiver<String>,
    logged: BTreeSet<(String, String)>,
}

impl Logs for HaloLogs {
    fn logged(&mut self) -> &BTreeSet<(String, String)> {
        while let Ok(line) = self.lines.try_recv() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let f = &v["fields"];
            if let (Some(m), Some(p)) = (f["method"].as_str(), f["path"].as_str()) {
                self.logged.insert((m.to_owned(), p.to_owned()));
            }
        }
        &self.logged
    }
}

/// HAProxy's lines (`log-format "desync %HM %HU"`).
struct HaproxyLogs {
    lines: Receiver<String>,
    logged: BTreeSet<(String, String)>,
}

impl Logs for HaproxyLogs {
    fn logged(&mut self) -> &BTreeSet<(String, String)> {
        while let Ok(line) = self.lines.try_recv() {
            let mut words = line.split(' ').skip_while(|w| *w != "desync").skip(1);
            if let (Some(m), Some(u)) = (words.next(), words.next()) {
                // An absolute-form target is logged as sent.
                let path = match u.split_once("://") {
                    Some((_, rest)) => rest.find('/').map_or("/", |p| &rest[p..]),
                    None => u,
                };
                self.logged.insert((m.to_owned(), path.to_owned()));
            }
        }
        &self.logged
    }
}

/// One probe's outcome through one proxy.
#[derive(Debug)]
struct Outcome {
    statuses: Vec<u16>,
    /// Distinct requests of the probe the server parsed.
    forwarded: usize,
    /// Requests the server parsed that the proxy did not log.
    unlogged: Vec<(String, String)>,
    /// How the bytes the server got were not clean.
    server_problems: Vec<String>,
    /// What the client got that was wrong: unparsable, or an answer meant for
    /// another request.
    client_problems: Vec<String>,
    /// What the victim request got, when not its own answer.
    victim: Option<String>,
}

impl Outcome {
    fn desynced(&self) -> bool {
        !self.unlogged.is_empty()
            || !self.server_problems.is_empty()
            || !self.client_problems.is_empty()
            || self.victim.is_some()
    }

    /// The statuses and the requests forwarded, then each way it went
    /// wrong: shortly for the table (`full`: false), or with everything
    /// seen for a failure message.
    fn describe(&self, full: bool) -> String {
        let statuses: Vec<String> = self.statuses.iter().map(u16::to_string).collect();
        let mut s = format!("{} · {} fwd", statuses.join(","), self.forwarded);
        if !self.unlogged.is_empty() {
            s += &if full {
                format!(" · UNLOGGED {:?}", self.unlogged)
            } else {
                format!(" · **{} unlogged at the server**", self.unlogged.len())
            };
        }
        for p in &self.server_problems {
            let what = if full {
                p
            } else {
                p.split(" in \"").next().unwrap_or(p)
            };
            s += &format!(" · **server got: {what}**");
        }
        if !self.client_problems.is_empty() {
            s += &if full {
                format!(" · CLIENT GOT {:?}", self.client_problems)
            } else {
                " · **client got a wrong answer**".to_owned()
            };
        }
        if let Some(v) = &self.victim {
            s += &if full {
                format!(" · NEXT CLIENT GOT {v}")
            } else {
                " · **next client got a wrong answer**".to_owned()
            };
        }
        s
    }
}

/// Runs every probe through the proxy at `addr` (prefix `tag` keeps the
/// paths of two proxies apart on one server).
fn run_probes(addr: SocketAddr, server: &Server, logs: &mut dyn Logs, tag: &str) -> Vec<Outcome> {
    let mut client_side = Vec::new();
    for probe in PROBES {
        let path = format!("/{tag}-{}", probe.name);
        let got = exchange(addr, &fill(probe.send, &path));
        let mut problems = Vec::new();
        let mut statuses = Vec::new();
        match responses(&got, probe.head_first) {
            Ok(rs) => {
                for (status, body) in rs {
                    statuses.push(status);
                    let body = String::from_utf8_lossy(&body);
                    let from_server = body.starts_with(|c: char| c.is_ascii_uppercase())
                        && body.contains(' ')
                        && !body.contains('\n');
                    if body.contains("POISON")
                        || from_server && !body.split(' ').nth(1).unwrap_or("").starts_with(&path)
                    {
                        problems.push(format!("{status} {body:?}"));
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        let victim_req = format!("GET {path}/victim HTTP/1.1\r\nHost: x\r\n\r\n");
        let victim_got = exchange(addr, victim_req.as_bytes());
        let expected = format!("GET {path}/victim");
        let victim = match responses(&victim_got, false) {
            Ok(rs) if rs.len() == 1 && rs[0].0 == 200 && rs[0].1 == expected.as_bytes() => None,
            _ => Some(format!("{:?}", String::from_utf8_lossy(&victim_got))),
        };
        client_side.push((path, statuses, problems, victim));
    }
    // Logs come a moment after the answers: wait (with a deadline) until
    // every request the server saw is logged; what is still missing then
    // was smuggled.
    #[allow(clippy::disallowed_methods, reason = "a deadline on real processes")]
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let logged = logs.logged();
        let missing = client_side.iter().any(|(path, ..)| {
            server
                .of(path)
                .0
                .iter()
                .any(|r| !logged.contains(r) && !r.1.ends_with("/victim"))
        });
        #[allow(clippy::disallowed_methods, reason = "a deadline on real processes")]
        let now = std::time::Instant::now();
        if !missing || now > end {
            break;
        }
        #[allow(clippy::disallowed_methods, reason = "a poll interval")]
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = logs.logged().clone();
    client_side
        .into_iter()
        .map(|(path, statuses, client_problems, victim)| {
            let (requests, server_problems) = server.of(&path);
            let victim_path = format!("{path}/victim");
            let requests: Vec<_> = requests
                .into_iter()
                .filter(|r| r.1 != victim_path)
                .collect();
            Outcome {
                statuses,
                forwarded: requests.len(),
                unlogged: requests
                    .iter()
                    .filter(|r| !logged.contains(*r))
                    .cloned()
                    .collect(),
                server_problems,
                client_problems,
                victim,
            }
        })
        .collect()
}

fn start_halo(dir: &std::path::Path, server: SocketAddr) -> (Child, SocketAddr, HaloLogs) {
    let path = dir.join("halo.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"desync\"\nthreads = 1\n\
             [[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\ndefault_pool = \"p\"\n\
             [[pool]]\nname = \"p\"\ntimeouts = {{ client = \"2s\", server = \"5s\" }}\n\
             [[pool.server]]\nname = \"s\"\naddress = \"{server}\"\n"
        ),
    )
    .unwrap();
    let (child, lines) = common::run_halo_with(&["--log-format", "json"], &path);
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("halo did not start listening");
        if line.contains("listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["fields"]["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    let logs = HaloLogs {
        lines,
        logged: BTreeSet::new(),
    };
    (child, addr, logs)
}

/// HAProxy 2.6 on a socket this test bound (`bind fd@N`, so no port is
/// guessed): one thread, keep-alive both sides, server connections reused
/// across clients (`http-reuse always`, the most exposed setting).
fn start_haproxy(dir: &std::path::Path, server: SocketAddr) -> (Child, SocketAddr, HaproxyLogs) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    // Inherited by HAProxy, which listens on it.
    socket.set_cloexec(false).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  log stdout format raw local0 info\n  nbthread 1\n\
             defaults\n  mode http\n  log global\n  log-format \"desync %HM %HU %ST %s\"\n\
             option forwardfor\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
             timeout http-request 5s\n\
             frontend f\n  bind fd@{fd}\n  default_backend b\n\
             backend b\n  http-reuse always\n  server s {server}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("/usr/sbin/haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(socket);
    let lines = common::lines_of(child.stdout.take().unwrap());
    // Listening once a connection is answered.
    #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = exchange(
            addr,
            b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if got.starts_with(b"HTTP/1.1 200") {
            break;
        }
        #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
        let now = std::time::Instant::now();
        assert!(now < end, "HAProxy did not answer");
        #[allow(clippy::disallowed_methods, reason = "a poll interval")]
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = HaproxyLogs {
        lines,
        logged: BTreeSet::new(),
    };
    (child, addr, logs)
}

#[test]
fn no_probe_desyncs_halo() {
    assert!(PROBES.len() >= 40, "the corpus has {} probes", PROBES.len());
    let mut answers = Answers::new();
    for tag in ["halo", "haproxy"] {
        for p in PROBES {
            if let Some((a, close)) = p.answer {
                answers.insert(format!("/{tag}-{}/r", p.name), (a.to_vec(), close));
            }
        }
    }
    let server = Server::start(answers);
    let dir = std::env::temp_dir().join(format!("halo-desync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let (mut halo, addr, mut logs) = start_halo(&dir, server.addr);
    let halo_out = run_probes(addr, &server, &mut logs, "halo");
    let _ = halo.kill();
    let _ = halo.wait();

    let haproxy_out = if common::have("/usr/sbin/haproxy", "haproxy") {
        let (mut haproxy, addr, mut logs) = start_haproxy(&dir, server.addr);
        let out = run_probes(addr, &server, &mut logs, "haproxy");
        let _ = haproxy.kill();
        let _ = haproxy.wait();
        Some(out)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);

    println!("| probe | decided by | halo | HAProxy 2.6 |\n|---|---|---|---|");
    let mut failures = Vec::new();
    for (i, p) in PROBES.iter().enumerate() {
        let h = &halo_out[i];
        let reference = haproxy_out
            .as_ref()
            .map_or("-".into(), |o| o[i].describe(false));
        println!(
            "| `{}` | {} | {} | {} |",
            p.name,
            p.rfc,
            h.describe(false),
            reference
        );
        let expected = h.statuses == p.statuses && h.forwarded == p.forwarded;
        if h.desynced() || !expected {
            failures.push(format!(
                "{}: got {}; expected {:?} / {} fwd",
                p.name,
                h.describe(true),
                p.statuses,
                p.forwarded
            ));
        }
    }
    let unlogged: usize = halo_out.iter().map(|o| o.unlogged.len()).sum();
    println!(
        "\n{} probes; requests at the server that halo did not log: {unlogged}",
        PROBES.len()
    );
    assert!(
        failures.is_empty(),
        "{} probes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

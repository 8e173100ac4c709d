//! The admin listener cannot be used to starve the node: a connection cap
//! (per client and in all), a head and idle timeout, the token checked
//! before a body is read, and GSLB peers asked at most once per
//! `peer_interval` however often the (unauthenticated) status is asked.
//! Each against the real binary.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// `halo run` on `config`; the admin API's address.
fn run(name: &str, config: &str) -> (Child, String, std::path::PathBuf) {
    let (child, (admin, _), dir, lines) = run_logged(name, config);
    // The rest of the log is read (and dropped) so halo never blocks on it.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    (child, admin, dir)
}

/// As [`run`], with the first proxy listener's address too (empty without
/// one), and the log lines from then on.
fn run_logged(
    name: &str,
    config: &str,
) -> (
    Child,
    (String, String),
    std::path::PathBuf,
    std::sync::mpsc::Receiver<String>,
) {
    let dir = std::env::temp_dir().join(format!("halo-admin-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("halo.toml");
    std::fs::write(&path, config).unwrap();
    let (child, lines) = common::run_halo(&path);
    let (mut admin, mut proxy) = (String::new(), String::new());
    while admin.is_empty() {
        let line = common::wait_line(&lines, "listening");
        if line.contains("admin API listening") {
            admin = common::addr_field(&line);
        } else if proxy.is_empty() && line.contains(" listening ") {
            proxy = common::addr_field(&line);
        }
    }
    (child, (admin, proxy), dir, lines)
}

fn stop(mut child: Child, dir: &std::path::Path) {
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// A connection from `source` (an address on lo) to `to`.
fn connect_from(source: &str, to: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket
        .connect(&to.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.into()
}

/// Whether the server closed `conn` (EOF or reset) within `within`.
fn closed_within(mut conn: &TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    match conn.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// How many of `conns` the server has closed, once at least `expected`
/// are (or after 5 s); long before the head timeout closes the others.
fn count_closed(conns: &[TcpStream], expected: usize) -> usize {
    for c in conns {
        c.set_nonblocking(true).unwrap();
    }
    #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let closed = conns
            .iter()
            .filter(|c| {
                let mut b = [0u8; 1];
                match (&mut &**c).read(&mut b) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                }
            })
            .count();
        #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
        let now = std::time::Instant::now();
        if closed >= expected || now > end {
            return closed;
        }
        #[allow(clippy::disallowed_methods, reason = "a poll interval")]
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a new connection from `source`; the whole answer.
fn request(source: &str, admin: &str, raw: &str) -> String {
    let mut c = connect_from(source, admin);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

const MINIMAL: &str = "[node]\nname = \"adm\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
    [[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"p\"\n\
    [[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"s\"\naddress = \"127.0.0.1:9\"\n";

#[test]
fn admin_connections_are_capped_per_client_and_in_all() {
    let (halo, admin, dir) = run("cap", MINIMAL);
    // 20 idle connections from one address: 16 are kept, the rest closed
    // at once (before: every one kept, 1,100 of them ran the node out of
    // descriptors).
    let from_one: Vec<TcpStream> = (0..20).map(|_| connect_from("127.0.0.2", &admin)).collect();
    assert_eq!(
        count_closed(&from_one, 4),
        4,
        "connections from one client over 16 are closed"
    );
    // 64 in all: four more addresses bring it to 64 + 16 more refused.
    let mut others = Vec::new();
    for ip in 3..=6 {
        for _ in 0..16 {
            others.push(connect_from(&format!("127.0.0.{ip}"), &admin));
        }
    }
    assert_eq!(
        count_closed(&others, 16),
        16,
        "connections over 64 in all are closed"
    );
    // Once some close, a new client is served again.
    drop(from_one);
    let mut answer = String::new();
    #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !answer.starts_with("HTTP/1.1 200") {
        answer = request(
            "127.0.0.7",
            &admin,
            "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
        let now = std::time::Instant::now();
        assert!(now < end, "{answer}");
    }
    stop(halo, &dir);
}

#[test]
fn an_idle_or_slow_admin_connection_is_closed() {
    let (halo, admin, dir) = run("idle", MINIMAL);
    let idle = connect_from("127.0.0.1", &admin);
    let mut slow = connect_from("127.0.0.1", &admin);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost:").unwrap();
    // The head timeout is 10 s; before, both stayed open for ever.
    assert!(
        closed_within(&idle, Duration::from_secs(30)),
        "idle connection kept"
    );
    assert!(
        closed_within(&slow, Duration::from_secs(30)),
        "slow head kept"
    );
    stop(halo, &dir);
}

#[test]
fn the_token_is_checked_before_any_body_is_read() {
    let dir = std::env::temp_dir().join(format!("halo-admin-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "a-token-of-twenty-bytes\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = MINIMAL.replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    );
    let (halo, admin, run_dir) = run("tok", &config);
    // A 1 MB body announced, none sent, no token: 401 at once (before, halo
    // waited for the body, up to 2 MB buffered per client before the check).
    let mut c = connect_from("127.0.0.1", &admin);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(
        b"POST /api/pools/p/servers/s HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000\r\n\r\n",
    )
    .unwrap();
    let mut answer = [0u8; 12];
    c.read_exact(&mut answer)
        .expect("no answer without the body");
    assert_eq!(&answer, b"HTTP/1.1 401");
    // With the token, a body over 64 KiB is refused, and a good one works.
    let big = "x".repeat(70 * 1024);
    let out = request(
        "127.0.0.1",
        &admin,
        &format!(
            "POST /api/pools/p/servers/s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a-token-of-twenty-bytes\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        ),
    );
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    let body = r#"{"state":"drain"}"#;
    let out = request(
        "127.0.0.1",
        &admin,
        &format!(
            "POST /api/pools/p/servers/s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer a-token-of-twenty-bytes\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    stop(halo, &run_dir);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn status_requests_ask_peers_at_most_once_per_interval() {
    // A peer that never answers and counts the questions about the
    // service's own name (the controller's localtargets- polls aside).
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = peer.recv(&mut buf) {
            // The first label of the question: "app", not "localtargets-app".
            if n > 13 && buf[12] == 3 && &buf[13..16] == b"app" {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let config = format!(
        "[node]\nname = \"adm\"\nsite = \"east\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [gslb]\nzone = \"global.example.com\"\nlisten = [\"127.0.0.1:0\"]\n\
         peers = [\"{peer_addr}\"]\npeer_interval = \"30s\"\nsites = [\"east\", \"west\"]\n\
         [[gslb.service]]\nname = \"app\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.20\"\n"
    );
    let (halo, admin, dir) = run("peers", &config);
    // 30 status requests, 10 at a time (before: each asked the peer anew,
    // A and AAAA, each twice when unanswered).
    for _ in 0..3 {
        let asks: Vec<_> = (0..10)
            .map(|_| {
                let admin = admin.clone();
                std::thread::spawn(move || {
                    request(
                        "127.0.0.1",
                        &admin,
                        "GET /api/status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    )
                })
            })
            .collect();
        for a in asks {
            let out = a.join().unwrap();
            assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        }
    }
    // One round: A and AAAA, each tried twice.
    let n = asked.load(Ordering::Relaxed);
    assert!((1..=4).contains(&n), "the peer was asked {n} times");
    stop(halo, &dir);
}

#[test]
fn network_values_cannot_forge_log_lines_or_fields() {
    // A server that fails its checks.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let config = format!(
        "[node]\nname = \"logs\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"http\"\n\
         [[listener.route]]\nhost = \"known.example\"\npool = \"p\"\n\
         [[pool]]\nname = \"p\"\n[pool.check]\ntype = \"http\"\ninterval = \"100ms\"\nfall = 1\n\
         [[pool.server]]\nname = \"s\"\naddress = \"{server_addr}\"\n"
    );
    let (halo, (admin, proxy), dir, lines) = run_logged("logs", &config);
    // A path with a line break and an escape sequence (decoded by the API).
    let forged = request(
        "127.0.0.1",
        &admin,
        "POST /api/pools/x%0aFORGED%20line/servers/s%1b%5b31m HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    let refused = common::wait_line(&lines, "admin change refused");
    assert!(
        refused.contains(r#" what="x\nFORGED line/s\u{1b}[31m" "#),
        "{refused}"
    );
    // A Host with fields of its own, through the proxy.
    let out = request(
        "127.0.0.1",
        &proxy,
        "GET /a HTTP/1.1\r\nHost: known.example status=200 pool=admin\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    let access = common::wait_line(&lines, "status=404");
    assert!(
        access.contains(r#" host="known.example status=200 pool=admin" "#),
        "{access}"
    );
    // A value with spaces is one field (a check's reason).
    let down = common::wait_line(&lines, "server is DOWN");
    assert!(
        down.contains(r#"reason="check: L7STS 503 Service Unavailable""#),
        "{down}"
    );
    let mut rest = vec![refused, access, down];
    while let Ok(l) = lines.try_recv() {
        rest.push(l);
    }
    assert!(
        !rest.iter().any(|l| l.starts_with("FORGED")),
        "{}",
        rest.join("\n")
    );
    stop(halo, &dir);
}

#[test]
fn a_token_file_others_can_read_or_a_short_token_is_refused() {
    let dir = std::env::temp_dir().join(format!("halo-admin-badtok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, mode, says) in [
        (
            "open.token",
            "a-token-of-twenty-bytes\n",
            0o644,
            "chmod o-rwx",
        ),
        ("short.token", "x\n", 0o600, "at least 16"),
    ] {
        let token = dir.join(name);
        std::fs::write(&token, text).unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        let config = dir.join("halo.toml");
        std::fs::write(
            &config,
            MINIMAL.replace(
                "[admin]\nlisten = \"127.0.0.1:0\"\n",
                &format!(
                    "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
                    token.display()
                ),
            ),
        )
        .unwrap();
        // Before, halo ran with either (a one-character token, readable by
        // every user of the host).
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_halo"))
            .args(["run", "-c"])
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            #[allow(clippy::disallowed_methods, reason = "a deadline on a real process")]
            let now = std::time::Instant::now();
            if now > end {
                let _ = child.kill();
                panic!("{name}: halo ran with it");
            }
            #[allow(clippy::disallowed_methods, reason = "a poll interval")]
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!status.success(), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

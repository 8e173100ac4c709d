//! Hitless reload: 100 reloads, alternating two configs, while wrk keeps
//! 20 connections busy through the proxy. Not one request may fail: the
//! listener keeps its socket (while a second listener is bound and closed
//! at every other reload), requests in flight finish on the snapshot they
//! started with, and the server that stays keeps its health.
//!
//! Needs wrk (scripts/test installs it). Outside CI a missing wrk skips the
//! test and says so; in CI it fails.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod common;

/// A small HTTP/1.1 keep-alive server answering "ok" to everything; counts
/// the requests it answers.
fn backend() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let count = Arc::clone(&count);
            std::thread::spawn(move || serve(conn, &count));
        }
    });
    (addr, served)
}

fn serve(conn: TcpStream, count: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        // Headers up to the blank line; the requests carry no body.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            .is_err()
        {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_hundred_reloads_under_load_fail_no_request() {
    if !common::have("/usr/bin/wrk", "wrk") {
        return;
    }
    let (a, served_a) = backend();
    let (b, _served_b) = backend();
    let dir = std::env::temp_dir().join(format!("halo-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("halo.toml");
    // Two configs: the pool with server a alone, and with a and b (b weighted
    // 2) and a second listener; "web", under load, is the same in both, so
    // every other reload binds a listener and the next one closes it.
    let config = |with_b: bool| {
        let mut c = format!(
            "[node]\nname = \"r\"\nthreads = 1\n[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\n\
             protocol = \"http\"\ndefault_pool = \"p\"\n[[pool]]\nname = \"p\"\n[pool.check]\ninterval = \"1s\"\n\
             [[pool.server]]\nname = \"a\"\naddress = \"{a}\"\n"
        );
        if with_b {
            c += &format!(
                "[[pool.server]]\nname = \"b\"\naddress = \"{b}\"\nweight = 2\n\
                 [[listener]]\nname = \"extra\"\nbind = [\"127.0.0.1:0\"]\nprotocol = \"tcp\"\ndefault_pool = \"p\"\n"
            );
        }
        c
    };
    std::fs::write(&path, config(false)).unwrap();
    let mut halo = Command::new(env!("CARGO_BIN_EXE_halo"))
        .arg("run")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::lines_of(halo.stderr.take().unwrap());
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no log line containing {needle:?} within 20s"));
            assert!(!line.contains("reload rejected"), "{line}");
            if line.contains(needle) {
                return line;
            }
        }
    };
    let line = wait_for("listening");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .to_owned();

    let wrk = Command::new("wrk")
        .args(["-t2", "-c20", "-d10s", &format!("http://{addr}/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for load to flow, then reload 100 times; between two reloads the
    // proxy answers at least 20 more requests, so every reload happens under
    // load (a condition, not a sleep).
    let wait_served = |at_least: u64| {
        #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while served_a.load(Ordering::Relaxed) < at_least {
            #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
            let now = std::time::Instant::now();
            assert!(now < end, "no traffic through the proxy");
            #[allow(clippy::disallowed_methods, reason = "a poll interval")]
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_served(100);
    for i in 0..100 {
        std::fs::write(&path, config(i % 2 == 0)).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &halo.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_for("reloaded:");
        let now = served_a.load(Ordering::Relaxed);
        wait_served(now + 20);
    }
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("requests in"), "{report}");
    assert!(!report.contains("Non-2xx or 3xx responses"), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");

    let _ = Command::new("kill")
        .args(["-TERM", &halo.id().to_string()])
        .status();
    assert!(halo.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

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
    let (halo, lines) = common::run_halo(&path);
    let wait_for = |needle: &str| common::wait_line(&lines, needle);
    let addr = common::addr_field(&wait_for("listening"));

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
    no_failed_request(wrk);
    stop(halo, &dir);
}

/// The CN of the certificate `addr` serves for SNI app.example.test.
fn served_cn(addr: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            addr,
            "-servername",
            "app.example.test",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("subject=CN = ")
                .or_else(|| l.strip_prefix("subject=CN="))
        })
        .unwrap_or("none")
        .trim()
        .to_owned()
}

/// Certificates change under load without a failed request: the files
/// change on disk (picked up within `watch_interval`) 5 times, and 10
/// SIGHUPs point the listener at other files and back, while wrk keeps 20 TLS
/// connections busy; a broken new file is refused and the old certificate
/// goes on serving.
#[test]
fn certificates_change_under_load_without_a_failed_request() {
    if !common::have("/usr/bin/wrk", "wrk") || !common::have("/usr/bin/openssl", "openssl") {
        return;
    }
    let (backend, served) = backend();
    let dir = std::env::temp_dir().join(format!("halo-tls-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["gen-1", "gen-2", "gen-3"] {
        common::self_signed(&dir, name, &["app.example.test"]);
    }
    // "live" is what the file watch sees change; the config names it or gen-3.
    let copy = |from: &str, to: &str| {
        for ext in ["pem", "key"] {
            let tmp = dir.join(format!("{to}.{ext}.tmp"));
            std::fs::copy(dir.join(format!("{from}.{ext}")), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join(format!("{to}.{ext}"))).unwrap();
        }
    };
    copy("gen-1", "live");
    let config = |files: &str| {
        format!(
            "[node]\nname = \"t\"\nthreads = 1\n[[listener]]\nname = \"web\"\nbind = [\"127.0.0.1:0\"]\n\
             protocol = \"https\"\ndefault_pool = \"p\"\n[listener.tls]\nwatch_interval = \"1s\"\n\
             [[listener.certificate]]\ncert = \"{files}.pem\"\nkey = \"{files}.key\"\n\
             [[pool]]\nname = \"p\"\n[[pool.server]]\nname = \"a\"\naddress = \"{backend}\"\n"
        )
    };
    let path = dir.join("halo.toml");
    std::fs::write(&path, config("live")).unwrap();
    let (halo, lines) = common::run_halo(&path);
    let wait_for = |needle: &str| common::wait_line(&lines, needle);
    let addr = common::addr_field(&wait_for("listening"));
    assert_eq!(served_cn(&addr), "gen-1");

    let wrk = Command::new("wrk")
        // Longer than the rounds take; stopped with SIGINT (wrk then
        // prints its report) once they are done.
        .args(["-t2", "-c20", "-d60s", &format!("https://{addr}/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wait_served = |more: u64| {
        let target = served.load(Ordering::Relaxed) + more;
        #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while served.load(Ordering::Relaxed) < target {
            #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
            let now = std::time::Instant::now();
            assert!(now < end, "no traffic through the proxy");
            #[allow(clippy::disallowed_methods, reason = "a poll interval")]
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let wait_cn = |cn: &str| {
        #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = served_cn(&addr);
            if got == cn {
                return;
            }
            #[allow(clippy::disallowed_methods, reason = "deadline on a real process")]
            let now = std::time::Instant::now();
            assert!(now < end, "still serving {got}, not {cn}");
        }
    };
    wait_served(100);
    for round in 0..5 {
        // On disk: live becomes gen-2 (or back to gen-1).
        let next = if round % 2 == 0 { "gen-2" } else { "gen-1" };
        copy(next, "live");
        wait_cn(next);
        wait_served(20);
        // Reload: the listener now names gen-3's files, then live again.
        std::fs::write(&path, config("gen-3")).unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &halo.id().to_string()])
            .status();
        wait_for("reloaded:");
        wait_cn("gen-3");
        wait_served(20);
        std::fs::write(&path, config("live")).unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &halo.id().to_string()])
            .status();
        wait_for("reloaded:");
        wait_cn(next);
        wait_served(20);
    }
    // A broken file on disk: refused, the certificate serving stays.
    std::fs::write(
        dir.join("live.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    wait_for("cannot serve; the old ones stay");
    assert_eq!(served_cn(&addr), "gen-2");
    wait_served(20);

    let _ = Command::new("kill")
        .args(["-INT", &wrk.id().to_string()])
        .status();
    no_failed_request(wrk);
    stop(halo, &dir);
}

/// wrk's report, which must show requests and no error of any kind.
fn no_failed_request(wrk: std::process::Child) {
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("requests in"), "{report}");
    assert!(!report.contains("Non-2xx or 3xx responses"), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
}

/// SIGTERM: halo must exit 0; then the test's folder goes.
fn stop(mut halo: std::process::Child, dir: &std::path::Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &halo.id().to_string()])
        .status();
    assert!(halo.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(dir);
}

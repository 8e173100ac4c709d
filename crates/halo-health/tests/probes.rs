//! Probes and monitors against real servers on 127.0.0.1 (port 0). Nothing
//! sleeps to synchronise: tests wait for events with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use halo_config::{
    Check, CheckKind, HttpCheck, InitialState, Passive, ServerAddress, StatusRanges,
};
use halo_health::probe::probe;
use halo_health::{AdminState, HealthEvent, HealthHub, ProbeTarget, ServerKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// A small HTTP/1.1 server. `GET /status` answers with the status in `status`,
/// `/host` echoes the Host header, `/silent` never answers.
async fn http_server(status: Arc<AtomicU16>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let status = Arc::clone(&status);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (code, body) = match path.as_str() {
                    "/silent" => {
                        // Hold the connection open without answering.
                        let _ = sock.read(&mut chunk).await;
                        return;
                    }
                    "/host" => {
                        let host = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("host: ")
                                    .or_else(|| l.strip_prefix("Host: "))
                            })
                            .unwrap_or("")
                            .to_owned();
                        (200, format!("host={host}"))
                    }
                    _ => (status.load(Ordering::SeqCst), "all good".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

fn tcp_check() -> Check {
    Check {
        kind: CheckKind::Tcp,
        port: None,
        interval: Duration::from_millis(50),
        fast_interval: Duration::from_millis(20),
        down_interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 2,
        initial: InitialState::Up,
        spread_percent: 10,
    }
}

fn http_check(path: &str) -> Check {
    Check {
        kind: CheckKind::Http(HttpCheck {
            method: "GET".into(),
            path: path.into(),
            host: None,
            expect_status: StatusRanges(vec![200..=399]),
            expect_body: None,
        }),
        ..tcp_check()
    }
}

fn with_http(mut check: Check, f: impl FnOnce(&mut HttpCheck)) -> Check {
    if let CheckKind::Http(h) = &mut check.kind {
        f(h);
    }
    check
}

fn target(addr: SocketAddr) -> ProbeTarget {
    ProbeTarget::new(&ServerAddress::Socket(addr), None)
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn tcp_probe_up_and_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = probe(&target(listener.local_addr().unwrap()), &tcp_check()).await;
    assert!(up.ok, "{up:?}");
    assert_eq!(up.detail, "L4OK");

    let down = probe(&target(closed_port().await), &tcp_check()).await;
    assert!(!down.ok);
    assert!(down.detail.starts_with("L4CON"), "{down:?}");
}

#[tokio::test]
async fn http_probe_statuses_body_host_and_timeout() {
    let status = Arc::new(AtomicU16::new(200));
    let addr = http_server(Arc::clone(&status)).await;
    let t = target(addr);

    let ok = probe(&t, &http_check("/status")).await;
    assert_eq!((ok.ok, ok.detail.as_str()), (true, "L7OK 200"));

    // 3xx is up (HAProxy: 2xx and 3xx), 5xx is down.
    status.store(302, Ordering::SeqCst);
    assert!(probe(&t, &http_check("/status")).await.ok);
    status.store(500, Ordering::SeqCst);
    let failed = probe(&t, &http_check("/status")).await;
    assert!(!failed.ok);
    assert!(failed.detail.starts_with("L7STS 500"), "{failed:?}");

    // expect_status ranges are honoured both ways.
    let only_500 = with_http(http_check("/status"), |h| {
        h.expect_status = StatusRanges(vec![500..=500]);
    });
    assert!(probe(&t, &only_500).await.ok);
    status.store(200, Ordering::SeqCst);
    assert!(!probe(&t, &only_500).await.ok);

    // expect_body: substring of the body.
    let body_ok = with_http(http_check("/status"), |h| {
        h.expect_body = Some("good".into());
    });
    assert!(probe(&t, &body_ok).await.ok);
    let body_bad = with_http(http_check("/status"), |h| {
        h.expect_body = Some("healthy".into());
    });
    let failed = probe(&t, &body_bad).await;
    assert!(
        !failed.ok && failed.detail.contains("body lacks"),
        "{failed:?}"
    );

    // Host header: the server's address by default, the configured one if set.
    let echo = with_http(http_check("/host"), |h| {
        h.expect_body = Some(format!("host=127.0.0.1:{}", addr.port()));
    });
    assert!(probe(&t, &echo).await.ok);
    let named = with_http(http_check("/host"), |h| {
        h.host = Some("app.example.com".into());
        h.expect_body = Some("host=app.example.com".into());
    });
    assert!(probe(&t, &named).await.ok);

    // A server that accepts but never answers fails at the timeout.
    let silent = Check {
        timeout: Duration::from_millis(200),
        ..http_check("/silent")
    };
    let failed = probe(&t, &silent).await;
    assert!(!failed.ok);
    assert!(failed.detail.starts_with("L7TOUT"), "{failed:?}");

    // Nothing listening: a layer-4 failure, reported as such.
    let refused = probe(&target(closed_port().await), &http_check("/")).await;
    assert!(
        !refused.ok && refused.detail.starts_with("L4CON"),
        "{refused:?}"
    );
}

/// The next event for `key` matching `want`, within a deadline.
async fn next_event(
    rx: &mut broadcast::Receiver<HealthEvent>,
    want: impl Fn(&HealthEvent) -> bool,
) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = rx.recv().await.expect("hub closed");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("no such event within 10s")
}

#[tokio::test]
async fn monitor_follows_a_server_down_and_up_and_publishes_it() {
    let status = Arc::new(AtomicU16::new(200));
    let addr = http_server(Arc::clone(&status)).await;
    let hub = HealthHub::new(1);
    let mut rx = hub.subscribe();
    let key = ServerKey::new("web", "s1");
    let monitor = hub.spawn(
        key.clone(),
        &ServerAddress::Socket(addr),
        Some(&http_check("/status")),
        Passive::default(),
    );
    let health = Arc::clone(monitor.health());
    assert!(health.is_serving());

    status.store(503, Ordering::SeqCst);
    let down = next_event(&mut rx, |e| !e.transition.up).await;
    assert_eq!(down.key, key);
    assert!(
        down.transition.reason.to_string().contains("L7STS 503"),
        "{down:?}"
    );
    assert!(!health.is_up() && !health.is_serving());

    status.store(200, Ordering::SeqCst);
    let up = next_event(&mut rx, |e| e.transition.up).await;
    assert!(up.transition.reason.to_string().contains("L7OK"), "{up:?}");
    assert!(health.is_serving());
}

#[tokio::test]
async fn passive_errors_eject_a_server_without_active_checks() {
    let hub = HealthHub::new(2);
    let mut rx = hub.subscribe();
    let passive = Passive {
        error_limit: 3,
        ejection_time: Duration::from_millis(100),
        max_ejection_time: Duration::from_secs(1),
        ..Passive::default()
    };
    let monitor = hub.spawn(
        ServerKey::new("p", "s"),
        &ServerAddress::Socket(closed_port().await),
        None,
        passive,
    );
    let health = Arc::clone(monitor.health());

    // Successes in between restart the count.
    health.report_error();
    health.report_error();
    health.report_success();
    health.report_error();
    health.report_error();
    assert!(health.is_up());
    health.report_error();
    let down = next_event(&mut rx, |e| !e.transition.up).await;
    assert_eq!(
        down.transition.reason.to_string(),
        "3 consecutive errors on live traffic"
    );
    assert!(!health.is_serving());
    // Back after the ejection time.
    let up = next_event(&mut rx, |e| e.transition.up).await;
    assert_eq!(up.transition.reason.to_string(), "passive ejection ended");
    assert!(health.is_serving());
}

#[tokio::test]
async fn passive_errors_mark_down_until_checks_pass_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = HealthHub::new(3);
    let mut rx = hub.subscribe();
    let passive = Passive {
        error_limit: 2,
        ..Passive::default()
    };
    let monitor = hub.spawn(
        ServerKey::new("p", "s"),
        &ServerAddress::Socket(listener.local_addr().unwrap()),
        Some(&tcp_check()),
        passive,
    );
    let health = Arc::clone(monitor.health());
    health.report_error();
    health.report_error();
    next_event(&mut rx, |e| !e.transition.up).await;
    // The listener accepts, so rise=2 checks bring it back.
    let up = next_event(&mut rx, |e| e.transition.up).await;
    assert!(up.transition.reason.to_string().contains("L4OK"));
}

#[tokio::test]
async fn drain_and_maint_change_traffic_not_health() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = HealthHub::new(4);
    let mut rx = hub.subscribe();
    let monitor = hub.spawn(
        ServerKey::new("p", "s"),
        &ServerAddress::Socket(listener.local_addr().unwrap()),
        Some(&tcp_check()),
        Passive::default(),
    );
    let health = Arc::clone(monitor.health());

    health.set_admin(AdminState::Drain);
    // Takes effect for new traffic at once, before the task has even run.
    assert!(!health.is_serving());
    let e = next_event(&mut rx, |e| e.transition.admin == AdminState::Drain).await;
    assert!(e.transition.was_up && e.transition.up);
    assert!(health.is_up());

    health.set_admin(AdminState::Maint);
    next_event(&mut rx, |e| e.transition.admin == AdminState::Maint).await;
    // In maint nothing is checked: closing the listener changes nothing.
    drop(listener);
    health.set_admin(AdminState::Ready);
    // Leaving maint checks at once; the server is gone now, so it goes down.
    next_event(&mut rx, |e| e.transition.admin == AdminState::Ready).await;
    let down = next_event(&mut rx, |e| !e.transition.up).await;
    assert!(
        down.transition.reason.to_string().contains("L4CON"),
        "{down:?}"
    );
}

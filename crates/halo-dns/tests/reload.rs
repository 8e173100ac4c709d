//! A reload that changes `gslb.listen`: a kept address keeps answering, a
//! new one answers, a removed one goes quiet, and a port in use refuses the
//! reload with nothing changed. Queries are real UDP exchanges
//! (`halo_dns::ask`, a resolver's question).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use halo_dns::Dns;
use halo_dns::wire::PeerAnswer;
use halo_health::{HealthHub, Registry};

fn config(listen: &[String], address: &str) -> halo_config::Config {
    let listen: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
    let text = format!(
        "[node]\nname = \"n\"\nsite = \"east\"\n[gslb]\nzone = \"global.test\"\nlisten = [{}]\n\
         nameservers = [\"ns.global.test\"]\n[[gslb.service]]\nname = \"app\"\n\
         [[gslb.service.endpoint]]\naddress = \"{address}\"\n",
        listen.join(", ")
    );
    halo_config::parse(Path::new("reload.toml"), &text).expect("valid config")
}

async fn ask(at: SocketAddr) -> Option<PeerAnswer> {
    halo_dns::ask(at, "app.global.test", 1, Duration::from_millis(500)).await
}

/// Asks `at` until it answers `want` (a reload's new zone reaches the query
/// path through the controller task, a moment after `reload` returns).
async fn answers(at: SocketAddr, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = addresses(ask(at).await);
        if got == [want] {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{at} answers {got:?}, not {want}"
        );
        tokio::task::yield_now().await;
    }
}

fn addresses(answer: Option<PeerAnswer>) -> Vec<String> {
    answer
        .expect("an answer")
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_keeps_and_removes_listen_addresses() {
    let mut registry = Registry::new(HealthHub::new(1));
    let first = config(&["127.0.0.1:0".into()], "192.0.2.1");
    registry.apply(&first);
    let mut dns = Dns::start(&first, &registry, 1, 2).unwrap();
    let kept = dns.bound()[0];
    assert_eq!(addresses(ask(kept).await), ["192.0.2.1"]);

    // Keep the first address and add a second (127.0.0.0/8 is loopback).
    let both = config(&["127.0.0.1:0".into(), "127.0.0.2:0".into()], "192.0.2.2");
    registry.apply(&both);
    dns.reload(&both, &registry).unwrap();
    let bound = dns.bound();
    assert_eq!(bound.len(), 2);
    assert_eq!(bound[0], kept);
    let added = bound[1];
    assert_eq!(added.ip().to_string(), "127.0.0.2");
    answers(added, "192.0.2.2").await;
    answers(kept, "192.0.2.2").await;

    // A port in use (a UDP socket without SO_REUSEPORT): refused, nothing changes.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let blocked = config(
        &[
            "127.0.0.1:0".into(),
            "127.0.0.2:0".into(),
            taken.local_addr().unwrap().to_string(),
        ],
        "192.0.2.3",
    );
    let err = dns.reload(&blocked, &registry).unwrap_err();
    assert!(err.to_string().contains("cannot listen"), "{err}");
    assert_eq!(dns.bound(), [kept, added]);
    assert_eq!(addresses(ask(added).await), ["192.0.2.2"]);

    // Drop the first address: it goes quiet, the second answers.
    let second = config(&["127.0.0.2:0".into()], "192.0.2.4");
    registry.apply(&second);
    dns.reload(&second, &registry).unwrap();
    assert_eq!(dns.bound(), [added]);
    answers(added, "192.0.2.4").await;
    assert!(
        ask(kept).await.is_none(),
        "the removed address still answers"
    );
}

//! k8gb's scenarios with halo nodes as sites on loopback: each node checks its
//! own "app" (a TCP listener the test opens and closes), answers for its site,
//! and learns the other sites from their `localtargets-` answers.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

use halo_dns::Dns;
use halo_dns::wire::{build_query, parse_reply};
use halo_health::{HealthHub, Registry};

/// One site: its app, its health engine and its DNS node.
struct Site {
    name: &'static str,
    address: &'static str,
    app_port: u16,
    app: Option<TcpListener>,
    registry: Registry,
    dns: Option<Dns>,
}

fn config(site: &str, address: &str, app_port: u16, peers: &[SocketAddr]) -> halo_config::Config {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    let text = format!(
        r#"
[node]
name = "{site}-1"
site = "{site}"
[[pool]]
name = "app"
  [pool.check]
  type = "tcp"
  interval = "100ms"
  timeout = "100ms"
  rise = 1
  fall = 1
  [[pool.server]]
  name = "app-0"
  address = "127.0.0.1:{app_port}"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
sites = ["east", "west", "north"]
peers = [{peers}]
peer_interval = "100ms"
peer_stale_after = "2s"
  [[gslb.service]]
  name = "fo"
  strategy = "failover"
  failover_order = ["east", "west"]
  when_all_down = "nxdomain"
  ttl = "5s"
    [[gslb.service.endpoint]]
    address = "{address}"
    health = {{ pool = "app" }}
  [[gslb.service]]
  name = "rr"
  ttl = "5s"
  when_all_down = "nxdomain"
    [[gslb.service.endpoint]]
    address = "{address}"
    health = {{ pool = "app" }}
"#,
        peers = peers.join(", ")
    );
    halo_config::parse(Path::new("site.toml"), &text).expect("valid")
}

impl Site {
    fn start(rt: &tokio::runtime::Runtime, name: &'static str, address: &'static str) -> Self {
        let app = TcpListener::bind("127.0.0.1:0").unwrap();
        let app_port = app.local_addr().unwrap().port();
        let c = config(name, address, app_port, &[]);
        let (registry, dns) = rt.block_on(async {
            let mut registry = Registry::new(HealthHub::new(3));
            registry.apply(&c);
            let dns = Dns::start(&c, &registry, 3, 1).unwrap();
            (registry, dns)
        });
        Self {
            name,
            address,
            app_port,
            app: Some(app),
            registry,
            dns: Some(dns),
        }
    }

    fn dns_addr(&self) -> SocketAddr {
        self.dns.as_ref().unwrap().bound()[0]
    }

    fn peer_with(&mut self, rt: &tokio::runtime::Runtime, peers: &[SocketAddr]) {
        let c = config(self.name, self.address, self.app_port, peers);
        rt.block_on(async {
            self.registry.apply(&c);
            self.dns
                .as_mut()
                .unwrap()
                .reload(&c, &self.registry)
                .unwrap();
        });
    }

    fn stop_app(&mut self) {
        self.app = None;
    }

    fn start_app(&mut self) {
        // The same port again (SO_REUSEADDR: std sets it on Unix).
        self.app = Some(TcpListener::bind(("127.0.0.1", self.app_port)).unwrap());
    }
}

/// The answer as "NXDOMAIN" or the sorted addresses ("" for none).
fn ask(server: SocketAddr, name: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let q = build_query(7, &format!("{name}.global.example.com"), 1, 0);
    sock.send_to(&q, server).unwrap();
    let mut buf = [0u8; 1500];
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return "timeout".into();
    };
    let r = parse_reply(&buf[..n], 7, 0).expect("a reply");
    if r.rcode == 3 {
        return "NXDOMAIN".into();
    }
    let mut a: Vec<IpAddr> = r.addresses;
    a.sort();
    a.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls until every node answers `want` for `name` (deadline 10 s).
#[track_caller]
fn converge(nodes: &[Site], name: &str, want: &str) {
    #[allow(
        clippy::disallowed_methods,
        reason = "real processes and sockets: a wall-clock deadline"
    )]
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<String> = nodes.iter().map(|s| ask(s.dns_addr(), name)).collect();
        if got.iter().all(|g| g == want) {
            return;
        }
        #[allow(clippy::disallowed_methods, reason = "see above")]
        let late = std::time::Instant::now() > deadline;
        assert!(
            !late,
            "{name}: wanted {want:?} from every node, got {got:?}"
        );
        #[allow(
            clippy::disallowed_methods,
            reason = "poll interval of a real-time condition"
        )]
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn federation(rt: &tokio::runtime::Runtime, sites: &[(&'static str, &'static str)]) -> Vec<Site> {
    let mut nodes: Vec<Site> = sites.iter().map(|(n, a)| Site::start(rt, n, a)).collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(Site::dns_addr).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let others: Vec<SocketAddr> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        node.peer_with(rt, &others);
    }
    nodes
}

#[test]
fn failover_cycle_across_two_sites() {
    let rt = runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    converge(&n, "fo", "192.0.2.10");
    converge(&n, "rr", "192.0.2.10 198.51.100.10");
    n[1].stop_app();
    converge(&n, "fo", "192.0.2.10");
    converge(&n, "rr", "192.0.2.10");
    n[0].stop_app();
    converge(&n, "fo", "NXDOMAIN");
    n[1].start_app();
    converge(&n, "fo", "198.51.100.10");
    n[0].start_app();
    converge(&n, "fo", "192.0.2.10");
    converge(&n, "rr", "192.0.2.10 198.51.100.10");
}

#[test]
fn round_robin_over_three_sites_as_apps_stop_and_return() {
    let rt = runtime();
    let mut n = federation(
        &rt,
        &[
            ("east", "192.0.2.10"),
            ("west", "198.51.100.10"),
            ("north", "203.0.113.10"),
        ],
    );
    converge(&n, "rr", "192.0.2.10 198.51.100.10 203.0.113.10");
    n[0].stop_app();
    converge(&n, "rr", "198.51.100.10 203.0.113.10");
    n[1].stop_app();
    converge(&n, "rr", "203.0.113.10");
    n[2].stop_app();
    converge(&n, "rr", "NXDOMAIN");
    n[2].start_app();
    converge(&n, "rr", "203.0.113.10");
    n[1].start_app();
    converge(&n, "rr", "198.51.100.10 203.0.113.10");
    n[0].start_app();
    converge(&n, "rr", "192.0.2.10 198.51.100.10 203.0.113.10");
}

/// k8gb treats a peer that does not answer as a site with nothing healthy;
/// halo keeps the peer's last answer until `peer_stale_after` (2 s here).
#[test]
fn an_unreachable_peer_is_not_an_unhealthy_one() {
    let rt = runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    converge(&n[..1], "rr", "192.0.2.10 198.51.100.10");
    // The west node dies (its app is fine): east keeps west's endpoints for
    // many peer intervals...
    n[1].dns = None;
    for _ in 0..10 {
        assert_eq!(
            ask(n[0].dns_addr(), "rr"),
            "192.0.2.10 198.51.100.10",
            "kept while west is silent"
        );
        #[allow(
            clippy::disallowed_methods,
            reason = "observing that nothing changes for a while"
        )]
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...until the answer is stale.
    converge(&n[..1], "rr", "192.0.2.10");
}

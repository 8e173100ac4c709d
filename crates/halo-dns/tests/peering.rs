//! k8gb's scenarios with halo nodes as sites on loopback: each node checks its
//! own "app" (a TCP listener the test opens and closes), answers for its site,
//! and learns the other sites from their `localtargets-` answers.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

mod common;

use halo_dns::Dns;
use halo_dns::wire::{Ecs, build_query, build_query_ecs, parse_reply};
use halo_health::{HealthHub, Registry};

/// One site: its app, its health engine and its DNS node.
struct Site {
    name: &'static str,
    address: &'static str,
    app_port: u16,
    app: Option<TcpListener>,
    /// `failover_order` of service `fo` as this node sees it.
    order: &'static str,
    peers: Vec<SocketAddr>,
    registry: Registry,
    dns: Option<Dns>,
}

/// Every site's endpoint for the services that list all of them (`w`, `geo`),
/// with its weight: k8gb's weighted example gives eu 1 and us 4.
const ALL_SITES: [(&str, &str, u16); 2] = [("east", "192.0.2.10", 1), ("west", "198.51.100.10", 4)];

fn config(
    site: &str,
    address: &str,
    app_port: u16,
    peers: &[SocketAddr],
    order: &str,
) -> halo_config::Config {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    // This node's endpoint follows its app; the others' follow their peers
    // (the default `health` of another site's endpoint when peers are set).
    let listed = |name: &str, strategy: &str| {
        let mut s = format!(
            "  [[gslb.service]]\n  name = \"{name}\"\n  strategy = \"{strategy}\"\n  \
             failover_order = [\"east\", \"west\"]\n  ttl = \"0s\"\n"
        );
        for (endpoint_site, endpoint, weight) in ALL_SITES {
            s.push_str(&format!(
                "    [[gslb.service.endpoint]]\n    address = \"{endpoint}\"\n    \
                 site = \"{endpoint_site}\"\n    weight = {weight}\n"
            ));
            if endpoint_site == site {
                s.push_str("    health = { pool = \"app\" }\n");
            }
        }
        s
    };
    let text = format!(
        r#"{node}[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
sites = ["east", "west", "north"]
peers = [{peers}]
peer_interval = "100ms"
peer_stale_after = "2s"
  [[gslb.geo]]
  cidr = "192.0.2.0/24"
  site = "east"
  [[gslb.geo]]
  cidr = "198.51.100.0/24"
  site = "west"
  [[gslb.service]]
  name = "fo"
  strategy = "failover"
  failover_order = [{order}]
  when_all_down = "nxdomain"
  ttl = "5s"
  hold_down = "0s"
    [[gslb.service.endpoint]]
    address = "{address}"
    health = {{ pool = "app" }}
  [[gslb.service]]
  name = "rr"
  ttl = "5s"
  hold_down = "0s"
  when_all_down = "nxdomain"
    [[gslb.service.endpoint]]
    address = "{address}"
    health = {{ pool = "app" }}
{w}{geo}"#,
        node = common::site_node(site, &format!("127.0.0.1:{app_port}")),
        peers = peers.join(", "),
        w = listed("w", "weighted"),
        geo = listed("geo", "geo"),
    );
    halo_config::parse(Path::new("site.toml"), &text).expect("valid")
}

impl Site {
    fn start(rt: &tokio::runtime::Runtime, name: &'static str, address: &'static str) -> Self {
        let app = TcpListener::bind("127.0.0.1:0").unwrap();
        let app_port = app.local_addr().unwrap().port();
        let order = r#""east", "west""#;
        let c = config(name, address, app_port, &[], order);
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
            order,
            peers: Vec::new(),
            registry,
            dns: Some(dns),
        }
    }

    fn dns_addr(&self) -> SocketAddr {
        self.dns.as_ref().unwrap().bound()[0]
    }

    fn peer_with(&mut self, rt: &tokio::runtime::Runtime, peers: &[SocketAddr]) {
        self.peers = peers.to_vec();
        self.reload(rt);
    }

    /// This node's `failover_order` for `fo` becomes `order` (a reload).
    fn set_order(&mut self, rt: &tokio::runtime::Runtime, order: &'static str) {
        self.order = order;
        self.reload(rt);
    }

    fn reload(&mut self, rt: &tokio::runtime::Runtime) {
        let c = config(
            self.name,
            self.address,
            self.app_port,
            &self.peers,
            self.order,
        );
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
    ask_from(server, name, None)
}

/// [`ask`] with EDNS Client Subnet `a.b.c.0/24` when `subnet` is given.
fn ask_from(server: SocketAddr, name: &str, subnet: Option<[u8; 3]>) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let name = format!("{name}.global.example.com");
    let q = match subnet {
        Some([a, b, c]) => {
            let ecs = Ecs {
                address: IpAddr::from([a, b, c, 0]),
                source: 24,
            };
            build_query_ecs(7, &name, 1, ecs)
        }
        None => build_query(7, &name, 1, 0),
    };
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
    common::wait_for(Duration::from_secs(10), || {
        let got: Vec<String> = nodes.iter().map(|s| ask(s.dns_addr(), name)).collect();
        if got.iter().all(|g| g == want) {
            Ok(())
        } else {
            Err(format!(
                "{name}: wanted {want:?} from every node, got {got:?}"
            ))
        }
    });
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
    let rt = common::runtime();
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
    let rt = common::runtime();
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
    let rt = common::runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    converge(&n[..1], "rr", "192.0.2.10 198.51.100.10");
    let west = n[0].dns.as_ref().unwrap().peers();
    assert_eq!(west.len(), 1);
    assert_eq!(
        west[0].site.as_deref(),
        Some("west"),
        "learned from its TXT"
    );
    assert!(!west[0].unreachable && west[0].last_answer.is_some());
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
    // ...and says so in its status: unreachable, still counting what west
    // last published (fo, rr, w and geo: one address each)...
    let held = n[0].dns.as_ref().unwrap().peers();
    assert!(held[0].unreachable, "{held:?}");
    assert_eq!(held[0].endpoints, 4, "{held:?}");
    // ...until the answer is stale.
    converge(&n[..1], "rr", "192.0.2.10");
    // (Services' answers arrived milliseconds apart and go stale so.)
    common::wait_for(Duration::from_secs(5), || {
        let stale = n[0].dns.as_ref().unwrap().peers();
        assert!(stale[0].unreachable, "{stale:?}");
        if stale[0].endpoints == 0 {
            Ok(())
        } else {
            Err(format!("still holding after the deadline: {stale:?}"))
        }
    });
}

/// k8gb's "conflicting primaries": each cluster names itself primary. Every
/// node answers by its own `failover_order` while its site is up, so clients
/// split by the name server they ask; when one primary's app stops, every
/// node agrees on the other site, and the split returns with the app.
#[test]
fn conflicting_primaries_each_answer_their_own_until_it_fails() {
    let rt = common::runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    n[1].set_order(&rt, r#""west", "east""#);
    converge(&n[..1], "fo", "192.0.2.10");
    converge(&n[1..], "fo", "198.51.100.10");
    n[0].stop_app();
    converge(&n, "fo", "198.51.100.10");
    n[0].start_app();
    converge(&n[..1], "fo", "192.0.2.10");
    converge(&n[1..], "fo", "198.51.100.10");
    n[1].stop_app();
    converge(&n, "fo", "192.0.2.10");
}

/// Weights 1 (east) and 4 (west), `max_answers` 1: over 1,000 queries to
/// each node, west's share is 4/5 (binomial σ ≈ 1.3 %; the bound is ±5 %),
/// and with west's app stopped every answer is east. Not a reordering that a
/// resolver undoes, as k8gb's weighted strategy is: each answer holds one address.
#[test]
fn weights_one_to_four_over_a_thousand_queries() {
    let rt = common::runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    converge(&n, "rr", "192.0.2.10 198.51.100.10");
    for node in &n {
        let mut west = 0;
        for _ in 0..1000 {
            match ask(node.dns_addr(), "w").as_str() {
                "198.51.100.10" => west += 1,
                "192.0.2.10" => {}
                other => panic!("{}: unexpected answer {other:?}", node.name),
            }
        }
        assert!(
            (750..=850).contains(&west),
            "{}: west answered {west} of 1000, wanted about 800",
            node.name
        );
    }
    n[1].stop_app();
    converge(&n, "rr", "192.0.2.10");
    for node in &n {
        for _ in 0..200 {
            assert_eq!(ask(node.dns_addr(), "w"), "192.0.2.10", "{}", node.name);
        }
    }
}

/// Geo by EDNS Client Subnet through both nodes: 192.0.2.0/24 is east's,
/// 198.51.100.0/24 west's, 203.0.113.0/24 is in no rule and gets the first
/// site of `failover_order` (east). With west's app stopped, west's clients
/// go to east too.
#[test]
fn geo_by_client_subnet_for_two_subnets_and_an_unknown_one() {
    let rt = common::runtime();
    let mut n = federation(&rt, &[("east", "192.0.2.10"), ("west", "198.51.100.10")]);
    converge(&n, "rr", "192.0.2.10 198.51.100.10");
    for node in &n {
        let at = node.dns_addr();
        assert_eq!(
            ask_from(at, "geo", Some([192, 0, 2])),
            "192.0.2.10",
            "{}",
            node.name
        );
        assert_eq!(
            ask_from(at, "geo", Some([198, 51, 100])),
            "198.51.100.10",
            "{}",
            node.name
        );
        assert_eq!(
            ask_from(at, "geo", Some([203, 0, 113])),
            "192.0.2.10",
            "{}",
            node.name
        );
    }
    n[1].stop_app();
    converge(&n, "rr", "192.0.2.10");
    for node in &n {
        let at = node.dns_addr();
        assert_eq!(
            ask_from(at, "geo", Some([198, 51, 100])),
            "192.0.2.10",
            "{}",
            node.name
        );
    }
}

/// An endpoint with a check of its own (`health = { check = ... }`, no pool):
/// a TCP check against the endpoint's address and the given port drives the
/// answer, with `when_all_down = "nxdomain"` showing the down state.
#[test]
fn an_endpoint_check_of_its_own_drives_the_answer() {
    let rt = common::runtime();
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = app.local_addr().unwrap().port();
    let text = format!(
        r#"
[node]
name = "solo"
site = "east"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
  [[gslb.service]]
  name = "chk"
  when_all_down = "nxdomain"
  hold_down = "0s"
    [[gslb.service.endpoint]]
    address = "127.0.0.1"
    health = {{ check = {{ type = "tcp", port = {port}, interval = "100ms", rise = 1, fall = 1 }} }}
"#
    );
    let c = halo_config::parse(Path::new("solo.toml"), &text).expect("valid");
    let (_registry, dns) = rt.block_on(async {
        let mut registry = Registry::new(HealthHub::new(5));
        registry.apply(&c);
        let dns = Dns::start(&c, &registry, 5, 1).unwrap();
        (registry, dns)
    });
    let at = dns.bound()[0];
    let wait = |want: &str| {
        common::wait_for(Duration::from_secs(10), || {
            let got = ask(at, "chk");
            if got == want {
                Ok(())
            } else {
                Err(format!("wanted {want:?}, got {got:?}"))
            }
        });
    };
    wait("127.0.0.1");
    drop(app);
    wait("NXDOMAIN");
    let _app = TcpListener::bind(("127.0.0.1", port)).unwrap();
    wait("127.0.0.1");
}

/// `hold_down`: an endpoint that comes back is answered again only once it
/// has stayed up that long (an app flapping every half second changed the
/// answer on every flip); going down is at once.
#[test]
fn a_returning_endpoint_is_held_out_of_the_answers() {
    let rt = common::runtime();
    let app = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = app.local_addr().unwrap().port();
    let text = format!(
        r#"
[node]
name = "solo"
site = "east"
[[pool]]
name = "app"
  [pool.check]
  type = "tcp"
  interval = "100ms"
  rise = 1
  fall = 1
  [[pool.server]]
  name = "app-0"
  address = "127.0.0.1:{port}"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
  [[gslb.service]]
  name = "held"
  when_all_down = "nxdomain"
  ttl = "1s"
  hold_down = "3s"
    [[gslb.service.endpoint]]
    address = "127.0.0.1"
    health = {{ pool = "app" }}
"#
    );
    let c = halo_config::parse(Path::new("held.toml"), &text).expect("valid");
    let (registry, dns) = rt.block_on(async {
        let mut registry = Registry::new(HealthHub::new(5));
        registry.apply(&c);
        let dns = Dns::start(&c, &registry, 5, 1).unwrap();
        (registry, dns)
    });
    let at = dns.bound()[0];
    let health = registry
        .health(&halo_health::ServerKey::new("app", "app-0"))
        .unwrap();
    let wait = |want: &str| {
        common::wait_for(Duration::from_secs(10), || {
            let got = ask(at, "held");
            if got == want {
                Ok(())
            } else {
                Err(format!("wanted {want:?}, got {got:?}"))
            }
        });
    };
    // Up from the start: answered at once (nothing to hold it against).
    wait("127.0.0.1");
    drop(app);
    wait("NXDOMAIN");
    let _app = TcpListener::bind(("127.0.0.1", port)).unwrap();
    common::wait_for(Duration::from_secs(10), || {
        if health.is_serving() {
            Ok(())
        } else {
            Err("the app's check did not pass again".into())
        }
    });
    // Up again by its check, and still out of the answers for 3 s.
    assert_eq!(ask(at, "held"), "NXDOMAIN", "answered before the hold-down");
    wait("127.0.0.1");
}

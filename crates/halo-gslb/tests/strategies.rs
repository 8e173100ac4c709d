//! Strategy and resolution tests, data-driven: every case is a service, the
//! endpoints that are down, a client, and the answers expected, through one
//! `check` helper (the input format is documented on `Case`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use halo_gslb::{Answer, Client, PeerTable, Picker, Query, Snapshot, Zone, rtype};

/// One scenario.
#[derive(Clone, Copy)]
struct Case<'a> {
    /// `[[gslb.service]]` body (name = "svc" is added) and its endpoints, TOML.
    service: &'a str,
    /// Endpoint addresses that are down.
    down: &'a [&'a str],
    /// Client "addr/prefix" with `ecs` (scope reported), or "addr" as a packet
    /// source, or "" for none.
    client: &'a str,
    /// Query type name.
    qtype: &'a str,
    /// Queries to send; with more than 5 the output is a tally.
    n: usize,
}

const HEAD: &str = r#"
[node]
name = "n1"
site = "east"
[gslb]
zone = "global.example.com"
sites = ["east", "west", "north"]
[[gslb.geo]]
cidr = "198.51.100.0/24"
site = "west"
[[gslb.geo]]
cidr = "198.51.100.128/25"
site = "north"
[[gslb.geo]]
cidr = "203.0.113.0/24"
site = "east"
[[gslb.geo]]
cidr = "2001:db8:1::/48"
site = "west"
"#;

fn snapshot(case: &Case<'_>) -> Snapshot {
    let text = format!("{HEAD}\n[[gslb.service]]\nname = \"svc\"\n{}", case.service);
    let config = halo_config::parse(Path::new("case.toml"), &text).expect("case config is valid");
    let gslb = config.gslb.expect("has [gslb]");
    let zone = Arc::new(Zone::new(&gslb, "east"));
    let peers = PeerTable::new(&[], zone.services.len(), std::time::Duration::from_secs(30));
    let mut snap = Snapshot::build(zone, 1, &|_, _| true, &peers);
    for e in &mut snap.services[0] {
        if case.down.contains(&e.address.to_string().as_str()) {
            e.healthy = false;
        }
    }
    snap
}

fn run(case: &Case<'_>) -> String {
    let snap = snapshot(case);
    let client = match case.client {
        "" => None,
        c => Some(match c.split_once('/') {
            Some((a, p)) => Client {
                address: a.parse().unwrap(),
                prefix: p.parse().unwrap(),
                ecs: true,
            },
            None => {
                let address: IpAddr = c.parse().unwrap();
                Client {
                    address,
                    prefix: if address.is_ipv4() { 32 } else { 128 },
                    ecs: false,
                }
            }
        }),
    };
    let qtype = match case.qtype {
        "A" => rtype::A,
        "AAAA" => rtype::AAAA,
        "ANY" => rtype::ANY,
        "TXT" => rtype::TXT,
        other => panic!("qtype {other}"),
    };
    let mut picker = Picker::new(7);
    let mut lines = Vec::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..case.n {
        let q = Query {
            name: b"svc.global.example.com",
            qtype,
            client,
        };
        let r = snap.resolve(&q, &mut picker);
        let mut line = format!("{:?}", r.rcode).to_uppercase();
        if let Answer::Addresses { addresses, .. } = r.answer {
            for a in addresses {
                write!(line, " {a}").unwrap();
                *tally.entry(a.to_string()).or_default() += 1;
            }
        }
        if r.ecs_scope != 0 {
            write!(line, " scope/{}", r.ecs_scope).unwrap();
        }
        lines.push(line);
    }
    if case.n > 5 {
        tally
            .iter()
            .map(|(a, n)| format!("{a}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        lines.join("\n")
    }
}

#[track_caller]
fn check(case: Case<'_>, expected: &str) {
    let got = run(&case);
    let want: String = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(got, want, "\n--- got:\n{got}\n--- want:\n{want}\n");
}

const THREE_SITES: &str = r#"
[[gslb.service.endpoint]]
address = "192.0.2.1"
site = "east"
[[gslb.service.endpoint]]
address = "198.51.100.1"
site = "west"
[[gslb.service.endpoint]]
address = "203.0.113.1"
site = "north"
[[gslb.service.endpoint]]
address = "2001:db8::1"
site = "east"
"#;

#[test]
fn round_robin_rotates_every_healthy_endpoint() {
    let svc = format!("strategy = \"round-robin\"\n{THREE_SITES}");
    check(
        Case {
            service: &svc,
            down: &[],
            client: "",
            qtype: "A",
            n: 4,
        },
        "NOERROR 192.0.2.1 198.51.100.1 203.0.113.1
         NOERROR 198.51.100.1 203.0.113.1 192.0.2.1
         NOERROR 203.0.113.1 192.0.2.1 198.51.100.1
         NOERROR 192.0.2.1 198.51.100.1 203.0.113.1",
    );
    check(
        Case {
            service: &svc,
            down: &["198.51.100.1"],
            client: "",
            qtype: "A",
            n: 2,
        },
        "NOERROR 192.0.2.1 203.0.113.1
         NOERROR 203.0.113.1 192.0.2.1",
    );
    check(
        Case {
            service: &svc,
            down: &[],
            client: "",
            qtype: "AAAA",
            n: 1,
        },
        "NOERROR 2001:db8::1",
    );
    // IPv6 down: the service is up (IPv4), so AAAA is NODATA, not a failover.
    check(
        Case {
            service: &svc,
            down: &["2001:db8::1"],
            client: "",
            qtype: "AAAA",
            n: 1,
        },
        "NOERROR",
    );
}

#[test]
fn when_all_down_fails_open_or_as_configured() {
    let all = ["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"];
    let svc =
        format!("strategy = \"failover\"\nfailover_order = [\"east\", \"west\"]\n{THREE_SITES}");
    check(
        Case {
            service: &svc,
            down: &all,
            client: "",
            qtype: "A",
            n: 1,
        },
        "NOERROR 192.0.2.1 198.51.100.1 203.0.113.1",
    );
    let svc = format!("when_all_down = \"nxdomain\"\n{THREE_SITES}");
    check(
        Case {
            service: &svc,
            down: &all,
            client: "",
            qtype: "A",
            n: 1,
        },
        "NXDOMAIN",
    );
    let svc = format!("when_all_down = \"servfail\"\n{THREE_SITES}");
    check(
        Case {
            service: &svc,
            down: &all,
            client: "",
            qtype: "A",
            n: 1,
        },
        "SERVFAIL",
    );
}

#[test]
fn failover_takes_the_first_healthy_site_in_order() {
    let svc =
        format!("strategy = \"failover\"\nfailover_order = [\"west\", \"east\"]\n{THREE_SITES}");
    check(
        Case {
            service: &svc,
            down: &[],
            client: "",
            qtype: "A",
            n: 1,
        },
        "NOERROR 198.51.100.1",
    );
    check(
        Case {
            service: &svc,
            down: &["198.51.100.1"],
            client: "",
            qtype: "A",
            n: 1,
        },
        "NOERROR 192.0.2.1",
    );
    // Neither listed site is up: the sites outside the order take over.
    check(
        Case {
            service: &svc,
            down: &["198.51.100.1", "192.0.2.1", "2001:db8::1"],
            client: "",
            qtype: "A",
            n: 1,
        },
        "NOERROR 203.0.113.1",
    );
    // east is up on IPv6 only: it still is the site, so A has no data.
    check(
        Case {
            service: &svc,
            down: &["198.51.100.1", "192.0.2.1"],
            client: "",
            qtype: "A",
            n: 1,
        },
        "NOERROR",
    );
}

#[test]
fn weighted_draws_subsets_in_proportion() {
    let svc = r#"
strategy = "weighted"
[[gslb.service.endpoint]]
address = "192.0.2.1"
weight = 1
[[gslb.service.endpoint]]
address = "192.0.2.4"
weight = 4
[[gslb.service.endpoint]]
address = "192.0.2.9"
weight = 0
"#;
    let got = run(&Case {
        service: svc,
        down: &[],
        client: "",
        qtype: "A",
        n: 10_000,
    });
    let counts: BTreeMap<&str, f64> = got
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap())
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert_eq!(counts.len(), 2, "weight 0 is never answered: {got}");
    let share = counts["192.0.2.4"] / 10_000.0;
    assert!((0.78..0.82).contains(&share), "1:4 should give 80%: {got}");

    // max_answers = 2 of three: two distinct addresses each time.
    let svc2 = svc
        .replace(
            "strategy = \"weighted\"",
            "strategy = \"weighted\"\nmax_answers = 2",
        )
        .replace("weight = 0", "weight = 2");
    let snap = snapshot(&Case {
        service: &svc2,
        down: &[],
        client: "",
        qtype: "A",
        n: 0,
    });
    let mut picker = Picker::new(1);
    for _ in 0..100 {
        let r = snap.resolve(
            &Query {
                name: b"svc.global.example.com",
                qtype: rtype::A,
                client: None,
            },
            &mut picker,
        );
        let Answer::Addresses { addresses, .. } = r.answer else {
            panic!("{r:?}")
        };
        assert_eq!(addresses.len(), 2);
        assert_ne!(addresses[0], addresses[1]);
    }
    // All weights 0 count as equal.
    let svc3 = svc
        .replace("weight = 1", "weight = 0")
        .replace("weight = 4", "weight = 0");
    let got = run(&Case {
        service: &svc3,
        down: &[],
        client: "",
        qtype: "A",
        n: 3000,
    });
    for kv in got.split(' ') {
        let n: usize = kv.split_once('=').unwrap().1.parse().unwrap();
        assert!((900..1100).contains(&n), "equal thirds expected: {got}");
    }
    assert_eq!(got.split(' ').count(), 3, "{got}");
}

#[test]
fn geo_uses_the_client_subnet_then_failover_order() {
    let svc = format!("strategy = \"geo\"\nfailover_order = [\"east\", \"west\"]\n{THREE_SITES}");
    // ECS inside west's /24 but outside north's /25: scope 25 (the /25 next
    // door must not share the cached answer).
    check(
        Case {
            service: &svc,
            down: &[],
            client: "198.51.100.7/32",
            qtype: "A",
            n: 1,
        },
        "NOERROR 198.51.100.1 scope/25",
    );
    // A /24 source cannot be told apart from north's /25 inside it: the longest
    // rule it fully falls in (west) answers, valid for the /25 that is west's.
    check(
        Case {
            service: &svc,
            down: &[],
            client: "198.51.100.0/24",
            qtype: "A",
            n: 1,
        },
        "NOERROR 198.51.100.1 scope/25",
    );
    check(
        Case {
            service: &svc,
            down: &[],
            client: "198.51.100.200/32",
            qtype: "A",
            n: 1,
        },
        "NOERROR 203.0.113.1 scope/25",
    );
    check(
        Case {
            service: &svc,
            down: &[],
            client: "203.0.113.9/24",
            qtype: "A",
            n: 1,
        },
        "NOERROR 192.0.2.1 scope/24",
    );
    // An unknown subnet: failover order, scope as wide as no rule overlaps.
    check(
        Case {
            service: &svc,
            down: &[],
            client: "192.0.2.77/32",
            qtype: "A",
            n: 1,
        },
        "NOERROR 192.0.2.1 scope/6",
    );
    // The source address (no ECS): same choice, no scope.
    check(
        Case {
            service: &svc,
            down: &[],
            client: "198.51.100.7",
            qtype: "A",
            n: 1,
        },
        "NOERROR 198.51.100.1",
    );
    // The client's site down: failover order.
    check(
        Case {
            service: &svc,
            down: &["198.51.100.1"],
            client: "198.51.100.7/32",
            qtype: "A",
            n: 1,
        },
        "NOERROR 192.0.2.1 scope/25",
    );
    // IPv6 client, IPv6 rules only.
    check(
        Case {
            service: &svc,
            down: &[],
            client: "2001:db8:1::5/56",
            qtype: "A",
            n: 1,
        },
        "NOERROR 198.51.100.1 scope/48",
    );
}

#[test]
fn other_names_and_types() {
    let head = HEAD.replace(
        "sites = [",
        "nameservers = [\"ns1.global.example.com\"]\nsites = [",
    );
    let text = format!(
        "{head}\n[[gslb.service]]\nname = \"svc\"\n{THREE_SITES}
[[gslb.record]]
name = \"ns1\"
type = \"A\"
value = \"192.0.2.53\"
[[gslb.record]]
name = \"www.a\"
type = \"CNAME\"
value = \"svc\"
[[gslb.record]]
name = \"@\"
type = \"MX\"
value = \"10 mail.example.net.\"
"
    );
    let config = halo_config::parse(Path::new("t.toml"), &text).unwrap();
    let zone = Arc::new(Zone::new(config.gslb.as_ref().unwrap(), "east"));
    let peers = PeerTable::new(&[], 1, std::time::Duration::from_secs(30));
    let snap = Snapshot::build(zone, 1, &|_, _| true, &peers);
    let mut picker = Picker::new(1);
    let mut ask = |name: &str, qtype: u16| {
        let r = snap.resolve(
            &Query {
                name: name.as_bytes(),
                qtype,
                client: None,
            },
            &mut picker,
        );
        format!(
            "{:?} {:?} {:?} glue={} site_txt={}",
            r.rcode, r.answer, r.authority, r.glue, r.site_txt
        )
    };
    const REFUSED: &str = "Refused None None glue=false site_txt=false";
    const NODATA: &str = "NoError None Soa glue=false site_txt=false";
    for (name, qtype, want) in [
        ("example.com", rtype::A, REFUSED),
        ("global.example.com.evil", rtype::A, REFUSED),
        ("xglobal.example.com", rtype::A, REFUSED),
        (
            "nope.global.example.com",
            rtype::A,
            "NxDomain None Soa glue=false site_txt=false",
        ),
        (
            "global.example.com",
            rtype::SOA,
            "NoError Soa None glue=false site_txt=false",
        ),
        (
            "global.example.com",
            rtype::NS,
            "NoError Ns None glue=true site_txt=false",
        ),
        ("global.example.com", rtype::A, NODATA),
        // Empty non-terminal: NODATA, not NXDOMAIN.
        ("a.global.example.com", rtype::A, NODATA),
        ("svc.global.example.com", rtype::MX, NODATA),
        (
            "localtargets-svc.global.example.com",
            rtype::TXT,
            "NoError SiteTxt None glue=false site_txt=false",
        ),
    ] {
        assert_eq!(ask(name, qtype), want, "{name} type {qtype}");
    }
    assert!(ask("global.example.com", rtype::MX).starts_with("NoError Records"));
    assert!(ask("www.a.global.example.com", rtype::A).contains("rtype: 5"));
    assert!(
        ask("localtargets-svc.global.example.com", rtype::A).contains("addresses: [192.0.2.1]")
    );
    assert!(ask("localtargets-svc.global.example.com", rtype::A).ends_with("site_txt=true"));
}

/// An address only a peer publishes keeps the site the peer names, also a
/// site this node's config never mentions (shown in status and logs).
#[test]
fn a_peer_endpoint_keeps_the_site_the_peer_names() {
    let text = format!(
        "{HEAD}\n[[gslb.service]]\nname = \"svc\"\nstrategy = \"round-robin\"\n\
         [[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\nsite = \"east\"\nhealth = \"always\"\n"
    );
    let config = halo_config::parse(Path::new("case.toml"), &text).expect("valid");
    let gslb = config.gslb.expect("has [gslb]");
    let zone = Arc::new(Zone::new(&gslb, "east"));
    let peer = halo_config::Peer {
        address: "127.0.0.1:53".parse().unwrap(),
        site: None,
    };
    let mut peers = PeerTable::new(&[peer], 1, std::time::Duration::from_secs(30));
    #[allow(
        clippy::disallowed_methods,
        reason = "any instant will do: the table only compares the times it is given"
    )]
    let now = std::time::Instant::now();
    peers.on_result(
        0,
        0,
        halo_gslb::Family::V4,
        halo_gslb::PeerResult::Answer {
            addresses: vec!["192.0.2.9".parse().unwrap()],
            site: Some("north".to_owned()),
        },
        now,
    );
    let snap = Snapshot::build(zone, 1, &|_, _| true, &peers);
    let sites: Vec<(String, &str)> = snap.services[0]
        .iter()
        .map(|e| (e.address.to_string(), snap.site_name(e.site)))
        .collect();
    assert_eq!(
        sites,
        [
            ("192.0.2.1".to_owned(), "east"),
            ("192.0.2.9".to_owned(), "north")
        ]
    );
}

/// Fail open when peers are stale: a silent peer's last addresses stop
/// counting as healthy once stale, but `when_all_down = "all"` answers them
/// with every other address (before, they were dropped, and "all" answered
/// only this node's own endpoint, which its own check had marked down).
#[test]
fn when_all_down_all_still_answers_a_stale_peers_addresses() {
    let text = format!(
        "{HEAD}\n[[gslb.service]]\nname = \"svc\"\nwhen_all_down = \"all\"\n\
         [[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\nsite = \"east\"\nhealth = {{ pool = \"app\" }}\n\
         [[pool]]\nname = \"app\"\n[[pool.server]]\nname = \"s\"\naddress = \"192.0.2.1:80\"\n"
    );
    let config = halo_config::parse(Path::new("case.toml"), &text).expect("valid");
    let gslb = config.gslb.expect("has [gslb]");
    let zone = Arc::new(Zone::new(&gslb, "east"));
    let peer = halo_config::Peer {
        address: "127.0.0.1:53".parse().unwrap(),
        site: Some("west".to_owned()),
    };
    let stale_after = std::time::Duration::from_secs(30);
    let mut peers = PeerTable::new(&[peer], 1, stale_after);
    #[allow(
        clippy::disallowed_methods,
        reason = "any instant will do: the table only compares the times it is given"
    )]
    let t0 = std::time::Instant::now();
    peers.on_result(
        0,
        0,
        halo_gslb::Family::V4,
        halo_gslb::PeerResult::Answer {
            addresses: vec!["198.51.100.1".parse().unwrap()],
            site: None,
        },
        t0,
    );
    let answer = |peers: &PeerTable| {
        // This node's own endpoint is down by its check.
        let snap = Snapshot::build(Arc::clone(&zone), 1, &|_, _| false, peers);
        let q = Query {
            name: b"svc.global.example.com",
            qtype: rtype::A,
            client: None,
        };
        let mut picker = Picker::new(1);
        match snap.resolve(&q, &mut picker).answer {
            Answer::Addresses { addresses, .. } => {
                let mut a: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                a.sort();
                a.join(" ")
            }
            other => format!("{other:?}"),
        }
    };
    assert_eq!(answer(&peers), "198.51.100.1", "the fresh peer's address");
    peers.on_result(
        0,
        0,
        halo_gslb::Family::V4,
        halo_gslb::PeerResult::Unreachable,
        t0,
    );
    assert!(peers.expire(t0 + stale_after).endpoints);
    assert_eq!(peers.next_expiry(), None);
    assert_eq!(
        answer(&peers),
        "192.0.2.1 198.51.100.1",
        "nothing healthy: every address known"
    );
}

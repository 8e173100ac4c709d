//! The query path as a fuzz target: the bytes of one datagram, answered by
//! the same [`Answerer`] the UDP and TCP loops use, over a zone with every
//! kind of name, strategy and record.
//!
//! Used by `fuzz/fuzz_targets/query.rs` (cargo fuzz, coverage-guided) and by
//! the `fuzz_parsers` test of the `halo` crate (mutations of valid queries,
//! run by `cargo test`). [`peer`] is the same for what a GSLB peer sends:
//! its answers to this node's polls, and its NOTIFY. Not part of halo's API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use halo_gslb::{PeerTable, Snapshot, Zone};

use crate::server::{Answerer, Counters, Published};
use crate::wire::{self, Ecs, HEADER};

const ZONE: &str = r#"
[node]
name = "fuzz"
site = "east"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
nameservers = ["ns1.global.example.com", "ns.example.net"]
sites = ["east", "west", "south"]
peers = ["192.0.2.200:53"]
  [[gslb.service]]
  name = "app"
  ttl = "0s"
    [[gslb.service.endpoint]]
    address = "192.0.2.20"
    [[gslb.service.endpoint]]
    address = "2001:db8::20"
    [[gslb.service.endpoint]]
    address = "198.51.100.20"
    site = "west"
  [[gslb.service]]
  name = "w"
  strategy = "weighted"
  max_answers = 2
    [[gslb.service.endpoint]]
    address = "192.0.2.30"
    weight = 3
    [[gslb.service.endpoint]]
    address = "192.0.2.31"
    weight = 0
  [[gslb.service]]
  name = "geo.deep"
  strategy = "geo"
  failover_order = ["west", "east"]
  when_all_down = "servfail"
    [[gslb.service.endpoint]]
    address = "192.0.2.40"
    [[gslb.service.endpoint]]
    address = "198.51.100.40"
    site = "west"
  [[gslb.service]]
  name = "fo"
  strategy = "failover"
  failover_order = ["south", "east"]
  when_all_down = "nxdomain"
    [[gslb.service.endpoint]]
    address = "192.0.2.50"
  [[gslb.geo]]
  cidr = "198.51.100.0/24"
  site = "west"
  [[gslb.geo]]
  cidr = "2001:db8:1::/48"
  site = "south"
  [[gslb.record]]
  name = "ns1"
  type = "A"
  value = "192.0.2.53"
  [[gslb.record]]
  name = "www"
  type = "CNAME"
  value = "app"
  [[gslb.record]]
  name = "@"
  type = "MX"
  value = "10 mail.example.net."
  [[gslb.record]]
  name = "@"
  type = "TXT"
  value = "v=spf1 -all"
  [[gslb.record]]
  name = "_sip._udp"
  type = "SRV"
  value = "0 5 5060 sip.example.net."
"#;

/// Valid queries to start mutating from (names of every kind, with and
/// without EDNS and ECS).
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let names = [
        "app.global.example.com",
        "APP.Global.Example.COM",
        "w.global.example.com",
        "geo.deep.global.example.com",
        "deep.global.example.com",
        "fo.global.example.com",
        "localtargets-app.global.example.com",
        "www.global.example.com",
        "_sip._udp.global.example.com",
        "global.example.com",
        "big.global.example.com",
        "nope.global.example.com",
        "example.org",
        ".",
    ];
    for (i, name) in names.iter().enumerate() {
        for qtype in [1u16, 28, 2, 6, 15, 16, 33, 255, 5] {
            let id = u16::try_from(i).unwrap_or(0) << 8 | qtype;
            let plain = wire::build_query(id, name, qtype, 0);
            let mut bare = plain[..plain.len() - 11].to_vec(); // without the OPT record
            bare[11] = 0;
            out.push(bare);
            for (address, source) in [([198, 51, 100, 0], 24), ([0, 0, 0, 0], 0)] {
                let ecs = Ecs {
                    address: IpAddr::from(address),
                    source,
                };
                out.push(wire::build_query_ecs(id, name, qtype, ecs));
            }
            out.push(plain);
        }
    }
    out.push(wire::build_query(9, "global.example.com", 6, 4)); // NOTIFY
    out
}

fn answerer() -> Answerer {
    static PUBLISHED: OnceLock<Arc<ArcSwap<Published>>> = OnceLock::new();
    let published = PUBLISHED.get_or_init(|| {
        let config =
            halo_config::parse(Path::new("fuzz.toml"), ZONE).expect("the fuzz zone is valid");
        let gslb = config.gslb.as_ref().expect("has [gslb]");
        let zone = Arc::new(Zone::new(gslb, "east"));
        let peers = PeerTable::new(&gslb.peers, zone.services.len(), Duration::from_secs(30));
        let snapshot = Snapshot::build(zone, 1, &|_, _| true, &peers);
        Arc::new(ArcSwap::from_pointee(Published {
            snapshot,
            peer_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))],
        }))
    });
    let (notify, _) = tokio::sync::mpsc::unbounded_channel();
    Answerer::new(
        Arc::clone(published),
        Arc::new(Counters::default()),
        notify,
        7,
    )
}

/// Answers `data` as a UDP and as a TCP query and checks what any reply must
/// hold: a header with the query's ID and QR set, at most 1232 bytes over UDP
/// (512 when the query has no OPT record), and the question echoed byte for
/// byte when the query was well formed.
///
/// # Panics
/// When a check fails (or the query path panics): that is the finding.
pub fn check(data: &[u8]) {
    answer_from(
        data,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 5353),
    );
}

/// [`check`]'s work for a datagram from `src`.
fn answer_from(data: &[u8], src: SocketAddr) {
    let mut a = answerer();
    let mut name = [0u8; wire::MAX_NAME];
    let parsed = wire::parse_query(data, &mut name)
        .ok()
        .map(|(q, _)| (q.question.len(), q.edns.is_some()));
    let mut reply = Vec::new();
    for udp in [true, false] {
        if !a.answer(data, src, udp, &mut reply) {
            continue;
        }
        assert!(reply.len() >= HEADER, "reply shorter than a header");
        assert_eq!(reply[..2], data[..2], "reply ID is the query's");
        assert!(reply[2] & 0x80 != 0, "QR set");
        if let Some((qlen, edns)) = parsed {
            if udp {
                let limit = if edns { 1232 } else { 512 };
                assert!(
                    reply.len() <= limit,
                    "UDP reply of {} bytes over {limit}",
                    reply.len()
                );
            }
            assert_eq!(
                reply[HEADER..HEADER + qlen],
                data[HEADER..HEADER + qlen],
                "question echoed"
            );
        }
    }
}

/// What a GSLB peer sends: `data` as its reply to this node's poll (query
/// and NOTIFY replies), and as a datagram from the peer's address (a NOTIFY
/// is accepted from a peer only).
///
/// # Panics
/// When a reply's parse gives more addresses than the reply could hold, a
/// site name that is not one, or [`check`]'s rules fail.
pub fn peer(data: &[u8]) {
    if data.len() >= 2 {
        let id = u16::from_be_bytes([data[0], data[1]]);
        for opcode in [0, wire::OPCODE_NOTIFY] {
            if let Some(r) = wire::parse_reply(data, id, opcode) {
                assert!(
                    r.addresses.len() * 4 <= data.len(),
                    "addresses out of nothing"
                );
                if let Some(site) = &r.site {
                    assert!(wire::is_site_name(site), "site {site:?}");
                }
            }
        }
    }
    let from_peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)), 53);
    answer_from(data, from_peer);
}

/// Valid peer traffic to start mutating from: replies to polls (with
/// addresses and a site) and NOTIFY messages.
#[must_use]
pub fn peer_seeds() -> Vec<Vec<u8>> {
    let mut a = answerer();
    let from_peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)), 53);
    let mut out = Vec::new();
    for (name, qtype) in [
        ("localtargets-app.global.example.com", 1),
        ("localtargets-app.global.example.com", 28),
        ("app.global.example.com", 16),
    ] {
        let q = wire::build_query(3, name, qtype, 0);
        let mut reply = Vec::new();
        if a.answer(&q, from_peer, true, &mut reply) {
            out.push(reply);
        }
    }
    out.push(wire::build_query(
        9,
        "global.example.com",
        6,
        wire::OPCODE_NOTIFY,
    ));
    out
}

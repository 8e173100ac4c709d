//! The authoritative server on the wire, asked by `dig` (Debian's bind9-dnsutils)
//! and by raw sockets for what dig will not send.

mod common;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use halo_dns::Dns;
use halo_dns::wire::HEADER;
use halo_health::{HealthHub, Registry};

const CONFIG: &str = r#"
[node]
name = "east-1"
site = "east"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
nameservers = ["ns1.global.example.com", "ns.example.net"]
sites = ["east", "west"]
default_ttl = "30s"
  [[gslb.service]]
  name = "app"
  ttl = "10s"
    [[gslb.service.endpoint]]
    address = "192.0.2.20"
    [[gslb.service.endpoint]]
    address = "2001:db8::20"
  [[gslb.service]]
  name = "geo"
  strategy = "geo"
  failover_order = ["east", "west"]
    [[gslb.service.endpoint]]
    address = "192.0.2.30"
    [[gslb.service.endpoint]]
    address = "198.51.100.30"
    site = "west"
  [[gslb.service]]
  name = "v6only"
    [[gslb.service.endpoint]]
    address = "2001:db8::99"
  [[gslb.service]]
  name = "zero"
  ttl = "0s"
    [[gslb.service.endpoint]]
    address = "192.0.2.40"
  [[gslb.geo]]
  cidr = "198.51.100.0/24"
  site = "west"
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
  [[gslb.record]]
  name = "static"
  type = "AAAA"
  value = "2001:db8::53"
"#;

fn big_service() -> String {
    // 120 addresses: beyond 512 bytes and beyond 1232, so UDP truncates.
    let mut s = String::from("  [[gslb.service]]\n  name = \"big\"\n");
    for i in 0..120 {
        s.push_str(&format!(
            "    [[gslb.service.endpoint]]\n    address = \"10.0.{}.{}\"\n",
            i / 200,
            i % 200 + 1
        ));
    }
    s
}

struct Server {
    dns: Dns,
    _registry: Registry,
    _rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        Self::start_on(r#"["127.0.0.1:0"]"#)
    }

    /// The test zone served on `listen` (a TOML array).
    fn start_on(listen: &str) -> Self {
        let config = CONFIG.replace(r#"listen = ["127.0.0.1:0"]"#, &format!("listen = {listen}"));
        let text = format!("{config}{}", big_service());
        let config = halo_config::parse(Path::new("dig.toml"), &text).expect("valid config");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (dns, registry) = rt.block_on(async {
            let mut registry = Registry::new(HealthHub::new(1));
            registry.apply(&config);
            (
                Dns::start(&config, &registry, 1, 1).expect("starts"),
                registry,
            )
        });
        Self {
            dns,
            _registry: registry,
            _rt: rt,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.dns.bound()[0]
    }

    fn dig(&self, args: &str) -> String {
        let out = Command::new("/usr/bin/dig")
            .arg(format!("@{}", self.addr().ip()))
            .arg("-p")
            .arg(self.addr().port().to_string())
            .args(["+norec", "+tries=1", "+time=2"])
            .args(args.split_whitespace())
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn have_dig() -> bool {
    common::have("/usr/bin/dig", "bind9-dnsutils")
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("?")
}

/// The records of a section, whitespace collapsed (dig aligns with tabs or
/// spaces depending on the name's length).
fn section(out: &str, name: &str) -> Vec<String> {
    let marker = format!(";; {name} SECTION:");
    let Some(start) = out.find(&marker) else {
        return Vec::new();
    };
    out[start + marker.len()..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn answers_a_and_aaaa_with_aa_and_the_service_ttl() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("app.global.example.com A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("flags: qr aa;"), "{out}");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["app.global.example.com. 10 IN A 192.0.2.20"],
        "{out}"
    );
    let out = s.dig("app.global.example.com AAAA");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["app.global.example.com. 10 IN AAAA 2001:db8::20"],
        "{out}"
    );
    // TTL 0 is kept (k8gb rewrites 0 to 30).
    let out = s.dig("zero.global.example.com A");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["zero.global.example.com. 0 IN A 192.0.2.40"],
        "{out}"
    );
}

#[test]
fn echoes_the_query_case() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("ApP.GLOBAL.Example.COM A");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["ApP.GLOBAL.Example.COM. 10 IN A 192.0.2.20"],
        "{out}"
    );
}

#[test]
fn soa_ns_and_glue_at_the_apex() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("global.example.com SOA");
    let soa = section(&out, "ANSWER");
    assert_eq!(soa.len(), 1, "{out}");
    assert!(
        soa[0].starts_with(
            "global.example.com. 30 IN SOA ns1.global.example.com. hostmaster.global.example.com. "
        ),
        "{out}"
    );
    let out = s.dig("global.example.com NS");
    assert_eq!(
        section(&out, "ANSWER"),
        vec![
            "global.example.com. 30 IN NS ns1.global.example.com.",
            "global.example.com. 30 IN NS ns.example.net.",
        ],
        "{out}"
    );
    assert_eq!(
        section(&out, "ADDITIONAL"),
        vec!["ns1.global.example.com. 30 IN A 192.0.2.53"],
        "{out}"
    );
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("nothing.global.example.com A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("flags: qr aa;"), "{out}");
    let auth = section(&out, "AUTHORITY");
    assert!(auth.len() == 1 && auth[0].contains(" SOA "), "{out}");
    // A name that exists, without that type.
    let out = s.dig("v6only.global.example.com A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(section(&out, "ANSWER").is_empty(), "{out}");
    assert!(section(&out, "AUTHORITY")[0].contains(" SOA "), "{out}");
    let out = s.dig("app.global.example.com MX");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(section(&out, "AUTHORITY")[0].contains(" SOA "), "{out}");
}

#[test]
fn refuses_names_outside_the_zone() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    for name in ["example.com", "example.org", "xglobal.example.com", "."] {
        let out = s.dig(&format!("{name} A"));
        assert_eq!(status(&out), "REFUSED", "{name}: {out}");
        assert!(!out.contains(" aa"), "{out}");
    }
}

#[test]
fn static_records_of_every_type() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let cases = [
        (
            "www.global.example.com A",
            "www.global.example.com. 30 IN CNAME app.global.example.com.",
        ),
        (
            "global.example.com MX",
            "global.example.com. 30 IN MX 10 mail.example.net.",
        ),
        (
            "global.example.com TXT",
            "global.example.com. 30 IN TXT \"v=spf1 -all\"",
        ),
        (
            "_sip._udp.global.example.com SRV",
            "_sip._udp.global.example.com. 30 IN SRV 0 5 5060 sip.example.net.",
        ),
        (
            "static.global.example.com AAAA",
            "static.global.example.com. 30 IN AAAA 2001:db8::53",
        ),
    ];
    for (q, want) in cases {
        let out = s.dig(q);
        assert_eq!(section(&out, "ANSWER"), vec![want], "{q}: {out}");
    }
}

#[test]
fn any_is_answered_minimally() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("app.global.example.com ANY");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["app.global.example.com. 10 IN A 192.0.2.20"],
        "{out}"
    );
    let out = s.dig("global.example.com ANY");
    assert_eq!(section(&out, "ANSWER").len(), 1, "{out}");
}

#[test]
fn edns_is_advertised_and_unknown_versions_get_badvers() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("app.global.example.com A");
    assert!(
        out.contains("; EDNS: version: 0, flags:; udp: 1232"),
        "{out}"
    );
    let out = s.dig("app.global.example.com A +noedns");
    assert!(!out.contains("OPT PSEUDOSECTION"), "{out}");
    let out = s.dig("app.global.example.com A +edns=1 +noednsneg");
    assert_eq!(status(&out), "BADVERS", "{out}");
    let out = s.dig("app.global.example.com A +dnssec");
    assert!(
        out.contains("; EDNS: version: 0, flags: do; udp: 1232"),
        "{out}"
    );
}

#[test]
fn big_answers_truncate_over_udp_and_come_whole_over_tcp() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("big.global.example.com A +ignore +noedns");
    assert!(out.contains("flags: qr aa tc;"), "{out}");
    assert!(section(&out, "ANSWER").is_empty(), "{out}");
    let out = s.dig("big.global.example.com A +ignore +bufsize=1232");
    assert!(out.contains(" tc;"), "{out}");
    // dig retries over TCP by itself without +ignore.
    let out = s.dig("big.global.example.com A");
    assert_eq!(section(&out, "ANSWER").len(), 120, "{out}");
    let out = s.dig("big.global.example.com A +tcp");
    assert_eq!(section(&out, "ANSWER").len(), 120, "{out}");
}

#[test]
fn tcp_carries_several_queries_per_connection() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    // +keepopen: dig sends every query on one TCP connection.
    let out = s.dig(
        "+tcp +keepopen app.global.example.com A zero.global.example.com A global.example.com SOA",
    );
    assert_eq!(out.matches("status: NOERROR").count(), 3, "{out}");
}

#[test]
fn client_subnet_picks_the_site_and_sets_the_scope() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("geo.global.example.com A +subnet=198.51.100.7/32");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["geo.global.example.com. 30 IN A 198.51.100.30"],
        "{out}"
    );
    assert!(out.contains("CLIENT-SUBNET: 198.51.100.7/32/24"), "{out}");
    let out = s.dig("geo.global.example.com A +subnet=203.0.113.0/24");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["geo.global.example.com. 30 IN A 192.0.2.30"],
        "{out}"
    );
    assert!(out.contains("CLIENT-SUBNET: 203.0.113.0/24/"), "{out}");
    // SOURCE 0: not located; the failover order answers, scope 0.
    let out = s.dig("geo.global.example.com A +subnet=0.0.0.0/0");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["geo.global.example.com. 30 IN A 192.0.2.30"],
        "{out}"
    );
    assert!(out.contains("CLIENT-SUBNET: 0.0.0.0/0/0"), "{out}");
}

#[test]
fn localtargets_names_the_site_for_peers() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("localtargets-geo.global.example.com A");
    assert_eq!(
        section(&out, "ANSWER"),
        vec!["localtargets-geo.global.example.com. 30 IN A 192.0.2.30"],
        "{out}"
    );
    assert_eq!(
        section(&out, "ADDITIONAL"),
        vec!["localtargets-geo.global.example.com. 30 IN TXT \"site=east\""],
        "{out}"
    );
}

#[test]
fn opcodes_other_than_query_get_notimp() {
    if !have_dig() {
        return;
    }
    let s = Server::start();
    let out = s.dig("app.global.example.com A +opcode=status");
    assert_eq!(status(&out), "NOTIMP", "{out}");
}

/// Raw bytes dig will not send. Each gets FORMERR (with the ID echoed) or no
/// answer at all, and the server keeps answering afterwards.
#[test]
fn malformed_queries_get_formerr_or_nothing() {
    let s = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let good = halo_dns::wire::build_query(0x1234, "app.global.example.com", 1, 0);
    let ask = |msg: &[u8]| -> Option<Vec<u8>> {
        sock.send_to(msg, s.addr()).unwrap();
        let mut buf = [0u8; 2048];
        sock.recv_from(&mut buf)
            .ok()
            .map(|(n, _)| buf[..n].to_vec())
    };
    let rcode = |r: &[u8]| r[3] & 0x0F;
    // Sanity: the well-formed one works.
    assert_eq!(rcode(&ask(&good).unwrap()), 0);
    // Too short for a header: silence.
    assert_eq!(ask(&good[..5]), None);
    // A response (QR set): silence, so servers cannot ping-pong errors.
    let mut resp = good.clone();
    resp[2] |= 0x80;
    assert_eq!(ask(&resp), None);
    let formerr = |msg: Vec<u8>, what: &str| {
        let r = ask(&msg).unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(&r[..2], &msg[..2], "{what}: ID echoed");
        assert_eq!(rcode(&r), 1, "{what}: FORMERR");
    };
    // Truncated inside the question.
    formerr(good[..20].to_vec(), "cut question");
    // QDCOUNT 2.
    let mut m = good.clone();
    m[5] = 2;
    formerr(m, "two questions");
    // Label length running past the end.
    let mut m = good.clone();
    m[12] = 60;
    formerr(m, "label overruns");
    // A compression pointer in the question.
    let mut m = good[..12].to_vec();
    m.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    formerr(m, "pointer in question");
    // ARCOUNT says 2 but one record follows.
    let mut m = good.clone();
    m[11] = 2;
    formerr(m, "missing additional");
    // Trailing garbage.
    let mut m = good.clone();
    m.extend_from_slice(b"junk");
    formerr(m, "trailing bytes");
    // ECS with a non-zero scope in a query (RFC 7871 §6).
    let mut m = good[..good.len() - 11].to_vec();
    m.extend_from_slice(&[
        0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 8, 198, 51, 100,
    ]);
    m[11] = 1;
    formerr(m, "ECS scope set");
    // Every prefix of a valid query: never a crash, and the server still answers.
    for cut in HEADER..good.len() {
        let _ = ask(&good[..cut]);
    }
    assert_eq!(rcode(&ask(&good).unwrap()), 0);
}

/// Bound to the wildcard address, the server replies from the address each
/// query was sent to, not from whatever address the route prefers: a client
/// asking a host's second address (a VRRP virtual IP) drops a reply from
/// another one. Connected sockets below accept nothing else. On Linux every
/// 127/8 address is local and replies to 127.0.0.2 would otherwise leave
/// from 127.0.0.1.
#[test]
fn wildcard_listen_replies_from_the_address_asked() {
    let s = Server::start_on(r#"["0.0.0.0:0", "[::]:0"]"#);
    let query = halo_dns::wire::build_query(0x4242, "app.global.example.com", 1, 0);
    let ask = |client: &str, server: SocketAddr| {
        let sock = UdpSocket::bind(client).unwrap();
        sock.connect(server).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send(&query).unwrap();
        let mut buf = [0u8; 1024];
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply from {server}: {e}"));
        assert_eq!(&buf[..2], &query[..2], "reply to our query from {server}");
        assert_eq!(buf[3] & 0x0F, 0, "NOERROR from {server}");
        n
    };
    let v4 = s.dns.bound()[0].port();
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.53"] {
        ask("127.0.0.1:0", SocketAddr::new(ip.parse().unwrap(), v4));
    }
    let v6 = s.dns.bound()[1].port();
    ask("[::1]:0", SocketAddr::new("::1".parse().unwrap(), v6));
}

/// As above, with the queries to two addresses arriving together: the
/// replies of one batch leave from different addresses, each from the one
/// its query went to (each reply carries its own source).
#[test]
fn a_batch_to_several_addresses_replies_from_each() {
    let s = Server::start_on(r#"["0.0.0.0:0"]"#);
    let port = s.dns.bound()[0].port();
    let socks: Vec<UdpSocket> = ["127.0.0.1", "127.0.0.2"]
        .iter()
        .map(|ip| {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(SocketAddr::new(ip.parse().unwrap(), port))
                .unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            sock
        })
        .collect();
    // Sent without waiting, alternately: the server takes them in batches.
    for id in 0..60u16 {
        let q = halo_dns::wire::build_query(id, "app.global.example.com", 1, 0);
        socks[usize::from(id % 2)].send(&q).unwrap();
    }
    let mut buf = [0u8; 1024];
    for (k, sock) in socks.iter().enumerate() {
        let mut got = 0;
        while got < 30 {
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("socket {k}: {got} of 30 replies: {e}"));
            assert!(n > HEADER);
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert_eq!(usize::from(id % 2), k, "reply {id} on the wrong socket");
            got += 1;
        }
    }
}

/// Queries arrive faster than one receive takes them (the server moves up to
/// 32 per system call): a burst of 150 from one socket gets 150 replies, each
/// to its own ID. A datagram too large for a query (5,000 bytes) is dropped
/// and counted, not parsed cut short.
#[test]
fn bursts_are_answered_whole_and_oversized_datagrams_dropped() {
    let s = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut huge = halo_dns::wire::build_query(7, "app.global.example.com", 1, 0);
    huge.resize(5000, 0);
    sock.send_to(&huge, s.addr()).unwrap();
    for id in 0..150u16 {
        let q = halo_dns::wire::build_query(id, "app.global.example.com", 1, 0);
        sock.send_to(&q, s.addr()).unwrap();
    }
    let mut seen = [false; 150];
    let mut buf = [0u8; 1024];
    for _ in 0..150 {
        let (n, _) = sock.recv_from(&mut buf).expect("a reply for every query");
        assert!(n > HEADER);
        let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        assert!(id < 150 && !seen[id], "reply {id} unexpected or twice");
        seen[id] = true;
    }
    assert_eq!(s.dns.stats().total().dropped, 1, "the 5,000-byte datagram");
}

/// Whether a TCP connection from local port `port` is still established,
/// by the kernel's table.
fn established(port: u16) -> bool {
    let hex = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]).ends_with(&hex) && f[3] == "01"
        })
}

#[test]
fn a_tcp_client_that_never_reads_is_reset_after_the_idle_limit() {
    use std::io::Write;
    let s = Server::start();
    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    let port = sock.local_addr().unwrap().port();
    // Queries whose answers are big, sent until the connection takes no
    // more: the server's replies fill both sides' buffers, and its write
    // blocks on a client that reads nothing.
    let query = halo_dns::wire::build_query(7, "big.global.example.com", 1, 0);
    let mut framed = u16::try_from(query.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let batch: Vec<u8> = framed.repeat(100);
    sock.set_nonblocking(true).unwrap();
    let mut sent = 0usize;
    loop {
        match sock.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
        assert!(
            sent < 1 << 30,
            "the server read 1 GiB of queries without blocking"
        );
    }
    assert!(established(port));
    // Before the write had a time limit, the connection stayed for ever.
    #[allow(clippy::disallowed_methods, reason = "a deadline on a real server")]
    let end = std::time::Instant::now() + Duration::from_secs(40);
    while established(port) {
        #[allow(clippy::disallowed_methods, reason = "a deadline on a real server")]
        let now = std::time::Instant::now();
        assert!(now < end, "the connection is still open after 40 s");
        #[allow(clippy::disallowed_methods, reason = "a poll interval")]
        std::thread::sleep(Duration::from_millis(100));
    }
    // It was reset (not closed with unread replies still queued).
    let mut buf = [0u8; 65536];
    sock.set_nonblocking(false).unwrap();
    let err = loop {
        match std::io::Read::read(&mut sock, &mut buf) {
            Ok(0) => panic!("closed, not reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

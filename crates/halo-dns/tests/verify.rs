//! Sites that verify each other, on loopback: three halo DNS nodes (east,
//! west, north), each with its own app on 127.0.0.{11,12,13} (one port for
//! all, so one probe reaches each), probing the other sites' endpoints.
//! A site whose DNS node is gone is judged by the probes: kept while they
//! reach its app, withdrawn when they do not. (The namespace tests of the
//! `halo` crate do the same with real partitions.)

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

mod common;

use halo_dns::Dns;
use halo_dns::wire::{build_query, parse_reply};
use halo_health::{HealthHub, Registry};

const SITES: [(&str, &str); 3] = [
    ("east", "127.0.0.11"),
    ("west", "127.0.0.12"),
    ("north", "127.0.0.13"),
];

/// Listeners on every site's address at one port (the probes' port).
fn apps() -> (u16, Vec<Option<TcpListener>>) {
    for _ in 0..50 {
        let first = TcpListener::bind((SITES[0].1, 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Vec<_> = SITES[1..]
            .iter()
            .map(|(_, a)| TcpListener::bind((*a, port)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            let mut all = vec![Some(first)];
            all.extend(rest.into_iter().map(Result::ok));
            return (port, all);
        }
    }
    panic!("no port free on all three addresses");
}

/// A TCP probe of `port` every 100 ms, fall 2.
fn tcp_probe(port: u16) -> String {
    format!(
        "[gslb.probe]\ntype = \"tcp\"\nport = {port}\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 2\n"
    )
}

/// `probe`: the `[gslb.probe]` table, or "" for none.
fn config(site: &str, port: u16, peers: &[SocketAddr], probe: &str) -> halo_config::Config {
    let address = SITES.iter().find(|(s, _)| *s == site).unwrap().1;
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    let mut endpoints = String::new();
    for (s, a) in SITES {
        endpoints.push_str(&format!(
            "    [[gslb.service.endpoint]]\n    address = \"{a}\"\n    site = \"{s}\"\n"
        ));
        if s == site {
            endpoints.push_str("    health = { pool = \"app\" }\n");
        }
    }
    let text = format!(
        r#"{node}[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
sites = ["east", "west", "north"]
peers = [{peers}]
peer_interval = "100ms"
peer_stale_after = "1s"
{probe}
  [[gslb.service]]
  name = "rr"
  ttl = "1s"
  hold_down = "0s"
  when_all_down = "nxdomain"
{endpoints}"#,
        node = common::site_node(site, &format!("{address}:{port}")),
        peers = peers.join(", "),
    );
    halo_config::parse(Path::new("site.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

struct Node {
    site: &'static str,
    registry: Registry,
    dns: Option<Dns>,
}

/// Three nodes peered with each other; `probes[i]`: node i's probe table.
fn federation(rt: &tokio::runtime::Runtime, port: u16, probes: [&str; 3]) -> Vec<Node> {
    let mut nodes: Vec<Node> = SITES
        .iter()
        .zip(probes)
        .map(|((site, _), p)| {
            let c = config(site, port, &[], p);
            rt.block_on(async {
                let mut registry = Registry::new(HealthHub::new(3));
                registry.apply(&c);
                let dns = Dns::start(&c, &registry, 3, 1).unwrap();
                Node {
                    site,
                    registry,
                    dns: Some(dns),
                }
            })
        })
        .collect();
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.dns.as_ref().unwrap().bound()[0])
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        let others: Vec<SocketAddr> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        let c = config(n.site, port, &others, probes[i]);
        rt.block_on(async {
            n.registry.apply(&c);
            n.dns.as_mut().unwrap().reload(&c, &n.registry).unwrap();
        });
    }
    nodes
}

/// The addresses `server` answers for `rr`, sorted, or the RCODE.
fn ask(server: SocketAddr) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(&build_query(7, "rr.global.example.com", 1, 0), server)
        .unwrap();
    let mut buf = [0u8; 2048];
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return "no answer".into();
    };
    let r = parse_reply(&buf[..n], 7, 0).expect("a reply");
    if r.rcode == 3 {
        return "NXDOMAIN".into();
    }
    let mut a: Vec<String> = r.addresses.iter().map(ToString::to_string).collect();
    a.sort();
    a.join(" ")
}

const ALL: &str = "127.0.0.11 127.0.0.12 127.0.0.13";

fn converge(nodes: &[&Node], want: &str) {
    common::wait_for(Duration::from_secs(10), || {
        let got: Vec<String> = nodes
            .iter()
            .map(|n| ask(n.dns.as_ref().unwrap().bound()[0]))
            .collect();
        if got.iter().any(|g| g != want) {
            Err(format!("want {want}, got {got:?}"))
        } else {
            Ok(())
        }
    });
}

/// East's DNS node is gone, its app serves on: before, the others dropped
/// east once its last answer was stale (1 s here); the probes keep it.
#[test]
fn a_silent_site_whose_app_answers_stays() {
    let rt = common::runtime();
    let (port, _apps) = apps();
    let probe = tcp_probe(port);
    let mut n = federation(&rt, port, [&probe, &probe, &probe]);
    converge(&[&n[0], &n[1], &n[2]], ALL);
    n[0].dns = None;
    // Four times peer_stale_after, and the answer never changes.
    for _ in 0..40 {
        for node in &n[1..] {
            assert_eq!(ask(node.dns.as_ref().unwrap().bound()[0]), ALL);
        }
        #[allow(clippy::disallowed_methods, reason = "observing that nothing changes")]
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The whole of east goes at once (its DNS node and its app): the others
/// withdraw east as soon as the probes say so (fall 2 × 100 ms), without
/// waiting for east's last answer to go stale.
#[test]
fn a_whole_site_outage_leaves_the_answers() {
    let rt = common::runtime();
    let (port, mut apps) = apps();
    let probe = tcp_probe(port);
    let mut n = federation(&rt, port, [&probe, &probe, &probe]);
    converge(&[&n[0], &n[1], &n[2]], ALL);
    n[0].dns = None;
    apps[0] = None;
    converge(&[&n[1], &n[2]], "127.0.0.12 127.0.0.13");
    // The verdict and its inputs, as the status shows them.
    let status = n[1].dns.as_ref().unwrap().published();
    let east = status.snapshot.services[0]
        .iter()
        .find(|e| e.address.to_string() == "127.0.0.11")
        .unwrap();
    let j = east.judged.expect("judged");
    assert!(!j.verdict.up);
    assert_eq!(j.mine, Some(false));
    assert!(j.votes.down >= 1, "{j:?}");
}

/// A node that publishes no probe verdicts (k8gb's protocol only, or a halo
/// node without probes) takes part as before; the others' probes decide.
#[test]
fn a_peer_without_probes_takes_part_as_before() {
    let rt = common::runtime();
    let (port, mut apps) = apps();
    let probe = tcp_probe(port);
    let mut n = federation(&rt, port, [&probe, &probe, ""]);
    converge(&[&n[0], &n[1], &n[2]], ALL);
    n[0].dns = None;
    apps[0] = None;
    // West probes and withdraws east at once; north, without probes, as
    // before: once east's last answer is stale (1 s).
    converge(&[&n[1], &n[2]], "127.0.0.12 127.0.0.13");
}

/// `openssl` at `dir`, failing the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate `name.pem` (key `name.key`) for the DNS name `dns`,
/// signed by `ca.pem` in `dir`; or, with `name` "ca", that CA.
fn certificate(dir: &Path, name: &str, dns: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &pem,
        "-subj",
        "/CN=halo test",
        "-days",
        "2",
    ];
    let san = format!("subjectAltName=DNS:{dns}");
    if name != "ca" {
        args.extend([
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-addext",
            &san,
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ]);
    }
    openssl(dir, &args);
}

/// `https` probes verify the endpoint's certificate for the service's name
/// (the default SNI): east's and west's apps are HTTPS servers (Debian's
/// `openssl s_server -www`) with a certificate for `rr.global.example.com`,
/// north's for another name. With east's and north's DNS nodes gone, west
/// keeps east (its probe passes over TLS) and withdraws north (its probe
/// fails the handshake): the same certificates, the same name, but one is
/// not for it.
#[test]
fn https_probes_verify_the_service_name() {
    if !common::have("/usr/bin/openssl", "openssl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("halo-verify-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificate(&dir, "ca", "");
    certificate(&dir, "rr", "rr.global.example.com");
    certificate(&dir, "other", "other.example.com");
    let rt = common::runtime();
    // The apps: s_server on the port apps() found free on all three.
    let (port, listeners) = apps();
    drop(listeners);
    let mut servers: Vec<std::process::Child> = SITES
        .iter()
        .map(|(site, address)| {
            let cert = if *site == "north" { "other" } else { "rr" };
            std::process::Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("{address}:{port}"))
                .args([
                    "-cert",
                    &format!("{cert}.pem"),
                    "-key",
                    &format!("{cert}.key"),
                ])
                .current_dir(&dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let probe = format!(
        "[gslb.probe]\ntype = \"https\"\nport = {port}\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 2\n\
         [gslb.probe.tls]\nca_file = \"{}\"\n",
        dir.join("ca.pem").display()
    );
    let mut n = federation(&rt, port, [&probe, &probe, &probe]);
    converge(&[&n[0], &n[1], &n[2]], ALL);
    n[0].dns = None;
    n[2].dns = None;
    converge(&[&n[1]], "127.0.0.11 127.0.0.12");
    let status = n[1].dns.as_ref().unwrap().published();
    let judged = |address: &str| {
        status.snapshot.services[0]
            .iter()
            .find(|e| e.address.to_string() == address)
            .and_then(|e| e.judged)
            .unwrap()
    };
    assert_eq!(judged("127.0.0.11").mine, Some(true));
    assert_eq!(judged("127.0.0.13").mine, Some(false));
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

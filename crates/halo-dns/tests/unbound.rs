//! A real resolver in front: Debian's unbound, stub-zoned to halo, answers
//! clients from halo's zone (what a site's resolvers do in production).

mod common;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use halo_dns::Dns;
use halo_dns::wire::{build_query, parse_reply};
use halo_health::{HealthHub, Registry};

const CONFIG: &str = r#"
[node]
name = "east-1"
site = "east"
[gslb]
zone = "global.example.com"
listen = ["127.0.0.1:0"]
  [[gslb.service]]
  name = "app"
  ttl = "0s"
    [[gslb.service.endpoint]]
    address = "192.0.2.20"
    [[gslb.service.endpoint]]
    address = "192.0.2.21"
  [[gslb.record]]
  name = "www"
  type = "CNAME"
  value = "app"
"#;

struct Unbound(Child);

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_unbound() -> bool {
    common::have("/usr/sbin/unbound", "unbound")
}

/// A port nothing listens on now: unbound cannot be told port 0, so a port
/// is taken from the kernel and handed over (the one place a test does
/// that; the caller retries when unbound cannot bind it).
fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// rcode and sorted A addresses from `server` for `name` (recursion desired).
fn resolve(server: SocketAddr, name: &str) -> Option<(u8, Vec<String>)> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut q = build_query(9, name, 1, 0);
    q[2] |= 0x01; // RD
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let r = parse_reply(&buf[..n], 9, 0)?;
    let mut a: Vec<String> = r.addresses.iter().map(ToString::to_string).collect();
    a.sort();
    Some((r.rcode, a))
}

#[test]
fn unbound_stub_zoned_to_halo_answers_from_the_zone() {
    if !have_unbound() {
        return;
    }
    let config = halo_config::parse(Path::new("u.toml"), CONFIG).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (dns, _registry) = rt.block_on(async {
        let mut registry = Registry::new(HealthHub::new(1));
        registry.apply(&config);
        (Dns::start(&config, &registry, 1, 1).unwrap(), registry)
    });
    let halo = dns.bound()[0];
    let dir = std::env::temp_dir().join(format!("halo-unbound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // unbound cannot be told port 0: a port is drawn from the kernel and
    // handed over, and if something took it (UDP or TCP) in between, unbound
    // exits and another is drawn (a few times).
    let (resolver, _unbound, first) = 'start: {
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("unbound.conf");
            let log = dir.join("unbound.log");
            std::fs::write(
                &conf,
                format!(
                    r#"server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  verbosity: 1
  do-not-query-localhost: no
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  num-threads: 1
stub-zone:
  name: "global.example.com"
  stub-addr: {ip}@{hport}
"#,
                    dir = dir.display(),
                    ip = halo.ip(),
                    hport = halo.port()
                ),
            )
            .unwrap();
            let child = Command::new("/usr/sbin/unbound")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("unbound starts");
            let mut unbound = Unbound(child);
            let resolver: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // Wait until unbound answers at all, or has exited.
            #[allow(
                clippy::disallowed_methods,
                reason = "a real process: wall-clock deadline"
            )]
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(r) = resolve(resolver, "app.global.example.com") {
                    break 'start (resolver, unbound, r);
                }
                if unbound.0.try_wait().unwrap().is_some() {
                    break;
                }
                #[allow(clippy::disallowed_methods, reason = "see above")]
                let late = std::time::Instant::now() > deadline;
                assert!(
                    !late,
                    "unbound did not answer; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        panic!(
            "unbound exited 5 times; its last log:\n{}",
            std::fs::read_to_string(dir.join("unbound.log")).unwrap_or_default()
        );
    };
    assert_eq!(first, (0, vec!["192.0.2.20".into(), "192.0.2.21".into()]));
    // The CNAME is followed by the resolver, into halo's service.
    assert_eq!(
        resolve(resolver, "www.global.example.com").unwrap(),
        (0, vec!["192.0.2.20".into(), "192.0.2.21".into()])
    );
    // NXDOMAIN comes through.
    assert_eq!(resolve(resolver, "nope.global.example.com").unwrap().0, 3);
    // halo saw the resolver's queries.
    assert!(dns.stats().total().udp >= 3);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The examples run for real. The GSLB one (`gslb_failover_example...`, at
//! the end) runs both sites' files unchanged, one namespace per site, and
//! watches the failover cycle with dig. The two proxy examples: the `halo` binary with the example
//! file (its [gslb] and [[vip]] sections cut: one node, no peer)
//! inside a network namespace that holds the example's own documentation
//! addresses, Python HTTP servers at the servers' addresses, and curl in a
//! second namespace (a client host on a veth link) as the seeds' users do.
//! Server names (clusN-infra-M.example.com) resolve through the namespace's
//! own /etc/netns/NS/hosts, which `ip netns exec` puts over /etc/hosts.
//!
//! Needs root (namespaces) and iproute2, curl and python3 (scripts/test
//! installs them). Outside CI a non-root run skips and says so; in CI it runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{can_run, sh};

const DEADLINE: Duration = Duration::from_secs(40);

/// Three hosts as network namespaces: a client and the load balancer on one
/// link (192.0.2.0/24), the load balancer and the servers on another
/// (198.51.100.0/24; each server address is a /32 on the servers' host,
/// routed through it). Removed on drop with everything started in them.
struct Net {
    client: String,
    lb: String,
    srv: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Net {
    fn new(tag: &str, lb_addr: &str, servers: &[&str], hosts: &str) -> Self {
        let id = std::process::id();
        let [client, lb, srv] = ["c", "l", "s"].map(|r| format!("halo-{tag}{r}{id}"));
        let dir = std::env::temp_dir().join(format!("halo-{tag}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let net = Self {
            client,
            lb,
            srv,
            dir,
            children: Vec::new(),
        };
        let (c, l, s) = (net.client.as_str(), net.lb.as_str(), net.srv.as_str());
        // Per-namespace /etc/hosts for `ip netns exec`.
        let etc = Path::new("/etc/netns").join(l);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{hosts}")).unwrap();
        for ns in [c, l, s] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let link = |a: &str, a_addr: &str, b: &str, b_addr: &str, n: &str| {
            let (va, vb) = (format!("{tag}{n}a{id}"), format!("{tag}{n}b{id}"));
            sh(&[
                "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
            ]);
            for (ns, v, addr) in [(a, &va, a_addr), (b, &vb, b_addr)] {
                sh(&["ip", "link", "set", v, "netns", ns]);
                sh(&["ip", "-n", ns, "addr", "add", addr, "dev", v]);
                sh(&["ip", "-n", ns, "link", "set", v, "up"]);
            }
        };
        link(c, "192.0.2.50/24", l, &format!("{lb_addr}/24"), "1");
        link(l, "198.51.100.1/24", s, "198.51.100.2/24", "2");
        for a in servers {
            sh(&[
                "ip",
                "-n",
                s,
                "addr",
                "add",
                &format!("{a}/32"),
                "dev",
                "lo",
            ]);
            sh(&[
                "ip",
                "-n",
                l,
                "route",
                "add",
                &format!("{a}/32"),
                "via",
                "198.51.100.2",
            ]);
        }
        net
    }

    /// An HTTP server at `addr:port` whose every page says `name`.
    fn server(&mut self, name: &str, addr: &str, port: u16) {
        let root = self.dir.join(format!("{name}-{port}"));
        std::fs::create_dir_all(&root).unwrap();
        // Also the examples' check paths: /healthz, grafana's /api/health,
        // kibana's /api/status.
        std::fs::create_dir_all(root.join("api")).unwrap();
        for page in ["index.html", "healthz", "api/health", "api/status"] {
            std::fs::write(root.join(page), format!("{name}\n")).unwrap();
        }
        let child = common::http_server(&self.srv, addr, port, &root);
        self.children
            .push((format!("{name}:{port}@{addr}:{port}"), child));
    }

    /// Stops the server `name:port`.
    fn kill(&mut self, key: &str) {
        for (k, child) in &mut self.children {
            if k.split('@').next() == Some(key) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// `halo run` on `config` in the load balancer's namespace, once every
    /// server started so far answers (so health starts from a settled
    /// state and the assertions see steady-state balancing).
    fn halo(&mut self, config: &str) {
        let servers: Vec<String> = self.children.iter().map(|(k, _)| k.clone()).collect();
        for key in servers {
            let url = format!("http://{}/", key.rsplit_once('@').map_or("", |(_, a)| a));
            self.wait(&format!("server {key}"), || {
                let ok = Command::new("ip")
                    .args(["netns", "exec", &self.srv, "curl", "-s", "-o", "/dev/null"])
                    .args(["-m", "1", &url])
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then_some(())
            });
        }
        let file = self.dir.join("halo.toml");
        std::fs::write(&file, config).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lb,
                env!("CARGO_BIN_EXE_halo"),
                "run",
                "-c",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("halo.log")).unwrap())
            .spawn()
            .unwrap();
        self.children.push(("halo".into(), child));
    }

    /// curl from the client host: the body, or `None` when it failed.
    fn curl(&self, url: &str, host: Option<&str>) -> Option<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client, "curl", "-s", "-m", "3", url]);
        if let Some(h) = host {
            cmd.args(["-H", &format!("Host: {h}")]);
        }
        let out = cmd.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Polls `f` until it returns `Some`, or panics with `what`. (The pause
    /// between polls is a poll interval, not a synchronisation.)
    #[allow(clippy::disallowed_methods)]
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= end {
                let log = std::fs::read_to_string(self.dir.join("halo.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "timed out waiting for {what}; halo's log ends:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.lb, &self.srv] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.lb));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The example file, up to its first section of a tier `halo run` does not
/// serve yet.
fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    let cut = ["\n[gslb]", "\n[[vip]]"]
        .iter()
        .filter_map(|s| text.find(s))
        .min()
        .unwrap_or(text.len());
    text[..cut].to_owned()
}

#[test]
fn virtual_hosts_example_two_hosts_on_one_port_reach_two_pools() {
    if !can_run("virtual_hosts_example") {
        return;
    }
    let servers = [
        ("grafana-0", "192.0.2.101", 3000),
        ("kibana-0", "192.0.2.111", 5601),
        ("kibana-1", "192.0.2.112", 5601),
        ("router-0", "192.0.2.121", 80),
        ("router-1", "192.0.2.122", 80),
    ];
    let addrs: Vec<&str> = servers.iter().map(|s| s.1).collect();
    let mut net = Net::new("vh", "192.0.2.136", &addrs, "");
    for (name, addr, port) in servers {
        net.server(name, addr, port);
    }
    net.halo(&example("virtual-hosts.toml"));

    let url = "http://192.0.2.136:30800/";
    let grafana = net.wait("grafana through halo", || {
        net.curl(url, Some("grafana.under.my-domain.example"))
            .filter(|b| b == "grafana-0")
    });
    assert_eq!(grafana, "grafana-0");
    // Same port, another Host, another pool (both kibana servers in turn
    // once their checks pass).
    let mut seen = std::collections::BTreeSet::new();
    net.wait("both kibana servers", || {
        // (503 until their checks have passed twice: rise 2.)
        if let Some(b) = net.curl(url, Some("kibana.under.my-domain.example"))
            && b.starts_with("kibana-")
        {
            seen.insert(b);
        }
        (seen.len() == 2).then_some(())
    });
    let app = net.curl(url, Some("shop.apps.my-domain.example")).unwrap();
    assert!(app.starts_with("router-"), "{app}");
    let none = net.curl(url, Some("nobody.example")).unwrap();
    assert_eq!(none, "404 no route for host \"nobody.example\"");
}

#[test]
fn two_datacenters_example_local_cluster_then_backups() {
    if !can_run("two_datacenters_example") {
        return;
    }
    let clus1 = ["192.0.2.31", "192.0.2.32", "192.0.2.33"];
    let clus2 = ["192.0.2.41", "192.0.2.42", "192.0.2.43"];
    let mut hosts = String::new();
    for (i, a) in clus1.iter().enumerate() {
        hosts.push_str(&format!("{a} clus1-infra-{i}.example.com\n"));
    }
    for (i, a) in clus2.iter().enumerate() {
        hosts.push_str(&format!("{a} clus2-infra-{i}.example.com\n"));
    }
    let all: Vec<&str> = clus1.iter().chain(&clus2).copied().collect();
    // 192.0.2.18: the node's own address in the example (vi1's unicast_source).
    let mut net = Net::new("dc", "192.0.2.18", &all, &hosts);
    for (c, addrs) in [("clus1", &clus1), ("clus2", &clus2)] {
        for (i, a) in addrs.iter().enumerate() {
            for port in [80, 81] {
                net.server(&format!("{c}-infra-{i}"), a, port);
            }
        }
    }
    net.halo(&example("two-datacenters.toml"));

    // The seed's curl loop (against the node's address: the VIP is issue 5).
    let url = "http://192.0.2.18/";
    // (While the servers are still starting, a refused primary is retried
    // on another server, which can be a backup: wait for the steady state.)
    let first = net.wait("an answer from the local cluster", || {
        net.curl(url, None).filter(|b| b.starts_with("clus1-"))
    });
    for _ in 0..20 {
        // balance source: this client keeps its router.
        assert_eq!(net.curl(url, None).as_deref(), Some(first.as_str()));
    }
    // main81 (http, round-robin over both clusters) answers too, once its
    // HTTP checks have passed twice (a 503 until then).
    net.wait("a server's answer through main81", || {
        net.curl("http://192.0.2.18:81/", None)
            .filter(|b| b.starts_with("clus"))
    });

    // The local cluster dies: only the backups answer, once checks see it.
    for i in 0..3 {
        net.kill(&format!("clus1-infra-{i}:80"));
    }
    // Until the checks mark them down (fall 3, inter 2s), requests that try
    // a dead primary are retried elsewhere; after, the backups take over.
    net.wait("the checks to mark clus1 down", || {
        let log = std::fs::read_to_string(net.dir.join("halo.log")).unwrap_or_default();
        (0..3)
            .all(|i| log.contains(&format!("server is DOWN server=router80/clus1-infra-{i} ")))
            .then_some(())
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let b = net
            .curl(url, None)
            .expect("a request failed after failover");
        assert!(b.starts_with("clus2-"), "{b}");
        seen.insert(b);
    }
    assert_eq!(seen.len(), 1, "one client keeps one backup: {seen:?}");
}

/// Two sites of examples/gslb-failover*.toml as network namespaces, each
/// with its DNS node (192.0.2.53, 198.51.100.53) and two ingress routers
/// (python at .48 and .49, port 80), and a client namespace between them
/// that routes the two sites' networks (so the nodes peer through it) and
/// runs dig against both, as a user watching the failover would.
struct Sites {
    client: String,
    east: String,
    west: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Sites {
    fn new() -> Self {
        let id = std::process::id();
        let [client, east, west] = ["c", "e", "w"].map(|r| format!("halo-gs{r}{id}"));
        let dir = std::env::temp_dir().join(format!("halo-gslb-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/healthz"), "ok\n").unwrap();
        let sites = Self {
            client,
            east,
            west,
            dir,
            children: Vec::new(),
        };
        let (c, e, w) = (
            sites.client.as_str(),
            sites.east.as_str(),
            sites.west.as_str(),
        );
        for ns in [c, e, w] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            c,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ]);
        for (ns, net, n) in [(e, "192.0.2", "e"), (w, "198.51.100", "w")] {
            let (vc, vs) = (format!("gs{n}c{id}"), format!("gs{n}s{id}"));
            sh(&[
                "ip", "link", "add", &vc, "type", "veth", "peer", "name", &vs,
            ]);
            sh(&["ip", "link", "set", &vc, "netns", c]);
            sh(&["ip", "link", "set", &vs, "netns", ns]);
            sh(&[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{net}.1/24"),
                "dev",
                &vc,
            ]);
            for host in ["53", "48", "49"] {
                sh(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{net}.{host}/24"),
                    "dev",
                    &vs,
                ]);
            }
            sh(&["ip", "-n", c, "link", "set", &vc, "up"]);
            sh(&["ip", "-n", ns, "link", "set", &vs, "up"]);
            sh(&[
                "ip",
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                &format!("{net}.1"),
            ]);
        }
        sites
    }

    fn spawn(&mut self, key: &str, ns: &str, args: &[&str], log: Option<&str>) {
        let stderr = log.map_or_else(Stdio::null, |l| {
            std::fs::File::create(self.dir.join(l)).unwrap().into()
        });
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.children.push((key.to_owned(), child));
    }

    /// Starts the two ingress routers of `site` ("east" or "west").
    fn start_routers(&mut self, site: &str) {
        let (ns, net) = self.site(site);
        let www = self.dir.join("www");
        for host in ["48", "49"] {
            let addr = format!("{net}.{host}");
            self.spawn(
                &format!("{site}-routers"),
                &ns,
                &[
                    "python3",
                    "-m",
                    "http.server",
                    "--bind",
                    &addr,
                    "80",
                    "--directory",
                    www.to_str().unwrap(),
                ],
                None,
            );
        }
    }

    fn stop_routers(&mut self, site: &str) {
        let key = format!("{site}-routers");
        self.children.retain_mut(|(k, child)| {
            if *k == key {
                let _ = child.kill();
                let _ = child.wait();
                false
            } else {
                true
            }
        });
    }

    fn site(&self, site: &str) -> (String, &'static str) {
        if site == "east" {
            (self.east.clone(), "192.0.2")
        } else {
            (self.west.clone(), "198.51.100")
        }
    }

    /// `dig +short` from the client: the answer's addresses, sorted and joined.
    fn dig(&self, server: &str, name: &str) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client,
                "dig",
                "+short",
                "+tries=1",
                "+time=1",
            ])
            .arg(format!("@{server}"))
            .arg(name)
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines.join(" ")
    }

    /// Waits until both DNS nodes answer `want` for `name`.
    fn both(&self, name: &str, want: &str) {
        self.each(name, [want, want]);
    }

    /// Waits until east's node answers `want[0]` and west's `want[1]`.
    #[allow(clippy::disallowed_methods)]
    fn each(&self, name: &str, want: [&str; 2]) {
        let end = Instant::now() + DEADLINE;
        loop {
            let got = [
                self.dig("192.0.2.53", name),
                self.dig("198.51.100.53", name),
            ];
            if got == want {
                return;
            }
            if Instant::now() >= end {
                let logs: Vec<String> = ["east.log", "west.log"]
                    .iter()
                    .map(|l| std::fs::read_to_string(self.dir.join(l)).unwrap_or_default())
                    .collect();
                panic!(
                    "{name}: wanted {want:?} from east and west, got {got:?}\neast:\n{}\nwest:\n{}",
                    logs[0], logs[1]
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sites {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.east, &self.west] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The failover cycle of the GSLB issue, on the example files unchanged:
/// both sites up → east; west's routers stop → still east; east's stop too →
/// each node fails open with what it knows (its own VIP: `when_all_down =
/// "all"`); west's come back → west from both; east's come back → east. The
/// active/active service `myapp-rr` answers both VIPs while both are up.
#[test]
fn gslb_failover_example_two_sites_watched_with_dig() {
    if !can_run("gslb_failover_example") {
        return;
    }
    let mut s = Sites::new();
    s.start_routers("east");
    s.start_routers("west");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let halo = env!("CARGO_BIN_EXE_halo");
    for (site, file) in [
        ("east", "gslb-failover.toml"),
        ("west", "gslb-failover-west.toml"),
    ] {
        let (ns, _) = s.site(site);
        let path = examples.join(file);
        s.spawn(
            site,
            &ns,
            &[halo, "run", "-c", path.to_str().unwrap()],
            Some(&format!("{site}.log")),
        );
    }
    let fo = "myapp.global.example.com";
    s.both(fo, "192.0.2.20");
    s.both("myapp-rr.global.example.com", "192.0.2.20 198.51.100.20");
    assert_eq!(
        s.dig("192.0.2.53", "gslb-ns-west.global.example.com"),
        "198.51.100.53"
    );
    s.stop_routers("west");
    s.both("myapp-rr.global.example.com", "192.0.2.20");
    s.both(fo, "192.0.2.20");
    s.stop_routers("east");
    // Fail open: neither node has a healthy endpoint; each answers the
    // endpoint it is configured with rather than nothing (it knows no other:
    // its peer publishes none).
    s.each(fo, ["192.0.2.20", "198.51.100.20"]);
    s.start_routers("west");
    s.both(fo, "198.51.100.20");
    s.start_routers("east");
    s.both(fo, "192.0.2.20");
}

/// Seed 002's LAN: the two load balancers (examples/two-datacenters.toml on
/// A = 192.0.2.18, two-datacenters-b.toml on B = 192.0.2.19, both on an
/// interface named `ens192` as in the files), a host with both clusters'
/// routers (192.0.2.31-33 = clus1, .41-43 = clus2, ports 80 and 81) and a
/// client (192.0.2.50), all on one bridge.
struct Dc {
    bridge: String,
    a: String,
    b: String,
    srv: String,
    client: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

const CLUS1: [&str; 3] = ["192.0.2.31", "192.0.2.32", "192.0.2.33"];
const CLUS2: [&str; 3] = ["192.0.2.41", "192.0.2.42", "192.0.2.43"];

impl Dc {
    fn new() -> Self {
        let id = std::process::id();
        let [bridge, a, b, srv, client] =
            ["br", "a", "b", "s", "c"].map(|r| format!("halo-vd{r}{id}"));
        let dir = std::env::temp_dir().join(format!("halo-dcvip-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for (c, addrs) in [("clus1", CLUS1), ("clus2", CLUS2)] {
            for (i, addr) in addrs.iter().enumerate() {
                hosts.push_str(&format!("{addr} {c}-infra-{i}.example.com\n"));
            }
        }
        common::bridge(&bridge);
        let host = |ns: &str, port: &str, ifname: &str, addrs: &[&str]| {
            let addrs: Vec<String> = addrs.iter().map(|a| format!("{a}/24")).collect();
            common::bridge_host(&bridge, ns, port, ifname, &addrs);
        };
        host(&a, "pa", "ens192", &["192.0.2.18"]);
        host(&b, "pb", "ens192", &["192.0.2.19"]);
        let servers: Vec<&str> = CLUS1.iter().chain(&CLUS2).copied().collect();
        host(&srv, "ps", "eth0", &servers);
        host(&client, "pc", "eth0", &["192.0.2.50"]);
        for ns in [&a, &b] {
            let etc = Path::new("/etc/netns").join(ns);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("hosts"), &hosts).unwrap();
        }
        Self {
            bridge,
            a,
            b,
            srv,
            client,
            dir,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, key: &str, ns: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(format!("{key}.log"))).unwrap())
            .spawn()
            .unwrap();
        self.children.push((key.into(), child));
    }

    /// Every router of both clusters on ports 80 and 81, each page its name.
    fn routers(&mut self) {
        for (c, addrs) in [("clus1", CLUS1), ("clus2", CLUS2)] {
            for (i, addr) in addrs.iter().enumerate() {
                for port in [80, 81] {
                    let name = format!("{c}-infra-{i}");
                    let root = self.dir.join(format!("{name}-{port}"));
                    std::fs::create_dir_all(&root).unwrap();
                    for page in ["index.html", "healthz"] {
                        std::fs::write(root.join(page), format!("{name}\n")).unwrap();
                    }
                    let child = common::http_server(&self.srv, addr, port, &root);
                    self.children.push((format!("{name}-{port}"), child));
                }
            }
        }
    }

    /// halo on node `a` or `b` with its example file, as `key`.
    fn halo(&mut self, node: &str, key: &str) {
        let file = match node {
            "a" => "two-datacenters.toml",
            _ => "two-datacenters-b.toml",
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(file);
        let ns = if node == "a" {
            self.a.clone()
        } else {
            self.b.clone()
        };
        self.spawn(
            key,
            &ns,
            &[
                env!("CARGO_BIN_EXE_halo"),
                "run",
                "-c",
                path.to_str().unwrap(),
            ],
        );
    }

    fn stop(&mut self, key: &str) {
        for (k, child) in &mut self.children {
            if k == key {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
        self.children.retain(|(k, _)| k != key);
    }

    /// Which of A and B hold `vip`: "A", "B", "AB" or "".
    fn holders(&self, vip: &str) -> String {
        [("A", &self.a), ("B", &self.b)]
            .iter()
            .filter(|(_, ns)| {
                let out = Command::new("ip")
                    .args(["-n", ns, "-o", "addr", "show", "dev", "ens192"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains(&format!(" {vip}/"))
            })
            .map(|(n, _)| *n)
            .collect()
    }

    /// The client's curl of `url`: the body, or "" when it failed.
    fn curl(&self, url: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, "curl", "-s", "-m", "2", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls until both VIPs are on `node` only ("A" / "B", or "AB" meaning
    /// .20 on A and .21 on B) and each answers through it from the cluster
    /// that node prefers.
    #[allow(
        clippy::disallowed_methods,
        reason = "test deadline; the pause is a poll interval"
    )]
    fn settle(&self, what: &str, want: (&str, &str)) {
        let end = Instant::now() + DEADLINE;
        loop {
            let held = (self.holders("192.0.2.20"), self.holders("192.0.2.21"));
            if (held.0.as_str(), held.1.as_str()) == want {
                let cluster = |n: &str| if n == "A" { "clus1-" } else { "clus2-" };
                let a = self.curl("http://192.0.2.20/");
                let b = self.curl("http://192.0.2.21/");
                if a.starts_with(cluster(want.0)) && b.starts_with(cluster(want.1)) {
                    return;
                }
            }
            if Instant::now() >= end {
                let logs: Vec<String> = ["a", "a2", "b"]
                    .iter()
                    .map(|k| {
                        let log = std::fs::read_to_string(self.dir.join(format!("{k}.log")))
                            .unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(12).collect();
                        format!(
                            "--- {k}\n{}",
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                panic!(
                    "timed out waiting for {what}: VIPs held by {held:?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dc {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.a, &self.b, &self.srv, &self.client, &self.bridge] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Seed 002's failover test with both example files unchanged: both VIPs
/// served (.20 by A, .21 by B); stop A: both on B; restore A and stop B:
/// both on A. Each VIP answers from the cluster local to its holder.
#[test]
fn two_datacenters_example_vips_move_between_the_nodes() {
    if !can_run("two_datacenters_example_vips") {
        return;
    }
    let mut dc = Dc::new();
    dc.routers();
    dc.halo("a", "a");
    dc.halo("b", "b");
    dc.settle("both VIPs served, .20 by A and .21 by B", ("A", "B"));
    dc.stop("a");
    dc.settle("both VIPs on B", ("B", "B"));
    dc.halo("a", "a2");
    dc.settle("A back as the owner of .20", ("A", "B"));
    dc.stop("b");
    dc.settle("both VIPs on A", ("A", "A"));
}

//! VRRP for real: halo nodes (and Debian's keepalived) in network
//! namespaces joined by a bridge, as load balancer machines on one LAN.
//! Each test builds its own LAN: a bridge namespace and one namespace per
//! node with `eth0` = 192.0.2.N/24 and 2001:db8::N/64.
//!
//! What is asserted is where the virtual address is (`ip addr` in each
//! namespace), polled with a deadline; the only fixed windows are the
//! "nothing happens" checks (no preemption), each several
//! Master_Down_Intervals long. How fast failover is belongs to
//! bench/vrrp.sh, not here.
//!
//! Needs root (namespaces, raw sockets) and iproute2; the interop tests
//! need keepalived (scripts/test installs both). Outside CI a non-root run
//! skips and says so; in CI it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{can_run, have, sh};

const DEADLINE: Duration = Duration::from_secs(30);
const KEEPALIVED: &str = "/usr/sbin/keepalived";
const NFT: &str = "/usr/sbin/nft";

/// A bridge and `n` hosts on it.
struct Lan {
    bridge: String,
    hosts: Vec<String>,
    dir: PathBuf,
    procs: HashMap<String, Child>,
}

impl Lan {
    fn new(tag: &str, n: usize) -> Self {
        let id = std::process::id();
        let bridge = format!("hv-{tag}-br-{id}");
        let hosts: Vec<String> = (0..n).map(|i| format!("hv-{tag}-{i}-{id}")).collect();
        let dir = std::env::temp_dir().join(format!("halo-vrrp-{tag}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        common::bridge(&bridge);
        for (i, ns) in hosts.iter().enumerate() {
            let n = i + 1;
            let addrs = [format!("192.0.2.{n}/24"), format!("2001:db8::{n}/64")];
            common::bridge_host(&bridge, ns, &format!("p{i}"), "eth0", &addrs);
        }
        Self {
            bridge,
            hosts,
            dir,
            procs: HashMap::new(),
        }
    }

    /// `halo run` on host `i` with `config`, known as `key`.
    fn halo(&mut self, i: usize, key: &str, config: &str) {
        let file = self.dir.join(format!("{key}.toml"));
        std::fs::write(&file, config).unwrap();
        let exe = env!("CARGO_BIN_EXE_halo");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], exe, "run", "-c"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(self.log_file(key))
            .spawn()
            .unwrap();
        self.procs.insert(key.into(), child);
    }

    /// An HTTP server on 127.0.0.1:8080 of host `i` (a tracked app).
    fn app(&mut self, i: usize, key: &str) {
        let child = common::http_server(&self.hosts[i], "127.0.0.1", 8080, &self.dir);
        self.procs.insert(key.into(), child);
    }

    /// Rewrites `key`'s config file (for a reload).
    fn rewrite(&self, key: &str, config: &str) {
        std::fs::write(self.dir.join(format!("{key}.toml")), config).unwrap();
    }

    /// keepalived in the foreground on host `i` with `config`, known as `key`.
    fn keepalived(&mut self, i: usize, key: &str, config: &str) {
        let d = &self.dir;
        let file = d.join(format!("{key}.conf"));
        std::fs::write(&file, config).unwrap();
        let pid = |what: &str| d.join(format!("{key}.{what}.pid"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], KEEPALIVED])
            .args(["-n", "-l", "-D", "-P", "-f"])
            .arg(&file)
            .arg("-p")
            .arg(pid("main"))
            .arg("-r")
            .arg(pid("vrrp"))
            .arg("-c")
            .arg(pid("checkers"))
            .arg("-b")
            .arg(pid("bfd"))
            .stdout(Stdio::null())
            .stderr(self.log_file(key))
            .spawn()
            .unwrap();
        self.procs.insert(key.into(), child);
    }

    fn log_file(&self, key: &str) -> std::fs::File {
        std::fs::File::create(self.dir.join(format!("{key}.log"))).unwrap()
    }

    fn log(&self, key: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{key}.log"))).unwrap_or_default()
    }

    /// Sends `signal` to `key` (and, for keepalived, its VRRP child) and, for
    /// TERM and KILL, waits for it to exit.
    fn signal(&mut self, key: &str, signal: &str) {
        let mut pids = vec![self.procs[key].id().to_string()];
        if let Ok(p) = std::fs::read_to_string(self.dir.join(format!("{key}.vrrp.pid"))) {
            // keepalived's VRRP process: a crash takes both down.
            if signal == "KILL" {
                pids.push(p.trim().to_owned());
            }
        }
        for pid in &pids {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), pid])
                .status();
        }
        if signal == "TERM" || signal == "KILL" {
            let mut child = self.procs.remove(key).unwrap();
            let _ = child.wait();
        }
    }

    /// Whether host `i` holds `addr` on eth0.
    fn holds(&self, i: usize, addr: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.hosts[i], "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {addr}/"))
    }

    /// Host `i`'s MAC address on eth0.
    fn mac(&self, i: usize) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.hosts[i], "-o", "link", "show", "dev", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text.find("link/ether ").expect("an Ethernet interface") + 11;
        text[at..at + 17].to_owned()
    }

    /// Host `i`'s neighbour entry (MAC) for `addr`, or "" when it has none.
    fn neighbour(&self, i: usize, addr: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.hosts[i], "neigh", "show", addr, "dev", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// Which hosts hold `addr`.
    fn holders(&self, addr: &str) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&i| self.holds(i, addr))
            .collect()
    }

    /// Cuts host `i` off the bridge (`up` = false) or reconnects it.
    fn link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        sh(&[
            "ip",
            "-n",
            &self.bridge,
            "link",
            "set",
            &format!("p{i}"),
            state,
        ]);
    }

    /// Takes host `i`'s port out of the bridge (`out` = true), its link
    /// staying up, or puts it back: a partition without carrier loss.
    fn isolate(&self, i: usize, out: bool) {
        let port = format!("p{i}");
        if out {
            sh(&["ip", "-n", &self.bridge, "link", "set", &port, "nomaster"]);
        } else {
            sh(&[
                "ip",
                "-n",
                &self.bridge,
                "link",
                "set",
                &port,
                "master",
                "br0",
            ]);
        }
    }

    /// Polls until `f` holds, or panics naming `what` with every log's tail.
    #[allow(
        clippy::disallowed_methods,
        reason = "test deadline; the pause is a poll interval"
    )]
    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + DEADLINE;
        while !f() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that `f` holds at every poll for `window`.
    #[allow(
        clippy::disallowed_methods,
        reason = "a window in which nothing may change"
    )]
    fn stays(&self, what: &str, window: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + window;
        while Instant::now() < end {
            assert!(f(), "{what} did not hold\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let mut keys: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".log").map(str::to_owned)
            })
            .collect();
        keys.sort();
        keys.iter()
            .map(|k| {
                let log = self.log(k);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {k}.log\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (key, child) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(p) = std::fs::read_to_string(self.dir.join(format!("{key}.vrrp.pid"))) {
                let _ = Command::new("kill").args(["-KILL", p.trim()]).status();
            }
        }
        for ns in self.hosts.iter().chain([&self.bridge]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A halo `[[vip]]` config for host `i` (1-based address .i+1).
struct VipConf<'a> {
    name: &'a str,
    vrid: u8,
    priority: u8,
    interval: &'a str,
    version: u8,
    address: &'a str,
    /// Unicast peers' addresses; empty = multicast.
    peers: &'a [&'a str],
    source: &'a str,
    extra: &'a str,
}

impl VipConf<'_> {
    /// vi1, VRID 51, priority 100, every 100 ms, v3, 192.0.2.100/24, multicast.
    fn base() -> Self {
        VipConf {
            name: "vi1",
            vrid: 51,
            priority: 100,
            interval: "100ms",
            version: 3,
            address: "192.0.2.100/24",
            peers: &[],
            source: "",
            extra: "",
        }
    }

    fn toml(&self) -> String {
        let mut s = format!(
            "[[vip]]\nname = \"{}\"\ninterface = \"eth0\"\nvrid = {}\npriority = {}\n\
             advert_interval = \"{}\"\nversion = {}\naddresses = [\"{}\"]\n",
            self.name, self.vrid, self.priority, self.interval, self.version, self.address
        );
        if !self.peers.is_empty() {
            let peers: Vec<String> = self.peers.iter().map(|p| format!("\"{p}\"")).collect();
            s += &format!(
                "unicast_source = \"{}\"\nunicast_peers = [{}]\n",
                self.source,
                peers.join(", ")
            );
        }
        s + self.extra + "\n"
    }
}

fn node(name: &str) -> String {
    format!("[node]\nname = \"{name}\"\n\n")
}

fn v4(name: &str, priority: u8, me: &str, peer: &str, extra: &str) -> String {
    VipConf {
        name,
        priority,
        peers: &[peer],
        source: me,
        extra,
        ..VipConf::base()
    }
    .toml()
}

const VIP: &str = "192.0.2.100";

#[test]
fn unicast_election_crash_return_and_graceful_handover() {
    if !can_run("unicast_election_crash_return_and_graceful_handover") {
        return;
    }
    // Host 2 is a client on the LAN: its ARP entry for the VIP shows the
    // gratuitous ARP of each takeover.
    let mut lan = Lan::new("uc", 3);
    let notify = lan.dir.join("notify.sh");
    let trail = lan.dir.join("b.trail");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", trail.display()),
    )
    .unwrap();
    sh(&["chmod", "+x", notify.to_str().unwrap()]);
    let a = node("a") + &v4("vi1", 150, "192.0.2.1", "192.0.2.2", "");
    let b = node("b")
        + &v4(
            "vi1",
            100,
            "192.0.2.2",
            "192.0.2.1",
            // No second burst: the first is what the client must see.
            &format!("notify = \"{}\"\ngarp_delay = \"0s\"", notify.display()),
        );
    lan.halo(0, "a", &a);
    lan.halo(1, "b", &b);
    lan.wait("a to be master, b backup", || lan.holders(VIP) == [0]);
    // One datagram makes the client resolve the VIP (to a's MAC).
    let send = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.100', 9))";
    sh(&["ip", "netns", "exec", &lan.hosts[2], "python3", "-c", send]);
    lan.wait("the client to resolve the VIP to a", || {
        lan.neighbour(2, VIP) == lan.mac(0)
    });

    // Crash: no priority 0, b takes over after Master_Down_Interval, and its
    // gratuitous ARP moves the client's entry without the client asking.
    lan.signal("a", "KILL");
    lan.wait("b to take over from the crashed a", || lan.holds(1, VIP));
    lan.wait("the client's ARP entry to follow b's GARP", || {
        lan.neighbour(2, VIP) == lan.mac(1)
    });

    // a returns (it removes the address its crash left) and preempts.
    lan.halo(0, "a2", &a);
    lan.wait("a to preempt b", || lan.holders(VIP) == [0]);

    // Graceful stop: priority 0, b takes over within its skew time.
    lan.signal("a2", "TERM");
    lan.wait("b to take over from the stopped a", || {
        lan.holders(VIP) == [1]
    });
    assert!(lan.log("a2").contains("to=\"INIT\""), "{}", lan.log("a2"));

    // notify runs after the address moved: wait for its fourth call.
    let read = || std::fs::read_to_string(&trail).unwrap_or_default();
    lan.wait("b's fourth notify call", || read().lines().count() >= 4);
    let trail = read();
    let lines: Vec<&str> = trail.lines().collect();
    assert_eq!(
        lines,
        [
            "vi1 BACKUP 100",
            "vi1 MASTER 100",
            "vi1 BACKUP 100",
            "vi1 MASTER 100"
        ],
        "b's notify calls"
    );
}

#[test]
fn multicast_link_loss_and_partition_heal_to_one_master() {
    if !can_run("multicast_link_loss_and_partition_heal_to_one_master") {
        return;
    }
    let mut lan = Lan::new("mc", 3);
    for (i, priority) in [150u8, 120, 100].into_iter().enumerate() {
        let conf = VipConf {
            vrid: 7,
            priority,
            ..VipConf::base()
        };
        lan.halo(
            i,
            &format!("n{i}"),
            &(node(&format!("n{i}")) + &conf.toml()),
        );
    }
    lan.wait("the highest priority to be the one master", || {
        lan.holders(VIP) == [0]
    });
    // The cut-off node loses carrier: FAULT, address given up (keepalived
    // does the same); the next priority takes over.
    lan.link(0, false);
    lan.wait(
        "the next one to take over, the cut-off one to fault",
        || lan.holders(VIP) == [1] && lan.log("n0").contains("to=\"FAULT\""),
    );
    lan.link(0, true);
    lan.wait("one master again", || lan.holders(VIP) == [0]);

    // A partition with the link up (the port leaves the bridge): both sides
    // elect a master; when it heals, the lower one yields.
    lan.isolate(0, true);
    lan.wait("two masters, one per side", || lan.holders(VIP) == [0, 1]);
    lan.isolate(0, false);
    lan.wait("one master after the heal", || lan.holders(VIP) == [0]);
}

#[test]
fn ipv6_multicast_and_unicast_takeover() {
    if !can_run("ipv6_multicast_and_unicast_takeover") {
        return;
    }
    let mut lan = Lan::new("v6", 2);
    let vip = "2001:db8::100";
    let v6 = |priority, peers, source, extra| VipConf {
        name: "vi6",
        vrid: 9,
        priority,
        address: "2001:db8::100/64",
        peers,
        source,
        extra,
        ..VipConf::base()
    };
    // Multicast (ff02::12 from the link-local addresses).
    lan.halo(0, "m0", &(node("a") + &v6(150, &[], "", "").toml()));
    lan.halo(1, "m1", &(node("b") + &v6(100, &[], "", "").toml()));
    lan.wait("a to be master", || lan.holders(vip) == [0]);
    lan.signal("m0", "KILL");
    lan.wait("b to take over", || lan.holds(1, vip));
    lan.signal("m1", "TERM");
    lan.wait("b to give the address up", || !lan.holds(1, vip));

    // Unicast between the global addresses; a's crash left its address,
    // which the restarted a removes before it is master again.
    let (a, b) = (["2001:db8::2"], ["2001:db8::1"]);
    lan.halo(
        0,
        "u0",
        &(node("a") + &v6(150, &a, "2001:db8::1", "").toml()),
    );
    lan.halo(
        1,
        "u1",
        &(node("b") + &v6(100, &b, "2001:db8::2", "").toml()),
    );
    lan.wait("a to be the one master", || {
        lan.log("u0").contains("to=\"MASTER\"") && lan.holders(vip) == [0]
    });
    lan.signal("u0", "TERM");
    lan.wait("b to take over from the stopped a", || {
        lan.holders(vip) == [1]
    });
}

#[test]
fn no_preempt_then_preempt_delay_after_a_reload() {
    if !can_run("no_preempt_then_preempt_delay_after_a_reload") {
        return;
    }
    let mut lan = Lan::new("np", 2);
    lan.halo(
        1,
        "b",
        &(node("b") + &v4("vi1", 100, "192.0.2.2", "192.0.2.1", "")),
    );
    lan.wait("b alone to be master", || lan.holds(1, VIP));
    lan.halo(
        0,
        "a",
        &(node("a") + &v4("vi1", 150, "192.0.2.1", "192.0.2.2", "preempt = false")),
    );
    lan.wait("a to start as backup", || {
        lan.log("a").contains("to=\"BACKUP\"")
    });
    // Master_Down_Interval is 0.34 s: ten of them without a takeover.
    lan.stays("b master, a not preempting", Duration::from_secs(3), || {
        lan.holders(VIP) == [1]
    });
    // Reload: a changed instance restarts, now preempting after 1 s.
    lan.rewrite(
        "a",
        &(node("a")
            + &v4(
                "vi1",
                150,
                "192.0.2.1",
                "192.0.2.2",
                "preempt_delay = \"1s\"",
            )),
    );
    lan.signal("a", "HUP");
    lan.wait("a to preempt after its delay", || lan.holders(VIP) == [0]);
}

#[test]
fn tracking_faults_a_group_and_weights_move_a_vip() {
    if !can_run("tracking_faults_a_group_and_weights_move_a_vip") {
        return;
    }
    let mut lan = Lan::new("tr", 2);
    // Two VIPs in one sync group; only vi1 tracks the app (no weight: fault).
    // vi3 tracks it with a weight that puts a below b.
    let conf = |me: &str, peer: &str, priority: u8, track: bool| {
        let t = |w: &str| {
            if track {
                format!("track = [ {{ tcp = \"127.0.0.1:8080\"{w} }} ]")
            } else {
                String::new()
            }
        };
        let vip = |name, vrid, addr, extra: String| {
            VipConf {
                name,
                vrid,
                priority,
                address: addr,
                peers: &[peer],
                source: me,
                extra: &extra,
                ..VipConf::base()
            }
            .toml()
        };
        vip("vi1", 51, "192.0.2.100/24", t(""))
            + &vip("vi2", 52, "192.0.2.101/24", String::new())
            + &vip("vi3", 53, "192.0.2.102/24", t(", weight = -60"))
            + "[[vip_group]]\nname = \"g\"\nvips = [\"vi1\", \"vi2\"]\n"
    };
    lan.app(0, "app");
    lan.halo(
        0,
        "a",
        &(node("a") + &conf("192.0.2.1", "192.0.2.2", 150, true)),
    );
    lan.halo(
        1,
        "b",
        &(node("b") + &conf("192.0.2.2", "192.0.2.1", 100, false)),
    );
    let all = ["192.0.2.100", "192.0.2.101", "192.0.2.102"];
    lan.wait("a to hold all three", || {
        all.iter().all(|v| lan.holders(v) == [0])
    });

    lan.signal("app", "KILL");
    lan.wait(
        "all three on b: the group by fault, vi3 by priority",
        || all.iter().all(|v| lan.holders(v) == [1]),
    );
    let log = lan.log("a");
    assert!(
        log.contains("vip=vi2 from=\"MASTER\" to=\"FAULT\""),
        "{log}"
    );
    assert!(
        log.contains("vip=vi3 from=\"MASTER\" to=\"BACKUP\" priority=90"),
        "{log}"
    );

    lan.app(0, "app2");
    lan.wait("all three back on a", || {
        all.iter().all(|v| lan.holders(v) == [0])
    });
}

/// The ipfailover `--watch-port` idea from inside: a's VIP tracks its own
/// listener, whose one server is an app on a's host. When the app dies the
/// pool has no healthy server, a faults and b takes over; when it returns,
/// a preempts.
#[test]
fn tracking_a_listener_with_no_healthy_server() {
    if !can_run("tracking_a_listener_with_no_healthy_server") {
        return;
    }
    let mut lan = Lan::new("tl", 2);
    let proxy = "[[listener]]\nname = \"web\"\nbind = [\"0.0.0.0:80\"]\nprotocol = \"tcp\"\n\
                 default_pool = \"app\"\n\n[[pool]]\nname = \"app\"\n  [pool.check]\n  type = \"tcp\"\n  \
                 interval = \"200ms\"\n  rise = 1\n  fall = 1\n  [[pool.server]]\n  name = \"app-0\"\n  \
                 address = \"127.0.0.1:8080\"\n\n";
    lan.app(0, "app");
    let track = "track = [ { listener = \"web\" } ]";
    lan.halo(
        0,
        "a",
        &(node("a") + proxy + &v4("vi1", 150, "192.0.2.1", "192.0.2.2", track)),
    );
    lan.halo(
        1,
        "b",
        &(node("b") + &v4("vi1", 100, "192.0.2.2", "192.0.2.1", "")),
    );
    lan.wait("a to be master", || lan.holders(VIP) == [0]);
    lan.signal("app", "KILL");
    lan.wait(
        "b to take over when a's listener has nothing to send to",
        || lan.holders(VIP) == [1],
    );
    assert!(lan.log("a").contains("to=\"FAULT\""), "{}", lan.log("a"));
    lan.app(0, "app2");
    lan.wait("a back once its server is", || lan.holders(VIP) == [0]);
}

/// `accept = false`: while a (not the owner) is master, traffic to the VIP is
/// dropped (nftables), traffic to a's own address is not; a reload to the
/// default `accept = true` takes the rule away.
#[test]
fn accept_false_drops_traffic_to_the_vip_while_master() {
    if !can_run("accept_false_drops_traffic_to_the_vip_while_master") || !have(NFT, "nftables") {
        return;
    }
    let mut lan = Lan::new("ac", 2);
    let app = common::http_server(&lan.hosts[0], "0.0.0.0", 8080, &lan.dir);
    lan.procs.insert("app".into(), app);
    let conf = |extra| {
        node("a")
            + &VipConf {
                priority: 150,
                extra,
                ..VipConf::base()
            }
            .toml()
    };
    lan.halo(0, "a", &conf("accept = false"));
    let client = lan.hosts[1].clone();
    let curl = |url: &str| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &client,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "1",
                url,
            ])
            .status()
            .unwrap()
            .success()
    };
    lan.wait("a to be master", || lan.holders(VIP) == [0]);
    lan.wait("a's own address to answer", || {
        curl("http://192.0.2.1:8080/")
    });
    assert!(
        !curl("http://192.0.2.100:8080/"),
        "accept = false, yet the VIP answered"
    );
    let rules = |lan: &Lan| {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lan.hosts[0],
                NFT,
                "list",
                "set",
                "inet",
                "halo",
                "vips4",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(rules(&lan).contains("192.0.2.100"), "{}", rules(&lan));

    lan.rewrite("a", &conf(""));
    lan.signal("a", "HUP");
    lan.wait("the VIP to answer once accept is back", || {
        lan.holders(VIP) == [0] && curl("http://192.0.2.100:8080/")
    });
    assert!(!rules(&lan).contains("192.0.2.100"), "{}", rules(&lan));
}

/// Sends VRRPv3 adverts for VRID 51, priority 254, from the host it runs
/// on: argv = destination, TTL, source address (for the checksum), and
/// "bad" to spoil the checksum. Python's raw socket, so nothing of halo's
/// codec is involved.
const FORGER: &str = r#"
import socket, struct, sys
dst, ttl, src, bad = sys.argv[1], int(sys.argv[2]), sys.argv[3], len(sys.argv) > 4
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
msg = bytes([0x31, 51, 254, 1, 0, 10, 0, 0]) + socket.inet_aton("192.0.2.100")
c = csum(socket.inet_aton(src) + socket.inet_aton(dst) + bytes([0, 112, 0, len(msg)]) + msg)
msg = msg[:6] + struct.pack("!H", c ^ (1 if bad else 0)) + msg[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
for _ in range(20): s.sendto(msg, (dst, 0))
"#;

#[test]
fn forged_adverts_are_dropped_and_counted() {
    if !can_run("forged_adverts_are_dropped_and_counted") {
        return;
    }
    let mut lan = Lan::new("fg", 2);
    let multicast = VipConf {
        priority: 150,
        ..VipConf::base()
    };
    lan.halo(0, "a", &(node("a") + &multicast.toml()));
    lan.wait("a to be master", || lan.holders(VIP) == [0]);
    let forger = lan.hosts[1].clone();
    let forge = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &forger, "python3", "-c", FORGER])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // TTL 64 (routed from elsewhere), then a bad checksum: both dropped.
    forge(&["224.0.0.18", "64", "192.0.2.2"]);
    forge(&["224.0.0.18", "255", "192.0.2.2", "bad"]);
    lan.wait("both drops logged", || {
        let log = lan.log("a");
        log.contains("TTL is not 255") && log.contains("bad checksum")
    });
    let log = lan.log("a");
    assert!(!log.contains("from=\"MASTER\" to=\"BACKUP\""), "{log}");
    assert_eq!(lan.holders(VIP), [0], "a forged advert moved the address");
    // The control: the same advert, well formed, makes a step down.
    forge(&["224.0.0.18", "255", "192.0.2.2"]);
    lan.wait("a to yield to the well-formed higher priority", || {
        lan.log("a").contains("from=\"MASTER\" to=\"BACKUP\"")
    });
    // Each forger run sends 20: every bad one counted, by reason.
    lan.signal("a", "TERM");
    let log = lan.log("a");
    assert!(log.contains("dropped_ttl=20 "), "{log}");
    assert!(log.contains("dropped_checksum=20 "), "{log}");

    // Unicast: a source that is not among the peers is dropped.
    let unicast = v4("vi1", 150, "192.0.2.1", "192.0.2.3", "");
    lan.halo(0, "u", &(node("a") + &unicast));
    lan.wait("a to be master again", || {
        lan.log("u").contains("to=\"MASTER\"")
    });
    forge(&["192.0.2.1", "255", "192.0.2.2"]);
    lan.wait("the drop logged", || {
        lan.log("u").contains("source is not among unicast_peers")
    });
    assert!(
        !lan.log("u").contains("from=\"MASTER\" to=\"BACKUP\""),
        "{}",
        lan.log("u")
    );
    lan.signal("u", "TERM");
    assert!(
        lan.log("u").contains("dropped_peer=20 "),
        "{}",
        lan.log("u")
    );

    // Unicast from a listed peer on the interface's own network: TTL 64 can
    // only come from further away with a forged source, and is dropped
    // (keepalived takes it: it never checks the TTL in unicast mode); 255
    // is heard.
    let unicast = v4("vi1", 150, "192.0.2.1", "192.0.2.2", "");
    lan.halo(0, "t", &(node("a") + &unicast));
    lan.wait("a to be master again", || {
        lan.log("t").contains("to=\"MASTER\"")
    });
    forge(&["192.0.2.1", "64", "192.0.2.2"]);
    lan.wait("the TTL drop logged", || {
        lan.log("t")
            .contains("TTL is not 255 from an on-link unicast peer")
    });
    assert!(
        !lan.log("t").contains("from=\"MASTER\" to=\"BACKUP\""),
        "{}",
        lan.log("t")
    );
    forge(&["192.0.2.1", "255", "192.0.2.2"]);
    lan.wait("a to yield to the peer's well-formed advert", || {
        lan.log("t").contains("from=\"MASTER\" to=\"BACKUP\"")
    });
    lan.signal("t", "TERM");
    assert!(lan.log("t").contains("dropped_ttl=20 "), "{}", lan.log("t"));

    // unicast_ttl_check = "off": keepalived's way, TTL 64 is heard.
    let unchecked = v4(
        "vi1",
        150,
        "192.0.2.1",
        "192.0.2.2",
        "unicast_ttl_check = \"off\"\n",
    );
    lan.halo(0, "o", &(node("a") + &unchecked));
    lan.wait("a to be master once more", || {
        lan.log("o").contains("to=\"MASTER\"")
    });
    forge(&["192.0.2.1", "64", "192.0.2.2"]);
    lan.wait("a to yield to a TTL 64 advert", || {
        lan.log("o").contains("from=\"MASTER\" to=\"BACKUP\"")
    });
}

/// keepalived's `vrrp_instance` for host `i`.
fn keepalived_conf(
    priority: u8,
    version: u8,
    interval: &str,
    unicast: Option<(&str, &str)>,
) -> String {
    let unicast = unicast.map_or(String::new(), |(me, peer)| {
        format!("    unicast_src_ip {me}\n    unicast_peer {{\n        {peer}\n    }}\n")
    });
    format!(
        "global_defs {{\n    vrrp_garp_master_delay 0\n}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    \
         interface eth0\n    virtual_router_id 51\n    priority {priority}\n    advert_int {interval}\n    \
         version {version}\n{unicast}    virtual_ipaddress {{\n        {VIP}/24 dev eth0\n    }}\n}}\n"
    )
}

/// halo and keepalived in one VRID, each way round: the higher priority is
/// master and the other stays backup; when the master crashes the other
/// takes over; halo as master returns and preempts keepalived.
fn interop(tag: &str, version: u8, interval_ka: &str, interval_halo: &str, unicast: bool) {
    let mut lan = Lan::new(tag, 2);
    let halo = |name: &str, priority, me: &str, peer: &str| {
        let peers = [peer];
        node(name)
            + &VipConf {
                priority,
                interval: interval_halo,
                version,
                peers: if unicast { &peers } else { &[] },
                source: me,
                ..VipConf::base()
            }
            .toml()
    };
    let uc = |me, peer| unicast.then_some((me, peer));
    let mdi = if interval_ka == "1" { 4 } else { 1 };

    // halo master, keepalived backup.
    lan.keepalived(
        1,
        "ka",
        &keepalived_conf(100, version, interval_ka, uc("192.0.2.2", "192.0.2.1")),
    );
    lan.halo(0, "halo", &halo("a", 150, "192.0.2.1", "192.0.2.2"));
    lan.wait("halo master, keepalived backup", || lan.holders(VIP) == [0]);
    lan.stays("keepalived stays backup", Duration::from_secs(mdi), || {
        lan.holders(VIP) == [0]
    });
    lan.signal("halo", "KILL");
    lan.wait("keepalived to take over from halo", || lan.holds(1, VIP));
    lan.halo(0, "halo2", &halo("a", 150, "192.0.2.1", "192.0.2.2"));
    lan.wait("halo to preempt keepalived", || lan.holders(VIP) == [0]);
    assert!(!lan.log("ka").contains("checksum"), "{}", lan.log("ka"));
    lan.signal("halo2", "TERM");
    lan.wait("keepalived to take over after halo's priority 0", || {
        lan.holders(VIP) == [1]
    });
    lan.signal("ka", "TERM");
    lan.wait("keepalived to give the address up", || {
        lan.holders(VIP).is_empty()
    });

    // keepalived master, halo backup.
    lan.keepalived(
        0,
        "ka2",
        &keepalived_conf(150, version, interval_ka, uc("192.0.2.1", "192.0.2.2")),
    );
    lan.wait("keepalived alone to be master", || lan.holds(0, VIP));
    lan.halo(1, "halo3", &halo("b", 100, "192.0.2.2", "192.0.2.1"));
    lan.wait("halo to start as backup", || {
        lan.log("halo3").contains("to=\"BACKUP\"")
    });
    lan.stays("halo stays backup", Duration::from_secs(mdi), || {
        lan.holders(VIP) == [0]
    });
    lan.signal("ka2", "KILL");
    lan.wait("halo to take over from keepalived", || {
        lan.holders(VIP).contains(&1)
    });
}

#[test]
fn keepalived_interop_unicast_v3() {
    if can_run("keepalived_interop_unicast_v3") && have(KEEPALIVED, "keepalived") {
        interop("kau", 3, "0.1", "100ms", true);
    }
}

#[test]
fn keepalived_interop_multicast_v3() {
    if can_run("keepalived_interop_multicast_v3") && have(KEEPALIVED, "keepalived") {
        interop("kam", 3, "0.1", "100ms", false);
    }
}

#[test]
fn keepalived_interop_multicast_v2() {
    if can_run("keepalived_interop_multicast_v2") && have(KEEPALIVED, "keepalived") {
        interop("ka2", 2, "1", "1s", false);
    }
}

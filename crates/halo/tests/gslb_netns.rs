//! Sites that verify each other (issue 19), with real partitions: each site
//! is a network namespace holding its GSLB node (`halo run`, DNS on
//! 192.0.2.1N) and its entry address (192.0.2.2N, the VIP in production)
//! where its app answers HTTP; a client namespace asks every node with dig.
//! All on one bridge, documentation addresses only.
//!
//! - A whole-site outage is the site's link going down: DNS node, entry
//!   address and app leave together.
//! - A partition is nftables dropping what two namespaces send each other:
//!   only their DNS nodes (the probes still pass), or everything.
//!
//! Every node probes the others' entry addresses over HTTP every 500 ms
//! (timeout 250 ms, rise 1, fall 2) and peers every 500 ms;
//! `peer_stale_after` is 4 s, so a
//! withdrawal that comes from the probes is told apart from one that comes
//! from staleness by the verdict's log line (`site_dns=Unreachable`, not
//! `Stale`). How long it takes is printed, not asserted (a timed assertion
//! does not belong in a test on a shared machine): `bench/gslb-failover.sh`
//! measures it.
//!
//! Needs root (namespaces), iproute2, nftables, python3, dig and unbound
//! (scripts/test installs them). Outside CI a non-root run skips and says so.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{can_run, sh};

const DEADLINE: Duration = Duration::from_secs(30);
const ZONE: &str = "global.example.com";

/// One site's namespace and what runs in it.
struct Site {
    name: &'static str,
    ns: String,
    /// The bridge side of its veth: down is the whole site gone.
    port: String,
    dns: String,
    entry: String,
    procs: Vec<Child>,
}

/// The sites, a client and the bridge between them; removed on drop with
/// everything started in them.
struct Fed {
    bridge: String,
    client: String,
    sites: Vec<Site>,
    dir: PathBuf,
}

impl Fed {
    fn new(tag: &str, names: &[&'static str]) -> Self {
        let id = std::process::id();
        let bridge = format!("hg{tag}br{id}");
        let client = format!("hg{tag}c{id}");
        let dir = std::env::temp_dir().join(format!("halo-gslb-{tag}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        common::bridge(&bridge);
        common::bridge_host(
            &bridge,
            &client,
            "pc",
            "eth0",
            &["192.0.2.100/24".to_owned()],
        );
        let sites = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let n = i + 1;
                let ns = format!("hg{tag}{n}{id}");
                let port = format!("p{n}");
                let (dns, entry) = (format!("192.0.2.1{n}"), format!("192.0.2.2{n}"));
                common::bridge_host(
                    &bridge,
                    &ns,
                    &port,
                    "eth0",
                    &[format!("{dns}/24"), format!("{entry}/24")],
                );
                Site {
                    name,
                    ns,
                    port,
                    dns,
                    entry,
                    procs: Vec::new(),
                }
            })
            .collect();
        Self {
            bridge,
            client,
            sites,
            dir,
        }
    }

    fn site(&self, name: &str) -> usize {
        self.sites.iter().position(|s| s.name == name).unwrap()
    }

    /// The site's app: an HTTP server on its entry address, port 80.
    fn app(&mut self, i: usize) {
        let root = self.dir.join(format!("app-{}", self.sites[i].name));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), self.sites[i].name).unwrap();
        let s = &mut self.sites[i];
        let child = common::http_server(&s.ns, &s.entry, 80, &root);
        s.procs.push(child);
    }

    /// Waits until site `i`'s app answers the client, so that the nodes
    /// start from a settled state.
    fn app_ready(&self, i: usize) {
        let url = format!("http://{}/", self.sites[i].entry);
        self.wait(&format!("{}'s app", self.sites[i].name), || {
            let ok = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.client,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                ])
                .args(["-m", "1", &url])
                .status()
                .is_ok_and(|s| s.success());
            if ok { Ok(()) } else { Err("not yet".into()) }
        });
    }

    /// `halo run` on the site's namespace with `config`, logging to
    /// `<site>.log`.
    fn halo(&mut self, i: usize, config: &str) {
        let name = self.sites[i].name;
        let file = self.dir.join(format!("{name}.toml"));
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let s = &mut self.sites[i];
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &s.ns,
                env!("CARGO_BIN_EXE_halo"),
                "run",
                "-c",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        s.procs.push(child);
    }

    /// A k8gb-style peer: an authoritative server (Debian's unbound with a
    /// static local zone, as k8gb's CoreDNS serves its zone) that answers
    /// `localtargets-app` with the site's entry address and knows nothing
    /// of `probes-` names.
    fn k8gb_style(&mut self, i: usize) -> usize {
        let s = &self.sites[i];
        let conf = self.dir.join(format!("{}-unbound.conf", s.name));
        std::fs::write(
            &conf,
            format!(
                "server:\n  interface: {dns}\n  port: 53\n  access-control: 0.0.0.0/0 allow\n  \
                 do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  \
                 use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  \
                 local-zone: \"{ZONE}.\" static\n  \
                 local-data: \"localtargets-app.{ZONE}. 5 IN A {entry}\"\n",
                dns = s.dns,
                entry = s.entry,
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &s.ns, "unbound", "-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = &mut self.sites[i];
        s.procs.push(child);
        s.procs.len() - 1
    }

    /// The config of site `i`'s node: its own endpoint follows its app (a
    /// pool checking it), the others' follow their sites and the probes.
    fn config(&self, i: usize, probes: bool) -> String {
        let me = &self.sites[i];
        let mut peers = Vec::new();
        let mut endpoints = String::new();
        for s in &self.sites {
            endpoints.push_str(&format!(
                "    [[gslb.service.endpoint]]\n    address = \"{}\"\n    site = \"{}\"\n",
                s.entry, s.name
            ));
            if s.name == me.name {
                endpoints.push_str("    health = { pool = \"app\" }\n");
            } else {
                peers.push(format!(
                    "{{ address = \"{}:53\", site = \"{}\" }}",
                    s.dns, s.name
                ));
            }
        }
        let sites: Vec<String> = self
            .sites
            .iter()
            .map(|s| format!("\"{}\"", s.name))
            .collect();
        let probe = if probes {
            "  [gslb.probe]\n  type = \"http\"\n  port = 80\n  interval = \"500ms\"\n  \
             timeout = \"250ms\"\n  rise = 1\n  fall = 2\n"
        } else {
            ""
        };
        format!(
            r#"[node]
name = "{name}-lb-1"
site = "{name}"
[[pool]]
name = "app"
  [pool.check]
  type = "http"
  interval = "200ms"
  rise = 1
  fall = 2
  [[pool.server]]
  name = "app-0"
  address = "{entry}:80"
[gslb]
zone = "{ZONE}"
listen = ["{dns}:53"]
sites = [{sites}]
peers = [{peers}]
peer_interval = "500ms"
peer_stale_after = "4s"
{probe}  [[gslb.service]]
  name = "app"
  ttl = "2s"
{endpoints}"#,
            name = me.name,
            entry = me.entry,
            dns = me.dns,
            sites = sites.join(", "),
            peers = peers.join(", "),
        )
    }

    /// What site `i`'s node answers for `app.<zone>`: the addresses, sorted
    /// and joined, or "no answer".
    fn ask(&self, i: usize) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, "dig", "+short", "+time=1"])
            .args(["+tries=1", &format!("@{}", self.sites[i].dns)])
            .arg(format!("app.{ZONE}"))
            .arg("A")
            .output()
            .unwrap();
        if !out.status.success() {
            return "no answer".into();
        }
        let mut a: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        a.sort();
        a.join(" ")
    }

    /// The entry addresses of `names`, as `ask` joins them.
    fn entries(&self, names: &[&str]) -> String {
        let mut a: Vec<String> = names
            .iter()
            .map(|n| self.sites[self.site(n)].entry.clone())
            .collect();
        a.sort();
        a.join(" ")
    }

    /// Drops what namespaces `a` and `b` send each other at `a`'s or
    /// `b`'s addresses among `which` ("dns", "entry").
    fn cut(&self, a: usize, b: usize, which: &[&str]) {
        for (from, to) in [(a, b), (b, a)] {
            let t = &self.sites[to];
            let addrs: Vec<&str> = which
                .iter()
                .map(|w| {
                    if *w == "dns" {
                        t.dns.as_str()
                    } else {
                        t.entry.as_str()
                    }
                })
                .collect();
            let ns = &self.sites[from].ns;
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "nft", "add", "table", "inet", "cut"])
                .status();
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "add", "chain", "inet", "cut", "out",
                ])
                .args(["{ type filter hook output priority 0 ; }"])
                .status();
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "add",
                "rule",
                "inet",
                "cut",
                "out",
                "ip",
                "daddr",
                &format!("{{ {} }}", addrs.join(", ")),
                "drop",
            ]);
        }
    }

    /// Ends every cut.
    fn heal(&self) {
        for s in &self.sites {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", &s.ns, "nft", "delete", "table", "inet", "cut",
                ])
                .status();
        }
    }

    /// The whole site gone: its link to everyone else down.
    fn down(&self, i: usize) {
        sh(&[
            "ip",
            "-n",
            &self.bridge,
            "link",
            "set",
            &self.sites[i].port,
            "down",
        ]);
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.sites[i].name)))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut o = String::new();
        for (i, s) in self.sites.iter().enumerate() {
            let log = self.log(i);
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            o.push_str(&format!("--- {} (last lines, newest first)\n", s.name));
            for l in tail {
                o.push_str(l);
                o.push('\n');
            }
        }
        o
    }

    /// Polls `f` until it holds, or fails with `what` and the logs. (The
    /// pause between polls is a poll interval, not a synchronisation.)
    #[allow(
        clippy::disallowed_methods,
        reason = "real processes: a wall-clock deadline"
    )]
    fn wait(&self, what: &str, mut f: impl FnMut() -> Result<(), String>) -> Duration {
        let start = Instant::now();
        loop {
            let Err(why) = f() else {
                return start.elapsed();
            };
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}: {why}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node in `nodes` answers `want`.
    fn converge(&self, nodes: &[usize], want: &str) -> Duration {
        self.wait(want, || {
            let got: Vec<String> = nodes.iter().map(|i| self.ask(*i)).collect();
            if got.iter().all(|g| g == want) {
                Ok(())
            } else {
                Err(format!("answers {got:?}"))
            }
        })
    }

    /// Asks `nodes` for `window`, about three times a second each, and
    /// returns every distinct answer each gave, in order of change.
    #[allow(clippy::disallowed_methods, reason = "observing answers over time")]
    fn watch(&self, nodes: &[usize], window: Duration) -> Vec<Vec<String>> {
        let mut seen: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
        let start = Instant::now();
        let mut polls = 0;
        while start.elapsed() < window || polls < 30 {
            for (k, i) in nodes.iter().enumerate() {
                let a = self.ask(*i);
                if seen[k].last() != Some(&a) {
                    seen[k].push(a);
                }
            }
            polls += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        seen
    }

    /// Waits for the verdict line of site `i` that takes `address` out,
    /// and returns it.
    fn withdrawn_line(&self, i: usize, address: &str) -> String {
        let mut line = String::new();
        self.wait(
            &format!("{}'s verdict on {address}", self.sites[i].name),
            || {
                let log = self.log(i);
                match log.lines().rev().find(|l| {
                    l.contains("GSLB verdict")
                        && l.contains(&format!("endpoint={address} "))
                        && l.contains("up=false")
                }) {
                    Some(l) => {
                        line = l.to_owned();
                        Ok(())
                    }
                    None => Err("no such line yet".into()),
                }
            },
        );
        line
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        for s in &mut self.sites {
            for child in &mut s.procs {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in self
            .sites
            .iter()
            .map(|s| &s.ns)
            .chain([&self.client, &self.bridge])
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tools_present(test: &str) -> bool {
    can_run(test)
        && common::have("/usr/bin/dig", "bind9-dnsutils")
        && common::have("/usr/sbin/nft", "nftables")
}

/// Three halo sites, in order: a partition of two sites' DNS nodes changes
/// nothing, a partition that also cuts a site's entry from the two others
/// withdraws it there (and the cut-off site answers only itself), the heal
/// brings it back without flapping, and a whole-site outage leaves every
/// surviving answer on the probes' word, before the site's last answer is
/// stale.
#[test]
fn three_sites_partitions_heal_and_whole_site_outage() {
    if !tools_present("three_sites_partitions_heal_and_whole_site_outage") {
        return;
    }
    let mut fed = Fed::new("a", &["east", "west", "north"]);
    let (east, west, north) = (0, 1, 2);
    for i in 0..3 {
        fed.app(i);
        fed.app_ready(i);
        let c = fed.config(i, true);
        fed.halo(i, &c);
    }
    let all = fed.entries(&["east", "west", "north"]);
    fed.converge(&[east, west, north], &all);

    // 1. East's and west's DNS nodes cannot reach each other; clients and
    //    probes reach every site. Twice peer_stale_after: no answer changes.
    fed.cut(east, west, &["dns"]);
    let seen = fed.watch(&[east, west, north], Duration::from_secs(8));
    for (node, answers) in ["east", "west", "north"].iter().zip(&seen) {
        assert_eq!(
            answers,
            &vec![all.clone()],
            "{node}'s answers changed during a DNS-only partition\n{}",
            fed.logs()
        );
    }
    // West kept east because the probes reach it, its site being silent.
    let log = fed.log(west);
    assert!(
        log.lines().any(|l| l.contains("GSLB verdict")
            && l.contains("endpoint=192.0.2.21 ")
            && l.contains("a majority of probes reaches it")),
        "west did not judge the silent east by its probes\n{}",
        fed.logs()
    );
    fed.heal();

    // 2. East is cut from west and north entirely (DNS and entry); clients
    //    still reach everyone. The majority withdraws east; east, which
    //    reaches only itself, answers only itself: never empty.
    fed.cut(east, west, &["dns", "entry"]);
    fed.cut(east, north, &["dns", "entry"]);
    let rest = fed.entries(&["west", "north"]);
    fed.converge(&[west, north], &rest);
    fed.converge(&[east], &fed.entries(&["east"]));

    // 3. The heal: each answer changes once, back to every site, and then
    //    holds (30 polls over 10 s at the least).
    fed.heal();
    let seen = fed.watch(&[east, west, north], Duration::from_secs(10));
    for (node, answers) in ["east", "west", "north"].iter().zip(&seen) {
        assert_eq!(
            answers.last(),
            Some(&all),
            "{node} did not come back to every site\n{}",
            fed.logs()
        );
        assert!(
            answers.len() <= 2,
            "{node} flapped after the heal: {answers:?}\n{}",
            fed.logs()
        );
    }

    // 4. The whole of east goes at once: DNS node, entry address, app.
    fed.down(east);
    let took = fed.converge(&[west, north], &rest);
    for i in [west, north] {
        let line = fed.withdrawn_line(i, "192.0.2.21");
        assert!(
            line.contains("site_dns=Unreachable")
                && line.contains("a majority of probes does not reach it"),
            "{} withdrew east on something else than the probes: {line}",
            fed.sites[i].name
        );
    }
    // And east stays out while it is gone (past peer_stale_after too).
    let seen = fed.watch(&[west, north], Duration::from_secs(6));
    for (node, answers) in ["west", "north"].iter().zip(&seen) {
        assert_eq!(
            answers,
            &vec![rest.clone()],
            "{node} brought east back while it was gone\n{}",
            fed.logs()
        );
    }
    #[allow(clippy::print_stderr, reason = "the measured time, for the reader")]
    {
        eprintln!(
            "whole-site outage: east left west's and north's answers in {} ms \
             (probes: 500 ms, timeout 250 ms, fall 2; peer_stale_after 4 s)",
            took.as_millis()
        );
    }
}

/// Two halo sites and a k8gb-style third one (unbound serving a static
/// `localtargets-app`, no `probes-` records). The k8gb-style site's DNS
/// going silent while its app serves keeps it (the two halo sites' probes
/// reach it) past peer_stale_after; its whole-site outage withdraws it on
/// the probes. Then the two halo sites alone, cut from each other
/// entirely: each answers its own site, never nothing (the two-site
/// behaviour, docs/operations.md).
#[test]
fn a_k8gb_style_peer_and_a_two_site_cut() {
    if !tools_present("a_k8gb_style_peer_and_a_two_site_cut")
        || !common::have("/usr/sbin/unbound", "unbound")
    {
        return;
    }
    let mut fed = Fed::new("b", &["east", "west", "north"]);
    let (east, west, north) = (0, 1, 2);
    for i in [east, west] {
        fed.app(i);
        fed.app_ready(i);
        let c = fed.config(i, true);
        fed.halo(i, &c);
    }
    fed.app(north);
    fed.app_ready(north);
    let unbound = fed.k8gb_style(north);
    let all = fed.entries(&["east", "west", "north"]);
    fed.converge(&[east, west], &all);

    // The k8gb-style node stops; its app serves on. 8 s, twice
    // peer_stale_after: east and west keep north.
    {
        let p = &mut fed.sites[north].procs[unbound];
        let _ = p.kill();
        let _ = p.wait();
    }
    let seen = fed.watch(&[east, west], Duration::from_secs(8));
    for (node, answers) in ["east", "west"].iter().zip(&seen) {
        assert_eq!(
            answers,
            &vec![all.clone()],
            "{node} dropped the silent k8gb-style site whose app serves\n{}",
            fed.logs()
        );
    }

    // North goes entirely: the probes withdraw it.
    fed.down(north);
    let both = fed.entries(&["east", "west"]);
    fed.converge(&[east, west], &both);
    for i in [east, west] {
        let line = fed.withdrawn_line(i, "192.0.2.23");
        assert!(
            line.contains("a majority of probes does not reach it"),
            "{} withdrew north on something else than the probes: {line}",
            fed.sites[i].name
        );
    }

    // Two sites left, cut from each other entirely: one vantage point each
    // side, and each answers what it reaches, itself.
    fed.cut(east, west, &["dns", "entry"]);
    fed.converge(&[east], &fed.entries(&["east"]));
    fed.converge(&[west], &fed.entries(&["west"]));
    fed.heal();
    fed.converge(&[east, west], &both);
}

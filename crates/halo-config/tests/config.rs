//! halo-config against files: what passes, what every error says and where.

use std::path::Path;
use std::time::Duration;

use halo_config::{
    Balance, CheckKind, ConfigError, EndpointHealth, HostPattern, InitialState, ServerAddress,
    Strategy, VrrpChecksum, VrrpVersion, WhenAllDown,
};

fn parse(text: &str) -> Result<halo_config::Config, ConfigError> {
    halo_config::parse(Path::new("halo.toml"), text)
}

/// The rendered diagnostics, one per line.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors, config was accepted:\n{text}"),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL_POOL: &str = r#"
[[listener]]
name = "web"
bind = ["127.0.0.1:8080"]
default_pool = "p"

[[pool]]
name = "p"
  [[pool.server]]
  name = "a"
  address = "192.0.2.10:80"
"#;

#[test]
fn every_example_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = halo_config::load(&path) {
                panic!("{} does not validate:\n{e}", path.display());
            }
            n += 1;
        }
    }
    assert!(
        n >= 4,
        "expected the examples, found {n} files in {}",
        dir.display()
    );
}

#[test]
fn four_kinds_of_error_reported_at_once_with_positions() {
    // Shared with the binary's CLI test, which checks the same file through `halo check`.
    let text = include_str!("data/four-errors.toml");
    assert_eq!(
        errors(text),
        [
            r#"halo.toml:4:16: no pool named "routr80"; did you mean "router80"?"#,
            r#"halo.toml:9:14: `interval`: bad duration "2 sekunden" (unknown time unit "sekunden", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write a number and a unit, such as "150ms", "2s", "1m" or "1h""#,
            "halo.toml:13:3: unknown key `wieght` in [[pool.server]]; did you mean `weight`?",
            "halo.toml:18:8: `vrid` = 300 is out of range; write a whole number from 1 to 255",
        ]
    );
}

/// One bad thing per case: (what to add to a valid file, expected start of the
/// single diagnostic, including its position within the added text's line).
#[test]
fn each_rule_has_a_located_error() {
    let cases: &[(&str, &str)] = &[
        (
            "[[pool]]\nname = \"q\"\n",
            r#"1:1: pool "q" has no server; add a [[pool.server]]"#,
        ),
        (
            "[[pool]]\nname = \"p\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            r#"2:8: duplicate pool name "p""#,
        ),
        (
            "[[pool]]\nname = \"q\"\nbalance = \"roundrobin\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            r#"3:11: `balance`: unknown value "roundrobin"; did you mean "round-robin"?"#,
        ),
        (
            "[[pool]]\nname = \"q\"\nretry_on = [\"emtpy-response\"]\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            r#"3:13: `retry_on`: unknown value "emtpy-response"; did you mean "empty-response"?"#,
        ),
        (
            "[[pool]]\nname = \"q\"\n[[pool.server]]\nname=\"x\"\naddress=\"nohost\"\n",
            r#"5:9: `address` "nohost" is not ip:port or hostname:port"#,
        ),
        (
            "[[pool]]\nname = \"q\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\nweight = 257\n",
            "6:10: `weight` = 257 is out of range; write a whole number from 0 to 256",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.check]\nrise = 0\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "4:8: `rise` = 0 is out of range",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.passive]\nobserve = \"layer44\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            r#"4:11: `observe`: unknown value "layer44"; did you mean "layer4"?"#,
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.passive]\nmax_ejection_percent = 101\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "4:24: `max_ejection_percent` = 101 is out of range; write a whole number from 0 to 100",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.check]\npath = \"/h\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "4:8: `path` applies to HTTP checks only; add type = \"http\"",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.check]\ntype = \"http\"\nexpect_status = \"200-abc\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "5:17: `expect_status`: \"200-abc\" is not a status or range",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:8080\"]\ndefault_pool = \"p\"\n",
            "3:9: address 127.0.0.1:8080 is already bound by listener \"web\"",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"0.0.0.0:8080\"]\ndefault_pool = \"p\"\n",
            "3:9: address 0.0.0.0:8080 is already bound by listener \"web\"",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:81\"]\n",
            "1:1: listener \"w2\" has neither routes nor a `default_pool`",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:81\"]\nprotocol = \"tcp\"\ndefault_pool = \"p\"\n[[listener.route]]\nhost = \"a.example\"\npool = \"p\"\n",
            "6:1: listener \"w2\" is tcp and cannot route",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:81\"]\n[[listener.route]]\nhost = \"a.example:30800\"\npool = \"p\"\n",
            "5:8: route host \"a.example:30800\" has a port; host matching ignores the port; write \"a.example\"",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:81\"]\n[[listener.route]]\npath_prefix = \"api\"\npool = \"p\"\n",
            "5:15: `path_prefix` \"api\" does not start with '/'; write \"/api\"",
        ),
        (
            "[[listener]]\nname = \"w2\"\nbind = [\"127.0.0.1:81\"]\ndefault_pool = \"p\"\nprotocoll = \"tcp\"\n",
            "5:1: unknown key `protocoll` in [[listener]]; did you mean `protocol`?",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\nadvert_interval = \"5ms\"\n",
            "6:19: `advert_interval` \"5ms\" is out of range; VRRPv3 sends centiseconds",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\nversion = 2\naddresses = [\"192.0.2.1/24\"]\nadvert_interval = \"1500ms\"\n",
            "7:19: `advert_interval` \"1500ms\" is out of range; VRRPv2 sends whole seconds",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\npriority = 0\naddresses = [\"192.0.2.1/24\"]\n",
            "5:12: `priority` = 0 is out of range; write a whole number from 1 to 255",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\nversion = 2\naddresses = [\"2001:db8::1/64\"]\n",
            "6:13: VRRPv2 carries IPv4 only",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\nunicast_source = \"192.0.2.2\"\n",
            "6:18: `unicast_source` without `unicast_peers`",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\ntrack = [{ listener = \"webb\" }]\n",
            "6:23: no listener named \"webb\"; did you mean \"web\"?",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\n[[vip]]\nname = \"w\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.2/24\"]\n",
            "9:8: vrid 1 on eth0 is already used by vip \"v\"",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\nchecksum = \"rfc5798\"\n",
            "6:12: `checksum`: unknown value \"rfc5798\"; did you mean \"rfc9568\"?",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\ngarp_repeat = 0\n",
            "6:15: `garp_repeat` = 0 is out of range; write a whole number from 1 to 100",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\n[[vip_group]]\nname = \"g\"\nvips = [\"v\", \"vv\"]\n",
            "8:14: no vip named \"vv\"; did you mean \"v\"?",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\n[[vip_group]]\nname = \"g\"\nvips = [\"v\"]\n[[vip_group]]\nname = \"h\"\nvips = [\"v\"]\n",
            "11:9: vip \"v\" is already in vip_group \"g\"; put each [[vip]] in one group at most",
        ),
        (
            "[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 1\naddresses = [\"192.0.2.1/24\"]\ntrack = [{ tcp = \"127.0.0.1:80\", weight = -20 }]\n[[vip_group]]\nname = \"g\"\nvips = [\"v\"]\n",
            "6:43: vip \"v\" is in vip_group \"g\": a weighted track entry would move it without the rest of the group; remove `weight`",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"s\"\nstrategy = \"failover\"\nfailover_order = [\"east\"]\n[[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\n",
            "6:19: `failover_order` names unknown site \"east\"",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"s\"\nttl = \"1500ms\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\n",
            "5:7: `ttl` \"1500ms\" is not a whole number of seconds",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"s\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\nhealth = { pool = \"nope\" }\n",
            "7:19: no pool named \"nope\"",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"s\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\nhealth = { check = { type = \"tcp\" } }\n",
            "7:20: this check has no port to connect to",
        ),
        (
            "[gslb]\nzone = \"g.example\"\npeers = [\"192.0.2.53\"]\n[gslb.probe]\ntype = \"tcp\"\n[[gslb.service]]\nname = \"s\"\n",
            "4:1: this check has no port to connect to",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.check]\ntype = \"https\"\n[[pool.server]]\nname = \"s\"\naddress = \"192.0.2.1:443\"\n",
            "3:1: type = \"https\" is for GSLB probes",
        ),
        (
            "[[pool]]\nname = \"q\"\n[pool.check]\ntype = \"http\"\n[pool.check.tls]\nverify = false\n[[pool.server]]\nname = \"s\"\naddress = \"192.0.2.1:443\"\n",
            "5:1: a `tls` table belongs to GSLB probes only",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.geo]]\ncidr = \"198.51.100.7/24\"\nsite = \"default\"\n",
            "4:8: `cidr` \"198.51.100.7/24\" has host bits set; write \"198.51.100.0/24\"",
        ),
        (
            "[gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"s\"\n",
            "3:1: service \"s\" has no endpoint and no peers to learn one from",
        ),
        (
            "[admin]\nlisten = \"localhost\"\n",
            "2:10: `listen`: \"localhost\" is not an ip:port address",
        ),
        ("oops = [\n", "1:9: TOML syntax:"),
        (
            "[[pool]]\nname = \"q\"\n[[pool.server]]\naddress=\"192.0.2.1:1\"\n",
            "3:1: missing key `name` in [[pool.server]]; add `name = ...`",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"https\"\n",
            "1:1: https listener \"l\" has no certificate; add [[listener.certificate]]",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\n[[listener.certificate]]\ncert = \"c.pem\"\nkey = \"c.key\"\n",
            "5:1: listener \"l\" is http and terminates no TLS",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"https\"\n[[listener.certificate]]\ncert = \"a.pem\"\nkey = \"a.key\"\ndefault = true\n[[listener.certificate]]\ncert = \"b.pem\"\nkey = \"b.key\"\ndefault = true\n",
            "10:1: listener \"l\" has a second default certificate",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"https\"\n[listener.tls]\nmin_version = \"1.1\"\n[[listener.certificate]]\ncert = \"a.pem\"\nkey = \"a.key\"\n",
            "7:15: `min_version` \"1.1\" is not a TLS version halo speaks",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"tls-passthrough\"\n[listener.tls]\nalpn = [\"h2\"]\n",
            "7:8: a tls-passthrough listener does not negotiate ALPN",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"https\"\n[listener.tls]\nalpn = [\"spdy/3\"]\n[[listener.certificate]]\ncert = \"a.pem\"\nkey = \"a.key\"\n",
            "7:9: ALPN protocol \"spdy/3\" is not served",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\n[listener.tls]\nhandshake_timeout = \"1s\"\n",
            "5:1: listener \"l\" is http and has no TLS to set",
        ),
        (
            "[[listener]]\nname = \"l\"\nbind = [\"127.0.0.1:0\"]\ndefault_pool = \"p\"\nprotocol = \"https\"\n[[listener.certificate]]\ncert = \"a.pem\"\nkey = \"a.key\"\nnames = [\"a.example:443\"]\n",
            "9:10: route host \"a.example:443\" has a port",
        ),
        (
            "[[pool]]\nname = \"t\"\n[pool.tls]\nverify = false\nca_file = \"ca.pem\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "5:11: `ca_file` is set but `verify = false` ignores it",
        ),
        (
            "[[pool]]\nname = \"t\"\n[pool.tls]\ncert = \"c.pem\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "4:8: a client `cert` without its `key`",
        ),
        (
            "[[pool]]\nname = \"t\"\n[pool.tls]\nsni = \"*.internal\"\n[[pool.server]]\nname=\"x\"\naddress=\"192.0.2.1:1\"\n",
            "4:7: `sni` is one name, not a wildcard",
        ),
    ];
    let base_lines = MINIMAL_POOL.lines().count();
    for (added, expected) in cases {
        let text = format!("{MINIMAL_POOL}{added}");
        let errs = errors(&text);
        assert_eq!(
            errs.len(),
            1,
            "case {added:?}: expected one error, got {errs:#?}"
        );
        // Positions in `expected` are relative to the added text.
        let (line, rest) = expected.split_once(':').unwrap();
        let want = format!(
            "halo.toml:{}:{rest}",
            line.parse::<usize>().unwrap() + base_lines
        );
        assert!(
            errs[0].starts_with(&want),
            "case {added:?}:\n  got  {}\n  want {want}...",
            errs[0]
        );
    }
}

#[test]
fn defaults_follow_the_anchors() {
    let text = format!(
        "{MINIMAL_POOL}\n[pool.check]\n[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.20\"]\n[gslb]\nzone = \"Global.Example.COM.\"\n[[gslb.service]]\nname = \"app\"\n[[gslb.service.endpoint]]\naddress = \"192.0.2.20\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        (c.node.name.as_str(), c.node.site.as_str()),
        ("halo", "default")
    );

    let p = &c.pools[0];
    assert_eq!(p.balance, Balance::RoundRobin);
    assert_eq!(p.retries, 3);
    assert!(!p.use_all_backups);
    assert_eq!(p.timeouts.connect, Duration::from_secs(5));
    assert_eq!(p.timeouts.queue, p.timeouts.connect);
    assert_eq!(p.timeouts.tunnel, Duration::from_secs(3600));
    assert_eq!(p.passive.error_limit, 10);
    // Passive health counts failed connects only, and never empties a pool.
    assert_eq!(p.passive.observe, halo_config::Observe::Layer4);
    assert_eq!(p.passive.max_ejection_percent, 50);
    // A returning GSLB endpoint is held for the service's TTL.
    let svc = &c.gslb.as_ref().unwrap().services[0];
    assert_eq!(svc.hold_down, Duration::from_secs(u64::from(svc.ttl)));
    assert_eq!(p.retry_on, halo_config::RetryOn::default());
    assert!(p.retry_on.conn_failure && p.retry_on.empty_response);
    assert!(!p.retry_on.junk_response && !p.retry_on.response_timeout);
    let s = &p.servers[0];
    assert_eq!((s.weight, s.max_conns, s.backup), (1, 0, false));
    assert_eq!(
        s.address,
        ServerAddress::Socket("192.0.2.10:80".parse().unwrap())
    );

    // HAProxy: bare `check` is TCP, inter 2s, rise 2, fall 3; fastinter and
    // downinter default to inter; starts UP and falls at the first failure.
    let check = p.check.as_ref().unwrap();
    assert_eq!(check.kind, CheckKind::Tcp);
    assert_eq!(check.interval, Duration::from_secs(2));
    assert_eq!(
        (check.fast_interval, check.down_interval),
        (check.interval, check.interval)
    );
    assert_eq!((check.rise, check.fall), (2, 3));
    assert_eq!(check.initial, InitialState::Up);

    // RFC 5798 defaults; a bare address is a host route.
    let v = &c.vips[0];
    assert_eq!(
        (v.priority, v.version, v.preempt),
        (100, VrrpVersion::V3, true)
    );
    assert_eq!(v.advert_interval, Duration::from_secs(1));
    assert_eq!(v.addresses[0].to_string(), "192.0.2.20/32");
    assert!(v.unicast.is_none());
    // keepalived's checksum form and GARP defaults.
    assert_eq!(v.checksum, VrrpChecksum::PseudoHeader);
    assert_eq!(
        (v.garp.repeat, v.garp.delay, v.garp.refresh),
        (5, Duration::from_secs(5), Duration::ZERO)
    );

    let g = c.gslb.as_ref().unwrap();
    assert_eq!(g.zone, "global.example.com");
    assert_eq!(g.listen, ["0.0.0.0:53".parse().unwrap()]);
    assert_eq!(
        (g.default_ttl, g.peer_interval),
        (30, Duration::from_secs(1))
    );
    let svc = &g.services[0];
    assert_eq!(
        (svc.strategy, svc.when_all_down, svc.ttl),
        (Strategy::RoundRobin, WhenAllDown::All, 30)
    );
    assert_eq!(svc.endpoints[0].site, "default");
    assert_eq!(svc.endpoints[0].health, EndpointHealth::Always);
}

#[test]
fn http_check_and_host_patterns() {
    let text = format!(
        "{MINIMAL_POOL}[pool.check]\ntype = \"http\"\npath = \"/healthz\"\nexpect_status = \"200-299, 302\"\n\
         [[listener]]\nname = \"v\"\nbind = [\"127.0.0.1:81\"]\n\
         [[listener.route]]\nhost = \"*.Apps.Example.com\"\npool = \"p\"\n\
         [[listener.route]]\nhost = \"grafana.apps.example.com\"\npath_prefix = \"/api\"\npool = \"p\"\n"
    );
    let c = parse(&text).unwrap();
    let CheckKind::Http(http) = &c.pools[0].check.as_ref().unwrap().kind else {
        panic!("not http")
    };
    assert_eq!(
        (http.method.as_str(), http.path.as_str()),
        ("GET", "/healthz")
    );
    assert!(http.expect_status.contains(204) && http.expect_status.contains(302));
    assert!(!http.expect_status.contains(301) && !http.expect_status.contains(500));

    let routes = &c.listeners[1].routes;
    let wild = routes[0].host.as_ref().unwrap();
    assert_eq!(*wild, HostPattern::Wildcard(".apps.example.com".into()));
    assert!(wild.matches("grafana.apps.example.com"));
    assert!(wild.matches("a.b.apps.example.com"));
    assert!(!wild.matches("apps.example.com"));
    assert!(!wild.matches("xapps.example.com"));
    assert_eq!(routes[1].path_prefix, "/api");
}

#[test]
fn weighted_strategy_and_track_weights() {
    let text = format!(
        "{MINIMAL_POOL}[[vip]]\nname = \"v\"\ninterface = \"eth0\"\nvrid = 9\naddresses = [\"192.0.2.20/24\"]\n\
         track = [{{ listener = \"web\" }}, {{ tcp = \"127.0.0.1:80\", weight = -50 }}]\n\
         [gslb]\nzone = \"g.example\"\n[[gslb.service]]\nname = \"w\"\nstrategy = \"weighted\"\nmax_answers = 2\n\
         [[gslb.service.endpoint]]\naddress = \"192.0.2.1\"\nweight = 1\n[[gslb.service.endpoint]]\naddress = \"192.0.2.2\"\nweight = 4\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.vips[0].track[0].weight, None);
    assert_eq!(c.vips[0].track[1].weight, Some(-50));
    let svc = &c.gslb.unwrap().services[0];
    assert_eq!(svc.strategy, Strategy::Weighted { max_answers: 2 });
    assert_eq!(svc.endpoints[1].weight, 4);
}

#[test]
fn gslb_probe_applies_to_every_service_unless_one_has_its_own() {
    let text = "[gslb]\nzone = \"g.example\"\npeers = [\"192.0.2.53\"]\n\
         [gslb.probe]\ntype = \"tcp\"\nport = 443\ninterval = \"500ms\"\nfall = 2\n\
         [[gslb.service]]\nname = \"a\"\n\
         [[gslb.service]]\nname = \"b\"\n[gslb.service.probe]\ntype = \"http\"\nport = 8080\npath = \"/ready\"\n";
    let c = parse(text).unwrap();
    let g = c.gslb.unwrap();
    let all = g.probe.as_ref().expect("[gslb.probe] kept");
    assert_eq!(all.check.port, Some(443));
    assert_eq!(all.check.interval, Duration::from_millis(500));
    assert_eq!(all.check.fall, 2);
    assert_eq!(all.tls, None);
    assert_eq!(g.services[0].probe.as_ref(), Some(all));
    let own = g.services[1].probe.as_ref().unwrap();
    assert_eq!(own.check.port, Some(8080));
    // An HTTP probe asks for the service by its name.
    assert!(matches!(&own.check.kind,
        CheckKind::Http(h) if h.path == "/ready" && h.host.as_deref() == Some("b.g.example")));
    // Without a probe table nothing is probed.
    let c = parse(
        "[gslb]\nzone = \"g.example\"\npeers = [\"192.0.2.53\"]\n[[gslb.service]]\nname = \"a\"\n",
    )
    .unwrap();
    assert!(c.gslb.unwrap().services[0].probe.is_none());
}

#[test]
fn https_probes_ask_for_the_service_by_name() {
    let text = "[gslb]\nzone = \"g.example\"\npeers = [\"192.0.2.53\"]\n\
         [gslb.probe]\ntype = \"https\"\nport = 443\npath = \"/healthz\"\n\
         [[gslb.service]]\nname = \"a\"\n\
         [[gslb.service]]\nname = \"b\"\n[gslb.service.probe]\ntype = \"http\"\nport = 8443\nhost = \"b.internal\"\n\
         [gslb.service.probe.tls]\nca_file = \"ca.pem\"\nsni = \"b.internal\"\n";
    let c = halo_config::parse(Path::new("/etc/halo/halo.toml"), text).unwrap();
    let g = c.gslb.unwrap();
    // As [gslb.probe] says; each service's copy names the service.
    assert_eq!(g.probe.as_ref().unwrap().tls.as_ref().unwrap().sni, None);
    let a = g.services[0].probe.as_ref().unwrap();
    let tls = a.tls.as_ref().expect("https is TLS");
    assert!(tls.verify);
    assert_eq!(tls.ca_file, None);
    assert_eq!(tls.sni.as_deref(), Some("a.g.example"));
    assert!(
        matches!(&a.check.kind, CheckKind::Http(h) if h.host.as_deref() == Some("a.g.example") && h.path == "/healthz")
    );
    // What a service writes itself stands; files are next to the config.
    let b = g.services[1].probe.as_ref().unwrap();
    let tls = b.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("b.internal"));
    assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/etc/halo/ca.pem")));
    assert!(matches!(&b.check.kind, CheckKind::Http(h) if h.host.as_deref() == Some("b.internal")));
}

#[test]
fn unreadable_file_is_a_read_error() {
    let err = halo_config::load(Path::new("/nonexistent/halo.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/halo.toml: cannot read")
    );
}

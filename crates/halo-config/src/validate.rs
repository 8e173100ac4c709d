//! Stage 2: [`RawConfig`] → [`Config`]. Checks every range and cross-reference,
//! collecting all problems before giving up, and fills in the defaults (which
//! follow HAProxy, RFC 5798 and k8gb unless those are unsafe).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use toml::Spanned;

use crate::error::Report;
use crate::raw::{
    RawBalance, RawCheck, RawCheckType, RawChecksum, RawConfig, RawEndpoint, RawGslb, RawHealth,
    RawInitial, RawListener, RawObserve, RawPassive, RawPeer, RawPool, RawPoolTls, RawProtocol,
    RawRecord, RawRecordType, RawRetryOn, RawSendProxy, RawServer, RawService, RawStrategy,
    RawTimeouts, RawTtlCheck, RawVip, RawVipGroup, RawWhenAllDown, S,
};
use crate::types::{
    Admin, Balance, Certificate, Check, CheckKind, Config, Endpoint, EndpointHealth, Garp, GeoRule,
    Gslb, HostPattern, HttpCheck, InitialState, IpNet, Listener, ListenerTls, Node, Observe,
    Passive, Peer, Pool, PoolTls, Probe, Protocol, RecordData, RetryOn, Route, SendProxy, Server,
    ServerAddress, Service, StaticRecord, StatusRanges, Strategy, Timeouts, TlsVersion, Track,
    TrackTarget, Unicast, Vip, VipGroup, VrrpChecksum, VrrpVersion, WhenAllDown,
};

const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
const DEFAULT_DNS_LISTEN: &str = "0.0.0.0:53";
/// RFC 2181 §8: TTLs are 31-bit.
const MAX_TTL: u64 = (1 << 31) - 1;

pub(crate) fn validate(
    report: &mut Report<'_>,
    raw: &RawConfig,
    base_dir: &Path,
) -> Option<Config> {
    let mut v = Validator { r: report };
    let node = v.node(raw.node.as_ref());
    let admin = raw.admin.as_ref().and_then(|a| v.admin(a, base_dir));
    let pools: Vec<Pool> = raw
        .pool
        .iter()
        .filter_map(|p| v.pool(p, base_dir))
        .collect();
    v.unique_names(raw.pool.iter().map(|p| &p.get_ref().name), "pool");

    let pool_names: HashSet<&str> = raw
        .pool
        .iter()
        .map(|p| p.get_ref().name.get_ref().as_str())
        .collect();
    let listeners: Vec<Listener> = raw
        .listener
        .iter()
        .filter_map(|l| v.listener(l, &pool_names, base_dir))
        .collect();
    v.unique_names(raw.listener.iter().map(|l| &l.get_ref().name), "listener");

    let listener_names: HashSet<&str> = raw
        .listener
        .iter()
        .map(|l| l.get_ref().name.get_ref().as_str())
        .collect();
    let vips: Vec<Vip> = raw
        .vip
        .iter()
        .filter_map(|x| v.vip(x, &listener_names))
        .collect();
    v.unique_names(raw.vip.iter().map(|x| &x.get_ref().name), "vip");
    v.unique_vrids(&raw.vip);
    let vip_names: HashSet<&str> = raw
        .vip
        .iter()
        .map(|x| x.get_ref().name.get_ref().as_str())
        .collect();
    let vip_groups = v.vip_groups(&raw.vip_group, &raw.vip, &vip_names);

    let gslb = raw
        .gslb
        .as_ref()
        .and_then(|g| v.gslb(g, &node, &pool_names, base_dir));
    v.unique_binds(raw, admin.as_ref(), gslb.as_ref());

    if !v.r.diags.is_empty() {
        return None;
    }
    Some(Config {
        node,
        admin,
        listeners,
        pools,
        vips,
        vip_groups,
        gslb,
    })
}

struct Validator<'r, 'a> {
    r: &'r mut Report<'a>,
}

impl Validator<'_, '_> {
    // === generic values ===

    fn duration(&mut self, value: &S<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.r.error_hint(
                    value.span(),
                    format!("`{key}`: bad duration \"{}\" ({e})", value.get_ref()),
                    "write a number and a unit, such as \"150ms\", \"2s\", \"1m\" or \"1h\"",
                );
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    fn positive_duration(
        &mut self,
        value: Option<&S<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match self.duration(value, key) {
            Some(d) if d.is_zero() => {
                self.r.error_hint(
                    value.span(),
                    format!("`{key}` must be greater than zero"),
                    "write e.g. \"1s\"",
                );
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        value: Option<&S<i64>>,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        match T::try_from(n) {
            Ok(t) if range.contains(&n) => t,
            _ => {
                self.r.error_hint(
                    value.span(),
                    format!("`{key}` = {n} is out of range"),
                    format!(
                        "write a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn socket_addr(&mut self, value: &S<String>, key: &str) -> Option<SocketAddr> {
        match SocketAddr::from_str(value.get_ref().trim()) {
            Ok(a) => Some(a),
            Err(_) => {
                self.r.error_hint(
                    value.span(),
                    format!("`{key}`: \"{}\" is not an ip:port address", value.get_ref()),
                    "write e.g. \"0.0.0.0:80\", \"127.0.0.1:8080\" or \"[::]:443\"",
                );
                None
            }
        }
    }

    fn ip(&mut self, value: &S<String>, key: &str) -> Option<IpAddr> {
        match IpAddr::from_str(value.get_ref().trim()) {
            Ok(a) => Some(a),
            Err(_) => {
                self.r.error_hint(
                    value.span(),
                    format!("`{key}`: \"{}\" is not an IP address", value.get_ref()),
                    "write e.g. \"192.0.2.20\" or \"2001:db8::20\" (no port, no prefix length)",
                );
                None
            }
        }
    }

    fn name(&mut self, value: &S<String>, what: &str) -> String {
        let s = value.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.r.error_hint(
                value.span(),
                format!("{what} name \"{s}\" is not valid"),
                "use 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        s.clone()
    }

    fn unique_names<'x>(&mut self, names: impl Iterator<Item = &'x S<String>>, what: &str) {
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for n in names {
            if seen.insert(n.get_ref(), n.span()).is_some() {
                self.r.error_hint(
                    n.span(),
                    format!("duplicate {what} name \"{}\"", n.get_ref()),
                    "names must be unique; rename one",
                );
            }
        }
    }

    fn reference(&mut self, value: &S<String>, known: &HashSet<&str>, what: &str) -> String {
        let name = value.get_ref();
        if !known.contains(name.as_str()) {
            let candidates: Vec<String> = known.iter().map(|s| (*s).to_owned()).collect();
            let hint = match crate::load::closest(name, &candidates) {
                Some(best) => format!("did you mean \"{best}\"?"),
                None if candidates.is_empty() => format!("define a [[{what}]] named \"{name}\""),
                None => {
                    let mut sorted = candidates;
                    sorted.sort();
                    format!("known {what}s: {}", sorted.join(", "))
                }
            };
            self.r
                .error_hint(value.span(), format!("no {what} named \"{name}\""), hint);
        }
        name.clone()
    }

    // === [node], [admin] ===

    fn node(&mut self, raw: Option<&S<crate::raw::RawNode>>) -> Node {
        let raw = raw.map(Spanned::get_ref);
        let name = raw
            .and_then(|n| n.name.as_ref())
            .map_or_else(|| "halo".to_owned(), |n| self.name(n, "node"));
        let site = raw
            .and_then(|n| n.site.as_ref())
            .map_or_else(|| "default".to_owned(), |s| self.name(s, "site"));
        let threads = self.int(
            raw.and_then(|n| n.threads.as_ref()),
            "threads",
            0..=1024,
            0u16,
        );
        let stop_grace =
            raw.and_then(|n| n.stop_grace.as_ref())
                .map_or(Duration::from_secs(10), |g| {
                    let d = self
                        .duration(g, "stop_grace")
                        .unwrap_or(Duration::from_secs(10));
                    if d > Duration::from_secs(3600) {
                        self.r.error_hint(
                            g.span(),
                            "`stop_grace` is over an hour",
                            "write e.g. \"30s\"",
                        );
                    }
                    d
                });
        Node {
            name,
            site,
            threads,
            stop_grace,
        }
    }

    fn admin(&mut self, raw: &S<crate::raw::RawAdmin>, base_dir: &Path) -> Option<Admin> {
        let a = raw.get_ref();
        let listen = match &a.listen {
            Some(l) => self.socket_addr(l, "listen")?,
            None => DEFAULT_ADMIN.parse().ok()?,
        };
        let token_file = a.token_file.as_ref().map(|t| base_dir.join(t.get_ref()));
        let state_file = a.state_file.as_ref().map(|t| base_dir.join(t.get_ref()));
        Some(Admin {
            listen,
            token_file,
            state_file,
        })
    }

    // === [[listener]] ===

    fn listener(
        &mut self,
        raw: &S<RawListener>,
        pools: &HashSet<&str>,
        base_dir: &Path,
    ) -> Option<Listener> {
        let l = raw.get_ref();
        let name = self.name(&l.name, "listener");
        let protocol = match l.protocol.as_ref().map(|p| *p.get_ref()) {
            None | Some(RawProtocol::Http) => Protocol::Http,
            Some(RawProtocol::Https) => Protocol::Https,
            Some(RawProtocol::Tcp) => Protocol::Tcp,
            Some(RawProtocol::TlsPassthrough) => Protocol::TlsPassthrough,
        };
        if l.bind.get_ref().is_empty() {
            self.r.error_hint(
                l.bind.span(),
                format!("listener \"{name}\" binds nothing"),
                "write e.g. bind = [\"0.0.0.0:80\"]",
            );
        }
        let binds: Vec<SocketAddr> = l
            .bind
            .get_ref()
            .iter()
            .filter_map(|b| self.socket_addr(b, "bind"))
            .collect();
        let default_pool = l
            .default_pool
            .as_ref()
            .map(|p| self.reference(p, pools, "pool"));

        let mut routes = Vec::new();
        let mut seen: HashSet<(Option<HostPattern>, String)> = HashSet::new();
        for route in &l.route {
            let rr = route.get_ref();
            if protocol == Protocol::Tcp {
                self.r.error_hint(
                    route.span(),
                    format!("listener \"{name}\" is tcp and cannot route"),
                    "tcp listeners send everything to `default_pool`; use protocol = \"http\" or \"tls-passthrough\" to route by name",
                );
                continue;
            }
            let host = rr.host.as_ref().and_then(|h| self.host_pattern(h));
            if protocol == Protocol::TlsPassthrough {
                if rr.host.is_none() {
                    self.r.error_hint(
                        route.span(),
                        "a tls-passthrough route needs a `host` (the SNI name)",
                        "add host = \"app.example.com\"",
                    );
                }
                if let Some(p) = &rr.path_prefix {
                    self.r.error_hint(
                        p.span(),
                        "tls-passthrough routes cannot see paths",
                        "remove `path_prefix`",
                    );
                }
            }
            let path_prefix = match &rr.path_prefix {
                Some(p) if !p.get_ref().starts_with('/') => {
                    self.r.error_hint(
                        p.span(),
                        format!("`path_prefix` \"{}\" does not start with '/'", p.get_ref()),
                        format!("write \"/{}\"", p.get_ref()),
                    );
                    p.get_ref().clone()
                }
                Some(p) => p.get_ref().clone(),
                None => "/".to_owned(),
            };
            let pool = self.reference(&rr.pool, pools, "pool");
            if !seen.insert((host.clone(), path_prefix.clone())) {
                self.r.error_hint(
                    route.span(),
                    "duplicate route: same host and path_prefix as an earlier one",
                    "remove one of them",
                );
            }
            routes.push(Route {
                host,
                path_prefix,
                pool,
            });
        }
        if default_pool.is_none() {
            match protocol {
                Protocol::Tcp => self.r.error_hint(
                    raw.span(),
                    format!("tcp listener \"{name}\" has no `default_pool`"),
                    "add default_pool = \"POOL\"",
                ),
                _ if l.route.is_empty() => self.r.error_hint(
                    raw.span(),
                    format!("listener \"{name}\" has neither routes nor a `default_pool`"),
                    "add default_pool = \"POOL\" or a [[listener.route]]",
                ),
                _ => {}
            }
        }
        let tls = self.listener_tls(raw, &name, protocol, base_dir);
        Some(Listener {
            name,
            binds,
            protocol,
            default_pool,
            accept_proxy: l.accept_proxy,
            access_log: l.access_log.unwrap_or(true),
            routes,
            tls,
        })
    }

    fn listener_tls(
        &mut self,
        raw: &S<RawListener>,
        name: &str,
        protocol: Protocol,
        base_dir: &Path,
    ) -> ListenerTls {
        let l = raw.get_ref();
        let mut tls = ListenerTls {
            certificates: Vec::new(),
            min_version: TlsVersion::Tls12,
            alpn: vec!["h2".to_owned(), "http/1.1".to_owned()],
            handshake_timeout: Duration::from_secs(5),
            watch_interval: Duration::from_secs(5),
        };
        match protocol {
            Protocol::Https if l.certificate.is_empty() => self.r.error_hint(
                raw.span(),
                format!("https listener \"{name}\" has no certificate"),
                "add [[listener.certificate]] with cert = \"site.pem\" and key = \"site.key\"",
            ),
            Protocol::Https => {}
            _ => {
                if let Some(c) = l.certificate.first() {
                    self.r.error_hint(
                        c.span(),
                        format!(
                            "listener \"{name}\" is {} and terminates no TLS",
                            protocol.as_str()
                        ),
                        "certificates belong to protocol = \"https\" listeners (tls-passthrough forwards the servers' own)",
                    );
                }
            }
        }
        let mut defaults = 0;
        for c in &l.certificate {
            let cr = c.get_ref();
            let names = cr.names.as_ref().map(|names| {
                if names.is_empty() {
                    self.r.error_hint(
                        c.span(),
                        "`names` is empty",
                        "list the SNI names, or leave `names` out to use the certificate's own",
                    );
                }
                names
                    .iter()
                    .filter_map(|n| {
                        self.host_pattern(n).map(|p| match p {
                            HostPattern::Exact(e) => e,
                            HostPattern::Wildcard(w) => format!("*{w}"),
                        })
                    })
                    .collect()
            });
            if cr.default {
                defaults += 1;
                if defaults > 1 {
                    self.r.error_hint(
                        c.span(),
                        format!("listener \"{name}\" has a second default certificate"),
                        "keep `default = true` on one certificate",
                    );
                }
            }
            tls.certificates.push(Certificate {
                cert: base_dir.join(cr.cert.get_ref()),
                key: base_dir.join(cr.key.get_ref()),
                names,
                default: cr.default,
                origin: self.r.origin(&cr.cert.span()),
            });
        }
        let Some(t) = &l.tls else {
            return tls;
        };
        if !matches!(protocol, Protocol::Https | Protocol::TlsPassthrough) {
            self.r.error_hint(
                t.span(),
                format!(
                    "listener \"{name}\" is {} and has no TLS to set",
                    protocol.as_str()
                ),
                "remove [listener.tls], or use protocol = \"https\" or \"tls-passthrough\"",
            );
        }
        let tr = t.get_ref();
        if let Some(v) = &tr.min_version {
            match v.get_ref().as_str() {
                "1.2" => tls.min_version = TlsVersion::Tls12,
                "1.3" => tls.min_version = TlsVersion::Tls13,
                other => self.r.error_hint(
                    v.span(),
                    format!("`min_version` \"{other}\" is not a TLS version halo speaks"),
                    "write \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are not offered)",
                ),
            }
        }
        if let Some(alpn) = &tr.alpn {
            tls.alpn.clear();
            for p in alpn.get_ref() {
                match p.get_ref().as_str() {
                    "h2" | "http/1.1" => tls.alpn.push(p.get_ref().clone()),
                    other => self.r.error_hint(
                        p.span(),
                        format!("ALPN protocol \"{other}\" is not served"),
                        "write \"h2\" and/or \"http/1.1\"",
                    ),
                }
            }
            if protocol == Protocol::TlsPassthrough {
                self.r.error_hint(
                    alpn.span(),
                    "a tls-passthrough listener does not negotiate ALPN (the server does)",
                    "remove `alpn`",
                );
            }
        }
        tls.handshake_timeout = self.positive_duration(
            tr.handshake_timeout.as_ref(),
            "handshake_timeout",
            tls.handshake_timeout,
        );
        if let Some(w) = &tr.watch_interval {
            if let Some(d) = self.duration(w, "watch_interval") {
                tls.watch_interval = d;
            }
        }
        tls
    }

    fn host_pattern(&mut self, value: &S<String>) -> Option<HostPattern> {
        let raw = value.get_ref().trim().to_ascii_lowercase();
        let raw = raw.strip_suffix('.').unwrap_or(&raw);
        if raw.contains(':') {
            let bare = raw.split(':').next().unwrap_or_default();
            self.r.error_hint(
                value.span(),
                format!("route host \"{}\" has a port", value.get_ref()),
                format!("host matching ignores the port; write \"{bare}\""),
            );
            return None;
        }
        let (pattern, name) = match raw.strip_prefix("*.") {
            Some(rest) => (HostPattern::Wildcard(format!(".{rest}")), rest),
            None => (HostPattern::Exact(raw.to_owned()), raw),
        };
        if !is_domain_name(name) {
            self.r.error_hint(
                value.span(),
                format!("route host \"{}\" is not a host name", value.get_ref()),
                "write an exact name like \"grafana.apps.example.com\" or a wildcard like \"*.apps.example.com\"",
            );
            return None;
        }
        Some(pattern)
    }

    // === [[pool]] ===

    fn pool(&mut self, raw: &S<RawPool>, base_dir: &Path) -> Option<Pool> {
        let p = raw.get_ref();
        let name = self.name(&p.name, "pool");
        if p.server.is_empty() {
            self.r.error_hint(
                raw.span(),
                format!("pool \"{name}\" has no server"),
                "add a [[pool.server]] with a name and an address",
            );
        }
        let balance = match p.balance.unwrap_or(RawBalance::RoundRobin) {
            RawBalance::RoundRobin => Balance::RoundRobin,
            RawBalance::LeastConn => Balance::LeastConn,
            RawBalance::Source => Balance::Source,
            RawBalance::RandomTwo => Balance::RandomTwo,
            RawBalance::First => Balance::First,
        };
        let send_proxy = match p.send_proxy.unwrap_or(RawSendProxy::Off) {
            RawSendProxy::Off => SendProxy::Off,
            RawSendProxy::V1 => SendProxy::V1,
            RawSendProxy::V2 => SendProxy::V2,
        };
        let retries = self.int(p.retries.as_ref(), "retries", 0..=100, 3u8);
        let retry_on = p.retry_on.as_ref().map_or_else(RetryOn::default, |list| {
            let has = |v| list.contains(&v);
            RetryOn {
                conn_failure: has(RawRetryOn::ConnFailure),
                empty_response: has(RawRetryOn::EmptyResponse),
                junk_response: has(RawRetryOn::JunkResponse),
                response_timeout: has(RawRetryOn::ResponseTimeout),
            }
        });
        let timeouts = self.timeouts(p.timeouts.as_ref());
        let check = p.check.as_ref().map(|c| self.check(c, false, false));
        let passive = self.passive(p.passive.as_ref());
        let tls = p.tls.as_ref().map(|t| self.pool_tls(t, base_dir));
        let servers: Vec<Server> = p.server.iter().filter_map(|s| self.server(s)).collect();
        self.unique_names(p.server.iter().map(|s| &s.get_ref().name), "server");
        Some(Pool {
            name,
            balance,
            use_all_backups: p.use_all_backups,
            retries,
            retry_on,
            send_proxy,
            timeouts,
            check,
            passive,
            tls,
            servers,
        })
    }

    fn pool_tls(&mut self, raw: &S<RawPoolTls>, base_dir: &Path) -> PoolTls {
        let t = raw.get_ref();
        let verify = t.verify.as_ref().is_none_or(|v| *v.get_ref());
        if let (false, Some(ca)) = (verify, &t.ca_file) {
            self.r.error_hint(
                ca.span(),
                "`ca_file` is set but `verify = false` ignores it",
                "remove `verify = false` (verifying is the point of a CA file) or the `ca_file`",
            );
        }
        let sni = t.sni.as_ref().and_then(|s| match self.host_pattern(s) {
            Some(HostPattern::Exact(name)) => Some(name),
            Some(HostPattern::Wildcard(_)) => {
                self.r.error_hint(
                    s.span(),
                    "`sni` is one name, not a wildcard",
                    "write the name the servers' certificate is for, e.g. \"app.internal.example\"",
                );
                None
            }
            None => None,
        });
        let client_cert = match (&t.cert, &t.key) {
            (Some(c), Some(k)) => Some((base_dir.join(c.get_ref()), base_dir.join(k.get_ref()))),
            (Some(c), None) => {
                self.r.error_hint(
                    c.span(),
                    "a client `cert` without its `key`",
                    "add key = \"client.key\"",
                );
                None
            }
            (None, Some(k)) => {
                self.r.error_hint(
                    k.span(),
                    "a `key` without its client `cert`",
                    "add cert = \"client.pem\"",
                );
                None
            }
            (None, None) => None,
        };
        PoolTls {
            sni,
            verify,
            ca_file: t.ca_file.as_ref().map(|c| base_dir.join(c.get_ref())),
            client_cert,
            origin: self.r.origin(&raw.span()),
        }
    }

    fn timeouts(&mut self, raw: Option<&RawTimeouts>) -> Timeouts {
        let default = RawTimeouts::default();
        let t = raw.unwrap_or(&default);
        let connect = self.positive_duration(t.connect.as_ref(), "connect", Duration::from_secs(5));
        Timeouts {
            connect,
            server: self.positive_duration(t.server.as_ref(), "server", Duration::from_secs(30)),
            client: self.positive_duration(t.client.as_ref(), "client", Duration::from_secs(30)),
            request_header: self.positive_duration(
                t.request_header.as_ref(),
                "request_header",
                Duration::from_secs(10),
            ),
            tunnel: self.positive_duration(t.tunnel.as_ref(), "tunnel", Duration::from_secs(3600)),
            queue: self.positive_duration(t.queue.as_ref(), "queue", connect),
        }
    }

    /// `[gslb.probe]` or `[gslb.service.probe]`: a check with a port, and
    /// TLS for `type = "https"` or a `tls` table.
    fn probe(&mut self, raw: &S<RawCheck>, base_dir: &Path) -> Probe {
        let check = self.check(raw, true, true);
        let c = raw.get_ref();
        let tls = match (&c.tls, c.kind) {
            (Some(t), _) => Some(self.pool_tls(t, base_dir)),
            (None, Some(RawCheckType::Https)) => Some(PoolTls {
                sni: None,
                verify: true,
                ca_file: None,
                client_cert: None,
                origin: self.r.origin(&raw.span()),
            }),
            (None, _) => None,
        };
        Probe { check, tls }
    }

    /// `[pool.check]` or an endpoint's `check`; the latter must name a port.
    fn check(&mut self, raw: &S<RawCheck>, needs_port: bool, probe: bool) -> Check {
        let c = raw.get_ref();
        let interval =
            self.positive_duration(c.interval.as_ref(), "interval", Duration::from_secs(2));
        let rise = self.int(c.rise.as_ref(), "rise", 1..=1000, 2u32);
        let fall = self.int(c.fall.as_ref(), "fall", 1..=1000, 3u32);
        let port = c
            .port
            .as_ref()
            .map(|p| self.int(Some(p), "port", 1..=65535, 0u16));
        if needs_port && port.is_none() {
            self.r.error_hint(
                raw.span(),
                "this check has no port to connect to",
                "add port = 80 (or the port to check)",
            );
        }
        if let (false, Some(t)) = (probe, &c.tls) {
            self.r.error_hint(
                t.span(),
                "a `tls` table belongs to GSLB probes only",
                "for a pool's checks, put it in [pool.tls] (the checks follow the pool)",
            );
        }
        let kind = match c.kind.unwrap_or(RawCheckType::Tcp) {
            RawCheckType::Tcp => {
                for (v, k) in [
                    (&c.method, "method"),
                    (&c.path, "path"),
                    (&c.host, "host"),
                    (&c.expect_status, "expect_status"),
                    (&c.expect_body, "expect_body"),
                ] {
                    if let Some(v) = v {
                        self.r.error_hint(
                            v.span(),
                            format!("`{k}` applies to HTTP checks only"),
                            "add type = \"http\" or remove it",
                        );
                    }
                }
                CheckKind::Tcp
            }
            RawCheckType::Http => CheckKind::Http(self.http_check(c)),
            RawCheckType::Https => {
                if !probe {
                    self.r.error_hint(
                        raw.span(),
                        "type = \"https\" is for GSLB probes",
                        "write type = \"http\"; a pool's checks use TLS when the pool has [pool.tls]",
                    );
                }
                CheckKind::Http(self.http_check(c))
            }
        };
        Check {
            kind,
            port,
            interval,
            fast_interval: self.positive_duration(
                c.fast_interval.as_ref(),
                "fast_interval",
                interval,
            ),
            down_interval: self.positive_duration(
                c.down_interval.as_ref(),
                "down_interval",
                interval,
            ),
            // HAProxy: without `timeout check`, `inter` bounds the whole check.
            timeout: self.positive_duration(c.timeout.as_ref(), "timeout", interval),
            rise,
            fall,
            initial: match c.initial.unwrap_or(RawInitial::Up) {
                RawInitial::Up => InitialState::Up,
                RawInitial::FullyUp => InitialState::FullyUp,
                RawInitial::Down => InitialState::Down,
                RawInitial::FullyDown => InitialState::FullyDown,
            },
            spread_percent: self.int(c.spread.as_ref(), "spread", 0..=50, 10u8),
        }
    }

    fn http_check(&mut self, c: &RawCheck) -> HttpCheck {
        let method = c.method.as_ref().map_or_else(
            || "GET".to_owned(),
            |m| {
                let s = m.get_ref();
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_uppercase()) {
                    self.r.error_hint(
                        m.span(),
                        format!("`method` \"{s}\" is not an HTTP method"),
                        "write e.g. \"GET\", \"HEAD\" or \"OPTIONS\"",
                    );
                }
                s.clone()
            },
        );
        let path = c.path.as_ref().map_or_else(
            || "/".to_owned(),
            |p| {
                let s = p.get_ref();
                if !s.starts_with('/')
                    || s.bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    self.r.error_hint(
                        p.span(),
                        format!("`path` \"{s}\" is not a request path"),
                        "write e.g. \"/healthz\"",
                    );
                }
                s.clone()
            },
        );
        let host = c.host.as_ref().map(|h| {
            if h.get_ref().is_empty()
                || h.get_ref()
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                self.r.error_hint(
                    h.span(),
                    "`host` is not a valid Host header value",
                    "write e.g. \"app.example.com\"",
                );
            }
            h.get_ref().clone()
        });
        let expect_status = match &c.expect_status {
            None => StatusRanges(vec![200..=399]),
            Some(s) => self.status_ranges(s),
        };
        HttpCheck {
            method,
            path,
            host,
            expect_status,
            expect_body: c.expect_body.as_ref().map(|b| b.get_ref().clone()),
        }
    }

    fn status_ranges(&mut self, value: &S<String>) -> StatusRanges {
        let mut ranges = Vec::new();
        for part in value.get_ref().split(',') {
            let part = part.trim();
            let parsed = match part.split_once('-') {
                Some((a, b)) => a
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .zip(b.trim().parse::<u16>().ok()),
                None => part.parse::<u16>().ok().map(|n| (n, n)),
            };
            match parsed {
                Some((a, b)) if (100..=599).contains(&a) && (100..=599).contains(&b) && a <= b => {
                    ranges.push(a..=b);
                }
                _ => {
                    self.r.error_hint(
                        value.span(),
                        format!("`expect_status`: \"{part}\" is not a status or range"),
                        "write statuses from 100 to 599 like \"200-399\" or \"200,204,300-302\"",
                    );
                    return StatusRanges(vec![200..=399]);
                }
            }
        }
        StatusRanges(ranges)
    }

    fn passive(&mut self, raw: Option<&RawPassive>) -> Passive {
        let default = Passive::default();
        let Some(p) = raw else { return default };
        let ejection_time = self.positive_duration(
            p.ejection_time.as_ref(),
            "ejection_time",
            default.ejection_time,
        );
        let max_ejection_time = self.positive_duration(
            p.max_ejection_time.as_ref(),
            "max_ejection_time",
            default.max_ejection_time.max(ejection_time),
        );
        if max_ejection_time < ejection_time {
            if let Some(m) = &p.max_ejection_time {
                self.r.error_hint(
                    m.span(),
                    "`max_ejection_time` is shorter than `ejection_time`",
                    "make it at least as long as `ejection_time`",
                );
            }
        }
        Passive {
            observe: match p.observe {
                None => default.observe,
                Some(RawObserve::Off) => Observe::Off,
                Some(RawObserve::Layer4) => Observe::Layer4,
                Some(RawObserve::Layer7) => Observe::Layer7,
            },
            error_limit: self.int(
                p.error_limit.as_ref(),
                "error_limit",
                1..=100_000,
                default.error_limit,
            ),
            ejection_time,
            max_ejection_time,
            max_ejection_percent: self.int(
                p.max_ejection_percent.as_ref(),
                "max_ejection_percent",
                0..=100,
                default.max_ejection_percent,
            ),
        }
    }

    fn server(&mut self, raw: &S<RawServer>) -> Option<Server> {
        let s = raw.get_ref();
        let name = self.name(&s.name, "server");
        let address = self.server_address(&s.address)?;
        Some(Server {
            name,
            address,
            weight: self.int(
                s.weight.as_ref(),
                "weight",
                0..=i64::from(crate::types::MAX_WEIGHT),
                1u16,
            ),
            max_conns: self.int(s.max_conns.as_ref(), "max_conns", 0..=10_000_000, 0u32),
            backup: s.backup,
        })
    }

    fn server_address(&mut self, value: &S<String>) -> Option<ServerAddress> {
        let text = value.get_ref().trim();
        if let Ok(a) = SocketAddr::from_str(text) {
            if a.port() != 0 {
                return Some(ServerAddress::Socket(a));
            }
        } else if let Some((host, port)) = text.rsplit_once(':') {
            let host = host.to_ascii_lowercase();
            if is_domain_name(&host) && !host.contains(':') {
                if let Ok(port @ 1..) = port.parse::<u16>() {
                    return Some(ServerAddress::Name { host, port });
                }
            }
        }
        self.r.error_hint(
            value.span(),
            format!("`address` \"{text}\" is not ip:port or hostname:port"),
            "write e.g. \"10.0.1.10:80\", \"[2001:db8::10]:80\" or \"infra-0.example.com:80\" (port 1-65535)",
        );
        None
    }

    // === [[vip]] ===

    fn vip(&mut self, raw: &S<RawVip>, listeners: &HashSet<&str>) -> Option<Vip> {
        let x = raw.get_ref();
        let name = self.name(&x.name, "vip");
        let interface = x.interface.get_ref().clone();
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
            self.r.error_hint(
                x.interface.span(),
                format!("`interface` \"{interface}\" is not an interface name"),
                "write the name `ip link` shows, e.g. \"eth0\"",
            );
        }
        let vrid = self.int(Some(&x.vrid), "vrid", 1..=255, 1u8);
        let priority = self.int(x.priority.as_ref(), "priority", 1..=255, 100u8);
        let version = match x.version.as_ref().map(|v| *v.get_ref()) {
            None | Some(3) => VrrpVersion::V3,
            Some(2) => VrrpVersion::V2,
            Some(n) => {
                let span = x.version.as_ref().map(Spanned::span).unwrap_or_default();
                self.r.error_hint(
                    span,
                    format!("VRRP `version` {n} does not exist"),
                    "write 3 (RFC 5798) or 2 (keepalived's default)",
                );
                VrrpVersion::V3
            }
        };
        let advert_interval = x.advert_interval.as_ref().map_or(Duration::from_secs(1), |a| {
            let Some(d) = self.duration(a, "advert_interval") else { return Duration::from_secs(1) };
            let (ok, hint) = match version {
                // 12-bit field in centiseconds.
                VrrpVersion::V3 => (
                    d >= Duration::from_millis(10) && d <= Duration::from_millis(40_950) && d.as_nanos() % 10_000_000 == 0,
                    "VRRPv3 sends centiseconds: write 10ms to 40.95s in steps of 10ms, e.g. \"1s\" or \"100ms\"",
                ),
                // 8-bit field in seconds.
                VrrpVersion::V2 => (
                    d >= Duration::from_secs(1) && d <= Duration::from_secs(255) && d.subsec_nanos() == 0,
                    "VRRPv2 sends whole seconds: write \"1s\" to \"255s\"",
                ),
            };
            if !ok {
                self.r.error_hint(a.span(), format!("`advert_interval` \"{}\" is out of range", a.get_ref()), hint);
            }
            d
        });

        let mut addresses = Vec::new();
        if x.addresses.get_ref().is_empty() {
            self.r.error_hint(
                x.addresses.span(),
                format!("vip \"{name}\" has no addresses"),
                "write e.g. addresses = [\"192.0.2.20/24\"]",
            );
        }
        for a in x.addresses.get_ref() {
            let text = a.get_ref().trim();
            let parsed = IpNet::from_str(text)
                .ok()
                .or_else(|| IpAddr::from_str(text).ok().map(IpNet::from));
            match parsed {
                Some(net) => addresses.push(net),
                None => self.r.error_hint(a.span(), format!("`addresses`: \"{text}\" is not an address"), "write an address with its prefix length, e.g. \"192.0.2.20/24\" or \"2001:db8::20/64\""),
            }
        }
        let v6 = addresses.first().is_some_and(|a| matches!(a, IpNet::V6(_)));
        if addresses.iter().any(|a| matches!(a, IpNet::V6(_)) != v6) {
            self.r.error_hint(
                x.addresses.span(),
                format!("vip \"{name}\" mixes IPv4 and IPv6"),
                "use one [[vip]] per address family",
            );
        }
        if v6 && version == VrrpVersion::V2 {
            self.r.error_hint(
                x.addresses.span(),
                "VRRPv2 carries IPv4 only",
                "set version = 3 for IPv6 addresses",
            );
        }

        let unicast = match (&x.unicast_source, &x.unicast_peers) {
            (None, None) => None,
            (Some(src), Some(peers)) => {
                let source = self.ip(src, "unicast_source");
                if peers.get_ref().is_empty() {
                    self.r.error_hint(peers.span(), "`unicast_peers` is empty", "list the other routers' addresses, or remove both unicast keys for multicast");
                }
                let peer_ips: Vec<IpAddr> = peers
                    .get_ref()
                    .iter()
                    .filter_map(|p| self.ip(p, "unicast_peers"))
                    .collect();
                for (p, ip) in peers.get_ref().iter().zip(&peer_ips) {
                    if ip.is_ipv6() != v6 && !addresses.is_empty() {
                        self.r.error_hint(
                            p.span(),
                            "unicast peer is of another address family than the VIP addresses",
                            "VRRP runs over the addresses' family",
                        );
                    }
                    if Some(*ip) == source {
                        self.r.error_hint(
                            p.span(),
                            "`unicast_peers` lists our own `unicast_source`",
                            "list only the other routers",
                        );
                    }
                }
                if let Some(s) = source {
                    if s.is_ipv6() != v6 && !addresses.is_empty() {
                        self.r.error_hint(
                            src.span(),
                            "`unicast_source` is of another address family than the VIP addresses",
                            "VRRP runs over the addresses' family",
                        );
                    }
                }
                source.map(|source| Unicast {
                    source,
                    peers: peer_ips,
                    ttl_check_on_link: x.unicast_ttl_check != Some(RawTtlCheck::Off),
                })
            }
            (Some(s), None) => {
                self.r.error_hint(
                    s.span(),
                    "`unicast_source` without `unicast_peers`",
                    "add unicast_peers = [\"...\"], or remove unicast_source for multicast",
                );
                None
            }
            (None, Some(p)) => {
                self.r.error_hint(
                    p.span(),
                    "`unicast_peers` without `unicast_source`",
                    "add unicast_source = \"OUR-ADDRESS\"",
                );
                None
            }
        };
        let preempt_delay = x.preempt_delay.as_ref().map_or(Duration::ZERO, |d| {
            let parsed = self.duration(d, "preempt_delay").unwrap_or_default();
            if parsed > Duration::from_secs(1000) {
                self.r.error_hint(
                    d.span(),
                    "`preempt_delay` is over 1000s",
                    "write at most \"1000s\" (keepalived's limit)",
                );
            }
            parsed
        });
        let track = x
            .track
            .iter()
            .filter_map(|t| self.track(t, listeners))
            .collect();
        let notify = x.notify.as_ref().map(|n| self.notify(n));
        let garp_delay = |v: &mut Self, d: Option<&S<String>>, key, default| {
            d.map_or(default, |d| {
                let parsed = v.duration(d, key).unwrap_or(default);
                if parsed > Duration::from_secs(3600) {
                    v.r.error_hint(
                        d.span(),
                        format!("`{key}` is over an hour"),
                        "write e.g. \"5s\", or \"0s\" for none",
                    );
                }
                parsed
            })
        };
        let garp = Garp {
            repeat: self.int(x.garp_repeat.as_ref(), "garp_repeat", 1..=100, 5u8),
            delay: garp_delay(
                self,
                x.garp_delay.as_ref(),
                "garp_delay",
                Duration::from_secs(5),
            ),
            refresh: garp_delay(
                self,
                x.garp_refresh.as_ref(),
                "garp_refresh",
                Duration::ZERO,
            ),
        };
        Some(Vip {
            name,
            interface,
            vrid,
            priority,
            advert_interval,
            version,
            addresses,
            unicast,
            preempt: x.preempt.unwrap_or(true),
            preempt_delay,
            track,
            notify,
            checksum: match x.checksum {
                None | Some(RawChecksum::PseudoHeader) => VrrpChecksum::PseudoHeader,
                Some(RawChecksum::Rfc9568) => VrrpChecksum::Rfc9568,
            },
            garp,
            accept: x.accept.unwrap_or(true),
        })
    }

    fn notify(&mut self, n: &S<String>) -> PathBuf {
        if n.get_ref().trim().is_empty() {
            self.r.error_hint(
                n.span(),
                "`notify` is empty",
                "write the path of an executable, or remove the key",
            );
        }
        n.get_ref().into()
    }

    fn vip_groups(
        &mut self,
        raw: &[S<RawVipGroup>],
        raw_vips: &[S<RawVip>],
        vips: &HashSet<&str>,
    ) -> Vec<VipGroup> {
        let mut member_of: HashMap<&str, &str> = HashMap::new();
        let mut out = Vec::new();
        for g in raw {
            let x = g.get_ref();
            let name = self.name(&x.name, "vip_group");
            if x.vips.get_ref().is_empty() {
                self.r.error_hint(x.vips.span(), format!("vip_group \"{name}\" has no members"), "list the [[vip]] names that fail over together, e.g. vips = [\"vi1\", \"vi2\"]");
            }
            let mut members = Vec::new();
            for m in x.vips.get_ref() {
                let member = self.reference(m, vips, "vip");
                if let Some(other) =
                    member_of.insert(m.get_ref().as_str(), x.name.get_ref().as_str())
                {
                    self.r.error_hint(
                        m.span(),
                        format!("vip \"{member}\" is already in vip_group \"{other}\""),
                        "put each [[vip]] in one group at most",
                    );
                }
                // A weight moves one member's priority alone: the group
                // would split. keepalived requires weight 0 in sync groups.
                let weighted = raw_vips
                    .iter()
                    .filter(|v| v.get_ref().name.get_ref() == m.get_ref())
                    .flat_map(|v| &v.get_ref().track)
                    .filter_map(|t| t.get_ref().weight.as_ref());
                for w in weighted {
                    self.r.error_hint(
                        w.span(),
                        format!("vip \"{member}\" is in vip_group \"{name}\": a weighted track entry would move it without the rest of the group"),
                        "remove `weight`: the target then faults the whole group (keepalived requires weight 0 in sync groups)",
                    );
                }
                members.push(member);
            }
            out.push(VipGroup {
                name,
                vips: members,
                notify: x.notify.as_ref().map(|n| self.notify(n)),
            });
        }
        self.unique_names(raw.iter().map(|g| &g.get_ref().name), "vip_group");
        out
    }

    fn track(&mut self, raw: &S<crate::raw::RawTrack>, listeners: &HashSet<&str>) -> Option<Track> {
        let t = raw.get_ref();
        let target = match (&t.listener, &t.tcp) {
            (Some(l), None) => TrackTarget::Listener(self.reference(l, listeners, "listener")),
            (None, Some(a)) => TrackTarget::Tcp(self.socket_addr(a, "tcp")?),
            _ => {
                self.r.error_hint(
                    raw.span(),
                    "a track entry watches exactly one thing",
                    "write { listener = \"NAME\" } or { tcp = \"127.0.0.1:80\" }",
                );
                return None;
            }
        };
        let weight = match &t.weight {
            Some(w) if *w.get_ref() == 0 => {
                self.r.error_hint(
                    w.span(),
                    "a track `weight` of 0 changes nothing",
                    "omit `weight` to fault the instance, or write -253..=253",
                );
                None
            }
            Some(w) => Some(self.int(Some(w), "weight", -253..=253, 0i16)),
            None => None,
        };
        Some(Track { target, weight })
    }

    fn unique_vrids(&mut self, vips: &[S<RawVip>]) {
        let mut seen: HashMap<(&str, i64, bool), &str> = HashMap::new();
        for raw in vips {
            let x = raw.get_ref();
            let v6 = x
                .addresses
                .get_ref()
                .first()
                .is_some_and(|a| a.get_ref().contains(':'));
            let key = (x.interface.get_ref().as_str(), *x.vrid.get_ref(), v6);
            if let Some(other) = seen.insert(key, x.name.get_ref()) {
                self.r.error_hint(
                    x.vrid.span(),
                    format!(
                        "vrid {} on {} is already used by vip \"{other}\"",
                        key.1, key.0
                    ),
                    "each VRRP instance on an interface needs its own vrid",
                );
            }
        }
    }

    // === [gslb] ===

    fn gslb(
        &mut self,
        raw: &S<RawGslb>,
        node: &Node,
        pools: &HashSet<&str>,
        base_dir: &Path,
    ) -> Option<Gslb> {
        let g = raw.get_ref();
        let zone = self.domain(&g.zone, "zone");
        let listen = match &g.listen {
            None => vec![DEFAULT_DNS_LISTEN.parse().ok()?],
            Some(l) => {
                if l.get_ref().is_empty() {
                    self.r.error_hint(
                        l.span(),
                        "`listen` is empty",
                        "write e.g. listen = [\"0.0.0.0:53\"]",
                    );
                }
                l.get_ref()
                    .iter()
                    .filter_map(|a| self.socket_addr(a, "listen"))
                    .collect()
            }
        };
        let nameservers = g
            .nameservers
            .iter()
            .map(|n| self.domain(n, "nameservers"))
            .collect();
        let peers: Vec<Peer> = g.peers.iter().filter_map(|p| self.peer(p)).collect();
        let peer_interval = self.positive_duration(
            g.peer_interval.as_ref(),
            "peer_interval",
            Duration::from_secs(1),
        );
        let peer_stale_after = self.positive_duration(
            g.peer_stale_after.as_ref(),
            "peer_stale_after",
            Duration::from_secs(30),
        );
        if peer_stale_after < peer_interval {
            if let Some(s) = &g.peer_stale_after {
                self.r.error_hint(
                    s.span(),
                    "`peer_stale_after` is shorter than `peer_interval`",
                    "make it several peer intervals long, e.g. \"30s\"",
                );
            }
        }
        let default_ttl = g
            .default_ttl
            .as_ref()
            .map_or(30, |t| self.ttl(t, "default_ttl"));

        // Sites this node can know about: its own, the federation's (`sites`, as
        // k8gb's geo-tag list), any endpoint's, the geo rules'.
        let mut sites: HashSet<&str> = HashSet::from([node.site.as_str()]);
        for site in &g.sites {
            self.name(site, "site");
            sites.insert(site.get_ref());
        }
        for s in &g.service {
            for e in &s.get_ref().endpoint {
                if let Some(site) = &e.get_ref().site {
                    sites.insert(site.get_ref());
                }
            }
        }
        for geo in &g.geo {
            sites.insert(geo.get_ref().site.get_ref());
        }
        for p in &peers {
            if let Some(site) = &p.site {
                sites.insert(site);
            }
        }
        let geo: Vec<GeoRule> = g
            .geo
            .iter()
            .filter_map(|r| {
                let r = r.get_ref();
                let text = r.cidr.get_ref().trim();
                match IpNet::from_str(text) {
                    Ok(net) if net.trunc() == net => Some(GeoRule {
                        cidr: net,
                        site: r.site.get_ref().clone(),
                    }),
                    Ok(net) => {
                        self.r.error_hint(
                            r.cidr.span(),
                            format!("`cidr` \"{text}\" has host bits set"),
                            format!("write \"{}\"", net.trunc()),
                        );
                        None
                    }
                    Err(_) => {
                        self.r.error_hint(
                            r.cidr.span(),
                            format!("`cidr` \"{text}\" is not a network"),
                            "write e.g. \"198.51.100.0/24\" or \"2001:db8::/32\"",
                        );
                        None
                    }
                }
            })
            .collect();
        let mut services: Vec<Service> = g
            .service
            .iter()
            .filter_map(|s| {
                self.service(
                    s,
                    node,
                    pools,
                    &sites,
                    default_ttl,
                    !g.peers.is_empty(),
                    !geo.is_empty(),
                )
            })
            .collect();
        self.unique_names(g.service.iter().map(|s| &s.get_ref().name), "service");
        let records = self.records(&g.record, &zone, default_ttl, &services);
        // Endpoints are addresses, not services: a probe says its port.
        let probe = g.probe.as_ref().map(|p| self.probe(p, base_dir));
        for raw in &g.service {
            let raw = raw.get_ref();
            let own = raw.probe.as_ref().map(|p| self.probe(p, base_dir));
            let name = raw.name.get_ref().to_ascii_lowercase();
            if let Some(svc) = services.iter_mut().find(|s| s.name == name) {
                svc.probe = own.or_else(|| probe.clone()).map(|mut p| {
                    // A probe asks for the service as its clients do: by
                    // its name (an ingress or a router chooses the app by
                    // it; the certificate is for it).
                    let fqdn = format!("{name}.{zone}");
                    if let CheckKind::Http(h) = &mut p.check.kind {
                        h.host.get_or_insert_with(|| fqdn.clone());
                    }
                    if let Some(t) = &mut p.tls {
                        t.sni.get_or_insert(fqdn);
                    }
                    p
                });
            }
        }
        let mut site_list: Vec<String> = sites.iter().map(|s| (*s).to_owned()).collect();
        site_list.sort();
        Some(Gslb {
            zone,
            listen,
            nameservers,
            sites: site_list,
            peers,
            peer_interval,
            peer_stale_after,
            default_ttl,
            probe,
            services,
            geo,
            records,
        })
    }

    fn peer(&mut self, raw: &S<RawPeer>) -> Option<Peer> {
        // A bare IP means port 53.
        let address = |v: &mut Self, text: &S<String>| {
            IpAddr::from_str(text.get_ref().trim())
                .map(|ip| SocketAddr::new(ip, 53))
                .ok()
                .or_else(|| v.socket_addr(text, "peers"))
        };
        match raw.get_ref() {
            RawPeer::Address(text) => {
                let spanned = S::new(raw.span(), text.clone());
                Some(Peer {
                    address: address(self, &spanned)?,
                    site: None,
                })
            }
            RawPeer::Table(t) => Some(Peer {
                address: address(self, &t.address)?,
                site: t.site.as_ref().map(|s| self.name(s, "site")),
            }),
        }
    }

    /// `[[gslb.record]]`: names inside the zone, values by type, no name that
    /// a service owns, CNAME alone at its name.
    fn records(
        &mut self,
        raw: &[S<RawRecord>],
        zone: &str,
        default_ttl: u32,
        services: &[Service],
    ) -> Vec<StaticRecord> {
        let mut out: Vec<StaticRecord> = Vec::new();
        let mut spans: Vec<Range<usize>> = Vec::new();
        for r in raw {
            let rr = r.get_ref();
            let Some(name) = self.owner(&rr.name, zone) else {
                continue;
            };
            let relative = name
                .strip_suffix(zone)
                .unwrap_or(&name)
                .trim_end_matches('.');
            if services
                .iter()
                .any(|s| relative == s.name || relative == format!("localtargets-{}", s.name))
            {
                self.r.error_hint(
                    rr.name.span(),
                    format!("record name \"{name}\" is a service's name"),
                    "a [[gslb.service]] answers that name; use another name",
                );
                continue;
            }
            let ttl = rr.ttl.as_ref().map_or(default_ttl, |t| self.ttl(t, "ttl"));
            let Some(data) = self.record_data(*rr.rtype.get_ref(), &rr.value, zone) else {
                continue;
            };
            out.push(StaticRecord { name, ttl, data });
            spans.push(rr.name.span());
        }
        // CNAME and other data cannot share a name (RFC 1034 §3.6.2).
        for (i, rec) in out.iter().enumerate() {
            if matches!(rec.data, RecordData::Cname(_))
                && out
                    .iter()
                    .enumerate()
                    .any(|(j, other)| j != i && other.name == rec.name)
            {
                self.r.error_hint(
                    spans[i].clone(),
                    format!("\"{}\" has a CNAME and other records", rec.name),
                    "a CNAME must be alone at its name; remove it or the other records",
                );
            }
        }
        out
    }

    /// A record's owner: `@` (the apex), a name relative to the zone, or an
    /// absolute name ending in `.` that is inside the zone.
    fn owner(&mut self, value: &S<String>, zone: &str) -> Option<String> {
        let text = value.get_ref().trim().to_ascii_lowercase();
        let name = if text == "@" {
            zone.to_owned()
        } else if let Some(abs) = text.strip_suffix('.') {
            if abs != zone && !abs.ends_with(&format!(".{zone}")) {
                self.r.error_hint(
                    value.span(),
                    format!("record name \"{text}\" is outside the zone {zone}"),
                    format!("write a name relative to the zone, or one ending in \".{zone}.\""),
                );
                return None;
            }
            abs.to_owned()
        } else {
            format!("{text}.{zone}")
        };
        if !is_domain_name(&name) {
            self.r.error_hint(
                value.span(),
                format!("record name \"{text}\" is not a DNS name"),
                "write \"@\" for the zone itself, or labels of letters, digits and '-'",
            );
            return None;
        }
        Some(name)
    }

    fn record_data(
        &mut self,
        rtype: RawRecordType,
        value: &S<String>,
        zone: &str,
    ) -> Option<RecordData> {
        let text = value.get_ref().trim();
        let target = |v: &mut Self, t: &str| -> Option<String> {
            let t = t.to_ascii_lowercase();
            let abs = match t.strip_suffix('.') {
                Some(a) => a.to_owned(),
                // A target without a trailing dot is relative to the zone, as in
                // a zone file.
                None => format!("{t}.{zone}"),
            };
            if is_domain_name(&abs) {
                Some(abs)
            } else {
                v.r.error_hint(
                    value.span(),
                    format!("\"{t}\" is not a DNS name"),
                    "write an absolute name ending in '.', e.g. \"mail.example.com.\"",
                );
                None
            }
        };
        let bad = |v: &mut Self, what: &str, example: &str| {
            v.r.error_hint(
                value.span(),
                format!("`value` \"{text}\" is not {what}"),
                format!("write e.g. value = \"{example}\""),
            );
            None
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        match rtype {
            RawRecordType::A => match Ipv4Addr::from_str(text) {
                Ok(a) => Some(RecordData::A(a)),
                Err(_) => bad(self, "an IPv4 address", "192.0.2.10"),
            },
            RawRecordType::Aaaa => match Ipv6Addr::from_str(text) {
                Ok(a) => Some(RecordData::Aaaa(a)),
                Err(_) => bad(self, "an IPv6 address", "2001:db8::10"),
            },
            RawRecordType::Cname => target(self, text).map(RecordData::Cname),
            RawRecordType::Txt => {
                if text.is_empty() {
                    return bad(self, "text", "v=spf1 -all");
                }
                // Long text is split into 255-byte character-strings, as zone
                // file tools do.
                let bytes = value.get_ref().as_bytes();
                let parts = bytes
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                Some(RecordData::Txt(parts))
            }
            RawRecordType::Mx => match fields.as_slice() {
                [pref, host] => match pref.parse::<u16>() {
                    Ok(preference) => target(self, host).map(|exchange| RecordData::Mx {
                        preference,
                        exchange,
                    }),
                    Err(_) => bad(self, "\"PREFERENCE NAME\"", "10 mail.example.com."),
                },
                _ => bad(self, "\"PREFERENCE NAME\"", "10 mail.example.com."),
            },
            RawRecordType::Srv => match fields.as_slice() {
                [prio, weight, port, host] => {
                    match (
                        prio.parse::<u16>(),
                        weight.parse::<u16>(),
                        port.parse::<u16>(),
                    ) {
                        (Ok(priority), Ok(weight), Ok(port)) => {
                            target(self, host).map(|target| RecordData::Srv {
                                priority,
                                weight,
                                port,
                                target,
                            })
                        }
                        _ => bad(
                            self,
                            "\"PRIORITY WEIGHT PORT TARGET\"",
                            "0 5 5060 sip.example.com.",
                        ),
                    }
                }
                _ => bad(
                    self,
                    "\"PRIORITY WEIGHT PORT TARGET\"",
                    "0 5 5060 sip.example.com.",
                ),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn service(
        &mut self,
        raw: &S<RawService>,
        node: &Node,
        pools: &HashSet<&str>,
        sites: &HashSet<&str>,
        default_ttl: u32,
        has_peers: bool,
        has_geo: bool,
    ) -> Option<Service> {
        let s = raw.get_ref();
        let name = s.name.get_ref().to_ascii_lowercase();
        if !is_domain_name(&name) {
            self.r.error_hint(
                s.name.span(),
                format!("service name \"{name}\" is not a DNS name"),
                "use letters, digits and '-', dot-separated labels of at most 63 characters",
            );
        }
        let strategy = match s.strategy.as_ref().map(|x| *x.get_ref()) {
            None | Some(RawStrategy::RoundRobin) => Strategy::RoundRobin,
            Some(RawStrategy::Weighted) => Strategy::Weighted {
                max_answers: self.int(s.max_answers.as_ref(), "max_answers", 1..=64, 1u8),
            },
            Some(RawStrategy::Failover) => Strategy::Failover,
            Some(RawStrategy::Geo) => Strategy::Geo,
        };
        if let (Some(m), false) = (
            &s.max_answers,
            matches!(strategy, Strategy::Weighted { .. }),
        ) {
            self.r.error_hint(
                m.span(),
                "`max_answers` applies to strategy = \"weighted\" only",
                "remove it or set strategy = \"weighted\"",
            );
        }
        let failover_order: Vec<String> = s
            .failover_order
            .iter()
            .map(|site| {
                if !sites.contains(site.get_ref().as_str()) {
                    let mut known: Vec<&str> = sites.iter().copied().collect();
                    known.sort_unstable();
                    self.r.error_hint(
                        site.span(),
                        format!("`failover_order` names unknown site \"{}\"", site.get_ref()),
                        format!(
                            "known sites: {}; list every site of the federation in gslb.sites",
                            known.join(", ")
                        ),
                    );
                }
                site.get_ref().clone()
            })
            .collect();
        if strategy == Strategy::Failover && failover_order.is_empty() {
            self.r.error_hint(
                raw.span(),
                format!("failover service \"{name}\" has no `failover_order`"),
                "add failover_order = [\"east\", \"west\"]",
            );
        }
        if strategy == Strategy::Geo && !has_geo {
            self.r.error_hint(
                raw.span(),
                format!("geo service \"{name}\" but no [[gslb.geo]] rules"),
                "add [[gslb.geo]] entries mapping client subnets to sites",
            );
        }
        if s.endpoint.is_empty() && !has_peers {
            self.r.error_hint(
                raw.span(),
                format!("service \"{name}\" has no endpoint and no peers to learn one from"),
                "add a [[gslb.service.endpoint]]",
            );
        }
        let ttl = s.ttl.as_ref().map_or(default_ttl, |t| self.ttl(t, "ttl"));
        let endpoints: Vec<Endpoint> = s
            .endpoint
            .iter()
            .filter_map(|e| self.endpoint(e, node, pools, has_peers))
            .collect();
        let mut seen = HashSet::new();
        for (raw_e, e) in s.endpoint.iter().zip(&endpoints) {
            if !seen.insert(e.address) {
                self.r.error_hint(
                    raw_e.get_ref().address.span(),
                    format!("endpoint {} is listed twice", e.address),
                    "remove one",
                );
            }
        }
        Some(Service {
            name,
            strategy,
            failover_order,
            ttl,
            when_all_down: match s.when_all_down.unwrap_or(RawWhenAllDown::All) {
                RawWhenAllDown::All => WhenAllDown::All,
                RawWhenAllDown::Nxdomain => WhenAllDown::Nxdomain,
                RawWhenAllDown::Servfail => WhenAllDown::Servfail,
            },
            // Answers should not change faster than resolvers cache them.
            hold_down: s
                .hold_down
                .as_ref()
                .and_then(|h| self.duration(h, "hold_down"))
                .unwrap_or(Duration::from_secs(u64::from(ttl))),
            probe: None, // set by the caller: it knows [gslb.probe]
            endpoints,
        })
    }

    fn endpoint(
        &mut self,
        raw: &S<RawEndpoint>,
        node: &Node,
        pools: &HashSet<&str>,
        has_peers: bool,
    ) -> Option<Endpoint> {
        let e = raw.get_ref();
        let address = self.ip(&e.address, "address")?;
        let site = e
            .site
            .as_ref()
            .map_or_else(|| node.site.clone(), |s| self.name(s, "site"));
        let health = match e.health.as_ref() {
            // Another site's endpoint is that site's node's to judge.
            None if has_peers && site != node.site => EndpointHealth::Peers,
            None => EndpointHealth::Always,
            Some(h) => match h.get_ref() {
                RawHealth::Word(w) if w == "always" => EndpointHealth::Always,
                RawHealth::Word(w) if w == "peers" => {
                    if !has_peers {
                        self.r.error_hint(h.span(), "`health` = \"peers\" but [gslb] has no `peers`", "add the other sites' nodes to gslb.peers, or use another health source");
                    }
                    EndpointHealth::Peers
                }
                RawHealth::Word(w) => {
                    self.r.error_hint(h.span(), format!("`health` \"{w}\" is not a health source"), "write \"always\", \"peers\", { pool = \"NAME\" } or { check = { type = \"tcp\", port = 80 } }");
                    EndpointHealth::Always
                }
                RawHealth::Table(t) => match (&t.pool, &t.check) {
                    (Some(p), None) => EndpointHealth::Pool(self.reference(p, pools, "pool")),
                    (None, Some(c)) => EndpointHealth::Check(self.check(c, true, false)),
                    _ => {
                        self.r.error_hint(h.span(), "`health` needs exactly one of `pool` or `check`", "write { pool = \"NAME\" } or { check = { type = \"tcp\", port = 80 } }");
                        EndpointHealth::Always
                    }
                },
            },
        };
        Some(Endpoint {
            address,
            site,
            health,
            weight: self.int(
                e.weight.as_ref(),
                "weight",
                0..=i64::from(crate::types::MAX_WEIGHT),
                1u16,
            ),
        })
    }

    fn ttl(&mut self, value: &S<String>, key: &str) -> u32 {
        let Some(d) = self.duration(value, key) else {
            return 30;
        };
        if d.subsec_nanos() != 0 || d.as_secs() > MAX_TTL {
            self.r.error_hint(
                value.span(),
                format!(
                    "`{key}` \"{}\" is not a whole number of seconds up to 2^31-1",
                    value.get_ref()
                ),
                "DNS TTLs are whole seconds: write e.g. \"0s\", \"10s\" or \"5m\"",
            );
            return 30;
        }
        u32::try_from(d.as_secs()).unwrap_or(30)
    }

    fn domain(&mut self, value: &S<String>, key: &str) -> String {
        let name = value.get_ref().trim().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        if !is_domain_name(&name) {
            self.r.error_hint(
                value.span(),
                format!("`{key}` \"{}\" is not a domain name", value.get_ref()),
                "write e.g. \"global.example.com\"",
            );
        }
        name
    }

    // === binds across tiers ===

    fn unique_binds(&mut self, raw: &RawConfig, admin: Option<&Admin>, gslb: Option<&Gslb>) {
        // (address, owner); TCP and UDP both count, DNS uses both.
        let mut taken: Vec<(SocketAddr, String)> = Vec::new();
        if let Some(a) = admin {
            taken.push((a.listen, "[admin]".to_owned()));
        }
        if let Some(g) = gslb {
            taken.extend(g.listen.iter().map(|a| (*a, "[gslb]".to_owned())));
        }
        for l in &raw.listener {
            let l = l.get_ref();
            for b in l.bind.get_ref() {
                let Ok(addr) = SocketAddr::from_str(b.get_ref().trim()) else {
                    continue;
                };
                if let Some((_, owner)) = taken.iter().find(|(t, _)| binds_conflict(*t, addr)) {
                    self.r.error_hint(
                        b.span(),
                        format!("address {addr} is already bound by {owner}"),
                        "every bind address must be unique (a wildcard like 0.0.0.0:80 also covers 127.0.0.1:80)",
                    );
                }
                taken.push((addr, format!("listener \"{}\"", l.name.get_ref())));
            }
        }
    }
}

/// Whether two binds would collide: same port and family, and the same address
/// or one of them the wildcard. Port 0 (pick any) never collides.
fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Dot-separated labels of 1..=63 letters, digits, '-' or '_', 253 bytes at most.
fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

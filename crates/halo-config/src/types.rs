//! Stage 2 output: the validated, typed configuration. Every value here has
//! passed its range and cross-reference checks; code that receives a `Config`
//! never re-validates.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub use ipnet::IpNet;

/// A whole validated halo configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node's identity.
    pub node: Node,
    /// The admin API, dashboard and metrics listener, when configured.
    pub admin: Option<Admin>,
    /// Proxy listeners (tier 3).
    pub listeners: Vec<Listener>,
    /// Server pools (tier 3; also health sources for VRRP tracking and GSLB).
    pub pools: Vec<Pool>,
    /// Virtual IPs (tier 2).
    pub vips: Vec<Vip>,
    /// `[[vip_group]]` sync groups.
    pub vip_groups: Vec<VipGroup>,
    /// Global DNS (tier 1), when configured.
    pub gslb: Option<Gslb>,
}

impl Config {
    /// The pool called `name`.
    #[must_use]
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique per node; used in logs, metrics and by peers. Default `"halo"`.
    pub name: String,
    /// The site (datacenter / cluster), k8gb's geo tag. Default `"default"`.
    pub site: String,
    /// Proxy worker threads (HAProxy `nbthread`); 0 = one per CPU this
    /// process may run on. Default 0.
    pub threads: u16,
    /// On SIGTERM/SIGINT: how long requests and TCP connections in flight
    /// may take to finish after the listeners stop accepting. Default 10s.
    pub stop_grace: Duration,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Where the admin API listens. Default `127.0.0.1:9090`.
    pub listen: SocketAddr,
    /// File holding the bearer token for changes, resolved against the config's folder.
    pub token_file: Option<PathBuf>,
    /// Where run-time server state (admin state, weight) is kept across
    /// restarts (HAProxy's `server-state-file`), resolved likewise.
    pub state_file: Option<PathBuf>,
}

/// `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Unique listener name.
    pub name: String,
    /// Addresses to bind; at least one, none shared with another listener.
    pub binds: Vec<SocketAddr>,
    /// What the listener speaks.
    pub protocol: Protocol,
    /// Pool for requests no route matches.
    pub default_pool: Option<String>,
    /// Expect a PROXY protocol v1/v2 header first.
    pub accept_proxy: bool,
    /// Write one `halo::access` log line per request (http) or connection (tcp).
    pub access_log: bool,
    /// Routes, in file order; the most specific match wins.
    pub routes: Vec<Route>,
    /// TLS settings: certificates (`https`), versions, ALPN and the
    /// handshake's time limit (`https`, `tls-passthrough`).
    pub tls: ListenerTls,
}

/// A listener's TLS: `[[listener.certificate]]` and `[listener.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Certificates chosen by SNI (`https` only; at least one there).
    pub certificates: Vec<Certificate>,
    /// Lowest TLS version accepted. Default 1.2.
    pub min_version: TlsVersion,
    /// ALPN protocols offered, in preference order. Default h2, http/1.1.
    pub alpn: Vec<String>,
    /// `https`: time to complete the handshake; `tls-passthrough`: time to
    /// receive the ClientHello. Default 5s (OpenShift's inspect-delay).
    pub handshake_timeout: Duration,
    /// How often certificate files are checked for changes on disk
    /// (0 = only on reload). Default 5s.
    pub watch_interval: Duration,
}

/// `[[listener.certificate]]`: a PEM chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// PEM file: the leaf certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// SNI names it serves (lower-case, `*.suffix` wildcards); None = the
    /// DNS names of the certificate's subjectAltName.
    pub names: Option<Vec<String>>,
    /// Served for an unknown or absent SNI (else the first certificate is).
    pub default: bool,
    /// Where it is written, for errors about its files.
    pub origin: crate::Origin,
}

/// `listener.tls.min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl Listener {
    /// Every pool it can send to: the default pool, then each route's (a
    /// pool named twice comes twice).
    pub fn pools(&self) -> impl Iterator<Item = &str> {
        self.default_pool
            .iter()
            .chain(self.routes.iter().map(|r| &r.pool))
            .map(String::as_str)
    }
}

/// `listener.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 cleartext.
    Http,
    /// HTTP over TLS.
    Https,
    /// Plain TCP forwarding.
    Tcp,
    /// TLS forwarded untouched, routed by the ClientHello's SNI.
    TlsPassthrough,
}

impl Protocol {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Tcp => "tcp",
            Self::TlsPassthrough => "tls-passthrough",
        }
    }
}

/// `[[listener.route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host (HTTP) or SNI (TLS passthrough) to match; `None` matches any host.
    pub host: Option<HostPattern>,
    /// Path prefix, always starting with `/`. Default `/`.
    pub path_prefix: String,
    /// Target pool (exists).
    pub pool: String,
}

/// A host name to match: exact, or a `*.suffix` wildcard. Stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `grafana.apps.example.com`
    Exact(String),
    /// `*.apps.example.com`, stored as the suffix with its dot: `.apps.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// Whether `host` (already lower-case, without port) matches.
    #[must_use]
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            // `*` stands for one or more labels, as in HAProxy's and the OpenShift
            // router's wildcard routes; the bare suffix itself does not match.
            Self::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// `[[pool]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Unique pool name.
    pub name: String,
    /// How a server is chosen.
    pub balance: Balance,
    /// Balance over every backup, not only the first (HAProxy `option allbackups`).
    pub use_all_backups: bool,
    /// Tries on another server after a connect failure. Default 3.
    pub retries: u8,
    /// PROXY protocol towards servers.
    pub send_proxy: SendProxy,
    /// What a request may be retried on (`retries` bounds how often).
    pub retry_on: RetryOn,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Active health check; `None` means passive health only.
    pub check: Option<Check>,
    /// Passive outlier detection on live traffic.
    pub passive: Passive,
    /// TLS to the servers (traffic and health checks); None = plain TCP.
    pub tls: Option<PoolTls>,
    /// Servers, at least one.
    pub servers: Vec<Server>,
}

/// `[pool.tls]`: how halo speaks TLS to a pool's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTls {
    /// Name sent as SNI and verified in the server's certificate; None =
    /// the server's host name, or its IP address (then verified against
    /// the certificate's IP SANs, and no SNI sent).
    pub sni: Option<String>,
    /// Verify the server's certificate (HAProxy `verify required`).
    /// `false` is HAProxy's `verify none`.
    pub verify: bool,
    /// CA certificates (PEM) to verify against; None = the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and key (PEM), for servers that ask.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Where `[pool.tls]` is written, for errors about its files.
    pub origin: crate::Origin,
}

/// `pool.balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest in-flight requests/connections, weighted.
    LeastConn,
    /// Consistent hash of the client address.
    Source,
    /// Power of two random choices on in-flight requests.
    RandomTwo,
    /// The first server (in file order) with a free slot.
    First,
}

impl Balance {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConn => "least-conn",
            Balance::Source => "source",
            Balance::RandomTwo => "random-two",
            Balance::First => "first",
        }
    }
}

/// `pool.retry_on`: the failures after which a request goes to another server.
///
/// A connect failure is always safe to retry (nothing was sent). The others are
/// retried only for idempotent requests without a body (GET, HEAD, OPTIONS,
/// TRACE, PUT, DELETE), since the server may have seen the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one flag per HAProxy `retry-on` keyword
pub struct RetryOn {
    /// `conn-failure`: the connection could not be made.
    pub conn_failure: bool,
    /// `empty-response`: the server closed or reset before any response byte.
    pub empty_response: bool,
    /// `junk-response`: the response head could not be parsed.
    pub junk_response: bool,
    /// `response-timeout`: no response head within `timeouts.server`.
    pub response_timeout: bool,
}

impl Default for RetryOn {
    /// `["conn-failure", "empty-response"]`: a server killed under load loses no
    /// idempotent request, and nothing is retried that might run twice.
    fn default() -> Self {
        Self {
            conn_failure: true,
            empty_response: true,
            junk_response: false,
            response_timeout: false,
        }
    }
}

/// `pool.send_proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxy {
    /// No PROXY header.
    Off,
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// `pool.timeouts`. Defaults follow the OpenShift router's HAProxy settings; none is
/// infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect to a server. Default 5s.
    pub connect: Duration,
    /// Server inactivity. Default 30s.
    pub server: Duration,
    /// Client inactivity. Default 30s.
    pub client: Duration,
    /// Whole request head from the client. Default 10s.
    pub request_header: Duration,
    /// Idle time in an upgraded tunnel (WebSocket, TCP). Default 1h.
    pub tunnel: Duration,
    /// Time a request may wait for a server slot. Default: `connect`.
    pub queue: Duration,
}

/// An active health check (`[pool.check]`, or a GSLB endpoint's `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// TCP connect or HTTP request.
    pub kind: CheckKind,
    /// Port to check instead of the server's.
    pub port: Option<u16>,
    /// Time between checks while the state is settled UP. Default 2s.
    pub interval: Duration,
    /// Time between checks while the state is changing. Default `interval`.
    pub fast_interval: Duration,
    /// Time between checks while fully DOWN. Default `interval`.
    pub down_interval: Duration,
    /// One check's whole time budget. Default `interval`.
    pub timeout: Duration,
    /// Successes needed to go UP. Default 2.
    pub rise: u32,
    /// Failures needed to go DOWN. Default 3.
    pub fall: u32,
    /// State before the first check. Default [`InitialState::Up`].
    pub initial: InitialState,
    /// Random spread of each interval, in percent (HAProxy `spread-checks`). Default 10.
    pub spread_percent: u8,
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp,
    /// HTTP/1.1 request.
    Http(HttpCheck),
}

/// The HTTP part of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Request method. Default `GET`.
    pub method: String,
    /// Request path. Default `/`.
    pub path: String,
    /// Host header; default: the server's address.
    pub host: Option<String>,
    /// Statuses that mean UP. Default 200-399.
    pub expect_status: StatusRanges,
    /// A substring the body must contain.
    pub expect_body: Option<String>,
}

/// A set of HTTP status ranges such as `200-299,302`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(pub Vec<RangeInclusive<u16>>);

impl StatusRanges {
    /// Whether `status` is in one of the ranges.
    #[must_use]
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

/// Where a check starts, as HAProxy's `init-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// UP, but the first failed check marks it DOWN (HAProxy's default).
    Up,
    /// UP, and it takes `fall` failed checks to go DOWN.
    FullyUp,
    /// DOWN, but the first good check marks it UP.
    Down,
    /// DOWN, and it takes `rise` good checks to go UP.
    FullyDown,
}

/// `[pool.passive]`: outlier detection from live traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    /// What live traffic counts as a server's error. Default
    /// [`Observe::Layer4`]: failed connects only, which no client can cause.
    pub observe: Observe,
    /// Consecutive errors that mark a server down. Default 10 (HAProxy `error-limit`).
    pub error_limit: u32,
    /// Without an active check: how long the first ejection lasts. Default 30s.
    pub ejection_time: Duration,
    /// Upper bound of the doubling ejection time. Default 5m.
    pub max_ejection_time: Duration,
    /// Passive evidence never leaves more than this percent of a pool's
    /// servers down (rounded down), nor takes its last server serving (UP and ready)
    /// (Envoy's `max_ejection_percent`). Default 50.
    pub max_ejection_percent: u8,
}

/// `pool.passive.observe` (HAProxy's `observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    /// No passive health.
    Off,
    /// Failed connects (refused, unreachable, timed out, TLS handshake).
    Layer4,
    /// Also bad answers: 5xx (but 501 and 505), an empty or invalid response,
    /// no response in time. A client that can make the server answer badly
    /// (an expensive or broken URL) can then eject it.
    Layer7,
}

impl Observe {
    /// Whether failed connects count.
    #[must_use]
    pub fn connects(self) -> bool {
        self != Self::Off
    }

    /// Whether bad answers count.
    #[must_use]
    pub fn answers(self) -> bool {
        self == Self::Layer7
    }

    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Layer4 => "layer4",
            Self::Layer7 => "layer7",
        }
    }
}

impl Default for Passive {
    fn default() -> Self {
        Self {
            observe: Observe::Layer4,
            error_limit: 10,
            ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// The largest weight a server (or GSLB endpoint) takes, in the file or at
/// run time (HAProxy's range, 0..=256).
pub const MAX_WEIGHT: u16 = 256;

/// `[[pool.server]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Unique within its pool.
    pub name: String,
    /// Where it is.
    pub address: ServerAddress,
    /// 0..=256; 0 takes no new load-balanced traffic. Default 1.
    pub weight: u16,
    /// Concurrent requests/connections; 0 = unlimited.
    pub max_conns: u32,
    /// Used only when every non-backup server is down.
    pub backup: bool,
}

/// A server address: a literal socket address or a name resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// `10.0.1.10:80`, `[2001:db8::1]:80`
    Socket(SocketAddr),
    /// `clus1-infra-0.example.com:80`
    Name {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
    },
}

impl ServerAddress {
    /// The host part as written (IP or name), for Host headers and logs.
    #[must_use]
    pub fn host(&self) -> String {
        match self {
            Self::Socket(a) => a.ip().to_string(),
            Self::Name { host, .. } => host.clone(),
        }
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        match self {
            Self::Socket(a) => a.port(),
            Self::Name { port, .. } => *port,
        }
    }
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(a) => write!(f, "{a}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// `[[vip]]`: one VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Unique instance name.
    pub name: String,
    /// Interface the addresses live on.
    pub interface: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// 1..=255 (255 = address owner). Default 100.
    pub priority: u8,
    /// Advertisement interval. Default 1s.
    pub advert_interval: Duration,
    /// VRRP version.
    pub version: VrrpVersion,
    /// Virtual addresses, one address family.
    pub addresses: Vec<IpNet>,
    /// Unicast peering; `None` = multicast.
    pub unicast: Option<Unicast>,
    /// Take over from a lower-priority master. Default true.
    pub preempt: bool,
    /// Wait before preempting. Default 0s.
    pub preempt_delay: Duration,
    /// What lowers the priority or faults the instance.
    pub track: Vec<Track>,
    /// Command run on each transition with name, state, priority.
    pub notify: Option<PathBuf>,
    /// How the version 3 IPv4 checksum is sent.
    pub checksum: VrrpChecksum,
    /// Accept_Mode: a master that is not the owner accepts traffic to the
    /// addresses. Default true (keepalived without `vrrp_strict`).
    pub accept: bool,
    /// Gratuitous ARP / unsolicited NA after a takeover.
    pub garp: Garp,
}

/// The form of the VRRPv3 IPv4 checksum sent (both are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpChecksum {
    /// Over an IPv4 pseudo-header and the message (keepalived; default).
    PseudoHeader,
    /// Over the message only (RFC 9568 §5.2.8; Cisco, Juniper).
    Rfc9568,
}

/// Announcements after a takeover (keepalived's `garp_master_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// Announcements per address in each burst, 1..=100. Default 5.
    pub repeat: u8,
    /// A second burst this long after the first; zero = none. Default 5s.
    pub delay: Duration,
    /// Announce again this often while master; zero = never. Default 0s.
    pub refresh: Duration,
}

/// `[[vip_group]]`: VRRP instances that fail over together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipGroup {
    /// Unique group name.
    pub name: String,
    /// Member instances (each in at most one group).
    pub vips: Vec<String>,
    /// Command run when the group's state changes, with name, state, priority.
    pub notify: Option<PathBuf>,
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpVersion {
    /// RFC 3768 (IPv4 only; keepalived's default).
    V2,
    /// RFC 5798 / RFC 9568.
    V3,
}

/// Unicast VRRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unicast {
    /// Our source address.
    pub source: IpAddr,
    /// The other routers.
    pub peers: Vec<IpAddr>,
    /// Require TTL (hop limit) 255 from peers on the interface's own
    /// networks, whose packets are never routed (`unicast_ttl_check =
    /// "on-link"`, the default); `false`: never check (keepalived's default
    /// in unicast mode).
    pub ttl_check_on_link: bool,
}

/// One `track` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// What is watched.
    pub target: TrackTarget,
    /// Priority change while it is down (-253..=253); `None` = fault.
    pub weight: Option<i16>,
}

/// What a `track` entry watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackTarget {
    /// A listener: down when it has no healthy server to send to.
    Listener(String),
    /// A TCP connect check.
    Tcp(SocketAddr),
}

/// `[gslb]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gslb {
    /// The zone served, lower-case, without trailing dot.
    pub zone: String,
    /// DNS listen addresses (UDP and TCP). Default `0.0.0.0:53`.
    pub listen: Vec<SocketAddr>,
    /// NS names of the zone.
    pub nameservers: Vec<String>,
    /// Every site known to this node (its own, `gslb.sites`, endpoint and geo
    /// sites), sorted.
    pub sites: Vec<String>,
    /// The other sites' halo DNS endpoints.
    pub peers: Vec<Peer>,
    /// How often peers are queried. Default 1s.
    pub peer_interval: Duration,
    /// How long an unreachable peer's last answer is kept. Default 30s.
    pub peer_stale_after: Duration,
    /// TTL of services that set none, in seconds. Default 30.
    pub default_ttl: u32,
    /// `[gslb.probe]`: how this node probes the other sites' endpoints, for
    /// every service without a probe of its own. None: no probes.
    pub probe: Option<Probe>,
    /// Services answered under the zone.
    pub services: Vec<Service>,
    /// Client subnet → site, for `strategy = "geo"`.
    pub geo: Vec<GeoRule>,
    /// Static records of the zone (`[[gslb.record]]`), in file order.
    pub records: Vec<StaticRecord>,
}

/// One entry of `gslb.peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its DNS address.
    pub address: SocketAddr,
    /// Its site when the file says so (`{ address, site }`); otherwise learned
    /// from the peer's answers (halo peers name their site).
    pub site: Option<String>,
}

/// `[[gslb.record]]`: a static record in the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRecord {
    /// Owner name: absolute, lower-case, without trailing dot, inside the zone.
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Type and data.
    pub data: RecordData,
}

/// The data of a static record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// IPv4 address.
    A(std::net::Ipv4Addr),
    /// IPv6 address.
    Aaaa(std::net::Ipv6Addr),
    /// Alias (absolute name, no trailing dot). Alone at its name.
    Cname(String),
    /// Text: one or more character-strings of at most 255 bytes.
    Txt(Vec<String>),
    /// Mail exchange.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// Absolute name.
        exchange: String,
    },
    /// Service location (RFC 2782).
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// Port of the service.
        port: u16,
        /// Absolute name.
        target: String,
    },
}

impl RecordData {
    /// The record type's number on the wire.
    #[must_use]
    pub fn rtype(&self) -> u16 {
        match self {
            Self::A(_) => 1,
            Self::Cname(_) => 5,
            Self::Mx { .. } => 15,
            Self::Txt(_) => 16,
            Self::Aaaa(_) => 28,
            Self::Srv { .. } => 33,
        }
    }
}

/// `[[gslb.service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Label under the zone.
    pub name: String,
    /// How answers are chosen.
    pub strategy: Strategy,
    /// Site order for failover (and geo fallback); every site is known.
    pub failover_order: Vec<String>,
    /// Answer TTL in seconds (0 allowed).
    pub ttl: u32,
    /// What to answer when no endpoint is healthy.
    pub when_all_down: WhenAllDown,
    /// An endpoint that went down is answered again once it has stayed up
    /// this long. Default: the TTL.
    pub hold_down: Duration,
    /// How this node probes the other sites' endpoints of this service:
    /// `[gslb.service.probe]`, else `[gslb.probe]`; None: not probed. Here
    /// the HTTP `host` and the TLS `sni` default to the service's name
    /// under the zone (what its clients send).
    pub probe: Option<Probe>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A GSLB probe: a check of another site's endpoint, over TLS or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What each probe does (the `[pool.check]` keys; `port` is set).
    pub check: Check,
    /// `type = "https"` or `[gslb.probe.tls]`: TLS towards the endpoint,
    /// the keys of `[pool.tls]`. None: plain TCP.
    pub tls: Option<PoolTls>,
}

/// `service.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// All healthy endpoints, rotated.
    RoundRobin,
    /// `max_answers` endpoints drawn by weight.
    Weighted {
        /// How many addresses per answer. Default 1.
        max_answers: u8,
    },
    /// First site in `failover_order` with a healthy endpoint.
    Failover,
    /// The client's site by subnet, then `failover_order`.
    Geo,
}

impl Strategy {
    /// The config spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Weighted { .. } => "weighted",
            Strategy::Failover => "failover",
            Strategy::Geo => "geo",
        }
    }
}

/// `service.when_all_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Answer every endpoint (fail open).
    All,
    /// NXDOMAIN.
    Nxdomain,
    /// SERVFAIL.
    Servfail,
}

/// `[[gslb.service.endpoint]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Address clients should use.
    pub address: IpAddr,
    /// Site it belongs to; default the node's.
    pub site: String,
    /// Where its health comes from.
    pub health: EndpointHealth,
    /// 0..=256. Default 1.
    pub weight: u16,
}

/// Health source of a GSLB endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointHealth {
    /// Always healthy.
    Always,
    /// Healthy while a peer (not stale) publishes it in its `localtargets-`
    /// answer: the default for another site's endpoint when there are peers.
    Peers,
    /// Healthy while the pool has a healthy server.
    Pool(String),
    /// A check of its own (port set).
    Check(Check),
}

/// `[[gslb.geo]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoRule {
    /// Client subnet.
    pub cidr: IpNet,
    /// Site for it.
    pub site: String,
}

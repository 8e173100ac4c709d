//! The JSON of `GET /api/status`: one snapshot of the node, built by the
//! binary (which owns the running tiers) and served as is. `halo status`
//! reads the same types back.

use serde::{Deserialize, Serialize};

/// The whole node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `node.name`.
    pub node: String,
    /// `node.site`.
    pub site: String,
    /// halo's version.
    pub version: String,
    /// Seconds since the process started.
    pub uptime_secs: f64,
    /// Seconds since the running config was loaded (start or last reload).
    pub config_age_secs: f64,
    /// Proxy listeners.
    pub listeners: Vec<ListenerStatus>,
    /// Server pools.
    pub pools: Vec<PoolStatus>,
    /// VRRP instances.
    pub vips: Vec<VipStatus>,
    /// The DNS tier, when `[gslb]` is configured.
    pub gslb: Option<GslbStatus>,
    /// The admin listener's own counters (filled in by the admin API).
    #[serde(default)]
    pub admin: AdminCounters,
}

/// What the admin listener refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCounters {
    /// Connections closed at once: 64 open, or 16 from the client's address.
    pub connections_refused: u64,
    /// Accepts that failed (out of descriptors, most often).
    pub accept_errors: u64,
    /// Changes refused for a missing or wrong token.
    pub unauthorized: u64,
}

/// Proxy counters of a listener, pool or server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests (HTTP) or connections (TCP) handled.
    pub requests: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    /// Failures (connect errors, resets, timeouts).
    pub errors: u64,
    /// Retries on another server.
    pub retries: u64,
    /// Connections open now.
    pub active: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Listener: accepts that failed (out of descriptors, most often).
    #[serde(default)]
    pub accept_errors: u64,
    /// Server: connects that failed on this host's own limits (descriptors,
    /// memory, local ports); not counted in `errors` nor against health.
    #[serde(default)]
    pub local_errors: u64,
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// Name.
    pub name: String,
    /// `http`, `tcp`, ...
    pub protocol: String,
    /// Bound addresses.
    pub binds: Vec<String>,
    /// Pools it can send to (default pool and routes).
    pub pools: Vec<String>,
    /// Counters.
    pub counters: Counters,
}

/// One `[[pool]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Name.
    pub name: String,
    /// Balance algorithm.
    pub balance: String,
    /// Its servers.
    pub servers: Vec<ServerStatus>,
    /// Counters.
    pub counters: Counters,
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Name.
    pub name: String,
    /// `ip:port` or `host:port` as configured.
    pub address: String,
    /// Health: "up" or "down".
    pub health: String,
    /// Admin state: "ready", "drain" or "maint".
    pub admin: String,
    /// Weight.
    pub weight: u16,
    /// A backup server.
    pub backup: bool,
    /// Counters.
    pub counters: Counters,
}

/// One `[[vip]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipStatus {
    /// Name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Addresses (with prefix length).
    pub addresses: Vec<String>,
    /// "INIT", "BACKUP", "MASTER" or "FAULT".
    pub state: String,
    /// Effective priority (tracking applied).
    pub priority: u8,
    /// Configured priority.
    pub configured_priority: u8,
    /// Priority 255: this node owns the addresses.
    pub owner: bool,
    /// Its `[[vip_group]]`, if any.
    pub group: Option<String>,
    /// Seconds since the last state change; None before the first.
    pub last_transition_secs_ago: Option<f64>,
    /// Packet counters.
    pub counters: VrrpCounters,
}

/// A VRRP instance's packet counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpCounters {
    /// Packets received.
    pub received: u64,
    /// Advertisements sent.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Dropped: multicast TTL not 255.
    pub dropped_ttl: u64,
    /// Dropped: unicast source not among the peers.
    pub dropped_peer: u64,
    /// Dropped: another VRID (another instance on the interface).
    pub dropped_vrid: u64,
    /// Dropped: unknown or other version.
    pub dropped_version: u64,
    /// Dropped: bad length.
    pub dropped_length: u64,
    /// Dropped: bad checksum.
    pub dropped_checksum: u64,
    /// Dropped: other malformed packets.
    pub dropped_other: u64,
    /// State changes.
    pub transitions: u64,
}

/// The DNS tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GslbStatus {
    /// The zone.
    pub zone: String,
    /// Services and what they answer now.
    pub services: Vec<ServiceStatus>,
    /// Peers.
    pub peers: Vec<PeerInfo>,
    /// Queries answered over UDP and TCP.
    pub queries: u64,
    /// TCP accepts that failed (out of descriptors, most often).
    #[serde(default)]
    pub tcp_accept_errors: u64,
    /// TCP connections closed at once: a worker had as many open as it takes.
    #[serde(default)]
    pub tcp_refused: u64,
}

/// One `[[gslb.service]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name (without the zone).
    pub name: String,
    /// Strategy.
    pub strategy: String,
    /// What an A and an AAAA query from an unlocated client get now (one
    /// draw for `weighted`; "NXDOMAIN" / "SERVFAIL" when all are down and
    /// `when_all_down` says so).
    pub answer: Vec<String>,
    /// Every endpoint, local or learned from peers.
    pub endpoints: Vec<EndpointInfo>,
    /// What each GSLB node answers now: this node first, then each peer,
    /// asked over DNS as a resolver would (empty when not asked).
    #[serde(default)]
    pub by_node: Vec<NodeAnswer>,
}

/// What one GSLB node answers for a service, A and AAAA together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAnswer {
    /// "this node", or the peer's DNS address.
    pub node: String,
    /// Its site, if known.
    pub site: Option<String>,
    /// Addresses, or "NXDOMAIN" / "SERVFAIL" / "no answer".
    pub answer: Vec<String>,
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Address.
    pub address: String,
    /// Site.
    pub site: String,
    /// Whether answers may carry it.
    pub healthy: bool,
    /// Another site's endpoint of a probed service: the verdict and its
    /// inputs (docs/operations.md has the table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictInfo>,
}

/// The verdict on another site's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictInfo {
    /// May be answered.
    pub up: bool,
    /// Why, in words.
    pub why: String,
    /// What its site's last answer said: `listed`, `not listed`, `never`.
    pub site_says: String,
    /// Its site's DNS node: `reachable`, `unreachable`, `stale`.
    pub site_dns: String,
    /// This node's probe: reaches it or not; None before its first result.
    pub probe: Option<bool>,
    /// Probe votes that reach it (this node's included).
    pub votes_up: u32,
    /// Probe votes that do not.
    pub votes_down: u32,
    /// Seconds since the verdict became what it is.
    pub since_secs: f64,
}

/// One GSLB peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its DNS address.
    pub address: String,
    /// Its site, if known.
    pub site: Option<String>,
    /// Whether its last query succeeded.
    pub reachable: bool,
    /// Seconds since it last answered; None = never.
    pub last_answer_secs_ago: Option<f64>,
    /// Addresses it publishes.
    pub endpoints: usize,
    /// Addresses it published before its answers went stale (answered only
    /// by `when_all_down = "all"`).
    #[serde(default)]
    pub stale_endpoints: usize,
}

//! Stage 1: the file as written. Every struct rejects unknown keys; values that
//! need range or cross-reference checks keep their span so stage 2 can point at
//! them. Nothing here is trusted: `validate` turns it into [`crate::Config`].

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) node: Option<S<RawNode>>,
    pub(crate) admin: Option<S<RawAdmin>>,
    #[serde(default)]
    pub(crate) listener: Vec<S<RawListener>>,
    #[serde(default)]
    pub(crate) pool: Vec<S<RawPool>>,
    #[serde(default)]
    pub(crate) vip: Vec<S<RawVip>>,
    #[serde(default)]
    pub(crate) vip_group: Vec<S<RawVipGroup>>,
    pub(crate) gslb: Option<S<RawGslb>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub(crate) name: Option<S<String>>,
    pub(crate) site: Option<S<String>>,
    pub(crate) threads: Option<S<i64>>,
    pub(crate) stop_grace: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<S<String>>,
    pub(crate) token_file: Option<S<String>>,
    pub(crate) state_file: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawProtocol {
    Http,
    Https,
    Tcp,
    TlsPassthrough,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) name: S<String>,
    pub(crate) bind: S<Vec<S<String>>>,
    pub(crate) protocol: Option<S<RawProtocol>>,
    pub(crate) default_pool: Option<S<String>>,
    #[serde(default)]
    pub(crate) accept_proxy: bool,
    pub(crate) access_log: Option<bool>,
    #[serde(default)]
    pub(crate) route: Vec<S<RawRoute>>,
    #[serde(default)]
    pub(crate) certificate: Vec<S<RawCertificate>>,
    pub(crate) tls: Option<S<RawListenerTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) cert: S<String>,
    pub(crate) key: S<String>,
    pub(crate) names: Option<Vec<S<String>>>,
    #[serde(default)]
    pub(crate) default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenerTls {
    pub(crate) min_version: Option<S<String>>,
    pub(crate) alpn: Option<S<Vec<S<String>>>>,
    pub(crate) handshake_timeout: Option<S<String>>,
    pub(crate) watch_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) host: Option<S<String>>,
    pub(crate) path_prefix: Option<S<String>>,
    pub(crate) pool: S<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawBalance {
    RoundRobin,
    LeastConn,
    Source,
    RandomTwo,
    First,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawTtlCheck {
    OnLink,
    Off,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawObserve {
    Off,
    Layer4,
    Layer7,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawSendProxy {
    Off,
    V1,
    V2,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawRetryOn {
    ConnFailure,
    EmptyResponse,
    JunkResponse,
    ResponseTimeout,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) name: S<String>,
    pub(crate) balance: Option<RawBalance>,
    #[serde(default)]
    pub(crate) use_all_backups: bool,
    pub(crate) retries: Option<S<i64>>,
    pub(crate) send_proxy: Option<RawSendProxy>,
    pub(crate) retry_on: Option<Vec<RawRetryOn>>,
    pub(crate) timeouts: Option<RawTimeouts>,
    pub(crate) check: Option<S<RawCheck>>,
    pub(crate) passive: Option<RawPassive>,
    pub(crate) tls: Option<S<RawPoolTls>>,
    #[serde(default)]
    pub(crate) server: Vec<S<RawServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoolTls {
    pub(crate) sni: Option<S<String>>,
    pub(crate) ca_file: Option<S<String>>,
    pub(crate) verify: Option<S<bool>>,
    pub(crate) cert: Option<S<String>>,
    pub(crate) key: Option<S<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) connect: Option<S<String>>,
    pub(crate) server: Option<S<String>>,
    pub(crate) client: Option<S<String>>,
    pub(crate) request_header: Option<S<String>>,
    pub(crate) tunnel: Option<S<String>>,
    pub(crate) queue: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawCheckType {
    Tcp,
    Http,
    Https,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawInitial {
    Up,
    FullyUp,
    Down,
    FullyDown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(rename = "type")]
    pub(crate) kind: Option<RawCheckType>,
    pub(crate) port: Option<S<i64>>,
    pub(crate) method: Option<S<String>>,
    pub(crate) path: Option<S<String>>,
    pub(crate) host: Option<S<String>>,
    pub(crate) expect_status: Option<S<String>>,
    pub(crate) expect_body: Option<S<String>>,
    pub(crate) interval: Option<S<String>>,
    pub(crate) fast_interval: Option<S<String>>,
    pub(crate) down_interval: Option<S<String>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) rise: Option<S<i64>>,
    pub(crate) fall: Option<S<i64>>,
    pub(crate) initial: Option<RawInitial>,
    pub(crate) spread: Option<S<i64>>,
    /// GSLB probes only: TLS towards the endpoint (`[gslb.probe.tls]`).
    pub(crate) tls: Option<S<RawPoolTls>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassive {
    pub(crate) observe: Option<RawObserve>,
    pub(crate) error_limit: Option<S<i64>>,
    pub(crate) max_ejection_percent: Option<S<i64>>,
    pub(crate) ejection_time: Option<S<String>>,
    pub(crate) max_ejection_time: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) name: S<String>,
    pub(crate) address: S<String>,
    pub(crate) weight: Option<S<i64>>,
    pub(crate) max_conns: Option<S<i64>>,
    #[serde(default)]
    pub(crate) backup: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVip {
    pub(crate) name: S<String>,
    pub(crate) interface: S<String>,
    pub(crate) vrid: S<i64>,
    pub(crate) priority: Option<S<i64>>,
    pub(crate) advert_interval: Option<S<String>>,
    pub(crate) version: Option<S<i64>>,
    pub(crate) addresses: S<Vec<S<String>>>,
    pub(crate) unicast_source: Option<S<String>>,
    pub(crate) unicast_peers: Option<S<Vec<S<String>>>>,
    pub(crate) unicast_ttl_check: Option<RawTtlCheck>,
    pub(crate) preempt: Option<bool>,
    pub(crate) preempt_delay: Option<S<String>>,
    #[serde(default)]
    pub(crate) track: Vec<S<RawTrack>>,
    pub(crate) notify: Option<S<String>>,
    pub(crate) checksum: Option<RawChecksum>,
    pub(crate) accept: Option<bool>,
    pub(crate) garp_repeat: Option<S<i64>>,
    pub(crate) garp_delay: Option<S<String>>,
    pub(crate) garp_refresh: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawChecksum {
    PseudoHeader,
    Rfc9568,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVipGroup {
    pub(crate) name: S<String>,
    pub(crate) vips: S<Vec<S<String>>>,
    pub(crate) notify: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrack {
    pub(crate) listener: Option<S<String>>,
    pub(crate) tcp: Option<S<String>>,
    pub(crate) weight: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGslb {
    pub(crate) zone: S<String>,
    pub(crate) listen: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub(crate) nameservers: Vec<S<String>>,
    #[serde(default)]
    pub(crate) sites: Vec<S<String>>,
    #[serde(default)]
    pub(crate) peers: Vec<S<RawPeer>>,
    pub(crate) peer_interval: Option<S<String>>,
    pub(crate) peer_stale_after: Option<S<String>>,
    pub(crate) default_ttl: Option<S<String>>,
    pub(crate) probe: Option<S<RawCheck>>,
    #[serde(default)]
    pub(crate) service: Vec<S<RawService>>,
    #[serde(default)]
    pub(crate) geo: Vec<S<RawGeo>>,
    #[serde(default)]
    pub(crate) record: Vec<S<RawRecord>>,
}

/// `"ip:port"` or `{ address = "ip:port", site = "west" }`; deserialised by hand
/// for the same reason as [`RawHealth`].
#[derive(Debug)]
pub(crate) enum RawPeer {
    Address(String),
    Table(RawPeerTable),
}

impl<'de> Deserialize<'de> for RawPeer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawPeer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"ip:port\" or { address = \"ip:port\", site = \"NAME\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPeer, E> {
                Ok(RawPeer::Address(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawPeer, A::Error> {
                RawPeerTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawPeer::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeerTable {
    pub(crate) address: S<String>,
    pub(crate) site: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum RawRecordType {
    A,
    Aaaa,
    Cname,
    Txt,
    Mx,
    Srv,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    pub(crate) name: S<String>,
    #[serde(rename = "type")]
    pub(crate) rtype: S<RawRecordType>,
    pub(crate) value: S<String>,
    pub(crate) ttl: Option<S<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawStrategy {
    RoundRobin,
    Weighted,
    Failover,
    Geo,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawWhenAllDown {
    All,
    Nxdomain,
    Servfail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: S<String>,
    pub(crate) strategy: Option<S<RawStrategy>>,
    #[serde(default)]
    pub(crate) failover_order: Vec<S<String>>,
    pub(crate) ttl: Option<S<String>>,
    pub(crate) when_all_down: Option<RawWhenAllDown>,
    pub(crate) hold_down: Option<S<String>>,
    pub(crate) max_answers: Option<S<i64>>,
    pub(crate) probe: Option<S<RawCheck>>,
    #[serde(default)]
    pub(crate) endpoint: Vec<S<RawEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub(crate) address: S<String>,
    pub(crate) site: Option<S<String>>,
    pub(crate) health: Option<S<RawHealth>>,
    pub(crate) weight: Option<S<i64>>,
}

/// `"always"`, `{ pool = "NAME" }` or `{ check = { ... } }`.
///
/// Deserialised by hand: `#[serde(untagged)]` buffers the value, which loses the
/// spans that `Spanned` fields inside the table need.
#[derive(Debug)]
pub(crate) enum RawHealth {
    Word(String),
    Table(Box<RawHealthTable>),
}

impl<'de> Deserialize<'de> for RawHealth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawHealth;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"always\", { pool = \"NAME\" } or { check = { ... } }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawHealth, E> {
                Ok(RawHealth::Word(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawHealth, A::Error> {
                RawHealthTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| RawHealth::Table(Box::new(t)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthTable {
    pub(crate) pool: Option<S<String>>,
    pub(crate) check: Option<S<RawCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGeo {
    pub(crate) cidr: S<String>,
    pub(crate) site: S<String>,
}

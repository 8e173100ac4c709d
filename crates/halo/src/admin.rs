//! The main loop's side of the admin API: builds [`Status`] from the running
//! tiers and carries out server state changes. (Reloads go through
//! `run::reload`, the same path as SIGHUP.)

use std::sync::atomic::Ordering;

use halo_admin::ServerState;
use halo_admin::status::{
    Counters, EndpointInfo, GslbStatus, ListenerStatus, NodeAnswer, PeerInfo, PoolStatus,
    ServerStatus, ServiceStatus, Status, VipStatus, VrrpCounters,
};
use halo_config::Config;
use halo_dns::Dns;
use halo_gslb::{Answer, Picker, Query, Rcode, rtype};
use halo_health::{AdminState, Registry, ServerKey};
use halo_proxy::Proxy;
use halo_proxy::stats::CountersView;
use tokio::time::Instant;

use crate::vip::Vips;

/// What the status needs besides the tiers.
pub(crate) struct Clock {
    pub(crate) started: Instant,
    pub(crate) loaded: Instant,
}

fn counters(c: CountersView) -> Counters {
    Counters {
        requests: c.requests,
        responses: c.responses,
        errors: c.errors,
        retries: c.retries,
        active: c.active,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        accept_errors: c.accept_errors,
        local_errors: c.local_errors,
    }
}

fn admin_name(a: AdminState) -> &'static str {
    match a {
        AdminState::Ready => "ready",
        AdminState::Drain => "drain",
        AdminState::Maint => "maint",
    }
}

/// One snapshot of everything.
pub(crate) fn status(
    clock: &Clock,
    config: &Config,
    registry: &Registry,
    proxy: &Proxy,
    dns: Option<&Dns>,
    vips: &Vips,
) -> Status {
    let now = Instant::now();
    let stats = proxy.stats();
    let listener_counters: std::collections::HashMap<String, CountersView> =
        stats.listeners().into_iter().collect();
    let pool_counters: std::collections::HashMap<String, CountersView> =
        stats.pools().into_iter().collect();
    let server_counters: std::collections::HashMap<(String, String), CountersView> =
        stats.servers().into_iter().collect();
    let listeners = config
        .listeners
        .iter()
        .map(|l| ListenerStatus {
            name: l.name.clone(),
            protocol: l.protocol.as_str().to_owned(),
            binds: proxy
                .bound()
                .iter()
                .filter(|(n, _)| *n == l.name)
                .map(|(_, a)| a.to_string())
                .collect(),
            pools: l.pools().map(str::to_owned).collect(),
            counters: counters(listener_counters.get(&l.name).copied().unwrap_or_default()),
        })
        .collect();
    let pools = config
        .pools
        .iter()
        .map(|p| PoolStatus {
            name: p.name.clone(),
            balance: p.balance.as_str().to_owned(),
            servers: p
                .servers
                .iter()
                .map(|s| {
                    let h = registry.health(&ServerKey::new(&p.name, &s.name));
                    ServerStatus {
                        name: s.name.clone(),
                        address: s.address.to_string(),
                        health: if h.as_ref().is_some_and(|h| h.is_up()) {
                            "up"
                        } else {
                            "down"
                        }
                        .to_owned(),
                        admin: admin_name(h.map_or(AdminState::Ready, |h| h.admin())).to_owned(),
                        weight: registry
                            .health(&ServerKey::new(&p.name, &s.name))
                            .and_then(|h| h.weight())
                            .unwrap_or(s.weight),
                        backup: s.backup,
                        counters: counters(
                            server_counters
                                .get(&(p.name.clone(), s.name.clone()))
                                .copied()
                                .unwrap_or_default(),
                        ),
                    }
                })
                .collect(),
            counters: counters(pool_counters.get(&p.name).copied().unwrap_or_default()),
        })
        .collect();
    let vips = vips
        .each()
        .into_iter()
        .map(|(v, rt, c)| {
            let n = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
            VipStatus {
                group: config
                    .vip_groups
                    .iter()
                    .find(|g| g.vips.contains(&v.name))
                    .map(|g| g.name.clone()),
                interface: v.interface.clone(),
                vrid: v.vrid,
                addresses: v.addresses.iter().map(ToString::to_string).collect(),
                state: rt.state.as_str().to_owned(),
                priority: rt.priority,
                configured_priority: v.priority,
                owner: v.priority == 255,
                last_transition_secs_ago: rt.last_change.map(|t| (now - t).as_secs_f64()),
                counters: VrrpCounters {
                    received: n(&c.received),
                    sent: n(&c.sent),
                    send_errors: n(&c.send_errors),
                    dropped_ttl: n(&c.drop_ttl),
                    dropped_peer: n(&c.drop_peer),
                    dropped_vrid: n(&c.drop_vrid),
                    dropped_version: n(&c.drop_version),
                    dropped_length: n(&c.drop_length),
                    dropped_checksum: n(&c.drop_checksum),
                    dropped_other: n(&c.drop_other),
                    transitions: n(&c.transitions),
                },
                name: v.name,
            }
        })
        .collect();
    let gslb = config
        .gslb
        .as_ref()
        .zip(dns)
        .map(|(g, dns)| gslb_status(&g.zone, &config.node.site, dns, now));
    Status {
        node: config.node.name.clone(),
        site: config.node.site.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: (now - clock.started).as_secs_f64(),
        config_age_secs: (now - clock.loaded).as_secs_f64(),
        listeners,
        pools,
        vips,
        gslb,
        admin: halo_admin::status::AdminCounters::default(),
    }
}

fn gslb_status(zone: &str, site: &str, dns: &Dns, now: Instant) -> GslbStatus {
    let published = dns.published();
    let snap = &published.snapshot;
    let z = &snap.zone;
    let mut picker = Picker::new(0);
    let services = z
        .services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let name = format!("{}.{zone}", svc.name);
            let mut answer = Vec::new();
            for qtype in [rtype::A, rtype::AAAA] {
                let q = Query {
                    name: name.as_bytes(),
                    qtype,
                    client: None,
                };
                let r = snap.resolve(&q, &mut picker);
                match (r.rcode, r.answer) {
                    (_, Answer::Addresses { addresses, .. }) => {
                        answer.extend(addresses.iter().map(ToString::to_string));
                    }
                    (Rcode::NxDomain, _) => answer.push("NXDOMAIN".into()),
                    (Rcode::ServFail, _) => answer.push("SERVFAIL".into()),
                    _ => {}
                }
            }
            answer.dedup();
            ServiceStatus {
                name: svc.name.clone(),
                strategy: svc.strategy.as_str().to_owned(),
                by_node: vec![NodeAnswer {
                    node: "this node".into(),
                    site: Some(site.to_owned()),
                    answer: answer.clone(),
                }],
                answer,
                endpoints: snap.services[i]
                    .iter()
                    .map(|e| EndpointInfo {
                        address: e.address.to_string(),
                        site: snap.site_name(e.site).to_owned(),
                        healthy: e.healthy,
                        verdict: e.judged.map(|j| verdict_info(&j, now)),
                    })
                    .collect(),
            }
        })
        .collect();
    let peers = dns
        .peers()
        .into_iter()
        .map(|p| PeerInfo {
            address: p.address.to_string(),
            site: p.site,
            reachable: !p.unreachable && p.last_answer.is_some(),
            last_answer_secs_ago: p
                .last_answer
                .map(|t| now.into_std().saturating_duration_since(t).as_secs_f64()),
            endpoints: p.endpoints,
            stale_endpoints: p.stale_endpoints,
        })
        .collect();
    let t = dns.stats().total();
    GslbStatus {
        zone: zone.to_owned(),
        services,
        peers,
        queries: t.udp + t.tcp,
        tcp_accept_errors: t.tcp_accept_errors,
        tcp_refused: t.tcp_refused,
    }
}

/// A verdict as the status shows it.
fn verdict_info(j: &halo_gslb::snapshot::Judged, now: Instant) -> halo_admin::status::VerdictInfo {
    use halo_gslb::verdict::{SiteDns, SiteWord};
    halo_admin::status::VerdictInfo {
        up: j.verdict.up,
        why: j.verdict.why.as_str().to_owned(),
        site_says: match j.word {
            SiteWord::Listed => "listed",
            SiteWord::NotListed => "not listed",
            SiteWord::Never => "never",
        }
        .to_owned(),
        site_dns: match j.dns {
            SiteDns::Reachable => "reachable",
            SiteDns::Unreachable => "unreachable",
            SiteDns::Stale => "stale",
        }
        .to_owned(),
        probe: j.mine,
        votes_up: j.votes.up,
        votes_down: j.votes.down,
        since_secs: now
            .into_std()
            .saturating_duration_since(j.since)
            .as_secs_f64(),
    }
}

/// What each GSLB peer answers for every service, as the status shows it:
/// asked over DNS at most once per `peer_interval`, whoever asks for the
/// status how often (before, each `GET /api/status`, which needs no token,
/// sent two queries per service to every peer on fresh sockets: 100 clients
/// made 2,364 open files and 25.6k queries to a peer in 10 s). Concurrent
/// requests wait for the one asking and share its answers.
#[derive(Debug, Default)]
pub(crate) struct PeerAnswers {
    last: tokio::sync::Mutex<Option<Asked>>,
}

/// One round of asking, and what it was asked of.
#[derive(Debug)]
struct Asked {
    at: Instant,
    /// The services and peers asked about (a reload changes them).
    of: (Vec<String>, Vec<std::net::SocketAddr>),
    /// Per service, per peer (in `of`'s order): the answer.
    answers: Vec<Vec<Vec<String>>>,
}

impl PeerAnswers {
    /// Adds to `st` what each peer answers for every service (A and AAAA,
    /// each question given `PEER_WAIT` twice), from the last round if it is
    /// younger than `interval`.
    pub(crate) async fn add_to(
        &self,
        mut st: Status,
        peers: Vec<halo_dns::PeerStatus>,
        interval: std::time::Duration,
    ) -> Status {
        let Some(g) = st.gslb.as_mut() else {
            return st;
        };
        let of = (
            g.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            peers.iter().map(|p| p.address).collect::<Vec<_>>(),
        );
        let mut last = self.last.lock().await;
        let fresh = last
            .as_ref()
            .is_some_and(|a| a.of == of && a.at.elapsed() < interval);
        if !fresh {
            let answers = ask_peers(&g.zone, &of.0, &peers).await;
            *last = Some(Asked {
                at: Instant::now(),
                of,
                answers,
            });
        }
        let asked = last.as_ref().expect("set above");
        for (svc, answers) in g.services.iter_mut().zip(&asked.answers) {
            for (peer, answer) in peers.iter().zip(answers) {
                svc.by_node.push(NodeAnswer {
                    node: peer.address.to_string(),
                    site: peer.site.clone(),
                    answer: answer.clone(),
                });
            }
        }
        st
    }
}

/// Asks every peer for every service (A and AAAA, at once, each question
/// given `PEER_WAIT` twice): per service, per peer, the addresses, or how
/// the questions without one ended.
async fn ask_peers(
    zone: &str,
    services: &[String],
    peers: &[halo_dns::PeerStatus],
) -> Vec<Vec<Vec<String>>> {
    const PEER_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
    let mut asks = tokio::task::JoinSet::new();
    for (s, svc) in services.iter().enumerate() {
        for (p, peer) in peers.iter().enumerate() {
            for qtype in [rtype::A, rtype::AAAA] {
                let (address, name) = (peer.address, format!("{svc}.{zone}"));
                asks.spawn(
                    async move { (s, p, halo_dns::ask(address, &name, qtype, PEER_WAIT).await) },
                );
            }
        }
    }
    // Per (service, peer): addresses, and how the questions without one ended.
    type Heard = (Vec<String>, Vec<&'static str>);
    let mut found: std::collections::HashMap<(usize, usize), Heard> =
        std::collections::HashMap::new();
    while let Some(Ok((s, p, reply))) = asks.join_next().await {
        let entry = found.entry((s, p)).or_default();
        match reply {
            Some(r) if r.rcode == 0 => {
                entry.0.extend(r.addresses.iter().map(ToString::to_string));
            }
            Some(r) if r.rcode == 3 => entry.1.push("NXDOMAIN"),
            Some(r) if r.rcode == 5 => entry.1.push("REFUSED"),
            Some(_) => entry.1.push("SERVFAIL"),
            None => entry.1.push("no answer"),
        }
    }
    (0..services.len())
        .map(|s| {
            (0..peers.len())
                .map(|p| {
                    let (answer, mut failures) = found.remove(&(s, p)).unwrap_or_default();
                    if answer.is_empty() {
                        failures.dedup();
                        failures.into_iter().map(str::to_owned).collect()
                    } else {
                        answer
                    }
                })
                .collect()
        })
        .collect()
}

/// Sets `pool/server`'s admin state and/or weight; Err names what does not
/// exist.
pub(crate) fn set_server(
    config: &Config,
    registry: &Registry,
    target: (&str, &str),
    state: Option<ServerState>,
    weight: Option<u16>,
    who: &str,
) -> Result<String, String> {
    let (pool, server) = target;
    let Some(p) = config.pools.iter().find(|p| p.name == pool) else {
        return Err(format!("no pool named \"{pool}\""));
    };
    if !p.servers.iter().any(|s| s.name == server) {
        return Err(format!("pool \"{pool}\" has no server named \"{server}\""));
    }
    let Some(h) = registry.health(&ServerKey::new(pool, server)) else {
        return Err(format!("{pool}/{server} is not monitored"));
    };
    let mut done = Vec::new();
    if let Some(state) = state {
        let admin = match state {
            ServerState::Ready => AdminState::Ready,
            ServerState::Drain => AdminState::Drain,
            ServerState::Maint => AdminState::Maint,
        };
        h.set_admin(admin);
        done.push(format!("now {}", admin_name(admin)));
    }
    if let Some(w) = weight {
        h.set_weight(Some(w));
        done.push(format!("weight {w}"));
    }
    let done = format!("{pool}/{server} is {}", done.join(", "));
    tracing::info!(%who, "admin change: {done}");
    Ok(done)
}

/// The bearer token from `[admin] token_file`, trimmed; None without one.
/// A file any user can read, or a token under 16 bytes, is refused.
pub(crate) fn read_token(config: &Config) -> anyhow::Result<Option<String>> {
    let Some(path) = config.admin.as_ref().and_then(|a| a.token_file.as_ref()) else {
        return Ok(None);
    };
    Ok(Some(halo_admin::read_token_file(path)?))
}

//! The controller: turns local health and peer answers into snapshots.
//!
//! One tokio task on the control-plane runtime. It
//! * rebuilds the snapshot on every health event (cheap: a few endpoints per
//!   service) and, when this node's `localtargets-` answers changed, sends DNS
//!   NOTIFY to every peer (RFC 1996) so they re-query at once (also when
//!   its probe results change);
//! * asks every peer for every service's `localtargets-` (A and AAAA) each
//!   `peer_interval`, all in parallel, each with a timeout and one retry;
//! * re-asks a peer as soon as it sends us a NOTIFY;
//! * drops a silent peer's last answer once it is `peer_stale_after` old;
//! * for services with a probe, probes the other sites' endpoints (one
//!   [`Monitor`] each, on its own [`HealthHub`]), asks every peer for its
//!   `probes-` verdicts, and judges those endpoints by
//!   [`halo_gslb::verdict::judge`] (docs/operations.md has the table).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use halo_config::{Config, EndpointHealth, Passive, Probe, ServerAddress};
use halo_gslb::snapshot::Probing;
use halo_gslb::{Family, Holds, PeerResult, PeerStatus, PeerTable, Snapshot, Zone, rtype};
use halo_health::{HealthHub, Monitor, PoolTlsClient, Registry, ServerHealth, ServerKey, gslb_key};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::Instant;

use crate::server::Published;
use crate::wire::{self, OPCODE_NOTIFY, OPCODE_QUERY};

/// How often a NOTIFY is sent before giving up on an acknowledgement.
const NOTIFY_TRIES: u32 = 3;
const NOTIFY_WAIT: Duration = Duration::from_millis(300);

/// Where one endpoint's local health comes from.
enum Local {
    /// Not judged by this node's checks (always, or by peers).
    Remote,
    /// Healthy while one of these servers is serving.
    Pool(Vec<Arc<ServerHealth>>),
    /// Its own check (None: the registry had no monitor, which reads as down).
    Check(Option<Arc<ServerHealth>>),
}

/// The part of a config the controller runs.
pub(crate) struct Plan {
    zone: Arc<Zone>,
    peers: Vec<halo_config::Peer>,
    local: Vec<Vec<Local>>,
    interval: Duration,
    stale_after: Duration,
    /// Per service, its probe's TLS client, if it probes over TLS.
    probe_tls: Vec<Option<PoolTlsClient>>,
}

impl Plan {
    pub(crate) fn new(
        config: &Config,
        registry: &Registry,
        probe_tls: Vec<Option<PoolTlsClient>>,
    ) -> Option<Self> {
        let gslb = config.gslb.as_ref()?;
        let zone = Arc::new(Zone::new(gslb, &config.node.site));
        let local = gslb
            .services
            .iter()
            .map(|s| {
                s.endpoints
                    .iter()
                    .map(|e| match &e.health {
                        EndpointHealth::Always | EndpointHealth::Peers => Local::Remote,
                        EndpointHealth::Pool(pool) => Local::Pool(
                            config
                                .pools
                                .iter()
                                .filter(|p| &p.name == pool)
                                .flat_map(|p| &p.servers)
                                .filter_map(|srv| registry.health(&ServerKey::new(pool, &srv.name)))
                                .collect(),
                        ),
                        EndpointHealth::Check(_) => {
                            Local::Check(registry.health(&gslb_key(&s.name, e.address)))
                        }
                    })
                    .collect()
            })
            .collect();
        Some(Self {
            zone,
            peers: gslb.peers.clone(),
            local,
            interval: gslb.peer_interval,
            stale_after: gslb.peer_stale_after,
            probe_tls,
        })
    }

    fn local_up(&self, service: usize, endpoint: usize) -> bool {
        match self.local.get(service).and_then(|s| s.get(endpoint)) {
            Some(Local::Pool(servers)) => servers.iter().any(|h| h.is_serving()),
            Some(Local::Check(h)) => h.as_ref().is_some_and(|h| h.is_serving()),
            Some(Local::Remote) | None => true,
        }
    }

    fn service_names(&self) -> Vec<String> {
        self.zone.services.iter().map(|s| s.name.clone()).collect()
    }

    /// The state now: local health, what peers publish, and the hold-down
    /// on endpoints that came back.
    fn snapshot(
        &self,
        serial: u32,
        peers: &PeerTable,
        holds: &mut Holds,
        probing: Option<&Probing<'_>>,
    ) -> Snapshot {
        let now = Instant::now().into_std();
        let zone = &self.zone;
        let snapshot = Snapshot::build_settled(
            Arc::clone(zone),
            serial,
            &|s, e| self.local_up(s, e),
            peers,
            probing,
            &mut |s, address, up| {
                let svc = &zone.services[s];
                holds.judge(&svc.name, address, up, svc.hold_down, now)
            },
        );
        holds.end_round();
        snapshot
    }

    /// When a held endpoint may next be answered again.
    fn next_hold_change(&self, holds: &Holds) -> Option<Instant> {
        let hold = |name: &str| {
            self.zone
                .services
                .iter()
                .find(|s| s.name == name)
                .map_or(Duration::ZERO, |s| s.hold_down)
        };
        holds.next_change(hold).map(Instant::from_std)
    }
}

/// One finished peer question.
pub(crate) enum PeerReport {
    /// `localtargets-` of (peer, service) in one family.
    Targets(usize, usize, Family, PeerResult),
    /// `probes-` of (peer, service): its probe verdicts, None without an
    /// answer.
    Probes(usize, usize, Option<Vec<(IpAddr, bool)>>),
}

/// What is being asked of a peer about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Asked {
    Targets(Family),
    Probes,
}

/// Messages from [`crate::Dns`] to its controller.
pub(crate) enum Control {
    Reload(Box<Plan>),
}

/// The controller task's state.
pub(crate) struct Controller {
    plan: Plan,
    peers: PeerTable,
    published: Arc<ArcSwap<Published>>,
    serial: u32,
    ids: u64,
    inflight: HashSet<(usize, usize, Asked)>,
    results: UnboundedSender<PeerReport>,
    /// What [`crate::Dns::peers`] reads.
    status: Arc<ArcSwap<Vec<PeerStatus>>>,
    /// Returning endpoints held out of the answers (`hold_down`).
    holds: Holds,
    /// This node's probes of other sites' endpoints, by (service, address),
    /// with the probe each runs.
    probes: HashMap<(String, IpAddr), (Probe, Monitor)>,
    probe_hub: HealthHub,
}

/// Builds the first snapshot (before any socket answers) and the controller.
pub(crate) fn first(
    plan: Plan,
    seed: u64,
) -> (
    Arc<ArcSwap<Published>>,
    Controller,
    UnboundedReceiver<PeerReport>,
) {
    let peers = PeerTable::new(&plan.peers, plan.zone.services.len(), plan.stale_after);
    let serial = initial_serial();
    let mut holds = Holds::default();
    let snapshot = plan.snapshot(serial, &peers, &mut holds, None);
    let published = Arc::new(ArcSwap::from_pointee(Published {
        snapshot,
        peer_ips: plan.peers.iter().map(|p| p.address.ip()).collect(),
    }));
    let (results, results_rx) = unbounded_channel();
    let controller = Controller {
        plan,
        peers,
        published: Arc::clone(&published),
        serial,
        ids: seed,
        inflight: HashSet::new(),
        status: Arc::new(ArcSwap::from_pointee(Vec::new())),
        results,
        holds,
        probes: HashMap::new(),
        probe_hub: HealthHub::new(seed),
    };
    controller.report();
    (published, controller, results_rx)
}

/// A serial that grows across restarts: seconds since 1970 (RFC 1982 arithmetic
/// makes the 2106 wrap harmless).
fn initial_serial() -> u32 {
    #[allow(
        clippy::disallowed_methods,
        reason = "the SOA serial is wall-clock time by convention"
    )]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs() & 0xFFFF_FFFF).unwrap_or(1))
}

impl Controller {
    pub(crate) async fn run(
        mut self,
        mut results: UnboundedReceiver<PeerReport>,
        mut notified: UnboundedReceiver<IpAddr>,
        mut control: UnboundedReceiver<Control>,
        mut health: tokio::sync::broadcast::Receiver<halo_health::HealthEvent>,
    ) {
        let mut probe_events = self.probe_hub.subscribe();
        let mut tick = tokio::time::interval(self.plan.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let expiry = self.peers.next_expiry().map(Instant::from_std);
            let held = self.plan.next_hold_change(&self.holds);
            tokio::select! {
                () = sleep_until(held) => self.publish("hold-down over"),
                _ = tick.tick() => {
                    for p in 0..self.peers.peers().len() {
                        self.ask(p);
                    }
                }
                event = probe_events.recv() => {
                    if let Ok(e) = &event {
                        tracing::info!(
                            probe = %e.key, up = e.transition.up,
                            reason = %halo_log::escaped(&e.transition.reason.to_string()),
                            "GSLB probe"
                        );
                    }
                    if !matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        self.publish("probe");
                    }
                }
                Some(report) = results.recv() => self.on_report(report),
                Some(ip) = notified.recv() => {
                    for p in 0..self.peers.peers().len() {
                        if self.peers.peers()[p].address.ip() == ip {
                            self.ask(p);
                        }
                    }
                }
                event = health.recv() => {
                    match event {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.publish("health"),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
                () = sleep_until(expiry) => {
                    if self.peers.expire(Instant::now().into_std()).endpoints {
                        tracing::warn!("a silent GSLB peer's last answer went stale: its addresses no longer count as healthy");
                        self.publish("peer stale");
                        self.report();
                    }
                }
                message = control.recv() => match message {
                    Some(Control::Reload(plan)) => self.reload(*plan),
                    None => return,
                },
            }
        }
    }

    /// A peer's answer (or silence) to one question.
    fn on_report(&mut self, report: PeerReport) {
        let (peer, service, family, result) = match report {
            PeerReport::Probes(peer, service, verdicts) => {
                self.inflight.remove(&(peer, service, Asked::Probes));
                self.peers.on_probes(peer, service, verdicts);
                self.publish("peer probe verdicts");
                return;
            }
            PeerReport::Targets(peer, service, family, result) => (peer, service, family, result),
        };
        self.inflight
            .remove(&(peer, service, Asked::Targets(family)));
        if let PeerResult::Unreachable = result {
            let p = &self.peers.peers()[peer];
            if !p.unreachable {
                tracing::warn!(peer = %p.address, service = %self.plan.zone.services[service].name, "GSLB peer does not answer; keeping its last answer until it is stale");
            }
        }
        let was_unreachable = self.peers.peers()[peer].unreachable;
        let now = Instant::now().into_std();
        let changed = self.peers.on_result(peer, service, family, result, now);
        let p = &self.peers.peers()[peer];
        if was_unreachable && !p.unreachable {
            tracing::info!(peer = %p.address, "GSLB peer answers again");
        }
        // (Whether a site answers is a verdict's input too.)
        let probed = self.plan.zone.services[service].probe.is_some();
        if changed.endpoints || probed {
            self.publish("peer answer");
        }
        self.report();
    }

    fn reload(&mut self, plan: Plan) {
        let mut peers = PeerTable::new(&plan.peers, plan.zone.services.len(), plan.stale_after);
        peers.carry_over(
            &self.peers,
            &self.plan.service_names(),
            &plan.service_names(),
        );
        self.peers = peers;
        self.inflight.clear();
        self.holds.retain_services(&plan.service_names());
        self.plan = plan;
        self.publish("reload");
        self.report();
    }

    /// The status handle [`crate::Dns::peers`] reads.
    pub(crate) fn status(&self) -> Arc<ArcSwap<Vec<PeerStatus>>> {
        Arc::clone(&self.status)
    }

    fn report(&self) {
        self.status.store(Arc::new(self.peers.status()));
    }

    /// Builds and swaps in a new snapshot; raises the serial when answers
    /// changed and tells peers when this node's own endpoints changed.
    fn publish(&mut self, why: &str) {
        let old = self.published.load();
        let mine = |s: usize, address: IpAddr| {
            let name = &self.plan.zone.services.get(s)?.name;
            let (_, m) = self.probes.get(&(name.clone(), address))?;
            Some(m.health().is_up())
        };
        let previous = |s: usize, address: IpAddr| {
            old.snapshot
                .services
                .get(s)?
                .iter()
                .find(|e| e.address == address)?
                .judged
        };
        let probing = Probing {
            now: Instant::now().into_std(),
            mine: &mine,
            previous: &previous,
        };
        let mut snapshot =
            self.plan
                .snapshot(self.serial, &self.peers, &mut self.holds, Some(&probing));
        let same_zone = Arc::ptr_eq(&old.snapshot.zone, &snapshot.zone);
        log_verdicts(&self.plan.zone, &old.snapshot, &snapshot, same_zone);
        self.sync_probes(&snapshot);
        // What answers carry (and what peers read) versus what only the
        // status shows (a verdict's inputs): only the first raises the
        // serial and is logged as a change of answers.
        let answers = |snap: &Snapshot, i: usize| -> Vec<(IpAddr, bool)> {
            snap.services
                .get(i)
                .map(|eps| eps.iter().map(|e| (e.address, e.healthy)).collect())
                .unwrap_or_default()
        };
        let services_same = same_zone && old.snapshot.services == snapshot.services;
        let answers_same = same_zone
            && old.snapshot.local == snapshot.local
            && old.snapshot.probes == snapshot.probes
            && (0..snapshot.services.len())
                .all(|i| answers(&old.snapshot, i) == answers(&snapshot, i));
        if services_same && answers_same {
            return;
        }
        if answers_same {
            snapshot.serial = self.serial;
        } else {
            self.serial = self.serial.wrapping_add(1);
            snapshot.serial = self.serial;
            for (i, svc) in self.plan.zone.services.iter().enumerate() {
                if same_zone && answers(&old.snapshot, i) == answers(&snapshot, i) {
                    continue;
                }
                let healthy: Vec<String> = snapshot.services[i]
                    .iter()
                    .filter(|e| e.healthy)
                    .map(|e| format!("{}@{}", e.address, snapshot.site_name(e.site)))
                    .collect();
                tracing::info!(service = %svc.name, healthy = %healthy.join(" "), reason = why, "GSLB answers changed");
            }
        }
        // What peers read from this node: its own endpoints and its probe
        // results. A NOTIFY makes them ask at once, instead of at their next
        // peer_interval (half a second more for a whole-site outage to
        // leave the answers: the other voters learnt of it that much later).
        let local_changed = !same_zone
            || old.snapshot.local != snapshot.local
            || old.snapshot.probes != snapshot.probes;
        self.published.store(Arc::new(Published {
            snapshot,
            peer_ips: self.plan.peers.iter().map(|p| p.address.ip()).collect(),
        }));
        if local_changed {
            for p in self.peers.peers() {
                self.ids = self.ids.wrapping_add(0x9e37_79b9_7f4a_7c15);
                tokio::spawn(notify(
                    p.address,
                    self.plan.zone.apex().to_owned(),
                    id16(self.ids),
                ));
            }
        }
    }

    /// Asks peer `p` for every service, both families, unless already asking.
    fn ask(&mut self, p: usize) {
        let Some(peer) = self.peers.peers().get(p) else {
            return;
        };
        let address = peer.address;
        // Two tries must end within one interval, so the next round is not
        // skipped as still in flight (with half an interval each, an
        // unreachable peer was asked only every second interval).
        let timeout = ask_timeout(self.plan.interval);
        for (s, svc) in self.plan.zone.services.iter().enumerate() {
            for family in [Family::V4, Family::V6] {
                if !self.inflight.insert((p, s, Asked::Targets(family))) {
                    continue;
                }
                self.ids = self.ids.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let name = format!("localtargets-{}.{}", svc.name, self.plan.zone.apex());
                let results = self.results.clone();
                let id = id16(self.ids);
                tokio::spawn(async move {
                    let result = ask(address, &name, family, id, timeout).await;
                    let _ = results.send(PeerReport::Targets(p, s, family, result));
                });
            }
            // Its probe verdicts, for services this node judges by probes.
            if svc.probe.is_some() && self.inflight.insert((p, s, Asked::Probes)) {
                self.ids = self.ids.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let name = format!("probes-{}.{}", svc.name, self.plan.zone.apex());
                let results = self.results.clone();
                let id = id16(self.ids);
                tokio::spawn(async move {
                    let verdicts = query(address, &name, rtype::TXT, id, timeout)
                        .await
                        .filter(|r| r.rcode == 0)
                        .map(|r| wire::parse_probe_texts(&r.texts));
                    let _ = results.send(PeerReport::Probes(p, s, verdicts));
                });
            }
        }
    }
}

impl Controller {
    /// Runs one probe for every other site's endpoint of a probed service in
    /// `snapshot` (those judged by verdict), and stops the others.
    fn sync_probes(&mut self, snapshot: &Snapshot) {
        let mut wanted: HashMap<(String, IpAddr), (Probe, Option<PoolTlsClient>)> = HashMap::new();
        for (s, (svc, eps)) in self
            .plan
            .zone
            .services
            .iter()
            .zip(&snapshot.services)
            .enumerate()
        {
            let Some(probe) = &svc.probe else { continue };
            let tls = self.plan.probe_tls.get(s).cloned().flatten();
            for e in eps.iter().filter(|e| e.judged.is_some()) {
                wanted.insert((svc.name.clone(), e.address), (probe.clone(), tls.clone()));
            }
        }
        self.probes
            .retain(|key, (probe, _)| wanted.get(key).is_some_and(|(p, _)| p == probe));
        for (key, (probe, tls)) in wanted {
            if self.probes.contains_key(&key) {
                continue;
            }
            // (Validation requires a probe's port.)
            let port = probe.check.port.unwrap_or(80);
            let monitor = self.probe_hub.spawn_tls(
                ServerKey::new(&format!("probe:{}", key.0), &key.1.to_string()),
                &ServerAddress::Socket(SocketAddr::new(key.1, port)),
                Some(&probe.check),
                Passive::default(),
                tls,
            );
            self.probes.insert(key, (probe, monitor));
        }
    }
}

/// One line per verdict that changed between two snapshots.
fn log_verdicts(zone: &Zone, old: &Snapshot, new: &Snapshot, same_zone: bool) {
    for (i, svc) in zone.services.iter().enumerate() {
        for e in &new.services[i] {
            let Some(j) = e.judged else { continue };
            let before = same_zone
                .then(|| old.services.get(i))
                .flatten()
                .and_then(|eps| eps.iter().find(|o| o.address == e.address))
                .and_then(|o| o.judged);
            if before.is_some_and(|b| b.verdict == j.verdict) {
                continue;
            }
            tracing::info!(
                service = %svc.name, endpoint = %e.address, site = %new.site_name(e.site),
                up = j.verdict.up, why = j.verdict.why.as_str(), site_dns = ?j.dns,
                site_word = ?j.word, probe = ?j.mine, votes_up = j.votes.up,
                votes_down = j.votes.down, "GSLB verdict"
            );
        }
    }
}

/// The time one try of a peer question may take: two tries end within
/// four fifths of `interval`, at most 2 s each.
fn ask_timeout(interval: Duration) -> Duration {
    (interval * 2 / 5).clamp(Duration::from_millis(20), Duration::from_secs(2))
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn id16(x: u64) -> u16 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z >> 48) as u16
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// One `localtargets-` question to one peer: UDP with a timeout and one
/// retry, over TCP when the UDP answer was truncated.
async fn ask(
    peer: SocketAddr,
    name: &str,
    family: Family,
    id: u16,
    timeout: Duration,
) -> PeerResult {
    let qtype = match family {
        Family::V4 => rtype::A,
        Family::V6 => rtype::AAAA,
    };
    match query(peer, name, qtype, id, timeout).await {
        // NXDOMAIN: k8gb's CoreDNS answers that when a site has no targets.
        Some(reply) if matches!(reply.rcode, 0 | 3) => PeerResult::Answer {
            addresses: reply.addresses,
            site: reply.site,
        },
        _ => PeerResult::Unreachable,
    }
}

/// One question to a DNS server: UDP with a timeout and one retry, over TCP
/// when the UDP answer was truncated. None: no answer.
pub(crate) async fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    id: u16,
    timeout: Duration,
) -> Option<wire::PeerAnswer> {
    let query = wire::build_query(id, name, qtype, OPCODE_QUERY);
    for _ in 0..2 {
        let Some(reply) = exchange_udp(server, &query, id, OPCODE_QUERY, timeout).await else {
            continue;
        };
        if !reply.truncated {
            return Some(reply);
        }
        if let Some(r) = exchange_tcp(server, &query, id, timeout).await {
            return Some(r);
        }
    }
    None
}

async fn exchange_udp(
    peer: SocketAddr,
    query: &[u8],
    id: u16,
    opcode: u8,
    timeout: Duration,
) -> Option<wire::PeerAnswer> {
    let socket = UdpSocket::bind(unspecified(peer)).await.ok()?;
    socket.connect(peer).await.ok()?;
    socket.send(query).await.ok()?;
    let deadline = Instant::now() + timeout;
    // halo asks with an OPT of 1232 bytes, so a reply is at most that; a larger
    // datagram is cut and fails to parse, which counts as no answer.
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        // A stray datagram (old retry, spoof) is skipped; only our ID counts.
        if let Some(reply) = wire::parse_reply(&buf[..n], id, opcode) {
            return Some(reply);
        }
    }
}

async fn exchange_tcp(
    peer: SocketAddr,
    query: &[u8],
    id: u16,
    timeout: Duration,
) -> Option<wire::PeerAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = TcpStream::connect(peer).await.ok()?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).ok()?.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.ok()?;
        wire::parse_reply(&buf, id, OPCODE_QUERY)
    };
    tokio::time::timeout(timeout, work).await.ok()?
}

/// Tells a peer that this node's answers changed (RFC 1996), a few times until
/// it acknowledges. A peer that never does still polls every interval.
async fn notify(peer: SocketAddr, zone: String, id: u16) {
    let message = wire::build_query(id, &zone, rtype::SOA, OPCODE_NOTIFY);
    for _ in 0..NOTIFY_TRIES {
        if exchange_udp(peer, &message, id, OPCODE_NOTIFY, NOTIFY_WAIT)
            .await
            .is_some()
        {
            tracing::debug!(peer = %peer, "NOTIFY acknowledged");
            return;
        }
    }
    tracing::debug!(peer = %peer, "NOTIFY not acknowledged");
}

#[cfg(test)]
mod tests {
    use super::ask_timeout;
    use std::time::Duration;

    #[test]
    fn two_tries_of_a_peer_question_end_within_one_interval() {
        // With half an interval per try, a round to an unreachable peer
        // lasted the whole interval, and the next tick skipped it.
        for ms in [50, 100, 250, 1_000, 5_000, 30_000] {
            let interval = Duration::from_millis(ms);
            assert!(2 * ask_timeout(interval) < interval, "{interval:?}");
        }
    }
}

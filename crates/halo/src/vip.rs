//! The virtual-IP tier at run time: one task per `[[vip]]` that drives a
//! [`halo_vrrp::Router`] with a raw socket, netlink and announcements
//! ([`halo_net`]), a tracking task that turns health into priority and
//! faults, and a notifier that runs `notify` commands in order.
//!
//! Order on stop (SIGTERM): every master says priority 0 and removes its
//! addresses before the proxy stops, so the peers take over within their
//! skew time while this node still answers what it has in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use halo_config::{Config, IpNet, TrackTarget, Vip, VrrpChecksum, VrrpVersion};
use halo_health::{Registry, ServerHealth, ServerKey, track_key};
use halo_net::{Addresses, Announcer, Interface, VrrpSocket};
use halo_vrrp::packet::{self, Drop as DropReason};
use halo_vrrp::{Action, Advert, ChecksumForm, Input, Router, Settings, State, Version};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a stopping instance may take to say priority 0 and remove its
/// addresses before it is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a `notify` command may run before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What tracking says about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TrackState {
    /// A tracked target without weight is down (or, in a `[[vip_group]]`,
    /// one of the group's members has such a target down).
    pub(crate) fault: bool,
    /// Sum of the weights of the weighted targets that are down.
    pub(crate) delta: i32,
}

/// Why received packets were dropped, counted per instance.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) drop_ttl: AtomicU64,
    pub(crate) drop_peer: AtomicU64,
    pub(crate) drop_vrid: AtomicU64,
    pub(crate) drop_version: AtomicU64,
    pub(crate) drop_length: AtomicU64,
    pub(crate) drop_checksum: AtomicU64,
    pub(crate) drop_other: AtomicU64,
    pub(crate) transitions: AtomicU64,
}

/// An instance's state as the admin API shows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runtime {
    pub(crate) state: State,
    pub(crate) priority: u8,
    pub(crate) last_change: Option<Instant>,
}

/// A state change, for `notify` and the logs.
#[derive(Debug, Clone)]
struct Change {
    vip: String,
    state: State,
    priority: u8,
    /// The instance's `notify` command.
    notify: Option<PathBuf>,
}

/// One running instance.
#[derive(Debug)]
struct Running {
    spec: Vip,
    track: watch::Sender<TrackState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
    runtime: Arc<std::sync::Mutex<Runtime>>,
}

/// Every `[[vip]]` of the running config.
#[derive(Debug)]
pub(crate) struct Vips {
    running: HashMap<String, Running>,
    addresses: Option<Addresses>,
    changes: mpsc::UnboundedSender<Change>,
    notifier: JoinHandle<()>,
    groups: watch::Sender<Vec<halo_config::VipGroup>>,
    tracker: Option<JoinHandle<()>>,
}

impl Vips {
    /// Starts every instance of `config`. Fails when an interface or the
    /// sockets cannot be opened (no CAP_NET_RAW / CAP_NET_ADMIN).
    pub(crate) fn start(config: &Config, registry: &Registry) -> anyhow::Result<Self> {
        let (changes, rx) = mpsc::unbounded_channel();
        let (groups, groups_rx) = watch::channel(config.vip_groups.clone());
        let notifier = tokio::spawn(notifier(rx, groups_rx));
        let mut vips = Self {
            running: HashMap::new(),
            addresses: None,
            changes,
            notifier,
            groups,
            tracker: None,
        };
        vips.apply(config, registry)?;
        Ok(vips)
    }

    /// Checks what a reload would need that can fail: the interfaces.
    pub(crate) fn check_reload(config: &Config) -> anyhow::Result<()> {
        for v in &config.vips {
            Interface::lookup(&v.interface, &[])
                .with_context(|| format!("[[vip]] \"{}\"", v.name))?;
        }
        Ok(())
    }

    /// Makes the instances match `config`: unchanged ones keep running,
    /// changed and removed ones stop (priority 0: the peers take over) and
    /// changed and new ones start.
    pub(crate) fn apply(&mut self, config: &Config, registry: &Registry) -> anyhow::Result<()> {
        if !config.vips.is_empty() && self.addresses.is_none() {
            self.addresses = Some(Addresses::open().context("netlink")?);
        }
        let wanted: HashMap<&str, &Vip> =
            config.vips.iter().map(|v| (v.name.as_str(), v)).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()).is_none_or(|v| **v != r.spec))
            .map(|(name, _)| name.clone())
            .collect();
        // A changed instance's successor starts only once it has stopped:
        // the old one removes the addresses on its way out, which must not
        // happen after the new one, already master, has added them.
        let mut predecessors: HashMap<String, Stopping> = HashMap::new();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                if wanted.contains_key(name.as_str()) {
                    predecessors.insert(name, stop_one(r));
                } else {
                    stop_one(r).await_later();
                }
            }
        }
        for v in &config.vips {
            if self.running.contains_key(&v.name) {
                continue;
            }
            let (track, track_rx) = watch::channel(TrackState::default());
            let (stop, stop_rx) = oneshot::channel();
            let counters = Arc::new(Counters::default());
            let runtime = Arc::new(std::sync::Mutex::new(Runtime {
                state: State::Initialize,
                priority: v.priority,
                last_change: None,
            }));
            let instance = Instance::open(
                v.clone(),
                self.addresses.clone().context("netlink")?,
                Arc::clone(&counters),
                Arc::clone(&runtime),
                self.changes.clone(),
            )
            .with_context(|| format!("[[vip]] \"{}\" on {}", v.name, v.interface))?;
            let after = predecessors.remove(&v.name);
            let task = tokio::spawn(instance.run(track_rx, stop_rx, after));
            self.running.insert(
                v.name.clone(),
                Running {
                    spec: v.clone(),
                    track,
                    stop: Some(stop),
                    task,
                    counters,
                    runtime,
                },
            );
        }
        self.groups.send_replace(config.vip_groups.clone());
        // Tracking follows the new config's targets.
        if let Some(t) = self.tracker.take() {
            t.abort();
        }
        let senders: HashMap<String, watch::Sender<TrackState>> = self
            .running
            .iter()
            .map(|(n, r)| (n.clone(), r.track.clone()))
            .collect();
        let inputs = TrackInputs::new(config, registry);
        let mut events = registry.hub().subscribe();
        self.tracker = Some(tokio::spawn(async move {
            loop {
                let states = inputs.evaluate();
                for (name, tx) in &senders {
                    let s = states.get(name).copied().unwrap_or_default();
                    tx.send_if_modified(|old| {
                        let changed = *old != s;
                        *old = s;
                        changed
                    });
                }
                match events.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }));
        Ok(())
    }

    /// Each running instance: its config, state and counters.
    pub(crate) fn each(&self) -> Vec<(Vip, Runtime, &Counters)> {
        let mut out: Vec<_> = self
            .running
            .values()
            .map(|r| {
                let rt = *r
                    .runtime
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (r.spec.clone(), rt, r.counters.as_ref())
            })
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    /// Stops every instance: masters say priority 0 and give their
    /// addresses up. Waits for them (bounded), then for pending `notify`s.
    pub(crate) async fn stop(mut self) {
        if let Some(t) = self.tracker.take() {
            t.abort();
        }
        let stops: Vec<_> = self.running.drain().map(|(_, r)| stop_one(r)).collect();
        for s in stops {
            s.wait().await;
        }
        drop(self.changes);
        let _ = tokio::time::timeout(NOTIFY_TIMEOUT, self.notifier).await;
    }
}

/// A stop in progress.
struct Stopping(JoinHandle<()>);

impl Stopping {
    /// Lets it finish on its own (a reload does not wait).
    fn await_later(self) {
        tokio::spawn(self.wait());
    }

    async fn wait(self) {
        let mut task = self.0;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!("a VRRP instance did not stop within {STOP_GRACE:?}; abandoned");
            task.abort();
        }
    }
}

fn stop_one(mut r: Running) -> Stopping {
    if let Some(s) = r.stop.take() {
        let _ = s.send(());
    }
    Stopping(r.task)
}

/// Runs `notify` commands one at a time, in the order of the changes, with
/// the arguments name, state and priority (keepalived's `notify` has the
/// same three after its INSTANCE/GROUP word). A group's command runs when
/// the group's state changes: MASTER when every member is master, FAULT when
/// any is, BACKUP otherwise.
async fn notifier(
    mut rx: mpsc::UnboundedReceiver<Change>,
    groups: watch::Receiver<Vec<halo_config::VipGroup>>,
) {
    let mut states: HashMap<String, State> = HashMap::new();
    let mut group_states: HashMap<String, State> = HashMap::new();
    while let Some(c) = rx.recv().await {
        states.insert(c.vip.clone(), c.state);
        if let Some(cmd) = &c.notify {
            run_notify(cmd, &c.vip, c.state, c.priority).await;
        }
        let groups = groups.borrow().clone();
        for g in groups.iter().filter(|g| g.vips.contains(&c.vip)) {
            let member = |v: &String| states.get(v).copied().unwrap_or(State::Initialize);
            let state = if g.vips.iter().any(|v| member(v) == State::Fault) {
                State::Fault
            } else if g.vips.iter().all(|v| member(v) == State::Master) {
                State::Master
            } else {
                State::Backup
            };
            if group_states.insert(g.name.clone(), state) != Some(state) {
                tracing::info!(group = %g.name, state = state.as_str(), "VRRP group state");
                if let Some(cmd) = &g.notify {
                    run_notify(cmd, &g.name, state, c.priority).await;
                }
            }
        }
    }
}

async fn run_notify(cmd: &PathBuf, name: &str, state: State, priority: u8) {
    let child = tokio::process::Command::new(cmd)
        .arg(name)
        .arg(state.as_str())
        .arg(priority.to_string())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut child) => match tokio::time::timeout(NOTIFY_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => {
                tracing::warn!(command = %cmd.display(), %status, "notify command failed");
            }
            Ok(Err(e)) => tracing::warn!(command = %cmd.display(), "notify command: {e}"),
            Err(_) => {
                tracing::warn!(command = %cmd.display(), "notify command still running after {NOTIFY_TIMEOUT:?}: killed");
            }
        },
        Err(e) => tracing::warn!(command = %cmd.display(), "cannot run notify command: {e}"),
    }
}

/// What tracking reads, resolved against the registry once per config.
struct TrackInputs {
    vips: Vec<Tracked>,
}

/// One instance's track entries.
struct Tracked {
    name: String,
    group: Option<String>,
    entries: Vec<Entry>,
}

/// One track entry: down when none of its servers serves (a listener's:
/// every server of its pools; a TCP target's: its own check).
struct Entry {
    servers: Vec<Arc<ServerHealth>>,
    weight: Option<i16>,
}

impl TrackInputs {
    fn new(config: &Config, registry: &Registry) -> Self {
        let group_of = |vip: &str| {
            config
                .vip_groups
                .iter()
                .find(|g| g.vips.iter().any(|v| v == vip))
                .map(|g| g.name.clone())
        };
        let vips = config
            .vips
            .iter()
            .map(|v| {
                let entries = v
                    .track
                    .iter()
                    .map(|t| {
                        let keys: Vec<ServerKey> = match &t.target {
                            TrackTarget::Tcp(addr) => vec![track_key(&v.name, *addr)],
                            TrackTarget::Listener(l) => listener_servers(config, l),
                        };
                        Entry {
                            servers: keys.iter().filter_map(|k| registry.health(k)).collect(),
                            weight: t.weight,
                        }
                    })
                    .collect();
                Tracked {
                    name: v.name.clone(),
                    group: group_of(&v.name),
                    entries,
                }
            })
            .collect();
        Self { vips }
    }

    /// Each instance's state now; a fault of one group member faults them all.
    fn evaluate(&self) -> HashMap<String, TrackState> {
        let mut out: HashMap<String, TrackState> = HashMap::new();
        let mut group_fault: HashMap<&str, bool> = HashMap::new();
        for t in &self.vips {
            let mut s = TrackState::default();
            for e in &t.entries {
                let down = !e.servers.iter().any(|h| h.is_serving());
                match (down, e.weight) {
                    (true, None) => s.fault = true,
                    (true, Some(w)) => s.delta += i32::from(w),
                    (false, _) => {}
                }
            }
            if let Some(g) = &t.group {
                *group_fault.entry(g).or_default() |= s.fault;
            }
            out.insert(t.name.clone(), s);
        }
        for t in &self.vips {
            if let Some(g) = &t.group
                && group_fault.get(g.as_str()).copied().unwrap_or(false)
                && let Some(s) = out.get_mut(&t.name)
            {
                s.fault = true;
            }
        }
        out
    }
}

/// Every server a listener can send to: its default pool's and its routes'.
fn listener_servers(config: &Config, listener: &str) -> Vec<ServerKey> {
    let Some(l) = config.listeners.iter().find(|l| l.name == listener) else {
        return Vec::new();
    };
    l.pools()
        .filter_map(|p| config.pools.iter().find(|x| x.name == p))
        .flat_map(|p| p.servers.iter().map(|s| ServerKey::new(&p.name, &s.name)))
        .collect()
}

/// One VRRP instance's I/O around its router.
struct Instance {
    vip: Vip,
    iface: Interface,
    socket: VrrpSocket,
    announcer: Announcer,
    netlink: Addresses,
    counters: Arc<Counters>,
    runtime: Arc<std::sync::Mutex<Runtime>>,
    changes: mpsc::UnboundedSender<Change>,
    source: IpAddr,
    destinations: Vec<IpAddr>,
    advert: Advert,
    form: ChecksumForm,
    version: Version,
    /// When the next announcement burst is due while master.
    announce_at: Option<Instant>,
    /// Drop reasons already logged as a warning.
    warned: std::collections::HashSet<String>,
    /// Whether the addresses are in the Accept_Mode-false drop set.
    blocked: bool,
    /// Whether the last send failed (logged once per failing spell).
    send_failing: bool,
    /// The advertisement being sent, reused.
    out: Vec<u8>,
}

impl Instance {
    fn open(
        vip: Vip,
        netlink: Addresses,
        counters: Arc<Counters>,
        runtime: Arc<std::sync::Mutex<Runtime>>,
        changes: mpsc::UnboundedSender<Change>,
    ) -> anyhow::Result<Self> {
        let ips: Vec<IpAddr> = vip.addresses.iter().map(IpNet::addr).collect();
        let v6 = ips.first().is_some_and(IpAddr::is_ipv6);
        let iface = Interface::lookup(&vip.interface, &ips)?;
        let (source, destinations, multicast) = match &vip.unicast {
            Some(u) => (u.source, u.peers.clone(), false),
            None => {
                let source = if v6 {
                    iface.ipv6_link_local.map(IpAddr::V6).with_context(|| {
                        format!(
                            "{} has no IPv6 link-local address to send multicast VRRP from",
                            iface.name
                        )
                    })?
                } else {
                    iface.ipv4.map(IpAddr::V4).with_context(|| {
                        format!(
                            "{} has no IPv4 address to send multicast VRRP from",
                            iface.name
                        )
                    })?
                };
                let group = if v6 {
                    packet::GROUP_V6.into()
                } else {
                    packet::GROUP_V4.into()
                };
                (source, vec![group], true)
            }
        };
        let vip_accept = vip.accept || vip.priority == 255;
        if !vip_accept {
            halo_net::firewall::check_nft()?;
        }
        let socket = VrrpSocket::open(&iface, v6, multicast)?;
        let announcer = Announcer::open(&iface, v6)?;
        let version = match vip.version {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        };
        let interval_cs = u16::try_from(vip.advert_interval.as_millis() / 10).unwrap_or(u16::MAX);
        let advert = Advert {
            version,
            vrid: vip.vrid,
            priority: vip.priority,
            interval_cs,
            addresses: ips,
        };
        let form = match vip.checksum {
            VrrpChecksum::PseudoHeader => ChecksumForm::PseudoHeader,
            VrrpChecksum::Rfc9568 => ChecksumForm::MessageOnly,
        };
        Ok(Self {
            vip,
            iface,
            socket,
            announcer,
            netlink,
            counters,
            runtime,
            changes,
            source,
            destinations,
            advert,
            form,
            version,
            announce_at: None,
            warned: std::collections::HashSet::new(),
            // So the removal at start also clears a crashed run's drop rule.
            blocked: !vip_accept,
            send_failing: false,
            out: Vec::with_capacity(64),
        })
    }

    async fn run(
        mut self,
        mut track: watch::Receiver<TrackState>,
        mut stop: oneshot::Receiver<()>,
        after: Option<Stopping>,
    ) {
        if let Some(previous) = after {
            previous.wait().await;
        }
        // Addresses left by a crashed run must not answer while we are backup.
        self.remove_addresses().await;
        let mut router = Router::new(Settings {
            version: self.version,
            priority: self.vip.priority,
            interval: self.vip.advert_interval,
            preempt: self.vip.preempt,
            preempt_delay: self.vip.preempt_delay,
            primary: self.source,
            accept: self.vip.accept,
        });
        tracing::info!(
            vip = %self.vip.name,
            interface = %self.iface.name,
            vrid = self.vip.vrid,
            source = %self.source,
            "VRRP instance starting"
        );
        // Carrier loss is a fault, as in keepalived: a node cut off its link
        // gives the addresses up instead of holding them unseen, and on
        // return it rejoins as backup rather than as a second master.
        let (_keep, mut link) = match halo_net::watch_link(self.iface.index).await {
            Ok(rx) => (None, rx),
            Err(e) => {
                tracing::warn!(vip = %self.vip.name, "cannot follow the link state of {}: {e}", self.iface.name);
                let (tx, rx) = watch::channel(true);
                (Some(tx), rx)
            }
        };
        let mut actions = Vec::new();
        let mut t = *track.borrow_and_update();
        let mut link_up = *link.borrow_and_update();
        router.handle(Input::Start, now(), &mut actions);
        self.track_inputs(t, link_up, &mut router, &mut actions);
        self.apply(&router, &mut actions).await;
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = router.next_deadline().map(Instant::from_std);
            let announce_at = self.announce_at;
            tokio::select! {
                _ = &mut stop => {
                    router.handle(Input::Shutdown, now(), &mut actions);
                    self.apply(&router, &mut actions).await;
                    // A master that was faulted or backup still owns nothing.
                    break;
                }
                r = self.socket.recv(&mut buf) => match r {
                    Ok(rx) => {
                        if let Some(input) = self.accept(&buf, &rx) {
                            router.handle(input, now(), &mut actions);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.counters.drop_length.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(vip = %self.vip.name, "VRRP receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = sleep_until(deadline) => router.handle(Input::Tick, now(), &mut actions),
                () = sleep_until(announce_at) => self.announce_burst(&router),
                changed = track.changed() => {
                    if changed.is_ok() {
                        t = *track.borrow_and_update();
                        self.track_inputs(t, link_up, &mut router, &mut actions);
                    }
                }
                changed = link.changed() => {
                    if changed.is_ok() {
                        link_up = *link.borrow_and_update();
                        tracing::info!(vip = %self.vip.name, interface = %self.iface.name, up = link_up, "link state");
                        self.track_inputs(t, link_up, &mut router, &mut actions);
                    }
                }
            }
            self.apply(&router, &mut actions).await;
        }
        // Whatever happened, nothing stays on the interface.
        self.remove_addresses().await;
        let c = &self.counters;
        let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
        // The admin API serves them while it runs; the last word is logged.
        tracing::info!(
            vip = %self.vip.name,
            received = n(&c.received),
            sent = n(&c.sent),
            send_errors = n(&c.send_errors),
            dropped_ttl = n(&c.drop_ttl),
            dropped_peer = n(&c.drop_peer),
            dropped_vrid = n(&c.drop_vrid),
            dropped_version = n(&c.drop_version),
            dropped_length = n(&c.drop_length),
            dropped_checksum = n(&c.drop_checksum),
            dropped_other = n(&c.drop_other),
            transitions = n(&c.transitions),
            "VRRP instance stopped"
        );
    }

    /// Turns the tracking state and the link state into router inputs.
    fn track_inputs(
        &self,
        t: TrackState,
        link_up: bool,
        router: &mut Router,
        actions: &mut Vec<Action>,
    ) {
        let now = now();
        let base = i32::from(self.vip.priority);
        let p = u8::try_from((base + t.delta).clamp(1, 254)).unwrap_or(1);
        router.handle(Input::Priority(p), now, actions);
        router.handle(Input::Fault(t.fault || !link_up), now, actions);
    }

    /// The checks of RFC 9568 §7.1 that the codec cannot do; a packet that
    /// passes becomes an input.
    fn accept(&mut self, buf: &[u8], rx: &halo_net::Received) -> Option<Input> {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let (name, warned) = (&self.vip.name, &mut self.warned);
        // Every drop is counted; the first of each kind is a warning (a
        // checksum or version mismatch is how a misconfigured peer shows),
        // the rest are debug lines. Another VRID is normal (each instance
        // on an interface sees the others' packets) and only debug.
        let mut drop = |counter: &AtomicU64, why: &str| {
            counter.fetch_add(1, Ordering::Relaxed);
            if !std::ptr::eq(counter, &c.drop_vrid) && warned.insert(why.to_owned()) {
                tracing::warn!(vip = %name, from = %rx.src, "VRRP packet dropped: {why} (counted; further ones are logged at debug)");
            } else {
                tracing::debug!(vip = %name, from = %rx.src, "VRRP packet dropped: {why}");
            }
            None
        };
        match &self.vip.unicast {
            None if rx.ttl != packet::TTL => return drop(&c.drop_ttl, "TTL is not 255"),
            Some(u) if !u.peers.contains(&rx.src) => {
                return drop(&c.drop_peer, "source is not among unicast_peers");
            }
            // keepalived skips the TTL check in unicast mode, since a routed
            // peer's packets arrive with less than 255. A peer on the
            // interface's own network is never routed: anything but 255 from
            // it came from further away with a forged source (RFC 9568
            // §7.1's reason for the check), so it is checked there.
            Some(u)
                if u.ttl_check_on_link && rx.ttl != packet::TTL && self.iface.on_link(rx.src) =>
            {
                return drop(&c.drop_ttl, "TTL is not 255 from an on-link unicast peer");
            }
            _ => {}
        }
        let msg = buf.get(rx.payload.clone())?;
        let decoded = match packet::decode(msg, rx.src, rx.dst) {
            Ok(d) => d,
            Err(e) => {
                let counter = match e {
                    DropReason::Length => &c.drop_length,
                    DropReason::Version => &c.drop_version,
                    DropReason::Checksum => &c.drop_checksum,
                    _ => &c.drop_other,
                };
                return drop(counter, &e.to_string());
            }
        };
        let a = decoded.advert;
        if a.vrid != self.vip.vrid {
            // Another instance on this interface (each has its own socket).
            return drop(&c.drop_vrid, "another VRID");
        }
        if a.version != self.version {
            return drop(&c.drop_version, "another VRRP version than configured");
        }
        Some(Input::Advert {
            from: rx.src,
            priority: a.priority,
            interval: match a.version {
                Version::V3 => Duration::from_millis(u64::from(a.interval_cs) * 10),
                Version::V2 => Duration::ZERO,
            },
        })
    }

    /// Carries out the router's actions, in order.
    async fn apply(&mut self, router: &Router, actions: &mut Vec<Action>) {
        {
            let mut rt = self
                .runtime
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if rt.state != router.state() {
                rt.last_change = Some(Instant::now());
            }
            rt.state = router.state();
            rt.priority = router.priority();
        }
        for action in actions.drain(..) {
            match action {
                Action::Send { priority } => self.send(priority).await,
                Action::AddAddresses => {
                    // Accept_Mode false: the drop rule is in place before
                    // the addresses are, so no packet is accepted between.
                    if !router.accepts_traffic() {
                        self.blocked = true;
                        if let Err(e) = halo_net::firewall::block(&self.advert.addresses).await {
                            tracing::error!(vip = %self.vip.name, "accept = false: cannot install the drop rule: {e}");
                        }
                    }
                    for net in &self.vip.addresses {
                        if let Err(e) = self
                            .netlink
                            .add(self.iface.index, net.addr(), net.prefix_len())
                            .await
                        {
                            tracing::error!(vip = %self.vip.name, address = %net, "cannot add the virtual address: {e}");
                        }
                    }
                    self.announce_burst_first();
                }
                Action::RemoveAddresses => {
                    self.announce_at = None;
                    self.remove_addresses().await;
                }
                Action::Transition { from, to } => {
                    self.counters.transitions.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        vip = %self.vip.name,
                        from = from.as_str(),
                        to = to.as_str(),
                        priority = router.priority(),
                        "VRRP state"
                    );
                    let _ = self.changes.send(Change {
                        vip: self.vip.name.clone(),
                        state: to,
                        priority: router.priority(),
                        notify: self.vip.notify.clone(),
                    });
                }
            }
        }
    }

    async fn send(&mut self, priority: u8) {
        self.advert.priority = priority;
        for i in 0..self.destinations.len() {
            let dst = self.destinations[i];
            // The pseudo-header checksum covers the destination: per peer.
            packet::encode(&self.advert, self.source, dst, self.form, &mut self.out);
            match self.socket.send(&self.out, self.source, dst).await {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    if std::mem::replace(&mut self.send_failing, false) {
                        tracing::info!(vip = %self.vip.name, to = %dst, "VRRP advertisements are sent again");
                    }
                }
                Err(e) => {
                    self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                    // A warning when sending starts failing (e.g. an IPv6
                    // link-local source still tentative), then debug lines
                    // until a send succeeds again.
                    if std::mem::replace(&mut self.send_failing, true) {
                        tracing::debug!(vip = %self.vip.name, to = %dst, "cannot send VRRP advertisement: {e}");
                    } else {
                        tracing::warn!(vip = %self.vip.name, to = %dst, "cannot send VRRP advertisement: {e} (retried every interval)");
                    }
                }
            }
        }
    }

    /// The first burst after a takeover, and the timer for the next one.
    fn announce_burst_first(&mut self) {
        self.announce(self.vip.garp.repeat);
        let g = self.vip.garp;
        self.announce_at = if !g.delay.is_zero() {
            Some(Instant::now() + g.delay)
        } else if !g.refresh.is_zero() {
            Some(Instant::now() + g.refresh)
        } else {
            None
        };
    }

    /// The delayed second burst, then the periodic refresh if configured.
    fn announce_burst(&mut self, router: &Router) {
        if router.state() != State::Master {
            self.announce_at = None;
            return;
        }
        let g = self.vip.garp;
        self.announce(g.repeat);
        self.announce_at = (!g.refresh.is_zero()).then(|| Instant::now() + g.refresh);
    }

    fn announce(&self, times: u8) {
        let ips = &self.advert.addresses;
        for _ in 0..times {
            if let Err(e) = self.announcer.announce(ips) {
                tracing::warn!(vip = %self.vip.name, "cannot announce the virtual addresses: {e}");
                return;
            }
        }
    }

    /// Removes the addresses, then (Accept_Mode false) their drop rule.
    async fn remove_addresses(&mut self) {
        for net in &self.vip.addresses {
            if let Err(e) = self
                .netlink
                .remove(self.iface.index, net.addr(), net.prefix_len())
                .await
            {
                tracing::error!(vip = %self.vip.name, address = %net, "cannot remove the virtual address: {e}");
            }
        }
        if self.blocked {
            self.blocked = false;
            if let Err(e) = halo_net::firewall::unblock(&self.advert.addresses).await {
                tracing::error!(vip = %self.vip.name, "cannot remove the accept = false drop rule: {e}");
            }
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

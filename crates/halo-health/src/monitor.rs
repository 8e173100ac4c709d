//! Runs one [`Machine`] per server on tokio: starts probes when due, takes
//! passive reports and admin changes, and publishes every transition.
//!
//! The data path never waits on this task. It reads [`ServerHealth::is_serving`]
//! (two atomic loads) and reports outcomes with [`ServerHealth::report_success`]
//! and [`ServerHealth::report_error`] (an atomic each; the task is woken only
//! when the error count reaches `error_limit`).

use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use halo_config::{Check, Passive, ServerAddress};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use halo_log::{SharedSpell, escaped};

use crate::group::PoolGroup;
use crate::machine::{AdminState, Machine, Params, Transition};
use crate::probe::{ProbeOutcome, ProbeTarget, probe_tls};

/// Events kept for slow subscribers before they start missing some.
const EVENT_BUFFER: usize = 1024;

/// Names one server: `pool/server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    /// Pool name (or another owner, e.g. a GSLB endpoint's service).
    pub pool: Arc<str>,
    /// Server name within it.
    pub server: Arc<str>,
}

impl ServerKey {
    /// `pool/server`.
    #[must_use]
    pub fn new(pool: &str, server: &str) -> Self {
        Self {
            pool: pool.into(),
            server: server.into(),
        }
    }
}

impl std::fmt::Display for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pool, self.server)
    }
}

/// A published change of one server's health or admin state.
#[derive(Debug, Clone)]
pub struct HealthEvent {
    /// Which server.
    pub key: ServerKey,
    /// What changed and why.
    pub transition: Transition,
    /// When (tokio's clock).
    pub at: Instant,
}

/// A server's health as the data path and the admin API see it.
#[derive(Debug)]
pub struct ServerHealth {
    key: ServerKey,
    up: AtomicBool,
    admin: AtomicU8,
    /// A weight set at run time (admin API), or `NO_WEIGHT`.
    weight: AtomicU32,
    errors: AtomicU32,
    error_limit: u32,
    wake: Notify,
}

/// `ServerHealth::weight` when no weight was set at run time.
const NO_WEIGHT: u32 = u32::MAX;

impl ServerHealth {
    /// Which server.
    #[must_use]
    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// UP by health (active checks and passive detection).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The admin state; takes effect for new traffic as soon as it is set.
    #[must_use]
    pub fn admin(&self) -> AdminState {
        match self.admin.load(Ordering::Acquire) {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }

    /// Whether new load-balanced traffic may go here: ready and UP.
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.admin() == AdminState::Ready && self.is_up()
    }

    /// A request or connection succeeded: the consecutive-error count restarts.
    pub fn report_success(&self) {
        // Load first: the common case writes nothing, so servers' counters do
        // not bounce between cores' caches.
        if self.errors.load(Ordering::Relaxed) != 0 {
            self.errors.store(0, Ordering::Relaxed);
        }
    }

    /// A connect error, a reset or a 5xx was seen on live traffic.
    pub fn report_error(&self) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.error_limit {
            self.wake.notify_one();
        }
    }

    /// Sets ready / drain / maint (from the admin API or CLI).
    pub fn set_admin(&self, admin: AdminState) {
        let code = match admin {
            AdminState::Ready => 0,
            AdminState::Drain => 1,
            AdminState::Maint => 2,
        };
        self.admin.store(code, Ordering::Release);
        self.wake.notify_one();
    }

    /// A weight set at run time (HAProxy's `set weight`), overriding the
    /// configured one for as long as this monitor lives (a reload that keeps
    /// the server keeps it); `None` returns to the configured weight.
    pub fn set_weight(&self, weight: Option<u16>) {
        self.weight
            .store(weight.map_or(NO_WEIGHT, u32::from), Ordering::Release);
    }

    /// The weight set at run time, if any.
    #[must_use]
    pub fn weight(&self) -> Option<u16> {
        u16::try_from(self.weight.load(Ordering::Acquire)).ok()
    }
}

/// Spawns monitors and fans their transitions out to subscribers.
#[derive(Debug)]
pub struct HealthHub {
    events: broadcast::Sender<HealthEvent>,
    seed: u64,
}

impl HealthHub {
    /// A hub whose monitors derive their check jitter from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            events: broadcast::channel(EVENT_BUFFER).0,
            seed,
        }
    }

    /// Every transition from now on, of every monitor of this hub.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// Starts monitoring one server. Checks stop when the [`Monitor`] is dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime (the monitor is a tokio task).
    #[must_use]
    pub fn spawn(
        &self,
        key: ServerKey,
        address: &ServerAddress,
        check: Option<&Check>,
        passive: Passive,
    ) -> Monitor {
        self.spawn_tls(key, address, check, passive, None)
    }

    /// As [`Self::spawn`], checking over TLS when `tls` is given
    /// (`[pool.tls]`; a client that could not be built fails every check,
    /// saying why).
    ///
    /// # Panics
    /// Outside a tokio runtime (the monitor is a tokio task).
    #[must_use]
    pub fn spawn_tls(
        &self,
        key: ServerKey,
        address: &ServerAddress,
        check: Option<&Check>,
        passive: Passive,
        tls: Option<crate::PoolTlsClient>,
    ) -> Monitor {
        self.spawn_in(key, address, (check, passive), tls, None)
    }

    /// As [`Self::spawn_tls`], as a member of a pool's `group` (which may
    /// refuse a passive ejection the pool cannot spare).
    pub(crate) fn spawn_in(
        &self,
        key: ServerKey,
        address: &ServerAddress,
        (check, passive): (Option<&Check>, Passive),
        tls: Option<crate::PoolTlsClient>,
        group: Option<Arc<PoolGroup>>,
    ) -> Monitor {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.seed.hash(&mut hasher);
        key.hash(&mut hasher);
        let seed = hasher.finish();

        let machine = Machine::new(Params::new(check, passive), Instant::now().into_std(), seed);
        let shared = Arc::new(ServerHealth {
            key,
            up: AtomicBool::new(machine.is_up()),
            admin: AtomicU8::new(0),
            weight: AtomicU32::new(NO_WEIGHT),
            errors: AtomicU32::new(0),
            error_limit: passive.error_limit,
            wake: Notify::new(),
        });
        let probe_with = check.map(|c| Probe {
            target: ProbeTarget::new(address, c.port),
            check: c.clone(),
            tls,
        });
        let task = tokio::spawn(run(
            Arc::clone(&shared),
            machine,
            probe_with,
            self.events.clone(),
            group,
        ));
        Monitor { shared, task }
    }
}

impl Default for HealthHub {
    /// A hub seeded from the process's random hasher keys.
    fn default() -> Self {
        Self::new(std::collections::hash_map::RandomState::new().hash_one(0u8))
    }
}

/// One running monitor; dropping it stops its checks.
#[derive(Debug)]
pub struct Monitor {
    shared: Arc<ServerHealth>,
    task: JoinHandle<()>,
}

impl Monitor {
    /// The shared view for the data path and the admin API.
    #[must_use]
    pub fn health(&self) -> &Arc<ServerHealth> {
        &self.shared
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProbeFuture = Pin<Box<dyn Future<Output = ProbeOutcome> + Send>>;

/// What a check probes, and how.
#[derive(Debug, Clone)]
struct Probe {
    target: ProbeTarget,
    check: Check,
    /// `[pool.tls]`, the pool's client; an error fails every check.
    tls: Option<crate::PoolTlsClient>,
}

async fn run(
    shared: Arc<ServerHealth>,
    mut machine: Machine,
    probe_with: Option<Probe>,
    events: broadcast::Sender<HealthEvent>,
    group: Option<Arc<PoolGroup>>,
) {
    let mut running: Option<ProbeFuture> = None;
    loop {
        let deadline = machine.poll_timeout().map(Instant::from_std);
        tokio::select! {
            outcome = async { running.as_mut().expect("guarded by is_some").await }, if running.is_some() => {
                running = None;
                if outcome.local {
                    // This host could not run the check (out of
                    // descriptors): no verdict on the server either way.
                    machine.on_check_skipped(now());
                    if let Some(line) = SKIPPED_CHECKS.event(now()) {
                        tracing::warn!(
                            server = %shared.key, detail = %outcome.detail, unlogged = line.folded,
                            "a health check could not run: this host is out of resources; \
                             not counted for or against the server (one line per spell)"
                        );
                    }
                } else {
                    let t = machine.on_check_result(outcome.ok, &outcome.detail, now());
                    publish(&shared, &machine, t, &events);
                }
            }
            () = async { tokio::time::sleep_until(deadline.expect("guarded by is_some")).await }, if deadline.is_some() && running.is_none() => {
                let (start, t) = machine.handle_timeout(now());
                publish(&shared, &machine, t, &events);
                if let (true, Some(p)) = (start, &probe_with) {
                    let p = p.clone();
                    running = Some(Box::pin(async move {
                        match p.tls.as_deref() {
                            None => probe_tls(&p.target, &p.check, None).await,
                            Some(Ok(tls)) => probe_tls(&p.target, &p.check, Some(tls)).await,
                            Some(Err(why)) => ProbeOutcome {
                                ok: false,
                                detail: format!("L6RSP TLS setup: {why}"),
                                local: false,
                            },
                        }
                    }));
                }
            }
            () = shared.wake.notified() => {
                let want = shared.admin();
                if want != machine.admin() {
                    if want == AdminState::Maint {
                        running = None;
                    }
                    let t = machine.set_admin(want, now());
                    publish(&shared, &machine, t, &events);
                }
                let errors = shared.errors.load(Ordering::Relaxed);
                if errors >= shared.error_limit {
                    shared.errors.store(0, Ordering::Relaxed);
                    let up = machine.is_up();
                    let mut eject = || {
                        let t = machine.on_passive_limit(errors, now());
                        publish(&shared, &machine, t, &events);
                    };
                    match &group {
                        Some(g) if up => {
                            g.eject_if_allowed(&shared.key.server, now(), eject);
                        }
                        _ => eject(),
                    }
                }
            }
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Checks that could not run on this host's own limits, over every monitor:
/// one log line per spell.
static SKIPPED_CHECKS: SharedSpell = SharedSpell::new(Duration::from_secs(10));

fn publish(
    shared: &ServerHealth,
    machine: &Machine,
    t: Option<Transition>,
    events: &broadcast::Sender<HealthEvent>,
) {
    let Some(t) = t else { return };
    shared.up.store(machine.is_up(), Ordering::Release);
    if t.was_up == t.up {
        tracing::info!(server = %shared.key, admin = t.admin.as_str(), "server admin state is now {}", t.admin.as_str());
    } else if t.up {
        // (A check's reason quotes the server: its status line's phrase.)
        let reason = t.reason.to_string();
        tracing::info!(server = %shared.key, reason = %escaped(&reason), "server is UP");
    } else {
        let reason = t.reason.to_string();
        tracing::warn!(server = %shared.key, reason = %escaped(&reason), "server is DOWN");
    }
    // No subscriber is not an error: the state is in `shared` either way.
    let _ = events.send(HealthEvent {
        key: shared.key.clone(),
        transition: t,
        at: Instant::now(),
    });
}

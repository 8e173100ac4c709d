//! The running monitors of a config: one per pool server, matched by key
//! across reloads so an unchanged server keeps its health state.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use std::net::{IpAddr, SocketAddr};

use halo_config::{
    Check, CheckKind, Config, EndpointHealth, InitialState, Passive, ServerAddress, TrackTarget,
};

use crate::group::PoolGroup;
use crate::monitor::{HealthHub, Monitor, ServerHealth, ServerKey};

/// What a monitor was started with; a reload keeps the monitor when this is
/// unchanged, and replaces it otherwise.
#[derive(Debug, PartialEq)]
struct Spec {
    address: ServerAddress,
    check: Option<Check>,
    passive: Passive,
    tls: Option<halo_config::PoolTls>,
}

/// Monitors for every `[[pool.server]]` of the current config.
#[derive(Debug)]
pub struct Registry {
    hub: HealthHub,
    monitors: HashMap<ServerKey, (Spec, Monitor)>,
    /// Each `[pool.tls]` pool's client, built anew at every `apply` (a
    /// reload reads a replaced CA file), shared by the pool's new monitors
    /// and the proxy.
    pool_tls: HashMap<String, crate::PoolTlsClient>,
    /// Each pool's servers, for passive ejection's limit; kept by name
    /// across reloads (a kept monitor keeps its group), members replaced.
    groups: HashMap<String, Arc<PoolGroup>>,
}

impl Registry {
    /// An empty registry publishing through `hub`.
    #[must_use]
    pub fn new(hub: HealthHub) -> Self {
        Self {
            hub,
            monitors: HashMap::new(),
            pool_tls: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// The hub, to subscribe to events.
    #[must_use]
    pub fn hub(&self) -> &HealthHub {
        &self.hub
    }

    /// Makes the monitors match `config`: unchanged servers keep theirs (and
    /// their state), changed and new ones start afresh, removed ones stop.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn apply(&mut self, config: &Config) {
        self.pool_tls = config
            .pools
            .iter()
            .filter_map(|p| {
                let t = p.tls.as_ref()?;
                let client = crate::ServerTls::new(t).map_err(|d| d.to_string());
                Some((p.name.clone(), Arc::new(client)))
            })
            .collect();
        let mut wanted: HashMap<ServerKey, Spec> = HashMap::new();
        for pool in &config.pools {
            for server in &pool.servers {
                wanted.insert(
                    ServerKey::new(&pool.name, &server.name),
                    Spec {
                        address: server.address.clone(),
                        check: pool.check.clone(),
                        passive: pool.passive,
                        tls: pool.tls.clone(),
                    },
                );
            }
        }
        // A GSLB endpoint with a check of its own is monitored like a server,
        // under `gslb:<service>/<address>`.
        for service in config.gslb.iter().flat_map(|g| &g.services) {
            for e in &service.endpoints {
                if let EndpointHealth::Check(check) = &e.health {
                    let port = check.port.unwrap_or(80);
                    wanted.insert(
                        gslb_key(&service.name, e.address),
                        Spec {
                            address: ServerAddress::Socket(SocketAddr::new(e.address, port)),
                            check: Some(check.clone()),
                            passive: Passive::default(),
                            tls: None,
                        },
                    );
                }
            }
        }
        // A VRRP `track = [{ tcp = ... }]` entry is a TCP check of its own,
        // under `vrrp:<vip>/<address>`, checked every second and decided on
        // two results (keepalived's vrrp_script runs every second).
        for vip in &config.vips {
            for t in &vip.track {
                if let TrackTarget::Tcp(addr) = t.target {
                    wanted.insert(
                        track_key(&vip.name, addr),
                        Spec {
                            address: ServerAddress::Socket(addr),
                            check: Some(track_check()),
                            passive: Passive::default(),
                            tls: None,
                        },
                    );
                }
            }
        }
        self.monitors
            .retain(|key, (spec, _)| wanted.get(key) == Some(spec));
        self.groups
            .retain(|name, _| config.pools.iter().any(|p| p.name == *name));
        for pool in &config.pools {
            self.groups
                .entry(pool.name.clone())
                .or_insert_with(|| Arc::new(PoolGroup::new(&pool.name)));
        }
        for (key, spec) in wanted {
            if let Entry::Vacant(slot) = self.monitors.entry(key) {
                let tls = spec
                    .tls
                    .as_ref()
                    .and_then(|_| self.pool_tls.get(&*slot.key().pool).cloned());
                let group = self.groups.get(&*slot.key().pool).cloned();
                let monitor = self.hub.spawn_in(
                    slot.key().clone(),
                    &spec.address,
                    (spec.check.as_ref(), spec.passive),
                    tls,
                    group,
                );
                slot.insert((spec, monitor));
            }
        }
        for pool in &config.pools {
            let members = pool
                .servers
                .iter()
                .filter_map(|s| self.health(&ServerKey::new(&pool.name, &s.name)))
                .collect();
            if let Some(g) = self.groups.get(&pool.name) {
                g.set(members, pool.passive.max_ejection_percent);
            }
        }
    }

    /// The TLS client of a pool with `[pool.tls]` in the applied config.
    #[must_use]
    pub fn pool_tls(&self, pool: &str) -> Option<crate::PoolTlsClient> {
        self.pool_tls.get(pool).cloned()
    }

    /// The health of `pool/server`, if the current config has it.
    #[must_use]
    pub fn health(&self, key: &ServerKey) -> Option<Arc<ServerHealth>> {
        self.monitors.get(key).map(|(_, m)| Arc::clone(m.health()))
    }
}

/// The key under which a VRRP instance's TCP track check runs.
#[must_use]
pub fn track_key(vip: &str, address: SocketAddr) -> ServerKey {
    ServerKey::new(&format!("vrrp:{vip}"), &address.to_string())
}

/// The check behind a `{ tcp = ... }` track entry.
fn track_check() -> Check {
    let second = std::time::Duration::from_secs(1);
    Check {
        kind: CheckKind::Tcp,
        port: None,
        interval: second,
        fast_interval: second,
        down_interval: second,
        timeout: second,
        rise: 2,
        fall: 2,
        initial: InitialState::Up,
        spread_percent: 10,
    }
}

/// The key under which a GSLB endpoint's own check runs.
#[must_use]
pub fn gslb_key(service: &str, address: IpAddr) -> ServerKey {
    ServerKey::new(&format!("gslb:{service}"), &address.to_string())
}

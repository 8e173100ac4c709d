//! A pool at run time: its servers' health and load, and the choice of a server
//! with HAProxy's failover tiers.
//!
//! Tier rule (HAProxy): primaries while any primary is serving; backups only when
//! none is, and then only the first serving backup unless `use_all_backups`.
//! Two departures, both to save traffic rather than refuse it:
//! - when every serving primary has already failed this request's connect
//!   (retries), the backups are tried before giving up;
//! - while there is no `max_conns` queue, a primary at `max_conns` is not a
//!   candidate, so when every serving primary is full the backups take the
//!   overflow (HAProxy would queue it for `timeout queue`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use halo_config::{Pool, Server};
use halo_health::{Registry, ServerHealth, ServerKey};

use crate::balance::{Balancer, Candidate, mix64};

/// One server of a running pool.
#[derive(Debug)]
pub struct ServerRuntime {
    /// Its config.
    pub config: Server,
    /// Its health, shared with its monitor.
    pub health: Arc<ServerHealth>,
    in_flight: AtomicU32,
    id_hash: u64,
}

impl ServerRuntime {
    /// Requests or connections in flight to it now.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn has_room(&self) -> bool {
        self.config.max_conns == 0 || self.in_flight() < self.config.max_conns
    }
}

/// A pool with live health and load.
#[derive(Debug)]
pub struct PoolRuntime {
    /// Its config.
    pub config: Pool,
    servers: Vec<ServerRuntime>,
    balancer: Balancer,
}

impl PoolRuntime {
    /// Builds the runtime of `config`, taking each server's health from
    /// `registry` (which must have applied the same config).
    ///
    /// # Panics
    /// If `registry` lacks one of the pool's servers: the caller applies the
    /// config to the registry first, so that is a bug.
    #[must_use]
    pub fn new(config: &Pool, registry: &Registry, seed: u64) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|s| {
                let key = ServerKey::new(&config.name, &s.name);
                let health = registry.health(&key).unwrap_or_else(|| {
                    panic!("no monitor for {key}: apply the config to the registry first")
                });
                let mut h = DefaultHasher::new();
                s.name.hash(&mut h);
                ServerRuntime {
                    config: s.clone(),
                    health,
                    in_flight: AtomicU32::new(0),
                    id_hash: h.finish(),
                }
            })
            .collect();
        Self {
            balancer: Balancer::new(config.balance, config.servers.len(), seed),
            config: config.clone(),
            servers,
        }
    }

    /// The pool's servers, in file order.
    #[must_use]
    pub fn servers(&self) -> &[ServerRuntime] {
        &self.servers
    }

    /// Chooses a server for a client, skipping `tried` (servers this request
    /// already failed to connect to). `None` when nothing can take it.
    #[must_use]
    pub fn select(&self, client: IpAddr, tried: &[usize]) -> Option<usize> {
        let client_hash = hash_ip(client);
        let eligible = |i: usize, s: &ServerRuntime| {
            s.health.is_serving() && s.config.weight > 0 && !tried.contains(&i) && s.has_room()
        };
        let candidate = |i: usize, s: &ServerRuntime| Candidate {
            index: i,
            weight: u32::from(s.config.weight),
            in_flight: s.in_flight(),
            id_hash: s.id_hash,
        };

        let primaries: Vec<Candidate> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| !s.config.backup && eligible(*i, s))
            .map(|(i, s)| candidate(i, s))
            .collect();
        if !primaries.is_empty() {
            return self.balancer.pick(&primaries, client_hash);
        }
        let backups = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| s.config.backup && eligible(*i, s));
        if self.config.use_all_backups {
            let all: Vec<Candidate> = backups.map(|(i, s)| candidate(i, s)).collect();
            self.balancer.pick(&all, client_hash)
        } else {
            backups.map(|(i, _)| i).next()
        }
    }

    /// Counts a request or connection to server `index` as in flight until the
    /// returned guard is dropped.
    #[must_use]
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        self.servers[index]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        InFlight {
            pool: Arc::clone(self),
            index,
        }
    }
}

/// Keeps a server's in-flight count up while alive.
#[derive(Debug)]
pub struct InFlight {
    pool: Arc<PoolRuntime>,
    index: usize,
}

impl InFlight {
    /// The server.
    #[must_use]
    pub fn server(&self) -> &ServerRuntime {
        &self.pool.servers[self.index]
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool.servers[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        // An IPv4-mapped client hashes like its IPv4 form.
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.to_bits(), |v4| u128::from(v4.to_bits())),
    };
    #[allow(clippy::cast_possible_truncation)]
    let (hi, lo) = ((bits >> 64) as u64, bits as u64);
    mix64(hi ^ mix64(lo))
}

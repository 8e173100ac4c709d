//! halo's proxy tier: listeners, pools and server selection.
//!
//! ```text
//!  TcpListener ─accept─▶ handle ─select─▶ PoolRuntime ─Balancer─▶ server
//!        │                  ▲                  ▲ health (halo-health atomics)
//!        └── reads the current Snapshot (arc-swap): a reload swaps it, the
//!            data path never waits on a lock to see the new pools.
//! ```
//!
//! Built so far: `tcp` listeners. `http`, `https` and `tls-passthrough` come next.

#![forbid(unsafe_code)]

pub mod balance;
pub mod pool;
pub mod proxy_protocol;
mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use halo_config::{Config, Protocol};
use halo_health::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use pool::PoolRuntime;

/// Why the proxy could not start or take a new config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A listener address could not be bound.
    #[error("listener \"{listener}\": cannot bind {addr}: {source}")]
    Bind {
        /// Listener name.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A protocol this build does not serve yet.
    #[error("listener \"{listener}\": protocol \"{protocol}\" is not supported yet")]
    Unsupported {
        /// Listener name.
        listener: String,
        /// Its protocol.
        protocol: &'static str,
    },
    /// The new config changes listeners, which a reload cannot do yet.
    #[error("the reload changes [[listener]] sections, which needs a restart in this build")]
    ListenersChanged,
}

/// The immutable view a connection works with from accept to close.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pools: HashMap<String, Arc<PoolRuntime>>,
    /// listener name → default pool name
    default_pools: HashMap<String, String>,
}

impl Snapshot {
    fn build(config: &Config, registry: &Registry, seed: u64) -> Self {
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.clone(),
                    Arc::new(PoolRuntime::new(p, registry, seed ^ (i as u64))),
                )
            })
            .collect();
        let default_pools = config
            .listeners
            .iter()
            .filter_map(|l| l.default_pool.clone().map(|p| (l.name.clone(), p)))
            .collect();
        Self {
            pools,
            default_pools,
        }
    }

    fn default_pool(&self, listener: &str) -> Option<&Arc<PoolRuntime>> {
        self.pools.get(self.default_pools.get(listener)?)
    }
}

/// The running proxy: bound listeners serving the current snapshot.
#[derive(Debug)]
pub struct Proxy {
    snapshot: Arc<ArcSwap<Snapshot>>,
    listeners: Vec<halo_config::Listener>,
    bound: Vec<(String, SocketAddr)>,
    tasks: Vec<JoinHandle<()>>,
    seed: u64,
}

impl Proxy {
    /// Binds every listener of `config` and starts serving. `registry` must have
    /// applied `config`.
    ///
    /// # Errors
    /// A listener that cannot be bound, or whose protocol is not built yet.
    pub async fn start(
        config: &Config,
        registry: &Registry,
        seed: u64,
    ) -> Result<Self, ProxyError> {
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::build(
            config, registry, seed,
        )));
        let mut proxy = Self {
            snapshot,
            listeners: config.listeners.clone(),
            bound: Vec::new(),
            tasks: Vec::new(),
            seed,
        };
        for l in &config.listeners {
            if l.protocol != Protocol::Tcp {
                return Err(ProxyError::Unsupported {
                    listener: l.name.clone(),
                    protocol: l.protocol.as_str(),
                });
            }
            let name: Arc<str> = l.name.as_str().into();
            for &addr in &l.binds {
                let listener = bind(addr).map_err(|source| ProxyError::Bind {
                    listener: l.name.clone(),
                    addr,
                    source,
                })?;
                let local = listener.local_addr().unwrap_or(addr);
                tracing::info!(listener = %l.name, addr = %local, protocol = l.protocol.as_str(), "listening");
                proxy.bound.push((l.name.clone(), local));
                proxy.tasks.push(tokio::spawn(tcp::accept_loop(
                    listener,
                    Arc::clone(&name),
                    Arc::clone(&proxy.snapshot),
                )));
            }
        }
        Ok(proxy)
    }

    /// The addresses actually bound (port 0 resolved), by listener name.
    #[must_use]
    pub fn bound(&self) -> &[(String, SocketAddr)] {
        &self.bound
    }

    /// Whether [`Self::reload`] would accept `config`; asks before anything changes.
    ///
    /// # Errors
    /// As [`Self::reload`].
    pub fn check_reload(&self, config: &Config) -> Result<(), ProxyError> {
        if config.listeners == self.listeners {
            Ok(())
        } else {
            Err(ProxyError::ListenersChanged)
        }
    }

    /// Takes a new config: pools and servers change for new connections at once;
    /// connections already open finish on the snapshot they started with.
    ///
    /// # Errors
    /// [`ProxyError::ListenersChanged`] if the listeners differ (rebinding on
    /// reload is not built yet); the running config stays.
    pub fn reload(&mut self, config: &Config, registry: &Registry) -> Result<(), ProxyError> {
        self.check_reload(config)?;
        self.snapshot
            .store(Arc::new(Snapshot::build(config, registry, self.seed)));
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A listening socket with a deep backlog; IPv6 sockets are IPv6-only so
/// `[::]:80` and `0.0.0.0:80` can both be bound.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

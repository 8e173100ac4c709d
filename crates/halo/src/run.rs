//! `halo run`: start what the config describes and keep it running.
//!
//! That is the health engine for every `[[pool]]` (and GSLB endpoint and
//! VRRP track check), the proxy for every `[[listener]]`, the DNS tier for
//! `[gslb]`, VRRP for `[[vip]]` and the admin API for `[admin]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use halo_config::Config;
use halo_dns::Dns;
use halo_health::{HealthHub, Registry};
use halo_proxy::Proxy;
use tokio::signal::unix::{SignalKind, signal};

pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match halo_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            crate::check::report(&e)?;
            return Ok(ExitCode::FAILURE);
        }
    };
    refuse_empty(&config)?;
    raise_fd_limit();
    // The control plane (signals, health checks) needs little: one thread.
    // The proxy runs its own threads (`node.threads`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(path, config))
}

/// Every connection takes a descriptor (a proxied one two): the soft limit
/// goes up to the hard one, as HAProxy raises it to what `maxconn` needs
/// (under systemd the soft limit is 1,024, the hard one 524,288).
fn raise_fd_limit() {
    match halo_net::raise_fd_limit() {
        Ok((before, after)) if before < after => {
            tracing::info!(
                before,
                after,
                "raised the open files limit (RLIMIT_NOFILE) to the hard limit"
            );
        }
        Ok((_, limit)) => {
            tracing::info!(
                limit,
                "open files limit (RLIMIT_NOFILE) is already at the hard limit"
            );
        }
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}

/// A file that configures nothing to run is a mistake worth saying.
fn refuse_empty(c: &Config) -> anyhow::Result<()> {
    if c.pools.is_empty() && c.gslb.is_none() && c.vips.is_empty() {
        anyhow::bail!("nothing to run: the file configures no [[pool]], no [gslb] and no [[vip]]");
    }
    Ok(())
}

/// Everything running, owned by the main loop: signals and admin API
/// commands are handled one at a time here.
struct Node<'p> {
    path: &'p Path,
    config: Config,
    registry: Registry,
    proxy: Proxy,
    dns: Option<Dns>,
    vips: crate::vip::Vips,
    admin: Option<halo_admin::Admin>,
    /// What a new admin API (moved by a reload) sends commands on.
    commands: tokio::sync::mpsc::Sender<halo_admin::Command>,
    seed: u64,
    clock: crate::admin::Clock,
    /// What GSLB peers answer, for the status: asked once per interval.
    peer_answers: std::sync::Arc<crate::admin::PeerAnswers>,
}

/// What a reload does to the DNS tier, bound before anything changes.
enum DnsStep {
    Reload(halo_dns::PreparedDns),
    Start(halo_dns::PreparedDns),
    Stop,
    Nothing,
}

/// What a reload does to the admin API.
enum AdminStep {
    Keep,
    /// Serve on this new socket (and close the old one).
    Start(std::net::TcpListener),
    Stop,
}

/// What a started node listens on, for `halo demo`'s instructions.
pub(crate) struct Bound {
    pub(crate) listeners: Vec<std::net::SocketAddr>,
    pub(crate) dns: Vec<std::net::SocketAddr>,
    pub(crate) admin: Option<std::net::SocketAddr>,
}

/// Called once everything is bound.
pub(crate) type OnReady = Box<dyn FnOnce(&Bound)>;

async fn serve(path: &Path, config: Config) -> anyhow::Result<ExitCode> {
    serve_with(path, config, None).await
}

/// Runs `config` until SIGTERM/SIGINT; `ready` is called once all is bound.
pub(crate) async fn serve_with(
    path: &Path,
    config: Config,
    ready: Option<OnReady>,
) -> anyhow::Result<ExitCode> {
    let started = tokio::time::Instant::now();
    // First: a SIGHUP that arrives while the tiers start (a deploy script
    // that reloads at once) must not kill the process, as its default
    // action would; it is handled once the node runs.
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let seed =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
    let token = crate::admin::read_token(&config)?;
    let mut registry = Registry::new(HealthHub::new(seed));
    registry.apply(&config);
    // Before anything accepts: a server drained before a restart stays so.
    if let Some(path) = config.admin.as_ref().and_then(|a| a.state_file.as_ref()) {
        crate::state::load(path, &config, &registry);
    }
    let proxy = Proxy::start_threaded(&config, &registry, seed, config.node.threads.into())?;
    let dns = match &config.gslb {
        Some(_) => Some(Dns::start(
            &config,
            &registry,
            seed,
            config.node.threads.into(),
        )?),
        None => None,
    };
    // Last: an instance starts as backup, and its addresses should find the
    // listeners already bound.
    let vips = crate::vip::Vips::start(&config, &registry)?;
    let (commands, mut admin_rx) = tokio::sync::mpsc::channel(16);
    let admin = match &config.admin {
        Some(a) => Some(halo_admin::Admin::start(a.listen, token, commands.clone()).await?),
        None => None,
    };
    tracing::info!(
        node = %config.node.name,
        site = %config.node.site,
        "halo {} running: {}",
        env!("CARGO_PKG_VERSION"),
        crate::check::summary(&config)
    );
    let mut node = Node {
        path,
        config,
        registry,
        proxy,
        dns,
        vips,
        admin,
        commands,
        seed,
        clock: crate::admin::Clock {
            started,
            loaded: started,
        },
        peer_answers: std::sync::Arc::default(),
    };

    if let Some(ready) = ready {
        ready(&Bound {
            listeners: node.proxy.bound().iter().map(|(_, a)| *a).collect(),
            dns: node.dns.as_ref().map(Dns::bound).unwrap_or_default(),
            admin: node.admin.as_ref().map(halo_admin::Admin::addr),
        });
    }
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = node.reload("SIGHUP");
            }
            Some(cmd) = admin_rx.recv() => node.command(cmd),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    if let Some(a) = &node.admin {
        a.set_ready(false);
    }
    // Masters hand their addresses over first (priority 0: the peers take
    // over within their skew time), then listeners close and in-flight work
    // drains (up to node.stop_grace), then the monitors stop.
    let Node {
        mut proxy,
        dns,
        vips,
        registry,
        admin,
        config,
        ..
    } = node;
    vips.stop().await;
    // Then no new connections, and what is in flight gets `stop_grace`.
    let grace = config.node.stop_grace;
    let left = proxy.drain(grace).await;
    if left > 0 {
        tracing::warn!(
            "{left} requests or connections still in flight after stop_grace {grace:?}: cut"
        );
    } else {
        tracing::info!("drained: nothing in flight");
    }
    drop(proxy);
    drop(dns);
    drop(registry);
    drop(admin);
    Ok(ExitCode::SUCCESS)
}

impl Node<'_> {
    fn command(&mut self, cmd: halo_admin::Command) {
        match cmd {
            halo_admin::Command::Status { ask_peers, reply } => {
                let st = crate::admin::status(
                    &self.clock,
                    &self.config,
                    &self.registry,
                    &self.proxy,
                    self.dns.as_ref(),
                    &self.vips,
                );
                let peers = match &self.dns {
                    Some(d) if ask_peers => d.peers(),
                    _ => Vec::new(),
                };
                if peers.is_empty() {
                    let _ = reply.send(st);
                } else {
                    // Asking peers takes a round trip (or a timeout): not
                    // in the main loop.
                    let cache = std::sync::Arc::clone(&self.peer_answers);
                    let interval = self
                        .config
                        .gslb
                        .as_ref()
                        .map_or(std::time::Duration::from_secs(1), |g| g.peer_interval);
                    tokio::spawn(async move {
                        let _ = reply.send(cache.add_to(st, peers, interval).await);
                    });
                }
            }
            halo_admin::Command::SetServer {
                pool,
                server,
                state,
                weight,
                who,
                reply,
            } => {
                let r = crate::admin::set_server(
                    &self.config,
                    &self.registry,
                    (&pool, &server),
                    state,
                    weight,
                    &who,
                );
                // Kept for the next start; the change holds even if the
                // file cannot be written (said in the log).
                if r.is_ok()
                    && let Some(path) = self
                        .config
                        .admin
                        .as_ref()
                        .and_then(|a| a.state_file.as_ref())
                    && let Err(e) = crate::state::save(path, &self.config, &self.registry)
                {
                    tracing::error!("{e:#}");
                }
                let _ = reply.send(r);
            }
            halo_admin::Command::Reload { who, reply } => {
                let _ = reply.send(self.reload(&format!("admin API ({who})")));
            }
        }
    }

    /// Validates the file again and applies it; a bad file changes nothing.
    /// Ok(summary) or Err(why it was rejected).
    fn reload(&mut self, who: &str) -> Result<String, String> {
        match self.try_reload() {
            Ok(summary) => {
                tracing::info!(%who, "reloaded: {summary}");
                Ok(summary)
            }
            Err(e) => {
                tracing::error!(%who, "reload rejected, the running config stays:\n{e}");
                Err(e)
            }
        }
    }

    fn try_reload(&mut self) -> Result<String, String> {
        let config = halo_config::load(self.path).map_err(|e| e.to_string())?;
        // Everything that can refuse the new config is asked before anything
        // changes; the binds come last (closed again if one of them fails).
        let (token, dns, admin, proxy) = (|| -> anyhow::Result<_> {
            refuse_empty(&config)?;
            crate::vip::Vips::check_reload(&config)?;
            let token = crate::admin::read_token(&config)?;
            let dns = match (&self.dns, &config.gslb) {
                (Some(d), Some(_)) => DnsStep::Reload(d.prepare_reload(&config)?),
                (None, Some(_)) => {
                    DnsStep::Start(Dns::prepare(&config, config.node.threads.into())?)
                }
                (Some(_), None) => DnsStep::Stop,
                (None, None) => DnsStep::Nothing,
            };
            let admin = match (&self.config.admin, &config.admin) {
                (Some(a), Some(b)) if a.listen == b.listen => AdminStep::Keep,
                (_, Some(b)) => AdminStep::Start(halo_admin::Admin::bind(b.listen)?),
                (Some(_), None) => AdminStep::Stop,
                (None, None) => AdminStep::Keep,
            };
            let proxy = self.proxy.prepare_reload(&config)?;
            Ok((token, dns, admin, proxy))
        })()
        .map_err(|e| format!("{e:#}"))?;
        self.registry.apply(&config);
        self.proxy.apply_reload(proxy, &config, &self.registry);
        let dns_failed = |e: halo_dns::DnsError| {
            tracing::error!("DNS reload failed after the health engine took the new config: {e}");
        };
        match dns {
            DnsStep::Reload(prepared) => {
                if let Some(d) = &mut self.dns {
                    if let Err(e) = d.apply_reload(prepared, &config, &self.registry) {
                        dns_failed(e);
                    }
                }
            }
            DnsStep::Start(prepared) => {
                match Dns::start_prepared(prepared, &config, &self.registry, self.seed) {
                    Ok(d) => self.dns = Some(d),
                    Err(e) => dns_failed(e),
                }
            }
            DnsStep::Stop => {
                tracing::info!("[gslb] removed: the DNS tier stops");
                self.dns = None;
            }
            DnsStep::Nothing => {}
        }
        if let Err(e) = self.vips.apply(&config, &self.registry) {
            tracing::error!(
                "VRRP reload failed after the health engine took the new config: {e:#}"
            );
        }
        match admin {
            AdminStep::Keep => {
                if let Some(a) = &self.admin {
                    a.set_token(token);
                }
            }
            AdminStep::Start(listener) => {
                // The old listener (if any) closes when it is replaced; a
                // reply to the API request that asked for this reload still
                // goes out on its open connection.
                match halo_admin::Admin::serve(listener, token, self.commands.clone()) {
                    Ok(a) => self.admin = Some(a),
                    Err(e) => tracing::error!("the admin API could not move: {e}"),
                }
            }
            AdminStep::Stop => {
                tracing::info!("[admin] removed: the admin API stops");
                self.admin = None;
            }
        }
        let summary = crate::check::summary(&config);
        self.config = config;
        self.clock.loaded = tokio::time::Instant::now();
        Ok(summary)
    }
}

//! `halo run`: start what the config describes and keep it running.
//!
//! Today that is the health engine for every `[[pool]]` (and GSLB endpoint
//! and VRRP track check), the proxy for `http` and `tcp` listeners, the DNS
//! tier for `[gslb]` and VRRP for `[[vip]]`. Sections whose tier is not built
//! yet make `run` refuse to start, naming them, so nothing in a file is
//! silently ignored.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use halo_config::{Config, Protocol};
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
    refuse_unsupported(&config)?;
    // The control plane (signals, health checks) needs little: one thread.
    // The proxy runs its own threads (`node.threads`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(path, config))
}

/// Every section whose tier is not built yet, named, or Ok.
fn refuse_unsupported(c: &Config) -> anyhow::Result<()> {
    let mut missing: Vec<String> = c
        .listeners
        .iter()
        .filter(|l| !matches!(l.protocol, Protocol::Tcp | Protocol::Http))
        .map(|l| {
            format!(
                "[[listener]] \"{}\" with protocol = \"{}\" (\"http\" and \"tcp\" are built)",
                l.name,
                l.protocol.as_str()
            )
        })
        .collect();
    if c.admin.is_some() {
        missing.push("[admin] (admin API)".into());
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "not supported yet: {}; this build runs [[pool]] health checks, http and tcp listeners, \
             [gslb] and [[vip]] (`halo check` validates every section)",
            missing.join(", ")
        );
    }
    if c.pools.is_empty() && c.gslb.is_none() && c.vips.is_empty() {
        anyhow::bail!("nothing to run: the file configures no [[pool]], no [gslb] and no [[vip]]");
    }
    Ok(())
}

async fn serve(path: &Path, config: Config) -> anyhow::Result<ExitCode> {
    let seed =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
    let mut registry = Registry::new(HealthHub::new(seed));
    registry.apply(&config);
    let mut proxy = Proxy::start_threaded(&config, &registry, seed, config.node.threads.into())?;
    let mut dns = match &config.gslb {
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
    let mut vips = crate::vip::Vips::start(&config, &registry)?;
    tracing::info!(
        node = %config.node.name,
        site = %config.node.site,
        "halo {} running: {}",
        env!("CARGO_PKG_VERSION"),
        crate::check::summary(&config)
    );

    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(path, &mut registry, &mut proxy, &mut dns, &mut vips),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    // Masters hand their addresses over first (priority 0: the peers take
    // over within their skew time), then listeners close, then the monitors.
    vips.stop().await;
    drop(proxy);
    drop(dns);
    drop(registry);
    Ok(ExitCode::SUCCESS)
}

/// Validates the file again and applies it; a bad file changes nothing.
fn reload(
    path: &Path,
    registry: &mut Registry,
    proxy: &mut Proxy,
    dns: &mut Option<Dns>,
    vips: &mut crate::vip::Vips,
) {
    let config = match halo_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload rejected, the running config stays:\n{e}");
            return;
        }
    };
    // Everything that can refuse the new config is asked before anything changes.
    let dns_ok = || match (dns.as_ref(), &config.gslb) {
        (Some(d), Some(_)) => d.check_reload(&config).map_err(anyhow::Error::from),
        (None, None) => Ok(()),
        (Some(_), None) => Err(anyhow::anyhow!(
            "[gslb] removed; restart halo to stop the DNS tier"
        )),
        (None, Some(_)) => Err(anyhow::anyhow!(
            "[gslb] added; restart halo to start the DNS tier"
        )),
    };
    if let Err(e) = refuse_unsupported(&config)
        .and_then(|()| proxy.check_reload(&config).map_err(Into::into))
        .and_then(|()| dns_ok())
        .and_then(|()| crate::vip::Vips::check_reload(&config))
    {
        tracing::error!("reload rejected, the running config stays: {e:#}");
        return;
    }
    registry.apply(&config);
    if let Err(e) = proxy.reload(&config, registry) {
        // check_reload said yes, so this is not expected; say so loudly.
        tracing::error!("proxy reload failed after the health engine took the new config: {e}");
    }
    if let Some(d) = dns {
        if let Err(e) = d.reload(&config, registry) {
            tracing::error!("DNS reload failed after the health engine took the new config: {e}");
        }
    }
    if let Err(e) = vips.apply(&config, registry) {
        tracing::error!("VRRP reload failed after the health engine took the new config: {e:#}");
    }
    tracing::info!("reloaded: {}", crate::check::summary(&config));
}

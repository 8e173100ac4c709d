//! `halo run`: start what the config describes and keep it running.
//!
//! Today that is the health engine for every `[[pool]]`: each server is checked
//! and its transitions logged. Sections whose tier is not built yet make `run`
//! refuse to start, naming them, so nothing in a file is silently ignored.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use halo_config::{Check, Config, Passive, ServerAddress};
use halo_health::{HealthHub, Monitor, ServerKey};
use tokio::signal::unix::{SignalKind, signal};

/// What a server's monitor was started with; a reload keeps a monitor (and
/// its health state) when this is unchanged.
#[derive(Debug, PartialEq)]
struct MonitorSpec {
    address: ServerAddress,
    check: Option<Check>,
    passive: Passive,
}

pub(crate) fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match halo_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            crate::check::report(&e)?;
            return Ok(ExitCode::FAILURE);
        }
    };
    refuse_unsupported(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(path, config))
}

/// Every section whose tier is not built yet, named, or Ok.
fn refuse_unsupported(c: &Config) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !c.listeners.is_empty() {
        missing.push("[[listener]] (proxy tier)");
    }
    if !c.vips.is_empty() {
        missing.push("[[vip]] (VRRP tier)");
    }
    if c.gslb.is_some() {
        missing.push("[gslb] (global DNS tier)");
    }
    if c.admin.is_some() {
        missing.push("[admin] (admin API)");
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "not supported yet: {}; this build runs health checks for [[pool]] sections only \
             (`halo check` validates every section)",
            missing.join(", ")
        );
    }
    if c.pools.is_empty() {
        anyhow::bail!("nothing to run: the file configures no [[pool]]");
    }
    Ok(())
}

async fn serve(path: &Path, config: Config) -> anyhow::Result<ExitCode> {
    let hub = HealthHub::default();
    let mut monitors: HashMap<ServerKey, (MonitorSpec, Monitor)> = HashMap::new();
    apply(&hub, &config, &mut monitors);
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
            _ = hup.recv() => reload(path, &hub, &mut monitors),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    // Dropping the monitors stops their checks; nothing else holds state yet.
    monitors.clear();
    Ok(ExitCode::SUCCESS)
}

/// Validates the file again; a bad file changes nothing.
fn reload(path: &Path, hub: &HealthHub, monitors: &mut HashMap<ServerKey, (MonitorSpec, Monitor)>) {
    let config = match halo_config::load(path).map_err(anyhow::Error::from) {
        Ok(c) => match refuse_unsupported(&c) {
            Ok(()) => c,
            Err(e) => {
                tracing::error!("reload rejected, the running config stays: {e:#}");
                return;
            }
        },
        Err(e) => {
            tracing::error!("reload rejected, the running config stays:\n{e}");
            return;
        }
    };
    apply(hub, &config, monitors);
    tracing::info!("reloaded: {}", crate::check::summary(&config));
}

/// Makes the running monitors match `config`: unchanged servers keep their
/// monitor and health state, changed and new ones start afresh, removed ones stop.
fn apply(
    hub: &HealthHub,
    config: &Config,
    monitors: &mut HashMap<ServerKey, (MonitorSpec, Monitor)>,
) {
    let mut wanted: HashMap<ServerKey, MonitorSpec> = HashMap::new();
    for pool in &config.pools {
        for server in &pool.servers {
            wanted.insert(
                ServerKey::new(&pool.name, &server.name),
                MonitorSpec {
                    address: server.address.clone(),
                    check: pool.check.clone(),
                    passive: pool.passive,
                },
            );
        }
    }
    monitors.retain(|key, (spec, _)| wanted.get(key) == Some(spec));
    for (key, spec) in wanted {
        if let std::collections::hash_map::Entry::Vacant(slot) = monitors.entry(key) {
            let monitor = hub.spawn(
                slot.key().clone(),
                &spec.address,
                spec.check.as_ref(),
                spec.passive,
            );
            slot.insert((spec, monitor));
        }
    }
}

//! `halo check`: validate and summarise, or list every problem.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use halo_config::{Config, ConfigError};

pub(crate) fn check(path: &Path) -> anyhow::Result<ExitCode> {
    match halo_config::load(path) {
        Ok(config) => {
            // The files the config names: every certificate must parse and
            // match its key.
            let mut problems: Vec<halo_config::Diagnostic> = config
                .listeners
                .iter()
                .filter_map(|l| halo_proxy::tls::check(&l.tls.certificates).err())
                .flatten()
                .collect();
            problems.extend(
                config
                    .pools
                    .iter()
                    .filter_map(|p| p.tls.as_ref())
                    .filter_map(|t| halo_health::ServerTls::new(t).err()),
            );
            // GSLB probes over TLS (one per service; several share the
            // [gslb.probe] table, reported once).
            let mut probe_tls: Vec<&halo_config::PoolTls> = Vec::new();
            for t in config
                .gslb
                .iter()
                .flat_map(|g| &g.services)
                .filter_map(|s| s.probe.as_ref()?.tls.as_ref())
            {
                if !probe_tls.iter().any(|seen| seen.origin == t.origin) {
                    probe_tls.push(t);
                }
            }
            problems.extend(
                probe_tls
                    .into_iter()
                    .filter_map(|t| halo_health::ServerTls::new(t).err()),
            );
            if !problems.is_empty() {
                report(&ConfigError::Invalid(problems))?;
                return Ok(ExitCode::FAILURE);
            }
            writeln!(
                std::io::stdout(),
                "{}: OK: {}",
                path.display(),
                summary(&config)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            report(&e)?;
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints a config error as the user should see it: one line per problem.
pub(crate) fn report(e: &ConfigError) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{e}")?;
    let n = e.diagnostics().len();
    if n > 1 {
        writeln!(err, "{n} problems found")?;
    }
    Ok(())
}

/// One line: what this node would run.
pub(crate) fn summary(c: &Config) -> String {
    let servers: usize = c.pools.iter().map(|p| p.servers.len()).sum();
    let mut parts = vec![format!("node {} (site {})", c.node.name, c.node.site)];
    parts.push(format!(
        "{} listener{}, {} pool{} ({servers} server{})",
        c.listeners.len(),
        plural(c.listeners.len()),
        c.pools.len(),
        plural(c.pools.len()),
        plural(servers)
    ));
    parts.push(format!("{} vip{}", c.vips.len(), plural(c.vips.len())));
    if let Some(g) = &c.gslb {
        parts.push(format!(
            "gslb zone {} ({} service{}, {} peer{})",
            g.zone,
            g.services.len(),
            plural(g.services.len()),
            g.peers.len(),
            plural(g.peers.len())
        ));
    }
    if let Some(a) = &c.admin {
        parts.push(format!("admin on {}", a.listen));
    }
    parts.join("; ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

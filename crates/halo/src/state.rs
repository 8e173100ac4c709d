//! Run-time server state kept across restarts: `[admin] state_file`, as
//! HAProxy's `server-state-file` with `load-server-state-from-file`.
//!
//! Why: a server an operator drained or put in maintenance must not take
//! traffic again because halo restarted (a package upgrade, a node reboot),
//! nor lose the weight it was given. The file holds each server whose admin
//! state is not `ready` or whose weight was set at run time:
//!
//! ```json
//! {"servers": [{"pool": "web", "server": "a", "admin": "maint", "weight": 10}]}
//! ```
//!
//! It is replaced whole (written beside, then renamed) after every change,
//! and read at start before any listener accepts.

use std::path::Path;

use halo_config::Config;
use halo_health::{AdminState, Registry, ServerKey};

/// Writes the state of every server of `config` that differs from the
/// defaults. Errors name the file.
pub(crate) fn save(path: &Path, config: &Config, registry: &Registry) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for pool in &config.pools {
        for server in &pool.servers {
            let Some(h) = registry.health(&ServerKey::new(&pool.name, &server.name)) else {
                continue;
            };
            let (admin, weight) = (h.admin(), h.weight());
            if admin == AdminState::Ready && weight.is_none() {
                continue;
            }
            let mut entry = serde_json::json!({ "pool": pool.name, "server": server.name });
            if admin != AdminState::Ready {
                entry["admin"] = admin.as_str().into();
            }
            if let Some(w) = weight {
                entry["weight"] = w.into();
            }
            servers.push(entry);
        }
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({ "servers": servers }))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, format!("{text}\n"))?;
        // A rename replaces the file whole: a crash leaves the old or the new.
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| anyhow::anyhow!("cannot write the state file {}: {e}", path.display()))
}

/// Applies the file's state to the servers `config` still has. Returns how
/// many servers it changed; problems are logged, never fatal (a missing
/// file is an empty one).
pub(crate) fn load(path: &Path, config: &Config, registry: &Registry) -> usize {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "state file not read: servers start ready");
            return 0;
        }
    };
    let doc: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "state file is not valid JSON: ignored, servers start ready");
            return 0;
        }
    };
    let Some(entries) = doc.get("servers").and_then(serde_json::Value::as_array) else {
        tracing::warn!(file = %path.display(), "state file has no \"servers\" list: ignored");
        return 0;
    };
    let mut applied = 0;
    for e in entries {
        let field = |k: &str| e.get(k).and_then(serde_json::Value::as_str);
        let (Some(pool), Some(server)) = (field("pool"), field("server")) else {
            tracing::warn!(file = %path.display(), entry = %e, "state entry without pool and server: skipped");
            continue;
        };
        let known = config
            .pools
            .iter()
            .any(|p| p.name == pool && p.servers.iter().any(|s| s.name == server));
        let health = registry.health(&ServerKey::new(pool, server));
        let (true, Some(h)) = (known, health) else {
            tracing::info!(server = %format!("{pool}/{server}"), "state file names a server the config no longer has: skipped");
            continue;
        };
        let admin = match field("admin").map(str::parse::<AdminState>) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(why)) => {
                tracing::warn!(server = %format!("{pool}/{server}"), "state entry skipped: {why}");
                continue;
            }
        };
        let weight = match e.get("weight") {
            None => None,
            Some(w) => match w
                .as_u64()
                .and_then(|w| u16::try_from(w).ok())
                .filter(|w| *w <= halo_config::MAX_WEIGHT)
            {
                Some(w) => Some(w),
                None => {
                    tracing::warn!(server = %format!("{pool}/{server}"), weight = %w, "state entry skipped: weight out of range (0 to 256)");
                    continue;
                }
            },
        };
        if let Some(a) = admin {
            h.set_admin(a);
        }
        if weight.is_some() {
            h.set_weight(weight);
        }
        tracing::info!(
            server = %format!("{pool}/{server}"),
            admin = admin.map_or("ready", AdminState::as_str),
            weight = ?weight,
            "server state restored from the state file"
        );
        applied += 1;
    }
    applied
}

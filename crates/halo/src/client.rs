//! `halo status` and `halo ctl`: clients of a running node's admin API.
//!
//! The admin address and token come from flags, or from the config file
//! (`[admin] listen` and `token_file`), so on a node `halo ctl drain p/s -c
//! /etc/halo/halo.toml` needs nothing else.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use halo_admin::Status;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Where the admin API is and how to authenticate.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The admin API, e.g. http://127.0.0.1:9090 (default: `[admin] listen`
    /// of the config file, else 127.0.0.1:9090).
    #[arg(long, value_name = "URL", global = true)]
    admin: Option<String>,
    /// File holding the bearer token (default: `[admin] token_file`).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// The node's config file, to read the two above from.
    #[arg(short, long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

struct Resolved {
    addr: SocketAddr,
    token: Option<String>,
}

impl Target {
    fn resolve(&self, need_token: bool) -> anyhow::Result<Resolved> {
        let config = match &self.config {
            Some(path) => Some(halo_config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?),
            None => None,
        };
        let admin = config.as_ref().and_then(|c| c.admin.as_ref());
        let addr = match &self.admin {
            Some(url) => {
                let hostport = url.trim_start_matches("http://").trim_end_matches('/');
                hostport.parse().with_context(|| {
                    format!("--admin {url}: write http://IP:PORT, e.g. http://127.0.0.1:9090")
                })?
            }
            None => admin.map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090)), |a| a.listen),
        };
        let token_file = self
            .token_file
            .clone()
            .or_else(|| admin.and_then(|a| a.token_file.clone()));
        let token = match token_file {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .with_context(|| format!("token file {}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            None if need_token => anyhow::bail!(
                "changes need the admin token: give --token-file FILE, or -c CONFIG with [admin] token_file"
            ),
            None => None,
        };
        Ok(Resolved { addr, token })
    }
}

/// One request; (status, body).
fn call(
    target: &Resolved,
    method: Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(StatusCode, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(target.addr),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer from the admin API at {}", target.addr))?
        .with_context(|| {
            format!(
                "cannot reach the admin API at {} (is halo running with [admin]?)",
                target.addr
            )
        })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, target.addr.to_string());
        if let Some(t) = &target.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp =
            tokio::time::timeout(std::time::Duration::from_secs(30), sender.send_request(req))
                .await
                .map_err(|_| anyhow::anyhow!("the admin API did not answer within 30s"))??;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    })
}

/// `halo status`.
pub(crate) fn status(target: &Target, json: bool) -> anyhow::Result<ExitCode> {
    let t = target.resolve(false)?;
    let (code, body) = call(&t, Method::GET, "/api/status", None)?;
    anyhow::ensure!(code.is_success(), "admin API: {code}: {}", body.trim());
    if json {
        #[allow(clippy::print_stdout, reason = "the command's output")]
        {
            println!("{body}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let st: Status = serde_json::from_str(&body).context("the admin API's status")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        print!("{}", table(&st));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human table of `halo status`.
pub(crate) fn table(st: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node {} (site {}), halo {}, up {:.0}s, config loaded {:.0}s ago",
        st.node, st.site, st.version, st.uptime_secs, st.config_age_secs
    );
    if !st.vips.is_empty() {
        let _ = writeln!(o, "\nVIP          STATE    PRIO  ADDRESSES");
        for v in &st.vips {
            let _ = writeln!(
                o,
                "{:<12} {:<8} {:>4}  {}{}",
                v.name,
                v.state,
                v.priority,
                v.addresses.join(" "),
                v.group
                    .as_ref()
                    .map(|g| format!("  (group {g})"))
                    .unwrap_or_default()
            );
        }
    }
    if !st.listeners.is_empty() {
        let _ = writeln!(o, "\nLISTENER     PROTO  ACTIVE  REQUESTS  BINDS");
        for l in &st.listeners {
            let _ = writeln!(
                o,
                "{:<12} {:<6} {:>6}  {:>8}  {}",
                l.name,
                l.protocol,
                l.counters.active,
                l.counters.requests,
                l.binds.join(" ")
            );
        }
    }
    for p in &st.pools {
        let _ = writeln!(o, "\nPOOL {} ({})", p.name, p.balance);
        let _ = writeln!(
            o,
            "  SERVER           HEALTH  ADMIN  WEIGHT  ACTIVE  REQUESTS  ERRORS  ADDRESS"
        );
        for s in &p.servers {
            let _ = writeln!(
                o,
                "  {:<16} {:<6}  {:<5}  {:>6}  {:>6}  {:>8}  {:>6}  {}{}",
                s.name,
                s.health,
                s.admin,
                s.weight,
                s.counters.active,
                s.counters.requests,
                s.counters.errors,
                s.address,
                if s.backup { " (backup)" } else { "" }
            );
        }
    }
    if let Some(g) = &st.gslb {
        let _ = writeln!(o, "\nGSLB zone {} ({} queries)", g.zone, g.queries);
        for s in &g.services {
            let _ = writeln!(
                o,
                "  {:<16} {:<12} answers {}",
                s.name,
                s.strategy,
                if s.answer.is_empty() {
                    "nothing".into()
                } else {
                    s.answer.join(" ")
                }
            );
            // Peers, as asked over DNS just now (this node is the line above).
            for n in s.by_node.iter().skip(1) {
                let _ = writeln!(
                    o,
                    "  {:<16} {:<12} peer {} (site {}) answers {}",
                    "",
                    "",
                    n.node,
                    n.site.as_deref().unwrap_or("?"),
                    if n.answer.is_empty() {
                        "nothing".into()
                    } else {
                        n.answer.join(" ")
                    }
                );
            }
            // Endpoints of other sites that the probes judge: the verdict,
            // and the inputs it came from, so a withdrawn site explains itself.
            for e in &s.endpoints {
                let Some(v) = &e.verdict else { continue };
                let probe = match v.probe {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "-",
                };
                let _ = writeln!(
                    o,
                    "  {:<16} {:<12} {} (site {}): {} ({}) for {:.0}s; site says {}, its DNS {}, probe here {}, votes {} up {} down",
                    "",
                    "",
                    e.address,
                    e.site,
                    if v.up { "IN" } else { "OUT" },
                    v.why,
                    v.since_secs,
                    v.site_says,
                    v.site_dns,
                    probe,
                    v.votes_up,
                    v.votes_down,
                );
            }
        }
        for p in &g.peers {
            let stale = if p.stale_endpoints > 0 {
                format!(", {} stale addresses", p.stale_endpoints)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "  peer {} (site {}): {}, {} addresses{stale}",
                p.address,
                p.site.as_deref().unwrap_or("?"),
                if p.reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                },
                p.endpoints,
            );
        }
    }
    o
}

/// What `halo ctl` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Ctl {
    /// No new load-balanced traffic to POOL/SERVER; checks continue.
    Drain {
        /// POOL/SERVER.
        server: String,
    },
    /// No traffic and no checks for POOL/SERVER.
    Maint {
        /// POOL/SERVER.
        server: String,
    },
    /// POOL/SERVER back to normal.
    Ready {
        /// POOL/SERVER.
        server: String,
    },
    /// Set POOL/SERVER's weight (0..=256) until a reload changes the server.
    Weight {
        /// POOL/SERVER.
        server: String,
        /// The weight.
        weight: u16,
    },
    /// Reload the node's config file (as SIGHUP); a bad file is rejected.
    Reload,
}

fn split_server(server: &str) -> anyhow::Result<(&str, &str)> {
    server
        .split_once('/')
        .with_context(|| format!("\"{server}\": write POOL/SERVER, e.g. router80/clus1-infra-0"))
}

/// `halo ctl`.
pub(crate) fn ctl(target: &Target, what: &Ctl) -> anyhow::Result<ExitCode> {
    let t = target.resolve(true)?;
    let (code, body) = match what {
        Ctl::Drain { server } | Ctl::Maint { server } | Ctl::Ready { server } => {
            let state = match what {
                Ctl::Drain { .. } => "drain",
                Ctl::Maint { .. } => "maint",
                _ => "ready",
            };
            let (pool, name) = split_server(server)?;
            call(
                &t,
                Method::POST,
                &format!("/api/pools/{pool}/servers/{name}"),
                Some(format!("{{\"state\": \"{state}\"}}")),
            )?
        }
        Ctl::Weight { server, weight } => {
            let (pool, name) = split_server(server)?;
            call(
                &t,
                Method::POST,
                &format!("/api/pools/{pool}/servers/{name}"),
                Some(format!("{{\"weight\": {weight}}}")),
            )?
        }
        Ctl::Reload => call(&t, Method::POST, "/api/reload", None)?,
    };
    #[allow(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "the command's output"
    )]
    if code.is_success() {
        print!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("{code}: {body}");
        Ok(ExitCode::FAILURE)
    }
}

//! `halo demo`: the three tiers on loopback with no config and no root.
//!
//! Two sites, east (127.0.0.2) and west (127.0.0.3), each with two hello
//! servers in this process that say who they are. A proxy on 127.0.0.1:8080
//! balances over all four (round robin alternates the sites), a GSLB DNS on
//! 127.0.0.1:5353 answers `hello.demo.` with the first healthy site, and the
//! admin API is on 127.0.0.1:9090. Typing `fail east` stops east's servers
//! for real: the health checks notice, the proxy sends only to west and the
//! DNS answers west; `heal east` brings them back.
//!
//! The config is generated into a temporary folder (with a token) and run by
//! the same code as `halo run`, so `halo status` / `halo ctl -c` work on it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt as _;
use tokio::task::JoinHandle;

/// Ports of `halo demo` (0 = any free port; the real ones are printed).
#[derive(Debug, clap::Args)]
pub(crate) struct Ports {
    /// The proxy's port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    proxy_port: u16,
    /// The DNS port on 127.0.0.1 (UDP and TCP).
    #[arg(long, default_value_t = 5353)]
    dns_port: u16,
    /// The admin API's port on 127.0.0.1.
    #[arg(long, default_value_t = 9090)]
    admin_port: u16,
}

const SITES: [(&str, &str); 2] = [("east", "127.0.0.2"), ("west", "127.0.0.3")];

/// One in-process hello server, stoppable and restartable on its address.
struct Hello {
    name: String,
    site: &'static str,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Hello {
    async fn start(name: String, site: &'static str, addr: SocketAddr) -> anyhow::Result<Self> {
        let mut h = Self {
            name,
            site,
            addr,
            task: None,
        };
        h.up().await?;
        Ok(h)
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        if self.task.is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("hello server {} on {}", self.name, self.addr))?;
        self.addr = listener.local_addr()?;
        let body = Bytes::from(format!("hello from {} (site {})\n", self.name, self.site));
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = body.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |_req| {
                        let body = body.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }));
        Ok(())
    }

    /// Stops accepting and drops the open connections (the JoinSet goes
    /// with the task): to the rest of the demo this server is dead.
    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// `halo demo`.
pub(crate) fn demo(ports: &Ports) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(ports));
    // The stdin reader is a blocking read that never ends on its own; do not
    // wait for it (a plain drop of the runtime would, forever).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

async fn run(ports: &Ports) -> anyhow::Result<ExitCode> {
    let mut hellos = Vec::new();
    for (site, ip) in SITES {
        for i in 1..=2 {
            let addr = SocketAddr::new(ip.parse()?, 0);
            hellos.push(Hello::start(format!("{site}-{i}"), site, addr).await.with_context(|| {
                format!("cannot listen on {ip} (Linux routes all of 127.0.0.0/8 to loopback; other systems may not)")
            })?);
        }
    }
    let dir = std::env::temp_dir().join(format!("halo-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token = format!(
        "{:016x}{:016x}",
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 1u8),
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 2u8)
    );
    // Only its owner may read it (halo refuses a token file others can).
    std::io::Write::write_all(
        &mut std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            0o600,
        )
        .open(dir.join("admin.token"))?,
        format!("{token}\n").as_bytes(),
    )?;
    let path = dir.join("halo.toml");
    std::fs::write(&path, config(ports, &hellos))?;
    let config = halo_config::load(&path).map_err(|e| anyhow::anyhow!("the demo's config: {e}"))?;

    let hellos = Arc::new(tokio::sync::Mutex::new(hellos));
    let control = tokio::spawn(stdin_commands(Arc::clone(&hellos)));
    let shown = dir.clone();
    let ready = Box::new(move |bound: &crate::run::Bound| {
        #[allow(clippy::print_stdout, reason = "the demo's instructions")]
        {
            print!("{}", instructions(bound, &shown));
            // A pipe (the test, `| tee`) sees them at once too.
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    });
    let result = crate::run::serve_with(&path, config, Some(ready)).await;
    control.abort();
    for h in hellos.lock().await.iter_mut() {
        h.down();
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn config(ports: &Ports, hellos: &[Hello]) -> String {
    let mut c = format!(
        "# Generated by `halo demo`.\n\
         [node]\nname = \"demo\"\nsite = \"east\"\nthreads = 1\n\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\ntoken_file = \"admin.token\"\n\n\
         [[listener]]\nname = \"hello\"\nbind = [\"127.0.0.1:{}\"]\nprotocol = \"http\"\ndefault_pool = \"hello\"\n",
        ports.admin_port, ports.proxy_port
    );
    // One pool over both sites for the proxy (east and west servers
    // interleaved, so round robin alternates the sites), and one per site for
    // the DNS answer's health: a site is up while one of its servers is.
    let check =
        "  [pool.check]\n  type = \"http\"\n  interval = \"500ms\"\n  rise = 2\n  fall = 2\n";
    let server = |c: &mut String, h: &Hello| {
        let _ = write!(
            c,
            "  [[pool.server]]\n  name = \"{}\"\n  address = \"{}\"\n",
            h.name, h.addr
        );
    };
    let _ = write!(
        c,
        "\n[[pool]]\nname = \"hello\"\nbalance = \"round-robin\"\n{check}"
    );
    for i in 0..2 {
        for (site, _) in SITES {
            if let Some(h) = hellos.iter().filter(|h| h.site == site).nth(i) {
                server(&mut c, h);
            }
        }
    }
    for (site, _) in SITES {
        let _ = write!(c, "\n[[pool]]\nname = \"{site}\"\n{check}");
        for h in hellos.iter().filter(|h| h.site == site) {
            server(&mut c, h);
        }
    }
    let _ = write!(
        c,
        "\n[gslb]\nzone = \"demo\"\nlisten = [\"127.0.0.1:{}\"]\nsites = [\"east\", \"west\"]\n\n\
         [[gslb.service]]\nname = \"hello\"\nstrategy = \"failover\"\nfailover_order = [\"east\", \"west\"]\nttl = \"1s\"\n",
        ports.dns_port
    );
    for (site, ip) in SITES {
        let _ = write!(
            c,
            "  [[gslb.service.endpoint]]\n  address = \"{ip}\"\n  site = \"{site}\"\n  health = {{ pool = \"{site}\" }}\n"
        );
    }
    c
}

fn instructions(bound: &crate::run::Bound, dir: &std::path::Path) -> String {
    let proxy = bound
        .listeners
        .first()
        .map_or_else(String::new, ToString::to_string);
    let dns = bound
        .dns
        .first()
        .map_or_else(String::new, ToString::to_string);
    let admin = bound.admin.map_or_else(String::new, |a| a.to_string());
    let dns_port = dns.rsplit(':').next().unwrap_or("5353").to_owned();
    format!(
        "\nhalo demo is running: two sites on loopback, east (127.0.0.2) and west (127.0.0.3).\n\
         \n  proxy   http://{proxy}/    (round robin over both sites)\n\
         \x20 DNS     {dns}   (hello.demo. -> the first healthy site, east then west)\n\
         \x20 dashboard http://{admin}/    (JSON: /api/status, metrics: /metrics)\n\
         \nTry, in another terminal:\n\
         \x20 while sleep 0.5; do curl -s http://{proxy}/; done\n\
         \x20 dig @127.0.0.1 -p {dns_port} hello.demo. +short\n\
         \x20 halo status --admin http://{admin}\n\
         \x20 halo ctl drain hello/east-1 --admin http://{admin} --token-file {token}\n\
         \nIn the dashboard, paste the token from {token} to use its buttons.\n\
         Type here to fail or heal a site for real (its servers stop or start):\n\
         \x20 fail east | heal east | fail west | heal west      (Ctrl-C stops the demo)\n\n",
        token = dir.join("admin.token").display()
    )
}

/// `fail SITE` / `heal SITE` lines on stdin.
async fn stdin_commands(hellos: Arc<tokio::sync::Mutex<Vec<Hello>>>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (verb, site) = match words.as_slice() {
            [v, s] => (*v, *s),
            [] => continue,
            _ => {
                tracing::warn!("demo: type `fail east`, `heal east`, `fail west` or `heal west`");
                continue;
            }
        };
        let mut hellos = hellos.lock().await;
        let mut found = false;
        for h in hellos.iter_mut().filter(|h| h.site == site) {
            found = true;
            match verb {
                "fail" => h.down(),
                "heal" => {
                    if let Err(e) = h.up().await {
                        tracing::error!("demo: {e:#}");
                    }
                }
                _ => {}
            }
        }
        match (verb, found) {
            ("fail" | "heal", true) => tracing::info!(
                "demo: site {site} {}",
                if verb == "fail" {
                    "failed: its servers are down"
                } else {
                    "healed: its servers are up"
                }
            ),
            _ => tracing::warn!("demo: type `fail east`, `heal east`, `fail west` or `heal west`"),
        }
    }
}

//! `halo`: the one binary. It parses the command line, sets up logging and
//! hands over to the tier crates; logic lives in the `halo-*` libraries.

#![forbid(unsafe_code)]

mod admin;
mod check;
mod client;
mod demo;
mod run;
mod state;
mod vip;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "halo",
    version,
    about = "Keeps services reachable when a server, a load balancer, a cluster or a datacenter fails",
    long_about = "halo is global DNS (GSLB), virtual IPs (VRRP) and an L4/L7 proxy in one binary.\n\
                  Each node runs the tiers its config file describes.",
    after_help = "Examples:\n  \
        halo demo                             a tour on loopback: two sites, proxy, DNS, admin\n  \
        halo check -c /etc/halo/halo.toml     validate a config; errors name file:line:col\n  \
        halo run -c /etc/halo/halo.toml       run what the file configures\n  \
        halo status -c /etc/halo/halo.toml    the running node, from its admin API\n  \
        halo ctl drain router80/clus1-infra-0 -c /etc/halo/halo.toml\n  \
        RUST_LOG=halo_health=debug halo run -c halo.toml --log-format json\n\n\
        Signals while running: SIGHUP reloads the file (a bad file is rejected and the\n\
        running config stays); SIGTERM or SIGINT stop gracefully."
)]
struct Cli {
    /// Log line format (the level comes from RUST_LOG, default "info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file and print a summary, or every error found.
    Check {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the tiers the config file configures until SIGTERM or SIGINT.
    Run {
        /// The config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// A tour on loopback, no config, no root: two sites, proxy, DNS, admin API.
    Demo {
        #[command(flatten)]
        ports: demo::Ports,
    },
    /// Show a running node: VIPs, listeners, pools and servers, GSLB answers.
    Status {
        #[command(flatten)]
        target: client::Target,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a running node through its admin API (needs the token).
    Ctl {
        #[command(flatten)]
        target: client::Target,
        #[command(subcommand)]
        what: client::Ctl,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Check { config } => check::check(&config),
        Command::Run { config } => run::run(&config),
        Command::Demo { ports } => demo::demo(&ports),
        Command::Status { target, json } => client::status(&target, json),
        Command::Ctl { target, what } => client::ctl(&target, &what),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

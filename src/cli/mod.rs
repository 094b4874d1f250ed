//! The command line: one file per noun. Each command returns a report that prints as text or `--json`.

mod audit;
mod audit_key;
mod audit_manifest;
mod aws;
mod ca;
mod ca_aws;
mod hsm;
mod init;
mod issue;
mod output;
mod ports;
mod registry;
mod serve;
mod status;

pub use output::{Output, Report, print_error};

use crate::Result;
use crate::config::{Config, config_path};
use crate::hsm::Hsm;
use crate::ledger::Ledger;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// station: gives every device on the flashing bench its identity.
#[derive(Debug, Parser)]
#[command(name = "station", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $STATION_CONFIG, else ./station.toml]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print a JSON report instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by `STATION_LOG` (default `warn`), as text or JSON.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATION_LOG").unwrap_or_else(|_| "warn".into());
    // cryptoki logs every mechanism it has no name for (opencryptoki lists many) as an error; they are not.
    let filter = match "cryptoki::mechanism=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a working station in DIR: config, SoftHSM token, PIN files, ledger.
    Init(init::InitArgs),
    /// CA lifecycle: create, import, list, show, verification-cert.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The HSM: module, token, login and the keys found.
    #[command(subcommand)]
    Hsm(hsm::HsmCommand),
    /// Issue a device certificate from a CSR file (the same engine as the bench daemon).
    Issue(issue::IssueArgs),
    /// Run the bench daemon: provision the devices on every bench's serial port.
    Serve(serve::ServeArgs),
    /// Per-bench counts and the last device, from the ledger.
    Status,
    /// The serial ports on this machine: USB ids, manufacturer, serial number and the /dev/serial/by-id link.
    Ports(ports::PortsArgs),
    /// AWS IoT: what the first connection of a device would do (dry-run).
    #[command(subcommand)]
    Aws(aws::AwsCommand),
    /// Audits: verify the ledger.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The fleet registry on PostgreSQL: init, push, lease, status, find, verify, export, reconcile.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
}

/// The environment the PKCS#11 module must find: `[hsm] module_env` of the config this command uses, or
/// for `init`, what init will write. The binary applies it in `main`, before any thread exists (changing
/// the environment later is unsound, and a module reads it only when it initialises). A config that cannot
/// be read yields nothing here; the command itself then reports why.
pub fn process_env(cli: &Cli) -> Vec<(String, String)> {
    match &cli.command {
        Command::Init(a) => a.module_env(),
        Command::Ports(_) => Vec::new(),
        _ => Config::load(&config_path(cli.config.as_deref()))
            .map(|c| c.hsm.module_env.into_iter().collect())
            .unwrap_or_default(),
    }
}

/// Runs one command and returns its report.
pub fn run(cli: &Cli) -> Result<Box<dyn Report>> {
    match &cli.command {
        Command::Init(a) => init::run(a),
        Command::Ca(c) => ca::run(cli, c),
        Command::Hsm(c) => hsm::run(cli, c),
        Command::Issue(a) => issue::run(cli, a),
        Command::Audit(c) => audit::run(cli, c),
        Command::Aws(c) => aws::run(cli, c),
        Command::Serve(a) => serve::run(cli, a),
        Command::Status => status::run(cli),
        Command::Registry(c) => registry::run(cli, c),
        Command::Ports(a) => ports::run(a),
    }
}

/// What a command needs from the station, opened on demand.
pub struct Station {
    pub config: Config,
}

impl Station {
    pub fn load(cli: &Cli) -> Result<Station> {
        let path = config_path(cli.config.as_deref());
        Ok(Station { config: Config::load(&path)? })
    }

    pub fn ledger(&self) -> Result<Ledger> {
        Ok(Ledger::open(&self.config.ledger.path)?)
    }

    pub fn hsm(&self) -> Result<Arc<Hsm>> {
        Ok(Hsm::open(&self.config.hsm)?)
    }
}

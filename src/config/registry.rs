//! `[registry]`: the fleet registry on PostgreSQL that the station forwards its ledger to and leases serial blocks
//! from. Without the section nothing changes.
//!
//! ```toml
//! [registry]
//! url = "host=registry.factory.example port=5432 user=station-7 dbname=fleet sslmode=require"
//! password_file = "registry-password"   # 0600; STATION_REGISTRY_PASSWORD takes precedence
//! ca_file = "registry-ca.pem"            # verify the server's certificate and host name against this CA
//! lease_size = 1000
//! ```

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `[registry]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// A libpq-style connection string (`host=… port=… user=… dbname=… sslmode=disable|prefer|require`) or a
    /// `postgresql://user@host:port/db?sslmode=require` URL, without a password.
    pub url: String,
    /// A file holding the role's password (mode 0600). `STATION_REGISTRY_PASSWORD` takes precedence when set.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A PEM file of the CA(s) the server's certificate must chain to; the host name is checked too. Unset: the
    /// system's trust store (with `sslmode=require` or `prefer`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Each connection attempt ends within this many seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// At most this many events per forwarded batch (one transaction and one HSM-signed head each).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How often the forwarder looks for new events when it has caught up, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// The forwarder reports in at least this often when there is nothing to forward (last seen), in seconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// The longest wait between attempts to reach a registry that is down, in milliseconds.
    #[serde(default = "default_backoff_max")]
    pub retry_max_ms: u64,
    /// In `serial_source = "station"` mode: the serials leased per block.
    #[serde(default = "default_lease_size")]
    pub lease_size: u64,
    /// Ask for the next block when fewer than this many leased serials are left. Default: half a block.
    #[serde(default)]
    pub lease_low_water: Option<u64>,
}

fn default_connect_timeout() -> u64 {
    5
}
fn default_batch_max() -> usize {
    1000
}
fn default_poll_ms() -> u64 {
    200
}
fn default_heartbeat() -> u64 {
    10
}
fn default_backoff_max() -> u64 {
    5000
}
fn default_lease_size() -> u64 {
    1000
}

impl RegistrySection {
    /// The low-water mark in effect.
    pub fn low_water(&self) -> u64 {
        self.lease_low_water.unwrap_or(self.lease_size / 2)
    }

    pub(super) fn resolve(&mut self, base: &Path) {
        let abs = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        self.password_file = self.password_file.as_ref().map(abs);
        self.ca_file = self.ca_file.as_ref().map(abs);
    }
}

pub(super) fn check(r: &RegistrySection, path: &Path) -> Result<(), ConfigError> {
    let bad = |field: &str, problem: String, fix: &str| {
        Err(ConfigError::Field { path: path.to_path_buf(), field: field.into(), problem, fix: fix.into() })
    };
    match r.url.parse::<postgres::Config>() {
        Err(e) => {
            return bad(
                "registry.url",
                format!("cannot be parsed: {e}"),
                "write a libpq connection string such as \"host=db.example port=5432 user=station dbname=fleet \
                 sslmode=require\" (sslmode: disable, prefer or require; ca_file adds certificate checks)",
            );
        }
        Ok(c) if c.get_password().is_some() => {
            return bad(
                "registry.url",
                "carries a password".into(),
                "remove it: put the password in [registry] password_file (0600) or STATION_REGISTRY_PASSWORD",
            );
        }
        Ok(c) if c.get_hosts().is_empty() => {
            return bad("registry.url", "names no host".into(), "add host=NAME (and port=PORT)");
        }
        Ok(_) => {}
    }
    if !(1..=300).contains(&r.connect_timeout_secs) {
        return bad("registry.connect_timeout_secs", format!("is {}", r.connect_timeout_secs), "use 1 to 300");
    }
    if !(1..=10_000).contains(&r.batch_max) {
        return bad("registry.batch_max", format!("is {}", r.batch_max), "use 1 to 10000 (1000 is a good default)");
    }
    if !(10..=60_000).contains(&r.poll_ms) {
        return bad("registry.poll_ms", format!("is {}", r.poll_ms), "use 10 to 60000 milliseconds");
    }
    if !(1..=3600).contains(&r.heartbeat_secs) {
        return bad("registry.heartbeat_secs", format!("is {}", r.heartbeat_secs), "use 1 to 3600 seconds");
    }
    if !(100..=600_000).contains(&r.retry_max_ms) {
        return bad("registry.retry_max_ms", format!("is {}", r.retry_max_ms), "use 100 to 600000 milliseconds");
    }
    if !(1..=10_000_000).contains(&r.lease_size) {
        return bad("registry.lease_size", format!("is {}", r.lease_size), "use 1 to 10000000 serials per block");
    }
    if r.low_water() >= r.lease_size.max(2) {
        return bad(
            "registry.lease_low_water",
            format!("({}) is not below lease_size ({})", r.low_water(), r.lease_size),
            "use a number below lease_size, e.g. half of it",
        );
    }
    Ok(())
}

//! AWS IoT: register the CA for just-in-time provisioning (`station ca register`), batch-verify that every
//! target region is ready (`station ca verify`), and refuse to issue when it is not (`gate`).
//!
//! - `client`: the SDK client per region (profile, endpoint, timeouts, retries) behind a rate limiter, and
//!   SDK errors turned into a kind, a stable code and a remedy.
//! - `template`: the JITP template and its static check against the device subject profile.
//! - `checks`: the pure checks of one described CA against the local one.
//! - `register`, `verify`: the two commands' engines. `verify::verify_cas` is async for the daemon.
//! - `gate`: the fail-closed rule `station issue` and `station serve` apply.

mod checks;
pub mod client;
pub mod dry_run;
mod error;
pub mod field;
pub mod gate;
pub mod register;
pub mod retire;
pub mod template;
pub mod verify;
pub mod watch;

pub use checks::{Check, LocalCa, Status};
pub use client::{CallError, CallKind, Described, Iot};
pub use error::{AwsError, FailedVerification};
pub use template::{DeviceSubject, Template};

use crate::config::{AwsMode, AwsRegion, Config, valid_region};
use std::path::PathBuf;
use std::time::Duration;

/// What a command may override from `[aws]`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--region R`, repeatable: replaces the configured regions (each keeps its configured profile).
    pub regions: Vec<String>,
    /// `--endpoint-url URL`.
    pub endpoint_url: Option<String>,
    /// `--mode jitp|jitr`.
    pub mode: Option<AwsMode>,
}

/// `[aws]` with the command's overrides applied, plus the device subject profile from `[policy]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub regions: Vec<AwsRegion>,
    pub endpoint_url: Option<String>,
    pub mode: AwsMode,
    /// None: the built-in template.
    pub template: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_tps: u32,
    /// What every device certificate's subject carries.
    pub subject: DeviceSubject,
    /// Device certificate validity (`[policy] days`): the CA must outlive a certificate issued now.
    pub device_days: u32,
}

impl Settings {
    /// Resolves the settings for one command. Without `[aws]`, `--region` alone is enough.
    pub fn resolve(cfg: &Config, o: &Overrides) -> Result<Settings, AwsError> {
        let section = cfg.aws.clone().unwrap_or_default();
        let regions = if o.regions.is_empty() {
            section.regions.clone()
        } else {
            let mut out: Vec<AwsRegion> = Vec::new();
            for r in &o.regions {
                if !valid_region(r) {
                    return Err(AwsError::BadRegion { region: r.clone() });
                }
                if out.iter().any(|x| &x.name == r) {
                    continue;
                }
                let known = section.regions.iter().find(|x| &x.name == r);
                out.push(known.cloned().unwrap_or(AwsRegion { name: r.clone(), profile: None }));
            }
            out
        };
        if regions.is_empty() {
            return Err(AwsError::NotConfigured);
        }
        Ok(Settings {
            regions,
            endpoint_url: o.endpoint_url.clone().or(section.endpoint_url.clone()),
            mode: o.mode.unwrap_or(section.mode),
            template: section.template.clone(),
            role_arn: section.role_arn.clone(),
            timeout: Duration::from_secs(section.timeout_secs),
            max_attempts: section.max_attempts,
            max_tps: section.max_tps,
            subject: DeviceSubject::from_policy(&cfg.policy),
            device_days: cfg.policy.days,
        })
    }

    /// The options an `aws` CLI command needs to reach the same account and endpoint, for remedies.
    pub fn cli_target(&self, region: &AwsRegion) -> String {
        let mut s = format!("--region {}", region.name);
        if let Some(p) = &region.profile {
            s += &format!(" --profile {p}");
        }
        if let Some(u) = &self.endpoint_url {
            s += &format!(" --endpoint-url {u}");
        }
        s
    }
}

/// A runtime for one CLI command (the CLI is otherwise synchronous). Not for use inside a runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime, AwsError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AwsError::Runtime)
}

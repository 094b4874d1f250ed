//! `station.toml`: parsed with serde (unknown fields refused by name), then checked field by field,
//! then resolved (relative paths made absolute against the file's own folder).

mod aws;
mod check;
pub use check::check_bench_list;
mod http;
mod model;
mod registry;
mod serve;

pub use aws::*;
pub use http::HttpSection;
pub use model::*;
pub use registry::RegistrySection;
pub use serve::{BenchSection, ServeSection};

use crate::error::{Coded, exit};
use std::path::{Path, PathBuf};

/// Where the config comes from when `-c/--config` is not given.
pub const CONFIG_ENV: &str = "STATION_CONFIG";

/// A config that cannot be used; every variant names the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: `{field}` {problem}")]
    Field { path: PathBuf, field: String, problem: String, fix: String },
}

impl Coded for ConfigError {
    fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config-unreadable",
            ConfigError::Parse { .. } => "config-invalid",
            ConfigError::Field { .. } => "config-field-invalid",
        }
    }
    fn hint(&self) -> String {
        match self {
            ConfigError::Read { .. } => {
                format!("pass the file with -c/--config, set {CONFIG_ENV}, or run `station init --dir DIR` to make one")
            }
            ConfigError::Parse { .. } => {
                "fix the named field; station.toml at the top of the repository documents every field".into()
            }
            ConfigError::Field { fix, .. } => fix.clone(),
        }
    }
    fn exit_status(&self) -> i32 {
        exit::CONFIG
    }
    fn retryable(&self) -> bool {
        match self {
            ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Field { .. } => false,
        }
    }
}

/// The config path: the flag, else `STATION_CONFIG`, else `./station.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    choose_config_path(flag, std::env::var_os(CONFIG_ENV))
}

/// The rule of [`config_path`], given the flag and the variable's value.
fn choose_config_path(flag: Option<&Path>, env: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match env {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("station.toml"),
    }
}

impl Config {
    /// Reads, parses, checks and resolves a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path)
    }

    /// Parses config text as if it were read from `path` (relative paths resolve against its folder).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string() + &span_note(text, e.span()),
        })?;
        check::check(&cfg, path)?;
        let base =
            path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        cfg.resolve(&base);
        cfg.source = path.to_path_buf();
        Ok(cfg)
    }
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;

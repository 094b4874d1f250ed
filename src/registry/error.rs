use crate::error::{Coded, exit};
use std::path::PathBuf;

/// A failure talking to the fleet registry, or a registry that refuses this station.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("this station has no [registry] section")]
    NotConfigured,
    #[error("no registry password: {0}")]
    PasswordMissing(String),
    #[error("registry password file {path} is readable by group or others (mode {mode:o})")]
    PasswordFilePermissions { path: PathBuf, mode: u32 },
    #[error("cannot read registry password file {path}: {problem}")]
    PasswordFileUnreadable { path: PathBuf, problem: String },
    #[error("cannot read the registry's CA file {path}: {problem}")]
    CaFileUnreadable { path: PathBuf, problem: String },
    #[error("the registry at {target} cannot be reached: {problem}")]
    Unreachable { target: String, problem: String },
    #[error("the registry at {target} refused the login of role {user:?}: {problem}")]
    AuthFailed { target: String, user: String, problem: String },
    #[error("TLS with the registry at {target} failed: {problem}")]
    Tls { target: String, problem: String },
    #[error("the registry's schema is version {found}, newer than this station knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the registry's schema is not set up (version {found}; this station needs {known})")]
    SchemaMissing { found: i64, known: i64 },
    #[error("station id {station:?} is registered to another station: {why}")]
    StationConflict { station: String, why: String },
    #[error("the registry's copy of station {station:?} differs from this ledger: {why}")]
    Diverged { station: String, why: String },
    #[error("another forwarder of station {station:?} moved the registry on (it holds event {registry_seq}); retrying")]
    OutOfStep { station: String, registry_seq: i64 },
    #[error("no free serial block: {0}")]
    NoFreeBlock(String),
    #[error("registry: {op} failed: {problem}")]
    Query { op: &'static str, problem: String },
}

impl Coded for RegistryError {
    fn code(&self) -> &'static str {
        match self {
            RegistryError::NotConfigured => "registry-not-configured",
            RegistryError::PasswordMissing(_) => "registry-password-missing",
            RegistryError::PasswordFilePermissions { .. } => "registry-password-file-permissions",
            RegistryError::PasswordFileUnreadable { .. } => "registry-password-file-unreadable",
            RegistryError::CaFileUnreadable { .. } => "registry-ca-file-unreadable",
            RegistryError::Unreachable { .. } => "registry-unreachable",
            RegistryError::AuthFailed { .. } => "registry-auth-failed",
            RegistryError::Tls { .. } => "registry-tls-failed",
            RegistryError::SchemaTooNew { .. } => "registry-schema-too-new",
            RegistryError::SchemaMissing { .. } => "registry-schema-missing",
            RegistryError::StationConflict { .. } => "registry-station-conflict",
            RegistryError::Diverged { .. } => "registry-diverged",
            RegistryError::OutOfStep { .. } => "registry-out-of-step",
            RegistryError::NoFreeBlock(_) => "registry-no-free-block",
            RegistryError::Query { .. } => "registry-query-failed",
        }
    }
    fn hint(&self) -> String {
        match self {
            RegistryError::NotConfigured => {
                "add a [registry] section to station.toml (url, password_file); station.toml documents it".into()
            }
            RegistryError::PasswordMissing(_) => {
                format!("set {} or [registry] password_file (a 0600 file)", super::PASSWORD_ENV)
            }
            RegistryError::PasswordFilePermissions { path, .. } => format!("chmod 600 {}", path.display()),
            RegistryError::PasswordFileUnreadable { .. } => "check [registry] password_file and its owner".into(),
            RegistryError::CaFileUnreadable { .. } => "check [registry] ca_file: a PEM file of CA certificates".into(),
            RegistryError::Unreachable { .. } => {
                "check that PostgreSQL runs and the host and port in [registry] url; the station keeps issuing \
                 and forwards its backlog once the registry is back"
                    .into()
            }
            RegistryError::AuthFailed { .. } => {
                "check the role in [registry] url and its password (password_file or STATION_REGISTRY_PASSWORD); \
                 it was tried once"
                    .into()
            }
            RegistryError::Tls { .. } => {
                "check sslmode in [registry] url, [registry] ca_file and that the server's certificate names the host"
                    .into()
            }
            RegistryError::SchemaTooNew { .. } => {
                "a newer station release migrated the registry: upgrade this station; nothing was written".into()
            }
            RegistryError::SchemaMissing { .. } => "run `station registry init` once for the factory".into(),
            RegistryError::StationConflict { .. } => {
                "give this station its own [station] id (each ledger is one station), or point it at its own \
                 ledger; nothing was written"
                    .into()
            }
            RegistryError::Diverged { .. } => {
                "run `station audit verify` here and `station registry verify`; one of the two copies was altered"
                    .into()
            }
            RegistryError::OutOfStep { .. } => "nothing to do: the forwarder resumes from the registry's head".into(),
            RegistryError::NoFreeBlock(_) => {
                "every serial of the range is leased: widen [policy] serial_last on the stations, or start a new \
                 serial_prefix"
                    .into()
            }
            RegistryError::Query { .. } => {
                "check the registry's log and `station registry status`; the transaction was rolled back".into()
            }
        }
    }
    fn exit_status(&self) -> i32 {
        exit::REGISTRY
    }
    fn retryable(&self) -> bool {
        match self {
            // The registry or the network is down for the moment, or another forwarder moved on.
            RegistryError::Unreachable { .. } | RegistryError::OutOfStep { .. } | RegistryError::Query { .. } => true,
            // A person must act first.
            RegistryError::NotConfigured
            | RegistryError::PasswordMissing(_)
            | RegistryError::PasswordFilePermissions { .. }
            | RegistryError::PasswordFileUnreadable { .. }
            | RegistryError::CaFileUnreadable { .. }
            | RegistryError::AuthFailed { .. }
            | RegistryError::Tls { .. }
            | RegistryError::SchemaTooNew { .. }
            | RegistryError::SchemaMissing { .. }
            | RegistryError::StationConflict { .. }
            | RegistryError::Diverged { .. }
            | RegistryError::NoFreeBlock(_) => false,
        }
    }
}

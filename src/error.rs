//! The station's error type: one stable code, a remedy and an exit status per failure.
//!
//! Each module has its own `thiserror` enum; this one wraps them so the binary can map any failure to
//! `error[code]: message` plus a `hint:` line, a `--json` object, and a documented exit status.

use crate::{ca::CaError, config::ConfigError, hsm::HsmError, issue::IssueError, ledger::LedgerError, pki::PkiError};

/// Exit statuses, documented in README.md ("Exit statuses").
pub mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const CONFIG: i32 = 3;
    pub const HSM: i32 = 4;
    pub const LEDGER: i32 = 5;
    pub const CA: i32 = 6;
    pub const POLICY: i32 = 7;
    pub const AWS: i32 = 8;
    pub const AUDIT: i32 = 9;
    pub const REGISTRY: i32 = 10;
}

/// Any failure the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Hsm(#[from] HsmError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("{message}")]
    Io {
        code: &'static str,
        message: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Usage { code: &'static str, message: String, hint: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every module error can say about itself.
pub trait Coded {
    /// A stable kebab-case code (`hsm-login-failed`); scripts and operators may match on it.
    fn code(&self) -> &'static str;
    /// What to do about it, in one sentence.
    fn hint(&self) -> String;
    /// The process exit status for this failure.
    fn exit_status(&self) -> i32;
    /// Whether the same request can succeed later without anyone changing anything: a station-side fault
    /// of the moment (an HSM being re-initialised, a busy ledger), a halted station. Decided per variant; the
    /// bench protocol sends it as ERROR's `retryable`, so a wrong `true` makes devices retry forever.
    fn retryable(&self) -> bool;
}

impl Error {
    /// An I/O failure with a stable code and a remedy.
    pub fn io(code: &'static str, message: impl Into<String>, hint: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { code, message: message.into(), hint: hint.into(), source }
    }

    /// A command used in a way that cannot work.
    pub fn usage(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { code, message: message.into(), hint: hint.into() }
    }

    fn inner(&self) -> Option<&dyn Coded> {
        match self {
            Error::Config(e) => Some(e),
            Error::Hsm(e) => Some(e),
            Error::Ledger(e) => Some(e),
            Error::Ca(e) => Some(e),
            Error::Aws(e) => Some(e),
            Error::Pki(e) => Some(e),
            Error::Issue(e) => Some(e),
            Error::Registry(e) => Some(e),
            Error::Audit(e) => Some(e),
            Error::Io { .. } | Error::Usage { .. } => None,
        }
    }
}

impl Coded for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Io { code, .. } | Error::Usage { code, .. } => code,
            _ => self.inner().map_or("internal", Coded::code),
        }
    }
    fn hint(&self) -> String {
        match self {
            Error::Io { hint, .. } | Error::Usage { hint, .. } => hint.clone(),
            _ => self.inner().map_or_else(String::new, Coded::hint),
        }
    }
    fn exit_status(&self) -> i32 {
        match self {
            Error::Io { .. } => exit::INTERNAL,
            Error::Usage { .. } => exit::USAGE,
            _ => self.inner().map_or(exit::INTERNAL, Coded::exit_status),
        }
    }
    /// The inner error's own decision; an I/O failure at the station may pass, a usage error does not.
    fn retryable(&self) -> bool {
        match self {
            Error::Io { .. } => true,
            Error::Usage { .. } => false,
            _ => self.inner().is_some_and(Coded::retryable),
        }
    }
}

/// What a panic said (its `&str` or `String` payload), for the line that reports a thread that died.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

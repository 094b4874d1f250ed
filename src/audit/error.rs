//! Failures of the audit key and of signed manifests.

use crate::error::{Coded, exit};

/// An audit key or manifest failure.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit key {label:?} is not usable: {why}")]
    KeyMissing { label: String, why: String },
    #[error("an audit key labelled {label:?} is already in the ledger")]
    KeyExists { label: String },
    #[error("audit key label {label:?} is not valid")]
    BadLabel { label: String },
    #[error("a manifest is signed with the audit key, and [audit] key is not set")]
    ManifestNeedsKey,
    #[error("{0}")]
    ManifestSelection(String),
    #[error("{path}: not a station manifest: {problem}")]
    ManifestInvalid { path: String, problem: String },
    #[error("the manifest's signature does not verify: {0}")]
    ManifestSignature(String),
    #[error("the manifest's signing certificate does not chain to {0}")]
    ManifestUntrusted(String),
}

impl Coded for AuditError {
    fn code(&self) -> &'static str {
        match self {
            AuditError::KeyMissing { .. } => "audit-key-missing",
            AuditError::KeyExists { .. } => "audit-key-exists",
            AuditError::BadLabel { .. } => "audit-key-label-invalid",
            AuditError::ManifestNeedsKey => "manifest-needs-audit-key",
            AuditError::ManifestSelection(_) => "manifest-selection-invalid",
            AuditError::ManifestInvalid { .. } => "manifest-invalid",
            AuditError::ManifestSignature(_) => "manifest-signature-invalid",
            AuditError::ManifestUntrusted(_) => "manifest-untrusted",
        }
    }
    fn hint(&self) -> String {
        match self {
            AuditError::KeyMissing { label, .. } => format!(
                "create it with `station audit key create --label {label}`, or remove [audit] key to sign with the CA key"
            ),
            AuditError::KeyExists { .. } => {
                "`station audit key show --label LABEL` shows it; choose another label for a new one".into()
            }
            AuditError::BadLabel { .. } => "use 1-64 characters from A-Z a-z 0-9 - _ . (e.g. station-audit)".into(),
            AuditError::ManifestNeedsKey => {
                "create one (`station audit key create`) and set [audit] key = \"LABEL\" in station.toml".into()
            }
            AuditError::ManifestSelection(_) => {
                "choose the devices with --bench B and/or --since D [--until D], or with --serials FILE".into()
            }
            AuditError::ManifestInvalid { .. } => {
                "give the file `station audit manifest` wrote (JWS, JSON flattened serialization)".into()
            }
            AuditError::ManifestSignature(_) => {
                "the manifest was altered after it was signed: ask the station for a new one".into()
            }
            AuditError::ManifestUntrusted(_) => {
                "verify with the CA that issued the audit certificate (--ca CA.pem), or on the station that made it"
                    .into()
            }
        }
    }
    fn exit_status(&self) -> i32 {
        match self {
            AuditError::KeyMissing { .. } => exit::HSM,
            AuditError::KeyExists { .. } | AuditError::BadLabel { .. } => exit::USAGE,
            AuditError::ManifestNeedsKey | AuditError::ManifestSelection(_) => exit::USAGE,
            AuditError::ManifestInvalid { .. }
            | AuditError::ManifestSignature(_)
            | AuditError::ManifestUntrusted(_) => exit::AUDIT,
        }
    }
    fn retryable(&self) -> bool {
        false
    }
}

/// Whether `label` is a usable audit key label: 1-64 characters from A-Z a-z 0-9 - _ ., not starting with `-`.
pub fn label_ok(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && !label.starts_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

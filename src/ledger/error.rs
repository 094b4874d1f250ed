use crate::error::{Coded, exit};
use std::path::PathBuf;

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot create ledger {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open ledger {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger {path} has schema version {found}, newer than this station knows ({known})")]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },
    #[error("ledger migration failed: {0}")]
    Migration(String),
    #[error("ledger: {op} failed: {source}")]
    Sql {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger content is not valid: {0}")]
    Corrupt(String),
    #[error("the ledger writer has stopped")]
    WriterGone,
    #[error("signing the checkpoint failed: {0}")]
    Signing(String),
    /// The group this operation was queued in did not commit (the cause is in the message).
    #[error("not committed: {0}")]
    NotCommitted(String),
}

impl LedgerError {
    pub fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> LedgerError {
        move |source| LedgerError::Sql { op, source }
    }
}

impl Coded for LedgerError {
    fn code(&self) -> &'static str {
        match self {
            LedgerError::Missing { .. } => "ledger-missing",
            LedgerError::Create { .. } => "ledger-create-failed",
            LedgerError::Open { .. } => "ledger-open-failed",
            LedgerError::SchemaTooNew { .. } => "ledger-schema-too-new",
            LedgerError::Migration(_) => "ledger-migration-failed",
            LedgerError::Sql { .. } => "ledger-sql-failed",
            LedgerError::Corrupt(_) => "ledger-corrupt",
            LedgerError::WriterGone => "ledger-writer-stopped",
            LedgerError::Signing(_) => "checkpoint-signing-failed",
            LedgerError::NotCommitted(_) => "ledger-write-failed",
        }
    }
    fn hint(&self) -> String {
        match self {
            LedgerError::Missing { .. } => {
                "check [ledger] path, or run `station init --dir DIR` to create a station".into()
            }
            LedgerError::Create { .. } => {
                "check the folder exists and is writable; an existing ledger is never overwritten".into()
            }
            LedgerError::Open { .. } => "check the file's owner and mode (0600, the station's user)".into(),
            LedgerError::SchemaTooNew { .. } => "use the station release that wrote this ledger, or a newer one".into(),
            LedgerError::Migration(_) => "restore the ledger from backup and report this".into(),
            LedgerError::Sql { .. } | LedgerError::NotCommitted(_) => {
                "check free disk space, the file's owner and mode, and that no other program holds it locked; nothing was half-written".into()
            }
            LedgerError::Corrupt(_) => "run `station audit verify` and restore from backup if it fails".into(),
            LedgerError::WriterGone => "restart the station; committed rows are safe".into(),
            LedgerError::Signing(_) => "check the HSM (`station hsm status`); the ledger is unchanged".into(),
        }
    }
    fn exit_status(&self) -> i32 {
        exit::LEDGER
    }
    fn retryable(&self) -> bool {
        match self {
            // Faults of the moment at the station: a lock, a full disk being cleared, a restart.
            LedgerError::Open { .. }
            | LedgerError::Sql { .. }
            | LedgerError::WriterGone
            | LedgerError::Signing(_)
            | LedgerError::NotCommitted(_) => true,
            // A person must act first.
            LedgerError::Missing { .. }
            | LedgerError::Create { .. }
            | LedgerError::SchemaTooNew { .. }
            | LedgerError::Migration(_)
            | LedgerError::Corrupt(_) => false,
        }
    }
}

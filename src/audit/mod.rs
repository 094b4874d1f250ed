//! Audits: prove the ledger is intact and every certificate is what its row says; checkpoints.

pub mod aws_reconcile;
pub mod checkpoint;
mod consistency;
mod error;
pub mod export;
pub mod key;
pub mod manifest;
pub mod reconcile;
pub mod stats;
mod verify;
pub mod witness;

pub use error::{AuditError, label_ok};
pub use verify::{Finding, VerifyReport, verify};

//! Audits: prove the ledger is intact and every certificate is what its row says; checkpoints.

pub mod checkpoint;
mod consistency;
pub mod export;
pub mod reconcile;
pub mod stats;
mod verify;
pub mod witness;

pub use verify::{Finding, VerifyReport, verify};

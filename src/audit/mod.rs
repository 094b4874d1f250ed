//! Audits: prove the ledger is intact and every certificate is what its row says.

mod verify;

pub use verify::{Finding, VerifyReport, verify};

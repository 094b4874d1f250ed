//! After the chain has left the station: it was handed over (`delivered`), the device stored it and said so with its
//! hash (`confirmed`, or a mismatch refused), or the device reported an ERROR. Each is a chained ledger event.

use super::{Engine, IssueError, Issued};
use crate::Result;

/// An ERROR a device sent, as the ledger records it.
#[derive(Debug, Clone)]
pub struct DeviceErrorReport<'a> {
    pub bench: &'a str,
    pub serial: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub retryable: bool,
    /// The station's state when it arrived: `idle`, `await-csr`, `await-stored`, or `done` (after DONE).
    pub state: &'a str,
    /// The issuance whose chain the device was sent, if any.
    pub issuance: Option<i64>,
}

impl Engine {
    /// Records that the chain was handed over (file written, or CHAIN frame sent).
    pub fn delivered(&self, issued: &Issued, bench: &str) -> Result<()> {
        let detail = serde_json::json!({ "id": issued.id, "bench": bench, "outcome": issued.outcome }).to_string();
        Ok(self.writer.delivered(issued.id, detail)?)
    }

    /// Records the device's acknowledgement: the SHA-256 of the chain as it stored it. A mismatch is
    /// recorded and refused.
    pub fn confirm(&self, issued: &Issued, bench: &str, sha256_hex: &str) -> Result<()> {
        let expected = &issued.chain_sha256;
        let detail = serde_json::json!({ "id": issued.id, "bench": bench, "expected": expected, "stored": sha256_hex })
            .to_string();
        if expected.eq_ignore_ascii_case(sha256_hex) {
            Ok(self.writer.confirmed(issued.id, detail)?)
        } else {
            self.writer.event("stored-mismatch", &issued.serial, detail)?;
            Err(IssueError::StoredHashMismatch { serial: issued.serial.clone() }.into())
        }
    }

    /// Records an ERROR a device sent (spec 6.3) as a chained `device-error` event: the bench, the code, its
    /// message and `retryable`, the station's state when it arrived, and the issuance it concerns when a chain had
    /// been sent (then `ref_id` names the row). `subject` is the serial, or empty when none was known yet.
    pub fn device_error(&self, report: &DeviceErrorReport<'_>) -> Result<()> {
        let detail = serde_json::json!({
            "bench": report.bench,
            "code": report.code,
            "message": report.message,
            "retryable": report.retryable,
            "state": report.state,
        })
        .to_string();
        Ok(self.writer.event_about("device-error", report.serial, report.issuance, detail)?)
    }
}

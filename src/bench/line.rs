//! The one line an operator sees per device.

use serde::Serialize;
use std::fmt;

/// How a device's session ended.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorLine {
    pub bench: String,
    pub serial: String,
    /// `OK`, or `FAIL` with a code.
    pub ok: bool,
    /// `new`, `repeat`, `reissue`; or the error code.
    pub what: String,
    pub millis: u128,
    /// For failures: what the operator should do.
    pub hint: String,
}

impl fmt::Display for OperatorLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let serial = if self.serial.is_empty() { "-" } else { &self.serial };
        if self.ok {
            write!(f, "{:<10} {:<18} OK    {:<8} {:>6} ms", self.bench, serial, self.what, self.millis)
        } else {
            write!(f, "{:<10} {:<18} FAIL  {}  {}", self.bench, serial, self.what, self.hint)
        }
    }
}

//! `[[bench]]` and `[serve]`: the benches the daemon drives and its timers.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One flashing bench: a serial port with a device on it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BenchSection {
    /// Shown on every operator line and recorded with every issuance.
    pub name: String,
    /// The tty, e.g. /dev/ttyUSB0 or a /dev/serial/by-id/… link (stable across replugging).
    pub port: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// DTR while the port is open: `false` (the default) deasserts it right after the open. Boards with an
    /// auto-reset circuit (ESP32, many CH340/CP2102 boards) are held in reset or in their bootloader while DTR or
    /// RTS is asserted; firmware on a native USB CDC-ACM port may wait for DTR ("a terminal is connected").
    #[serde(default)]
    pub dtr: bool,
    /// RTS while the port is open: `false` (the default) deasserts it right after the open.
    #[serde(default)]
    pub rts: bool,
    /// Open the port for this process only (TIOCEXCL and an exclusive lock): a second program, or a second
    /// station, that tries to open it is refused. Default `true`.
    #[serde(default = "yes")]
    pub exclusive: bool,
}

impl BenchSection {
    /// A bench with the default line settings (`--bench NAME=PATH[@BAUD]`, tests).
    pub fn new(name: impl Into<String>, port: impl Into<PathBuf>, baud: u32) -> BenchSection {
        BenchSection { name: name.into(), port: port.into(), baud, dtr: false, rts: false, exclusive: true }
    }
}

fn default_baud() -> u32 {
    115_200
}

fn yes() -> bool {
    true
}

/// The daemon's timers and limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// A partial frame in IDLE must complete within this many seconds.
    #[serde(default = "d30")]
    pub hello_timeout_secs: u64,
    /// After WELCOME, the CSR must arrive within this many seconds (room for on-device key generation).
    #[serde(default = "d60")]
    pub csr_timeout_secs: u64,
    /// After CHAIN, STORED must arrive within this many seconds.
    #[serde(default = "d30")]
    pub stored_timeout_secs: u64,
    /// Damaged frames in a row before a session is ended.
    #[serde(default = "d3")]
    pub max_frame_errors: u32,
    /// On SIGTERM, in-flight devices get this long to finish.
    #[serde(default = "d30")]
    pub shutdown_grace_secs: u64,
    /// Longest wait between attempts to reopen a port that went away.
    #[serde(default = "d5000")]
    pub reopen_backoff_max_ms: u64,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            hello_timeout_secs: 30,
            csr_timeout_secs: 60,
            stored_timeout_secs: 30,
            max_frame_errors: 3,
            shutdown_grace_secs: 30,
            reopen_backoff_max_ms: 5000,
        }
    }
}

fn d30() -> u64 {
    30
}
fn d60() -> u64 {
    60
}
fn d3() -> u32 {
    3
}
fn d5000() -> u64 {
    5000
}

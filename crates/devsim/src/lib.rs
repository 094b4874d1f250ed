//! `station-devsim`: a simulated device on a bench's serial port, speaking the bench protocol
//! (schemas/bench-protocol.md) to the station, as real provisioning firmware would.
//!
//! One run is one bench: `--count` devices, one after another, on the same port. Each device generates its key in
//! software, sends HELLO and a CSR, checks the CHAIN against the CAs it trusts (`--ca`), writes
//! `DIR/<serial>/deviceCert.key` and `DIR/<serial>/deviceCertAndCACert.crt`, and confirms with STORED.
//!
//! Faults, for testing the station: `--line-rate` (wire time, since ptys ignore baud), `--corrupt` (bit flips in
//! outgoing bytes, recovered by the protocol's re-send and restart rules) and `--misbehave` (hostile devices; the run
//! then succeeds when the station answered as the spec requires).
//!
//! Where the simulated device departs from the device side of the spec (section 5), on purpose:
//! - one `--reply-timeout` for every answer, instead of the recommended 5 s / 30 s / 10 s per step;
//! - no WELCOME within the timeout counts as a failed session (the spec says "send HELLO again, forever"), so that a
//!   run against a dead port ends;
//! - the key is written with the chain (`DIR/<serial>/` needs the serial, which an allocated device learns late); until
//!   then it lives in memory, which is as durable as a simulator needs;
//! - a retry with the same key that gets a different chain fails the device (`chain-not-idempotent`): the spec says
//!   the station must send the identical chain, and the simulator is there to check the station.
//!
//! Layout: `args` (command line) → `wire` (port, throttle, corruption, frames) → `device` (one device's session, with
//! retries) or `misbehave` (the hostile modes) → `verify` (chain checks) and `store` (files) → `report` (text and
//! JSON). `certs` holds the few certificate helpers a device needs. The frames, messages and codes are the
//! protocol crate's (`station-protocol`); this crate does not depend on the station.

#![forbid(unsafe_code)]

pub mod args;
pub mod certs;
mod device;
mod keys;
mod misbehave;
pub mod report;
mod store;
mod verify;
mod wire;

pub use args::{DevsimArgs, DisconnectPoint, KeyTypeArg, LogFormat, Misbehave};
pub use report::{DeviceReport, RunReport};

use std::path::PathBuf;

/// The stable codes a device can end with, besides the station's own ERROR codes, which are reported verbatim. The
/// codes a device sends the station are the protocol's (spec 6.3, `protocol::codes::device`); the others are the
/// simulator's own verdicts, in its report only.
pub mod codes {
    pub use station_protocol::codes::device::{
        CHAIN_HASH_MISMATCH, CHAIN_KEY_MISMATCH, CHAIN_NOT_IDEMPOTENT, CHAIN_SERIAL_MISMATCH, CHAIN_UNPARSEABLE,
        CHAIN_UNTRUSTED, DONE_SERIAL_MISMATCH, FLASH_WRITE_FAILED, KEY_GENERATION_FAILED, NO_ACCEPTABLE_KEY_TYPE,
    };

    /// No answer from the station within `--reply-timeout`.
    pub const REPLY_TIMEOUT: &str = "reply-timeout";
    /// The port failed (read or write error, or it vanished).
    pub const PORT_IO: &str = "port-io";
    /// `--misbehave`: the station answered noise that the spec says it must drop silently.
    pub const STATION_ANSWERED_NOISE: &str = "station-answered-noise";
    /// `--misbehave`: the station did not answer with the ERROR the spec requires.
    pub const EXPECTED_ERROR_MISSING: &str = "expected-error-missing";
    /// `--misbehave bad-csr`: the station issued a chain for a CSR whose signature is broken.
    pub const STATION_ACCEPTED_BAD_CSR: &str = "station-accepted-bad-csr";

    /// The simulator's own codes (report only; never sent on the wire), for the code registry.
    pub const OWN: &[&str] =
        &[REPLY_TIMEOUT, PORT_IO, STATION_ANSWERED_NOISE, EXPECTED_ERROR_MISSING, STATION_ACCEPTED_BAD_CSR];
}

/// Why a run could not start. Per-device failures are not errors: they are in the [`RunReport`].
#[derive(Debug, thiserror::Error)]
pub enum DevsimError {
    #[error("{message}")]
    Usage { code: &'static str, message: String, hint: String },
    #[error("cannot read the CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable CA certificate: {reason}")]
    CaInvalid { path: PathBuf, reason: String },
    #[error("cannot create the output directory {path}: {source}")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the device keys ahead (--pregenerate): {0}")]
    KeyGeneration(String),
    #[error("cannot open the port {path}: {source}")]
    PortOpen {
        path: PathBuf,
        #[source]
        source: serialport::Error,
    },
}

/// Exit statuses of `station-devsim`.
pub mod exit {
    /// Every device succeeded (with `--misbehave`: the station behaved as the spec requires).
    pub const OK: i32 = 0;
    /// At least one device failed (or the station misbehaved).
    pub const FAILED: i32 = 1;
    /// The run could not start: bad arguments, an unreadable CA file or output directory, a port that won't open.
    pub const USAGE: i32 = 2;
}

/// Like the station's errors, each has a stable code (registered in the station's src/codes.rs), a hint and an exit
/// status. None is retryable: a run that could not start fails the same way until someone changes something.
impl DevsimError {
    pub fn usage(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        DevsimError::Usage { code, message: message.into(), hint: hint.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            DevsimError::Usage { code, .. } => code,
            DevsimError::CaRead { .. } => "ca-unreadable",
            DevsimError::CaInvalid { .. } => "ca-invalid",
            DevsimError::OutDir { .. } => "out-dir-unwritable",
            DevsimError::KeyGeneration(_) => "pregenerate-failed",
            DevsimError::PortOpen { .. } => "port-open-failed",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            DevsimError::Usage { hint, .. } => hint.clone(),
            DevsimError::CaRead { .. } | DevsimError::CaInvalid { .. } => {
                "give --ca a PEM file with the station's CA certificate(s), e.g. from `station ca show --pem`".into()
            }
            DevsimError::OutDir { .. } => "give --out a directory this user can create and write".into(),
            DevsimError::KeyGeneration(_) => "run without --pregenerate to see which device fails".into(),
            DevsimError::PortOpen { .. } => {
                "check the path (a tty such as /dev/ttyUSB0 or a pty slave such as /dev/pts/3) and that no other \
                 program holds it open; with --pty, that the station opens PATH within a minute"
                    .into()
            }
        }
    }
    pub fn exit_status(&self) -> i32 {
        exit::USAGE
    }
}

/// Runs the simulated devices. `on_device` sees each device's report as soon as it is done (for live output).
pub fn run(args: &DevsimArgs, on_device: &mut dyn FnMut(&DeviceReport)) -> Result<RunReport, DevsimError> {
    args.validate()?;
    let cas = verify::load_cas(&args.ca)?;
    std::fs::create_dir_all(&args.out).map_err(|source| DevsimError::OutDir { path: args.out.clone(), source })?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut made = Vec::new();
    if args.pregenerate {
        for index in 1..=args.count {
            made.push(device::pregenerate(args, index).map_err(DevsimError::KeyGeneration)?);
        }
    }
    let mut made = made.into_iter();
    let mut wire = wire::Wire::open(args, seed)?;
    let mut run = RunReport::new(args, seed);
    for index in 1..=args.count {
        let report = device::run_one(args, &cas, &mut wire, index, made.next());
        on_device(&report);
        let line_lost = report.code.as_deref() == Some(codes::PORT_IO);
        run.devices.push(report);
        // A lost line is opened again for the next device, as an operator replugs the cable; if it will not
        // open, the devices left are not run (rather than each failing at once on a dead port).
        if line_lost
            && index < args.count
            && let Err(e) = wire.reopen()
        {
            tracing::error!(error = %e, "cannot reopen the port; stopping");
            break;
        }
    }
    run.finish();
    Ok(run)
}

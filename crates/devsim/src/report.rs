//! What a run prints: one line per device as it finishes, a summary, or one JSON object (`--json`).

use super::args::{DevsimArgs, Misbehave};
use super::device::{Failure, Provisioned, Trace};
use super::exit;
use super::wire::WireStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a `--misbehave` device expected of the station and what it saw.
#[derive(Debug, Clone, Serialize)]
pub struct MisbehaveReport {
    pub mode: Misbehave,
    pub expected: &'static str,
    pub observed: Vec<String>,
}

/// One device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// 1-based position on the bench.
    pub index: u32,
    /// The device's serial: its own, the one WELCOME announced, or CHAIN's.
    pub serial: Option<String>,
    /// Provisioned (with `--misbehave`: the station behaved as required).
    pub ok: bool,
    /// Why not: a stable code (the station's ERROR code, or one of `devsim::codes`).
    pub code: Option<String>,
    pub message: Option<String>,
    /// Wall time for the whole device: key generation, every session, the file writes.
    pub ms: u64,
    pub keygen_ms: u64,
    /// Sessions started again from HELLO.
    pub retries: u32,
    /// Frames re-sent after a frame-* ERROR.
    pub resends: u32,
    /// Every ERROR code the station sent, and every decode error of the station's frames, in order.
    pub codes_seen: Vec<String>,
    pub chain_sha256: Option<String>,
    pub key_file: Option<PathBuf>,
    pub chain_file: Option<PathBuf>,
    pub wire: WireStats,
    pub misbehave: Option<MisbehaveReport>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl DeviceReport {
    pub(crate) fn new(
        index: u32,
        trace: Trace,
        result: Result<Option<Provisioned>, Failure>,
        misbehave: Option<MisbehaveReport>,
        wire: WireStats,
        elapsed: Duration,
        keygen: Duration,
    ) -> DeviceReport {
        let (ok, failure, files) = match result {
            Ok(provisioned) => (true, None, provisioned.map(|p| (p.stored.key_path, p.stored.chain_path))),
            Err(failure) => (false, Some(failure), None),
        };
        let (key_file, chain_file) = files.unzip();
        DeviceReport {
            index,
            serial: trace.serial,
            ok,
            code: failure.as_ref().map(|f| f.code.clone()),
            message: failure.map(|f| f.message),
            ms: ms(elapsed),
            keygen_ms: ms(keygen),
            retries: trace.retries,
            resends: trace.resends,
            codes_seen: trace.codes_seen,
            chain_sha256: trace.chain_sha256,
            key_file,
            chain_file,
            wire,
            misbehave,
        }
    }

    pub(crate) fn failed_early(index: u32, serial: Option<String>, f: Failure, elapsed: Duration) -> DeviceReport {
        let trace = Trace { serial, ..Trace::default() };
        DeviceReport::new(index, trace, Err(f), None, WireStats::default(), elapsed, elapsed)
    }

    /// One line for an operator: `#3  SIM-000003  OK  41 ms  retries 0`.
    pub fn line(&self) -> String {
        let serial = self.serial.as_deref().unwrap_or("(no serial)");
        let status = match (&self.code, self.ok) {
            (_, true) => "OK".to_string(),
            (Some(code), false) => format!("FAILED {code}"),
            (None, false) => "FAILED".to_string(),
        };
        let mut line =
            format!("#{:<3} {serial:<16} {status:<8} {:>6} ms  retries {}", self.index, self.ms, self.retries);
        if self.resends > 0 {
            line.push_str(&format!("  re-sent {}", self.resends));
        }
        if let Some(m) = &self.misbehave {
            line.push_str(&format!(
                "\n     {}: expected {}; saw: {}",
                m.mode.as_str(),
                m.expected,
                m.observed.join(", ")
            ));
        }
        if let Some(message) = &self.message {
            line.push_str(&format!("\n     {message}"));
        }
        line
    }

    pub(crate) fn log(&self) {
        if self.ok {
            tracing::info!(ms = self.ms, retries = self.retries, "device done");
        } else {
            tracing::warn!(
                code = self.code.as_deref().unwrap_or(""),
                message = self.message.as_deref(),
                "device failed"
            );
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub ok: bool,
    pub port: PathBuf,
    pub key_type: &'static str,
    pub seed: u64,
    pub line_rate: Option<u32>,
    pub corrupt: f64,
    pub misbehave: Option<Misbehave>,
    pub devices_ok: u32,
    pub devices_failed: u32,
    /// When the first device started and the last one ended, in seconds since the Unix epoch (after the port
    /// opened, so a benchmark can time many simulators from their first HELLO to their last DONE).
    pub started_unix: f64,
    pub finished_unix: f64,
    /// ERROR codes seen across all devices, with counts.
    pub codes_seen: BTreeMap<String, u32>,
    pub wire: WireStats,
    pub devices: Vec<DeviceReport>,
}

impl RunReport {
    pub(crate) fn new(args: &DevsimArgs, seed: u64) -> RunReport {
        RunReport {
            ok: false,
            port: args.port.clone(),
            key_type: args.key_type.as_str(),
            seed,
            line_rate: args.line_rate,
            corrupt: args.corrupt,
            misbehave: args.misbehave,
            devices_ok: 0,
            devices_failed: 0,
            started_unix: unix_now(),
            finished_unix: 0.0,
            codes_seen: BTreeMap::new(),
            wire: WireStats::default(),
            devices: Vec::new(),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.finished_unix = unix_now();
        let ok = self.devices.iter().filter(|d| d.ok).count();
        self.devices_ok = u32::try_from(ok).unwrap_or(u32::MAX);
        self.devices_failed = u32::try_from(self.devices.len() - ok).unwrap_or(u32::MAX);
        self.ok = self.devices_failed == 0;
        for d in &self.devices {
            for code in &d.codes_seen {
                *self.codes_seen.entry(code.clone()).or_default() += 1;
            }
            self.wire += d.wire;
        }
    }

    /// The summary after the device lines.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} devices: {} ok, {} failed  ({}, port {}, seed {})",
            self.devices.len(),
            self.devices_ok,
            self.devices_failed,
            self.key_type,
            self.port.display(),
            self.seed
        );
        let total_ms: u64 = self.devices.iter().map(|d| d.ms).sum();
        let retries: u32 = self.devices.iter().map(|d| d.retries).sum();
        if !self.devices.is_empty() {
            let avg = total_ms / self.devices.len() as u64;
            out.push_str(&format!("\nper device: {avg} ms on average; {retries} retries in all"));
        }
        if let Some(baud) = self.line_rate {
            let wire_ms = self.wire.bytes_sent * 10_000 / u64::from(baud);
            out.push_str(&format!(
                "\nline rate {baud} baud: {} bytes sent = {wire_ms} ms of wire time",
                self.wire.bytes_sent
            ));
        }
        if self.corrupt > 0.0 {
            let w = &self.wire;
            out.push_str(&format!(
                "\ncorrupt {}: {} bits flipped in {} bytes; {} of {} frames damaged",
                self.corrupt, w.bits_flipped, w.bytes_sent, w.frames_corrupted, w.frames_sent
            ));
        }
        if !self.codes_seen.is_empty() {
            let codes: Vec<String> = self.codes_seen.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
            out.push_str(&format!("\nerror codes seen: {}", codes.join(", ")));
        }
        out
    }

    pub fn exit_status(&self) -> i32 {
        if self.ok { exit::OK } else { exit::FAILED }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

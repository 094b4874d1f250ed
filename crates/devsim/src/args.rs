//! The command line of `station-devsim`, and the checks clap cannot express.
//!
//! The doc comments below are also the `--help` text, so they say DIR/<serial>/ plainly rather than as code.
#![allow(rustdoc::invalid_html_tags)]

use super::DevsimError;
use clap::{Parser, ValueEnum};
use station_protocol::{Hello, KeyType, Message, PROTOCOL_VERSION};
use std::path::PathBuf;
use std::time::Duration;

/// station-devsim: simulated devices on a bench's serial port, for testing the station.
///
/// Each device generates its key, sends HELLO and a CSR, checks the returned chain against --ca, stores
/// DIR/<serial>/deviceCert.key (0600) and DIR/<serial>/deviceCertAndCACert.crt, and confirms with STORED.
/// Devices run one after another on the port, as on a bench.
///
/// Exit status: 0 when every device succeeded (with --misbehave: when the station answered as the protocol
/// requires), 1 otherwise, 2 when the run could not start (arguments, CA file, output directory, port).
#[derive(Debug, Clone, Parser)]
#[command(name = "station-devsim", version, about, long_about, max_term_width = 110, args_override_self = true)]
pub struct DevsimArgs {
    /// The bench's serial port: a tty, or a pty slave such as /dev/pts/3. With --pty, the link to create.
    #[arg(long, value_name = "PATH")]
    pub port: PathBuf,
    /// Make the line itself: open a new pty pair, talk on its master side, and link PATH (--port) to its slave
    /// side, which the station opens as its serial port. No socat in between. A disconnect replaces the pair and
    /// re-points the link, as an adapter that is unplugged and plugged in again.
    #[arg(long)]
    pub pty: bool,
    /// The CA certificate(s) the device trusts, PEM. After a CA rotation, give old and new: a chain is accepted
    /// when its device certificate is signed by any of them and the chain carries that CA certificate.
    #[arg(long, value_name = "CA.pem")]
    pub ca: PathBuf,
    /// Where the devices store their key and chain: DIR/<serial>/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many devices to run, one after another, each with a new key.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// The device's own serial (only with --count 1). Without --serial or --serial-from the station allocates.
    #[arg(long, value_name = "SN", conflicts_with = "serial_from")]
    pub serial: Option<String>,
    /// Own serials {prefix}{n:06}, n counting up from N.
    #[arg(long, value_name = "N")]
    pub serial_from: Option<u64>,
    /// The prefix for --serial-from.
    #[arg(long, value_name = "PREFIX", default_value = "SIM-", requires = "serial_from")]
    pub serial_prefix: String,
    /// The device key type.
    #[arg(long, value_enum, default_value_t = KeyTypeArg::EcP256)]
    pub key_type: KeyTypeArg,
    /// Throttle writes to the wire time at BAUD, 8N1 (10 bits a byte), since ptys ignore the baud rate.
    #[arg(long, value_name = "BAUD", value_parser = clap::value_parser!(u32).range(1..))]
    pub line_rate: Option<u32>,
    /// Flip one random bit of each outgoing byte with this probability (0 to 1). The device recovers as the
    /// protocol says: it re-sends after a frame-* ERROR, and starts again from HELLO after other errors.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub corrupt: f64,
    /// Seed for --corrupt and --misbehave garbage [default: random; the summary prints it].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Drive a failure path of the station; the run succeeds when the station answers as the protocol requires.
    #[arg(long, value_enum, value_name = "MODE", conflicts_with = "corrupt")]
    pub misbehave: Option<Misbehave>,
    /// With --misbehave disconnect: close the port right after sending the CSR, or after receiving the CHAIN.
    #[arg(long, value_enum, value_name = "STEP", default_value_t = DisconnectPoint::Chain)]
    pub disconnect_after: DisconnectPoint,
    /// With --misbehave stall: how long to stay silent after WELCOME (longer than the station's CSR timeout).
    #[arg(long, value_name = "DURATION", default_value = "75s", value_parser = parse_duration)]
    pub stall_for: Duration,
    /// How long the device waits for each answer before it starts again from HELLO.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub reply_timeout: Duration,
    /// How many times a device starts again from HELLO (same key) before it gives up. The default, 4, is the
    /// spec's rule: the 5th failed session in a row stops the device.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: u32,
    /// Frame-level errors in a row, in either direction (damaged frames from the station, frame-* ERRORs from it),
    /// after which the device sends ERROR too-many-frame-errors and starts again from HELLO.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_frame_errors: u32,
    /// The protocol revision the device announces in HELLO: 1 for 1.1 (the default), 0 for a 1.0 device, which
    /// sends no `revision` field.
    #[arg(long, value_name = "N", default_value_t = station_protocol::REVISION)]
    pub revision: u32,
    /// The first pause before starting again from HELLO; it doubles on each retry, up to 8 s.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,
    /// The model the devices announce in HELLO.
    #[arg(long, value_name = "TEXT", default_value = "devsim")]
    pub model: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the key and chain without fsync. For benchmarks on one machine: a real device's flash write
    /// costs the device, not the station host's disk.
    #[arg(long)]
    pub no_sync: bool,
    /// Generate every device's key, and its CSR when the device has its own serial, before the first device
    /// starts, as devices that made them at first boot. For benchmarks on one machine: the simulators then spend
    /// the shared CPU on the exchange itself. The chain is still checked against --ca for every device.
    #[arg(long)]
    pub pregenerate: bool,
    /// Log format on stderr (filter with STATION_LOG, e.g. STATION_LOG=debug).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The device key types the simulator can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// ECDSA P-256 (rcgen/ring).
    #[value(name = "ec-p256")]
    EcP256,
    /// RSA 2048 bits (the `rsa` crate).
    #[value(name = "rsa-2048")]
    Rsa2048,
}

impl From<KeyTypeArg> for KeyType {
    fn from(k: KeyTypeArg) -> Self {
        match k {
            KeyTypeArg::EcP256 => KeyType::EcP256,
            KeyTypeArg::Rsa2048 => KeyType::Rsa2048,
        }
    }
}

impl KeyTypeArg {
    /// The protocol's name for it, as in WELCOME.key_types.
    pub fn as_str(self) -> &'static str {
        KeyType::from(self).as_str()
    }
}

/// The log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The hostile behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Misbehave {
    /// Noise lines and random bytes before every frame (the station must drop them silently and provision the
    /// device), then two junk frames ("@" + garbage), each of which must draw a frame-* ERROR.
    Garbage,
    /// After WELCOME, a CSR frame of more than 16 KiB: it must draw ERROR frame-too-large; then a normal session.
    Oversize,
    /// HELLO, then silence after WELCOME for --stall-for: the station must send ERROR timeout; then a normal session.
    Stall,
    /// Close the port mid-exchange (--disconnect-after), reopen it, and start again with the same key: the station
    /// must serve the identical chain.
    Disconnect,
    /// A CSR whose signature is broken: the station must answer ERROR csr-bad-signature and send no chain.
    BadCsr,
    /// HELLO again right after the CSR, as a device that reset before its CHAIN came: the late CHAIN must be
    /// ignored (spec 11), and the new session must serve the identical chain.
    LateChain,
}

impl Misbehave {
    pub fn as_str(self) -> &'static str {
        match self {
            Misbehave::Garbage => "garbage",
            Misbehave::Oversize => "oversize",
            Misbehave::Stall => "stall",
            Misbehave::Disconnect => "disconnect",
            Misbehave::BadCsr => "bad-csr",
            Misbehave::LateChain => "late-chain",
        }
    }
}

/// Where `--misbehave disconnect` closes the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DisconnectPoint {
    /// Right after the CSR is written, before the CHAIN arrives.
    Csr,
    /// Right after the CHAIN arrives, without sending STORED.
    Chain,
}

impl DevsimArgs {
    /// The checks that need more than one argument.
    pub fn validate(&self) -> Result<(), DevsimError> {
        if self.serial.is_some() && self.count != 1 {
            return Err(DevsimError::usage(
                "serial-needs-count-1",
                format!("--serial gives one device its serial, but --count is {}", self.count),
                "use --serial-from N to number several devices, or drop --count",
            ));
        }
        if let Some(last) = self.serial_for(self.count) {
            let hello = Hello {
                protocol: PROTOCOL_VERSION,
                model: "m".into(),
                firmware: "f".into(),
                serial: Some(last),
                revision: None,
            };
            Message::Hello(hello).validate().map_err(|reason| {
                DevsimError::usage(
                    "serial-argument-invalid",
                    format!("the device serial is not valid: {reason}"),
                    "serials are 1-64 characters of A-Z a-z 0-9 . : - starting with a letter or digit",
                )
            })?;
        }
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            model: self.model.clone(),
            firmware: firmware(),
            serial: None,
            revision: None,
        };
        Message::Hello(hello).validate().map_err(|reason| {
            DevsimError::usage("model-invalid", format!("--model is not valid: {reason}"), "use 1-64 printable ASCII")
        })
    }

    /// The own serial of device `index` (1-based), if the devices have serials.
    pub fn serial_for(&self, index: u32) -> Option<String> {
        if let Some(serial) = &self.serial {
            return Some(serial.clone());
        }
        let first = self.serial_from?;
        Some(format!("{}{:06}", self.serial_prefix, first.saturating_add(u64::from(index) - 1)))
    }
}

/// The firmware version the devices announce: this crate's version.
pub fn firmware() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("{rate} is not a probability between 0 and 1"));
    }
    Ok(rate)
}

/// `250ms`, `5s`, `2m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> DevsimArgs {
        let base = ["station-devsim", "--port", "/dev/null", "--ca", "ca.pem", "--out", "out"];
        DevsimArgs::try_parse_from(base.iter().chain(extra)).expect("parses")
    }

    #[test]
    fn durations_take_ms_s_m_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn serial_from_numbers_devices_with_the_prefix() {
        let a = args(&["--count", "3", "--serial-from", "41"]);
        assert_eq!(a.serial_for(1).as_deref(), Some("SIM-000041"));
        assert_eq!(a.serial_for(3).as_deref(), Some("SIM-000043"));
        let b = args(&["--serial-from", "7", "--serial-prefix", "ACME-"]);
        assert_eq!(b.serial_for(1).as_deref(), Some("ACME-000007"));
        assert_eq!(args(&[]).serial_for(1), None);
    }

    #[test]
    fn serial_needs_count_one_and_a_valid_form() {
        assert!(args(&["--serial", "SN-1"]).validate().is_ok());
        let many = args(&["--serial", "SN-1", "--count", "2"]).validate();
        assert!(matches!(many, Err(DevsimError::Usage { code: "serial-needs-count-1", .. })));
        let bad = args(&["--serial", "SN 1"]).validate();
        assert!(matches!(bad, Err(DevsimError::Usage { code: "serial-argument-invalid", .. })));
    }

    #[test]
    fn corrupt_rate_must_be_a_probability_and_excludes_misbehave() {
        let base = ["station-devsim", "--port", "p", "--ca", "c", "--out", "o"];
        let parse = |extra: &[&str]| DevsimArgs::try_parse_from(base.iter().chain(extra));
        assert!(parse(&["--corrupt", "1.5"]).is_err());
        assert!(parse(&["--corrupt", "0.01", "--misbehave", "stall"]).is_err());
        assert!(parse(&["--serial", "A", "--serial-from", "1"]).is_err());
    }
}

//! Serial ports: open a tty (USB serial adapter, or a pty in tests and the demo) in raw mode, with the bench's modem
//! lines and access mode; and list the serial ports a machine has (`enumerate`, for `station ports`).
//!
//! A bench keeps the path it was configured with (a `/dev/serial/by-id/…` link) and opens it again after the port
//! went away: the link is resolved at every open, so an adapter that comes back as another `ttyUSBn` is found.

pub mod enumerate;

use crate::config::BenchSection;
use serialport::SerialPort;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a bench session needs from its line.
pub trait Port: Send {
    /// Reads what has arrived, waiting at most the port's poll interval. `Ok(0)`: nothing yet.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one whole frame and waits until it has left the station.
    fn write_frame(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// A tty opened with `serialport`.
pub struct Tty {
    port: serialport::TTYPort,
    /// The device the configured path led to at this open (`/dev/ttyUSB1` for a by-id link).
    pub device: PathBuf,
    /// False for a pseudo-terminal, which has no modem lines: `dtr` and `rts` were not applied.
    pub modem_lines: bool,
}

/// How long one read waits before the session checks its timers.
pub const POLL: Duration = Duration::from_millis(50);

/// Why a bench's port cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the port (its exclusive open or lock), or holds it shared while we want it alone.
    #[error("{} is in use by another process ({source})", path.display())]
    Busy { path: PathBuf, source: serialport::Error },
    /// A real tty refused the DTR/RTS settings: the bench does not use a port whose board may be held in reset.
    #[error("cannot set DTR/RTS on {}: {source}", path.display())]
    ModemLines { path: PathBuf, source: serialport::Error },
    /// Missing, no permission, not a tty, …
    #[error("cannot open {}: {source}", path.display())]
    Other { path: PathBuf, source: serialport::Error },
}

impl OpenError {
    /// The stable code (src/codes.rs), when there is one for this case.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            OpenError::Busy { .. } => Some("serial-port-busy"),
            OpenError::ModemLines { .. } => Some("serial-modem-lines-failed"),
            OpenError::Other { .. } => None,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            OpenError::Busy { path, .. } => format!(
                "another program (or a second station) has this port open; `fuser -v {}` names it. Stop it, or give \
                 each bench its own port",
                path.display()
            ),
            OpenError::ModemLines { .. } => {
                "check the adapter and its driver (dmesg); the bench tries again, and does not use the port until \
                 DTR/RTS are set"
                    .into()
            }
            OpenError::Other { .. } => "plug the adapter in, check the path (`station ports`) and that the station's \
                                        user is in the dialout group"
                .into(),
        }
    }

    /// The error, its code and what to do, on one line (a bench's port problem, `/readyz`, the line view).
    pub fn problem(&self) -> String {
        match self.code() {
            Some(code) => format!("{code}: {self}; {}", self.hint()),
            None => self.to_string(),
        }
    }
}

/// Opens the bench's port at its baud rate, 8N1, no flow control, raw; exclusive unless `exclusive = false`; then
/// sets RTS and DTR as configured (Linux asserts both on every open, so `false` deasserts them at once after it).
pub fn open(bench: &BenchSection) -> Result<Tty, OpenError> {
    let path = &bench.port;
    let mut port = serialport::new(path.to_string_lossy(), bench.baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(POLL)
        .exclusive(bench.exclusive)
        .preserve_dtr_on_open()
        .open_native()
        .map_err(|source| match source.kind() {
            // serialport reports EBUSY (TIOCEXCL held by another) and a lock held by another as NoDevice.
            serialport::ErrorKind::NoDevice => OpenError::Busy { path: path.clone(), source },
            _ => OpenError::Other { path: path.clone(), source },
        })?;
    let device = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    // RTS first: going from both asserted (after the open) to both deasserted, the classic two-transistor
    // auto-reset circuit (ESP32) then passes through "DTR only" (boot pin low, no reset), never "RTS only" (reset).
    // Both are tried even when the first fails, so that a pty shows both requests (tests/ports.rs traces them).
    let rts = port.write_request_to_send(bench.rts);
    let dtr = port.write_data_terminal_ready(bench.dtr);
    let modem_lines = match rts.and(dtr) {
        Ok(()) => true,
        // A pseudo-terminal has no modem lines (ENOTTY): nothing to hold a board in reset.
        Err(_) if is_pty(&device) => false,
        Err(source) => return Err(OpenError::ModemLines { path: path.clone(), source }),
    };
    Ok(Tty { port, device, modem_lines })
}

/// Whether `device` is a pseudo-terminal's slave side (Unix98 ptys: majors 136-143), which has no modem lines.
pub fn is_pty(device: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(device).is_ok_and(|m| (136..=143).contains(&major(m.rdev())))
}

/// The major number of a Linux device number (glibc's `gnu_dev_major`).
fn major(rdev: u64) -> u64 {
    ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)
}

impl Port for Tty {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.port.read(buf) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the port closed")),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn write_frame(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc_and_a_pty_is_told_from_a_real_tty() {
        assert_eq!(major(0x8800), 136, "/dev/pts/0");
        assert_eq!(major(0x8805), 136);
        assert_eq!(major(0xbc00), 188, "/dev/ttyUSB0");
        assert_eq!(major(0x0000_1000_0000_a600), 0x1000 | 166, "the high bits of a large major");
        let (_master, slave) = serialport::TTYPort::pair().expect("a pty pair");
        let name = slave.name().expect("the slave's name");
        assert!(is_pty(Path::new(&name)), "{name}");
        assert!(!is_pty(Path::new("/dev/null")), "a character device of major 1");
        assert!(!is_pty(Path::new("/no/such/device")));
    }

    #[test]
    fn the_coded_open_errors_are_registered_and_say_what_to_do() {
        let err = || serialport::Error::new(serialport::ErrorKind::NoDevice, "x");
        let path = PathBuf::from("/dev/ttyUSB0");
        let busy = OpenError::Busy { path: path.clone(), source: err() };
        let lines = OpenError::ModemLines { path: path.clone(), source: err() };
        for e in [&busy, &lines] {
            let code = e.code().expect("coded");
            assert!(crate::codes::lookup(code).is_some(), "{code} is not in src/codes.rs");
            assert!(e.problem().starts_with(&format!("{code}: ")), "{}", e.problem());
        }
        assert!(busy.hint().contains("fuser -v /dev/ttyUSB0"), "{}", busy.hint());
        assert_eq!(OpenError::Other { path, source: err() }.code(), None);
    }
}

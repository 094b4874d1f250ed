//! Serial ports: open a tty (USB serial adapter, or a pty in tests and the demo) in raw mode.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

/// What a bench session needs from its line.
pub trait Port: Send {
    /// Reads what has arrived, waiting at most the port's poll interval. `Ok(0)`: nothing yet.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one whole frame and waits until it has left the station.
    fn write_frame(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// A tty opened with `serialport`.
pub struct Tty(serialport::TTYPort);

/// How long one read waits before the session checks its timers.
pub const POLL: Duration = Duration::from_millis(50);

/// Opens a tty at `baud`, 8N1, no flow control, raw.
pub fn open(path: &Path, baud: u32) -> io::Result<Tty> {
    let port = serialport::new(path.to_string_lossy(), baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(POLL)
        .open_native()
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(Tty(port))
}

impl Port for Tty {
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the port closed")),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn write_frame(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)?;
        self.0.flush()
    }
}

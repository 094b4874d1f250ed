//! The device's end of the serial line: open and reopen the port, write frames at the simulated line rate with the
//! simulated bit errors, and read frames with a deadline.
//!
//! Blocking I/O with short read timeouts, in the caller's thread. ptys ignore the baud rate, so `--line-rate` is
//! modelled here: each chunk is written only once the wire time of everything before it, and of itself, has passed
//! (8N1: 10 bits a byte). A receiver therefore sees the last byte of a frame no sooner than a real UART would deliver
//! it.

use super::DevsimError;
use super::args::DevsimArgs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serialport::{ClearBuffer, SerialPort, TTYPort};
use station_protocol::{Decoder, FrameError, Message, encode};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one blocking read waits before the deadline is looked at again.
const READ_SLICE: Duration = Duration::from_millis(20);
/// A throttled write is split into chunks of about this much wire time.
const CHUNK_TIME: Duration = Duration::from_millis(5);
/// With `--pty`, how long to wait for the station to open the line.
const PTY_WAIT: Duration = Duration::from_secs(60);
/// The baud rate set on the port when `--line-rate` is not given (ptys ignore it).
const DEFAULT_BAUD: u32 = 115_200;

/// What one read with a deadline produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A valid message.
    Message(Message),
    /// A frame that failed to decode (the decoder already resynchronised).
    Bad(FrameError),
    /// Nothing complete before the deadline.
    Timeout,
}

/// Counters for the report. `frames_corrupted` counts frames in which at least one bit was flipped.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WireStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_corrupted: u64,
    pub bits_flipped: u64,
}

impl WireStats {
    /// The counts since `before`.
    pub fn since(&self, before: &WireStats) -> WireStats {
        WireStats {
            bytes_sent: self.bytes_sent - before.bytes_sent,
            bytes_received: self.bytes_received - before.bytes_received,
            frames_sent: self.frames_sent - before.frames_sent,
            frames_corrupted: self.frames_corrupted - before.frames_corrupted,
            bits_flipped: self.bits_flipped - before.bits_flipped,
        }
    }
}

impl std::ops::AddAssign for WireStats {
    fn add_assign(&mut self, d: WireStats) {
        self.bytes_sent += d.bytes_sent;
        self.bytes_received += d.bytes_received;
        self.frames_sent += d.frames_sent;
        self.frames_corrupted += d.frames_corrupted;
        self.bits_flipped += d.bits_flipped;
    }
}

/// The device's serial line.
pub(crate) struct Wire {
    path: PathBuf,
    port: Option<TTYPort>,
    pty: bool,
    /// With `--pty`: the pty slave `path` links to now (ours to replace and to remove).
    linked: Option<PathBuf>,
    line_rate: Option<u32>,
    corrupt: f64,
    write_timeout: Duration,
    rng: StdRng,
    decoder: Decoder,
    /// When the simulated line finishes sending what was written so far.
    line_free: Instant,
    /// When the simulated line finishes delivering what the station sent so far (full duplex: the
    /// receive direction takes wire time too, though a pty delivers at once).
    rx_free: Instant,
    /// The last frame sent, undamaged, for a re-send after a frame-* ERROR.
    last_frame: Vec<u8>,
    stats: WireStats,
}

impl Drop for Wire {
    /// `--pty`: the link goes with the line (before it: `drop` runs before the fields are dropped).
    fn drop(&mut self) {
        self.unlink();
    }
}

impl Wire {
    pub fn open(args: &DevsimArgs, seed: u64) -> Result<Wire, DevsimError> {
        let mut wire = Wire {
            path: args.port.clone(),
            port: None,
            pty: args.pty,
            linked: None,
            line_rate: args.line_rate,
            corrupt: args.corrupt,
            write_timeout: args.reply_timeout.max(Duration::from_secs(1)),
            rng: StdRng::seed_from_u64(seed),
            decoder: Decoder::new(),
            line_free: Instant::now(),
            rx_free: Instant::now(),
            last_frame: Vec::new(),
            stats: WireStats::default(),
        };
        wire.reopen().map_err(|source| DevsimError::PortOpen { path: args.port.clone(), source })?;
        Ok(wire)
    }

    /// Opens the port (again), dropping anything that was waiting in its input.
    pub fn reopen(&mut self) -> Result<(), serialport::Error> {
        let old = self.port.take();
        if self.pty {
            return self.new_pty(old);
        }
        drop(old);
        let path = self.path.to_string_lossy();
        let builder = serialport::new(path, self.line_rate.unwrap_or(DEFAULT_BAUD)).timeout(READ_SLICE);
        let port = TTYPort::open(&builder)?;
        self.port = Some(port);
        self.discard_input();
        Ok(())
    }

    /// `--pty`: a new pty pair, with `path` (re)linked to its slave side atomically (a link beside it, renamed),
    /// and a wait until the station has opened it: until then the master reads EIO, and what it wrote could
    /// meet a line the station has not yet set up.
    /// The old line (`old`) is closed only once the link points at the new one: a link left pointing at a closed pty
    /// could lead the station to a pty number the kernel has already given to another program.
    fn new_pty(&mut self, old: Option<TTYPort>) -> Result<(), serialport::Error> {
        self.decoder.reset();
        // Replace only our own link, or a dangling one (a run that crashed): never a file, a device node or a link
        // someone else made (say /dev/ttyUSB0, or a udev link under /dev/serial/by-id).
        let ours = std::fs::read_link(&self.path).ok().is_some_and(|t| Some(&t) == self.linked.as_ref());
        if std::fs::symlink_metadata(&self.path).is_ok() && !ours && self.path.exists() {
            let message = format!(
                "{} exists and is not a line this simulator made; --pty makes PATH itself",
                self.path.display()
            );
            return Err(serialport::Error::new(serialport::ErrorKind::InvalidInput, message));
        }
        let (mut master, slave) = TTYPort::pair()?;
        let slave_path = slave
            .name()
            .ok_or_else(|| serialport::Error::new(serialport::ErrorKind::NoDevice, "the pty has no name"))?;
        drop(slave);
        let tmp = self.path.with_file_name(format!(
            ".{}.link-{}",
            self.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&slave_path, &tmp).and_then(|()| std::fs::rename(&tmp, &self.path))?;
        self.linked = Some(PathBuf::from(slave_path));
        // The station sees the old line hang up and reopens the link, which now leads to the new pair.
        drop(old);
        master.set_timeout(READ_SLICE)?;
        let deadline = Instant::now() + PTY_WAIT;
        let mut buf = [0u8; 256];
        loop {
            match master.read(&mut buf) {
                Ok(n) => {
                    self.decoder.push(&buf[..n]);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) if no_peer(&e) && Instant::now() < deadline => std::thread::sleep(READ_SLICE),
                Err(e) if no_peer(&e) => {
                    let message = format!("nobody opened {} within {PTY_WAIT:?}", self.path.display());
                    return Err(serialport::Error::new(serialport::ErrorKind::NoDevice, message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.port = Some(master);
        Ok(())
    }

    /// Closes the port, as a device that is unplugged (with `--pty`: the line goes away for the station too).
    /// With `--pty` the link goes first: a link left on a closed pty could lead the station, reopening it, to the
    /// pty number the kernel gives next to another program (a soak saw one bench serve another bench's simulator).
    pub fn close(&mut self) {
        self.unlink();
        self.port = None;
    }

    /// `--pty`: removes the link to our pty, if it is still ours.
    fn unlink(&mut self) {
        if self.linked.is_some() && std::fs::read_link(&self.path).ok() == self.linked {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Forgets unread input: bytes in the port's buffer and any partial or queued frame.
    pub fn discard_input(&mut self) {
        if let Some(port) = &self.port {
            // Best effort: a failed flush only means stale bytes reach the decoder, which copes with them.
            let _ = port.clear(ClearBuffer::Input);
        }
        self.decoder.reset();
    }

    pub fn stats(&self) -> WireStats {
        self.stats
    }

    /// The random source for faults, seeded by `--seed`.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Encodes and sends one message; it becomes the frame a re-send repeats.
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        let frame = encode(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        tracing::debug!(kind = %msg.message_type(), bytes = frame.len(), "send");
        self.last_frame = frame.clone();
        self.transmit_frame(frame)
    }

    /// Sends the last frame again, unchanged (before any simulated damage), after a frame-* ERROR.
    pub fn resend_last(&mut self) -> io::Result<()> {
        tracing::debug!(bytes = self.last_frame.len(), "re-send");
        self.transmit_frame(self.last_frame.clone())
    }

    /// Sends bytes that are not a frame of ours (noise, a hand-made frame) without damaging them further.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_throttled(bytes)
    }

    fn transmit_frame(&mut self, mut frame: Vec<u8>) -> io::Result<()> {
        let flipped = self.damage(&mut frame);
        self.stats.frames_sent += 1;
        if flipped > 0 {
            self.stats.frames_corrupted += 1;
            self.stats.bits_flipped += flipped;
            tracing::debug!(bits = flipped, "corrupted the outgoing frame");
        }
        self.write_throttled(&frame)
    }

    /// Flips one random bit in each byte with probability `--corrupt`; returns how many bits were flipped.
    fn damage(&mut self, bytes: &mut [u8]) -> u64 {
        if self.corrupt <= 0.0 {
            return 0;
        }
        let mut flipped = 0;
        for byte in bytes.iter_mut() {
            if self.rng.random_bool(self.corrupt) {
                *byte ^= 1 << self.rng.random_range(0..8u8);
                flipped += 1;
            }
        }
        flipped
    }

    fn write_throttled(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(baud) = self.line_rate else {
            return self.write_all(bytes);
        };
        let per_byte = Duration::from_secs(10).div_f64(f64::from(baud));
        let chunk = usize::try_from(CHUNK_TIME.as_nanos() / per_byte.as_nanos().max(1)).unwrap_or(1).max(1);
        for piece in bytes.chunks(chunk) {
            let start = self.line_free.max(Instant::now());
            self.line_free = start + per_byte * u32::try_from(piece.len()).unwrap_or(u32::MAX);
            std::thread::sleep(self.line_free.saturating_duration_since(Instant::now()));
            self.write_all(piece)?;
        }
        Ok(())
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + self.write_timeout;
        let port = self.port.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "port closed"))?;
        while !bytes.is_empty() {
            match port.write(bytes) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the port accepted no bytes")),
                Ok(n) => {
                    self.stats.bytes_sent += n as u64;
                    bytes = &bytes[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut && Instant::now() < deadline => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next message or frame error, or `Timeout` when nothing complete arrives before `deadline`.
    pub fn recv(&mut self, deadline: Instant) -> io::Result<Incoming> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return Ok(match frame {
                    Ok(msg) => {
                        tracing::debug!(kind = %msg.message_type(), "received");
                        Incoming::Message(msg)
                    }
                    Err(e) => {
                        tracing::debug!(code = e.code(), "received a bad frame");
                        Incoming::Bad(e)
                    }
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Incoming::Timeout);
            }
            let port = self.port.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "port closed"))?;
            port.set_timeout(READ_SLICE.min(deadline - now)).map_err(io::Error::from)?;
            match port.read(&mut buf) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the port was closed")),
                Ok(n) => {
                    self.stats.bytes_received += n as u64;
                    if let Some(baud) = self.line_rate {
                        let per_byte = Duration::from_secs(10).div_f64(f64::from(baud));
                        self.rx_free =
                            self.rx_free.max(Instant::now()) + per_byte * u32::try_from(n).unwrap_or(u32::MAX);
                        std::thread::sleep(self.rx_free.saturating_duration_since(Instant::now()));
                    }
                    self.decoder.push(&buf[..n]);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a read error on a pty master means that no one has the slave side open (the poll reports a hang-up,
/// which serialport returns as a broken pipe; a read itself fails with EIO).
fn no_peer(e: &io::Error) -> bool {
    const EIO: i32 = 5;
    e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(EIO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// What the station does: waits for the link and opens the line behind it.
    fn station_opens(link: PathBuf) -> std::thread::JoinHandle<std::fs::File> {
        std::thread::spawn(move || {
            loop {
                if let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(&link) {
                    return f;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    #[test]
    fn an_unplugged_pty_takes_its_link_away_before_the_line_closes_and_a_replug_links_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("bench");
        let args = DevsimArgs::parse_from([
            "station-devsim".as_ref(),
            "--pty".as_ref(),
            "--port".as_ref(),
            link.as_os_str(),
            "--ca".as_ref(),
            "ca.pem".as_ref(),
            "--out".as_ref(),
            "out".as_ref(),
        ]);
        let opener = station_opens(link.clone());
        let mut wire = Wire::open(&args, 1).unwrap();
        let _station_end = opener.join().unwrap();
        let first = std::fs::read_link(&link).unwrap();
        assert!(first.starts_with("/dev/pts"), "{first:?}");

        wire.close();
        assert!(std::fs::symlink_metadata(&link).is_err(), "no link is left on the closed pty {first:?}");

        let opener = station_opens(link.clone());
        wire.reopen().unwrap();
        let _station_end = opener.join().unwrap();
        assert!(std::fs::read_link(&link).unwrap().starts_with("/dev/pts"));
        drop(wire);
        assert!(std::fs::symlink_metadata(&link).is_err(), "the link goes with the line");
    }
}

//! Real ttys for daemon tests: socat-linked pty pairs, a running `station serve`, and a scripted
//! device speaking the wire protocol through the station's own codec.

use super::*;
use station_protocol::{self as protocol, Decoder, Message};
use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A linked pty pair: the station opens `station_end`, the device `device_end`.
pub struct PtyPair {
    pub child: Child,
    pub station_end: PathBuf,
    pub device_end: PathBuf,
}

impl PtyPair {
    pub fn new(dir: &Path, name: &str) -> PtyPair {
        let (station_end, device_end) = (dir.join(format!("{name}.station")), dir.join(format!("{name}.device")));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", station_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", device_end.display()))
            .stderr(Stdio::null())
            .spawn()
            .expect("socat");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(station_end.exists() && device_end.exists()) {
            assert!(Instant::now() < deadline, "socat did not create the ptys");
            std::thread::sleep(Duration::from_millis(10));
        }
        PtyPair { child, station_end, device_end }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `station serve` running in the background, its operator lines collected.
pub struct Daemon {
    pub child: Child,
    pub lines: Receiver<String>,
    /// Everything it wrote to stderr so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    pub fn start(st: &TestStation, benches: &[(&str, &Path)], extra: &[&str]) -> Daemon {
        Self::start_env(st, benches, extra, &[])
    }

    /// As [`start`](Self::start), with more environment variables.
    pub fn start_env(st: &TestStation, benches: &[(&str, &Path)], extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(STATION);
        cmd.arg("-c").arg(st.config()).arg("serve");
        for (name, path) in benches {
            cmd.arg("--bench").arg(format!("{name}={}", path.display()));
        }
        cmd.args(extra).env_remove("STATION_HSM_PIN").stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("station serve");
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let err = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = collected.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
            if std::env::var_os("STATION_TEST_LOG").is_some() {
                eprintln!("{}", collected.lock().unwrap());
            }
        });
        Daemon { child, lines, stderr }
    }

    /// Waits up to `secs` for the daemon to end by itself: its exit status and what it wrote to stderr.
    pub fn wait(mut self, secs: u64) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (s.code().unwrap_or(-1), self.stderr.lock().unwrap().clone());
            }
            assert!(Instant::now() < deadline, "serve did not end by itself within {secs} s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next operator line, within `secs`.
    pub fn line(&self, secs: u64) -> String {
        self.lines.recv_timeout(Duration::from_secs(secs)).expect("an operator line")
    }

    /// SIGTERM; returns the exit status.
    pub fn stop(mut self) -> i32 {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted device on the device end of a pty pair.
pub struct Device {
    port: Box<dyn serialport::SerialPort>,
    decoder: Decoder,
}

impl Device {
    pub fn open(path: &Path) -> Device {
        let port = serialport::new(path.to_string_lossy(), 115_200)
            .timeout(Duration::from_millis(50))
            .open()
            .expect("open device end");
        Device { port, decoder: Decoder::new() }
    }

    pub fn send(&mut self, msg: &Message) {
        self.raw(&protocol::encode(msg).unwrap());
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.port.write_all(bytes).unwrap();
        self.port.flush().unwrap();
    }

    /// The next message from the station, within `secs`.
    pub fn recv(&mut self, secs: u64) -> Message {
        self.try_recv(secs).unwrap_or_else(|| panic!("no frame from the station in {secs} s"))
    }

    /// The next message from the station, or `None` after `secs` (or if the line fails).
    pub fn try_recv(&mut self, secs: u64) -> Option<Message> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.decoder.next_frame() {
                return Some(f.expect("a valid frame from the station"));
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.port.read(&mut buf) {
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }

    /// The raw bytes of the next frame from the station (for byte-for-byte comparisons).
    pub fn recv_raw_line(&mut self, secs: u64) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while Instant::now() < deadline {
            if let Ok(1) = self.port.read(&mut b) {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return line;
                }
            }
        }
        panic!("no line in {secs} s");
    }
}

/// A fresh EC P-256 device key and a CSR for it (DER).
pub fn device_csr(cn: Option<&str>) -> (rcgen::KeyPair, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    let der = p.serialize_request(&key).unwrap().der().to_vec();
    (key, der)
}

pub fn hello(serial: Option<&str>) -> Message {
    Message::Hello(protocol::Hello {
        protocol: 1,
        model: "test-rig".into(),
        firmware: "1.0".into(),
        serial: serial.map(String::from),
        revision: None,
    })
}

/// Provisions devices `{prefix}-0000`, `-0001`, … on one bench until `stop` is set or a session fails;
/// returns every chain the device was given (including one whose DONE never came).
pub fn provision_until(
    path: PathBuf,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<protocol::Chain>> {
    std::thread::spawn(move || {
        let mut dev = Device::open(&path);
        let mut held = Vec::new();
        for i in 0.. {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let serial = format!("{prefix}-{i:04}");
            dev.send(&hello(Some(&serial)));
            let Some(Message::Welcome(_)) = dev.try_recv(3) else { break };
            let (_k, csr) = device_csr(None);
            dev.send(&Message::Csr(protocol::Csr { der: csr }));
            let Some(Message::Chain(c)) = dev.try_recv(3) else { break };
            held.push(c.clone()); // the device holds this chain from now on
            dev.send(&Message::Stored(protocol::Stored { sha256: c.sha256.clone() }));
            if !matches!(dev.try_recv(3), Some(Message::Done(_))) {
                break;
            }
        }
        held
    })
}

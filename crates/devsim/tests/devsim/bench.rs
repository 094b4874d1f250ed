//! The bench fixture: a real pty pair with the scripted station on the master side, the simulator run as a process
//! on the slave side, and checks of what a device leaves on disk.

use super::peer::{Log, Peer, Script, TestCa};
use serde_json::Value;
use serialport::{SerialPort, TTYPort};
use station_devsim::certs::sha256_hex;
use station_protocol::Message;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub const DEVSIM: &str = env!("CARGO_BIN_EXE_station-devsim");

/// A pty pair with the scripted station on the master side, and a temp dir for the CA file and the device files.
pub struct Bench {
    peer: Option<Peer>,
    pub port: String,
    dir: tempfile::TempDir,
}

/// One run of the simulator.
pub struct Run {
    pub status: i32,
    pub json: Value,
    pub stderr: String,
}

impl Run {
    pub fn device(&self, i: usize) -> &Value {
        &self.json["devices"][i]
    }
    pub fn assert_ok(&self) {
        assert_eq!(self.status, 0, "devsim failed:\n{:#}\n{}", self.json, self.stderr);
    }
}

impl Bench {
    /// A bench whose device trusts `trusted` (the file given as --ca).
    pub fn new(script: Script, trusted: &[&TestCa]) -> Bench {
        let (master, slave) = TTYPort::pair().expect("pty pair");
        let port = slave.name().expect("the slave has a path");
        drop(slave);
        let dir = tempfile::tempdir().expect("tempdir");
        let pems: String = trusted.iter().map(|ca| ca.pem()).collect();
        std::fs::write(dir.path().join("ca.pem"), pems).expect("ca file");
        Bench { peer: Some(Peer::start(master, script)), port, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(DEVSIM)
            .args(["--port", &self.port, "--json", "--reply-timeout", "2s", "--backoff", "0s"])
            .arg("--ca")
            .arg(self.ca_file())
            .arg("--out")
            .arg(self.out())
            .args(args)
            .env("STATION_LOG", "info")
            .output()
            .expect("station-devsim runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        Run { status: output.status.code().unwrap_or(-1), json, stderr }
    }

    /// Stops the station and returns what it saw.
    pub fn stop(&mut self) -> Log {
        self.peer.take().expect("running").stop()
    }
}

pub fn ca(name: &str) -> Arc<TestCa> {
    Arc::new(TestCa::new(name))
}

/// The device's files are there, the key private, the chain verified by openssl, and STORED carried its hash.
pub fn assert_stored(bench: &Bench, serial: &str, log: &Log) {
    let dir = bench.out().join(serial);
    let key = dir.join("deviceCert.key");
    let chain = dir.join("deviceCertAndCACert.crt");
    let mode = std::fs::metadata(&key).expect("key file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file must be private");
    assert!(std::fs::read_to_string(&key).expect("key").starts_with("-----BEGIN PRIVATE KEY-----"));
    let hash = sha256_hex(&std::fs::read(&chain).expect("chain file"));
    let stored = log.messages().into_iter().any(|m| matches!(m, Message::Stored(s) if s.sha256 == hash));
    assert!(stored, "no STORED carried the file's SHA-256 {hash}");
    openssl_verifies(&bench.ca_file(), &chain);
}

pub fn openssl_verifies(ca: &Path, chain: &Path) {
    let out = Command::new("openssl").arg("verify").arg("-CAfile").arg(ca).arg(chain).output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(": OK"),
        "openssl verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! `station-devsim` as the tests drive it: simulators on a device end, their JSON reports, and the chains
//! they stored, checked by openssl.

use super::*;
use std::process::{Child, Stdio};

pub const DEVSIM: &str = env!("CARGO_BIN_EXE_station-devsim");

/// Starts a simulator on `port` (a pty's device end) trusting `ca`, storing under `out`, reporting JSON.
pub fn spawn(port: &Path, ca: &Path, out: &Path, args: &[&str]) -> Child {
    Command::new(DEVSIM)
        .arg("--port")
        .arg(port)
        .arg("--ca")
        .arg(ca)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("station-devsim")
}

/// Waits for a simulator: its exit status and JSON report.
pub fn finish(child: Child) -> (i32, serde_json::Value) {
    let o = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("devsim JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code().unwrap_or(-1), v)
}

/// Every stored chain under `dir` (one folder per device).
pub fn chain_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path().join("deviceCertAndCACert.crt")).filter(|p| p.exists()).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `openssl verify -x509_strict -purpose sslclient` of every file's device certificate under `ca`.
pub fn verify_chains(ca: &Path, files: &[PathBuf]) {
    let mut args: Vec<String> =
        ["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"].map(String::from).to_vec();
    args.push(ca.display().to_string());
    args.extend(files.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, msg) = openssl(&refs);
    assert!(ok, "{msg}");
    assert_eq!(msg.matches(": OK").count(), files.len(), "{msg}");
}

/// The SHA-256 fingerprint (lower-case hex) of the first certificate in a PEM file.
pub fn fingerprint(pem_file: &Path) -> String {
    use sha2::Digest;
    let text = std::fs::read(pem_file).unwrap();
    let first = pem::parse_many(&text).unwrap().into_iter().next().expect("a certificate");
    hex::encode(sha2::Sha256::digest(first.contents()))
}

//! `station-devsim` as the tests drive it: simulators on a device end, their JSON reports, and the chains
//! they stored, checked by openssl.

use super::*;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The `station-devsim` binary of this build.
///
/// The simulator is its own package (crates/devsim), and cargo tells a package's tests where its own binaries are
/// only (`CARGO_BIN_EXE_*`). Cargo puts every binary of the workspace in one folder per profile, so the simulator
/// stands beside `station` (that path already honours `CARGO_TARGET_DIR`). `cargo nextest run --workspace`
/// (scripts/test.sh) builds it with everything else; when it is missing or older than its sources (e.g. after
/// `cargo test -p station`), it is built here first, into the same folder and profile.
pub fn devsim() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(STATION).parent().expect("the station binary has a folder");
        let bin = profile_dir.join("station-devsim");
        if !is_fresh(&bin) {
            build_devsim(profile_dir);
        }
        assert!(bin.is_file(), "{} is missing; run `cargo build --workspace` first", bin.display());
        bin
    })
}

/// Whether `bin` exists and is newer than the sources and manifests of the simulator and the protocol crate.
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return false };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["crates/devsim/src", "crates/devsim/Cargo.toml", "crates/protocol/src", "crates/protocol/Cargo.toml"]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .all(|changed| changed <= built)
}

/// The newest modification time of `path`, or of a file under it.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.flatten().filter_map(|e| newest(&e.path())).max()
}

/// `cargo build -p station-devsim` into the target folder and profile that `profile_dir` belongs to.
fn build_devsim(profile_dir: &Path) {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("{} names no profile", profile_dir.display()),
    };
    let target_dir = profile_dir.parent().expect("the profile folder is in a target folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--package", "station-devsim", "--bin", "station-devsim", "--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build of station-devsim failed");
}

/// Starts a simulator on `port` (a pty's device end) trusting `ca`, storing under `out`, reporting JSON.
pub fn spawn(port: &Path, ca: &Path, out: &Path, args: &[&str]) -> Child {
    Command::new(devsim())
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

//! Test fixtures: a real station in a temp dir (SoftHSM token, SQLite ledger) driven through the
//! `station` binary, with openssl as the independent verifier.
#![allow(dead_code)]

pub mod bench;
pub mod http;
pub mod mqtt;
pub mod pg;
pub mod sim;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const STATION: &str = env!("CARGO_BIN_EXE_station");
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A station made by `station init` in a temp dir.
pub struct TestStation {
    pub dir: tempfile::TempDir,
}

/// One run of the binary.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
    /// Asserts success and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.status, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    /// Asserts a failure with this code and exit status (`--json` error object).
    pub fn fails_with(&self, code: &str, status: i32) {
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "stdout: {} stderr: {}", self.stdout, self.stderr);
        assert!(!v["error"]["hint"].as_str().unwrap_or("").is_empty(), "no hint: {}", self.stdout);
        assert_eq!(self.status, status, "exit status for {code}");
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl TestStation {
    pub fn new() -> TestStation {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = TestStation { dir };
        let out = station(&["init", "--dir", st.path().to_str().unwrap(), "--station-id", "test-station"]);
        assert_eq!(out.status, 0, "init failed: {}\n{}", out.stdout, out.stderr);
        st
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("station.toml")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Runs `station -c CONFIG --json ARGS…`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(STATION);
        cmd.arg("-c").arg(self.config()).arg("--json").args(args).env_remove("STATION_HSM_PIN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run station").into()
    }

    /// Creates a CA and writes its certificate to `NAME.pem`; returns that path.
    pub fn create_ca(&self, name: &str, key_type: &str) -> PathBuf {
        self.run(&["ca", "create", "--name", name, "--key-type", key_type]).ok();
        self.ca_pem(name)
    }

    pub fn ca_pem(&self, name: &str) -> PathBuf {
        let out =
            Command::new(STATION).arg("-c").arg(self.config()).args(["ca", "show", name, "--pem"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let pem = &text[text.find("-----BEGIN CERTIFICATE-----").expect("pem")..];
        let path = self.file(&format!("{name}.pem"));
        std::fs::write(&path, pem).unwrap();
        path
    }

    pub fn user_pin(&self) -> String {
        std::fs::read_to_string(self.file("hsm-pin")).unwrap().trim().to_string()
    }

    /// Rewrites station.toml with `edit`.
    pub fn edit_config(&self, edit: impl Fn(String) -> String) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(self.config(), edit(text)).unwrap();
    }
}

/// Opens a config's HSM in this test process, after applying `[hsm] module_env` as the binary's `main` does.
pub fn open_hsm(cfg: &station::config::Config) -> std::sync::Arc<station::hsm::Hsm> {
    for (k, v) in &cfg.hsm.module_env {
        // SAFETY: nextest runs each test in its own process, and this runs before the test starts threads.
        unsafe { std::env::set_var(k, v) };
    }
    station::hsm::Hsm::open(&cfg.hsm).expect("open the HSM")
}

/// Runs the binary without a station.
pub fn station(args: &[&str]) -> Run {
    Command::new(STATION).args(args).env_remove("STATION_HSM_PIN").output().expect("run station").into()
}

/// Runs openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().expect("openssl");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// The text form of a certificate, as openssl prints it.
pub fn cert_text(path: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-in", path.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

/// Makes a CSR with openssl: `key` is an openssl -newkey spec ("ec:P-256", "rsa:2048", "ed25519"),
/// `subj` the subject, `extra` more `req` arguments. Returns (csr path, key path).
pub fn openssl_csr(dir: &Path, name: &str, key: &str, subj: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let (csr, keyf) = (dir.join(format!("{name}.csr")), dir.join(format!("{name}.key")));
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    match key.split_once(':') {
        Some(("ec", curve)) => {
            args.extend(["-newkey".into(), "ec".into(), "-pkeyopt".into(), format!("ec_paramgen_curve:{curve}")])
        }
        Some(("rsa", bits)) => args.extend(["-newkey".into(), format!("rsa:{bits}")]),
        _ => args.extend(["-newkey".into(), key.into()]),
    }
    args.extend([
        "-keyout".into(),
        keyf.display().to_string(),
        "-subj".into(),
        subj.into(),
        "-out".into(),
        csr.display().to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, msg) = openssl(&refs);
    assert!(ok, "openssl req failed: {msg}");
    (csr, keyf)
}

/// Number of issuance rows in a station's ledger (read with the sqlite3 CLI, independently).
pub fn sqlite(db: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

impl TestStation {
    pub fn issuance_count(&self) -> i64 {
        sqlite(&self.file("station.db"), "SELECT COUNT(*) FROM issuances").parse().unwrap()
    }

    /// `station issue --csr CSR --out OUT [extra]`.
    pub fn issue(&self, csr: &Path, out: &str, extra: &[&str]) -> Run {
        let out = self.file(out);
        let mut args = vec!["issue", "--csr", csr.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// Extensions for a CA certificate an openssl root signs.
pub const CA_EXT: &str = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
                          subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

/// A CA made with openssl in a folder: an offline root, or a broker's server CA.
pub struct OpensslCa {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl OpensslCa {
    /// A self-signed P-384 CA named `name` (files NAME.pem, NAME.key).
    pub fn new(dir: &Path, name: &str, subject: &str) -> OpensslCa {
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        let (ok, msg) = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "3650",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        assert!(ok, "{msg}");
        OpensslCa { dir: dir.to_path_buf(), cert, key }
    }

    /// Signs a CSR with the extensions `ext` (openssl extfile syntax); returns the certificate's path.
    pub fn sign(&self, csr: &Path, out: &str, ext: &str) -> PathBuf {
        let (ext_file, out) = (self.dir.join(format!("{out}.ext")), self.dir.join(out));
        std::fs::write(&ext_file, ext).unwrap();
        let (ok, msg) = openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "1825",
            "-sha384",
            "-extfile",
            ext_file.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{msg}");
        out
    }
}

//! Real PKCS#11 tokens for the tests, started by `scripts/tokens.sh`: SoftHSM2 (made by `station init`
//! itself, as a user's station is), tpm2-pkcs11 over its own swtpm, a claimed slot of the opencryptoki
//! soft token, and an NSS softokn database (the module that needs C_Initialize arguments). A station on each is configured the way a factory engineer would: `station init --module
//! … --module-env …` and a 0600 PIN file.

use super::*;
use std::collections::BTreeMap;
use std::ops::Deref;

/// Which token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SoftHsm,
    Tpm2,
    Ock,
    Nss,
}

impl Kind {
    fn script_name(self) -> &'static str {
        match self {
            Kind::Tpm2 => "tpm2",
            Kind::Ock => "ock",
            Kind::SoftHsm => "softhsm",
            Kind::Nss => "nss",
        }
    }
}

/// The test tokens' PINs (opencryptoki takes 4 to 8 characters).
pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "87654321";

/// A token started by scripts/tokens.sh, stopped when dropped.
pub struct Token {
    pub kind: Kind,
    pub dir: tempfile::TempDir,
    /// What `tokens.sh … start` printed: MODULE, MODULE_ENV, the module's variables, TOKEN_LABEL, …
    pub facts: BTreeMap<String, String>,
}

fn tokens_sh(args: &[&str]) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tokens.sh");
    let o = Command::new("bash").arg(script).args(args).output().expect("scripts/tokens.sh");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn parse_facts(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Token {
    /// A fresh token labelled `label` (tpm2 or ock; SoftHSM tokens are made by `station init`).
    pub fn start(kind: Kind, label: &str) -> Token {
        // Short paths: the swtpm socket path must fit a unix socket address.
        let dir = tempfile::Builder::new().prefix("tok").tempdir_in("/tmp").expect("tempdir");
        let name = kind.script_name();
        let d = dir.path().to_str().unwrap();
        let (ok, out, err) = tokens_sh(&[name, "start", d, label, SO_PIN, USER_PIN]);
        assert!(ok, "tokens.sh {name} start failed:\n{err}");
        Token { kind, dir, facts: parse_facts(&out) }
    }

    pub fn module(&self) -> &str {
        &self.facts["MODULE"]
    }

    /// The variables the module needs, as `station init --module-env` takes them.
    pub fn module_env(&self) -> Vec<(String, String)> {
        self.facts["MODULE_ENV"]
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| (k.to_string(), self.facts[k].clone()))
            .collect()
    }

    /// tpm2: kills the swtpm (SIGKILL), keeping its state.
    pub fn kill_tpm(&self) {
        let (ok, _, err) = tokens_sh(&["tpm2", "kill", self.dir.path().to_str().unwrap()]);
        assert!(ok, "{err}");
    }

    /// tpm2: flushes what processes left loaded in the TPM (it has no resource manager here); only while
    /// nothing uses it.
    pub fn flush_tpm(&self) {
        let (ok, _, err) = tokens_sh(&["tpm2", "flush", self.dir.path().to_str().unwrap()]);
        assert!(ok, "{err}");
    }

    /// tpm2: starts the swtpm again on the state it had.
    pub fn resume_tpm(&self) {
        let (ok, _, err) = tokens_sh(&["tpm2", "resume", self.dir.path().to_str().unwrap()]);
        assert!(ok, "{err}");
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let _ = tokens_sh(&[self.kind.script_name(), "stop", self.dir.path().to_str().unwrap()]);
    }
}

/// A station on a token of one kind. Derefs to the station; the token outlives it.
pub struct TokenStation {
    pub st: TestStation,
    pub token: Option<Token>,
    /// The token's label: unique per test, because opencryptoki's slots are visible machine-wide.
    pub label: String,
}

impl Deref for TokenStation {
    type Target = TestStation;
    fn deref(&self) -> &TestStation {
        &self.st
    }
}

impl TokenStation {
    pub fn new(kind: Kind) -> TokenStation {
        if kind == Kind::SoftHsm {
            return TokenStation { st: TestStation::new(), token: None, label: "station".into() };
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!("st-{}-{n}", std::process::id());
        let token = Token::start(kind, &label);
        // NSS softokn's token has a fixed label.
        let label = token.facts["TOKEN_LABEL"].clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> =
            ["init", "--dir", dir.path().to_str().unwrap(), "--station-id", "test-station"].map(String::from).to_vec();
        args.extend(["--module".into(), token.module().into(), "--token-label".into(), label.clone()]);
        for (k, v) in token.module_env() {
            args.extend(["--module-env".into(), format!("{k}={v}")]);
        }
        if let Some(a) = token.facts.get("INIT_ARGS") {
            args.extend(["--init-args".into(), a.clone()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = station(&refs);
        assert_eq!(out.status, 0, "init failed: {}\n{}", out.stdout, out.stderr);
        let st = TestStation { dir };
        st.write_pin(USER_PIN);
        TokenStation { st, token: Some(token), label }
    }

    pub fn kind(&self) -> Kind {
        self.token.as_ref().map_or(Kind::SoftHsm, |t| t.kind)
    }

    pub fn module(&self) -> String {
        self.token.as_ref().map_or(SOFTHSM.to_string(), |t| t.module().to_string())
    }

    /// The environment a separate PKCS#11 client (pkcs11-tool) needs for this token.
    pub fn module_env(&self) -> Vec<(String, String)> {
        match &self.token {
            Some(t) => t.module_env(),
            None => vec![("SOFTHSM2_CONF".into(), self.file("softhsm2.conf").display().to_string())],
        }
    }

    /// Runs OpenSC's pkcs11-tool on this token, logged in as the user: an independent reader of what the
    /// station made.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .args(["--module", &self.module(), "--token-label", &self.label, "--login", "--pin", &self.user_pin()])
            .args(args)
            .envs(self.module_env())
            .output()
            .expect("pkcs11-tool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "pkcs11-tool {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    }
}

impl TestStation {
    /// Writes the user PIN file (0600) that `station init` names for a token it did not make.
    pub fn write_pin(&self, pin: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.file("hsm-pin");
        std::fs::write(&p, format!("{pin}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The private keys pkcs11-tool lists, each as (label, usage line, access line).
pub fn private_keys(listing: &str) -> Vec<(String, String, String)> {
    listing
        .split("Private Key Object")
        .skip(1)
        .map(|b| {
            let field = |name: &str| {
                b.lines()
                    .find(|l| l.trim_start().starts_with(name))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default()
            };
            (field("label:"), field("Usage:"), field("Access:"))
        })
        .collect()
}

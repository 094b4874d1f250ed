//! The shape of `station.toml`. Every struct refuses unknown fields, so a typo is an error that names it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub station: StationSection,
    pub hsm: HsmSection,
    #[serde(default)]
    pub ca: CaSection,
    pub ledger: LedgerSection,
    /// AWS IoT registration and verification (optional).
    #[serde(default)]
    pub aws: Option<super::AwsSection>,
    #[serde(default)]
    pub policy: PolicySection,
    /// The benches `station serve` drives.
    #[serde(default, rename = "bench")]
    pub benches: Vec<super::BenchSection>,
    /// The operations endpoint: metrics, health and the line view (optional, off by default).
    #[serde(default)]
    pub http: Option<super::HttpSection>,
    #[serde(default)]
    pub serve: super::ServeSection,
    #[serde(default)]
    pub audit: AuditSection,
    /// The fleet registry (optional): forwarding and serial blocks.
    #[serde(default)]
    pub registry: Option<super::RegistrySection>,
    /// The file this was read from (not part of the file).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    /// This station's name, recorded with every issuance and sent to devices.
    pub id: String,
    /// Folder for station state (pid, exports). Relative paths resolve against the config's folder.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label. Tokens are always found by label, never by slot number.
    pub token_label: String,
    /// A file holding the user PIN, mode 0600. `STATION_HSM_PIN` takes precedence when set.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Environment the module reads when it initialises, e.g. `SOFTHSM2_CONF`, `TPM2_PKCS11_TCTI`. Values
    /// are passed exactly as written; the binary sets them once, before any thread starts.
    #[serde(default)]
    pub module_env: BTreeMap<String, String>,
    /// The module's C_Initialize parameter string (`pReserved`), for modules that need one (NSS softokn:
    /// `configdir='sql:/etc/pki/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db'`).
    #[serde(default)]
    pub init_args: Option<String>,
    /// At most this many PKCS#11 sessions are open for signing at once.
    #[serde(default = "default_sessions")]
    pub max_sessions: usize,
    /// How long a signature waits for a free session before it fails with `hsm-busy` (retryable).
    #[serde(default = "default_session_wait_ms")]
    pub session_wait_ms: u64,
}

fn default_sessions() -> usize {
    4
}
fn default_session_wait_ms() -> u64 {
    10_000
}

/// Defaults for new CAs. Which CA is active is a ledger state, switched by `station ca activate`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// Key type for `ca create` / `ca rotate` when `--key-type` is not given.
    #[serde(default = "default_ca_key_type")]
    pub key_type: String,
    /// Subject DN for new CAs when `--subject` is not given; `{name}` is replaced by the CA's name.
    #[serde(default = "default_ca_subject")]
    pub subject: String,
    /// Validity of a new CA certificate, in days.
    #[serde(default = "default_ca_days")]
    pub days: u32,
}

impl Default for CaSection {
    fn default() -> Self {
        CaSection { key_type: default_ca_key_type(), subject: default_ca_subject(), days: default_ca_days() }
    }
}

fn default_ca_key_type() -> String {
    "ec-p256".into()
}
fn default_ca_subject() -> String {
    "CN={name},O=Station Demo,C=DE".into()
}
/// Twice the device validity: a CA must outlive every certificate it issues (AWS IoT's verify checks it).
fn default_ca_days() -> u32 {
    7300
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// The SQLite ledger file (created 0600).
    pub path: PathBuf,
    /// At most this many issuances share one durable commit.
    #[serde(default = "default_group_commit")]
    pub group_commit_max: usize,
}

fn default_group_commit() -> usize {
    64
}

/// Audit settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The daemon signs a checkpoint of the ledger every this many new certificates (and at shutdown);
    /// 0 turns the periodic checkpoints off.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// The label of the dedicated audit key (`station audit key create`) in the CA's token: it signs checkpoints and
    /// manifests, and CA keys sign certificates only. Unset: checkpoints are signed by the active CA's key.
    #[serde(default)]
    pub key: Option<String>,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection { checkpoint_every: default_checkpoint_every(), key: None }
    }
}

fn default_checkpoint_every() -> u64 {
    1000
}

/// Where the device's serial number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SerialSource {
    /// The device (CSR CN or `--serial`), checked against `serial_pattern`.
    Device,
    /// The station allocates gaplessly from `serial_prefix`, `serial_width`, `serial_first..=serial_last`.
    Station,
}

/// The device certificate profile. The CSR contributes its public key and nothing else.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    /// Allowed device key types: `ec-p256`, `ec-p384`, `rsa-2048`, `rsa-3072`, `rsa-4096`.
    #[serde(default = "default_key_types")]
    pub key_types: Vec<String>,
    /// Device certificate validity in days (never beyond the CA's notAfter).
    #[serde(default = "default_device_days")]
    pub days: u32,
    /// notBefore is this many minutes in the past, for device clock skew.
    #[serde(default = "default_backdate")]
    pub backdate_minutes: u32,
    #[serde(default = "default_serial_source")]
    pub serial_source: SerialSource,
    /// Device-supplied serials must match this regex (anchored by the station).
    #[serde(default = "default_serial_pattern")]
    pub serial_pattern: String,
    #[serde(default = "default_prefix")]
    pub serial_prefix: String,
    #[serde(default = "default_width")]
    pub serial_width: usize,
    #[serde(default = "default_first")]
    pub serial_first: u64,
    #[serde(default = "default_last")]
    pub serial_last: u64,
    /// Append the root of an imported chain to every device chain.
    #[serde(default)]
    pub include_root: bool,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            organization: None,
            organizational_unit: None,
            country: None,
            key_types: default_key_types(),
            days: default_device_days(),
            backdate_minutes: default_backdate(),
            serial_source: default_serial_source(),
            serial_pattern: default_serial_pattern(),
            serial_prefix: default_prefix(),
            serial_width: default_width(),
            serial_first: default_first(),
            serial_last: default_last(),
            include_root: false,
        }
    }
}

fn default_key_types() -> Vec<String> {
    ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"].map(String::from).to_vec()
}
fn default_device_days() -> u32 {
    3650
}
fn default_backdate() -> u32 {
    5
}
fn default_serial_source() -> SerialSource {
    SerialSource::Device
}
/// The default `serial_pattern`: the wire's serial characters without `.`, so that every serial fits an X.509
/// PrintableString and an AWS IoT thing name ([a-zA-Z0-9:_-]), whatever `[aws]` says later.
pub const DEFAULT_SERIAL_PATTERN: &str = "[A-Za-z0-9][A-Za-z0-9:-]{0,63}";

fn default_serial_pattern() -> String {
    DEFAULT_SERIAL_PATTERN.into()
}
fn default_prefix() -> String {
    "SN-".into()
}
fn default_width() -> usize {
    6
}
fn default_first() -> u64 {
    1
}
fn default_last() -> u64 {
    999_999
}

impl Config {
    /// Makes every relative path absolute against `base` (the config file's folder).
    pub(super) fn resolve(&mut self, base: &Path) {
        let abs = |p: &PathBuf| {
            if p.is_absolute() { p.clone() } else { base.join(p) }
        };
        self.station.state_dir = abs(&self.station.state_dir);
        self.ledger.path = abs(&self.ledger.path);
        self.hsm.pin_file = self.hsm.pin_file.as_ref().map(abs);
        if let Some(aws) = &mut self.aws {
            aws.resolve(base);
        }
        if let Some(r) = &mut self.registry {
            r.resolve(base);
        }
    }
}

use crate::error::{Coded, exit};
use cryptoki::error::{Error as CkError, RvError};
use std::path::PathBuf;

/// An HSM failure. PKCS#11 errors keep the function that failed.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11 module {path} does not exist")]
    ModuleMissing { path: PathBuf },
    #[error("PKCS#11 module {path} could not be loaded: {source}")]
    ModuleLoad {
        path: PathBuf,
        #[source]
        source: CkError,
    },
    #[error("this process already uses PKCS#11 module {loaded}; it cannot also load {wanted}")]
    SecondModule { loaded: PathBuf, wanted: PathBuf },
    #[error("no token labelled {label:?} (tokens present: {present})")]
    TokenNotFound { label: String, present: String },
    #[error("no HSM PIN: {0}")]
    PinMissing(String),
    #[error("PIN file {path} is readable by group or others (mode {mode:o})")]
    PinFilePermissions { path: PathBuf, mode: u32 },
    #[error("cannot read PIN file {path}: {source}")]
    PinFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HSM login to token {label:?} failed: the PIN is wrong")]
    PinIncorrect { label: String },
    #[error("HSM login to token {label:?} failed: the PIN is locked")]
    PinLocked { label: String },
    #[error("key {uri} is not in the HSM")]
    KeyMissing { uri: String },
    #[error("a key labelled {label:?} already exists in token {token:?}")]
    KeyExists { label: String, token: String },
    #[error("PKCS#11 URI {uri:?} is not valid: {problem}")]
    BadUri { uri: String, problem: String },
    #[error("HSM key {uri} is not usable: {problem}")]
    KeyUnusable { uri: String, problem: String },
    #[error("HSM {op} failed: {source}")]
    Pkcs11 {
        op: &'static str,
        #[source]
        source: CkError,
    },
}

impl HsmError {
    /// Wraps a cryptoki error, keeping what the station was doing.
    pub fn ck(op: &'static str) -> impl FnOnce(CkError) -> HsmError {
        move |source| HsmError::Pkcs11 { op, source }
    }

    /// The PKCS#11 return value, when the failure came from the module.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            HsmError::Pkcs11 { source: CkError::Pkcs11(rv, _), .. } => Some(*rv),
            _ => None,
        }
    }
}

impl Coded for HsmError {
    fn code(&self) -> &'static str {
        match self {
            HsmError::ModuleMissing { .. } => "hsm-module-missing",
            HsmError::ModuleLoad { .. } | HsmError::SecondModule { .. } => "hsm-module-load-failed",
            HsmError::TokenNotFound { .. } => "hsm-token-not-found",
            HsmError::PinMissing(_) => "hsm-pin-missing",
            HsmError::PinFilePermissions { .. } => "hsm-pin-file-permissions",
            HsmError::PinFileUnreadable { .. } => "hsm-pin-file-unreadable",
            HsmError::PinIncorrect { .. } => "hsm-login-failed",
            HsmError::PinLocked { .. } => "hsm-pin-locked",
            HsmError::KeyMissing { .. } => "hsm-key-missing",
            HsmError::KeyExists { .. } => "hsm-key-exists",
            HsmError::BadUri { .. } => "hsm-uri-invalid",
            HsmError::KeyUnusable { .. } => "hsm-key-unusable",
            HsmError::Pkcs11 { .. } => "hsm-operation-failed",
        }
    }

    fn hint(&self) -> String {
        match self {
            HsmError::ModuleMissing { .. } => {
                "install the module (SoftHSM: apt-get install softhsm2) or fix [hsm] module in station.toml".into()
            }
            HsmError::ModuleLoad { .. } => "check the module is a PKCS#11 library for this architecture and that its own config (module_env) is right".into(),
            HsmError::SecondModule { .. } => "use one [hsm] module per station process".into(),
            HsmError::TokenNotFound { .. } => {
                "fix [hsm] token_label, or initialise the token (`station init` does this for SoftHSM)".into()
            }
            HsmError::PinMissing(_) => format!("set {} or [hsm] pin_file (a 0600 file holding the user PIN)", super::PIN_ENV),
            HsmError::PinFilePermissions { path, .. } => {
                format!("run `chmod 600 {}`: the PIN must be readable by the station's user only", path.display())
            }
            HsmError::PinFileUnreadable { .. } => "check [hsm] pin_file and the file's owner".into(),
            HsmError::PinIncorrect { .. } => "check the PIN file or STATION_HSM_PIN; repeated failures may lock the token".into(),
            HsmError::PinLocked { .. } => "the security officer must unlock the token and reset the user PIN".into(),
            HsmError::KeyMissing { .. } => "check the key URI (`station hsm status` lists the keys found) or that the right token is configured".into(),
            HsmError::KeyExists { .. } => "choose another CA name; the token keeps every key it ever generated for the station".into(),
            HsmError::BadUri { .. } => "write it as pkcs11:token=LABEL;object=NAME;type=private".into(),
            HsmError::KeyUnusable { .. } => "the key's attributes do not allow the station to use it; generate a new CA key".into(),
            HsmError::Pkcs11 { .. } => "check the HSM is connected and the token present; `station hsm status` probes it".into(),
        }
    }

    fn exit_status(&self) -> i32 {
        exit::HSM
    }
}

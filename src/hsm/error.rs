use crate::error::{Coded, exit};
use cryptoki::error::{Error as CkError, RvError};
use std::fmt;
use std::path::PathBuf;

/// What the station was doing when a PKCS#11 call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Initialise,
    FindToken,
    OpenSession,
    Login,
    Mechanisms,
    Generate,
    FindKey,
    ReadKey,
    DestroyKey,
    Sign,
    TokenInfo,
    InitToken,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Initialise => "initialise the module",
            Step::FindToken => "find the token",
            Step::OpenSession => "open a session",
            Step::Login => "log in",
            Step::Mechanisms => "read the mechanisms",
            Step::Generate => "generate a key",
            Step::FindKey => "find a key",
            Step::ReadKey => "read a key",
            Step::DestroyKey => "destroy a key",
            Step::Sign => "sign",
            Step::TokenInfo => "read the token info",
            Step::InitToken => "initialise a token",
        })
    }
}

/// A PKCS#11 call that failed: the C function and its return code (`CKR_DEVICE_ERROR`), or what the
/// wrapper could not do with the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CkFailure {
    pub function: &'static str,
    pub rv: Option<RvError>,
    pub other: Option<String>,
}

impl CkFailure {
    pub fn new(function: &'static str, e: CkError) -> CkFailure {
        match e {
            CkError::Pkcs11(rv, _) => CkFailure { function, rv: Some(rv), other: None },
            other => CkFailure { function, rv: None, other: Some(other.to_string()) },
        }
    }
}

impl fmt::Display for CkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rv, &self.other) {
            (Some(rv), _) => write!(f, "{} returned {}", self.function, ckr_name(*rv)),
            (None, Some(o)) => write!(f, "{} failed: {o}", self.function),
            (None, None) => write!(f, "{} failed", self.function),
        }
    }
}

/// PKCS#11's first vendor-defined return value.
const CKR_VENDOR_DEFINED: std::os::raw::c_ulong = 0x8000_0000;

/// The PKCS#11 name of a return value: `RvError::DeviceError` → `CKR_DEVICE_ERROR`.
pub fn ckr_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(v) => format!("CKR_VENDOR_DEFINED+{:#x}", v - CKR_VENDOR_DEFINED),
        RvError::UnknownErrorCode(v) => format!("unknown CKR {v:#x}"),
        // The variant names are the CKR names in CamelCase.
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR_");
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// How a PKCS#11 return value is handled: what it says about the session, the key handle or the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The session is gone (closed, invalid, timed out on an idle YubiHSM): use a new one.
    Session,
    /// The key handle no longer names the key (after a failover): look the key up again.
    Handle,
    /// The login was lost: log in again.
    Login,
    /// The token, its device or its link failed: re-initialise the module.
    Token,
    /// Anything else: report it.
    Other,
}

impl Fault {
    pub fn of(rv: RvError) -> Fault {
        match rv {
            RvError::SessionHandleInvalid | RvError::SessionClosed => Fault::Session,
            RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => Fault::Handle,
            RvError::UserNotLoggedIn => Fault::Login,
            RvError::DeviceError
            | RvError::DeviceRemoved
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::GeneralError
            | RvError::CryptokiNotInitialized
            | RvError::SlotIdInvalid => Fault::Token,
            _ => Fault::Other,
        }
    }
}

/// An HSM failure. PKCS#11 failures keep the step, the C function and its CKR code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11 module {path} does not exist")]
    ModuleMissing { path: PathBuf },
    #[error("PKCS#11 module {path} could not be loaded: {problem}")]
    ModuleLoad { path: PathBuf, problem: String },
    #[error("this process already uses PKCS#11 module {loaded}; it cannot also load {wanted}")]
    SecondModule { loaded: PathBuf, wanted: PathBuf },
    #[error("[hsm] module_env {key} is not in this process's environment as configured")]
    ModuleEnvNotApplied { key: String },
    #[error("[hsm] init_args is set, but this program cannot pass C_Initialize arguments")]
    InitArgsUnsupported,
    #[error("PKCS#11 module {path} loaded, but could not initialise: {failure}")]
    InitFailed { path: PathBuf, failure: CkFailure },
    #[error("no token labelled {label:?} (tokens present: {present})")]
    TokenNotFound { label: String, present: String },
    #[error("no HSM PIN: {0}")]
    PinMissing(String),
    #[error("PIN file {path} is readable by group or others (mode {mode:o})")]
    PinFilePermissions { path: PathBuf, mode: u32 },
    #[error("cannot read PIN file {path}: {problem}")]
    PinFileUnreadable { path: PathBuf, problem: String },
    #[error("HSM login to token {label:?} failed: the PIN is wrong (CKR_PIN_INCORRECT)")]
    PinIncorrect { label: String },
    #[error("HSM login to token {label:?} failed: the PIN is locked (CKR_PIN_LOCKED)")]
    PinLocked { label: String },
    #[error("HSM login to token {label:?} failed: the PIN has expired (CKR_PIN_EXPIRED)")]
    PinExpired { label: String },
    #[error("key {uri} is not in the HSM")]
    KeyMissing { uri: String },
    #[error("a key labelled {label:?} already exists in token {token:?}")]
    KeyExists { label: String, token: String },
    #[error("PKCS#11 URI {uri:?} is not valid: {problem}")]
    BadUri { uri: String, problem: String },
    #[error("HSM key {uri} is not usable: {problem}")]
    KeyUnusable { uri: String, problem: String },
    #[error(
        "token {token:?} made key {label:?} weaker than the station asked for ({problems}); it was destroyed again"
    )]
    KeyWeak { label: String, token: String, problems: String },
    #[error("token {token:?} offers no mechanism to {what} (it offers: {offered})")]
    MechanismMissing { token: String, what: String, offered: String },
    #[error("the HSM is unavailable: {cause}; the station is re-initialising it")]
    Unavailable { cause: String },
    #[error("the HSM came back but refused the station: {cause}")]
    RecoveryStopped { cause: String },
    #[error("no HSM session became free within {waited_ms} ms (all {max_sessions} are in use)")]
    Busy { waited_ms: u64, max_sessions: usize },
    #[error("HSM could not {step}: {failure}")]
    Pkcs11 { step: Step, failure: CkFailure },
}

impl HsmError {
    /// Wraps a cryptoki error, keeping the step and the C function.
    pub fn ck(step: Step, function: &'static str) -> impl FnOnce(CkError) -> HsmError {
        move |e| HsmError::Pkcs11 { step, failure: CkFailure::new(function, e) }
    }

    /// The PKCS#11 return value, when the failure came from the module.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            HsmError::Pkcs11 { failure, .. } | HsmError::InitFailed { failure, .. } => failure.rv,
            _ => None,
        }
    }

    /// What the return value says about the session, the handle or the token.
    pub fn fault(&self) -> Fault {
        self.rv().map_or(Fault::Other, Fault::of)
    }

    /// A login the token refused because of the PIN: never retried, so the PIN is not locked by the station.
    pub fn is_pin_refusal(&self) -> bool {
        matches!(self, HsmError::PinIncorrect { .. } | HsmError::PinLocked { .. } | HsmError::PinExpired { .. })
    }

    fn class_hint(&self) -> &'static str {
        match self.rv() {
            Some(
                RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::DeviceRemoved
                | RvError::SlotIdInvalid,
            ) => {
                "the token is absent: connect the HSM (or start the service its module talks to) and check token_label"
            }
            Some(
                RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::GeneralError
                | RvError::FunctionFailed
                | RvError::CryptokiNotInitialized,
            ) => "the HSM or its link failed: check the device, its cable or network, and the daemon its module needs",
            Some(
                RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::KeyTypeInconsistent
                | RvError::KeySizeRange
                | RvError::CurveNotSupported
                | RvError::TemplateInconsistent
                | RvError::TemplateIncomplete
                | RvError::AttributeValueInvalid
                | RvError::AttributeTypeInvalid
                | RvError::DomainParamsInvalid,
            ) => "the token does not support what was asked: `station hsm status` lists the mechanisms it offers",
            Some(RvError::SessionCount) => "the token has no free session: lower [hsm] max_sessions",
            Some(RvError::UserNotLoggedIn | RvError::UserTypeInvalid) => {
                "the login was lost: check that no other program logs the token out"
            }
            _ => "check the HSM is connected and the token present; `station hsm status` probes it",
        }
    }
}

impl Coded for HsmError {
    fn code(&self) -> &'static str {
        match self {
            HsmError::ModuleMissing { .. } => "hsm-module-missing",
            HsmError::ModuleLoad { .. } | HsmError::SecondModule { .. } => "hsm-module-load-failed",
            HsmError::ModuleEnvNotApplied { .. } => "hsm-module-env-not-applied",
            HsmError::InitArgsUnsupported => "hsm-init-args-unsupported",
            HsmError::InitFailed { .. } => "hsm-init-failed",
            HsmError::TokenNotFound { .. } => "hsm-token-not-found",
            HsmError::PinMissing(_) => "hsm-pin-missing",
            HsmError::PinFilePermissions { .. } => "hsm-pin-file-permissions",
            HsmError::PinFileUnreadable { .. } => "hsm-pin-file-unreadable",
            HsmError::PinIncorrect { .. } => "hsm-login-failed",
            HsmError::PinLocked { .. } => "hsm-pin-locked",
            HsmError::PinExpired { .. } => "hsm-pin-expired",
            HsmError::KeyMissing { .. } => "hsm-key-missing",
            HsmError::KeyExists { .. } => "hsm-key-exists",
            HsmError::BadUri { .. } => "hsm-uri-invalid",
            HsmError::KeyUnusable { .. } => "hsm-key-unusable",
            HsmError::KeyWeak { .. } => "hsm-key-weak",
            HsmError::MechanismMissing { .. } => "hsm-mechanism-missing",
            HsmError::Unavailable { .. } => "hsm-unavailable",
            HsmError::RecoveryStopped { .. } => "hsm-recovery-stopped",
            HsmError::Busy { .. } => "hsm-busy",
            HsmError::Pkcs11 { .. } => "hsm-operation-failed",
        }
    }

    fn hint(&self) -> String {
        match self {
            HsmError::ModuleMissing { .. } => {
                "install the module (SoftHSM: apt-get install softhsm2) or fix [hsm] module in station.toml".into()
            }
            HsmError::ModuleLoad { .. } => {
                "check the file is a PKCS#11 library for this architecture and that its own dependencies are installed".into()
            }
            HsmError::SecondModule { .. } => "use one [hsm] module per station process".into(),
            HsmError::ModuleEnvNotApplied { .. } => {
                "the program that embeds the station must set [hsm] module_env before any thread starts (the station binary does)".into()
            }
            HsmError::InitArgsUnsupported => {
                "use the station binary, or remove [hsm] init_args if the module does not need them".into()
            }
            HsmError::InitFailed { .. } => match self.rv() {
                Some(RvError::ArgumentsBad) => {
                    "the module wants C_Initialize arguments: set [hsm] init_args (NSS softokn: configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=)".into()
                }
                _ => "the module loaded but cannot reach its token: check the device or service it talks to and the \
                      module's own settings in [hsm] module_env (tpm2-pkcs11: is the TPM at TPM2_PKCS11_TCTI running? \
                      opencryptoki: is pkcsslotd running?)"
                    .into(),
            },
            HsmError::TokenNotFound { .. } => {
                "fix [hsm] token_label, or initialise the token (`station init` does this for SoftHSM)".into()
            }
            HsmError::PinMissing(_) => {
                format!("set {} or [hsm] pin_file (a 0600 file holding the user PIN)", super::PIN_ENV)
            }
            HsmError::PinFilePermissions { path, .. } => {
                format!("run `chmod 600 {}`: the PIN must be readable by the station's user only", path.display())
            }
            HsmError::PinFileUnreadable { .. } => "check [hsm] pin_file and the file's owner".into(),
            HsmError::PinIncorrect { .. } => {
                "check the PIN file or STATION_HSM_PIN (in the token's own format, e.g. YubiHSM 0001password, CloudHSM user:password); the station tried once: each failure counts towards the token's lockout".into()
            }
            HsmError::PinLocked { .. } => "the security officer must unlock the token and reset the user PIN".into(),
            HsmError::PinExpired { .. } => "the security officer must set a new user PIN".into(),
            HsmError::KeyMissing { .. } => {
                "check the key URI (`station hsm status` lists the keys found) or that the right token is configured".into()
            }
            HsmError::KeyExists { .. } => "choose another CA name; a key with this label is already in the token".into(),
            HsmError::BadUri { .. } => "write it as pkcs11:token=LABEL;object=NAME;type=private".into(),
            HsmError::KeyUnusable { .. } => {
                "the key's attributes do not allow the station to use it; generate a new CA key".into()
            }
            HsmError::KeyWeak { .. } => {
                "this token cannot hold a sign-only, non-extractable key of this type: choose another key type or token".into()
            }
            HsmError::MechanismMissing { .. } => {
                "choose a key type the token supports (`station hsm status` lists them per key type)".into()
            }
            HsmError::Unavailable { .. } => {
                "the device retries by itself; if this lasts, check the HSM, its link and its daemon".into()
            }
            HsmError::RecoveryStopped { .. } => {
                "fix the PIN (or have the security officer unlock it), then restart the station".into()
            }
            HsmError::Busy { .. } => "the device retries by itself; if this lasts, raise [hsm] max_sessions".into(),
            HsmError::Pkcs11 { .. } => self.class_hint().into(),
        }
    }

    fn exit_status(&self) -> i32 {
        exit::HSM
    }

    fn retryable(&self) -> bool {
        match self {
            // Faults of the moment: the same request can succeed once the HSM is back or a session is free.
            HsmError::Unavailable { .. } | HsmError::Busy { .. } | HsmError::Pkcs11 { .. } => true,
            HsmError::InitFailed { .. } => true,
            // Set-up, policy and PIN problems: a person has to act first, so retrying only adds load (and, for a
            // PIN, lockout counts).
            HsmError::ModuleMissing { .. }
            | HsmError::ModuleLoad { .. }
            | HsmError::SecondModule { .. }
            | HsmError::ModuleEnvNotApplied { .. }
            | HsmError::InitArgsUnsupported
            | HsmError::TokenNotFound { .. }
            | HsmError::PinMissing(_)
            | HsmError::PinFilePermissions { .. }
            | HsmError::PinFileUnreadable { .. }
            | HsmError::PinIncorrect { .. }
            | HsmError::PinLocked { .. }
            | HsmError::PinExpired { .. }
            | HsmError::KeyMissing { .. }
            | HsmError::KeyExists { .. }
            | HsmError::BadUri { .. }
            | HsmError::KeyUnusable { .. }
            | HsmError::KeyWeak { .. }
            | HsmError::MechanismMissing { .. }
            | HsmError::RecoveryStopped { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names_follow_the_pkcs11_spelling() {
        assert_eq!(ckr_name(RvError::DeviceError), "CKR_DEVICE_ERROR");
        assert_eq!(ckr_name(RvError::CryptokiNotInitialized), "CKR_CRYPTOKI_NOT_INITIALIZED");
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(RvError::KeyHandleInvalid), "CKR_KEY_HANDLE_INVALID");
        assert_eq!(ckr_name(RvError::VendorDefined(CKR_VENDOR_DEFINED + 5)), "CKR_VENDOR_DEFINED+0x5");
    }

    #[test]
    fn messages_name_the_step_function_and_return_code() {
        let e = HsmError::ck(Step::Sign, "C_Sign")(CkError::Pkcs11(
            RvError::DeviceError,
            cryptoki::context::Function::Sign,
        ));
        assert_eq!(e.to_string(), "HSM could not sign: C_Sign returned CKR_DEVICE_ERROR");
        assert_eq!(e.fault(), Fault::Token);
        assert!(e.hint().contains("link failed"), "{}", e.hint());
    }

    fn ck(rv: RvError) -> CkFailure {
        CkFailure { function: "C_Sign", rv: Some(rv), other: None }
    }

    /// Every variant is built here, and its `retryable` and exit status must be what the code registry
    /// (src/codes.rs) declares for its code; together they cover every registered HSM code.
    #[test]
    fn retryable_is_decided_for_every_variant_as_the_registry_declares() {
        let p = PathBuf::from("/m.so");
        let s = String::new;
        let all = [
            HsmError::ModuleMissing { path: p.clone() },
            HsmError::ModuleLoad { path: p.clone(), problem: s() },
            HsmError::SecondModule { loaded: p.clone(), wanted: p.clone() },
            HsmError::ModuleEnvNotApplied { key: s() },
            HsmError::InitArgsUnsupported,
            HsmError::InitFailed { path: p.clone(), failure: ck(RvError::DeviceError) },
            HsmError::TokenNotFound { label: s(), present: s() },
            HsmError::PinMissing(s()),
            HsmError::PinFilePermissions { path: p.clone(), mode: 0o644 },
            HsmError::PinFileUnreadable { path: p.clone(), problem: s() },
            HsmError::PinIncorrect { label: s() },
            HsmError::PinLocked { label: s() },
            HsmError::PinExpired { label: s() },
            HsmError::KeyMissing { uri: s() },
            HsmError::KeyExists { label: s(), token: s() },
            HsmError::BadUri { uri: s(), problem: s() },
            HsmError::KeyUnusable { uri: s(), problem: s() },
            HsmError::KeyWeak { label: s(), token: s(), problems: s() },
            HsmError::MechanismMissing { token: s(), what: s(), offered: s() },
            HsmError::Unavailable { cause: s() },
            HsmError::RecoveryStopped { cause: s() },
            HsmError::Busy { waited_ms: 1, max_sessions: 1 },
            HsmError::Pkcs11 { step: Step::Sign, failure: ck(RvError::FunctionFailed) },
        ];
        for e in &all {
            let entry = crate::codes::lookup(e.code()).unwrap_or_else(|| panic!("{} is not registered", e.code()));
            assert_eq!(e.retryable(), entry.retryable, "{}", e.code());
            assert_eq!(Some(e.exit_status()), entry.exit, "{}", e.code());
            assert!(!e.hint().is_empty(), "{}", e.code());
        }
        let built: std::collections::BTreeSet<&str> = all.iter().map(Coded::code).collect();
        let registered: std::collections::BTreeSet<&str> =
            crate::codes::ALL.iter().map(|c| c.code).filter(|c| c.starts_with("hsm-")).collect();
        assert_eq!(built, registered, "every registered HSM code is built above");
        // The PIN problems in particular never invite a retry (a retry storm would lock the token).
        assert!(all.iter().filter(|e| e.is_pin_refusal()).all(|e| !e.retryable()));
        // And the faults of the moment do.
        for e in all.iter().filter(|e| matches!(e, HsmError::Unavailable { .. } | HsmError::Busy { .. })) {
            assert!(e.retryable(), "{}", e.code());
        }
    }
}

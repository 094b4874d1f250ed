//! The PKCS#11 module: loaded once per process, initialised (with the module's own C_Initialize
//! arguments when it needs them), re-initialised when its token fails, and asked for its tokens slot by
//! slot, so one slot that cannot be read never hides the others.

use super::HsmError;
use super::error::{CkFailure, Step};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::{Slot, TokenInfo};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// What the library cannot do without `unsafe`, so the binary provides it once, in `main`.
#[derive(Clone, Copy)]
pub struct FfiHooks {
    /// C_Initialize arguments whose `pReserved` points at a module parameter string (NSS softokn's
    /// `configdir='sql:…'`, p11-kit's `x-init-reserved`): an act on a raw pointer.
    pub reserved_args: fn(&'static CStr) -> CInitializeArgs,
    /// C_GetTokenInfo answered in full but unparsed, for a module whose clock string is not PKCS#11's
    /// `YYYYMMDDhhmmss00` (opencryptoki 3.8 writes `hh:mm:ss`), which cryptoki refuses along with the label.
    pub raw_token_info: fn(module: &Path, slot: u64) -> Option<RawTokenInfo>,
}

/// A token's identity as C_GetTokenInfo gives it, read without the clock.
#[derive(Debug, Clone)]
pub struct RawTokenInfo {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub initialized: bool,
}

static HOOKS: OnceLock<FfiHooks> = OnceLock::new();
static LOADED: Mutex<Option<Arc<Module>>> = Mutex::new(None);

/// Registers this program's FFI hooks (call once, from `main`).
pub fn set_ffi_hooks(hooks: FfiHooks) {
    let _ = HOOKS.set(hooks);
}

/// One loaded PKCS#11 library.
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    /// `[hsm] init_args`, kept for every C_Initialize of the process's life.
    reserved: Option<&'static CStr>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).field("init_args", &self.reserved.is_some()).finish()
    }
}

/// A token as a slot reports it, with its padding removed.
#[derive(Debug, Clone)]
pub struct TokenFacts {
    pub slot: Slot,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub initialized: bool,
}

impl TokenFacts {
    fn from_raw(slot: Slot, t: RawTokenInfo) -> TokenFacts {
        TokenFacts {
            slot,
            label: trim_padding(&t.label),
            manufacturer: trim_padding(&t.manufacturer),
            model: trim_padding(&t.model),
            serial: trim_padding(&t.serial),
            initialized: t.initialized,
        }
    }

    fn from_info(slot: Slot, t: &TokenInfo) -> TokenFacts {
        TokenFacts {
            slot,
            label: trim_padding(t.label()),
            manufacturer: trim_padding(t.manufacturer_id()),
            model: trim_padding(t.model()),
            serial: trim_padding(t.serial_number()),
            initialized: t.token_initialized(),
        }
    }
}

/// PKCS#11 pads its fixed-size strings with spaces; some modules (tpm2-pkcs11) pad with NULs.
pub fn trim_padding(s: &str) -> String {
    s.trim_end_matches(['\0', ' ']).to_string()
}

/// C_Finalize at the end of the process, once no open token uses the module any more (a module still in use
/// is left alone). Modules that keep state in the device free it here: tpm2-pkcs11 on a TPM without a
/// resource manager otherwise leaves objects loaded until the TPM runs out of slots.
pub fn finalize_at_exit() {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = loaded.take() {
        match Arc::try_unwrap(m) {
            Ok(m) => match m.ctx.finalize() {
                Ok(()) => tracing::debug!("PKCS#11 module finalised at exit"),
                Err(e) => {
                    tracing::debug!(error = %CkFailure::new("C_Finalize", e), "finalising the PKCS#11 module at exit")
                }
            },
            Err(still_used) => {
                tracing::debug!("PKCS#11 module still in use at exit; not finalised");
                *loaded = Some(still_used);
            }
        }
    }
}

impl Module {
    /// The process's module: loaded and initialised on first use. A second, different module is refused.
    pub fn load(path: &Path, init_args: Option<&str>) -> Result<Arc<Module>, HsmError> {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = loaded.as_ref() {
            if m.path != path {
                return Err(HsmError::SecondModule { loaded: m.path.clone(), wanted: path.to_path_buf() });
            }
            return Ok(m.clone());
        }
        if !path.exists() {
            return Err(HsmError::ModuleMissing { path: path.to_path_buf() });
        }
        let reserved = match init_args {
            Some(a) => Some(leak_cstring(path, a)?),
            None => None,
        };
        let ctx = Pkcs11::new(path).map_err(|e| HsmError::ModuleLoad { path: path.into(), problem: e.to_string() })?;
        let module = Arc::new(Module { path: path.to_path_buf(), ctx, reserved });
        module.initialize()?;
        *loaded = Some(module.clone());
        Ok(module)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    fn args(&self) -> Result<CInitializeArgs, HsmError> {
        match self.reserved {
            None => Ok(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
            Some(params) => HOOKS.get().map(|h| (h.reserved_args)(params)).ok_or(HsmError::InitArgsUnsupported),
        }
    }

    /// C_Initialize; a module that is already initialised is fine.
    pub fn initialize(&self) -> Result<(), HsmError> {
        match self.ctx.initialize(self.args()?) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(HsmError::InitFailed { path: self.path.clone(), failure: CkFailure::new("C_Initialize", e) }),
        }
    }

    /// C_Finalize, then C_Initialize: the module forgets every session and handle and reconnects to its
    /// token. The caller makes sure no other thread is inside the module meanwhile.
    pub fn reinitialize(&self) -> Result<(), HsmError> {
        if let Err(e) = self.ctx.clone().finalize() {
            tracing::debug!(error = %CkFailure::new("C_Finalize", e), "finalising the PKCS#11 module");
        }
        self.initialize()
    }

    /// Every token present, read slot by slot: a slot whose info cannot be read is skipped with a warning.
    pub fn tokens(&self) -> Result<(Vec<TokenFacts>, Vec<String>), HsmError> {
        let slots = self.ctx.get_slots_with_token().map_err(HsmError::ck(Step::FindToken, "C_GetSlotList"))?;
        let (mut tokens, mut unreadable) = (Vec::new(), Vec::new());
        for slot in slots {
            let e = match self.ctx.get_token_info(slot) {
                Ok(info) => {
                    tokens.push(TokenFacts::from_info(slot, &info));
                    continue;
                }
                Err(e) => e,
            };
            // The module answered, but cryptoki could not parse the answer (the clock, on opencryptoki).
            let parse_failure = !matches!(e, CkError::Pkcs11(..));
            match parse_failure.then(|| self.raw_token_info(slot)).flatten() {
                Some(raw) => {
                    tracing::debug!(slot = slot.id(), error = %e, "token info read without its clock");
                    tokens.push(TokenFacts::from_raw(slot, raw));
                }
                None => {
                    let why = CkFailure::new("C_GetTokenInfo", e);
                    tracing::warn!(slot = slot.id(), error = %why, "skipping a slot whose token info cannot be read");
                    unreadable.push(format!("slot {} unreadable ({why})", slot.id()));
                }
            }
        }
        Ok((tokens, unreadable))
    }

    /// The initialised token with this label. Slot numbers move (SoftHSM renumbers on init), labels do not.
    pub fn find_token(&self, label: &str) -> Result<TokenFacts, HsmError> {
        let (tokens, unreadable) = self.tokens()?;
        if let Some(t) = tokens.iter().find(|t| t.initialized && t.label == label) {
            return Ok(t.clone());
        }
        let mut present: Vec<String> =
            tokens.iter().filter(|t| t.initialized).map(|t| format!("{:?}", t.label)).collect();
        present.extend(unreadable);
        let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
        Err(HsmError::TokenNotFound { label: label.into(), present })
    }

    fn raw_token_info(&self, slot: Slot) -> Option<RawTokenInfo> {
        HOOKS.get().and_then(|h| (h.raw_token_info)(&self.path, slot.id()))
    }

    /// The library's own description (`station hsm status`).
    pub fn library(&self) -> String {
        match self.ctx.get_library_info() {
            Ok(i) => format!(
                "{} {} ({})",
                trim_padding(i.library_description()),
                i.library_version(),
                trim_padding(i.manufacturer_id())
            ),
            Err(_) => String::new(),
        }
    }
}

/// The parameter string, NUL-terminated, for the life of the process (C_Initialize may run again later).
fn leak_cstring(path: &Path, text: &str) -> Result<&'static CStr, HsmError> {
    let c = CString::new(text).map_err(|_| HsmError::ModuleLoad {
        path: path.to_path_buf(),
        problem: "[hsm] init_args contains a NUL byte".into(),
    })?;
    Ok(Box::leak(c.into_boxed_c_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_of_spaces_and_nuls_is_removed() {
        assert_eq!(trim_padding("SW   TPM\0\0\0\0"), "SW   TPM");
        assert_eq!(trim_padding("SoftHSM v2      "), "SoftHSM v2");
    }
}

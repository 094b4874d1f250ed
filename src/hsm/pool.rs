//! The process's PKCS#11 context, its token, and a bounded pool of logged-in sessions.
//!
//! A `Session` is `Send` but not `Sync`, so a session is only ever used by the thread that checked it
//! out. One "anchor" session stays open for the life of the `Hsm`, which keeps the login alive (PKCS#11
//! logs the application out when its last session closes).

use super::{HsmError, Pin};
use crate::config::HsmSection;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

static CONTEXT: OnceLock<Mutex<Option<(PathBuf, Pkcs11)>>> = OnceLock::new();

/// An open, logged-in token.
pub struct Hsm {
    ctx: Pkcs11,
    module: PathBuf,
    slot: Slot,
    token_label: String,
    pin: Pin,
    max_sessions: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    _anchor: Mutex<Session>,
}

struct PoolState {
    idle: Vec<Session>,
    open: usize,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").field("module", &self.module).field("token", &self.token_label).finish_non_exhaustive()
    }
}

impl Hsm {
    /// Opens the token named in `[hsm]`, with the PIN from the environment or the pin file.
    pub fn open(cfg: &HsmSection) -> Result<Arc<Hsm>, HsmError> {
        // The module first: a missing module is named as such, not as a PIN problem.
        context(&cfg.module, &cfg.module_env)?;
        let pin = Pin::load(cfg.pin_file.as_deref())?;
        Self::open_with(cfg, pin)
    }

    /// Opens the token with a PIN the caller already holds.
    pub fn open_with(cfg: &HsmSection, pin: Pin) -> Result<Arc<Hsm>, HsmError> {
        let ctx = context(&cfg.module, &cfg.module_env)?;
        let (slot, anchor) = with_backoff(&ctx, || {
            let slot = find_token(&ctx, &cfg.token_label)?;
            let anchor = ctx.open_rw_session(slot).map_err(HsmError::ck("C_OpenSession"))?;
            login(&anchor, &pin, &cfg.token_label)?;
            Ok((slot, anchor))
        })?;
        Ok(Arc::new(Hsm {
            ctx,
            module: cfg.module.clone(),
            slot,
            token_label: cfg.token_label.clone(),
            pin,
            max_sessions: cfg.max_sessions.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
            _anchor: Mutex::new(anchor),
        }))
    }

    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Runs `f` on a pooled session. A session that the module reports broken is closed, not reused;
    /// a lost login is restored once.
    pub fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let session = self.checkout()?;
        let mut result = f(&session);
        if matches!(result.as_ref().err().and_then(HsmError::rv), Some(RvError::UserNotLoggedIn)) {
            result = login(&session, &self.pin, &self.token_label).and_then(|()| f(&session));
        }
        let broken = matches!(
            result.as_ref().err().and_then(HsmError::rv),
            Some(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
            )
        );
        self.checkin(session, broken);
        result
    }

    fn checkout(&self) -> Result<Session, HsmError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(s);
            }
            if st.open < self.max_sessions {
                st.open += 1;
                drop(st);
                return self.ctx.open_rw_session(self.slot).map_err(|e| {
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                    HsmError::Pkcs11 { op: "C_OpenSession", source: e }
                });
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn checkin(&self, session: Session, broken: bool) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if broken {
            st.open -= 1;
            drop(session);
        } else {
            st.idle.push(session);
        }
        self.freed.notify_one();
    }

    /// Token facts for `station hsm status`.
    pub fn token_info(&self) -> Result<cryptoki::slot::TokenInfo, HsmError> {
        let mut tries = 0;
        loop {
            match self.ctx.get_token_info(self.slot).map_err(HsmError::ck("C_GetTokenInfo")) {
                Err(e) if tries < 5 && transient(&e) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 << tries));
                }
                other => return other,
            }
        }
    }
}

/// Retries transient failures while the token is being opened, with backoff (10 ms doubling, six
/// tries, about 0.3 s in all). SoftHSM's file store can be caught mid-read by another process and then
/// reports a general error, an uninitialised PIN or a missing token for an instant; network HSMs
/// report device errors while reconnecting. A wrong PIN fails at once.
/// Between tries the module is finalised and initialised again, so it re-reads its token state
/// (this runs before the process has any session open).
fn with_backoff<T>(ctx: &Pkcs11, mut f: impl FnMut() -> Result<T, HsmError>) -> Result<T, HsmError> {
    let mut delay = std::time::Duration::from_millis(10);
    for attempt in 1.. {
        match f() {
            Err(e) if attempt < 6 && transient(&e) => {
                tracing::debug!(attempt, error = %e, "HSM busy; retrying");
                std::thread::sleep(delay);
                delay *= 2;
                let _ = ctx.clone().finalize();
                ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                    .map_err(HsmError::ck("C_Initialize"))?;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns by the sixth attempt")
}

fn transient(e: &HsmError) -> bool {
    matches!(e, HsmError::TokenNotFound { .. })
        || matches!(
            e.rv(),
            Some(RvError::GeneralError | RvError::DeviceError | RvError::DeviceMemory | RvError::UserPinNotInitialized)
        )
}

fn login(session: &Session, pin: &Pin, label: &str) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin.auth())) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(HsmError::PinIncorrect { label: label.into() }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(HsmError::PinLocked { label: label.into() }),
        Err(e) => Err(HsmError::Pkcs11 { op: "C_Login", source: e }),
    }
}

/// Loads and initialises the module once per process.
pub(crate) fn context(module: &Path, env: &std::collections::BTreeMap<String, String>) -> Result<Pkcs11, HsmError> {
    let cell = CONTEXT.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, ctx)) = guard.as_ref() {
        if loaded != module {
            return Err(HsmError::SecondModule { loaded: loaded.clone(), wanted: module.to_path_buf() });
        }
        return Ok(ctx.clone());
    }
    if !module.exists() {
        return Err(HsmError::ModuleMissing { path: module.to_path_buf() });
    }
    for (k, v) in env {
        // SAFETY: the module reads its environment when it initialises; this runs once, under the
        // context lock, before the station starts worker threads that could read the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let load = |source| HsmError::ModuleLoad { path: module.to_path_buf(), source };
    let ctx = Pkcs11::new(module).map_err(load)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load(e)),
    }
    *guard = Some((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

/// The slot holding the token with this label. Slot numbers move (SoftHSM renumbers on init).
pub(crate) fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    let slots = ctx.get_slots_with_initialized_token().map_err(HsmError::ck("C_GetSlotList"))?;
    let mut present = Vec::new();
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(HsmError::ck("C_GetTokenInfo"))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
        present.push(format!("{:?}", info.label().trim_end()));
    }
    let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
    Err(HsmError::TokenNotFound { label: label.into(), present })
}

//! The open token: found by label, logged in, its mechanisms read, and a pool of sessions. Every PKCS#11
//! call on it goes through [`Hsm::call`], which uses a fresh session when the module says the session
//! is gone, logs in again when the login was lost, and hands a failure of the token itself to healing
//! (`health.rs`), answering `hsm-unavailable` meanwhile.

use super::error::{Fault, Step};
use super::mechanisms::{KeyTypePlan, Mechanisms, SignMethod};
use super::module::{Module, TokenFacts};
use super::pool::{Gate, Pool};
use super::{HsmError, Pin};
use crate::config::HsmSection;
use crate::pki::KeyType;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::session::{Session, UserType};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

/// An open, logged-in token.
pub struct Hsm {
    pub(super) me: Weak<Hsm>,
    pub(super) module: Arc<Module>,
    pub(super) label: String,
    pub(super) pin: Pin,
    pub(super) pool: Pool,
    /// Keeps the login alive: PKCS#11 logs the application out when its last session closes.
    pub(super) anchor: Mutex<Option<Session>>,
    pub(super) token: RwLock<TokenFacts>,
    pub(super) mechanisms: RwLock<Mechanisms>,
    pub(super) observer: RwLock<Option<super::HealthObserver>>,
    pub(super) sign_observer: RwLock<Option<SignObserver>>,
}

/// Told about every signature: how long it took (waiting for a session included) and whether it succeeded.
pub type SignObserver = Arc<dyn Fn(Duration, bool) + Send + Sync>;

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").field("module", &self.module.path()).field("token", &self.label).finish_non_exhaustive()
    }
}

impl Hsm {
    /// Opens the token named in `[hsm]`, with the PIN from the environment or the pin file.
    pub fn open(cfg: &HsmSection) -> Result<Arc<Hsm>, HsmError> {
        check_environment(cfg)?;
        // The module first: a missing module is named as such, not as a PIN problem.
        Module::load(&cfg.module, cfg.init_args.as_deref())?;
        let pin = Pin::load(cfg.pin_file.as_deref())?;
        Self::open_with(cfg, pin)
    }

    /// Opens the token with a PIN the caller already holds.
    pub fn open_with(cfg: &HsmSection, pin: Pin) -> Result<Arc<Hsm>, HsmError> {
        check_environment(cfg)?;
        let module = Module::load(&cfg.module, cfg.init_args.as_deref())?;
        let (token, anchor) = open_at_start(&module, &cfg.token_label, &pin)?;
        let mechanisms = Mechanisms::discover(module.ctx(), token.slot)?;
        let wait = Duration::from_millis(cfg.session_wait_ms);
        Ok(Arc::new_cyclic(|me| Hsm {
            me: me.clone(),
            pool: Pool::new(cfg.max_sessions, wait, token.slot),
            module,
            label: cfg.token_label.clone(),
            pin,
            anchor: Mutex::new(Some(anchor)),
            token: RwLock::new(token),
            mechanisms: RwLock::new(mechanisms),
            observer: RwLock::new(None),
            sign_observer: RwLock::new(None),
        }))
    }

    pub fn token_label(&self) -> &str {
        &self.label
    }

    pub fn module(&self) -> &Path {
        self.module.path()
    }

    /// The module's own description (library name, version, manufacturer).
    pub fn library(&self) -> String {
        self.module.library()
    }

    /// The token as its slot reported it when it was (last) opened.
    pub fn token(&self) -> TokenFacts {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the station uses on this token for each key type.
    pub fn plans(&self) -> Vec<KeyTypePlan> {
        self.mechanisms.read().unwrap_or_else(|p| p.into_inner()).plans()
    }

    /// How keys of this type sign here.
    pub fn sign_method(&self, kt: KeyType) -> Result<SignMethod, HsmError> {
        let m = self.mechanisms.read().unwrap_or_else(|p| p.into_inner());
        m.sign_method(kt).ok_or_else(|| HsmError::MechanismMissing {
            token: self.label.clone(),
            what: format!("sign with an {kt} key"),
            offered: m.offered_names(),
        })
    }

    /// The mechanism that generates keys of this type here.
    pub fn keygen_mechanism(&self, kt: KeyType) -> Result<Mechanism<'static>, HsmError> {
        let m = self.mechanisms.read().unwrap_or_else(|p| p.into_inner());
        m.keygen(kt).map_err(|why| HsmError::MechanismMissing {
            token: self.label.clone(),
            what: format!("generate an {kt} key ({why})"),
            offered: m.offered_names(),
        })
    }

    /// Hears about every signature from now on (metrics).
    pub fn on_sign(&self, observer: SignObserver) {
        *self.sign_observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    pub(super) fn signed(&self, took: Duration, ok: bool) {
        if let Some(o) = self.sign_observer.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            o(took, ok);
        }
    }

    /// Whether sessions are handed out, and (checked out, idle, max) sessions.
    pub fn state(&self) -> (Gate, (usize, usize), usize) {
        (self.pool.gate(), self.pool.usage(), self.pool.max())
    }

    /// Runs `f` on a pooled session, with the session's module generation (key handles are valid within
    /// one). A lost session is replaced and a lost login restored, once each; a failed token starts
    /// healing and the caller gets `hsm-unavailable`.
    pub fn call<T>(&self, f: impl Fn(&Session, u64) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let (mut relogged, mut replaced) = (false, false);
        loop {
            let mut lease = match self.pool.checkout(self.module.ctx()) {
                Ok(l) => l,
                Err(e) if e.fault() == Fault::Token => return Err(self.token_failed(&e)),
                Err(e) => return Err(e),
            };
            let result = f(lease.session(), lease.generation());
            let Err(e) = &result else { return result };
            match e.fault() {
                Fault::Login if !relogged => {
                    relogged = true;
                    if let Err(le) = login(lease.session(), &self.pin, &self.label) {
                        lease.discard();
                        drop(lease);
                        if le.is_pin_refusal() {
                            self.stop(&le);
                        }
                        return Err(le);
                    }
                }
                Fault::Session if !replaced => {
                    replaced = true;
                    lease.discard();
                }
                Fault::Token => {
                    lease.discard();
                    drop(lease);
                    return Err(self.token_failed(e));
                }
                _ => return result,
            }
        }
    }

    /// Runs `f` on a pooled session (for calls that hold no key handle).
    pub fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, HsmError>) -> Result<T, HsmError> {
        self.call(|s, _| f(s))
    }
}

/// `[hsm] module_env` is applied by the binary's `main`, before any thread exists; here it is only checked,
/// so a program that forgot it gets a clear error instead of a module reading the wrong configuration.
fn check_environment(cfg: &HsmSection) -> Result<(), HsmError> {
    for (k, v) in &cfg.module_env {
        if std::env::var_os(k).as_deref() != Some(std::ffi::OsStr::new(v)) {
            return Err(HsmError::ModuleEnvNotApplied { key: k.clone() });
        }
    }
    Ok(())
}

/// Finds the token, opens the anchor session and logs in; transient failures are retried with backoff
/// (10 ms doubling, six tries, about 0.3 s). SoftHSM's file store can be caught mid-write by another
/// process and then reports a general error, an uninitialised PIN or a missing token for an instant;
/// network HSMs report device errors while reconnecting. A PIN refusal is never retried.
fn open_at_start(module: &Module, label: &str, pin: &Pin) -> Result<(TokenFacts, Session), HsmError> {
    let mut delay = Duration::from_millis(10);
    for attempt in 1.. {
        match open_token(module, label, pin) {
            Err(e) if attempt < 6 && transient_at_start(&e) => {
                tracing::debug!(attempt, error = %e, "HSM busy; retrying");
                std::thread::sleep(delay);
                delay *= 2;
                module.reinitialize()?;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns by the sixth attempt")
}

fn transient_at_start(e: &HsmError) -> bool {
    matches!(e, HsmError::TokenNotFound { .. })
        || e.fault() == Fault::Token
        || matches!(e.rv(), Some(RvError::FunctionFailed | RvError::UserPinNotInitialized))
}

/// One attempt: the token by label, a session, the login.
pub(super) fn open_token(module: &Module, label: &str, pin: &Pin) -> Result<(TokenFacts, Session), HsmError> {
    let token = module.find_token(label)?;
    let anchor = module.ctx().open_rw_session(token.slot).map_err(HsmError::ck(Step::OpenSession, "C_OpenSession"))?;
    login(&anchor, pin, label)?;
    Ok((token, anchor))
}

/// C_Login as the user. Already logged in (login is per application) counts as success.
pub(super) fn login(session: &Session, pin: &Pin, label: &str) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin.auth())) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(HsmError::PinIncorrect { label: label.into() }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(HsmError::PinLocked { label: label.into() }),
        Err(CkError::Pkcs11(RvError::PinExpired, _)) => Err(HsmError::PinExpired { label: label.into() }),
        Err(e) => Err(HsmError::ck(Step::Login, "C_Login")(e)),
    }
}

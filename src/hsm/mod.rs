//! The PKCS#11 HSM, portable across tokens (SoftHSM2, tpm2-pkcs11, opencryptoki, YubiHSM 2, Luna,
//! CloudHSM, NSS softokn):
//!
//! - `module`: the library, loaded once per process, initialised (with `[hsm] init_args` when the module
//!   needs them), slots read one by one so an unreadable slot never hides the others;
//! - `mechanisms`: what the token offers and what the station uses on it per key type;
//! - `token`: the open, logged-in token and the one entry point for its calls;
//! - `pool`: sessions handed out as leases (returned even on panic, waited for with a timeout);
//! - `health`: re-initialising the module when the token fails, with backoff, one log line per change;
//! - `keys`: sign-only key generation with read-back, lookup by RFC 7512 URI, removal;
//! - `signer`: a key as an rcgen signer.

mod error;
mod health;
mod keys;
mod mechanisms;
mod module;
mod pin;
mod pool;
mod signer;
mod token;
mod uri;

pub use error::{CkFailure, Fault, HsmError, Step, ckr_name};
pub use health::{HealthEvent, HealthObserver};
pub use keys::{KeyAttributes, KeyInfo};
pub use mechanisms::{KeyTypePlan, SignMethod};
pub use module::{FfiHooks, Module, RawTokenInfo, TokenFacts, finalize_at_exit, set_ffi_hooks, trim_padding};
pub use pin::{PIN_ENV, Pin};
pub use pool::Gate;
pub use signer::{HsmKey, take_sign_error};
pub use token::{Hsm, SignObserver};
pub use uri::KeyUri;

//! The PKCS#11 HSM: module loaded once per process, token found by label, a pool of logged-in sessions,
//! keys generated inside the token and addressed by RFC 7512 URI, and an rcgen signer over them.

mod error;
mod keys;
mod pin;
mod pool;
mod signer;
mod uri;

pub use error::HsmError;
pub use keys::{KeyAttributes, KeyInfo};
pub use pin::{PIN_ENV, Pin};
pub use pool::Hsm;
pub(crate) use pool::{context as context_for_init, find_token as find_token_slot};
pub use signer::HsmKey;
pub use uri::KeyUri;

//! SoftHSM2 set-up for `station init`: a private token directory, its config file, and a token with
//! fresh random PINs. Real HSMs are initialised with their vendor's tools and only configured here.

use crate::hsm::{HsmError, Module, Pin, Step};
use cryptoki::session::UserType;
use std::path::{Path, PathBuf};

/// The environment variable naming SoftHSM2's config file.
pub const CONF_ENV: &str = "SOFTHSM2_CONF";

/// Where Debian's softhsm2 package puts the module.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// True when `module` looks like SoftHSM2 (the station can initialise its tokens itself).
pub fn is_softhsm(module: &Path) -> bool {
    module.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("softhsm"))
}

/// The contents of a `softhsm2.conf` that keeps tokens in `token_dir`.
pub fn conf_text(token_dir: &Path) -> String {
    format!(
        "# SoftHSM2 config written by `station init`.\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        token_dir.display()
    )
}

/// Initialises a new token labelled `label` in the first free slot and sets its user PIN. The process's
/// `SOFTHSM2_CONF` must already name the config file (the binary's `main` sets it for `station init`).
pub fn init_token(module: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<(), HsmError> {
    let m = Module::load(module, None)?;
    let ctx = m.ctx();
    let ck = |f| HsmError::ck(Step::InitToken, f);
    let mut free = None;
    for slot in ctx.get_all_slots().map_err(ck("C_GetSlotList"))? {
        let info = ctx.get_token_info(slot).map_err(ck("C_GetTokenInfo"))?;
        if info.label().trim_end() == label && info.token_initialized() {
            return Err(HsmError::KeyExists { label: label.into(), token: label.into() });
        }
        if free.is_none() && !info.token_initialized() {
            free = Some(slot);
        }
    }
    let slot = free.ok_or_else(|| HsmError::TokenNotFound { label: label.into(), present: "no free slot".into() })?;
    ctx.init_token(slot, so_pin.auth_pin(), label).map_err(ck("C_InitToken"))?;
    let slot = m.find_token(label)?.slot;
    let session = ctx.open_rw_session(slot).map_err(ck("C_OpenSession"))?;
    session.login(UserType::So, Some(so_pin.auth_pin())).map_err(ck("C_Login(SO)"))?;
    session.init_pin(user_pin.auth_pin()).map_err(ck("C_InitPIN"))?;
    session.logout().map_err(ck("C_Logout"))?;
    Ok(())
}

/// A random PIN of `len` digits and letters.
pub fn random_pin(len: usize) -> Pin {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    Pin::new((0..len).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect())
}

/// The token directory `station init` uses inside DIR.
pub fn token_dir(dir: &Path) -> PathBuf {
    dir.join("tokens")
}

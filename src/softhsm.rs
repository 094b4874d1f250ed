//! SoftHSM2 set-up for `station init`: a private token directory, its config file, and a token with
//! fresh random PINs. Real HSMs are initialised with their vendor's tools and only configured here.

use crate::hsm::{HsmError, Pin};
use cryptoki::session::UserType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Initialises a new token labelled `label` in the first free slot and sets its user PIN.
pub fn init_token(module: &Path, conf: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<(), HsmError> {
    let env = BTreeMap::from([("SOFTHSM2_CONF".to_string(), conf.display().to_string())]);
    let ctx = crate::hsm::context_for_init(module, &env)?;
    let slots = ctx.get_all_slots().map_err(HsmError::ck("C_GetSlotList"))?;
    let mut free = None;
    for slot in slots {
        let info = ctx.get_token_info(slot).map_err(HsmError::ck("C_GetTokenInfo"))?;
        if info.label().trim_end() == label && info.token_initialized() {
            return Err(HsmError::KeyExists { label: label.into(), token: label.into() });
        }
        if free.is_none() && !info.token_initialized() {
            free = Some(slot);
        }
    }
    let slot = free.ok_or_else(|| HsmError::TokenNotFound { label: label.into(), present: "no free slot".into() })?;
    ctx.init_token(slot, so_pin.auth_pin(), label).map_err(HsmError::ck("C_InitToken"))?;
    let slot = crate::hsm::find_token_slot(&ctx, label)?;
    let session = ctx.open_rw_session(slot).map_err(HsmError::ck("C_OpenSession"))?;
    session.login(UserType::So, Some(so_pin.auth_pin())).map_err(HsmError::ck("C_Login(SO)"))?;
    session.init_pin(user_pin.auth_pin()).map_err(HsmError::ck("C_InitPIN"))?;
    session.logout().map_err(HsmError::ck("C_Logout"))?;
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

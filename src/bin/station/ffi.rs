//! The two things the library leaves to the binary because they need `unsafe`: C_Initialize arguments
//! with a `pReserved` string, and C_GetTokenInfo read raw when cryptoki cannot parse the answer.

use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use station::hsm::{FfiHooks, RawTokenInfo};
use std::ffi::{CStr, c_void};
use std::path::Path;
use std::ptr::NonNull;

pub const HOOKS: FfiHooks = FfiHooks { reserved_args, raw_token_info };

/// C_Initialize arguments whose `pReserved` is `[hsm] init_args` as a C string (what NSS softokn and
/// p11-kit's `x-init-reserved` expect).
fn reserved_args(params: &'static CStr) -> CInitializeArgs {
    let ptr = NonNull::new(params.as_ptr().cast_mut().cast::<c_void>()).expect("a C string is not null");
    // SAFETY: `params` is NUL-terminated and lives for the rest of the process, so the pointer stays valid
    // for every C_Initialize; PKCS#11 only reads through pReserved.
    unsafe { CInitializeArgs::new_with_reserved(CInitializeFlags::OS_LOCKING_OK, ptr) }
}

/// C_GetTokenInfo on a module the station has already loaded and initialised, keeping the label and the
/// other identity fields and ignoring the clock.
fn raw_token_info(module: &Path, slot: u64) -> Option<RawTokenInfo> {
    // SAFETY: this opens the library the station already loaded (the loader returns the same, initialised
    // instance) and resolves its PKCS#11 symbols; dropping it only releases this reference.
    let lib = unsafe { cryptoki_sys::Pkcs11::new(module) }.ok()?;
    let mut info = cryptoki_sys::CK_TOKEN_INFO::default();
    // SAFETY: `info` is a properly sized, writable CK_TOKEN_INFO for the duration of the call.
    let rv = unsafe { lib.C_GetTokenInfo(slot as cryptoki_sys::CK_SLOT_ID, &mut info) };
    if rv != cryptoki_sys::CKR_OK {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some(RawTokenInfo {
        label: text(&info.label),
        manufacturer: text(&info.manufacturerID),
        model: text(&info.model),
        serial: text(&info.serialNumber),
        initialized: info.flags & cryptoki_sys::CKF_TOKEN_INITIALIZED != 0,
    })
}

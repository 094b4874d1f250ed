//! An HSM key as an rcgen signer. The mechanism is the token's (see `mechanisms.rs`); an ECDSA result,
//! raw r‖s, is DER-encoded with the `der` crate.
//!
//! The private key's handle is cached per module generation. After a re-initialisation, or when the token
//! says the handle is no longer valid (a failover), the key is looked up again by its URI and its public
//! key compared with the one the CA certificate carries, so a different key under the same label never
//! signs.

use super::error::{Fault, Step};
use super::keys::{find_pair, read_public};
use super::{Hsm, HsmError, KeyInfo, KeyUri};
use crate::pki::KeyType;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use der::Encode;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

thread_local! {
    /// The HSM error behind this thread's last failed rcgen signature. rcgen can only say
    /// `RemoteKeyError`; the caller takes the cause right after, on the same thread, so two benches
    /// failing at once never read each other's error.
    static SIGN_ERROR: RefCell<Option<HsmError>> = const { RefCell::new(None) };
}

/// The HSM error behind this thread's last `rcgen::Error::RemoteKeyError`, if any.
pub fn take_sign_error() -> Option<HsmError> {
    SIGN_ERROR.with(|e| e.borrow_mut().take())
}

/// A private key in the HSM that can sign certificates.
pub struct HsmKey {
    hsm: Arc<Hsm>,
    info: KeyInfo,
    /// (module generation, private key handle).
    handle: Mutex<Option<(u64, ObjectHandle)>>,
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKey").field("uri", &self.info.uri.to_string()).field("type", &self.info.key_type).finish()
    }
}

#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

impl HsmKey {
    /// The key a URI names, ready to sign.
    pub fn open(hsm: &Arc<Hsm>, uri: &KeyUri) -> Result<HsmKey, HsmError> {
        let info = hsm.find_key(uri)?;
        Ok(HsmKey::from_info(hsm, info))
    }

    pub fn from_info(hsm: &Arc<Hsm>, info: KeyInfo) -> HsmKey {
        HsmKey { hsm: hsm.clone(), info, handle: Mutex::new(None) }
    }

    pub fn uri(&self) -> &KeyUri {
        &self.info.uri
    }

    pub fn key_type(&self) -> KeyType {
        self.info.key_type
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    /// The private key's handle in this session's generation, looked up (and checked) when not cached.
    fn handle(&self, s: &Session, generation: u64) -> Result<ObjectHandle, HsmError> {
        let mut cached = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, h)) = *cached
            && g == generation
        {
            return Ok(h);
        }
        let (privh, pubh) = find_pair(s, &self.info.uri)?;
        let (kt, raw) = read_public(s, pubh, &self.info.uri)?;
        if kt != self.info.key_type || raw != self.info.public_raw {
            return Err(HsmError::KeyUnusable {
                uri: self.info.uri.to_string(),
                problem: "the key found under this URI is not the one the CA certificate carries".into(),
            });
        }
        *cached = Some((generation, privh));
        Ok(privh)
    }

    fn forget_handle(&self) {
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Signs `msg`, returning the signature as X.509 wants it.
    pub fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, HsmError> {
        let started = std::time::Instant::now();
        let result = self.sign_timed(msg);
        self.hsm.signed(started.elapsed(), result.is_ok());
        result
    }

    /// Signs `msg`, returning the signature as JOSE (RFC 7518) wants it: ECDSA as the fixed-length r‖s the token
    /// returns (32+32 bytes for P-256, 48+48 for P-384), RSA PKCS#1 v1.5 as is.
    pub fn sign_jose(&self, msg: &[u8]) -> Result<Vec<u8>, HsmError> {
        let started = std::time::Instant::now();
        let result = self.sign_raw(msg);
        self.hsm.signed(started.elapsed(), result.is_ok());
        let raw = result?;
        let want = match self.info.key_type {
            KeyType::EcP256 => Some(64),
            KeyType::EcP384 => Some(96),
            _ => None,
        };
        if let Some(n) = want
            && raw.len() != n
        {
            return Err(HsmError::KeyUnusable {
                uri: self.info.uri.to_string(),
                problem: format!("ECDSA signature of {} bytes, not the {n} of r and s", raw.len()),
            });
        }
        Ok(raw)
    }

    fn sign_timed(&self, msg: &[u8]) -> Result<Vec<u8>, HsmError> {
        let raw = self.sign_raw(msg)?;
        if !self.info.key_type.is_ec() {
            return Ok(raw);
        }
        let bad = |p: String| HsmError::KeyUnusable { uri: self.info.uri.to_string(), problem: p };
        if raw.len() % 2 != 0 {
            return Err(bad(format!("ECDSA signature of odd length {}", raw.len())));
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        let uint = |b| der::asn1::UintRef::new(b).map_err(|e| bad(e.to_string()));
        EcdsaSigValue { r: uint(r)?, s: uint(s)? }.to_der().map_err(|e| bad(e.to_string()))
    }

    /// The token's signature as it returns it (ECDSA: r‖s).
    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, HsmError> {
        let method = self.hsm.sign_method(self.info.key_type)?;
        let input = method.input(msg);
        let mechanism = method.mechanism();
        let sign = || {
            self.hsm.call(|s, generation| {
                #[cfg(feature = "test-hooks")]
                crate::test_hooks::panic_if_marked(msg);
                let h = self.handle(s, generation)?;
                s.sign(&mechanism, h, &input).map_err(HsmError::ck(Step::Sign, "C_Sign"))
            })
        };
        match sign() {
            Err(e) if e.fault() == Fault::Handle => {
                self.forget_handle();
                sign()
            }
            other => other,
        }
    }
}

impl rcgen::PublicKeyData for HsmKey {
    fn der_bytes(&self) -> &[u8] {
        &self.info.public_raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        crate::pki::signature_algorithm(self.info.key_type)
    }
}

impl rcgen::SigningKey for HsmKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_bytes(msg).map_err(|e| {
            SIGN_ERROR.with(|slot| *slot.borrow_mut() = Some(e));
            rcgen::Error::RemoteKeyError
        })
    }
}

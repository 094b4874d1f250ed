//! An HSM key as an rcgen signer. ECDSA hashes on the host and signs with CKM_ECDSA (SoftHSM has no
//! CKM_ECDSA_SHA256); the raw r‖s is DER-encoded with the `der` crate. RSA uses CKM_SHA256_RSA_PKCS.

use super::{Hsm, HsmError, KeyInfo, KeyUri};
use crate::pki::KeyType;
use cryptoki::mechanism::Mechanism;
use der::Encode;
use sha2::Digest;
use std::sync::{Arc, Mutex};

/// A private key in the HSM that can sign certificates.
pub struct HsmKey {
    hsm: Arc<Hsm>,
    info: KeyInfo,
    last_error: Mutex<Option<HsmError>>,
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
        HsmKey { hsm: hsm.clone(), info, last_error: Mutex::new(None) }
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

    /// Signs `msg`, returning the signature as X.509 wants it.
    pub fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, HsmError> {
        let kt = self.info.key_type;
        let (mechanism, data) = match kt {
            KeyType::EcP256 => (Mechanism::Ecdsa, sha2::Sha256::digest(msg).to_vec()),
            KeyType::EcP384 => (Mechanism::Ecdsa, sha2::Sha384::digest(msg).to_vec()),
            _ => (Mechanism::Sha256RsaPkcs, msg.to_vec()),
        };
        let raw =
            self.hsm.with_session(|s| s.sign(&mechanism, self.info.private, &data).map_err(HsmError::ck("C_Sign")))?;
        if !kt.is_ec() {
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

    /// The HSM error behind the last `rcgen::Error::RemoteKeyError`, if any.
    pub fn take_error(&self) -> Option<HsmError> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl rcgen::PublicKeyData for HsmKey {
    fn der_bytes(&self) -> &[u8] {
        &self.info.public_raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.info.key_type.signature_algorithm()
    }
}

impl rcgen::SigningKey for HsmKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_bytes(msg).map_err(|e| {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

//! What a token offers (C_GetMechanismList, C_GetMechanismInfo) and what the station uses on it, per key
//! type: the key-pair generation mechanism, and a signing mechanism with the hash in the token when the
//! token offers one, else the raw mechanism over a hash (ECDSA) or a DigestInfo (RSA) made on the host.

use super::HsmError;
use super::error::Step;
use crate::pki::KeyType;
use cryptoki::context::Pkcs11;
use cryptoki::mechanism::{Mechanism, MechanismInfo, MechanismType};
use cryptoki::slot::Slot;
use serde::Serialize;
use sha2::Digest;

/// How the station signs with a key of one type on one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMethod {
    /// CKM_ECDSA_SHA256 / CKM_ECDSA_SHA384: the token hashes.
    EcdsaInToken(Hash),
    /// CKM_ECDSA over a hash made on the host (SoftHSM has no CKM_ECDSA_SHA256).
    EcdsaHostHash(Hash),
    /// CKM_SHA256_RSA_PKCS: the token hashes.
    RsaSha256InToken,
    /// CKM_RSA_PKCS over a PKCS#1 DigestInfo(SHA-256) made on the host (opencryptoki's soft token).
    RsaHostDigestInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl SignMethod {
    pub fn mechanism(self) -> Mechanism<'static> {
        match self {
            SignMethod::EcdsaInToken(Hash::Sha256) => Mechanism::EcdsaSha256,
            SignMethod::EcdsaInToken(Hash::Sha384) => Mechanism::EcdsaSha384,
            SignMethod::EcdsaHostHash(_) => Mechanism::Ecdsa,
            SignMethod::RsaSha256InToken => Mechanism::Sha256RsaPkcs,
            SignMethod::RsaHostDigestInfo => Mechanism::RsaPkcs,
        }
    }

    pub fn mechanism_type(self) -> MechanismType {
        self.mechanism().mechanism_type()
    }

    /// What is handed to C_Sign for the message `msg`.
    pub fn input(self, msg: &[u8]) -> Vec<u8> {
        match self {
            SignMethod::EcdsaInToken(_) | SignMethod::RsaSha256InToken => msg.to_vec(),
            SignMethod::EcdsaHostHash(Hash::Sha256) => sha2::Sha256::digest(msg).to_vec(),
            SignMethod::EcdsaHostHash(Hash::Sha384) => sha2::Sha384::digest(msg).to_vec(),
            SignMethod::RsaHostDigestInfo => {
                let mut out = rsa::Pkcs1v15Sign::new::<sha2::Sha256>().prefix.to_vec();
                out.extend_from_slice(&sha2::Sha256::digest(msg));
                out
            }
        }
    }

    /// How `station hsm status` names it.
    pub fn describe(self) -> String {
        let host = match self {
            SignMethod::EcdsaHostHash(Hash::Sha256) => " over a SHA-256 made on the host",
            SignMethod::EcdsaHostHash(Hash::Sha384) => " over a SHA-384 made on the host",
            SignMethod::RsaHostDigestInfo => " over a SHA-256 DigestInfo made on the host",
            _ => " (hash in the token)",
        };
        format!("{}{host}", self.mechanism_type())
    }
}

/// The mechanisms a token offers, with their flags and key sizes.
#[derive(Debug, Clone, Default)]
pub struct Mechanisms {
    offered: Vec<(MechanismType, MechanismInfo)>,
}

/// What the station will use for one key type (`station hsm status`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyTypePlan {
    pub key_type: String,
    /// The generation mechanism, when the token offers one for this type.
    pub generate: Option<String>,
    /// The signing mechanism, when the token offers one for this type.
    pub sign: Option<String>,
    /// Why this key type cannot be generated or used here.
    pub missing: Vec<String>,
}

impl Mechanisms {
    /// Asks the token. A mechanism whose info cannot be read is left out.
    pub fn discover(ctx: &Pkcs11, slot: Slot) -> Result<Mechanisms, HsmError> {
        let types = ctx.get_mechanism_list(slot).map_err(HsmError::ck(Step::Mechanisms, "C_GetMechanismList"))?;
        let offered = types.into_iter().filter_map(|t| ctx.get_mechanism_info(slot, t).ok().map(|i| (t, i))).collect();
        Ok(Mechanisms { offered })
    }

    fn info(&self, t: MechanismType) -> Option<&MechanismInfo> {
        self.offered.iter().find(|(m, _)| *m == t).map(|(_, i)| i)
    }

    /// True when `t` is offered for `use_` and, when the token states a size range, `bits` is inside it.
    /// (EC sizes are not judged: tokens disagree on whether they count bits or bytes.)
    fn offers(&self, t: MechanismType, use_: fn(&MechanismInfo) -> bool, bits: Option<usize>) -> bool {
        self.info(t).is_some_and(|i| {
            use_(i) && bits.is_none_or(|b| i.max_key_size() == 0 || (i.min_key_size() <= b && b <= i.max_key_size()))
        })
    }

    /// How to sign with a key of this type here; `None` when the token offers no usable mechanism.
    pub fn sign_method(&self, kt: KeyType) -> Option<SignMethod> {
        let sign = |i: &MechanismInfo| i.sign();
        let rsa_bits = (!kt.is_ec()).then(|| kt.rsa_bits() as usize);
        match kt {
            KeyType::EcP256 | KeyType::EcP384 => {
                let (hash, in_token) = if kt == KeyType::EcP256 {
                    (Hash::Sha256, MechanismType::ECDSA_SHA256)
                } else {
                    (Hash::Sha384, MechanismType::ECDSA_SHA384)
                };
                if self.offers(in_token, sign, None) {
                    Some(SignMethod::EcdsaInToken(hash))
                } else if self.offers(MechanismType::ECDSA, sign, None) {
                    Some(SignMethod::EcdsaHostHash(hash))
                } else {
                    None
                }
            }
            _ => {
                if self.offers(MechanismType::SHA256_RSA_PKCS, sign, rsa_bits) {
                    Some(SignMethod::RsaSha256InToken)
                } else if self.offers(MechanismType::RSA_PKCS, sign, rsa_bits) {
                    Some(SignMethod::RsaHostDigestInfo)
                } else {
                    None
                }
            }
        }
    }

    /// The key-pair generation mechanism for this type, or why there is none.
    pub fn keygen(&self, kt: KeyType) -> Result<Mechanism<'static>, String> {
        let gen_ = |i: &MechanismInfo| i.generate_key_pair();
        let (t, mech, bits) = if kt.is_ec() {
            (MechanismType::ECC_KEY_PAIR_GEN, Mechanism::EccKeyPairGen, None)
        } else {
            (MechanismType::RSA_PKCS_KEY_PAIR_GEN, Mechanism::RsaPkcsKeyPairGen, Some(kt.rsa_bits() as usize))
        };
        if self.offers(t, gen_, bits) {
            return Ok(mech);
        }
        Err(match (self.info(t), bits) {
            (Some(i), Some(b)) if i.generate_key_pair() => {
                format!("{t} makes {}-{} bit keys, not {b}", i.min_key_size(), i.max_key_size())
            }
            _ => format!("no {t}"),
        })
    }

    /// Names of what is offered, for messages (the signing and generation mechanisms first).
    pub fn offered_names(&self) -> String {
        let interesting = |i: &MechanismInfo| i.sign() || i.generate_key_pair();
        let names: Vec<String> =
            self.offered.iter().filter(|(_, i)| interesting(i)).map(|(t, _)| t.to_string()).collect();
        if names.is_empty() { "no signing or key-pair generation mechanism".into() } else { names.join(", ") }
    }

    /// What the station will use for every key type it knows.
    pub fn plans(&self) -> Vec<KeyTypePlan> {
        KeyType::ALL
            .into_iter()
            .map(|kt| {
                let generate = self.keygen(kt).map(|m| m.mechanism_type().to_string());
                let sign = self.sign_method(kt).map(SignMethod::describe);
                let mut missing = Vec::new();
                if let Err(why) = &generate {
                    missing.push(format!("cannot generate: {why}"));
                }
                if sign.is_none() {
                    missing.push("cannot sign: no usable mechanism".into());
                }
                KeyTypePlan { key_type: kt.to_string(), generate: generate.ok(), sign, missing }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_digestinfo_is_the_pkcs1_prefix_and_the_sha256() {
        let input = SignMethod::RsaHostDigestInfo.input(b"abc");
        assert_eq!(hex::encode(&input[..19]), "3031300d060960864801650304020105000420");
        assert_eq!(&input[19..], sha2::Sha256::digest(b"abc").as_slice());
        assert_eq!(SignMethod::EcdsaHostHash(Hash::Sha384).input(b"abc").len(), 48);
        assert_eq!(SignMethod::EcdsaInToken(Hash::Sha256).input(b"abc"), b"abc");
    }

    #[test]
    fn an_empty_token_offers_nothing_and_says_so() {
        let m = Mechanisms::default();
        assert_eq!(m.sign_method(KeyType::EcP256), None);
        assert_eq!(m.keygen(KeyType::Rsa2048).unwrap_err(), "no CKM_RSA_PKCS_KEY_PAIR_GEN");
        assert_eq!(m.offered_names(), "no signing or key-pair generation mechanism");
    }
}

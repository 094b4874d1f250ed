//! Key generation inside the token, lookup by URI, and reading public keys and security attributes.

use super::{Hsm, HsmError, KeyUri};
use crate::pki::KeyType;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::{Decode, Encode};
use serde::Serialize;

const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// A key pair in the token, as the station sees it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub uri: KeyUri,
    pub key_type: KeyType,
    /// The raw public key as rcgen wants it: the uncompressed EC point, or a PKCS#1 RSAPublicKey.
    pub public_raw: Vec<u8>,
    pub(super) private: ObjectHandle,
}

/// The security attributes of a private key (`station hsm status`, audits).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyAttributes {
    pub label: String,
    pub key_type: Option<String>,
    pub token: bool,
    pub private: bool,
    pub sensitive: bool,
    pub always_sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub sign: bool,
    pub decrypt: bool,
    pub unwrap: bool,
    pub derive: bool,
}

impl KeyAttributes {
    /// True when the key can sign and nothing else, and its value can never leave the token.
    pub fn is_locked_down(&self) -> bool {
        self.token
            && self.private
            && self.sensitive
            && self.always_sensitive
            && !self.extractable
            && self.never_extractable
            && self.sign
            && !self.decrypt
            && !self.unwrap
            && !self.derive
    }
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    exponent: der::asn1::UintRef<'a>,
}

impl Hsm {
    /// Generates a sign-only key pair inside the token, labelled `label`.
    pub fn generate_key(&self, label: &str, key_type: KeyType) -> Result<KeyInfo, HsmError> {
        let id: [u8; 16] = rand::random();
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                Attribute::Private(private),
            ]
        };
        let mut public = common(false);
        public.extend([
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
        ]);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::SignRecover(false),
        ]);
        let mechanism = match key_type {
            KeyType::EcP256 | KeyType::EcP384 => {
                let oid = if key_type == KeyType::EcP256 { P256_OID } else { P384_OID };
                public.push(Attribute::EcParams(oid.to_vec()));
                Mechanism::EccKeyPairGen
            }
            _ => {
                public.push(Attribute::ModulusBits(key_type.rsa_bits().into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let uri = KeyUri { id: None, ..KeyUri::new(self.token_label(), label) };
        self.with_session(|s| {
            if !find(s, &[Attribute::Label(label.as_bytes().to_vec())])?.is_empty() {
                return Err(HsmError::KeyExists { label: label.into(), token: self.token_label().into() });
            }
            let (pubh, privh) =
                s.generate_key_pair(&mechanism, &public, &private).map_err(HsmError::ck("C_GenerateKeyPair"))?;
            let (kt, raw) = read_public(s, pubh, &uri)?;
            Ok(KeyInfo { uri: uri.clone(), key_type: kt, public_raw: raw, private: privh })
        })
    }

    /// Finds the key pair a URI names.
    pub fn find_key(&self, uri: &KeyUri) -> Result<KeyInfo, HsmError> {
        if uri.token != self.token_label() {
            return Err(HsmError::KeyMissing {
                uri: format!("{uri} (the configured token is {:?})", self.token_label()),
            });
        }
        let missing = || HsmError::KeyMissing { uri: uri.to_string() };
        self.with_session(|s| {
            let mut tmpl = vec![Attribute::Label(uri.object.as_bytes().to_vec())];
            if let Some(id) = &uri.id {
                tmpl.push(Attribute::Id(id.clone()));
            }
            let with_class = |class| [tmpl.clone(), vec![Attribute::Class(class)]].concat();
            let privh = one(find(s, &with_class(ObjectClass::PRIVATE_KEY))?, uri)?.ok_or_else(missing)?;
            let pubh = one(find(s, &with_class(ObjectClass::PUBLIC_KEY))?, uri)?.ok_or_else(missing)?;
            let (key_type, public_raw) = read_public(s, pubh, uri)?;
            Ok(KeyInfo { uri: uri.clone(), key_type, public_raw, private: privh })
        })
    }

    /// The security attributes of every private key in the token.
    pub fn list_private_keys(&self) -> Result<Vec<KeyAttributes>, HsmError> {
        self.with_session(|s| {
            let handles = find(s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
            handles.into_iter().map(|h| read_attributes(s, h)).collect()
        })
    }
}

fn find(s: &Session, tmpl: &[Attribute]) -> Result<Vec<ObjectHandle>, HsmError> {
    s.find_objects(tmpl).map_err(HsmError::ck("C_FindObjects"))
}

fn one(handles: Vec<ObjectHandle>, uri: &KeyUri) -> Result<Option<ObjectHandle>, HsmError> {
    match handles.len() {
        0 => Ok(None),
        1 => Ok(handles.into_iter().next()),
        n => Err(HsmError::KeyUnusable {
            uri: uri.to_string(),
            problem: format!("{n} objects match; add id= to the URI"),
        }),
    }
}

fn read_public(s: &Session, h: ObjectHandle, uri: &KeyUri) -> Result<(KeyType, Vec<u8>), HsmError> {
    let unusable = |problem: String| HsmError::KeyUnusable { uri: uri.to_string(), problem };
    let attrs = s
        .get_attributes(
            h,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(HsmError::ck("C_GetAttributeValue"))?;
    let (mut kt, mut params, mut point, mut n, mut e) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kt = Some(k),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    match kt {
        Some(CkKeyType::EC) => {
            let params = params.ok_or_else(|| unusable("no CKA_EC_PARAMS".into()))?;
            let key_type = match params.as_slice() {
                P256_OID => KeyType::EcP256,
                P384_OID => KeyType::EcP384,
                _ => return Err(unusable("unsupported curve".into())),
            };
            let point = point.ok_or_else(|| unusable("no CKA_EC_POINT".into()))?;
            // CKA_EC_POINT is a DER OCTET STRING wrapping the uncompressed point.
            let raw = der::asn1::OctetString::from_der(&point).map(|o| o.as_bytes().to_vec()).unwrap_or(point);
            Ok((key_type, raw))
        }
        Some(CkKeyType::RSA) => {
            let (n, e) =
                (n.ok_or_else(|| unusable("no modulus".into()))?, e.ok_or_else(|| unusable("no exponent".into()))?);
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            let key_type =
                KeyType::from_rsa_bits(bits).ok_or_else(|| unusable(format!("RSA-{bits} is not supported")))?;
            let der = rsa_public_der(&n, &e).map_err(|e| unusable(e.to_string()))?;
            Ok((key_type, der))
        }
        _ => Err(unusable("not an EC or RSA key".into())),
    }
}

fn rsa_public_der(n: &[u8], e: &[u8]) -> der::Result<Vec<u8>> {
    RsaPublicKey { modulus: der::asn1::UintRef::new(n)?, exponent: der::asn1::UintRef::new(e)? }.to_der()
}

fn read_attributes(s: &Session, h: ObjectHandle) -> Result<KeyAttributes, HsmError> {
    use AttributeType as T;
    let wanted = [
        T::Label,
        T::KeyType,
        T::Token,
        T::Private,
        T::Sensitive,
        T::AlwaysSensitive,
        T::Extractable,
        T::NeverExtractable,
        T::Sign,
        T::Decrypt,
        T::Unwrap,
        T::Derive,
    ];
    let mut k = KeyAttributes {
        label: String::new(),
        key_type: None,
        token: false,
        private: false,
        sensitive: false,
        always_sensitive: false,
        extractable: true,
        never_extractable: false,
        sign: false,
        decrypt: true,
        unwrap: true,
        derive: true,
    };
    for a in s.get_attributes(h, &wanted).map_err(HsmError::ck("C_GetAttributeValue"))? {
        match a {
            Attribute::Label(l) => k.label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::KeyType(t) => k.key_type = Some(t.to_string()),
            Attribute::Token(b) => k.token = b,
            Attribute::Private(b) => k.private = b,
            Attribute::Sensitive(b) => k.sensitive = b,
            Attribute::AlwaysSensitive(b) => k.always_sensitive = b,
            Attribute::Extractable(b) => k.extractable = b,
            Attribute::NeverExtractable(b) => k.never_extractable = b,
            Attribute::Sign(b) => k.sign = b,
            Attribute::Decrypt(b) => k.decrypt = b,
            Attribute::Unwrap(b) => k.unwrap = b,
            Attribute::Derive(b) => k.derive = b,
            _ => {}
        }
    }
    Ok(k)
}

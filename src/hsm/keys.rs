//! Key generation inside the token, lookup by URI, and reading public keys and security attributes.

use super::error::Step;
use super::{Hsm, HsmError, KeyUri};
use crate::pki::KeyType;
use cryptoki::error::RvError;
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
    /// What makes this key weaker than a sign-only key whose value never leaves the token; empty when none.
    pub fn weaknesses(&self) -> Vec<&'static str> {
        [
            (!self.token, "not a token object"),
            (!self.private, "not private"),
            (!self.sensitive, "not sensitive"),
            (!self.always_sensitive, "not always sensitive"),
            (self.extractable, "extractable"),
            (!self.never_extractable, "was extractable"),
            (!self.sign, "cannot sign"),
            (self.decrypt, "can decrypt"),
            (self.unwrap, "can unwrap"),
            (self.derive, "can derive"),
        ]
        .into_iter()
        .filter_map(|(weak, what)| weak.then_some(what))
        .collect()
    }

    /// True when the key can sign and nothing else, and its value can never leave the token.
    pub fn is_locked_down(&self) -> bool {
        self.weaknesses().is_empty()
    }
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    exponent: der::asn1::UintRef<'a>,
}

/// The attributes every key the station generates carries.
fn common(label: &str, id: &[u8], private: bool) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Private(private),
    ]
}

/// The private key template. Only what the station needs: sensitive, never extractable, able to sign.
/// `strict` also says no to decrypt, unwrap, derive and sign-recover (SoftHSM turns decrypt and unwrap on
/// unless told); a token that refuses those attributes gets the plain template, and the read-back judges.
fn private_template(label: &str, id: &[u8], strict: bool) -> Vec<Attribute> {
    let mut t = common(label, id, true);
    t.extend([Attribute::Sensitive(true), Attribute::Extractable(false), Attribute::Sign(true)]);
    if strict {
        t.extend([
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::SignRecover(false),
        ]);
    }
    t
}

/// The public key template: the curve or the modulus, and no usage attributes at all (the station verifies
/// signatures itself; tpm2-pkcs11 ties CKA_VERIFY to CKA_DECRYPT and refuses VERIFY without ENCRYPT).
fn public_template(label: &str, id: &[u8], key_type: KeyType) -> Vec<Attribute> {
    let mut t = common(label, id, false);
    match key_type {
        KeyType::EcP256 => t.push(Attribute::EcParams(P256_OID.to_vec())),
        KeyType::EcP384 => t.push(Attribute::EcParams(P384_OID.to_vec())),
        _ => t.extend([
            Attribute::ModulusBits(key_type.rsa_bits().into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ]),
    }
    t
}

/// A token that refused the strict template (not the mechanism or the key size).
fn template_refused(e: &HsmError) -> bool {
    matches!(
        e.rv(),
        Some(
            RvError::TemplateInconsistent
                | RvError::TemplateIncomplete
                | RvError::AttributeValueInvalid
                | RvError::AttributeTypeInvalid
                | RvError::AttributeReadOnly
        )
    )
}

impl Hsm {
    /// Generates a sign-only key pair inside the token, labelled `label`, then reads back what the token
    /// made: a key of another type or size, or one that is extractable, not sensitive, or can decrypt,
    /// unwrap or derive, is destroyed again and refused (`hsm-key-weak`).
    pub fn generate_key(&self, label: &str, key_type: KeyType) -> Result<KeyInfo, HsmError> {
        let mechanism = self.keygen_mechanism(key_type)?;
        let id: [u8; 16] = rand::random();
        let uri = KeyUri { id: None, ..KeyUri::new(self.token_label(), label) };
        let public = public_template(label, &id, key_type);
        self.with_session(|s| {
            if !find(s, &[Attribute::Label(label.as_bytes().to_vec())])?.is_empty() {
                return Err(HsmError::KeyExists { label: label.into(), token: self.token_label().into() });
            }
            let generate = |strict| {
                s.generate_key_pair(&mechanism, &public, &private_template(label, &id, strict))
                    .map_err(HsmError::ck(Step::Generate, "C_GenerateKeyPair"))
            };
            let (pubh, privh) = match generate(true) {
                Err(e) if template_refused(&e) => {
                    tracing::info!(token = %self.token_label(), error = %e, "the token refused the strict key template; using the plain one");
                    generate(false)?
                }
                other => other?,
            };
            let checked = self.check_generated(s, label, key_type, pubh, privh, &uri);
            if checked.is_err() {
                for h in [privh, pubh] {
                    if let Err(e) = s.destroy_object(h) {
                        tracing::error!(label, error = %e, "cannot destroy a refused key; remove it with the token's tools");
                    }
                }
            }
            checked
        })
    }

    fn check_generated(
        &self,
        s: &Session,
        label: &str,
        wanted: KeyType,
        pubh: ObjectHandle,
        privh: ObjectHandle,
        uri: &KeyUri,
    ) -> Result<KeyInfo, HsmError> {
        let weak =
            |problems: String| HsmError::KeyWeak { label: label.into(), token: self.token_label().into(), problems };
        let (made, public_raw) = read_public(s, pubh, uri)?;
        if made != wanted {
            return Err(weak(format!("it is {made}, not {wanted}")));
        }
        let problems = read_attributes(s, privh)?.weaknesses();
        if !problems.is_empty() {
            return Err(weak(format!("the private key is {}", problems.join(", "))));
        }
        Ok(KeyInfo { uri: uri.clone(), key_type: made, public_raw })
    }

    /// Finds the key pair a URI names.
    pub fn find_key(&self, uri: &KeyUri) -> Result<KeyInfo, HsmError> {
        self.check_token(uri)?;
        self.with_session(|s| {
            let (_, pubh) = find_pair(s, uri)?;
            let (key_type, public_raw) = read_public(s, pubh, uri)?;
            Ok(KeyInfo { uri: uri.clone(), key_type, public_raw })
        })
    }

    /// Destroys the key pair a URI names (a CA whose creation failed after its key was made).
    pub fn destroy_key(&self, uri: &KeyUri) -> Result<(), HsmError> {
        self.check_token(uri)?;
        self.with_session(|s| {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for h in find(s, &with_class(uri, class))? {
                    s.destroy_object(h).map_err(HsmError::ck(Step::DestroyKey, "C_DestroyObject"))?;
                }
            }
            Ok(())
        })
    }

    fn check_token(&self, uri: &KeyUri) -> Result<(), HsmError> {
        if uri.token != self.token_label() {
            return Err(HsmError::KeyMissing {
                uri: format!("{uri} (the configured token is {:?})", self.token_label()),
            });
        }
        Ok(())
    }

    /// The security attributes of every private key in the token.
    pub fn list_private_keys(&self) -> Result<Vec<KeyAttributes>, HsmError> {
        self.with_session(|s| {
            let handles = find(s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
            handles.into_iter().map(|h| read_attributes(s, h)).collect()
        })
    }
}

/// The template that finds a URI's object of one class.
fn with_class(uri: &KeyUri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class), Attribute::Label(uri.object.as_bytes().to_vec())];
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

/// The (private, public) handles of the pair a URI names, in this session's module generation.
pub(super) fn find_pair(s: &Session, uri: &KeyUri) -> Result<(ObjectHandle, ObjectHandle), HsmError> {
    let missing = || HsmError::KeyMissing { uri: uri.to_string() };
    let privh = one(find(s, &with_class(uri, ObjectClass::PRIVATE_KEY))?, uri)?.ok_or_else(missing)?;
    let pubh = one(find(s, &with_class(uri, ObjectClass::PUBLIC_KEY))?, uri)?.ok_or_else(missing)?;
    Ok((privh, pubh))
}

fn find(s: &Session, tmpl: &[Attribute]) -> Result<Vec<ObjectHandle>, HsmError> {
    s.find_objects(tmpl).map_err(HsmError::ck(Step::FindKey, "C_FindObjects"))
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

pub(super) fn read_public(s: &Session, h: ObjectHandle, uri: &KeyUri) -> Result<(KeyType, Vec<u8>), HsmError> {
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
        .map_err(HsmError::ck(Step::ReadKey, "C_GetAttributeValue"))?;
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
    for a in s.get_attributes(h, &wanted).map_err(HsmError::ck(Step::ReadKey, "C_GetAttributeValue"))? {
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

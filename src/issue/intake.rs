//! CSR intake: size, PEM or DER, parse, self-signature, and the key checked against policy.
//! Only the public key is taken; nothing else the CSR asks for reaches the certificate.

use super::IssueError;
use crate::pki::{DeviceKeyType, KeyType, sha256_hex};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// The largest CSR accepted, in bytes.
pub const MAX_CSR: usize = 8 * 1024;

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// What the station takes from a CSR.
#[derive(Debug, Clone)]
pub struct DeviceCsr {
    pub key_type: DeviceKeyType,
    /// The raw public key (EC point or PKCS#1 RSAPublicKey).
    pub public_raw: Vec<u8>,
    /// Hex SHA-256 of the DER SubjectPublicKeyInfo: the key's identity in the ledger.
    pub spki_sha256: String,
    /// The subject CN, if the CSR has one (used only as the serial in `device` mode).
    pub cn: Option<String>,
}

/// Parses and checks a CSR against the allowed key types.
pub fn parse_csr(bytes: &[u8], allowed: &[KeyType]) -> Result<DeviceCsr, IssueError> {
    if bytes.len() > MAX_CSR {
        return Err(IssueError::CsrTooLarge { size: bytes.len(), limit: MAX_CSR });
    }
    let der = to_der(bytes)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| IssueError::CsrMalformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IssueError::CsrMalformed("trailing bytes after the CSR".into()));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    // The key is judged first, so a weak or foreign key is named as such rather than as a bad signature.
    let key_type = key_type(spki)?;
    if !allowed.contains(&key_type) {
        let allowed = allowed.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
        return Err(IssueError::KeyTypeNotAllowed { found: key_type.to_string(), allowed });
    }
    csr.verify_signature().map_err(|e| IssueError::CsrBadSignature(e.to_string()))?;
    let cn = info
        .subject
        .iter_common_name()
        .next()
        .map(|a| a.as_str().map(str::to_string).map_err(|_| IssueError::CsrMalformed("CN is not a string".into())))
        .transpose()?;
    let public_raw = spki.subject_public_key.data.to_vec();
    // The key's identity is the SPKI as the certificate will carry it (normalised by key type), so two
    // encodings of one key in two CSRs are still one key.
    let normalised = rcgen::PublicKeyData::subject_public_key_info(&super::DeviceKey { key_type, raw: &public_raw });
    Ok(DeviceCsr { key_type, spki_sha256: sha256_hex(&normalised), public_raw, cn })
}

fn to_der(bytes: &[u8]) -> Result<Vec<u8>, IssueError> {
    let trimmed = bytes.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let p = pem::parse(trimmed).map_err(|e| IssueError::CsrMalformed(e.to_string()))?;
    match p.tag() {
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Ok(p.into_contents()),
        other => Err(IssueError::CsrMalformed(format!("PEM block is {other:?}, not CERTIFICATE REQUEST"))),
    }
}

/// The key type, from the SPKI itself (never from the CSR's signature algorithm), checked for
/// consistency: the declared algorithm must match the key's actual shape.
fn key_type(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyType, IssueError> {
    let alg = spki.algorithm.algorithm.to_id_string();
    let parsed = spki.parsed().map_err(|e| IssueError::CsrMalformed(format!("public key: {e}")))?;
    match (alg.as_str(), parsed) {
        (EC_PUBLIC_KEY, PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let (kt, len) = match curve.as_str() {
                P256 => (KeyType::EcP256, 65),
                P384 => (KeyType::EcP384, 97),
                other => {
                    return Err(IssueError::KeyTypeNotAllowed {
                        found: format!("EC curve {other}"),
                        allowed: "ec-p256, ec-p384".into(),
                    });
                }
            };
            let data = point.data();
            if data.len() != len || data.first() != Some(&0x04) {
                return Err(IssueError::CsrMalformed(format!("EC point of {} bytes does not fit {kt}", data.len())));
            }
            Ok(kt)
        }
        (RSA_ENCRYPTION, PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < 2048 {
                return Err(IssueError::KeyTooWeak(format!("RSA-{bits}")));
            }
            KeyType::from_rsa_bits(bits).ok_or_else(|| IssueError::KeyTypeNotAllowed {
                found: format!("RSA-{bits}"),
                allowed: "RSA 2048, 3072 or 4096".into(),
            })
        }
        (EC_PUBLIC_KEY | RSA_ENCRYPTION, _) => {
            Err(IssueError::CsrMalformed("the public key does not match its declared algorithm".into()))
        }
        _ => Err(IssueError::KeyTypeNotAllowed { found: oid_name(&alg), allowed: "EC P-256/P-384, RSA".into() }),
    }
}

fn oid_name(oid: &str) -> String {
    match oid {
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        other => format!("algorithm {other}"),
    }
}

//! Reading certificates back (x509-parser), for import checks, `ca show` and audits.

use super::{PkiError, sha256_hex};
use ::time::OffsetDateTime;
use serde::Serialize;
use x509_parser::prelude::*;

/// What the station needs to know about a certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Certificate serial, lower-case hex.
    pub serial_hex: String,
    #[serde(with = "::time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "::time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub key_cert_sign: bool,
    /// SHA-256 of the DER: the fingerprint, and the AWS IoT certificate ID.
    pub fingerprint: String,
    /// DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub spki_der: Vec<u8>,
    pub self_signed: bool,
}

/// Parses a DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate("trailing bytes after the certificate".into()));
    }
    let tbs = &cert.tbs_certificate;
    let (is_ca, key_cert_sign) = (
        tbs.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca),
        tbs.key_usage().ok().flatten().is_some_and(|ku| ku.value.key_cert_sign()),
    );
    let self_signed = tbs.subject == tbs.issuer && cert.verify_signature(None).is_ok();
    Ok(CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial_hex: hex::encode(tbs.raw_serial()),
        not_before: tbs.validity.not_before.to_datetime(),
        not_after: tbs.validity.not_after.to_datetime(),
        is_ca,
        key_cert_sign,
        fingerprint: sha256_hex(der),
        spki_der: tbs.subject_pki.raw.to_vec(),
        self_signed,
    })
}

impl CertInfo {
    /// Refuses a certificate that cannot act as a CA now.
    pub fn check_usable_ca(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        if !self.is_ca || !self.key_cert_sign {
            return Err(PkiError::NotACa(format!(
                "{} has CA={} keyCertSign={}",
                self.subject, self.is_ca, self.key_cert_sign
            )));
        }
        if now < self.not_before || now > self.not_after {
            return Err(PkiError::NotValidNow {
                not_before: rfc3339(self.not_before),
                not_after: rfc3339(self.not_after),
            });
        }
        Ok(())
    }
}

/// Does `child` carry a valid signature by the key in `issuer`?
pub fn signed_by(child_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, child)), Ok((_, issuer))) =
        (X509Certificate::from_der(child_der), X509Certificate::from_der(issuer_der))
    else {
        return false;
    };
    child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// RFC 3339 in UTC, the one time format the station prints and stores.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(::time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Verifies a signature made by the key in `spki_der` the way the station's HSM signs: ECDSA (DER)
/// with SHA-256 for P-256 or SHA-384 for P-384, RSA PKCS#1 v1.5 with SHA-256.
pub fn verify_with_spki(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use ring::signature as rs;
    let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der) else { return false };
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    let alg: &dyn rs::VerificationAlgorithm = match (spki.algorithm.algorithm.to_id_string().as_str(), curve.as_deref())
    {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => &rs::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &rs::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.113549.1.1.1", _) => &rs::RSA_PKCS1_2048_8192_SHA256,
        _ => return false,
    };
    rs::UnparsedPublicKey::new(alg, &spki.subject_public_key.data).verify(msg, sig).is_ok()
}

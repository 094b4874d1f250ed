//! Certificate templates for CAs and for AWS IoT's verification certificate.

use crate::Result;
use crate::hsm::HsmKey;
use crate::pki::PkiError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A random positive certificate serial with 127 bits of entropy (RFC 5280: ≤ 20 octets, positive).
pub fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 1;
    }
    SerialNumber::from_slice(&b)
}

/// A CA profile: CA:TRUE pathlen:0 (critical), keyCertSign + cRLSign, SKI, random serial, the DN and validity.
pub fn ca_params(dn: DistinguishedName, days: u32) -> Result<CertificateParams> {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.serial_number = Some(random_serial());
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days.into());
    Ok(p)
}

/// AWS IoT's verification certificate: CN = the registration code, a throwaway key, signed by the CA key.
pub fn verification_cert(ca_cert_der: &[u8], ca_key: &HsmKey, registration_code: &str) -> Result<String> {
    if registration_code.is_empty()
        || registration_code.len() > 64
        || !registration_code.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(crate::Error::usage(
            "registration-code-invalid",
            format!("registration code {registration_code:?} is not valid"),
            "pass the code from `aws iot get-registration-code` (hex, up to 64 characters)",
        ));
    }
    let issuer = Issuer::from_ca_cert_der(&ca_cert_der.into(), ca_key).map_err(|e| PkiError::Build(e.to_string()))?;
    let throwaway = rcgen::KeyPair::generate().map_err(|e| PkiError::Build(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, registration_code);
    p.serial_number = Some(random_serial());
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(30);
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&throwaway, &issuer).map_err(super::signing_error)?;
    Ok(cert.pem())
}

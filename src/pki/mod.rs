//! X.509 pieces shared by the CA, issuance and audit code: key types, DN strings, fingerprints,
//! certificate inspection. Pure functions, no I/O.

mod dn;
mod inspect;
pub mod serial;

pub use dn::parse_dn;
pub use inspect::*;
pub use serial::SerialRule;
/// The key types the station generates (CA) and accepts (devices): the protocol's names (spec 3.3).
pub use station_protocol::KeyType;

/// Device keys come in the same types; the alias keeps call sites honest about which side they mean.
pub type DeviceKeyType = KeyType;

/// The signature algorithm a key of this type signs certificates with.
pub fn signature_algorithm(key_type: KeyType) -> &'static rcgen::SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

use crate::error::{Coded, exit};

/// A certificate or name that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("subject {input:?} is not valid: {problem}")]
    BadSubject { input: String, problem: String },
    #[error("cannot parse certificate: {0}")]
    BadCertificate(String),
    #[error("certificate is not a CA: {0}")]
    NotACa(String),
    #[error("certificate is not valid now (valid {not_before} to {not_after})")]
    NotValidNow { not_before: String, not_after: String },
    #[error("building the certificate failed: {0}")]
    Build(String),
}

impl Coded for PkiError {
    fn code(&self) -> &'static str {
        match self {
            PkiError::BadSubject { .. } => "subject-invalid",
            PkiError::BadCertificate(_) => "cert-unparseable",
            PkiError::NotACa(_) => "cert-not-a-ca",
            PkiError::NotValidNow { .. } => "cert-not-valid-now",
            PkiError::Build(_) => "cert-build-failed",
        }
    }
    fn hint(&self) -> String {
        match self {
            PkiError::BadSubject { .. } => {
                "write the subject as comma-separated RDNs, e.g. \"CN=Factory CA 2026,O=Example Ltd,C=DE\"".into()
            }
            PkiError::BadCertificate(_) => "give a PEM or DER X.509 certificate".into(),
            PkiError::NotACa(_) => {
                "import the certificate the root signed for this CA's CSR (CA:TRUE, keyCertSign)".into()
            }
            PkiError::NotValidNow { .. } => "check the clock, or have the root sign a certificate valid now".into(),
            PkiError::Build(_) => "this is a bug or an HSM fault; the log has details".into(),
        }
    }
    fn retryable(&self) -> bool {
        match self {
            PkiError::BadSubject { .. }
            | PkiError::BadCertificate(_)
            | PkiError::NotACa(_)
            | PkiError::NotValidNow { .. }
            | PkiError::Build(_) => false,
        }
    }
    fn exit_status(&self) -> i32 {
        exit::CA
    }
}

/// Lower-case hex SHA-256. Of a certificate's DER this is its fingerprint and its AWS IoT certificate ID.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// PEM armour for one certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The certificates in a PEM bundle (or a single DER certificate), as DER.
pub fn certs_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![bytes.to_vec()]);
    }
    let pems = pem::parse_many(bytes).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let certs: Vec<Vec<u8>> =
        pems.into_iter().filter(|p| p.tag() == "CERTIFICATE").map(|p| p.into_contents()).collect();
    if certs.is_empty() {
        return Err(PkiError::BadCertificate("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

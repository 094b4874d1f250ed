//! The few certificate helpers a device needs: PEM in and out, the SHA-256 the protocol names, a signature check.

use x509_parser::prelude::{FromDer, X509Certificate};

/// Lower-case hex SHA-256, as CHAIN.sha256 and STORED.sha256 carry it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// PEM armour for one certificate, LF line endings (the protocol's CHAIN is strict PEM).
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The certificates in a PEM bundle (or a single DER certificate), as DER.
pub fn certs_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.starts_with(&[0x30]) {
        return Ok(vec![bytes.to_vec()]);
    }
    let pems = pem::parse_many(bytes).map_err(|e| format!("cannot parse certificate: {e}"))?;
    let certs: Vec<Vec<u8>> =
        pems.into_iter().filter(|p| p.tag() == "CERTIFICATE").map(|p| p.into_contents()).collect();
    if certs.is_empty() {
        return Err("cannot parse certificate: no CERTIFICATE block found".into());
    }
    Ok(certs)
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

//! The device's key pair, made in software, and its PKCS#10 requests.

use super::args::KeyTypeArg;
use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
use zeroize::Zeroizing;

/// A device key pair. `Debug` shows the type only, never the key.
pub(crate) struct DeviceKey {
    kind: KeyTypeArg,
    pair: KeyPair,
    /// A request made ahead of time (`--pregenerate`), with the CN it carries.
    made: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A fresh key pair from the OS random source.
    pub fn generate(kind: KeyTypeArg) -> Result<DeviceKey, String> {
        let pair = match kind {
            KeyTypeArg::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?,
            KeyTypeArg::Rsa2048 => rsa_2048()?,
        };
        Ok(DeviceKey { kind, pair, made: None })
    }

    /// Makes the request for `cn` now, as a device that prepared it before it reached the bench; `csr_der(cn)`
    /// then returns it without signing again.
    pub fn prepare_csr(&mut self, cn: &str) -> Result<(), String> {
        self.made = None;
        let der = self.csr_der(cn)?;
        self.made = Some((cn.to_string(), der));
        Ok(())
    }

    pub fn kind(&self) -> KeyTypeArg {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo, as a certificate for this key carries it.
    pub fn spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), wiped from memory when dropped.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.serialize_pem())
    }

    /// A PKCS#10 request signed by this key, DER, with subject CN = `cn` (the station ignores all but the key).
    pub fn csr_der(&self, cn: &str) -> Result<Vec<u8>, String> {
        if let Some((made_for, der)) = &self.made
            && made_for == cn
        {
            return Ok(der.clone());
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        let csr = params.serialize_request(&self.pair).map_err(|e| e.to_string())?;
        Ok(csr.der().to_vec())
    }

    /// The same request with its signature damaged: one bit of the last byte, which lies inside the signature
    /// BIT STRING (the last field of a CertificationRequest). The DER still parses; the signature does not verify.
    pub fn bad_csr_der(&self, cn: &str) -> Result<Vec<u8>, String> {
        let mut der = self.csr_der(cn)?;
        let last = der.last_mut().ok_or("empty CSR")?;
        *last ^= 0x01;
        Ok(der)
    }
}

/// RSA-2048 with the `rsa` crate (ring cannot generate RSA keys), handed to rcgen as PKCS#8 DER.
fn rsa_2048() -> Result<KeyPair, String> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    KeyPair::try_from(der.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn check(kind: KeyTypeArg) {
        let key = DeviceKey::generate(kind).expect("key");
        let der = key.csr_der("SIM-000001").expect("csr");
        let (_, csr) = X509CertificationRequest::from_der(&der).expect("parses");
        csr.verify_signature().expect("good signature");
        assert_eq!(csr.certification_request_info.subject_pki.raw, key.spki_der().as_slice());
        let bad = key.bad_csr_der("SIM-000001").expect("csr");
        let (_, bad) = X509CertificationRequest::from_der(&bad).expect("still parses");
        assert!(bad.verify_signature().is_err(), "{kind:?}: the damaged signature must not verify");
        assert!(key.pkcs8_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn ec_p256_csr_verifies_and_the_bad_one_does_not() {
        check(KeyTypeArg::EcP256);
    }

    #[test]
    fn rsa_2048_csr_verifies_and_the_bad_one_does_not() {
        check(KeyTypeArg::Rsa2048);
    }
}

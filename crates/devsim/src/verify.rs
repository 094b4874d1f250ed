//! What a careful device checks in a CHAIN before it writes it to flash.

use super::{DevsimError, codes};
use crate::certs::{certs_from_bytes, sha256_hex, signed_by};
use station_protocol::Chain;
use std::path::Path;
use x509_parser::prelude::*;

/// A CA certificate the device trusts, DER.
pub(crate) struct TrustedCa {
    pub der: Vec<u8>,
}

/// A chain the device refuses: a stable code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// Reads `--ca`: one or more PEM certificates (e.g. the old and the new CA after a rotation).
pub(crate) fn load_cas(path: &Path) -> Result<Vec<TrustedCa>, DevsimError> {
    let bytes = std::fs::read(path).map_err(|source| DevsimError::CaRead { path: path.to_path_buf(), source })?;
    let invalid = |reason: String| DevsimError::CaInvalid { path: path.to_path_buf(), reason };
    let ders = certs_from_bytes(&bytes).map_err(invalid)?;
    for (i, der) in ders.iter().enumerate() {
        X509Certificate::from_der(der).map_err(|e| invalid(format!("certificate {} does not parse: {e}", i + 1)))?;
    }
    Ok(ders.into_iter().map(|der| TrustedCa { der }).collect())
}

/// Checks a CHAIN for this device:
/// - `sha256` is the hash of `chain`;
/// - the first certificate is for `own_spki` (this device's key), with CN = `chain.serial` (and serialNumber too, if
///   the subject has that attribute);
/// - `chain.serial` is the device's own serial, when it has one;
/// - the device certificate is valid now and signed by one of `cas`, and the chain's next certificate is that very
///   CA certificate (no mixed chain). A chain of the device certificate alone is accepted if a trusted CA signed it.
pub(crate) fn check_chain(
    chain: &Chain,
    own_spki: &[u8],
    own_serial: Option<&str>,
    cas: &[TrustedCa],
) -> Result<(), Refusal> {
    let computed = sha256_hex(chain.chain.as_bytes());
    if computed != chain.sha256 {
        let msg = format!("CHAIN.sha256 is {} but the chain hashes to {computed}", chain.sha256);
        return Err(refuse(codes::CHAIN_HASH_MISMATCH, msg));
    }
    let ders = certs_from_bytes(chain.chain.as_bytes()).map_err(|e| refuse(codes::CHAIN_UNPARSEABLE, e))?;
    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| refuse(codes::CHAIN_UNPARSEABLE, format!("certificate {} of the chain: {e}", i + 1)))?;
        certs.push(cert);
    }
    let device = certs.first().ok_or_else(|| refuse(codes::CHAIN_UNPARSEABLE, "the chain holds no certificate"))?;
    check_device_cert(device, own_spki, &chain.serial, own_serial)?;
    check_trust(device, &ders[0], ders.get(1).map(Vec::as_slice), cas)
}

fn check_device_cert(
    device: &X509Certificate<'_>,
    own_spki: &[u8],
    serial: &str,
    own_serial: Option<&str>,
) -> Result<(), Refusal> {
    if device.public_key().raw != own_spki {
        let msg = "the device certificate in CHAIN carries another public key than this device's";
        return Err(refuse(codes::CHAIN_KEY_MISMATCH, msg));
    }
    // CN is what brokers take as the identity (mosquitto's use_identity_as_username); the spec also puts the serial
    // in the subject's serialNumber attribute, which must agree when present.
    let cn = device.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default();
    if cn != serial {
        let msg = format!("the device certificate's CN is {cn:?} but CHAIN.serial is {serial:?}");
        return Err(refuse(codes::CHAIN_SERIAL_MISMATCH, msg));
    }
    let attr = device.subject().iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER).next();
    if let Some(attr) = attr.map(|a| a.as_str().unwrap_or_default()).filter(|a| *a != serial) {
        let msg = format!("the device certificate's serialNumber is {attr:?} but CHAIN.serial is {serial:?}");
        return Err(refuse(codes::CHAIN_SERIAL_MISMATCH, msg));
    }
    if let Some(own) = own_serial.filter(|own| *own != serial) {
        let msg = format!("this device's serial is {own:?} but CHAIN.serial is {serial:?}");
        return Err(refuse(codes::CHAIN_SERIAL_MISMATCH, msg));
    }
    if !device.validity().is_valid() {
        let v = device.validity();
        let msg = format!("the device certificate is valid from {} to {}, not now", v.not_before, v.not_after);
        return Err(refuse(codes::CHAIN_UNTRUSTED, msg));
    }
    Ok(())
}

fn check_trust(
    device: &X509Certificate<'_>,
    device_der: &[u8],
    chain_ca: Option<&[u8]>,
    cas: &[TrustedCa],
) -> Result<(), Refusal> {
    let signer = cas.iter().find(|ca| signed_by(device_der, &ca.der));
    let Some(signer) = signer else {
        let msg = format!(
            "the device certificate (issuer {}) is not signed by any of the {} CA certificate(s) in --ca",
            device.issuer(),
            cas.len()
        );
        return Err(refuse(codes::CHAIN_UNTRUSTED, msg));
    };
    match chain_ca {
        None => Ok(()),
        Some(ca) if ca == signer.der.as_slice() => Ok(()),
        Some(ca) => {
            let subject = X509Certificate::from_der(ca).map(|(_, c)| c.subject().to_string()).unwrap_or_default();
            let msg = format!(
                "the chain's CA certificate ({subject}) is not the trusted CA certificate that signed the device \
                 certificate"
            );
            Err(refuse(codes::CHAIN_UNTRUSTED, msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::KeyTypeArg;
    use crate::certs::cert_pem;
    use crate::keys::DeviceKey;
    use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    struct Fixture {
        ca: CertifiedIssuer<'static, KeyPair>,
        device: DeviceKey,
    }

    impl Fixture {
        fn new() -> Fixture {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, "Unit CA");
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, key).expect("CA");
            Fixture { ca, device: DeviceKey::generate(KeyTypeArg::EcP256).expect("device key") }
        }

        fn trusted(&self) -> Vec<TrustedCa> {
            vec![TrustedCa { der: self.ca.der().to_vec() }]
        }

        /// A chain for the device key with CN = `cn`, with or without the CA certificate.
        fn chain(&self, serial: &str, cn: &str, with_ca: bool) -> Chain {
            self.chain_with(serial, cn, None, with_ca)
        }

        fn chain_with(&self, serial: &str, cn: &str, serial_number: Option<&str>, with_ca: bool) -> Chain {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            if let Some(sn) = serial_number {
                params.distinguished_name.push(DnType::CustomDnType(vec![2, 5, 4, 5]), sn);
            }
            let spki = rcgen::SubjectPublicKeyInfo::from_der(&self.device.spki_der()).expect("spki");
            let cert = params.signed_by(&spki, &self.ca).expect("signed");
            let mut text = cert_pem(cert.der());
            if with_ca {
                text.push_str(&cert_pem(self.ca.der()));
            }
            Chain { serial: serial.into(), sha256: sha256_hex(text.as_bytes()), chain: text }
        }

        fn check(&self, chain: &Chain, own_serial: Option<&str>) -> Result<(), &'static str> {
            check_chain(chain, &self.device.spki_der(), own_serial, &self.trusted()).map_err(|r| r.code)
        }
    }

    #[test]
    fn a_chain_for_this_key_under_a_trusted_ca_is_accepted_with_or_without_the_ca_cert() {
        let f = Fixture::new();
        assert_eq!(f.check(&f.chain("SN-1", "SN-1", true), Some("SN-1")), Ok(()));
        assert_eq!(f.check(&f.chain("SN-1", "SN-1", false), None), Ok(()));
    }

    #[test]
    fn a_hash_that_does_not_match_the_chain_is_refused() {
        let f = Fixture::new();
        let mut chain = f.chain("SN-1", "SN-1", true);
        chain.sha256 = "0".repeat(64);
        assert_eq!(f.check(&chain, None), Err(codes::CHAIN_HASH_MISMATCH));
    }

    #[test]
    fn a_cn_other_than_the_serial_or_another_serial_than_the_devices_own_is_refused() {
        let f = Fixture::new();
        assert_eq!(f.check(&f.chain("SN-1", "SN-2", true), None), Err(codes::CHAIN_SERIAL_MISMATCH));
        assert_eq!(f.check(&f.chain("SN-1", "SN-1", true), Some("SN-9")), Err(codes::CHAIN_SERIAL_MISMATCH));
        let other_attr = f.chain_with("SN-1", "SN-1", Some("SN-2"), true);
        assert_eq!(f.check(&other_attr, None), Err(codes::CHAIN_SERIAL_MISMATCH));
        assert_eq!(f.check(&f.chain_with("SN-1", "SN-1", Some("SN-1"), true), None), Ok(()));
    }

    #[test]
    fn text_that_is_not_pem_certificates_is_unparseable() {
        let f = Fixture::new();
        let text = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string();
        let chain = Chain { serial: "SN-1".into(), sha256: sha256_hex(text.as_bytes()), chain: text };
        assert_eq!(f.check(&chain, None), Err(codes::CHAIN_UNPARSEABLE));
    }
}

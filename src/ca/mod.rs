//! CA lifecycle: create (key in the HSM, self-signed or as a CSR for an offline root), import the
//! root-signed certificate, make AWS IoT's verification certificate.

mod build;
mod error;
mod lifecycle;

pub use build::{ca_params, random_serial, verification_cert};
pub use error::CaError;
pub use lifecycle::{activate, retire};

use crate::Result;
use crate::hsm::{Hsm, HsmKey, KeyUri};
use crate::ledger::{CaRow, CaState, Ledger, now_text};
use crate::pki::{self, KeyType, PkiError};
use std::sync::Arc;

/// What `ca create` needs.
#[derive(Debug, Clone)]
pub struct NewCa {
    pub name: String,
    pub key_type: KeyType,
    pub subject: String,
    pub days: u32,
}

/// Creates a CA with a fresh HSM key and a self-signed certificate. The first CA becomes active. If
/// anything fails after the key was made, the key is removed from the token again.
pub fn create(hsm: &Arc<Hsm>, ledger: &mut Ledger, new: &NewCa) -> Result<CaRow> {
    let (key, dn) = prepare(hsm, ledger, new)?;
    remove_key_on_error(hsm, &key, || {
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::fail_point("ca-after-key")?;
        let params = ca_params(dn, new.days)?;
        let cert = params.self_signed(&key).map_err(signing_error)?;
        let info = pki::inspect(cert.der())?;
        let mut row = base_row(new, &key, &info.subject);
        fill_cert(&mut row, cert.der(), &info);
        row.state = ledger.insert_ca(&row, "ca-created")?;
        Ok(row)
    })
}

/// Creates a CA key and returns a CSR for an offline root to sign; the CA stays pending until `import`.
pub fn create_intermediate(hsm: &Arc<Hsm>, ledger: &mut Ledger, new: &NewCa) -> Result<(CaRow, String)> {
    let (key, dn) = prepare(hsm, ledger, new)?;
    remove_key_on_error(hsm, &key, || {
        let mut params = ca_params(dn, new.days)?;
        params.serial_number = None; // the root chooses the serial
        let csr = params.serialize_request(&key).map_err(signing_error)?;
        let csr_pem = csr.pem().map_err(|e| PkiError::Build(e.to_string()))?;
        let mut row = base_row(new, &key, &new.subject);
        row.state = CaState::Pending;
        row.state = ledger.insert_ca(&row, "ca-key-created")?;
        Ok((row, csr_pem))
    })
}

/// Runs the rest of a CA's creation; on failure the new key leaves the token again, so the name stays free.
fn remove_key_on_error<T>(hsm: &Hsm, key: &HsmKey, rest: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = rest();
    if let Err(e) = &result {
        match hsm.destroy_key(key.uri()) {
            Ok(()) => {
                tracing::info!(key = %key.uri(), error = %e, "CA not created; its new key was removed from the token")
            }
            Err(d) => {
                tracing::error!(key = %key.uri(), error = %d, "CA not created, and its new key could not be removed; remove it with the token's tools")
            }
        }
    }
    result
}

/// Adopts a CA key that is already in the token under the label `name` (a network HSM that several stations log
/// into, where one station made the key): records it as a pending CA, so that `import` can then store its
/// certificate after the same checks. The key stays where it is.
pub fn adopt_existing_key(hsm: &Arc<Hsm>, ledger: &mut Ledger, name: &str) -> Result<CaRow> {
    check_name(name)?;
    if ledger.ca(name)?.is_some() {
        return Err(CaError::NameTaken { name: name.into() }.into());
    }
    let key = HsmKey::open(hsm, &KeyUri::new(hsm.token_label(), name))?;
    let new = NewCa { name: name.into(), key_type: key.key_type(), subject: String::new(), days: 0 };
    let mut row = base_row(&new, &key, "");
    row.state = CaState::Pending;
    row.state = ledger.insert_ca(&row, "ca-key-adopted")?;
    Ok(row)
}

/// Stores the root-signed certificate for a pending CA after checking it: the public key must be the
/// HSM key, it must be a CA valid now, and it must verify under the chain given.
pub fn import(hsm: &Arc<Hsm>, ledger: &mut Ledger, name: &str, cert: &[u8], chain: Option<&[u8]>) -> Result<CaRow> {
    let mut row = ledger.ca(name)?.ok_or_else(|| CaError::NotFound { name: name.into() })?;
    if row.state != CaState::Pending {
        return Err(CaError::NotPending { name: name.into(), state: row.state.as_str() }.into());
    }
    let mut certs = pki::certs_from_bytes(cert)?;
    if let Some(c) = chain {
        certs.extend(pki::certs_from_bytes(c)?);
    }
    let ca_der = certs.remove(0);
    let info = pki::inspect(&ca_der)?;
    let key = HsmKey::open(hsm, &row.key_uri.parse::<KeyUri>()?)?;
    if !same_public_key(&info.spki_der, &key.spki_der()) {
        return Err(CaError::ImportKeyMismatch { name: name.into(), subject: info.subject }.into());
    }
    info.check_usable_ca(time::OffsetDateTime::now_utc())?;
    let (roots, intermediates): (Vec<_>, Vec<_>) =
        certs.into_iter().partition(|c| pki::inspect(c).map(|i| i.self_signed).unwrap_or(false));
    let mut path = vec![ca_der.clone()];
    path.extend(intermediates.iter().cloned());
    path.extend(roots.iter().cloned());
    for pair in path.windows(2) {
        if !pki::signed_by(&pair[0], &pair[1]) {
            let who = pki::inspect(&pair[0]).map(|i| i.subject).unwrap_or_default();
            return Err(CaError::ChainMismatch { name: name.into(), subject: who }.into());
        }
    }
    row.subject = info.subject.clone();
    fill_cert(&mut row, &ca_der, &info);
    row.chain_pem = intermediates.iter().map(|c| pki::cert_pem(c)).collect();
    row.root_pem = roots.iter().map(|c| pki::cert_pem(c)).collect();
    row.state = ledger.complete_ca(&row)?;
    Ok(row)
}

/// The signing key and stored row of a CA that has a certificate.
pub fn signing_key(hsm: &Arc<Hsm>, row: &CaRow) -> Result<HsmKey> {
    if row.cert_der.is_none() {
        return Err(CaError::WrongState {
            name: row.name.clone(),
            state: row.state.as_str(),
            wanted: "imported (ready or active)",
        }
        .into());
    }
    Ok(HsmKey::open(hsm, &row.key_uri.parse::<KeyUri>()?)?)
}

/// Looks a CA up by name.
pub fn find(ledger: &Ledger, name: &str) -> Result<CaRow> {
    Ok(ledger.ca(name)?.ok_or_else(|| CaError::NotFound { name: name.into() })?)
}

fn prepare(hsm: &Arc<Hsm>, ledger: &Ledger, new: &NewCa) -> Result<(HsmKey, rcgen::DistinguishedName)> {
    check_name(&new.name)?;
    if ledger.ca(&new.name)?.is_some() {
        return Err(CaError::NameTaken { name: new.name.clone() }.into());
    }
    let dn = pki::parse_dn(&new.subject)?;
    let info = hsm.generate_key(&new.name, new.key_type)?;
    Ok((HsmKey::from_info(hsm, info), dn))
}

fn check_name(name: &str) -> Result<(), CaError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('-');
    if ok { Ok(()) } else { Err(CaError::BadName { name: name.into() }) }
}

fn base_row(new: &NewCa, key: &HsmKey, subject: &str) -> CaRow {
    CaRow {
        name: new.name.clone(),
        key_uri: key.uri().to_string(),
        key_type: key.key_type().to_string(),
        state: CaState::Ready,
        subject: subject.into(),
        cert_der: None,
        fingerprint: None,
        not_before: None,
        not_after: None,
        chain_pem: String::new(),
        root_pem: String::new(),
        created_at: now_text(),
        activated_at: None,
        retired_at: None,
    }
}

fn fill_cert(row: &mut CaRow, der: &[u8], info: &pki::CertInfo) {
    row.cert_der = Some(der.to_vec());
    row.fingerprint = Some(info.fingerprint.clone());
    row.not_before = Some(pki::rfc3339(info.not_before));
    row.not_after = Some(pki::rfc3339(info.not_after));
}

/// rcgen reports HSM failures as `RemoteKeyError`; the real cause is this thread's last signing error.
pub(crate) fn signing_error(e: rcgen::Error) -> crate::Error {
    let cause = crate::hsm::take_sign_error();
    match (e, cause) {
        (rcgen::Error::RemoteKeyError, Some(hsm)) => hsm.into(),
        (e, _) => PkiError::Build(e.to_string()).into(),
    }
}

/// Compares two SubjectPublicKeyInfos by algorithm and key bits (encodings of parameters may differ).
pub fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::SubjectPublicKeyInfo;
    match (SubjectPublicKeyInfo::from_der(a), SubjectPublicKeyInfo::from_der(b)) {
        (Ok((_, a)), Ok((_, b))) => {
            a.algorithm.algorithm == b.algorithm.algorithm && a.subject_public_key.data == b.subject_public_key.data
        }
        _ => false,
    }
}

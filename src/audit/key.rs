//! The dedicated audit key (`[audit] key`): an HSM key in the CA's token that signs checkpoints and manifests, so
//! that audit evidence does not depend on a CA key (which then signs certificates only) and survives a rotation.
//!
//! `station audit key create` makes it with the same sign-only, sensitive, never-extractable template and read-back
//! as CA keys, and has the active CA issue it an audit certificate (CN "<station id> audit", keyUsage
//! digitalSignature only, CA:FALSE, no extended key usage), stored in the ledger (schema 5).

use super::error::{AuditError, label_ok};
use crate::Result;
use crate::hsm::{Hsm, HsmError, HsmKey, KeyUri};
use crate::issue::ActiveCa;
use crate::ledger::checkpoints::SignerKind;
use crate::ledger::{AuditKeyRow, Ledger, audit_keys, now_text};
use crate::pki::{self, KeyType};
use rcgen::{CertificateParams, DnType, IsCa, KeyUsagePurpose};
use std::sync::Arc;

/// An audit key, ready to sign.
#[derive(Debug)]
pub struct AuditKey {
    pub row: AuditKeyRow,
    pub key: HsmKey,
}

impl AuditKey {
    /// The audit key labelled `label`: its ledger row, and its key in the token, which must be the one its
    /// certificate carries. Either missing is `audit-key-missing`.
    pub fn load(hsm: &Arc<Hsm>, conn: &rusqlite::Connection, label: &str) -> Result<AuditKey> {
        let missing = |why: String| AuditError::KeyMissing { label: label.into(), why };
        let row =
            audit_keys::get(conn, label)?.ok_or_else(|| missing("the ledger has no audit key by that label".into()))?;
        let uri: KeyUri = row.key_uri.parse()?;
        let key = match HsmKey::open(hsm, &uri) {
            Ok(k) => k,
            Err(HsmError::KeyMissing { .. }) => return Err(missing(format!("the token has no key at {uri}")).into()),
            Err(e) => return Err(e.into()),
        };
        let cert = pki::inspect(&row.cert_der)?;
        if !crate::ca::same_public_key(&cert.spki_der, &key.spki_der()) {
            return Err(HsmError::KeyUnusable {
                uri: uri.to_string(),
                problem: "the key under this URI is not the one the audit certificate carries".into(),
            }
            .into());
        }
        Ok(AuditKey { row, key })
    }

    /// The configured audit key (`[audit] key`), if any.
    pub fn configured(
        cfg: &crate::config::Config,
        hsm: &Arc<Hsm>,
        conn: &rusqlite::Connection,
    ) -> Result<Option<Self>> {
        cfg.audit.key.as_deref().map(|label| AuditKey::load(hsm, conn, label)).transpose()
    }
}

/// Who signs a checkpoint: a CA's key, or the audit key.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    Ca { name: &'a str, key: &'a HsmKey },
    Audit(&'a AuditKey),
}

impl Signer<'_> {
    pub fn kind(&self) -> SignerKind {
        match self {
            Signer::Ca { .. } => SignerKind::Ca,
            Signer::Audit(_) => SignerKind::AuditKey,
        }
    }
    /// The CA's name or the audit key's label.
    pub fn name(&self) -> &str {
        match self {
            Signer::Ca { name, .. } => name,
            Signer::Audit(a) => &a.row.label,
        }
    }
    pub fn key(&self) -> &HsmKey {
        match self {
            Signer::Ca { key, .. } => key,
            Signer::Audit(a) => &a.key,
        }
    }
}

/// Makes an audit key labelled `label` in the token and has the active CA issue its certificate; stores both in the
/// ledger (with a chained `audit-key-created` event). A key whose certificate cannot be made or stored is destroyed.
pub fn create(
    hsm: &Arc<Hsm>,
    ledger: &mut Ledger,
    station_id: &str,
    label: &str,
    key_type: KeyType,
) -> Result<AuditKeyRow> {
    if !label_ok(label) {
        return Err(AuditError::BadLabel { label: label.into() }.into());
    }
    if ledger.audit_key(label)?.is_some() {
        return Err(AuditError::KeyExists { label: label.into() }.into());
    }
    let ca_row = ledger.active_ca()?.ok_or(crate::ca::CaError::NoneActive)?;
    let ca = ActiveCa::load(hsm, &ca_row, false)?;
    let key = HsmKey::from_info(hsm, hsm.generate_key(label, key_type)?);
    let stored = (|| {
        let der = certificate(&key, &ca, station_id)?;
        let row = AuditKeyRow {
            label: label.into(),
            key_uri: key.uri().to_string(),
            key_type: key_type.to_string(),
            fingerprint: pki::sha256_hex(&der),
            cert_der: der,
            ca_name: ca.name.clone(),
            created_at: now_text(),
        };
        ledger.insert_audit_key(&row)?;
        Ok(row)
    })();
    if stored.is_err()
        && let Err(e) = hsm.destroy_key(key.uri())
    {
        tracing::error!(label, error = %e, "cannot destroy the new audit key; remove it with the token's tools");
    }
    stored
}

/// The audit certificate: CN "<station id> audit", keyUsage digitalSignature (critical), CA:FALSE, no extended key
/// usage (it signs documents, not TLS), a random serial, valid until the CA's notAfter.
fn certificate(key: &HsmKey, ca: &ActiveCa, station_id: &str) -> Result<Vec<u8>> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, format!("{station_id} audit"));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(crate::ca::random_serial());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = ca.not_after;
    let cert = p.signed_by(key, &ca.issuer).map_err(crate::ca::signing_error)?;
    Ok(cert.der().to_vec())
}

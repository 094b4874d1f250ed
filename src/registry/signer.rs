//! Signs each batch's head in the HSM: the same `station-checkpoint-v1` text a ledger checkpoint signs, so the
//! registry holds proof of what the station's chain was, not only rows. With `[audit] key` the audit key signs (CA
//! keys then sign certificates only, as for checkpoints); without it, the active CA's key.

use crate::Result;
use crate::audit::key::{AuditKey, Signer};
use crate::ca::{self, CaError};
use crate::hsm::{Hsm, HsmKey};
use crate::ledger::checkpoints::Head;
use crate::ledger::{CaRow, Ledger};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A signed head, and the certificates to verify it with: the CA's, and the audit key's when it signed.
#[derive(Debug, Clone)]
pub struct SignedHead {
    pub text: String,
    pub signature_hex: String,
    /// The CA whose key signed, or that issued the audit certificate.
    pub ca_name: String,
    pub ca_fingerprint: String,
    pub ca_subject: String,
    pub ca_cert_der: Vec<u8>,
    pub audit: Option<AuditSigner>,
}

/// The audit key that signed a head.
#[derive(Debug, Clone)]
pub struct AuditSigner {
    pub label: String,
    pub fingerprint: String,
    pub cert_der: Vec<u8>,
}

/// The station's head signer: the active CA's key, looked up again when `ca activate` switched it.
pub struct HeadSigner {
    hsm: Arc<Hsm>,
    ledger_path: PathBuf,
    key: Mutex<Option<(CaRow, Arc<HsmKey>)>>,
    /// `[audit] key`: its label, and once loaded the key with the CA that issued its certificate.
    audit_label: Option<String>,
    audit: Mutex<Option<(Arc<AuditKey>, CaRow)>>,
}

impl HeadSigner {
    /// `audit_label`: `[audit] key`, whose key then signs every head.
    pub fn new(hsm: Arc<Hsm>, ledger_path: PathBuf, audit_label: Option<String>) -> HeadSigner {
        HeadSigner { hsm, ledger_path, key: Mutex::new(None), audit_label, audit: Mutex::new(None) }
    }

    fn audit_key(&self, label: &str) -> Result<(Arc<AuditKey>, CaRow)> {
        let mut cached = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, ca)) = cached.as_ref() {
            return Ok((k.clone(), ca.clone()));
        }
        let ledger = Ledger::open(&self.ledger_path)?;
        let key = Arc::new(AuditKey::load(&self.hsm, ledger.conn(), label)?);
        let ca = ca::find(&ledger, &key.row.ca_name)?;
        *cached = Some((key.clone(), ca.clone()));
        Ok((key, ca))
    }

    fn active(&self) -> Result<(CaRow, Arc<HsmKey>)> {
        let row = Ledger::open(&self.ledger_path)?.active_ca()?.ok_or(CaError::NoneActive)?;
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((r, k)) = cached.as_ref()
            && r.name == row.name
        {
            return Ok((r.clone(), k.clone()));
        }
        let key = Arc::new(ca::signing_key(&self.hsm, &row)?);
        *cached = Some((row.clone(), key.clone()));
        Ok((row, key))
    }

    /// Signs `head` as a checkpoint is signed (`audit::checkpoint::sign_by`): with the audit key, or without one
    /// the active CA's key. `ca_*` name the CA whose key signed, or that issued the audit certificate.
    pub fn sign(&self, head: &Head) -> Result<SignedHead> {
        let (ca, audit, key);
        let signer = match &self.audit_label {
            Some(label) => {
                (audit, ca) = self.audit_key(label)?;
                Signer::Audit(&audit)
            }
            None => {
                (ca, key) = self.active()?;
                Signer::Ca { name: &ca.name, key: &key }
            }
        };
        let signature = crate::audit::checkpoint::sign_by(&signer, head)?;
        Ok(SignedHead {
            text: head.message_by(signer.kind(), signer.name()),
            signature_hex: hex::encode(signature),
            ca_name: ca.name.clone(),
            ca_fingerprint: ca.fingerprint.clone().unwrap_or_default(),
            ca_subject: ca.subject.clone(),
            ca_cert_der: ca.cert_der.clone().unwrap_or_default(),
            audit: match signer {
                Signer::Audit(a) => Some(AuditSigner {
                    label: a.row.label.clone(),
                    fingerprint: a.row.fingerprint.clone(),
                    cert_der: a.row.cert_der.clone(),
                }),
                Signer::Ca { .. } => None,
            },
        })
    }
}

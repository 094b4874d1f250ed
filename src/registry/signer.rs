//! Signs each batch's head with the station's active CA key in the HSM: the same `station-checkpoint-v1` text a
//! ledger checkpoint signs, so the registry holds proof of what the station's chain was, not only rows.

use crate::Result;
use crate::ca::{self, CaError};
use crate::hsm::{Hsm, HsmKey};
use crate::ledger::{CaRow, Ledger, checkpoints::Head};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A head signed by a CA key, and the CA's certificate to verify it with.
#[derive(Debug, Clone)]
pub struct SignedHead {
    pub text: String,
    pub signature_hex: String,
    pub ca_name: String,
    pub ca_fingerprint: String,
    pub ca_subject: String,
    pub ca_cert_der: Vec<u8>,
}

/// The station's head signer: the active CA's key, looked up again when `ca activate` switched it.
pub struct HeadSigner {
    hsm: Arc<Hsm>,
    ledger_path: PathBuf,
    key: Mutex<Option<(CaRow, Arc<HsmKey>)>>,
}

impl HeadSigner {
    pub fn new(hsm: Arc<Hsm>, ledger_path: PathBuf) -> HeadSigner {
        HeadSigner { hsm, ledger_path, key: Mutex::new(None) }
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

    /// Signs `head` with the active CA's key.
    pub fn sign(&self, head: &Head) -> Result<SignedHead> {
        let (row, key) = self.active()?;
        let text = head.message(&row.name);
        let signature = crate::audit::checkpoint::sign_checkpoint(&key, head, &row.name)?;
        Ok(SignedHead {
            text,
            signature_hex: hex::encode(signature),
            ca_fingerprint: row.fingerprint.clone().unwrap_or_default(),
            ca_subject: row.subject.clone(),
            ca_cert_der: row.cert_der.clone().unwrap_or_default(),
            ca_name: row.name,
        })
    }
}

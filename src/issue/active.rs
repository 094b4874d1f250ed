//! The CA issuing now: its HSM key as an rcgen issuer, and the chain tail every device receives.

use crate::Result;
use crate::ca::{self, CaError};
use crate::hsm::Hsm;
use crate::ledger::CaRow;
use crate::pki::{self, PkiError};
use rcgen::Issuer;
use std::sync::Arc;
use time::OffsetDateTime;

/// One CA, ready to sign. Every device chain is built from exactly one of these.
pub struct ActiveCa {
    pub name: String,
    pub issuer: Issuer<'static, crate::hsm::HsmKey>,
    /// The CA certificate, then its issuers (without the root unless `include_root`).
    pub chain_tail: String,
    pub not_after: OffsetDateTime,
}

impl ActiveCa {
    pub fn load(hsm: &Arc<Hsm>, row: &CaRow, include_root: bool) -> Result<ActiveCa> {
        let der = row.cert_der.as_deref().ok_or(CaError::NoneActive)?;
        let info = pki::inspect(der)?;
        let key = ca::signing_key(hsm, row)?;
        let issuer = Issuer::from_ca_cert_der(&der.into(), key).map_err(|e| PkiError::Build(e.to_string()))?;
        let mut chain_tail = pki::cert_pem(der);
        chain_tail.push_str(&row.chain_pem);
        if include_root {
            chain_tail.push_str(&row.root_pem);
        }
        Ok(ActiveCa { name: row.name.clone(), issuer, chain_tail, not_after: info.not_after })
    }
}

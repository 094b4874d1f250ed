//! Cross-row checks: duplicates, events without rows, CA rows, CA keys in the HSM.

use super::Finding;
use crate::Result;
use crate::hsm::{Hsm, HsmKey, KeyUri};
use crate::ledger::{Ledger, LedgerError};
use crate::pki;
use rusqlite::OptionalExtension;
use std::sync::Arc;

/// An issuance event whose row is gone (a deleted row).
pub fn orphan_event(ledger: &Ledger) -> Result<Option<Finding>> {
    let r: Option<(i64, i64, String)> = ledger
        .conn()
        .query_row(
            "SELECT e.seq, e.ref_id, e.subject FROM events e LEFT JOIN issuances i ON i.id = e.ref_id \
             WHERE e.ref_id IS NOT NULL AND i.id IS NULL ORDER BY e.seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(LedgerError::sql("find orphan events"))?;
    Ok(r.map(|(seq, id, serial)| Finding {
        check: "row-matches-event",
        subject: format!("issuance {id} (serial {serial})"),
        problem: format!("event {seq} records it but the row is missing: it was deleted"),
    }))
}

/// No serial or key twice, except a serial whose older rows were superseded by a recorded re-issue.
pub fn duplicates(ledger: &Ledger, findings: &mut Vec<Finding>) -> Result<()> {
    let q = |sql: &str| -> Result<Option<(String, i64)>> {
        Ok(ledger
            .conn()
            .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(LedgerError::sql("find duplicates"))?)
    };
    if let Some((serial, n)) = q("SELECT serial, COUNT(*) FROM issuances i WHERE superseded_by IS NULL \
         OR NOT EXISTS (SELECT 1 FROM issuances j WHERE j.id = i.superseded_by AND j.reissue_of = i.id AND j.serial = i.serial) \
         GROUP BY serial HAVING COUNT(*) > 1 LIMIT 1")?
    {
        findings.push(Finding {
            check: "duplicates",
            subject: format!("serial {serial}"),
            problem: format!("{n} certificates without a recorded re-issue between them"),
        });
    }
    if let Some((key, n)) =
        q("SELECT spki_sha256, COUNT(*) FROM issuances GROUP BY spki_sha256 HAVING COUNT(*) > 1 LIMIT 1")?
    {
        findings.push(Finding {
            check: "duplicates",
            subject: format!("key {}…", &key[..16.min(key.len())]),
            problem: format!("one public key has {n} certificates"),
        });
    }
    Ok(())
}

/// Each CA row's fingerprint is its certificate's, and (with an HSM) its key is still in the token
/// and is the certificate's key.
pub fn cas(ledger: &Ledger, hsm: Option<&Arc<Hsm>>, findings: &mut Vec<Finding>) -> Result<()> {
    for ca in ledger.cas()? {
        let Some(der) = &ca.cert_der else { continue };
        if ca.fingerprint.as_deref() != Some(pki::sha256_hex(der).as_str()) {
            findings.push(Finding {
                check: "ca-matches-row",
                subject: format!("CA {}", ca.name),
                problem: "the stored certificate is not the one fingerprinted: it was replaced".into(),
            });
            continue;
        }
        let Some(hsm) = hsm else { continue };
        let problem =
            match ca.key_uri.parse::<KeyUri>().map_err(crate::Error::from).and_then(|u| Ok(HsmKey::open(hsm, &u)?)) {
                Ok(key) => {
                    let cert_spki = pki::inspect(der).map(|i| i.spki_der).unwrap_or_default();
                    (!crate::ca::same_public_key(&cert_spki, &key.spki_der()))
                        .then(|| "the HSM key at its URI is not the certificate's key".to_string())
                }
                Err(e) => Some(format!("its key is not usable in the HSM: {e}")),
            };
        if let Some(problem) = problem {
            findings.push(Finding { check: "hsm-key-present", subject: format!("CA {}", ca.name), problem });
        }
    }
    Ok(())
}

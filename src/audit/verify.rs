//! `station audit verify`: every check, streaming (memory does not grow with the ledger):
//! the hash chain; each issuance row against its chained event, its certificate and its CA's
//! signature; duplicates; CA rows; the CA keys in the HSM; checkpoints and their witness file.

use super::{checkpoint, consistency};
use crate::Result;
use crate::hsm::Hsm;
use crate::ledger::{IssuanceRow, Ledger, LedgerError, checkpoints, issuances, walk_chain};
use crate::pki;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The first failure of one kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// A stable name for the check: `chain`, `row-matches-event`, `certificate-signature`, …
    pub check: &'static str,
    /// What it concerns: `event 17`, `issuance 12 (serial SN-000012)`, `checkpoint 3`.
    pub subject: String,
    pub problem: String,
}

/// The result of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub events: i64,
    pub issuances: i64,
    pub checkpoints: usize,
    /// Who signed the checkpoints: each CA key and audit key, with its certificate's fingerprint.
    pub checkpoint_signers: Vec<checkpoint::SignerSummary>,
    pub chain_head: String,
    pub hsm_checked: bool,
    pub ok: bool,
    pub findings: Vec<Finding>,
    /// What does not fail the audit but needs a look: a witness that lags the ledger (a stop between a
    /// checkpoint's commit and its append, repaired at the next start), a torn last witness line.
    pub warnings: Vec<Finding>,
}

/// Verifies the whole ledger. With `hsm`, also that every CA's key is still in the token.
pub fn verify(
    ledger: &Ledger,
    state_dir: &Path,
    hsm: Option<&Arc<Hsm>>,
    mut progress: impl FnMut(&str, i64),
) -> Result<VerifyReport> {
    let mut findings = Vec::new();
    // The heads that checkpoints and the witness file claim; collected during the walk.
    let mut wanted: HashSet<i64> = checkpoints::all(ledger.conn())?.iter().map(|c| c.seq).collect();
    if let Ok(w) = super::witness::Witness::read(state_dir) {
        wanted.extend(w.seqs());
    }
    let mut heads = HashMap::new();
    let mut seen = 0i64;
    let chain = walk_chain(ledger.conn(), |e| {
        seen += 1;
        if seen % 10_000 == 0 {
            progress("events", seen);
        }
        if wanted.contains(&e.seq) {
            heads.insert(e.seq, e.row_hash.clone());
        }
    })?;
    if let Some((seq, why)) = &chain.first_bad {
        findings.push(Finding { check: "chain", subject: format!("event {seq}"), problem: why.clone() });
    }
    let rows = check_rows(ledger, &mut findings, &mut progress)?;
    consistency::duplicates(ledger, &mut findings)?;
    consistency::cas(ledger, hsm, &mut findings)?;
    let intact = chain.first_bad.is_none();
    let mut warnings = Vec::new();
    let (checkpoints, checkpoint_signers) =
        checkpoint::check(ledger, &heads, chain.events, intact, state_dir, &mut findings, &mut warnings)?;
    Ok(VerifyReport {
        events: chain.events,
        issuances: rows,
        checkpoints,
        checkpoint_signers,
        chain_head: chain.head,
        hsm_checked: hsm.is_some(),
        ok: findings.is_empty(),
        findings,
        warnings,
    })
}

fn check_rows(ledger: &Ledger, findings: &mut Vec<Finding>, progress: &mut impl FnMut(&str, i64)) -> Result<i64> {
    let conn = ledger.conn();
    let cols: Vec<String> = issuances::COLUMNS.split(',').map(|c| format!("i.{}", c.trim())).collect();
    let mut st = conn
        .prepare(&format!(
            "SELECT {}, e.seq, e.detail FROM issuances i \
             LEFT JOIN events e ON e.ref_id = i.id AND e.kind IN ('issued', 'reissued') ORDER BY i.id",
            cols.join(", ")
        ))
        .map_err(LedgerError::sql("read issuances"))?;
    let mut rows = st.query([]).map_err(LedgerError::sql("read issuances"))?;
    let mut ca_certs: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let (mut count, mut row_bad, mut cert_bad, mut sig_bad) = (0i64, None, None, None);
    while let Some(r) = rows.next().map_err(LedgerError::sql("read issuances"))? {
        let row = issuances::from_row(r).map_err(LedgerError::sql("read issuances"))?;
        let event: Option<(i64, String)> = match r.get::<_, Option<i64>>(16).map_err(LedgerError::sql("read events"))? {
            Some(seq) => Some((seq, r.get(17).map_err(LedgerError::sql("read events"))?)),
            None => None,
        };
        count += 1;
        if count % 10_000 == 0 {
            progress("issuances", count);
        }
        if row_bad.is_none()
            && let Some(p) = row_vs_event(&row, event.as_ref())
        {
            row_bad = Some(Finding { check: "row-matches-event", subject: name(&row), problem: p });
        }
        if cert_bad.is_none()
            && let Some(p) = cert_vs_row(&row)
        {
            cert_bad = Some(Finding { check: "certificate-matches-row", subject: name(&row), problem: p });
        }
        if sig_bad.is_none() {
            let ca = ca_certs
                .entry(row.ca_name.clone())
                .or_insert_with(|| ledger.ca(&row.ca_name).ok().flatten().and_then(|c| c.cert_der));
            let ok = ca.as_deref().is_some_and(|ca| pki::signed_by(&row.cert_der, ca));
            if !ok {
                sig_bad = Some(Finding {
                    check: "certificate-signature",
                    subject: name(&row),
                    problem: format!("the certificate does not verify under CA {}'s certificate", row.ca_name),
                });
            }
        }
    }
    findings.extend(row_bad);
    findings.extend(cert_bad);
    findings.extend(sig_bad);
    if let Some(f) = consistency::orphan_event(ledger)? {
        findings.push(f);
    }
    Ok(count)
}

fn name(row: &IssuanceRow) -> String {
    format!("issuance {} (serial {})", row.id, row.serial)
}

/// Compares a row with the event that recorded it.
fn row_vs_event(row: &IssuanceRow, event: Option<&(i64, String)>) -> Option<String> {
    let Some((seq, detail)) = event else {
        return Some("no chained event records this row: it was inserted outside the station".into());
    };
    let d: serde_json::Value = match serde_json::from_str(detail) {
        Ok(v) => v,
        Err(e) => return Some(format!("event {seq} detail is not JSON: {e}")),
    };
    let fields = [
        ("serial", row.serial.as_str()),
        ("cert_id", row.cert_id.as_str()),
        ("cert_serial", row.cert_serial.as_str()),
        ("spki_sha256", row.spki_sha256.as_str()),
        ("ca", row.ca_name.as_str()),
        ("bench", row.bench.as_str()),
        ("operator", row.operator.as_str()),
        ("issued_at", row.issued_at.as_str()),
        ("not_after", row.not_after.as_str()),
    ];
    for (k, v) in fields {
        if d[k].as_str() != Some(v) {
            return Some(format!("{k} is {v:?} but event {seq} recorded {}", d[k]));
        }
    }
    if d["reissue_of"].as_i64() != row.reissue_of {
        return Some(format!("reissue_of differs from event {seq}"));
    }
    None
}

/// Compares a row with its own certificate.
fn cert_vs_row(row: &IssuanceRow) -> Option<String> {
    if pki::sha256_hex(&row.cert_der) != row.cert_id {
        return Some("the certificate's SHA-256 is not its certificate ID: the certificate was replaced".into());
    }
    if !row.chain_pem.starts_with(&pki::cert_pem(&row.cert_der)) {
        return Some("the stored chain does not start with the certificate".into());
    }
    match pki::inspect(&row.cert_der) {
        Ok(info) if !info.subject.contains(&format!("CN={}", row.serial)) => {
            Some(format!("the certificate's subject {} does not name serial {}", info.subject, row.serial))
        }
        Ok(info) if pki::sha256_hex(&info.spki_der) != row.spki_sha256 => {
            Some("the certificate's public key is not the row's key".into())
        }
        Ok(_) => None,
        Err(e) => Some(format!("the certificate does not parse: {e}")),
    }
}

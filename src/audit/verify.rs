//! `station audit verify`: walk the hash chain, then check every issuance row against its chained
//! event and its certificate. Streams both tables in id order; memory does not grow with the ledger.

use crate::Result;
use crate::ledger::{Event, IssuanceRow, Ledger, LedgerError, issuances, walk_chain};
use crate::pki;
use serde::Serialize;

/// The first failure of one kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// A stable name for the check: `chain`, `row-matches-event`, `certificate-matches-row`, …
    pub check: &'static str,
    /// What it concerns: `event 17` or `issuance 12 (serial SN-000012)`.
    pub subject: String,
    pub problem: String,
}

/// The result of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub events: i64,
    pub issuances: i64,
    pub chain_head: String,
    pub ok: bool,
    pub findings: Vec<Finding>,
}

/// Verifies the whole ledger; `progress` is called every 10,000 rows.
pub fn verify(ledger: &Ledger, mut progress: impl FnMut(&str, i64)) -> Result<VerifyReport> {
    let mut findings = Vec::new();
    let mut issued_events: Vec<Event> = Vec::new();
    let mut seen = 0i64;
    let chain = walk_chain(ledger.conn(), |e| {
        seen += 1;
        if seen % 10_000 == 0 {
            progress("events", seen);
        }
        if e.kind == "issued" || e.kind == "reissued" {
            issued_events.push(e.clone());
        }
    })?;
    if let Some((seq, why)) = &chain.first_bad {
        findings.push(Finding { check: "chain", subject: format!("event {seq}"), problem: why.clone() });
    }
    let rows = check_rows(ledger, &issued_events, &mut findings, &mut progress)?;
    Ok(VerifyReport {
        events: chain.events,
        issuances: rows,
        chain_head: chain.head,
        ok: findings.is_empty(),
        findings,
    })
}

fn check_rows(
    ledger: &Ledger,
    events: &[Event],
    findings: &mut Vec<Finding>,
    progress: &mut impl FnMut(&str, i64),
) -> Result<i64> {
    let mut st = ledger
        .conn()
        .prepare(&format!("SELECT {} FROM issuances ORDER BY id", issuances::COLUMNS))
        .map_err(LedgerError::sql("read issuances"))?;
    let rows = st.query_map([], issuances::from_row).map_err(LedgerError::sql("read issuances"))?;
    let mut by_id = events.iter().filter_map(|e| e.ref_id.map(|id| (id, e))).peekable();
    let (mut count, mut first_row_bad, mut first_cert_bad) = (0i64, None, None);
    for row in rows {
        let row = row.map_err(LedgerError::sql("read issuances"))?;
        count += 1;
        if count % 10_000 == 0 {
            progress("issuances", count);
        }
        while by_id.peek().is_some_and(|(id, _)| *id < row.id) {
            let (id, e) = by_id.next().expect("peeked");
            first_row_bad.get_or_insert_with(|| Finding {
                check: "row-matches-event",
                subject: format!("issuance {id} (serial {})", e.subject),
                problem: format!("event {} records it but the row is missing: it was deleted", e.seq),
            });
        }
        let event = match by_id.peek() {
            Some((id, e)) if *id == row.id => {
                let e = *e;
                by_id.next();
                Some(e)
            }
            _ => None,
        };
        if first_row_bad.is_none()
            && let Some(problem) = row_vs_event(&row, event)
        {
            first_row_bad = Some(Finding { check: "row-matches-event", subject: name(&row), problem });
        }
        if first_cert_bad.is_none()
            && let Some(problem) = cert_vs_row(&row)
        {
            first_cert_bad = Some(Finding { check: "certificate-matches-row", subject: name(&row), problem });
        }
    }
    if let Some((id, e)) = by_id.next() {
        first_row_bad.get_or_insert_with(|| Finding {
            check: "row-matches-event",
            subject: format!("issuance {id} (serial {})", e.subject),
            problem: format!("event {} records it but the row is missing: it was deleted", e.seq),
        });
    }
    findings.extend(first_row_bad);
    findings.extend(first_cert_bad);
    Ok(count)
}

fn name(row: &IssuanceRow) -> String {
    format!("issuance {} (serial {})", row.id, row.serial)
}

/// Compares a row with the event that recorded it.
fn row_vs_event(row: &IssuanceRow, event: Option<&Event>) -> Option<String> {
    let Some(event) = event else {
        return Some("no chained event records this row: it was inserted outside the station".into());
    };
    let d: serde_json::Value = match serde_json::from_str(&event.detail) {
        Ok(v) => v,
        Err(e) => return Some(format!("event {} detail is not JSON: {e}", event.seq)),
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
            return Some(format!("{k} is {v:?} but event {} recorded {}", event.seq, d[k]));
        }
    }
    if d["reissue_of"].as_i64() != row.reissue_of {
        return Some(format!("reissue_of differs from event {}", event.seq));
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

//! `audit checkpoint` and the checkpoint checks of `audit verify`.
//!
//! Each checkpoint is also appended to a witness file outside the database (`state_dir/checkpoints.log`,
//! one JSON object per line, see `witness`), so a ledger rolled back together with its checkpoint rows is still
//! caught.

use super::key::Signer;
use super::{Finding, witness};
use crate::Result;
use crate::ledger::checkpoints::SignerKind;
use crate::ledger::{Checkpoint, Ledger, LedgerError, checkpoints};
use crate::pki;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The witness file for a station.
pub fn witness_path(state_dir: &Path) -> PathBuf {
    witness::path(state_dir)
}

/// Signs the current chain head with `key` and stores it, in the ledger and in the witness file. The head
/// is read first and signed outside any write transaction; the row is then stored in a short one. The witness is
/// brought up to the ledger afterwards ([`witness::sync`]), so checkpoints an earlier crash left unwitnessed are
/// written too.
pub fn create(ledger: &mut Ledger, signer: &Signer<'_>, state_dir: &Path) -> Result<Checkpoint> {
    let head = checkpoints::head(ledger.conn())?;
    let signature = sign_by(signer, &head)?;
    let tx = ledger
        .conn_mut()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(LedgerError::sql("begin"))?;
    let cp = checkpoints::store(&tx, &head, signer.kind(), signer.name(), &signer.key().uri().to_string(), &signature)?;
    tx.commit().map_err(LedgerError::sql("commit checkpoint"))?;
    witness_after_commit(state_dir, ledger.conn(), cp.id)?;
    Ok(cp)
}

/// Witnesses checkpoint `id` (just committed) and any an earlier crash left unwitnessed, logging those.
pub fn witness_after_commit(state_dir: &Path, conn: &rusqlite::Connection, id: i64) -> Result<witness::Synced> {
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::pause_point("checkpoint-committed");
    let synced = witness::sync(state_dir, conn)?;
    let restored = synced.appended.iter().filter(|a| **a != id).count();
    if restored > 0 {
        tracing::warn!(restored, "witness file: restored checkpoint(s) committed before a crash but never witnessed");
    }
    Ok(synced)
}

/// Start-up reconciliation: appends to the witness every ledger checkpoint it lacks (and repairs a torn last
/// line). Returns how many were restored.
pub fn reconcile_witness(state_dir: &Path, conn: &rusqlite::Connection) -> Result<usize> {
    let synced = witness::sync(state_dir, conn)?;
    if !synced.appended.is_empty() {
        tracing::warn!(
            restored = synced.appended.len(),
            "witness file: restored checkpoint(s) committed before a crash but never witnessed"
        );
    }
    Ok(synced.appended.len())
}

/// The HSM signature over a checkpoint's text, by a CA key or the audit key.
pub fn sign_by(signer: &Signer<'_>, head: &checkpoints::Head) -> Result<Vec<u8>, LedgerError> {
    let text = head.message_by(signer.kind(), signer.name());
    signer.key().sign_bytes(text.as_bytes()).map_err(|e| LedgerError::Signing(e.to_string()))
}

/// Who signed checkpoints, as `audit verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignerSummary {
    /// `ca` or `audit-key`.
    pub kind: String,
    /// The CA's name or the audit key's label.
    pub name: String,
    /// SHA-256 of the certificate the signatures are verified with (the CA's, or the audit certificate).
    pub fingerprint: String,
    pub checkpoints: usize,
    pub first: i64,
    pub last: i64,
}

/// A signer's certificate, looked up once.
struct Known {
    fingerprint: String,
    spki: Option<Vec<u8>>,
    /// For an audit key: why its certificate is not one of the station's CAs' (None when it is).
    untrusted: Option<String>,
}

fn known(ledger: &Ledger, kind: SignerKind, name: &str) -> Known {
    let ca_cert = |ca: &str| ledger.ca(ca).ok().flatten().and_then(|c| c.cert_der);
    let (der, untrusted) = match kind {
        SignerKind::Ca => (ca_cert(name), None),
        SignerKind::AuditKey => match ledger.audit_key(name).ok().flatten() {
            Some(row) => {
                let ok = ca_cert(&row.ca_name).is_some_and(|ca| pki::signed_by(&row.cert_der, &ca));
                let why = (!ok).then(|| format!("the audit certificate does not verify under CA {}", row.ca_name));
                (Some(row.cert_der), why)
            }
            None => (None, Some("the ledger has no audit key by that label".into())),
        },
    };
    Known {
        fingerprint: der.as_deref().map(pki::sha256_hex).unwrap_or_default(),
        spki: der.and_then(|d| pki::inspect(&d).ok()).map(|i| i.spki_der),
        untrusted,
    }
}

/// Checks every checkpoint: its signature under its signer's certificate (a CA's, or the audit certificate, which
/// must verify under its CA's), that its text is what its fields say, and that the chain still holds the head it
/// signed. `heads` maps seq → row_hash for the chain. Returns the number of checkpoints and who signed them.
pub fn check(
    ledger: &Ledger,
    heads: &HashMap<i64, String>,
    chain_len: i64,
    chain_intact: bool,
    state_dir: &Path,
    findings: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) -> Result<(usize, Vec<SignerSummary>)> {
    let cps = checkpoints::all(ledger.conn())?;
    let mut signers: HashMap<(String, String), Known> = HashMap::new();
    let mut summary: Vec<SignerSummary> = Vec::new();
    let mut first_forged = None;
    let mut first_untrusted = None;
    let mut first_behind = None;
    for cp in &cps {
        let kind = SignerKind::parse(&cp.signer_kind);
        let who = signers.entry((cp.signer_kind.clone(), cp.ca_name.clone())).or_insert_with(|| match kind {
            Some(k) => known(ledger, k, &cp.ca_name),
            None => Known { fingerprint: String::new(), spki: None, untrusted: None },
        });
        let text_ok = kind.is_some_and(|k| {
            cp.signed == checkpoints::message_by(k, cp.seq, &cp.head_hash, cp.issuances, &cp.at, &cp.ca_name)
        });
        let sig_ok = who
            .spki
            .as_ref()
            .zip(hex::decode(&cp.signature).ok())
            .is_some_and(|(k, sig)| pki::verify_with_spki(k, cp.signed.as_bytes(), &sig));
        let what = if kind == Some(SignerKind::AuditKey) { "the audit certificate" } else { "the CA's certificate" };
        if (!text_ok || !sig_ok) && first_forged.is_none() {
            first_forged = Some(Finding {
                check: "checkpoint-signature",
                subject: format!("checkpoint {}", cp.id),
                problem: format!("its signature does not verify under {what}: it was forged or altered"),
            });
        }
        if let Some(why) = &who.untrusted
            && first_untrusted.is_none()
        {
            first_untrusted = Some(Finding {
                check: "checkpoint-signer",
                subject: format!("checkpoint {} (audit key {})", cp.id, cp.ca_name),
                problem: why.clone(),
            });
        }
        // A broken chain is reported as such; "behind the checkpoint" would only repeat it.
        if chain_intact
            && let Some(problem) = covered(cp.seq, &cp.head_hash, heads, chain_len)
            && first_behind.is_none()
        {
            first_behind =
                Some(Finding { check: "checkpoint-head", subject: format!("checkpoint {}", cp.id), problem });
        }
        match summary.iter_mut().find(|s| s.kind == cp.signer_kind && s.name == cp.ca_name) {
            Some(s) => (s.checkpoints, s.last) = (s.checkpoints + 1, cp.id),
            None => summary.push(SignerSummary {
                kind: cp.signer_kind.clone(),
                name: cp.ca_name.clone(),
                fingerprint: who.fingerprint.clone(),
                checkpoints: 1,
                first: cp.id,
                last: cp.id,
            }),
        }
    }
    findings.extend(first_forged);
    findings.extend(first_untrusted);
    findings.extend(first_behind);
    if chain_intact {
        check_witness(state_dir, &cps, heads, chain_len, findings, warnings);
    }
    Ok((cps.len(), summary))
}

fn covered(seq: i64, head: &str, heads: &HashMap<i64, String>, chain_len: i64) -> Option<String> {
    if seq > chain_len {
        return Some(format!(
            "it signed event {seq}, but the chain ends at event {chain_len}: the ledger was truncated or rolled back"
        ));
    }
    match heads.get(&seq) {
        Some(h) if h == head => None,
        Some(_) => Some(format!("event {seq} no longer has the hash this checkpoint signed: the ledger was rewritten")),
        None if seq == 0 => None,
        None => Some(format!("event {seq} is missing")),
    }
}

fn check_witness(
    state_dir: &Path,
    cps: &[Checkpoint],
    heads: &HashMap<i64, String>,
    chain_len: i64,
    findings: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    let witness = match witness::Witness::read(state_dir) {
        Ok(w) => w,
        Err(e) => {
            warnings.push(Finding {
                check: "checkpoint-witness",
                subject: "witness file".into(),
                problem: e.to_string(),
            });
            return;
        }
    };
    if !witness.exists {
        if !cps.is_empty() {
            warnings.push(Finding {
                check: "checkpoint-not-witnessed",
                subject: "witness file".into(),
                problem: format!(
                    "{} has no witness file: {} checkpoint(s) cannot be checked against it",
                    state_dir.display(),
                    cps.len()
                ),
            });
        }
        return;
    }
    for l in &witness.lines {
        let problem = match &l.record {
            None => Some("it is not a witness record: the file was edited".to_string()),
            Some(r) => covered(r.seq, &r.head_hash, heads, chain_len).or_else(|| {
                (!cps.iter().any(|c| c.seq == r.seq && c.head_hash == r.head_hash && r.id.is_none_or(|id| id == c.id)))
                    .then(|| {
                        "the ledger has no checkpoint for this witnessed head: checkpoints were deleted".to_string()
                    })
            }),
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                check: "checkpoint-witness",
                subject: format!("witness line {}", l.number),
                problem,
            });
            return;
        }
    }
    if let Some(fragment) = &witness.torn {
        warnings.push(Finding {
            check: "witness-torn-line",
            subject: format!("witness line {}", witness.lines.len() + 1),
            problem: format!(
                "the file ends in {} bytes without a newline (a write cut short); the next start keeps them aside and writes the line again",
                fragment.len()
            ),
        });
    }
    not_witnessed(cps, &witness.witnessed(), findings, warnings);
}

/// Ledger checkpoints the witness lacks. The station witnesses in id order and reconciles at every start, so the
/// only gap a crash leaves is after the last witnessed checkpoint (a warning: the next start repairs it); a
/// checkpoint missing before a witnessed one was removed from the file (a finding).
fn not_witnessed(
    cps: &[Checkpoint],
    have: &witness::Witnessed,
    findings: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    let witnessed = |c: &Checkpoint| have.contains(c);
    let last_witnessed = cps.iter().filter(|c| witnessed(c)).map(|c| c.id).max().unwrap_or(0);
    let (inner, tail): (Vec<&Checkpoint>, Vec<&Checkpoint>) =
        cps.iter().filter(|c| !witnessed(c)).partition(|c| c.id < last_witnessed);
    if let Some(first) = inner.first() {
        findings.push(Finding {
            check: "checkpoint-not-witnessed",
            subject: format!("checkpoint {}", first.id),
            problem: format!(
                "{} checkpoint(s) older than witnessed checkpoint {last_witnessed} are missing from the witness file: lines were removed from it",
                inner.len()
            ),
        });
    }
    if let Some(first) = tail.first() {
        warnings.push(Finding {
            check: "checkpoint-not-witnessed",
            subject: format!("checkpoint {}", first.id),
            problem: format!(
                "{} checkpoint(s) from this one on are in the ledger but not yet in the witness file (a stop between the commit and the append); the next start of serve or issue, or `station audit checkpoint`, writes them",
                tail.len()
            ),
        });
    }
}

//! `audit checkpoint` and the checkpoint checks of `audit verify`.
//!
//! Each checkpoint is also appended to a witness file outside the database (`state_dir/checkpoints.log`,
//! one JSON object per line), so a ledger rolled back together with its checkpoint rows is still caught.

use super::Finding;
use crate::Result;
use crate::hsm::HsmKey;
use crate::ledger::{Checkpoint, Ledger, LedgerError, checkpoints};
use crate::pki;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The witness file for a station.
pub fn witness_path(state_dir: &Path) -> PathBuf {
    state_dir.join("checkpoints.log")
}

/// Signs the current chain head with `key` and stores it, in the ledger and in the witness file. The head
/// is read first and signed outside any write transaction; the row is then stored in a short one.
pub fn create(ledger: &mut Ledger, ca_name: &str, key: &HsmKey, state_dir: &Path) -> Result<Checkpoint> {
    let head = checkpoints::head(ledger.conn())?;
    let signature = sign_checkpoint(key, &head, ca_name)?;
    let tx = ledger.conn_mut().transaction().map_err(LedgerError::sql("begin"))?;
    let cp = checkpoints::store(&tx, &head, ca_name, &key.uri().to_string(), &signature)?;
    tx.commit().map_err(LedgerError::sql("commit checkpoint"))?;
    append_witness(state_dir, &cp)?;
    Ok(cp)
}

/// The HSM signature over a checkpoint's text.
pub fn sign_checkpoint(key: &HsmKey, head: &checkpoints::Head, ca_name: &str) -> Result<Vec<u8>, LedgerError> {
    key.sign_bytes(head.message(ca_name).as_bytes()).map_err(|e| LedgerError::Signing(e.to_string()))
}

/// Appends a checkpoint to the witness file (created 0600 in a 0700 folder).
pub fn append_witness(state_dir: &Path, cp: &Checkpoint) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e| {
        crate::Error::io(
            "witness-unwritable",
            format!("cannot write {}", witness_path(state_dir).display()),
            "check [station] state_dir",
            e,
        )
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(io)?;
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(witness_path(state_dir)).map_err(io)?;
    let line = serde_json::json!({ "seq": cp.seq, "head_hash": cp.head_hash, "at": cp.at, "issuances": cp.issuances });
    writeln!(f, "{line}").map_err(io)?;
    f.sync_all().map_err(io)
}

/// Checks every checkpoint: its signature under its CA's certificate, that its text is what its fields
/// say, and that the chain still holds the head it signed. `heads` maps seq → row_hash for the chain.
pub fn check(
    ledger: &Ledger,
    heads: &HashMap<i64, String>,
    chain_len: i64,
    chain_intact: bool,
    state_dir: &Path,
    findings: &mut Vec<Finding>,
) -> Result<usize> {
    let cps = checkpoints::all(ledger.conn())?;
    let mut ca_spki: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut first_forged = None;
    let mut first_behind = None;
    for cp in &cps {
        let spki = ca_spki
            .entry(cp.ca_name.clone())
            .or_insert_with(|| {
                ledger
                    .ca(&cp.ca_name)
                    .ok()
                    .flatten()
                    .and_then(|c| c.cert_der)
                    .and_then(|d| pki::inspect(&d).ok())
                    .map(|i| i.spki_der)
            })
            .clone();
        let text_ok = cp.signed == checkpoints::message(cp.seq, &cp.head_hash, cp.issuances, &cp.at, &cp.ca_name);
        let sig_ok = spki
            .zip(hex::decode(&cp.signature).ok())
            .is_some_and(|(k, sig)| pki::verify_with_spki(&k, cp.signed.as_bytes(), &sig));
        if (!text_ok || !sig_ok) && first_forged.is_none() {
            first_forged = Some(Finding {
                check: "checkpoint-signature",
                subject: format!("checkpoint {}", cp.id),
                problem: "its signature does not verify under the CA's certificate: it was forged or altered".into(),
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
    }
    findings.extend(first_forged);
    findings.extend(first_behind);
    if chain_intact {
        check_witness(state_dir, &cps, heads, chain_len, findings);
    }
    Ok(cps.len())
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
) {
    let Ok(text) = std::fs::read_to_string(witness_path(state_dir)) else { return };
    for (n, line) in text.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (seq, head) = (v["seq"].as_i64().unwrap_or(-1), v["head_hash"].as_str().unwrap_or(""));
        let problem = covered(seq, head, heads, chain_len).or_else(|| {
            (!cps.iter().any(|c| c.seq == seq && c.head_hash == head))
                .then(|| "the ledger has no checkpoint for this witnessed head: checkpoints were deleted".to_string())
        });
        if let Some(problem) = problem {
            findings.push(Finding { check: "checkpoint-witness", subject: format!("witness line {}", n + 1), problem });
            return;
        }
    }
}

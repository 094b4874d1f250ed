//! Periodic checkpoints: every `[audit] checkpoint_every` new certificates the engine signs the chain head with the
//! audit key (or without one the active CA's key), records it through the writer and witnesses it. The count starts
//! from the ledger's last checkpoint, so a station that restarts often still checkpoints.

use super::ActiveCa;
use crate::Result;
use crate::audit::key::{AuditKey, Signer};
use crate::config::Config;
use crate::hsm::Hsm;
use crate::ledger::{self, Ledger, Writer};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub(super) struct Checkpoints {
    every: u64,
    /// New certificates since the ledger's last checkpoint: read from the ledger at start, counted in memory after.
    since: AtomicU64,
    /// A periodic checkpoint is being signed (the next bench does not start another).
    busy: AtomicBool,
    /// The dedicated audit key (`[audit] key`): it signs checkpoints instead of the active CA's key.
    audit_key: Option<AuditKey>,
    state_dir: PathBuf,
    ledger_path: PathBuf,
}

impl Checkpoints {
    /// Witnesses a checkpoint a crash left unwitnessed, reads the count since the last one, and loads the audit key
    /// (a configured one must be there before anything is issued: `audit-key-missing`).
    pub(super) fn open(cfg: &Config, hsm: &Arc<Hsm>, ledger: &Ledger) -> Result<Checkpoints> {
        crate::audit::checkpoint::reconcile_witness(&cfg.station.state_dir, ledger.conn())?;
        Ok(Checkpoints {
            every: cfg.audit.checkpoint_every,
            since: AtomicU64::new(ledger::checkpoints::issued_since_last(ledger.conn())?),
            busy: AtomicBool::new(false),
            audit_key: AuditKey::configured(cfg, hsm, ledger.conn())?,
            state_dir: cfg.station.state_dir.clone(),
            ledger_path: cfg.ledger.path.clone(),
        })
    }

    /// Counts one new certificate; signs a checkpoint when `checkpoint_every` is reached. A failure is logged:
    /// issuance continues, and the next attempt comes after another `checkpoint_every`.
    pub(super) fn count(&self, writer: &Writer, active: impl FnOnce() -> Result<Arc<ActiveCa>>) {
        let n = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        if self.every == 0 || n < self.every || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = self.sign(writer, active) {
            tracing::warn!(error = %e, "periodic checkpoint failed; issuance continues");
        }
        // What was counted until now is covered (or its attempt failed); certificates since count towards the next.
        let _ = self.since.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        self.busy.store(false, Ordering::Release);
    }

    /// Signs the chain head (after everything queued) and records it in the ledger and the witness file. The HSM
    /// signs between two writer operations, not inside one: every bench's commit goes on meanwhile.
    pub(super) fn sign(
        &self,
        writer: &Writer,
        active: impl FnOnce() -> Result<Arc<ActiveCa>>,
    ) -> Result<ledger::Checkpoint> {
        let ca;
        let signer = match &self.audit_key {
            Some(a) => Signer::Audit(a),
            None => {
                ca = active()?;
                Signer::Ca { name: &ca.name, key: ca.issuer.key() }
            }
        };
        let head = writer.head()?;
        let signature = crate::audit::checkpoint::sign_by(&signer, &head)?;
        let uri = signer.key().uri().to_string();
        let cp = writer.store_checkpoint(head, signer.kind(), signer.name(), &uri, signature)?;
        let conn = ledger::open_connection(&self.ledger_path)?;
        crate::audit::checkpoint::witness_after_commit(&self.state_dir, &conn, cp.id)?;
        Ok(cp)
    }
}

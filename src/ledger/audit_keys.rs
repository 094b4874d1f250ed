//! Audit keys (schema 5): a dedicated HSM key that signs checkpoints and manifests, and its certificate.

use super::{Ledger, LedgerError, chain};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

/// One audit key as stored.
#[derive(Debug, Clone, Serialize)]
pub struct AuditKeyRow {
    pub label: String,
    pub key_uri: String,
    pub key_type: String,
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    pub fingerprint: String,
    /// The CA that issued the audit certificate.
    pub ca_name: String,
    pub created_at: String,
}

const COLUMNS: &str = "label, key_uri, key_type, cert_der, fingerprint, ca_name, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AuditKeyRow> {
    Ok(AuditKeyRow {
        label: r.get(0)?,
        key_uri: r.get(1)?,
        key_type: r.get(2)?,
        cert_der: r.get(3)?,
        fingerprint: r.get(4)?,
        ca_name: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// The audit key labelled `label`.
pub fn get(conn: &rusqlite::Connection, label: &str) -> Result<Option<AuditKeyRow>, LedgerError> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM audit_keys WHERE label = ?1"), [label], from_row)
        .optional()
        .map_err(LedgerError::sql("read audit key"))
}

impl Ledger {
    /// Stores a new audit key and its chained `audit-key-created` event, in one transaction.
    pub fn insert_audit_key(&mut self, row: &AuditKeyRow) -> Result<(), LedgerError> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        tx.execute(
            &format!("INSERT INTO audit_keys ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
            params![row.label, row.key_uri, row.key_type, row.cert_der, row.fingerprint, row.ca_name, row.created_at],
        )
        .map_err(LedgerError::sql("insert audit key"))?;
        let detail = serde_json::json!({
            "label": row.label,
            "key_uri": row.key_uri,
            "key_type": row.key_type,
            "fingerprint": row.fingerprint,
            "ca": row.ca_name,
        })
        .to_string();
        chain::append(&tx, "audit-key-created", &row.label, None, &detail)?;
        tx.commit().map_err(LedgerError::sql("commit audit key"))
    }

    pub fn audit_key(&self, label: &str) -> Result<Option<AuditKeyRow>, LedgerError> {
        get(self.conn(), label)
    }
}

//! CA rows. Every change of a CA's state is also a chained event.

use super::{Ledger, LedgerError, chain, now_text};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

/// A CA's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaState {
    /// Key generated; waiting for the offline root's signed certificate (`ca import`).
    Pending,
    /// Usable, not issuing.
    Ready,
    /// The one CA issuing now.
    Active,
    /// Issues no more; kept so its devices still verify.
    Retired,
}

impl CaState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaState::Pending => "pending",
            CaState::Ready => "ready",
            CaState::Active => "active",
            CaState::Retired => "retired",
        }
    }
    fn parse(s: &str) -> CaState {
        match s {
            "pending" => CaState::Pending,
            "active" => CaState::Active,
            "retired" => CaState::Retired,
            _ => CaState::Ready,
        }
    }
}

/// One CA as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CaRow {
    pub name: String,
    pub key_uri: String,
    pub key_type: String,
    pub state: CaState,
    pub subject: String,
    #[serde(skip)]
    pub cert_der: Option<Vec<u8>>,
    pub fingerprint: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    #[serde(skip)]
    pub chain_pem: String,
    #[serde(skip)]
    pub root_pem: String,
    pub created_at: String,
    pub activated_at: Option<String>,
    pub retired_at: Option<String>,
}

const COLUMNS: &str = "name, key_uri, key_type, state, subject, cert_der, fingerprint, not_before, not_after, \
                       chain_pem, root_pem, created_at, activated_at, retired_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<CaRow> {
    Ok(CaRow {
        name: r.get(0)?,
        key_uri: r.get(1)?,
        key_type: r.get(2)?,
        state: CaState::parse(&r.get::<_, String>(3)?),
        subject: r.get(4)?,
        cert_der: r.get(5)?,
        fingerprint: r.get(6)?,
        not_before: r.get(7)?,
        not_after: r.get(8)?,
        chain_pem: r.get(9)?,
        root_pem: r.get(10)?,
        created_at: r.get(11)?,
        activated_at: r.get(12)?,
        retired_at: r.get(13)?,
    })
}

impl Ledger {
    pub fn ca(&self, name: &str) -> Result<Option<CaRow>, LedgerError> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM cas WHERE name = ?1"), [name], from_row)
            .optional()
            .map_err(LedgerError::sql("read CA"))
    }

    pub fn cas(&self) -> Result<Vec<CaRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM cas ORDER BY created_at, name"))
            .map_err(LedgerError::sql("list CAs"))?;
        let rows = st.query_map([], from_row).map_err(LedgerError::sql("list CAs"))?;
        rows.collect::<Result<_, _>>().map_err(LedgerError::sql("list CAs"))
    }

    pub fn active_ca(&self) -> Result<Option<CaRow>, LedgerError> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM cas WHERE state = 'active'"), [], from_row)
            .optional()
            .map_err(LedgerError::sql("read active CA"))
    }

    /// Records a new CA and its event. A ready CA becomes active when no CA is.
    pub fn insert_ca(&mut self, row: &CaRow, event_kind: &str) -> Result<CaState, LedgerError> {
        // IMMEDIATE, as every read-then-write of a command beside a running `serve`: a deferred transaction whose
        // first write comes after the writer thread committed fails at once (SQLITE_BUSY_SNAPSHOT, "database is
        // locked") without waiting; an immediate one waits for the lock (busy_timeout).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        let has_active: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM cas WHERE state = 'active')", [], |r| r.get(0))
            .map_err(LedgerError::sql("read CAs"))?;
        let state = if row.state == CaState::Ready && !has_active { CaState::Active } else { row.state };
        let now = now_text();
        tx.execute(
            &format!("INSERT INTO cas ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,NULL)"),
            params![
                row.name,
                row.key_uri,
                row.key_type,
                state.as_str(),
                row.subject,
                row.cert_der,
                row.fingerprint,
                row.not_before,
                row.not_after,
                row.chain_pem,
                row.root_pem,
                now,
                (state == CaState::Active).then_some(&now),
            ],
        )
        .map_err(LedgerError::sql("insert CA"))?;
        chain::append(&tx, event_kind, &row.name, None, &ca_detail(row, state))?;
        if state == CaState::Active {
            chain::append(&tx, "ca-activated", &row.name, None, &ca_detail(row, state))?;
        }
        tx.commit().map_err(LedgerError::sql("commit CA"))?;
        Ok(state)
    }

    /// Stores the signed certificate of a pending CA; it becomes ready (or active if none is).
    pub fn complete_ca(&mut self, row: &CaRow) -> Result<CaState, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        let has_active: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM cas WHERE state = 'active')", [], |r| r.get(0))
            .map_err(LedgerError::sql("read CAs"))?;
        let state = if has_active { CaState::Ready } else { CaState::Active };
        let now = now_text();
        let n = tx
            .execute(
                "UPDATE cas SET state = ?2, subject = ?3, cert_der = ?4, fingerprint = ?5, not_before = ?6, not_after = ?7, \
                 chain_pem = ?8, root_pem = ?9, activated_at = ?10 WHERE name = ?1 AND state = 'pending'",
                params![
                    row.name, state.as_str(), row.subject, row.cert_der, row.fingerprint, row.not_before, row.not_after,
                    row.chain_pem, row.root_pem, (state == CaState::Active).then_some(&now),
                ],
            )
            .map_err(LedgerError::sql("store CA certificate"))?;
        if n != 1 {
            return Err(LedgerError::Corrupt(format!("CA {} is not pending", row.name)));
        }
        chain::append(&tx, "ca-imported", &row.name, None, &ca_detail(row, state))?;
        if state == CaState::Active {
            chain::append(&tx, "ca-activated", &row.name, None, &ca_detail(row, state))?;
        }
        tx.commit().map_err(LedgerError::sql("commit CA"))?;
        Ok(state)
    }
}

impl Ledger {
    /// Makes `name` the issuing CA, atomically: the old active CA becomes ready. A ledger event.
    pub fn activate_ca(&mut self, name: &str) -> Result<Option<String>, LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        let previous: Option<String> = tx
            .query_row("SELECT name FROM cas WHERE state = 'active'", [], |r| r.get(0))
            .optional()
            .map_err(LedgerError::sql("read active CA"))?;
        tx.execute("UPDATE cas SET state = 'ready' WHERE state = 'active'", [])
            .map_err(LedgerError::sql("deactivate CA"))?;
        let n = tx
            .execute(
                "UPDATE cas SET state = 'active', activated_at = ?2 WHERE name = ?1 AND state IN ('ready', 'active')",
                params![name, now_text()],
            )
            .map_err(LedgerError::sql("activate CA"))?;
        if n != 1 {
            return Err(LedgerError::Corrupt(format!("CA {name} cannot be activated")));
        }
        let row = tx
            .query_row(&format!("SELECT {COLUMNS} FROM cas WHERE name = ?1"), [name], from_row)
            .map_err(LedgerError::sql("read CA"))?;
        let mut detail: serde_json::Value = serde_json::from_str(&ca_detail(&row, CaState::Active)).unwrap_or_default();
        detail["previous"] = serde_json::json!(previous);
        chain::append(&tx, "ca-activated", name, None, &detail.to_string())?;
        tx.commit().map_err(LedgerError::sql("commit"))?;
        Ok(previous)
    }

    /// Ends issuance under a CA that is not active. Its certificate stays, so its devices still verify.
    pub fn retire_ca(&mut self, name: &str, detail_extra: serde_json::Value) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        let n = tx
            .execute(
                "UPDATE cas SET state = 'retired', retired_at = ?2 WHERE name = ?1 AND state IN ('ready', 'pending')",
                params![name, now_text()],
            )
            .map_err(LedgerError::sql("retire CA"))?;
        if n != 1 {
            return Err(LedgerError::Corrupt(format!("CA {name} cannot be retired")));
        }
        let row = tx
            .query_row(&format!("SELECT {COLUMNS} FROM cas WHERE name = ?1"), [name], from_row)
            .map_err(LedgerError::sql("read CA"))?;
        let mut detail: serde_json::Value =
            serde_json::from_str(&ca_detail(&row, CaState::Retired)).unwrap_or_default();
        detail["aws"] = detail_extra;
        chain::append(&tx, "ca-retired", name, None, &detail.to_string())?;
        tx.commit().map_err(LedgerError::sql("commit"))
    }
}

/// The chained record of a CA change: what an auditor needs to tie certificates to this CA.
pub(crate) fn ca_detail(row: &CaRow, state: CaState) -> String {
    serde_json::json!({
        "name": row.name,
        "state": state.as_str(),
        "key_uri": row.key_uri,
        "key_type": row.key_type,
        "subject": row.subject,
        "fingerprint": row.fingerprint,
        "not_after": row.not_after,
    })
    .to_string()
}

//! Checkpoints: the chain head (last event's hash, its seq, the issuance count, the time) signed by a
//! key in the HSM. A ledger rolled back or truncated behind a checkpoint no longer contains the head
//! the checkpoint signed; a forged checkpoint does not verify under the CA's certificate.

use super::{LedgerError, chain, now_text};
use rusqlite::{Connection, Row, params};
use serde::Serialize;

/// One stored checkpoint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: i64,
    pub at: String,
    pub seq: i64,
    pub head_hash: String,
    pub issuances: i64,
    /// The signer's name: a CA's name, or the audit key's label (`signer_kind`).
    pub ca_name: String,
    pub key_uri: String,
    /// `ca` or `audit-key` (schema 5).
    pub signer_kind: String,
    /// The exact text that was signed.
    pub signed: String,
    pub signature: String,
}

/// The chain head a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub head_hash: String,
    pub issuances: i64,
    pub at: String,
}

/// The kind of key that signs checkpoints: a CA's, or the dedicated audit key (`[audit] key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerKind {
    Ca,
    AuditKey,
}

impl SignerKind {
    /// As stored in `checkpoints.signer_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignerKind::Ca => "ca",
            SignerKind::AuditKey => "audit-key",
        }
    }

    pub fn parse(s: &str) -> Option<SignerKind> {
        match s {
            "ca" => Some(SignerKind::Ca),
            "audit-key" => Some(SignerKind::AuditKey),
            _ => None,
        }
    }
}

impl Head {
    /// The exact text a checkpoint of this head signs, by a key of `kind` named `name`.
    pub fn message_by(&self, kind: SignerKind, name: &str) -> String {
        message_by(kind, self.seq, &self.head_hash, self.issuances, &self.at, name)
    }
}

/// The text a checkpoint signs.
pub fn message(seq: i64, head_hash: &str, issuances: i64, at: &str, ca_name: &str) -> String {
    message_by(SignerKind::Ca, seq, head_hash, issuances, at, ca_name)
}

/// The text a checkpoint signs: its last line names the signer, `ca=NAME` for a CA key, `audit-key=LABEL` for the
/// audit key.
pub fn message_by(kind: SignerKind, seq: i64, head_hash: &str, issuances: i64, at: &str, name: &str) -> String {
    let signer = match kind {
        SignerKind::Ca => "ca",
        SignerKind::AuditKey => "audit-key",
    };
    format!("station-checkpoint-v1\nseq={seq}\nhead={head_hash}\nissuances={issuances}\nat={at}\n{signer}={name}\n")
}

/// The current chain head. The signature is made afterwards, outside any write transaction (an HSM call
/// must never hold the ledger's write lock), and stored with [`store`]. The issuance count comes from the per-bench
/// counts the triggers keep (schema 4): this runs on the writer's thread, where counting millions of rows would hold
/// every bench's commit.
pub fn head(conn: &Connection) -> Result<Head, LedgerError> {
    let (seq, head_hash) = chain::head(conn)?;
    let issuances: i64 = conn
        .query_row("SELECT COALESCE(SUM(issued), 0) FROM bench_counts", [], |r| r.get(0))
        .map_err(LedgerError::sql("count"))?;
    Ok(Head { seq, head_hash, issuances, at: now_text() })
}

/// Issuance rows added since the newest checkpoint (all of them when there is none): the per-bench counts against
/// that checkpoint's count. Two indexed reads, whatever the ledger's size.
pub fn issued_since_last(conn: &Connection) -> Result<u64, LedgerError> {
    let total: i64 = conn
        .query_row("SELECT COALESCE(SUM(issued), 0) FROM bench_counts", [], |r| r.get(0))
        .map_err(LedgerError::sql("count"))?;
    let last: i64 = conn
        .query_row("SELECT COALESCE((SELECT issuances FROM checkpoints ORDER BY id DESC LIMIT 1), 0)", [], |r| r.get(0))
        .map_err(LedgerError::sql("read checkpoints"))?;
    Ok(u64::try_from(total - last).unwrap_or(0))
}

/// Stores a checkpoint of `head` signed (hex `signature`) by the key at `key_uri`, of `kind`, named `ca_name`.
pub fn store(
    conn: &Connection,
    head: &Head,
    kind: SignerKind,
    ca_name: &str,
    key_uri: &str,
    signature: &[u8],
) -> Result<Checkpoint, LedgerError> {
    let signed = head.message_by(kind, ca_name);
    let signature = hex::encode(signature);
    conn.execute(
        "INSERT INTO checkpoints (at, seq, head_hash, issuances, ca_name, key_uri, signed, signature, signer_kind) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![head.at, head.seq, head.head_hash, head.issuances, ca_name, key_uri, signed, signature, kind.as_str()],
    )
    .map_err(LedgerError::sql("insert checkpoint"))?;
    Ok(Checkpoint {
        id: conn.last_insert_rowid(),
        at: head.at.clone(),
        seq: head.seq,
        head_hash: head.head_hash.clone(),
        issuances: head.issuances,
        ca_name: ca_name.into(),
        key_uri: key_uri.into(),
        signer_kind: kind.as_str().into(),
        signed,
        signature,
    })
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        id: r.get(0)?,
        at: r.get(1)?,
        seq: r.get(2)?,
        head_hash: r.get(3)?,
        issuances: r.get(4)?,
        ca_name: r.get(5)?,
        key_uri: r.get(6)?,
        signed: r.get(7)?,
        signature: r.get(8)?,
        signer_kind: r.get(9)?,
    })
}

/// Every checkpoint, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<Checkpoint>, LedgerError> {
    let mut st = conn
        .prepare("SELECT id, at, seq, head_hash, issuances, ca_name, key_uri, signed, signature, signer_kind FROM checkpoints \
             ORDER BY id")
        .map_err(LedgerError::sql("read checkpoints"))?;
    let rows = st.query_map([], from_row).map_err(LedgerError::sql("read checkpoints"))?;
    rows.collect::<Result<_, _>>().map_err(LedgerError::sql("read checkpoints"))
}

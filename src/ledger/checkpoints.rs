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
    pub ca_name: String,
    pub key_uri: String,
    /// The exact text that was signed.
    pub signed: String,
    pub signature: String,
}

/// Signs bytes with an HSM key (the CA's, or a dedicated audit key).
pub type Signer<'a> = &'a (dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync);

/// The text a checkpoint signs.
pub fn message(seq: i64, head_hash: &str, issuances: i64, at: &str, ca_name: &str) -> String {
    format!("station-checkpoint-v1\nseq={seq}\nhead={head_hash}\nissuances={issuances}\nat={at}\nca={ca_name}\n")
}

/// Signs the current head and stores the checkpoint (inside the caller's transaction).
pub fn create(conn: &Connection, ca_name: &str, key_uri: &str, sign: Signer<'_>) -> Result<Checkpoint, LedgerError> {
    let (seq, head_hash) = chain::head(conn)?;
    let issuances: i64 =
        conn.query_row("SELECT COUNT(*) FROM issuances", [], |r| r.get(0)).map_err(LedgerError::sql("count"))?;
    let at = now_text();
    let signed = message(seq, &head_hash, issuances, &at, ca_name);
    let signature = hex::encode(sign(signed.as_bytes()).map_err(LedgerError::Signing)?);
    conn.execute(
        "INSERT INTO checkpoints (at, seq, head_hash, issuances, ca_name, key_uri, signed, signature) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        params![at, seq, head_hash, issuances, ca_name, key_uri, signed, signature],
    )
    .map_err(LedgerError::sql("insert checkpoint"))?;
    Ok(Checkpoint {
        id: conn.last_insert_rowid(),
        at,
        seq,
        head_hash,
        issuances,
        ca_name: ca_name.into(),
        key_uri: key_uri.into(),
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
    })
}

/// Every checkpoint, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<Checkpoint>, LedgerError> {
    let mut st = conn
        .prepare("SELECT id, at, seq, head_hash, issuances, ca_name, key_uri, signed, signature FROM checkpoints ORDER BY id")
        .map_err(LedgerError::sql("read checkpoints"))?;
    let rows = st.query_map([], from_row).map_err(LedgerError::sql("read checkpoints"))?;
    rows.collect::<Result<_, _>>().map_err(LedgerError::sql("read checkpoints"))
}

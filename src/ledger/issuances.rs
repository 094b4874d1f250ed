//! Issuance rows: one per certificate. Inserted only by the writer thread, inside the transaction that
//! also appends the chained event, so a row and its event are durable together.

use super::{LedgerError, chain};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// A certificate as the ledger holds it.
#[derive(Debug, Clone, Serialize)]
pub struct IssuanceRow {
    pub id: i64,
    pub serial: String,
    pub cert_serial: String,
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    #[serde(skip)]
    pub chain_pem: String,
    pub spki_sha256: String,
    pub cert_id: String,
    pub ca_name: String,
    pub bench: String,
    pub operator: String,
    pub issued_at: String,
    pub not_after: String,
    pub state: String,
    pub reissue_of: Option<i64>,
    pub reissue_reason: Option<String>,
    pub superseded_by: Option<i64>,
}

/// A certificate signed and waiting to be committed.
#[derive(Debug, Clone)]
pub struct NewIssuance {
    pub serial: String,
    pub cert_serial: String,
    pub cert_der: Vec<u8>,
    pub chain_pem: String,
    pub spki_sha256: String,
    pub cert_id: String,
    pub ca_name: String,
    pub bench: String,
    pub operator: String,
    pub issued_at: String,
    pub not_after: String,
    /// With `Some((old_id, reason))`, this certificate replaces the current one for its serial.
    pub reissue: Option<(i64, String)>,
    /// The station-allocated number this issuance consumes.
    pub reservation: Option<i64>,
    pub station: String,
    /// HELLO's model and firmware (empty for `station issue`); kept in the chained event.
    pub device_model: String,
    pub device_firmware: String,
}

pub const COLUMNS: &str = "id, serial, cert_serial, cert_der, chain_pem, spki_sha256, cert_id, ca_name, bench, \
     operator, issued_at, not_after, state, reissue_of, reissue_reason, superseded_by";

pub fn from_row(r: &Row<'_>) -> rusqlite::Result<IssuanceRow> {
    Ok(IssuanceRow {
        id: r.get(0)?,
        serial: r.get(1)?,
        cert_serial: r.get(2)?,
        cert_der: r.get(3)?,
        chain_pem: r.get(4)?,
        spki_sha256: r.get(5)?,
        cert_id: r.get(6)?,
        ca_name: r.get(7)?,
        bench: r.get(8)?,
        operator: r.get(9)?,
        issued_at: r.get(10)?,
        not_after: r.get(11)?,
        state: r.get(12)?,
        reissue_of: r.get(13)?,
        reissue_reason: r.get(14)?,
        superseded_by: r.get(15)?,
    })
}

/// The current (not superseded) issuance for a serial.
pub fn current_by_serial(conn: &Connection, serial: &str) -> Result<Option<IssuanceRow>, LedgerError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM issuances WHERE serial = ?1 AND superseded_by IS NULL"))
        .and_then(|mut st| st.query_row([serial], from_row).optional())
        .map_err(LedgerError::sql("look up serial"))
}

/// The issuance of a certificate (current or superseded), by its ID: the hex SHA-256 of its DER.
pub fn by_cert_id(conn: &Connection, cert_id: &str) -> Result<Option<IssuanceRow>, LedgerError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM issuances WHERE cert_id = ?1"))
        .and_then(|mut st| st.query_row([cert_id], from_row).optional())
        .map_err(LedgerError::sql("look up certificate"))
}

/// The current issuance for a public key (hex SHA-256 of its SPKI).
pub fn current_by_key(conn: &Connection, spki_sha256: &str) -> Result<Option<IssuanceRow>, LedgerError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM issuances WHERE spki_sha256 = ?1 AND superseded_by IS NULL"))
        .and_then(|mut st| st.query_row([spki_sha256], from_row).optional())
        .map_err(LedgerError::sql("look up key"))
}

/// The chained record of an issuance: every immutable field an audit ties the row to.
pub fn issued_detail(id: i64, n: &NewIssuance) -> String {
    serde_json::json!({
        "id": id,
        "serial": n.serial,
        "cert_serial": n.cert_serial,
        "cert_id": n.cert_id,
        "spki_sha256": n.spki_sha256,
        "ca": n.ca_name,
        "bench": n.bench,
        "operator": n.operator,
        "station": n.station,
        "issued_at": n.issued_at,
        "not_after": n.not_after,
        "reissue_of": n.reissue.as_ref().map(|r| r.0),
        "reason": n.reissue.as_ref().map(|r| r.1.clone()),
        "device_model": n.device_model,
        "device_firmware": n.device_firmware,
    })
    .to_string()
}

/// Why an insert could not happen.
#[derive(Debug)]
pub enum InsertConflict {
    /// The serial has a current certificate (the row) that this insert did not expect.
    Serial(IssuanceRow),
    /// The key has a current certificate under another serial.
    Key(IssuanceRow),
}

/// Inserts an issuance and its chained event. Runs inside the writer's transaction.
pub(crate) fn insert(conn: &Connection, n: &NewIssuance) -> Result<Result<i64, InsertConflict>, LedgerError> {
    if let Some(cur) = current_by_serial(conn, &n.serial)?
        && n.reissue.as_ref().map(|r| r.0) != Some(cur.id)
    {
        return Ok(Err(InsertConflict::Serial(cur)));
    }
    if let Some(cur) = current_by_key(conn, &n.spki_sha256)? {
        return Ok(Err(InsertConflict::Key(cur)));
    }
    // A re-issue supersedes the old row first (the serial index admits one current row), pointing at
    // the id the new row is about to get; the foreign key is checked at commit.
    let id: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM issuances")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(LedgerError::sql("next issuance id"))?;
    if let Some((old, _)) = &n.reissue {
        conn.execute("UPDATE issuances SET superseded_by = ?1 WHERE id = ?2", params![id, old])
            .map_err(LedgerError::sql("supersede issuance"))?;
    }
    conn.prepare_cached(
        "INSERT INTO issuances (id, serial, cert_serial, cert_der, chain_pem, spki_sha256, cert_id, ca_name, bench, \
         operator, issued_at, not_after, state, reissue_of, reissue_reason) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,'issued',?13,?14)",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            n.serial,
            n.cert_serial,
            n.cert_der,
            n.chain_pem,
            n.spki_sha256,
            n.cert_id,
            n.ca_name,
            n.bench,
            n.operator,
            n.issued_at,
            n.not_after,
            n.reissue.as_ref().map(|r| r.0),
            n.reissue.as_ref().map(|r| r.1.as_str()),
        ])
    })
    .map_err(LedgerError::sql("insert issuance"))?;
    if let Some(number) = n.reservation {
        conn.prepare_cached("UPDATE serial_reservations SET consumed = 1 WHERE number = ?1")
            .and_then(|mut st| st.execute([number]))
            .map_err(LedgerError::sql("consume serial"))?;
    }
    let kind = if n.reissue.is_some() { "reissued" } else { "issued" };
    chain::append(conn, kind, &n.serial, Some(id), &issued_detail(id, n))?;
    Ok(Ok(id))
}

/// Moves an issuance forward (issued → delivered → confirmed, or issued → confirmed) and chains the event. Never moves
/// back: the event is chained either way.
pub(crate) fn advance(conn: &Connection, id: i64, state: &str, kind: &str, detail: &str) -> Result<(), LedgerError> {
    let serial: Option<String> = conn
        .prepare_cached("SELECT serial FROM issuances WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .map_err(LedgerError::sql("read issuance"))?;
    let Some(serial) = serial else {
        return Err(LedgerError::Corrupt(format!("issuance {id} does not exist")));
    };
    conn.prepare_cached(
        "UPDATE issuances SET state = ?2 WHERE id = ?1 AND (state = 'issued' OR (state = 'delivered' AND ?2 = 'confirmed'))",
    )
    .and_then(|mut st| st.execute(params![id, state]))
    .map_err(LedgerError::sql("update issuance state"))?;
    chain::append(conn, kind, &serial, Some(id), detail)?;
    Ok(())
}

//! The hash chain over ledger events.
//!
//! `row_hash = SHA-256(prev_hash ‖ canonical(row))`, where `canonical` is each of seq, at, kind, subject,
//! ref_id and detail as a 4-byte big-endian length followed by its UTF-8 bytes (ref_id as decimal, or
//! empty). The first row's prev_hash is `GENESIS`. Hashes are stored as lower-case hex.

use super::LedgerError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// SHA-256("station ledger genesis v1"), the prev_hash of event 1.
pub const GENESIS: &str = "2db736d23806246791598e14160e3fa01bf6f5c5f98ff06cbc395ebce5f2e6a1";

/// One chained event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub ref_id: Option<i64>,
    pub detail: String,
    pub prev_hash: String,
    pub row_hash: String,
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub events: i64,
    pub head: String,
    /// The first event that does not verify, and why.
    pub first_bad: Option<(i64, String)>,
}

/// The hash of one event given its predecessor's hash.
pub fn row_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    kind: &str,
    subject: &str,
    ref_id: Option<i64>,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(hex::decode(prev_hash).unwrap_or_else(|_| prev_hash.as_bytes().to_vec()));
    let rid = ref_id.map(|r| r.to_string()).unwrap_or_default();
    for field in [seq.to_string().as_str(), at, kind, subject, rid.as_str(), detail] {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The last event's (seq, row_hash), or (0, GENESIS) for an empty chain.
pub fn head(conn: &Connection) -> Result<(i64, String), LedgerError> {
    let last = conn
        .prepare_cached("SELECT seq, row_hash FROM events ORDER BY seq DESC LIMIT 1")
        .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(LedgerError::sql("read chain head"))?;
    Ok(last.unwrap_or((0, GENESIS.to_string())))
}

/// Appends an event. Call inside the transaction that makes the change it records.
pub fn append(
    conn: &Connection,
    kind: &str,
    subject: &str,
    ref_id: Option<i64>,
    detail: &str,
) -> Result<Event, LedgerError> {
    let (last, prev_hash) = head(conn)?;
    let seq = last + 1;
    let at = super::now_text();
    let row_hash = row_hash(&prev_hash, seq, &at, kind, subject, ref_id, detail);
    conn.prepare_cached(
        "INSERT INTO events (seq, at, kind, subject, ref_id, detail, prev_hash, row_hash) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
    )
    .and_then(|mut st| st.execute(params![seq, at, kind, subject, ref_id, detail, prev_hash, row_hash]))
    .map_err(LedgerError::sql("append event"))?;
    Ok(Event {
        seq,
        at,
        kind: kind.into(),
        subject: subject.into(),
        ref_id,
        detail: detail.into(),
        prev_hash,
        row_hash,
    })
}

/// Up to `limit` events after `after`, in order (the forwarder's batches).
pub fn after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Event>, LedgerError> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, at, kind, subject, ref_id, detail, prev_hash, row_hash FROM events WHERE seq > ?1 \
             ORDER BY seq LIMIT ?2",
        )
        .map_err(LedgerError::sql("read events"))?;
    let rows = st.query_map(params![after, limit as i64], from_row).map_err(LedgerError::sql("read events"))?;
    rows.collect::<Result<_, _>>().map_err(LedgerError::sql("read events"))
}

/// The event `seq`, if the chain has it.
pub fn at(conn: &Connection, seq: i64) -> Result<Option<Event>, LedgerError> {
    conn.prepare_cached("SELECT seq, at, kind, subject, ref_id, detail, prev_hash, row_hash FROM events WHERE seq = ?1")
        .and_then(|mut st| st.query_row([seq], from_row).optional())
        .map_err(LedgerError::sql("read event"))
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        ref_id: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        row_hash: r.get(7)?,
    })
}

/// Walks the whole chain in order, calling `visit` for each event that verifies; stops at the first
/// break and names it.
pub fn walk(conn: &Connection, mut visit: impl FnMut(&Event)) -> Result<ChainReport, LedgerError> {
    let mut st = conn
        .prepare("SELECT seq, at, kind, subject, ref_id, detail, prev_hash, row_hash FROM events ORDER BY seq")
        .map_err(LedgerError::sql("read events"))?;
    let rows = st.query_map([], from_row).map_err(LedgerError::sql("read events"))?;
    let (mut expect_seq, mut prev) = (1i64, GENESIS.to_string());
    for row in rows {
        let e = row.map_err(LedgerError::sql("read events"))?;
        let bad =
            |why: String| ChainReport { events: expect_seq - 1, head: prev.clone(), first_bad: Some((e.seq, why)) };
        if e.seq != expect_seq {
            return Ok(bad(format!("expected event {expect_seq} but found {}: events are missing", e.seq)));
        }
        if e.prev_hash != prev {
            return Ok(bad("prev_hash does not match the previous event's hash".into()));
        }
        let want = row_hash(&prev, e.seq, &e.at, &e.kind, &e.subject, e.ref_id, &e.detail);
        if e.row_hash != want {
            return Ok(bad("row_hash does not match the row's content: the row was altered".into()));
        }
        visit(&e);
        prev = e.row_hash;
        expect_seq += 1;
    }
    Ok(ChainReport { events: expect_seq - 1, head: prev, first_bad: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_the_documented_constant() {
        assert_eq!(GENESIS, hex::encode(Sha256::digest(b"station ledger genesis v1")));
    }
}

//! Serial blocks leased from the fleet registry. Recorded by the writer thread, with a chained `serial-leased`
//! event, before any number of the block is reserved.

use super::{LedgerError, chain, now_text};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// One block of station serials: `prefix` + the numbers `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The registry's lease id.
    pub id: i64,
    pub prefix: String,
    pub first: u64,
    pub last: u64,
}

/// Records a lease and chains it. Recording one twice (a retry after a lost reply) changes nothing.
pub(crate) fn record(conn: &Connection, l: &Lease) -> Result<(), LedgerError> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT id FROM serial_leases WHERE id = ?1")
        .and_then(|mut st| st.query_row([l.id], |r| r.get(0)).optional())
        .map_err(LedgerError::sql("read leases"))?;
    if known.is_some() {
        return Ok(());
    }
    conn.prepare_cached("INSERT INTO serial_leases (id, prefix, first, last, leased_at) VALUES (?1,?2,?3,?4,?5)")
        .and_then(|mut st| st.execute(params![l.id, l.prefix, l.first as i64, l.last as i64, now_text()]))
        .map_err(LedgerError::sql("record lease"))?;
    let detail = serde_json::json!({ "lease": l.id, "prefix": l.prefix, "first": l.first, "last": l.last });
    chain::append(conn, "serial-leased", &l.prefix, None, &detail.to_string())?;
    Ok(())
}

/// The next number to reserve above `max` (the highest reserved so far, 0 for none) inside a lease of `prefix`.
pub(crate) fn next_number(conn: &Connection, prefix: &str, max: u64) -> Result<Option<u64>, LedgerError> {
    conn.prepare_cached(
        "SELECT CASE WHEN ?2 + 1 >= first THEN ?2 + 1 ELSE first END FROM serial_leases \
         WHERE prefix = ?1 AND last > ?2 ORDER BY first LIMIT 1",
    )
    .and_then(|mut st| st.query_row(params![prefix, max as i64], |r| r.get::<_, i64>(0)).optional())
    .map(|n| n.map(|n| n as u64))
    .map_err(LedgerError::sql("read leases"))
}

/// How many leased numbers of `prefix` are not reserved yet (the free reservations not counted).
pub fn remaining(conn: &Connection, prefix: &str) -> Result<u64, LedgerError> {
    let max: i64 = conn
        .query_row("SELECT COALESCE(MAX(number), 0) FROM serial_reservations", [], |r| r.get(0))
        .map_err(LedgerError::sql("read reservations"))?;
    let left: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(last - MAX(first, ?2 + 1) + 1), 0) FROM serial_leases WHERE prefix = ?1 AND last > ?2",
            params![prefix, max],
            |r| r.get(0),
        )
        .map_err(LedgerError::sql("read leases"))?;
    let free: i64 = conn
        .query_row("SELECT COUNT(*) FROM serial_reservations WHERE consumed = 0", [], |r| r.get(0))
        .map_err(LedgerError::sql("read reservations"))?;
    Ok((left + free).max(0) as u64)
}

/// Every lease, oldest first.
pub fn all(conn: &Connection) -> Result<Vec<Lease>, LedgerError> {
    let mut st = conn
        .prepare("SELECT id, prefix, first, last FROM serial_leases ORDER BY id")
        .map_err(LedgerError::sql("read leases"))?;
    let rows = st
        .query_map([], |r| {
            Ok(Lease {
                id: r.get(0)?,
                prefix: r.get(1)?,
                first: r.get::<_, i64>(2)? as u64,
                last: r.get::<_, i64>(3)? as u64,
            })
        })
        .map_err(LedgerError::sql("read leases"))?;
    rows.collect::<Result<_, _>>().map_err(LedgerError::sql("read leases"))
}

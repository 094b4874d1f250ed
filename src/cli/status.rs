//! `station status`: per-bench counts and the last device, read from the ledger.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::ledger::LedgerError;
use serde::Serialize;

#[derive(Serialize)]
struct BenchStatus {
    bench: String,
    issued: i64,
    confirmed: i64,
    unconfirmed: i64,
    refusals: i64,
    last_serial: Option<String>,
    last_at: Option<String>,
    last_state: Option<String>,
}

#[derive(Serialize)]
struct Status {
    station: String,
    active_ca: Option<String>,
    benches: Vec<BenchStatus>,
}

pub fn run(cli: &Cli) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let ledger = st.ledger()?;
    let conn = ledger.conn();
    let mut q = conn
        .prepare(
            // bench_counts is kept by triggers with the rows (schema 4): constant time on any size of ledger.
            "SELECT c.bench, c.issued, c.confirmed, c.refused, \
               (SELECT serial || '|' || issued_at || '|' || state FROM issuances i WHERE i.id = c.last_id) \
             FROM bench_counts c ORDER BY c.bench",
        )
        .map_err(LedgerError::sql("read bench status"))?;
    let benches: Vec<BenchStatus> = q
        .query_map([], |r| {
            let last: Option<String> = r.get(4)?;
            let mut parts = last.as_deref().unwrap_or("").splitn(3, '|').map(String::from);
            let (issued, confirmed): (i64, i64) = (r.get(1)?, r.get(2)?);
            Ok(BenchStatus {
                bench: r.get(0)?,
                issued,
                confirmed,
                unconfirmed: issued - confirmed,
                refusals: r.get(3)?,
                last_serial: parts.next().filter(|s| !s.is_empty()),
                last_at: parts.next(),
                last_state: parts.next(),
            })
        })
        .map_err(LedgerError::sql("read bench status"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(LedgerError::sql("read bench status"))?;
    let status =
        Status { station: st.config.station.id.clone(), active_ca: ledger.active_ca()?.map(|c| c.name), benches };
    let mut text = format!(
        "station {}  active CA {}\n{:<12} {:>8} {:>10} {:>12} {:>9}  {}\n",
        status.station,
        status.active_ca.as_deref().unwrap_or("(none)"),
        "BENCH",
        "ISSUED",
        "CONFIRMED",
        "UNCONFIRMED",
        "REFUSED",
        "LAST DEVICE"
    );
    for b in &status.benches {
        text += &format!(
            "{:<12} {:>8} {:>10} {:>12} {:>9}  {} {} {}\n",
            b.bench,
            b.issued,
            b.confirmed,
            b.unconfirmed,
            b.refusals,
            b.last_serial.as_deref().unwrap_or("-"),
            b.last_state.as_deref().unwrap_or(""),
            b.last_at.as_deref().unwrap_or("")
        );
    }
    if status.benches.is_empty() {
        text += "(nothing issued yet)\n";
    }
    Ok(Output::new(status, text.trim_end()))
}

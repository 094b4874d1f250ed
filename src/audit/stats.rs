//! `audit stats`: issuances, re-issues and refusals (by code), grouped.

use crate::Result;
use crate::ledger::{Ledger, LedgerError};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Day,
    Bench,
    Ca,
    Operator,
}

/// One group's counts.
#[derive(Debug, Serialize, Default)]
pub struct Group {
    pub key: String,
    pub issued: i64,
    pub reissued: i64,
    pub confirmed: i64,
    pub refusals: BTreeMap<String, i64>,
}

pub fn stats(ledger: &Ledger, by: By) -> Result<Vec<Group>> {
    let (ikey, rkey) = match by {
        By::Day => ("substr(issued_at, 1, 10)", Some("substr(at, 1, 10)")),
        By::Bench => ("bench", Some("bench")),
        By::Ca => ("ca_name", Some("ca_name")),
        By::Operator => ("operator", None),
    };
    let conn = ledger.conn();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut st = conn
        .prepare(&format!(
            "SELECT {ikey}, SUM(reissue_of IS NULL), SUM(reissue_of IS NOT NULL), SUM(state = 'confirmed') \
             FROM issuances GROUP BY 1"
        ))
        .map_err(LedgerError::sql("stats"))?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))
        .map_err(LedgerError::sql("stats"))?;
    for row in rows {
        let (key, issued, reissued, confirmed) = row.map_err(LedgerError::sql("stats"))?;
        let g = groups.entry(key.clone()).or_insert_with(|| Group { key, ..Default::default() });
        (g.issued, g.reissued, g.confirmed) = (issued, reissued, confirmed);
    }
    if let Some(rkey) = rkey {
        let mut st = conn
            .prepare(&format!("SELECT {rkey}, code, COUNT(*) FROM refusals GROUP BY 1, 2"))
            .map_err(LedgerError::sql("stats"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
            .map_err(LedgerError::sql("stats"))?;
        for row in rows {
            let (key, code, n) = row.map_err(LedgerError::sql("stats"))?;
            groups.entry(key.clone()).or_insert_with(|| Group { key, ..Default::default() }).refusals.insert(code, n);
        }
    }
    Ok(groups.into_values().collect())
}

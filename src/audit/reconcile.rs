//! `audit reconcile`: a production order's serial list against what was issued.

use crate::Result;
use crate::ledger::{Ledger, LedgerError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What differs between the order and the ledger.
#[derive(Debug, Serialize, Default)]
pub struct Reconciliation {
    pub expected: usize,
    pub issued: usize,
    pub expected_not_issued: Vec<String>,
    pub issued_not_expected: Vec<String>,
    /// Serials with more than one certificate (re-issues), and how many.
    pub issued_more_than_once: Vec<(String, i64)>,
    /// Serials whose current certificate the device never acknowledged (no STORED).
    pub issued_never_confirmed: Vec<String>,
}

impl Reconciliation {
    pub fn clean(&self) -> bool {
        self.expected_not_issued.is_empty()
            && self.issued_not_expected.is_empty()
            && self.issued_more_than_once.is_empty()
            && self.issued_never_confirmed.is_empty()
    }
}

/// `expected`: one serial per line; blank lines and `#` comments are skipped.
pub fn reconcile(ledger: &Ledger, expected_text: &str) -> Result<Reconciliation> {
    let expected: BTreeSet<String> = expected_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let mut st = ledger
        .conn()
        .prepare(
            "SELECT serial, COUNT(*), MAX(CASE WHEN superseded_by IS NULL AND state = 'confirmed' THEN 1 ELSE 0 END) \
             FROM issuances GROUP BY serial ORDER BY serial",
        )
        .map_err(LedgerError::sql("reconcile"))?;
    let issued: BTreeMap<String, (i64, bool)> = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)?, r.get::<_, i64>(2)? == 1))))
        .map_err(LedgerError::sql("reconcile"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(LedgerError::sql("reconcile"))?;
    Ok(Reconciliation {
        expected: expected.len(),
        issued: issued.len(),
        expected_not_issued: expected.iter().filter(|s| !issued.contains_key(*s)).cloned().collect(),
        issued_not_expected: issued.keys().filter(|s| !expected.contains(*s)).cloned().collect(),
        issued_more_than_once: issued.iter().filter(|(_, (n, _))| *n > 1).map(|(s, (n, _))| (s.clone(), *n)).collect(),
        issued_never_confirmed: issued.iter().filter(|(_, (_, ok))| !ok).map(|(s, _)| s.clone()).collect(),
    })
}

//! Where the issued certificates are read from: one station's ledger (SQLite), or every station's issuances in the
//! fleet registry (PostgreSQL). Each keeps what AWS reported in a temporary table of its own session for the counts.

use super::{Group, Issued, Known};
use crate::Result;
use crate::aws::client::DeviceCert;
use crate::ledger::{Ledger, LedgerError};
use crate::registry::RegistryError;
use std::collections::HashMap;

/// The ledger as the source.
pub struct LedgerIssued<'a> {
    ledger: &'a Ledger,
    station: String,
    path: String,
}

impl<'a> LedgerIssued<'a> {
    pub fn new(ledger: &'a Ledger, station: &str, path: &std::path::Path) -> Result<LedgerIssued<'a>> {
        ledger
            .conn()
            .execute_batch(
                "DROP TABLE IF EXISTS temp.aws_seen;
                 CREATE TEMP TABLE aws_seen (cert_id TEXT PRIMARY KEY, status TEXT NOT NULL) WITHOUT ROWID;",
            )
            .map_err(LedgerError::sql("reconcile: temp table"))?;
        Ok(LedgerIssued { ledger, station: station.into(), path: path.display().to_string() })
    }
}

impl Issued for LedgerIssued<'_> {
    fn source(&self) -> String {
        format!("ledger {} (station {})", self.path, self.station)
    }

    fn cas(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self.ledger.cas()?.into_iter().filter_map(|c| c.fingerprint.map(|f| (c.name, f))).collect())
    }

    fn lookup(&mut self, ids: &[String]) -> Result<HashMap<String, Known>> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let marks = vec!["?"; ids.len()].join(",");
        let sql = format!(
            "SELECT cert_id, serial, bench, ca_name, issued_at, superseded_by IS NULL FROM issuances \
             WHERE cert_id IN ({marks})"
        );
        let mut st = self.ledger.conn().prepare(&sql).map_err(LedgerError::sql("reconcile: lookup"))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(ids), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Known {
                        serial: r.get(1)?,
                        station: self.station.clone(),
                        bench: r.get(2)?,
                        ca: r.get(3)?,
                        issued_at: r.get(4)?,
                        current: r.get(5)?,
                    },
                ))
            })
            .map_err(LedgerError::sql("reconcile: lookup"))?;
        for row in rows {
            let (id, k) = row.map_err(LedgerError::sql("reconcile: lookup"))?;
            out.insert(id, k);
        }
        Ok(out)
    }

    fn seen(&mut self, certs: &[DeviceCert]) -> Result<()> {
        let conn = self.ledger.conn();
        let mut st = conn
            .prepare_cached("INSERT OR IGNORE INTO temp.aws_seen (cert_id, status) VALUES (?1, ?2)")
            .map_err(LedgerError::sql("reconcile: seen"))?;
        for c in certs {
            st.execute([&c.certificate_id, &c.status]).map_err(LedgerError::sql("reconcile: seen"))?;
        }
        Ok(())
    }

    fn groups(&mut self) -> Result<Vec<Group>> {
        let mut st = self
            .ledger
            .conn()
            .prepare(
                "SELECT substr(i.issued_at, 1, 10), i.bench, i.ca_name, COUNT(*), COUNT(s.cert_id),
                        COALESCE(SUM(s.status = 'PENDING_ACTIVATION'), 0)
                   FROM issuances i LEFT JOIN temp.aws_seen s ON s.cert_id = i.cert_id
                  WHERE i.superseded_by IS NULL
                  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            )
            .map_err(LedgerError::sql("reconcile: counts"))?;
        let rows = st
            .query_map([], |r| {
                Ok(Group {
                    day: r.get(0)?,
                    station: self.station.clone(),
                    bench: r.get(1)?,
                    ca: r.get(2)?,
                    issued: r.get::<_, i64>(3)? as u64,
                    connected: r.get::<_, i64>(4)? as u64,
                    pending_activation: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(LedgerError::sql("reconcile: counts"))?;
        Ok(rows.collect::<rusqlite::Result<_>>().map_err(LedgerError::sql("reconcile: counts"))?)
    }
}

/// The fleet registry as the source: every station's issuances and CAs. The issuances are copied once into an
/// indexed temporary table of the session (the registry's view has no index on the certificate ID).
pub struct RegistryIssued {
    client: postgres::Client,
    target: String,
}

fn rq(op: &'static str) -> impl Fn(postgres::Error) -> RegistryError {
    move |e| crate::registry::query_error(op, "registry", &e)
}

impl RegistryIssued {
    pub fn new(mut client: postgres::Client, target: &str) -> Result<RegistryIssued> {
        client
            .batch_execute(
                "CREATE TEMP TABLE rec_known AS
                   SELECT i.certificate_id AS cert_id, i.serial, i.station_id, COALESCE(i.bench, '') AS bench,
                          i.ca, i.issued_at,
                          NOT EXISTS (SELECT 1 FROM registry.events r
                                       WHERE r.station_id = i.station_id AND r.kind = 'reissued'
                                         AND (r.detail::jsonb ->> 'reissue_of')::bigint = i.issuance_id) AS current
                     FROM registry.issuances i;
                 CREATE INDEX ON rec_known (cert_id);
                 CREATE TEMP TABLE rec_seen (cert_id text PRIMARY KEY, status text NOT NULL);",
            )
            .map_err(rq("copy the issuances"))?;
        Ok(RegistryIssued { client, target: target.into() })
    }
}

impl Issued for RegistryIssued {
    fn source(&self) -> String {
        format!("registry {}", self.target)
    }

    fn cas(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT string_agg(DISTINCT ca_name, '/' ORDER BY ca_name), fingerprint
                   FROM registry.station_cas GROUP BY fingerprint ORDER BY 1, 2",
                &[],
            )
            .map_err(rq("read the CAs"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn lookup(&mut self, ids: &[String]) -> Result<HashMap<String, Known>> {
        let rows = self
            .client
            .query(
                "SELECT cert_id, serial, station_id, bench, ca, issued_at, current FROM rec_known
                  WHERE cert_id = ANY($1)",
                &[&ids],
            )
            .map_err(rq("look up certificates"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let s = |i: usize| r.get::<_, Option<String>>(i).unwrap_or_default();
                (
                    s(0),
                    Known {
                        serial: s(1),
                        station: s(2),
                        bench: s(3),
                        ca: s(4),
                        issued_at: s(5),
                        current: r.get::<_, Option<bool>>(6).unwrap_or(true),
                    },
                )
            })
            .collect())
    }

    fn seen(&mut self, certs: &[DeviceCert]) -> Result<()> {
        let ids: Vec<&str> = certs.iter().map(|c| c.certificate_id.as_str()).collect();
        let statuses: Vec<&str> = certs.iter().map(|c| c.status.as_str()).collect();
        self.client
            .execute(
                "INSERT INTO rec_seen SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                &[&ids, &statuses],
            )
            .map_err(rq("record what AWS holds"))?;
        Ok(())
    }

    fn groups(&mut self) -> Result<Vec<Group>> {
        let rows = self
            .client
            .query(
                "SELECT substr(k.issued_at, 1, 10), k.station_id, k.bench, k.ca, count(*), count(s.cert_id),
                        count(*) FILTER (WHERE s.status = 'PENDING_ACTIVATION')
                   FROM rec_known k LEFT JOIN rec_seen s ON s.cert_id = k.cert_id
                  WHERE k.current
                  GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                &[],
            )
            .map_err(rq("count the issuances"))?;
        Ok(rows
            .iter()
            .map(|r| Group {
                day: r.get::<_, Option<String>>(0).unwrap_or_default(),
                station: r.get(1),
                bench: r.get(2),
                ca: r.get::<_, Option<String>>(3).unwrap_or_default(),
                issued: r.get::<_, i64>(4) as u64,
                connected: r.get::<_, i64>(5) as u64,
                pending_activation: r.get::<_, i64>(6) as u64,
            })
            .collect())
    }
}

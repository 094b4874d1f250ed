//! `audit reconcile --aws`: every certificate AWS IoT holds under the station's CAs, against what the station
//! issued (its ledger, or with a fleet registry every station's issuances).
//!
//! - a certificate under one of our CAs that no ledger has is a **stray**: a CA key that signed outside the
//!   station, or a ledger that lost a row;
//! - a certificate AWS holds as REVOKED or INACTIVE that the ledger holds as good, and a superseded (re-issued)
//!   certificate AWS still holds ACTIVE, are differences an auditor must see;
//! - every current issuance is counted as connected (AWS holds it: the device reached AWS IoT at least once) or
//!   not yet, per day, station, bench and CA.
//!
//! AWS is read page by page (250 certificates, within the account's rate limit) and each page is matched at once
//! through an index, so millions of certificates are never held in memory. What AWS reported is kept in a
//! temporary table beside the issuances (SQLite's temp schema, or a PostgreSQL session's), for the counts.

use crate::Result;
use crate::aws::client::DeviceCert;
use crate::ledger::{Ledger, LedgerError};
use crate::registry::RegistryError;
use serde::Serialize;
use std::collections::HashMap;

/// Listed differences are capped (the counts are not): a leaked key could put millions of strays in a report.
pub const LIST_LIMIT: usize = 1000;

/// The first strays of each pair are described (DescribeCertificate), so the report names their subjects: what the
/// key signed, for the security team. One call each, within the rate limit.
pub const DESCRIBE_STRAYS: usize = 50;

/// An issuance as the reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub serial: String,
    pub station: String,
    pub bench: String,
    pub ca: String,
    pub issued_at: String,
    /// False for a certificate a re-issue replaced.
    pub current: bool,
}

/// Where the issued certificates are read from: one ledger, or the fleet registry.
pub trait Issued {
    /// For the report: "ledger PATH (station S)" or "registry TARGET".
    fn source(&self) -> String;
    /// The CAs to ask AWS about: (name, fingerprint). A fingerprint is the CA's AWS certificate ID.
    fn cas(&mut self) -> Result<Vec<(String, String)>>;
    /// The issuances among `ids` (certificate IDs).
    fn lookup(&mut self, ids: &[String]) -> Result<HashMap<String, Known>>;
    /// Remembers what AWS reported for these known certificates, for [`Issued::groups`].
    fn seen(&mut self, certs: &[DeviceCert]) -> Result<()>;
    /// Current issuances per day, station, bench and CA, with how many AWS holds.
    fn groups(&mut self) -> Result<Vec<Group>>;
}

/// One certificate AWS holds that needs a look.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub region: String,
    pub ca: String,
    pub certificate_id: String,
    pub aws_status: String,
    pub aws_created: Option<String>,
    /// The certificate's subject, as AWS holds it (described for the first strays of each pair).
    pub subject: Option<String>,
    /// The ledger's view (absent for a stray).
    pub serial: Option<String>,
    pub station: Option<String>,
    pub bench: Option<String>,
    pub issued_at: Option<String>,
}

/// A list of findings, capped at [`LIST_LIMIT`], with the whole count.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Findings {
    pub count: u64,
    pub listed: Vec<Finding>,
}

impl Findings {
    fn push(&mut self, f: Finding) {
        self.count += 1;
        if self.listed.len() < LIST_LIMIT {
            self.listed.push(f);
        }
    }
}

/// Current issuances of one day, station, bench and CA.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Group {
    pub day: String,
    pub station: String,
    pub bench: String,
    pub ca: String,
    pub issued: u64,
    /// AWS holds the certificate (in any region asked): the device has connected.
    pub connected: u64,
    /// Of those, PENDING_ACTIVATION: registered by JITR and never activated (the rule did not run).
    pub pending_activation: u64,
}

/// One CA in one region, as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pair {
    pub region: String,
    pub ca: String,
    pub certificate_id: String,
    pub listed: u64,
    pub known: u64,
    pub stray: u64,
    /// Set when AWS could not be read for this pair: then nothing about it is proven.
    pub error: Option<PairError>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PairError {
    pub code: &'static str,
    pub message: String,
    pub remedy: String,
}

/// The whole reconciliation.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AwsReconciliation {
    pub source: String,
    pub pairs: Vec<Pair>,
    /// `stray-certificate`: under our CA, in no ledger.
    pub stray: Findings,
    /// `certificate-inactive-in-aws`: REVOKED or INACTIVE in AWS, a good current issuance in the ledger.
    pub inactive_in_aws: Findings,
    /// `superseded-active-in-aws`: replaced by a re-issue in the ledger, still ACTIVE in AWS.
    pub superseded_active: Findings,
    pub groups: Vec<Group>,
}

impl AwsReconciliation {
    /// The codes of what was found, most serious first.
    pub fn codes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.stray.count > 0 {
            out.push("stray-certificate");
        }
        if self.inactive_in_aws.count > 0 {
            out.push("certificate-inactive-in-aws");
        }
        if self.superseded_active.count > 0 {
            out.push("superseded-active-in-aws");
        }
        out
    }

    /// The first pair AWS could not be read for.
    pub fn first_error(&self) -> Option<&PairError> {
        self.pairs.iter().find_map(|p| p.error.as_ref())
    }

    /// Nothing found, and every pair was read.
    pub fn clean(&self) -> bool {
        self.codes().is_empty() && self.first_error().is_none()
    }
}

/// Statuses a good issuance must not have in AWS.
fn inactive(status: &str) -> bool {
    matches!(status, "REVOKED" | "INACTIVE" | "REGISTER_INACTIVE")
}

/// Matches one page of what AWS holds under a CA against the issuances, and records it.
pub fn match_page(
    issued: &mut dyn Issued,
    out: &mut AwsReconciliation,
    pair: usize,
    page: &[DeviceCert],
) -> Result<()> {
    let ids: Vec<String> = page.iter().map(|c| c.certificate_id.clone()).collect();
    let known = issued.lookup(&ids)?;
    let (region, ca) = (out.pairs[pair].region.clone(), out.pairs[pair].ca.clone());
    let mut seen = Vec::with_capacity(page.len());
    for c in page {
        out.pairs[pair].listed += 1;
        let k = known.get(&c.certificate_id);
        let finding = || Finding {
            region: region.clone(),
            ca: ca.clone(),
            certificate_id: c.certificate_id.clone(),
            aws_status: c.status.clone(),
            aws_created: c.created.clone(),
            subject: None,
            serial: k.map(|k| k.serial.clone()),
            station: k.map(|k| k.station.clone()),
            bench: k.map(|k| k.bench.clone()),
            issued_at: k.map(|k| k.issued_at.clone()),
        };
        match k {
            None => {
                out.pairs[pair].stray += 1;
                out.stray.push(finding());
            }
            Some(k) => {
                out.pairs[pair].known += 1;
                if k.current && inactive(&c.status) {
                    out.inactive_in_aws.push(finding());
                } else if !k.current && c.status == "ACTIVE" {
                    out.superseded_active.push(finding());
                }
                seen.push(c.clone());
            }
        }
    }
    issued.seen(&seen)
}

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

/// Reads every (CA, region) pair from AWS and matches it. Blocking: runs its own runtime, one page at a time.
pub fn reconcile(
    settings: &crate::aws::Settings,
    issued: &mut dyn Issued,
    progress: &dyn Fn(&Pair),
) -> Result<AwsReconciliation> {
    use crate::aws::client::{Iot, Limiter};
    let rt = crate::aws::runtime()?;
    let mut out = AwsReconciliation { source: issued.source(), ..Default::default() };
    let cas = issued.cas()?;
    for region in &settings.regions {
        let iot = rt.block_on(Iot::connect(settings, region, Limiter::new(settings.max_tps)));
        for (ca, id) in &cas {
            out.pairs.push(Pair {
                region: region.name.clone(),
                ca: ca.clone(),
                certificate_id: id.clone(),
                listed: 0,
                known: 0,
                stray: 0,
                error: None,
            });
            let i = out.pairs.len() - 1;
            let strays_before = out.stray.listed.len();
            let mut marker: Option<String> = None;
            loop {
                match rt.block_on(iot.certificates_by_ca_page(id, marker.as_deref())) {
                    Ok((page, next)) => {
                        match_page(issued, &mut out, i, &page)?;
                        match next {
                            Some(m) => marker = Some(m),
                            None => break,
                        }
                    }
                    Err(e) => {
                        out.pairs[i].error =
                            Some(PairError { code: e.code(), message: e.to_string(), remedy: e.remedy(settings) });
                        break;
                    }
                }
            }
            for f in out.stray.listed.iter_mut().skip(strays_before).take(DESCRIBE_STRAYS) {
                // A failed description leaves the subject unknown; the stray itself is proven by the listing.
                if let Ok(Some(d)) = rt.block_on(iot.describe_certificate(&f.certificate_id)) {
                    f.subject = d.subject;
                }
            }
            progress(&out.pairs[i]);
        }
    }
    out.groups = issued.groups()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory source, to test the matching rules alone.
    #[derive(Default)]
    struct Fake {
        known: HashMap<String, Known>,
        seen: Vec<String>,
    }

    impl Issued for Fake {
        fn source(&self) -> String {
            "fake".into()
        }
        fn cas(&mut self) -> Result<Vec<(String, String)>> {
            Ok(vec![("ca-1".into(), "c".repeat(64))])
        }
        fn lookup(&mut self, ids: &[String]) -> Result<HashMap<String, Known>> {
            Ok(ids.iter().filter_map(|i| self.known.get(i).map(|k| (i.clone(), k.clone()))).collect())
        }
        fn seen(&mut self, certs: &[DeviceCert]) -> Result<()> {
            self.seen.extend(certs.iter().map(|c| c.certificate_id.clone()));
            Ok(())
        }
        fn groups(&mut self) -> Result<Vec<Group>> {
            Ok(Vec::new())
        }
    }

    fn pair(error: Option<PairError>) -> Pair {
        Pair {
            region: "eu-west-1".into(),
            ca: "ca-1".into(),
            certificate_id: "x".into(),
            listed: 0,
            known: 0,
            stray: 0,
            error,
        }
    }

    fn known(serial: &str, current: bool) -> Known {
        Known {
            serial: serial.into(),
            station: "st".into(),
            bench: "b1".into(),
            ca: "ca-1".into(),
            issued_at: "2026-12-01T00:00:00Z".into(),
            current,
        }
    }

    fn cert(id: &str, status: &str) -> DeviceCert {
        DeviceCert {
            certificate_id: id.into(),
            status: status.into(),
            created: None,
            ca_certificate_id: None,
            subject: None,
        }
    }

    #[test]
    fn strays_inactive_and_superseded_are_told_apart() {
        let mut f = Fake::default();
        for (id, serial, current) in [("a", "S1", true), ("b", "S2", true), ("c", "S3", false), ("d", "S4", false)] {
            f.known.insert(id.into(), known(serial, current));
        }
        let mut out = AwsReconciliation { pairs: vec![pair(None)], ..Default::default() };
        let page = [
            cert("a", "ACTIVE"),
            cert("b", "REVOKED"),
            cert("c", "ACTIVE"),
            cert("d", "INACTIVE"),
            cert("z", "ACTIVE"),
            cert("y", "PENDING_ACTIVATION"),
        ];
        match_page(&mut f, &mut out, 0, &page).unwrap();
        assert_eq!((out.pairs[0].listed, out.pairs[0].known, out.pairs[0].stray), (6, 4, 2));
        let ids = |fs: &Findings| fs.listed.iter().map(|f| f.certificate_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&out.stray), ["z", "y"]);
        assert_eq!(out.stray.listed[0].serial, None);
        assert_eq!(ids(&out.inactive_in_aws), ["b"]);
        assert_eq!(out.inactive_in_aws.listed[0].serial.as_deref(), Some("S2"));
        assert_eq!(ids(&out.superseded_active), ["c"], "a superseded certificate AWS holds INACTIVE is fine");
        assert_eq!(f.seen, ["a", "b", "c", "d"], "strays are not counted as connected devices");
        assert_eq!(out.codes(), ["stray-certificate", "certificate-inactive-in-aws", "superseded-active-in-aws"]);
        assert!(!out.clean());
    }

    #[test]
    fn a_pair_that_could_not_be_read_is_not_clean() {
        let mut out = AwsReconciliation::default();
        assert!(out.clean());
        out.pairs.push(pair(Some(PairError {
            code: "aws-unreachable",
            message: String::new(),
            remedy: String::new(),
        })));
        assert!(out.codes().is_empty());
        assert!(!out.clean(), "an unread region proves nothing");
    }

    #[test]
    fn listed_findings_are_capped_but_counted() {
        let mut fs = Findings::default();
        for i in 0..LIST_LIMIT + 5 {
            fs.push(Finding {
                region: "r".into(),
                ca: "c".into(),
                certificate_id: i.to_string(),
                aws_status: "ACTIVE".into(),
                aws_created: None,
                subject: None,
                serial: None,
                station: None,
                bench: None,
                issued_at: None,
            });
        }
        assert_eq!((fs.count, fs.listed.len()), ((LIST_LIMIT + 5) as u64, LIST_LIMIT));
    }
}

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

mod sources;

pub use sources::{LedgerIssued, RegistryIssued};

use crate::Result;
use crate::aws::client::DeviceCert;
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
mod tests;

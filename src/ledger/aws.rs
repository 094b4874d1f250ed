//! AWS IoT registrations and verification results. Each change is a chained event in the same transaction.

use super::{Ledger, LedgerError, chain, now_text};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

/// Where a CA is registered in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsRegistration {
    pub ca_name: String,
    pub region: String,
    /// The account's profile; empty for the default credential chain.
    pub profile: String,
    /// Empty for AWS itself, else the endpoint (an emulator) it was registered at.
    pub endpoint: String,
    pub certificate_id: String,
    pub certificate_arn: String,
    /// `jitp` or `jitr`.
    pub mode: String,
    pub registered_at: String,
}

/// One verification result for a (CA, region) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsVerification {
    pub ca_name: String,
    pub region: String,
    /// Empty for AWS itself, else the endpoint (an emulator) it was verified at.
    pub endpoint: String,
    /// The mode checked: `jitp` or `jitr`.
    pub mode: String,
    pub at: String,
    /// `pass`, `fail`, `error`, `retired` or `skipped`.
    pub outcome: String,
    pub failed_check: Option<String>,
    pub message: String,
    pub remedy: String,
    /// JSON: every check and what AWS reported.
    pub detail: String,
}

const REG_COLUMNS: &str = "ca_name, region, profile, endpoint, certificate_id, certificate_arn, mode, registered_at";
const VER_COLUMNS: &str = "ca_name, region, endpoint, mode, at, outcome, failed_check, message, remedy, detail";

fn registration(r: &Row<'_>) -> rusqlite::Result<AwsRegistration> {
    Ok(AwsRegistration {
        ca_name: r.get(0)?,
        region: r.get(1)?,
        profile: r.get(2)?,
        endpoint: r.get(3)?,
        certificate_id: r.get(4)?,
        certificate_arn: r.get(5)?,
        mode: r.get(6)?,
        registered_at: r.get(7)?,
    })
}

fn verification(r: &Row<'_>) -> rusqlite::Result<AwsVerification> {
    Ok(AwsVerification {
        ca_name: r.get(0)?,
        region: r.get(1)?,
        endpoint: r.get(2)?,
        mode: r.get(3)?,
        at: r.get(4)?,
        outcome: r.get(5)?,
        failed_check: r.get(6)?,
        message: r.get(7)?,
        remedy: r.get(8)?,
        detail: r.get(9)?,
    })
}

impl Ledger {
    /// The CA's registration in `region`, if the station recorded one.
    pub fn aws_registration(&self, ca: &str, region: &str) -> Result<Option<AwsRegistration>, LedgerError> {
        self.conn
            .query_row(
                &format!("SELECT {REG_COLUMNS} FROM aws_registrations WHERE ca_name = ?1 AND region = ?2"),
                params![ca, region],
                registration,
            )
            .optional()
            .map_err(LedgerError::sql("read AWS registration"))
    }

    /// Every registration the station recorded, by CA then region.
    pub fn aws_registrations(&self) -> Result<Vec<AwsRegistration>, LedgerError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {REG_COLUMNS} FROM aws_registrations ORDER BY ca_name, region"))
            .map_err(LedgerError::sql("list AWS registrations"))?;
        let rows = st.query_map([], registration).map_err(LedgerError::sql("list AWS registrations"))?;
        rows.collect::<Result<_, _>>().map_err(LedgerError::sql("list AWS registrations"))
    }

    /// Records (or replaces) a registration; `outcome` says how it came about (`registered`,
    /// `re-registered`, `already-registered`). A chained `aws-ca-registered` event.
    pub fn record_aws_registration(&mut self, reg: &AwsRegistration, outcome: &str) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        tx.execute(
            &format!(
                "INSERT INTO aws_registrations ({REG_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) \
                 ON CONFLICT (ca_name, region) DO UPDATE SET profile = excluded.profile, endpoint = excluded.endpoint, \
                 certificate_id = excluded.certificate_id, certificate_arn = excluded.certificate_arn, \
                 mode = excluded.mode, registered_at = excluded.registered_at"
            ),
            params![
                reg.ca_name,
                reg.region,
                reg.profile,
                reg.endpoint,
                reg.certificate_id,
                reg.certificate_arn,
                reg.mode,
                reg.registered_at
            ],
        )
        .map_err(LedgerError::sql("record AWS registration"))?;
        let detail = serde_json::json!({
            "region": reg.region,
            "profile": reg.profile,
            "endpoint": reg.endpoint,
            "certificate_id": reg.certificate_id,
            "certificate_arn": reg.certificate_arn,
            "mode": reg.mode,
            "outcome": outcome,
        });
        chain::append(&tx, "aws-ca-registered", &reg.ca_name, None, &detail.to_string())?;
        tx.commit().map_err(LedgerError::sql("commit AWS registration"))
    }

    /// Stores one verification run: a row per (CA, region) and one chained `aws-ca-verified` event per CA.
    pub fn record_aws_verifications(&mut self, results: &[AwsVerification]) -> Result<(), LedgerError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sql("begin"))?;
        let mut per_ca: Vec<(&str, Vec<serde_json::Value>)> = Vec::new();
        for v in results {
            tx.execute(
                &format!("INSERT INTO aws_verifications ({VER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"),
                params![
                    v.ca_name,
                    v.region,
                    v.endpoint,
                    v.mode,
                    v.at,
                    v.outcome,
                    v.failed_check,
                    v.message,
                    v.remedy,
                    v.detail
                ],
            )
            .map_err(LedgerError::sql("record AWS verification"))?;
            let summary =
                serde_json::json!({ "region": v.region, "outcome": v.outcome, "failed_check": v.failed_check });
            match per_ca.iter_mut().find(|(ca, _)| *ca == v.ca_name) {
                Some((_, list)) => list.push(summary),
                None => per_ca.push((&v.ca_name, vec![summary])),
            }
        }
        let at = results.first().map(|v| v.at.clone()).unwrap_or_else(now_text);
        for (ca, regions) in per_ca {
            let passed = regions.iter().all(|r| r["outcome"] == "pass");
            let detail = serde_json::json!({ "verified_at": at, "passed": passed, "regions": regions });
            chain::append(&tx, "aws-ca-verified", ca, None, &detail.to_string())?;
        }
        tx.commit().map_err(LedgerError::sql("commit AWS verification"))
    }

    /// The newest verification of a (CA, region) pair made at `endpoint` ('' = AWS) in `mode`.
    pub fn latest_aws_verification(
        &self,
        ca: &str,
        region: &str,
        endpoint: &str,
        mode: &str,
    ) -> Result<Option<AwsVerification>, LedgerError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {VER_COLUMNS} FROM aws_verifications \
                     WHERE ca_name = ?1 AND region = ?2 AND endpoint = ?3 AND mode = ?4 ORDER BY id DESC LIMIT 1"
                ),
                params![ca, region, endpoint, mode],
                verification,
            )
            .optional()
            .map_err(LedgerError::sql("read AWS verification"))
    }
}

//! Batch verification: every (CA, region) pair at once, each region's calls spaced to stay under its
//! 10 TPS quota, throttling retried with backoff by the SDK, results stored in the ledger.

use super::checks::{self, Check, Context, LocalCa, Status};
use super::client::{CallError, Iot, Limiter};
use super::field::{self, RuleCensus};
use super::{Described, Overrides, Settings};
use crate::config::{AwsMode, AwsRegion, Config};
use crate::ledger::{AwsRegistration, AwsVerification, CaRow, CaState, Ledger, now_text};
use crate::pki;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

/// At most this many pairs are checked at the same moment (each region is also rate-limited).
const CONCURRENT_PAIRS: usize = 16;

/// One (CA, region) pair to verify.
#[derive(Debug, Clone)]
pub struct Target {
    pub ca: CaRow,
    pub region: AwsRegion,
    pub recorded: Option<AwsRegistration>,
    /// The mode checked: `--mode` when given, else the mode the CA was registered in, else `[aws] mode`.
    pub mode: AwsMode,
}

/// The mode a pair is checked in (and the gate reads): a `--mode` given to the command, else the mode recorded
/// when the CA was registered in that region, else `[aws] mode`.
pub fn pair_mode(forced: Option<AwsMode>, recorded: Option<&AwsRegistration>, configured: AwsMode) -> AwsMode {
    forced.or_else(|| recorded.and_then(|r| r.mode.parse().ok())).unwrap_or(configured)
}

/// Which CAs to verify.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The CA that is issuing now.
    Active,
    Named(String),
    /// Every CA that has a certificate (retired ones are reported as retired).
    All,
}

/// The verdict on one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// AWS could not be asked (unreachable, timeout, throttled, credentials).
    Error,
    /// The CA is retired: its AWS state is shown, not judged.
    Retired,
    /// The CA has no certificate yet.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Retired => "retired",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub ca: String,
    pub region: String,
    pub profile: Option<String>,
    /// The mode it was checked in (`jitp` or `jitr`).
    pub mode: &'static str,
    pub outcome: Outcome,
    /// The code of the first failing check (or of the error).
    pub failed_check: Option<String>,
    pub message: String,
    pub remedy: String,
    /// The CA's certificate ID as the station computes it (hex SHA-256 of the DER).
    pub certificate_id: Option<String>,
    pub checks: Vec<Check>,
    /// What DescribeCACertificate reported.
    pub aws: Option<Described>,
}

/// A whole verification run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verified_at: String,
    /// True when every pair that is judged passed.
    pub ok: bool,
    pub rows: Vec<Row>,
}

/// The pairs for a selection: each chosen CA in each region of `settings`. `forced` is a `--mode` given to the
/// command; without it each pair is checked in the mode it was registered in.
pub fn targets(
    ledger: &Ledger,
    settings: &Settings,
    which: &Selection,
    forced: Option<AwsMode>,
) -> crate::Result<Vec<Target>> {
    let cas: Vec<CaRow> = match which {
        Selection::Active => vec![ledger.active_ca()?.ok_or(crate::ca::CaError::NoneActive)?],
        Selection::Named(n) => vec![crate::ca::find(ledger, n)?],
        Selection::All => ledger.cas()?,
    };
    let mut out = Vec::new();
    for ca in cas {
        for region in &settings.regions {
            let recorded = ledger.aws_registration(&ca.name, &region.name)?;
            let mode = pair_mode(forced, recorded.as_ref(), settings.mode);
            out.push(Target { ca: ca.clone(), region: region.clone(), recorded, mode });
        }
    }
    Ok(out)
}

/// Per region: the client and, computed once, how many CAs share each subject and the topic rules (JITR).
struct RegionCtx {
    iot: Iot,
    subjects: OnceCell<Result<HashMap<String, usize>, CallError>>,
    rules: RuleCensus,
}

/// Verifies every pair concurrently; `progress` is called as each one finishes (done, total, row).
/// The rows come back in the order of `targets`.
pub async fn verify_cas(settings: &Settings, targets: Vec<Target>, progress: &dyn Fn(usize, usize, &Row)) -> Vec<Row> {
    let settings = Arc::new(settings.clone());
    let mut regions: HashMap<String, Arc<RegionCtx>> = HashMap::new();
    let limit = Arc::new(Semaphore::new(CONCURRENT_PAIRS));
    let total = targets.len();
    let mut set = tokio::task::JoinSet::new();
    let mut rows: Vec<Row> = targets.iter().map(unfinished).collect();
    for (i, t) in targets.into_iter().enumerate() {
        let ctx = match regions.get(&t.region.name) {
            Some(c) => c.clone(),
            None => {
                // One client, one rate limiter and one subject census per region, shared by its pairs.
                let iot = Iot::connect(&settings, &t.region, Limiter::new(settings.max_tps)).await;
                let c = Arc::new(RegionCtx { iot, subjects: OnceCell::new(), rules: OnceCell::new() });
                regions.insert(t.region.name.clone(), c.clone());
                c
            }
        };
        let (settings, limit) = (settings.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, verify_pair(&settings, &ctx, &t).await)
        });
    }
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        if let Ok((i, row)) = joined {
            done += 1;
            progress(done, total, &row);
            rows[i] = row;
        }
    }
    rows
}

/// The row of a pair whose check never finished (its task panicked): an error, so nothing passes unchecked.
fn unfinished(t: &Target) -> Row {
    Row {
        ca: t.ca.name.clone(),
        region: t.region.name.clone(),
        profile: t.region.profile.clone(),
        mode: t.mode.as_str(),
        outcome: Outcome::Error,
        failed_check: Some("aws-verify-internal".into()),
        message: "the check did not finish (an internal error; the log has details)".into(),
        remedy: "run `station ca verify` again and report this".into(),
        certificate_id: t.ca.fingerprint.clone(),
        checks: Vec::new(),
        aws: None,
    }
}

async fn verify_pair(settings: &Settings, region: &RegionCtx, t: &Target) -> Row {
    let settings = &Settings { mode: t.mode, ..settings.clone() };
    let mut row = Row {
        ca: t.ca.name.clone(),
        region: t.region.name.clone(),
        profile: t.region.profile.clone(),
        mode: t.mode.as_str(),
        outcome: Outcome::Pass,
        failed_check: None,
        message: String::new(),
        remedy: String::new(),
        certificate_id: t.ca.fingerprint.clone(),
        checks: Vec::new(),
        aws: None,
    };
    let Some(ca) = LocalCa::from_row(&t.ca) else {
        row.outcome = Outcome::Skipped;
        row.message = format!("CA {} has no certificate yet ({})", t.ca.name, t.ca.state.as_str());
        return row;
    };
    let ctx = Context {
        ca: &ca,
        region: &t.region,
        settings,
        recorded: t.recorded.as_ref(),
        now: time::OffsetDateTime::now_utc(),
    };
    let id = t.recorded.as_ref().map(|r| r.certificate_id.clone()).unwrap_or_else(|| ca.fingerprint.clone());
    let described = match region.iot.describe_ca(&id).await {
        Ok(d) => d,
        Err(e) => return errored(row, settings, &e),
    };
    if t.ca.state == CaState::Retired {
        return retired(row, described);
    }
    row.checks.push(checks::exists(&ctx, described.as_ref()));
    if let Some(d) = &described {
        row.checks.extend(checks::described(&ctx, d));
        let first_connection = match t.mode {
            AwsMode::Jitp => field::jitp(&ctx, &region.iot, d).await,
            AwsMode::Jitr => field::jitr(&ctx, &region.iot, &region.rules, &d.certificate_id).await.map(|c| vec![c]),
        };
        match first_connection {
            Ok(c) => row.checks.extend(c),
            Err(e) => return errored(row, settings, &e),
        }
        match same_subject_count(region, &ca.subject).await {
            Ok(n) => row.checks.push(checks::headroom(&ctx, n)),
            Err(e) => return errored(row, settings, &e),
        }
    }
    row.aws = described;
    if let Some(first) = row.checks.iter().find(|c| c.failed()) {
        row.outcome = Outcome::Fail;
        row.failed_check = first.code.map(String::from);
        row.message = first.detail.clone();
        row.remedy = first.remedy.clone().unwrap_or_default();
    } else {
        // Unknown checks neither pass nor fail the row: the row passes and its message says what was not checked.
        let unknown: Vec<&Check> = row.checks.iter().filter(|c| c.status == Status::Unknown).collect();
        if let Some(first) = unknown.first() {
            let names: Vec<&str> = unknown.iter().map(|c| c.check).collect();
            row.message = format!("passed; unknown: {} ({})", names.join(", "), first.detail);
            row.remedy = first.remedy.clone().unwrap_or_default();
        }
    }
    row
}

fn errored(mut row: Row, settings: &Settings, e: &CallError) -> Row {
    row.outcome = Outcome::Error;
    row.failed_check = Some(e.code().into());
    row.message = format!("{} failed: {}", e.op, e.message);
    row.remedy = e.remedy(settings);
    row
}

fn retired(mut row: Row, described: Option<Described>) -> Row {
    row.outcome = Outcome::Retired;
    row.message = match &described {
        Some(d) if d.status == "ACTIVE" && d.auto_registration_status == "ENABLE" => {
            "retired locally; still ACTIVE with auto-registration ENABLE on AWS".into()
        }
        Some(d) => {
            format!("retired locally; on AWS {} with auto-registration {}", d.status, d.auto_registration_status)
        }
        None => "retired locally; not registered in this region".into(),
    };
    row.aws = described;
    row
}

/// How many CAs in the account and region carry `subject` (ListCACertificates, every page, then each CA
/// described once per run and region).
async fn same_subject_count(region: &RegionCtx, subject: &str) -> Result<usize, CallError> {
    let counts = region
        .subjects
        .get_or_init(|| async {
            let mut counts = HashMap::new();
            for id in region.iot.list_ca_ids().await? {
                let Some(d) = region.iot.describe_ca(&id).await? else { continue };
                let der = pki::certs_from_bytes(d.certificate_pem.as_bytes()).ok().and_then(|c| c.into_iter().next());
                if let Some(info) = der.and_then(|der| pki::inspect(&der).ok()) {
                    *counts.entry(info.subject).or_insert(0) += 1;
                }
            }
            Ok(counts)
        })
        .await;
    match counts {
        Ok(c) => Ok(c.get(subject).copied().unwrap_or(0)),
        Err(e) => Err(e.clone()),
    }
}

/// The rows as the ledger stores them, with the endpoint and mode they were verified at.
pub fn records(settings: &Settings, at: &str, rows: &[Row]) -> Vec<AwsVerification> {
    rows.iter()
        .map(|r| AwsVerification {
            ca_name: r.ca.clone(),
            region: r.region.clone(),
            endpoint: settings.endpoint_url.clone().unwrap_or_default(),
            mode: r.mode.into(),
            at: at.to_string(),
            outcome: r.outcome.as_str().into(),
            failed_check: r.failed_check.clone(),
            message: r.message.clone(),
            remedy: r.remedy.clone(),
            detail: serde_json::json!({ "checks": r.checks, "aws": r.aws, "profile": r.profile }).to_string(),
        })
        .collect()
}

/// Verifies, stores the results, and returns the report. Blocking: makes its own runtime, so call it from a
/// plain thread (the CLI, or a daemon's timer thread), never from inside a tokio runtime.
pub fn verify_and_record(
    cfg: &Config,
    ledger: &mut Ledger,
    which: &Selection,
    overrides: &Overrides,
    progress: &dyn Fn(usize, usize, &Row),
) -> crate::Result<Report> {
    let settings = Settings::resolve(cfg, overrides)?;
    let targets = targets(ledger, &settings, which, overrides.mode)?;
    let rt = super::runtime()?;
    let verified_at = now_text();
    let rows = rt.block_on(verify_cas(&settings, targets, progress));
    ledger.record_aws_verifications(&records(&settings, &verified_at, &rows))?;
    let ok = rows.iter().all(|r| matches!(r.outcome, Outcome::Pass | Outcome::Retired | Outcome::Skipped));
    Ok(Report { verified_at, ok, rows })
}

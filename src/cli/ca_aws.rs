//! `station ca register` and `station ca verify`: the CA and AWS IoT.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::aws::register::{self, Plan, RegOutcome, RegionResult};
use crate::aws::verify::{self, Outcome, Row, Selection};
use crate::aws::{AwsError, Iot, LocalCa, Overrides, Settings, Status, client::Limiter, template};
use crate::ca::{self, CaError};
use crate::config::AwsMode;
use crate::error::exit;
use crate::ledger::CaState;
use serde::Serialize;

/// Where and how to reach AWS IoT, over `[aws]`: shared by `ca register` and `ca verify`.
#[derive(Debug, Default, clap::Args)]
pub struct AwsTarget {
    /// A target region (repeatable) [default: [aws] regions]
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// jitp (template + role) or jitr (no template) [default: [aws] mode]
    #[arg(long)]
    pub mode: Option<AwsMode>,
    /// Send the calls here instead of AWS, e.g. a local emulator [default: [aws] endpoint_url]
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsTarget {
    fn overrides(&self) -> Overrides {
        Overrides { regions: self.regions.clone(), endpoint_url: self.endpoint_url.clone(), mode: self.mode }
    }
}

#[derive(Debug, Default, clap::Args)]
pub struct RegisterArgs {
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub target: AwsTarget,
    /// Where the CA is registered already, replace its JITP template and role with the configured ones.
    #[arg(long)]
    pub update_template: bool,
}

#[derive(Debug, Default, clap::Args)]
pub struct VerifyArgs {
    /// The CA to verify [default: the active CA]
    #[arg(long, conflicts_with = "all")]
    pub name: Option<String>,
    /// Every CA (retired ones are shown, not judged).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub target: AwsTarget,
}

#[derive(Serialize)]
struct RegisterReport {
    ca: String,
    certificate_id: String,
    ok: bool,
    regions: Vec<RegionResult>,
}

pub fn register(st: &Station, a: &RegisterArgs) -> Result<Box<dyn Report>> {
    let overrides = a.target.overrides();
    let settings = Settings::resolve(&st.config, &overrides)?;
    let mut ledger = st.ledger()?;
    let row = ca::find(&ledger, &a.name)?;
    if matches!(row.state, CaState::Pending | CaState::Retired) {
        return Err(AwsError::CaNotRegistrable { name: row.name.clone(), state: row.state.as_str() }.into());
    }
    let local = LocalCa::from_row(&row).ok_or(CaError::WrongState {
        name: row.name.clone(),
        state: row.state.as_str(),
        wanted: "imported (ready or active)",
    })?;
    let template = match settings.mode {
        AwsMode::Jitp => {
            let role = settings.role_arn.clone().ok_or(AwsError::RoleArnMissing)?;
            Some((template::load(settings.template.as_deref(), &settings.subject)?, role))
        }
        AwsMode::Jitr => None,
    };
    let key = ca::signing_key(&st.hsm()?, &row)?;
    let plan = Plan {
        settings: &settings,
        ca: &local,
        key: &key,
        jitp: template.as_ref().map(|(t, r)| (t, r.as_str())),
        update_template: a.update_template,
    };
    let rt = crate::aws::runtime()?;
    let mut results = Vec::new();
    for region in &settings.regions {
        let recorded = ledger.aws_registration(&row.name, &region.name)?;
        let result = rt.block_on(async {
            let iot = Iot::connect(&settings, region, Limiter::new(settings.max_tps)).await;
            register::register_region(&plan, &iot, recorded.as_ref()).await
        });
        // Recorded region by region, so an interruption keeps what AWS already has. A registration found
        // just as the ledger records it changes nothing and is not recorded again.
        if let Some(reg) = result.registration(&row.name, &settings) {
            let unchanged = result.outcome == RegOutcome::AlreadyRegistered
                && recorded.as_ref().is_some_and(|r| {
                    (&r.certificate_id, &r.certificate_arn) == (&reg.certificate_id, &reg.certificate_arn)
                });
            if !unchanged {
                ledger.record_aws_registration(&reg, result.outcome.as_str())?;
            }
        }
        results.push(result);
    }
    let ok = results.iter().all(|r| r.outcome != RegOutcome::Error);
    let text = register_text(&row.name, &results);
    let report =
        RegisterReport { ca: row.name.clone(), certificate_id: local.fingerprint.clone(), ok, regions: results };
    let mut out = Output::new(report, text);
    out.status = if ok { exit::OK } else { exit::AWS };
    Ok(out)
}

fn register_text(ca: &str, results: &[RegionResult]) -> String {
    let mut t = format!("{:<16} {:<20} {}\n", "REGION", "RESULT", "CERTIFICATE ARN");
    for r in results {
        t += &format!("{:<16} {:<20} {}\n", r.region, r.outcome.as_str(), r.certificate_arn.as_deref().unwrap_or("-"));
    }
    for r in results.iter().filter(|r| r.outcome == RegOutcome::Error) {
        t += &format!(
            "\n{} [{}]: {}\n  fix: {}\n",
            r.region,
            r.code.unwrap_or("error"),
            r.message,
            r.remedy.as_deref().unwrap_or("-")
        );
    }
    if results.iter().all(|r| r.outcome != RegOutcome::Error) {
        t += &format!("\nnext: station ca verify --name {ca}");
    }
    t.trim_end().to_string()
}

pub fn verify(cli: &Cli, st: &Station, a: &VerifyArgs) -> Result<Box<dyn Report>> {
    let overrides = a.target.overrides();
    let which = match (&a.name, a.all) {
        (Some(n), _) => Selection::Named(n.clone()),
        (None, true) => Selection::All,
        (None, false) => Selection::Active,
    };
    let mut ledger = st.ledger()?;
    let quiet = cli.json;
    let progress = move |done: usize, total: usize, row: &Row| {
        if !quiet {
            eprintln!("[{done}/{total}] {} {}: {}", row.ca, row.region, row.outcome.as_str());
        }
    };
    let report = verify::verify_and_record(&st.config, &mut ledger, &which, &overrides, &progress)?;
    let text = verify_text(&report.rows);
    let ok = report.ok;
    let mut out = Output::new(report, text);
    out.status = if ok { exit::OK } else { exit::AWS };
    Ok(out)
}

fn verify_text(rows: &[Row]) -> String {
    let mut t = format!("{:<20} {:<16} {:<8} {}\n", "CA", "REGION", "RESULT", "FAILING CHECK");
    for r in rows {
        let result = match r.outcome {
            Outcome::Fail => "FAIL",
            Outcome::Error => "ERROR",
            o => o.as_str(),
        };
        let unknown = r.checks.iter().filter(|c| c.status == Status::Unknown).count();
        let failing = match (r.failed_check.as_deref(), unknown) {
            (Some(code), _) => code.to_string(),
            (None, 0) => "-".into(),
            (None, n) => format!("- ({n} unknown)"),
        };
        t += &format!("{:<20} {:<16} {:<8} {failing}\n", r.ca, r.region, result);
    }
    for r in rows.iter().filter(|r| r.outcome != Outcome::Pass || !r.message.is_empty()) {
        t += &format!("\n{} {}: {}\n", r.ca, r.region, r.message);
        if !r.remedy.is_empty() {
            t += &format!("  fix: {}\n", r.remedy);
        }
    }
    t.trim_end().to_string()
}

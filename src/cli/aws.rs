//! `station aws …`: what AWS IoT would do with a device, before it ships.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::aws::client::{Iot, Limiter};
use crate::aws::dry_run::{self, DryRun, Outcome, PolicyPlan, RegionRun};
use crate::aws::{Overrides, Settings};
use crate::error::exit;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum AwsCommand {
    /// Evaluate the registered JITP template against a certificate the station issued, as AWS IoT would at the
    /// device's first connection: the thing, attributes, policy and certificate status, or why it would fail.
    DryRun(DryRunArgs),
}

#[derive(Debug, clap::Args)]
pub struct DryRunArgs {
    /// The device's certificate or chain (PEM; the first certificate is the device's).
    #[arg(long, value_name = "CHAIN.pem")]
    pub cert: PathBuf,
    /// A region to ask (repeatable) [default: [aws] regions]
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Send the calls here instead of AWS [default: [aws] endpoint_url]
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Do not ask AWS: evaluate the configured template ([aws] template, or the built-in one).
    #[arg(long)]
    pub offline: bool,
}

pub fn run(cli: &Cli, cmd: &AwsCommand) -> Result<Box<dyn Report>> {
    match cmd {
        AwsCommand::DryRun(a) => dry_run_cmd(cli, a),
    }
}

fn dry_run_cmd(cli: &Cli, a: &DryRunArgs) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let overrides = Overrides { regions: a.regions.clone(), endpoint_url: a.endpoint_url.clone(), mode: None };
    let settings = Settings::resolve(&st.config, &overrides)?;
    let chain = std::fs::read(&a.cert).map_err(|e| {
        crate::Error::io(
            "input-unreadable",
            format!("cannot read {}", a.cert.display()),
            "give the device's certificate or chain (PEM)",
            e,
        )
    })?;
    let ledger = st.ledger()?;
    let (cert, problems) = dry_run::certificate(&ledger, &chain)?;
    let mut regions = Vec::new();
    if let Some(ca_name) = cert.ca.clone() {
        if a.offline {
            regions.push(dry_run::offline(&settings, &cert.fields)?);
        } else {
            let row = crate::ca::find(&ledger, &ca_name)?;
            let local = crate::aws::LocalCa::from_row(&row).ok_or(crate::ca::CaError::WrongState {
                name: row.name.clone(),
                state: row.state.as_str(),
                wanted: "with a certificate",
            })?;
            let rt = crate::aws::runtime()?;
            for region in &settings.regions {
                let id = ledger
                    .aws_registration(&ca_name, &region.name)?
                    .map(|r| r.certificate_id)
                    .unwrap_or_else(|| local.fingerprint.clone());
                regions.push(rt.block_on(async {
                    let iot = Iot::connect(&settings, region, Limiter::new(settings.max_tps)).await;
                    dry_run::online(&settings, &iot, &id, &local, &cert.fields).await
                }));
            }
        }
    }
    let ok = problems.is_empty()
        && !regions.is_empty()
        && regions.iter().all(|r| !matches!(r.outcome, Outcome::Fails | Outcome::Error));
    let report = DryRun { certificate: cert, problems, regions, ok };
    let text = text(&report);
    let status = if report.ok { exit::OK } else { exit::AWS };
    let mut out = Output::new(report, text);
    out.status = status;
    Ok(out)
}

fn text(r: &DryRun) -> String {
    let c = &r.certificate;
    let f = &c.fields;
    let mut t = format!(
        "certificate  CN {} serialNumber {}\n             ID {}\n             CA {}, valid {} to {}\n",
        f.common_name.as_deref().unwrap_or("-"),
        f.serial_number.as_deref().unwrap_or("-"),
        f.id,
        c.ca.as_deref().unwrap_or("none of this station's"),
        c.not_before,
        c.not_after
    );
    t += &match &c.issued_here {
        Some(i) if i.current => {
            format!("             issued here: bench {} at {}, {}\n", dash(&i.bench), i.issued_at, i.state)
        }
        Some(i) => format!("             issued here at {}, since replaced by a re-issue\n", i.issued_at),
        None => "             NOT in this station's ledger (see `station audit reconcile --aws`)\n".into(),
    };
    for p in &r.problems {
        t += &format!("  [{}] {}\n    fix: {}\n", p.code, p.detail, p.remedy);
    }
    for run in &r.regions {
        t += &region_text(run);
    }
    t += match (r.ok, r.first_problem()) {
        (true, _) => "result: OK, the device's first connection works in every region asked",
        (false, Some(_)) => "result: FAILS, the device would not work at its first connection (see above)",
        (false, None) => "result: FAILS, no region was checked",
    };
    t
}

fn region_text(run: &RegionRun) -> String {
    let mut t = format!(
        "\n{:<12} {}{}: {}\n",
        run.region,
        run.mode.to_uppercase(),
        run.template.as_ref().map(|s| format!(", template {s}")).unwrap_or_default(),
        run.outcome.as_str()
    );
    if let Some(plan) = &run.plan {
        if let Some(thing) = &plan.thing {
            let exists = match run.thing_exists {
                Some(true) => " (exists already in AWS)",
                Some(false) => " (new)",
                None => "",
            };
            t += &format!("  thing        {}{exists}\n", thing.name);
            let attrs: Vec<String> = thing.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            t += &format!("  attributes   {}\n", if attrs.is_empty() { "-".into() } else { attrs.join(" ") });
            t += &format!(
                "  thing type   {}   groups {}\n",
                thing.thing_type.as_deref().unwrap_or("-"),
                if thing.groups.is_empty() { "-".into() } else { thing.groups.join(", ") }
            );
        }
        for p in &plan.policies {
            t += &match p {
                PolicyPlan::Named(n) => format!("  policy       {n}\n"),
                PolicyPlan::Document { characters, actions } => {
                    format!(
                        "  policy       the template's document ({characters} characters): {}\n",
                        actions.join(", ")
                    )
                }
            };
        }
        t += &format!("  certificate  {}\n", plan.certificate_status.as_deref().unwrap_or("(not set)"));
    }
    if let Some(s) = &run.certificate_in_aws {
        t += &format!("  in AWS now   the certificate is {s}\n");
    }
    for p in &run.problems {
        t += &format!("  [{}] {}\n    fix: {}\n", p.code, p.detail, p.remedy);
    }
    for p in &run.unknown {
        t += &format!("  unknown [{}] {}\n    to check it: {}\n", p.code, p.detail, p.remedy);
    }
    t
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

//! `station aws dry-run`: what AWS IoT would do at a device's first connection, worked out before the device
//! ships. The template registered with the CA (or, offline, the configured one) is evaluated against the
//! certificate the way JITP does: its parameters filled from the certificate's subject and ID, its intrinsic
//! functions and conditions applied, and the thing, attributes, policy and certificate status it makes checked
//! against AWS IoT's rules. Online, AWS is also asked what it already holds (the CA's state, the certificate,
//! a thing of that name).
//!
//! - `evaluate`: the template against the certificate, pure.
//! - `rules`: AWS IoT's rules on what it makes.
//! - here: the certificate as the station knows it, and one region's verdict, offline or asked of AWS.

mod evaluate;
mod rules;

pub use evaluate::{CertFields, Plan, PolicyPlan, ThingPlan, evaluate};

use crate::pki;
use rules::thing_name_ok;
use serde::Serialize;

/// Why the first connection would fail, or what to look at.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub detail: String,
    pub remedy: String,
}

impl Problem {
    pub fn new(code: &'static str, detail: impl Into<String>, remedy: impl Into<String>) -> Problem {
        Problem { code, detail: detail.into(), remedy: remedy.into() }
    }
}

/// The certificate, as the station knows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    pub fields: CertFields,
    /// The station CA that signed it.
    pub ca: Option<String>,
    pub not_before: String,
    pub not_after: String,
    /// Its row in this station's ledger, if it has one.
    pub issued_here: Option<IssuedHere>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IssuedHere {
    pub serial: String,
    pub bench: String,
    pub issued_at: String,
    pub state: String,
    /// False when a re-issue replaced it.
    pub current: bool,
}

/// What would happen in one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// JITP provisions the device and it connects.
    Provisions,
    /// JITR: AWS registers the certificate PENDING_ACTIVATION and publishes the registration event; the
    /// account's rule must activate it.
    PendingActivation,
    /// AWS holds the certificate ACTIVE already: the device connects, no provisioning runs.
    AlreadyActive,
    /// The first connection would fail.
    Fails,
    /// AWS could not be asked.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Provisions => "PROVISIONS",
            Outcome::PendingActivation => "PENDING ACTIVATION (JITR)",
            Outcome::AlreadyActive => "ALREADY ACTIVE",
            Outcome::Fails => "FAILS",
            Outcome::Error => "NOT CHECKED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionRun {
    pub region: String,
    /// `jitp` or `jitr`, as AWS holds the CA (a registrationConfig with a template is JITP).
    pub mode: &'static str,
    /// Which template was evaluated: "registered in REGION", or the configured one offline.
    pub template: Option<String>,
    pub outcome: Outcome,
    pub plan: Option<Plan>,
    /// The certificate's status in AWS now (`None`: AWS does not hold it: the device has not connected).
    pub certificate_in_aws: Option<String>,
    /// Whether a thing with the planned name exists already.
    pub thing_exists: Option<bool>,
    pub problems: Vec<Problem>,
    /// What could not be read (IAM read access is optional): not a failure, not a pass.
    pub unknown: Vec<Problem>,
}

impl RegionRun {
    fn new(region: &str, mode: &'static str) -> RegionRun {
        RegionRun {
            region: region.into(),
            mode,
            template: None,
            outcome: Outcome::Provisions,
            plan: None,
            certificate_in_aws: None,
            thing_exists: None,
            problems: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Takes a `ca verify` check's verdict: a failure fails the run, an unknown is shown as such.
    fn take(&mut self, c: super::Check) {
        let p = || Problem {
            code: c.code.unwrap_or("aws-call-failed"),
            detail: c.detail.clone(),
            remedy: c.remedy.clone().unwrap_or_default(),
        };
        match c.status {
            super::checks::Status::Pass => {}
            super::checks::Status::Fail => self.fail(p()),
            super::checks::Status::Unknown => self.unknown.push(p()),
        }
    }

    fn fail(&mut self, p: Problem) {
        self.outcome = Outcome::Fails;
        self.problems.push(p);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub certificate: CertSummary,
    /// Problems of the certificate itself (any region).
    pub problems: Vec<Problem>,
    pub regions: Vec<RegionRun>,
    pub ok: bool,
}

impl DryRun {
    /// The first problem, for the exit line.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.iter().chain(self.regions.iter().flat_map(|r| r.problems.iter())).next()
    }
}

/// Reads the chain's first certificate, finds the station CA that signed it and its ledger row, and checks
/// what holds in every region.
pub fn certificate(ledger: &crate::ledger::Ledger, chain: &[u8]) -> crate::Result<(CertSummary, Vec<Problem>)> {
    let der = pki::certs_from_bytes(chain)?.into_iter().next().unwrap_or_default();
    let info = pki::inspect(&der)?;
    let fields = CertFields::from_der(&der).map_err(pki::PkiError::BadCertificate)?;
    let ca = ledger
        .cas()?
        .into_iter()
        .find(|c| c.cert_der.as_deref().is_some_and(|ca| pki::signed_by(&der, ca)))
        .map(|c| c.name);
    let issued_here = crate::ledger::issuances::by_cert_id(ledger.conn(), &fields.id)?.map(|r| IssuedHere {
        current: r.superseded_by.is_none(),
        serial: r.serial,
        bench: r.bench,
        issued_at: r.issued_at,
        state: r.state,
    });
    let mut problems = Vec::new();
    if ca.is_none() {
        problems.push(Problem::new(
            "aws-device-certificate-foreign",
            format!("the certificate (issuer {}) is not signed by any CA of this station", info.issuer),
            "give the chain file a station wrote (`station issue --out`, or what the device stored)",
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    if now < info.not_before || now > info.not_after {
        problems.push(Problem::new(
            "aws-device-certificate-not-valid-now",
            format!(
                "the certificate is valid {} to {}, not now: AWS refuses it",
                pki::rfc3339(info.not_before),
                pki::rfc3339(info.not_after)
            ),
            "re-issue the device (`station issue --reissue --reason …`), and check the bench's clock",
        ));
    }
    let summary = CertSummary {
        fields,
        ca,
        not_before: pki::rfc3339(info.not_before),
        not_after: pki::rfc3339(info.not_after),
        issued_here,
    };
    Ok((summary, problems))
}

/// Evaluates the configured template (or the built-in one) without asking AWS.
pub fn offline(settings: &super::Settings, cert: &CertFields) -> crate::Result<RegionRun> {
    let mut run = RegionRun::new("(offline)", settings.mode.as_str());
    if settings.mode == crate::config::AwsMode::Jitr {
        run.outcome = Outcome::PendingActivation;
        return Ok(run);
    }
    let (origin, body) = match &settings.template {
        None => ("the built-in template".to_string(), super::template::BUILTIN.to_string()),
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p)
                .map_err(|source| super::AwsError::TemplateUnreadable { path: p.clone(), source })?,
        ),
    };
    run.template = Some(format!("{origin} (configured, offline)"));
    match evaluate(&body, cert) {
        Ok(plan) => run.plan = Some(plan),
        Err(problems) => problems.into_iter().for_each(|p| run.fail(p)),
    }
    Ok(run)
}

/// What one region would do, asked of AWS: the CA as registered, its template evaluated, the certificate and
/// the planned thing looked up.
pub async fn online(
    settings: &super::Settings,
    iot: &super::Iot,
    ca_id: &str,
    local: &super::LocalCa,
    cert: &CertFields,
) -> RegionRun {
    let ca_name = local.name.as_str();
    let ctx = super::checks::Context {
        ca: local,
        region: &iot.region,
        settings,
        recorded: None,
        now: time::OffsetDateTime::now_utc(),
    };
    let region = iot.region.name.clone();
    let mut run = RegionRun::new(&region, "jitp");
    let errored = |mut run: RegionRun, e: super::CallError| {
        run.outcome = Outcome::Error;
        run.problems.push(Problem::new(e.code(), e.to_string(), e.remedy(settings)));
        run
    };
    let ca = match iot.describe_ca(ca_id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            run.fail(Problem::new(
                "aws-ca-not-registered",
                format!("CA {ca_name} is not registered in {region}: AWS refuses the device"),
                format!("run `station ca register --name {ca_name} --region {region}`"),
            ));
            return run;
        }
        Err(e) => return errored(run, e),
    };
    let update = |what: &str| {
        format!(
            "run `aws iot update-ca-certificate --certificate-id {ca_id} {what} {}`",
            settings.cli_target(&iot.region)
        )
    };
    if ca.status != "ACTIVE" {
        run.fail(Problem::new(
            "aws-ca-inactive",
            format!("the CA is {} in {region}: AWS refuses its devices", ca.status),
            update("--new-status ACTIVE"),
        ));
    }
    if ca.auto_registration_status != "ENABLE" {
        run.fail(Problem::new(
            "aws-auto-registration-disabled",
            format!(
                "auto-registration is {} in {region}: the certificate is not registered at its first connection",
                ca.auto_registration_status
            ),
            update("--new-auto-registration-status ENABLE"),
        ));
    }
    match &ca.template_body {
        Some(body) => {
            run.template = Some(format!("registered in {region}"));
            if ca.role_arn.as_deref().unwrap_or_default().is_empty() {
                run.fail(Problem::new(
                    "aws-role-arn-missing",
                    "the registered CA's registrationConfig has no roleArn: JITP cannot act",
                    format!("run `station ca register --name {ca_name} --region {region} --update-template`"),
                ));
            }
            match evaluate(body, cert) {
                Ok(plan) => run.plan = Some(plan),
                Err(problems) => problems.into_iter().for_each(|p| run.fail(p)),
            }
            // The provisioning role, as `ca verify` checks it (exists, trusts IoT, may do what the template asks).
            match super::field::jitp_role(&ctx, iot, &ca, &super::field::needs::of(body)).await {
                Ok(checks) => checks.into_iter().for_each(|c| run.take(c)),
                Err(e) => return errored(run, e),
            }
            // The policy, thing type and groups this certificate's provisioning names must exist.
            if let Some(plan) = &run.plan {
                let mut needs = super::field::Needs::default();
                for p in &plan.policies {
                    if let PolicyPlan::Named(n) = p {
                        needs.policies.insert(n.clone());
                    }
                }
                if let Some(t) = &plan.thing {
                    needs.thing_types.extend(t.thing_type.clone());
                    needs.thing_groups.extend(t.groups.iter().cloned());
                }
                match super::field::missing(iot, &needs).await {
                    Ok(m) => run.take(super::field::resources(&ctx, &needs, &m)),
                    Err(e) => return errored(run, e),
                }
            }
        }
        None => {
            run.mode = "jitr";
            if run.outcome == Outcome::Provisions {
                run.outcome = Outcome::PendingActivation;
            }
            // The rule that must activate the certificate, as `ca verify` checks it.
            match super::field::jitr(&ctx, iot, &super::field::RuleCensus::new(), ca_id).await {
                Ok(c) => run.take(c),
                Err(e) => return errored(run, e),
            }
        }
    }
    match iot.describe_certificate(&cert.id).await {
        Ok(Some(c)) => {
            match c.status.as_str() {
                "ACTIVE" if run.outcome != Outcome::Fails => run.outcome = Outcome::AlreadyActive,
                "ACTIVE" | "PENDING_ACTIVATION" => {}
                other => run.fail(Problem::new(
                    "aws-device-certificate-revoked",
                    format!("AWS holds this certificate as {other} in {region}: the device is refused"),
                    format!(
                        "if that was not meant, `aws iot update-certificate --certificate-id {} --new-status ACTIVE {}`; \
                         else re-issue the device",
                        cert.id,
                        settings.cli_target(&iot.region)
                    ),
                )),
            }
            run.certificate_in_aws = Some(c.status);
        }
        Ok(None) => {}
        Err(e) => return errored(run, e),
    }
    if let Some(thing) = run.plan.as_ref().and_then(|p| p.thing.as_ref()).map(|t| t.name.clone())
        && thing_name_ok(&thing)
    {
        match iot.describe_thing(&thing).await {
            Ok(found) => run.thing_exists = Some(found.is_some()),
            Err(e) => return errored(run, e),
        }
    }
    run
}

//! `station ca register`: per region, GetRegistrationCode → a verification certificate signed by the CA's HSM
//! key (checked locally before it is sent) → RegisterCACertificate (active, auto-registration, mode DEFAULT,
//! and for JITP the template and role). A CA that AWS already has is reported, not registered twice.

use super::checks::LocalCa;
use super::client::{CallError, CallKind, Iot, RegisterCa};
use super::{AwsError, Settings, Template};
use crate::config::{AwsMode, AwsRegion};
use crate::hsm::HsmKey;
use crate::ledger::{AwsRegistration, now_text};
use crate::pki;
use serde::Serialize;
use x509_parser::prelude::*;

/// How a region's registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegOutcome {
    Registered,
    /// The station had recorded a registration that AWS no longer has; registered again.
    ReRegistered,
    /// AWS already has this CA: nothing was registered.
    AlreadyRegistered,
    /// Already registered; its registrationConfig was replaced (`--update-template`).
    TemplateUpdated,
    Error,
}

impl RegOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RegOutcome::Registered => "registered",
            RegOutcome::ReRegistered => "re-registered",
            RegOutcome::AlreadyRegistered => "already-registered",
            RegOutcome::TemplateUpdated => "template-updated",
            RegOutcome::Error => "error",
        }
    }
}

/// One region's result.
#[derive(Debug, Clone, Serialize)]
pub struct RegionResult {
    pub region: String,
    pub profile: Option<String>,
    pub outcome: RegOutcome,
    pub mode: AwsMode,
    pub certificate_id: Option<String>,
    pub certificate_arn: Option<String>,
    pub code: Option<&'static str>,
    pub message: String,
    pub remedy: Option<String>,
    /// The verification certificate sent to AWS (public; CN = the region's registration code).
    pub verification_certificate_pem: Option<String>,
}

impl RegionResult {
    /// What the ledger records for a successful result.
    pub fn registration(&self, ca: &str, settings: &Settings) -> Option<AwsRegistration> {
        Some(AwsRegistration {
            ca_name: ca.into(),
            region: self.region.clone(),
            profile: self.profile.clone().unwrap_or_default(),
            endpoint: settings.endpoint_url.clone().unwrap_or_default(),
            certificate_id: self.certificate_id.clone()?,
            certificate_arn: self.certificate_arn.clone()?,
            mode: self.mode.as_str().into(),
            registered_at: now_text(),
        })
        .filter(|_| self.outcome != RegOutcome::Error)
    }
}

/// What registering one CA needs, the same for every region.
pub struct Plan<'a> {
    pub settings: &'a Settings,
    pub ca: &'a LocalCa,
    pub key: &'a HsmKey,
    /// JITP: the checked template and the role. JITR: None.
    pub jitp: Option<(&'a Template, &'a str)>,
    pub update_template: bool,
}

/// Registers the CA in one region. `recorded` is the station's earlier record for this region, if any.
pub async fn register_region(plan: &Plan<'_>, iot: &Iot, recorded: Option<&AwsRegistration>) -> RegionResult {
    let region = &iot.region;
    let mut res = RegionResult {
        region: region.name.clone(),
        profile: region.profile.clone(),
        outcome: RegOutcome::Error,
        mode: plan.settings.mode,
        certificate_id: None,
        certificate_arn: None,
        code: None,
        message: String::new(),
        remedy: None,
        verification_certificate_pem: None,
    };
    match run(plan, iot, recorded, &mut res).await {
        Ok(()) => res,
        Err(Failure::Call(e)) => {
            res.code = Some(e.code());
            res.message = format!("{} failed: {}", e.op, e.message);
            res.remedy = Some(e.remedy(plan.settings));
            res
        }
        Err(Failure::Local(e)) => {
            use crate::error::Coded;
            res.code = Some(e.code());
            res.message = e.to_string();
            res.remedy = Some(e.hint());
            res
        }
    }
}

enum Failure {
    Call(CallError),
    Local(crate::Error),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::Call(e)
    }
}

async fn run(
    plan: &Plan<'_>,
    iot: &Iot,
    recorded: Option<&AwsRegistration>,
    res: &mut RegionResult,
) -> Result<(), Failure> {
    let ca = plan.ca;
    // AWS's certificate ID is the SHA-256 of the DER, so an existing registration is found without a record.
    if let Some(d) = iot.describe_ca(&ca.fingerprint).await?
        && same_certificate(&d.certificate_pem, &ca.fingerprint)
    {
        res.certificate_id = Some(d.certificate_id.clone());
        res.certificate_arn = Some(d.certificate_arn.clone());
        return already_registered(plan, iot, res, &d.certificate_id).await;
    }
    let code = iot.registration_code().await?;
    let verification = crate::ca::verification_cert(&ca.der, plan.key, &code).map_err(Failure::Local)?;
    check_verification_cert(&verification, &code, &ca.der, &iot.region).map_err(|e| Failure::Local(e.into()))?;
    res.verification_certificate_pem = Some(verification.clone());
    let ca_pem = ca.pem();
    let req = RegisterCa {
        ca_pem: &ca_pem,
        verification_pem: &verification,
        jitp: plan.jitp.map(|(t, role)| (t.body.as_str(), role)),
    };
    match iot.register_ca(&req).await {
        Ok(r) => {
            res.certificate_id = Some(r.certificate_id);
            res.certificate_arn = Some(r.certificate_arn);
            res.outcome = if recorded.is_some() { RegOutcome::ReRegistered } else { RegOutcome::Registered };
            res.message = format!(
                "registered: ACTIVE, auto-registration ENABLE, certificate mode DEFAULT, {}",
                if plan.jitp.is_some() { "JITP template and role set" } else { "JITR (no template)" }
            );
            Ok(())
        }
        Err(CallError { kind: CallKind::AlreadyExists { id, arn }, .. }) => {
            let id = id.unwrap_or_else(|| ca.fingerprint.clone());
            let arn = match arn {
                Some(a) => Some(a),
                None => iot.describe_ca(&id).await?.map(|d| d.certificate_arn),
            };
            res.certificate_id = Some(id.clone());
            res.certificate_arn = arn;
            already_registered(plan, iot, res, &id).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn already_registered(plan: &Plan<'_>, iot: &Iot, res: &mut RegionResult, id: &str) -> Result<(), Failure> {
    match (plan.update_template, plan.jitp) {
        (true, Some((t, role))) => {
            iot.set_registration_config(id, &t.body, role).await?;
            res.outcome = RegOutcome::TemplateUpdated;
            res.message = format!("already registered; registrationConfig replaced with {} and role {role}", t.origin);
        }
        _ => {
            res.outcome = RegOutcome::AlreadyRegistered;
            res.message = format!(
                "already registered as {id}: nothing registered again; `station ca verify --name {} --region {}` checks it",
                plan.ca.name, iot.region.name
            );
        }
    }
    Ok(())
}

fn same_certificate(pem: &str, fingerprint: &str) -> bool {
    pki::certs_from_bytes(pem.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
        .is_some_and(|der| pki::sha256_hex(&der) == fingerprint)
}

/// What AWS will check, checked first: the subject CN is the registration code and the signature verifies
/// under the CA certificate.
pub fn check_verification_cert(pem: &str, code: &str, ca_der: &[u8], region: &AwsRegion) -> Result<(), AwsError> {
    let bad = |problem: String| AwsError::VerificationCertInvalid { region: region.name.clone(), problem };
    let der = pki::certs_from_bytes(pem.as_bytes())
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| bad("no certificate".into()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let cns: Vec<&str> = cert.subject().iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    if cns != [code] {
        return Err(bad(format!("its CN is {cns:?}, not the registration code {code:?}")));
    }
    if !pki::signed_by(&der, ca_der) {
        return Err(bad("its signature does not verify under the CA certificate".into()));
    }
    Ok(())
}

//! The checks of one (CA, region) pair, as pure functions of the local CA and what AWS reported.
//! Each failing check has a stable code and a remedy naming the exact command.

use super::template::{self, TemplateProblem};
use super::{Described, Settings};
use crate::config::{AwsMode, AwsRegion};
use crate::ledger::{AwsRegistration, CaRow};
use crate::pki;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// AWS IoT allows this many CA certificates with one subject per account and region.
pub const SAME_SUBJECT_LIMIT: usize = 10;

/// The local CA, as the checks need it.
#[derive(Debug, Clone)]
pub struct LocalCa {
    pub name: String,
    pub der: Vec<u8>,
    /// Hex SHA-256 of the DER: the fingerprint and the AWS certificate ID.
    pub fingerprint: String,
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl LocalCa {
    /// None for a CA without a certificate (pending).
    pub fn from_row(row: &CaRow) -> Option<LocalCa> {
        let der = row.cert_der.clone()?;
        let info = pki::inspect(&der).ok()?;
        Some(LocalCa {
            name: row.name.clone(),
            fingerprint: pki::sha256_hex(&der),
            der,
            subject: info.subject,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    pub fn pem(&self) -> String {
        pki::cert_pem(&self.der)
    }
}

/// A check's verdict. `Unknown`: the station's credentials may not read what the check needs (IAM read access is
/// optional), so it says nothing either way: not a pass, and not a failure (the row and the gate ignore it).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Unknown,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What is checked: `exists`, `certificate`, `certificate-id`, `status`, `auto-registration`,
    /// `certificate-mode`, `validity`, `jitp-template`, `jitp-role`, `jitp-role-exists`, `jitp-role-trust`,
    /// `jitp-role-permissions`, `jitp-resources`, `jitr-rule`, `subject-headroom`.
    pub check: &'static str,
    /// `status == pass` (kept for readers of the JSON from before `status`).
    pub ok: bool,
    pub status: Status,
    /// The stable code when it fails, or why it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

impl Check {
    pub(super) fn pass(check: &'static str, detail: impl Into<String>) -> Check {
        Check { check, ok: true, status: Status::Pass, code: None, detail: detail.into(), remedy: None }
    }
    pub(super) fn fail(
        check: &'static str,
        code: &'static str,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            check,
            ok: false,
            status: Status::Fail,
            code: Some(code),
            detail: detail.into(),
            remedy: Some(remedy.into()),
        }
    }
    pub(super) fn unknown(
        check: &'static str,
        code: &'static str,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            check,
            ok: false,
            status: Status::Unknown,
            code: Some(code),
            detail: detail.into(),
            remedy: Some(remedy.into()),
        }
    }
    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

/// What the checks of one pair need to know.
pub struct Context<'a> {
    pub ca: &'a LocalCa,
    pub region: &'a AwsRegion,
    pub settings: &'a Settings,
    pub recorded: Option<&'a AwsRegistration>,
    pub now: OffsetDateTime,
}

impl Context<'_> {
    fn register_cmd(&self, extra: &str) -> String {
        format!("run `station ca register --name {} --region {}{extra}`", self.ca.name, self.region.name)
    }
    fn update_cmd(&self, id: &str, what: &str) -> String {
        format!(
            "run `aws iot update-ca-certificate --certificate-id {id} {what} {}`",
            self.settings.cli_target(self.region)
        )
    }
}

/// `exists`: AWS has the CA (under its certificate ID).
pub fn exists(ctx: &Context<'_>, described: Option<&Described>) -> Check {
    match (described, ctx.recorded) {
        (Some(d), _) => Check::pass("exists", format!("registered as {}", d.certificate_arn)),
        (None, Some(r)) => Check::fail(
            "exists",
            "aws-ca-deleted",
            format!(
                "registered as {} at {}, but AWS has no such CA now: it was deleted",
                r.certificate_id, r.registered_at
            ),
            ctx.register_cmd(""),
        ),
        (None, None) => {
            Check::fail("exists", "aws-ca-not-registered", "not registered in this region", ctx.register_cmd(""))
        }
    }
}

/// The checks of a CA that AWS described: the certificate, its state, the CA's validity and (JITP) the
/// template and role.
pub fn described(ctx: &Context<'_>, d: &Described) -> Vec<Check> {
    let id = &d.certificate_id;
    let mut out = vec![certificate(ctx, d)];
    out.push(if *id == ctx.ca.fingerprint {
        Check::pass("certificate-id", "the ID is the SHA-256 of the CA's DER")
    } else {
        Check::fail(
            "certificate-id",
            "aws-certificate-id-mismatch",
            format!("AWS's ID {id} is not the SHA-256 of the CA's DER ({})", ctx.ca.fingerprint),
            ctx.register_cmd(""),
        )
    });
    out.push(match d.status.as_str() {
        "ACTIVE" => Check::pass("status", "ACTIVE"),
        other => Check::fail(
            "status",
            "aws-ca-inactive",
            format!("status is {other}, so AWS refuses its devices"),
            ctx.update_cmd(id, "--new-status ACTIVE"),
        ),
    });
    out.push(match d.auto_registration_status.as_str() {
        "ENABLE" => Check::pass("auto-registration", "ENABLE"),
        other => Check::fail(
            "auto-registration",
            "aws-auto-registration-disabled",
            format!("autoRegistrationStatus is {}, so devices are not provisioned at first connection", or_none(other)),
            ctx.update_cmd(id, "--new-auto-registration-status ENABLE"),
        ),
    });
    out.push(match d.certificate_mode.as_str() {
        "DEFAULT" => Check::pass("certificate-mode", "DEFAULT"),
        other => Check::fail(
            "certificate-mode",
            "aws-certificate-mode-not-default",
            format!("certificateMode is {}; JITP/JITR need DEFAULT", or_none(other)),
            format!(
                "deactivate and delete it (`aws iot update-ca-certificate --certificate-id {id} --new-status INACTIVE`, \
                 `aws iot delete-ca-certificate --certificate-id {id}`), then {}",
                ctx.register_cmd("")
            ),
        ),
    });
    out.push(validity(ctx));
    if ctx.settings.mode == AwsMode::Jitp {
        out.extend(jitp(ctx, d));
    }
    out
}

fn certificate(ctx: &Context<'_>, d: &Described) -> Check {
    let remote = pki::certs_from_bytes(d.certificate_pem.as_bytes()).ok().and_then(|c| c.into_iter().next());
    match remote.map(|der| pki::sha256_hex(&der)) {
        Some(fp) if fp == ctx.ca.fingerprint => Check::pass("certificate", "the registered certificate is the CA's"),
        Some(fp) => Check::fail(
            "certificate",
            "aws-certificate-mismatch",
            format!(
                "the certificate under {} has fingerprint {fp}, not the CA's {}",
                d.certificate_id, ctx.ca.fingerprint
            ),
            ctx.register_cmd(""),
        ),
        None => Check::fail(
            "certificate",
            "aws-certificate-mismatch",
            format!("AWS returned no readable certificate under {}", d.certificate_id),
            ctx.register_cmd(""),
        ),
    }
}

/// `validity`: the CA is valid now and outlives a device certificate issued now (`[policy] days`).
pub fn validity(ctx: &Context<'_>) -> Check {
    let ca = ctx.ca;
    let days = ctx.settings.device_days;
    let needed = ctx.now + Duration::days(days.into());
    let fix = format!(
        "create the next CA with a validity longer than {days} days (`station ca create --days N`) and register it, \
         or lower [policy] days"
    );
    if ctx.now < ca.not_before || ctx.now > ca.not_after {
        return Check::fail(
            "validity",
            "aws-ca-not-valid-now",
            format!("the CA is valid {} to {}, not now", pki::rfc3339(ca.not_before), pki::rfc3339(ca.not_after)),
            fix,
        );
    }
    if ca.not_after < needed {
        return Check::fail(
            "validity",
            "aws-ca-validity-short",
            format!(
                "the CA expires {}, before a device certificate issued now ({days} days, to {})",
                pki::rfc3339(ca.not_after),
                pki::rfc3339(needed)
            ),
            fix,
        );
    }
    Check::pass("validity", format!("valid until {}, beyond {days} days", pki::rfc3339(ca.not_after)))
}

fn jitp(ctx: &Context<'_>, d: &Described) -> Vec<Check> {
    let fix = ctx.register_cmd(" --update-template");
    let template = match (&d.template_body, &d.template_name) {
        (Some(body), _) => {
            let origin = format!("registered in {}", ctx.region.name);
            match template::parse(&origin, body).and_then(|t| template::check(&t, &ctx.settings.subject).map(|_| t)) {
                Ok(t) => {
                    let params: Vec<&str> = t.certificate_parameters.iter().map(String::as_str).collect();
                    Check::pass("jitp-template", format!("parses; parameters {} are filled", params.join(", ")))
                }
                Err(p @ TemplateProblem::Unfilled { .. }) => {
                    let fix =
                        format!("set the attribute in [policy] or drop the parameter from the template, then {fix}");
                    Check::fail("jitp-template", p.code(), p.message(), fix)
                }
                Err(p @ TemplateProblem::ThingName { .. }) => {
                    let fix = format!(
                        "keep `.` out of [policy] serial_pattern / serial_prefix, or make ThingName from \
                         AWS::IoT::Certificate::Id in [aws] template, then {fix}"
                    );
                    Check::fail("jitp-template", p.code(), p.message(), fix)
                }
                Err(p @ (TemplateProblem::ThingNameUnfit { .. } | TemplateProblem::AttributeInvalid { .. })) => {
                    let fix = format!("change [aws] template (or the [policy] value it names), then {fix}");
                    Check::fail("jitp-template", p.code(), p.message(), fix)
                }
                Err(p) => Check::fail("jitp-template", p.code(), p.message(), fix.clone()),
            }
        }
        (None, Some(name)) => Check::fail(
            "jitp-template",
            "aws-template-missing",
            format!("registrationConfig names provisioning template {name:?} instead of carrying a templateBody"),
            fix.clone(),
        ),
        (None, None) => Check::fail(
            "jitp-template",
            "aws-template-missing",
            "no registrationConfig with a templateBody: JITP has nothing to provision with",
            fix.clone(),
        ),
    };
    let role = match d.role_arn.as_deref() {
        Some(r) if !r.is_empty() => Check::pass("jitp-role", r.to_string()),
        _ => Check::fail("jitp-role", "aws-role-arn-missing", "registrationConfig has no roleArn", fix),
    };
    vec![template, role]
}

/// `subject-headroom`: fewer than 10 CAs in the account and region share the CA's subject, so the next CA
/// (a rotation) can still be registered.
pub fn headroom(ctx: &Context<'_>, same_subject: usize) -> Check {
    let detail = format!("{same_subject} of {SAME_SUBJECT_LIMIT} CAs with subject {}", ctx.ca.subject);
    if same_subject < SAME_SUBJECT_LIMIT {
        Check::pass("subject-headroom", detail)
    } else {
        Check::fail(
            "subject-headroom",
            "aws-subject-limit",
            format!("{detail}: no room to register the next CA"),
            "delete retired CAs with this subject (`aws iot update-ca-certificate --new-status INACTIVE`, then \
             `aws iot delete-ca-certificate`), or give the next CA another subject",
        )
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(not reported)" } else { s }
}

#[cfg(test)]
mod tests;

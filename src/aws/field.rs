//! What a device's first connection needs beyond a registered, active CA (issue 15): for JITR an enabled topic rule
//! with an action on the CA's registered-certificate topic; for JITP a provisioning role that exists, trusts AWS IoT
//! and may do what the template asks, and every policy, thing type and thing group the template names.
//!
//! The checks (`jitr-rule`, `jitp-role-exists`, `jitp-role-trust`, `jitp-role-permissions`, `jitp-resources`) are
//! pure functions of what was read; `jitr` and `jitp` read it. A role the credentials may not read in IAM gives
//! `unknown` checks (code `aws-iam-read-denied`): IAM read access is optional.

pub mod needs;
mod role;
mod rule;

pub use needs::{Need, Needs};
pub use role::{THINGS_REGISTRATION, decode, glob, refusal, role_name, trusts_iot};
pub use rule::{REGISTERED, Rules, filter_matches, from_topic};

use super::Described;
use super::checks::{Check, Context};
use super::client::{CallError, CallKind, Iot, ListedRule, RuleBody};
use serde_json::Value;
use tokio::sync::OnceCell;

/// The IAM reads the role checks need (docs/aws.md lists them too).
pub const IAM_READS: &str = "iam:GetRole, iam:ListAttachedRolePolicies, iam:ListRolePolicies, iam:GetRolePolicy, \
                             iam:GetPolicy and iam:GetPolicyVersion";

/// The trust policy a JITP role needs.
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The provisioning role as read from IAM.
#[derive(Debug, Clone)]
pub enum RoleRead {
    /// IAM refused to say (the message of the refused call).
    Denied(String),
    Missing,
    Found {
        name: String,
        /// The decoded trust policy (None: not readable JSON).
        trust: Option<Value>,
        /// (source, decoded document) of every attached and inline policy, or the refused call's message.
        policies: Result<Vec<(String, Value)>, String>,
        /// ARNs of the attached managed policies.
        attached: Vec<String>,
    },
}

/// The resources a template names that the region lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    pub policies: Vec<String>,
    pub thing_types: Vec<String>,
    pub thing_groups: Vec<String>,
}

/// A region's topic rules, read once per run: every rule listed, and the body of each that may select a
/// registered-certificate topic.
#[derive(Debug, Clone, Default)]
pub struct RulesRead {
    pub listed: Vec<ListedRule>,
    pub bodies: Vec<RuleBody>,
}

/// Once per region and run.
pub type RuleCensus = OnceCell<Result<RulesRead, CallError>>;

fn shell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`")
}

/// `jitp-role-exists`, `jitp-role-trust`, `jitp-role-permissions` for the role `arn`.
pub fn role_checks(ctx: &Context<'_>, arn: &str, read: &RoleRead, needs: &Needs) -> Vec<Check> {
    let target = ctx.settings.cli_target(ctx.region);
    let name = role_name(arn).unwrap_or(arn);
    let unknown = |check: &'static str, why: &str| {
        Check::unknown(
            check,
            "aws-iam-read-denied",
            format!("unknown: the credentials may not read role {name} in IAM ({why})"),
            format!("allow {IAM_READS} on {arn} to check it"),
        )
    };
    let (trust, policies, attached) = match read {
        RoleRead::Denied(why) => {
            return ["jitp-role-exists", "jitp-role-trust", "jitp-role-permissions"]
                .into_iter()
                .map(|c| unknown(c, why))
                .collect();
        }
        RoleRead::Missing => {
            return vec![Check::fail(
                "jitp-role-exists",
                "aws-jitp-role-not-found",
                format!("the provisioning role {arn} does not exist, so AWS IoT cannot provision any device"),
                format!(
                    "run `aws iam create-role --role-name {name} --assume-role-policy-document \"{}\" {target}` and \
                     `aws iam attach-role-policy --role-name {name} --policy-arn {THINGS_REGISTRATION} {target}`",
                    shell(TRUST)
                ),
            )];
        }
        RoleRead::Found { trust, policies, attached, .. } => (trust, policies, attached),
    };
    let mut out = vec![Check::pass("jitp-role-exists", format!("role {name} exists"))];
    out.push(if trust.as_ref().is_some_and(trusts_iot) {
        Check::pass("jitp-role-trust", "trusts iot.amazonaws.com (sts:AssumeRole)")
    } else {
        Check::fail(
            "jitp-role-trust",
            "aws-jitp-role-trust-missing",
            format!("role {name}'s trust policy does not let iot.amazonaws.com assume it (sts:AssumeRole, Allow)"),
            format!(
                "run `aws iam update-assume-role-policy --role-name {name} --policy-document \"{}\" {target}`",
                shell(TRUST)
            ),
        )
    });
    out.push(match policies {
        Err(why) => unknown("jitp-role-permissions", why),
        Ok(policies) => permissions(name, policies, attached, needs, &target),
    });
    out
}

fn permissions(name: &str, policies: &[(String, Value)], attached: &[String], needs: &Needs, target: &str) -> Check {
    let managed = attached.iter().any(|a| a == THINGS_REGISTRATION);
    let mut missing = Vec::new();
    for need in &needs.permissions {
        let refusals: Vec<String> = need.actions.iter().filter_map(|a| refusal(policies, a)).collect();
        if refusals.len() == need.actions.len() {
            let denied = refusals.iter().find(|r| r.starts_with("denied")).cloned();
            missing.push(format!(
                "{} ({}, {})",
                need.actions.join(" or "),
                need.why,
                denied.unwrap_or_else(|| "allowed by no policy".into())
            ));
        }
    }
    missing.dedup();
    if missing.is_empty() {
        let how = if managed { "AWSIoTThingsRegistration is attached" } else { "its policies allow them" };
        return Check::pass(
            "jitp-role-permissions",
            format!("{how}: the {} action(s) the template needs", needs.permissions.len()),
        );
    }
    Check::fail(
        "jitp-role-permissions",
        "aws-jitp-role-permissions-missing",
        format!("role {name} may not do what the template needs: {}", missing.join("; ")),
        format!(
            "run `aws iam attach-role-policy --role-name {name} --policy-arn {THINGS_REGISTRATION} {target}` (and \
             remove any Deny of these actions)"
        ),
    )
}

/// `jitp-resources`: every policy, thing type and thing group the template names exists in the region.
pub fn resources(ctx: &Context<'_>, needs: &Needs, missing: &Missing) -> Check {
    let target = ctx.settings.cli_target(ctx.region);
    let named = needs.policies.len() + needs.thing_types.len() + needs.thing_groups.len();
    if missing == &Missing::default() {
        return Check::pass(
            "jitp-resources",
            if named == 0 {
                "the template names no existing policy, thing type or thing group".to_string()
            } else {
                format!("the {named} policy/thing type/thing group name(s) the template uses exist")
            },
        );
    }
    let mut what = Vec::new();
    let mut fix = Vec::new();
    for p in &missing.policies {
        what.push(format!("policy {p}"));
        fix.push(format!(
            "`aws iot create-policy --policy-name {p} --policy-document \"{}\" {target}` (the built-in template's \
             device policy: edit it to what {p} should allow)",
            shell(&device_policy())
        ));
    }
    for t in &missing.thing_types {
        what.push(format!("thing type {t}"));
        fix.push(format!("`aws iot create-thing-type --thing-type-name {t} {target}`"));
    }
    for g in &missing.thing_groups {
        what.push(format!("thing group {g}"));
        fix.push(format!("`aws iot create-thing-group --thing-group-name {g} {target}`"));
    }
    let code = if !missing.policies.is_empty() {
        "aws-jitp-policy-missing"
    } else if !missing.thing_types.is_empty() {
        "aws-jitp-thing-type-missing"
    } else {
        "aws-jitp-thing-group-missing"
    };
    Check::fail(
        "jitp-resources",
        code,
        format!(
            "the template names {} that {} does not have, so provisioning fails at the first connection",
            what.join(", "),
            ctx.region.name
        ),
        format!("run {}, or change the template and `station ca register --update-template`", fix.join(" and ")),
    )
}

/// The device policy of the built-in template (schemas/jitp-template.json): connect as the thing, publish and
/// subscribe under its name.
fn device_policy() -> String {
    let t: Value = serde_json::from_str(super::template::BUILTIN).unwrap_or(Value::Null);
    t.pointer("/Resources/policy/Properties/PolicyDocument").and_then(Value::as_str).unwrap_or("{}").to_string()
}

/// Reads what the JITP checks need and runs them: the role (when the CA has a roleArn) and the named resources.
pub async fn jitp(ctx: &Context<'_>, iot: &Iot, d: &Described) -> Result<Vec<Check>, CallError> {
    let Some(body) = d.template_body.as_deref() else { return Ok(Vec::new()) };
    let needs = needs::of(body);
    let mut out = jitp_role(ctx, iot, d, &needs).await?;
    out.push(resources(ctx, &needs, &missing(iot, &needs).await?));
    Ok(out)
}

/// The role checks alone (`aws dry-run` checks the resources a certificate's provisioning names by itself).
pub async fn jitp_role(ctx: &Context<'_>, iot: &Iot, d: &Described, needs: &Needs) -> Result<Vec<Check>, CallError> {
    match d.role_arn.as_deref().filter(|a| !a.is_empty()) {
        Some(arn) => Ok(role_checks(ctx, arn, &read_role(iot, arn).await?, needs)),
        None => Ok(Vec::new()),
    }
}

/// Which of the policies, thing types and thing groups in `needs` the region lacks.
pub async fn missing(iot: &Iot, needs: &Needs) -> Result<Missing, CallError> {
    let mut m = Missing::default();
    for p in &needs.policies {
        if !iot.iot_policy_exists(p).await? {
            m.policies.push(p.clone());
        }
    }
    for t in &needs.thing_types {
        if !iot.thing_type_exists(t).await? {
            m.thing_types.push(t.clone());
        }
    }
    for g in &needs.thing_groups {
        if !iot.thing_group_exists(g).await? {
            m.thing_groups.push(g.clone());
        }
    }
    Ok(m)
}

async fn read_role(iot: &Iot, arn: &str) -> Result<RoleRead, CallError> {
    let Some(name) = role_name(arn) else { return Ok(RoleRead::Missing) };
    let found = match iot.get_role(name).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(RoleRead::Missing),
        Err(e) if e.kind == CallKind::Denied => return Ok(RoleRead::Denied(format!("{}: {}", e.op, e.message))),
        Err(e) => return Err(e),
    };
    let (policies, attached) = match iot.role_policies(&found.name).await {
        Ok(ps) => {
            let attached = ps.iter().filter_map(|p| p.arn.clone()).collect();
            let decoded = ps.iter().filter_map(|p| decode(&p.document).map(|d| (p.source.clone(), d))).collect();
            (Ok(decoded), attached)
        }
        Err(e) if e.kind == CallKind::Denied => (Err(format!("{}: {}", e.op, e.message)), Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(RoleRead::Found { name: found.name, trust: decode(&found.trust_policy), policies, attached })
}

/// Reads the region's topic rules once (ListTopicRules, every page; GetTopicRule for each that may select a
/// registered-certificate topic) and checks the CA's rule.
pub async fn jitr(ctx: &Context<'_>, iot: &Iot, census: &RuleCensus, ca_id: &str) -> Result<Check, CallError> {
    let read = census
        .get_or_init(|| async {
            let listed = iot.list_topic_rules().await?;
            let mut bodies = Vec::new();
            for l in listed.iter().filter(|l| rule::worth_reading(l)) {
                if let Some(b) = iot.get_topic_rule(&l.name).await? {
                    bodies.push(b);
                }
            }
            Ok(RulesRead { listed, bodies })
        })
        .await
        .clone()?;
    let target = ctx.settings.cli_target(ctx.region);
    Ok(rule::check(&Rules { listed: &read.listed, bodies: &read.bodies, ca_id, target: &target }))
}

#[cfg(test)]
mod tests;

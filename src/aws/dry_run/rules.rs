//! AWS IoT's rules on what a JITP template makes: thing names, attributes and their number, the policy document, the
//! certificate's status. What breaks one fails the device's first connection, so `aws dry-run` names it first.

use super::Problem;
use super::evaluate::{Plan, PolicyPlan};
use crate::aws::template::values::{ATTRIBUTE_MAX, THING_NAME_MAX, attribute_char, thing_name_char};
use serde_json::Value;

/// The limits and character sets not already in the template's static check (`template::values`, the one place
/// for thing-name and attribute-value characters): AWS IoT API reference, AttributePayload and CreatePolicy.
const ATTRIBUTE_NAME_MAX: usize = 128;
/// Attributes a thing may have without a thing type, and with one.
const ATTRIBUTES_UNTYPED: usize = 3;
const ATTRIBUTES_TYPED: usize = 50;
/// A policy document's size, whitespace excluded.
pub(super) const POLICY_DOCUMENT_MAX: usize = 2048;

pub(super) fn thing_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= THING_NAME_MAX && s.chars().all(thing_name_char)
}

fn attribute_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ATTRIBUTE_NAME_MAX
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c))
}

fn attribute_value_ok(s: &str) -> bool {
    s.len() <= ATTRIBUTE_MAX && s.chars().all(attribute_char)
}

/// AWS IoT's rules on what the template made.
pub(super) fn judge(plan: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    let update = "then `station ca register --update-template`";
    match plan.certificate_status.as_deref() {
        Some("ACTIVE") => {}
        Some(s) => out.push(Problem::new(
            "aws-jitp-certificate-not-active",
            format!(
                "the template sets the certificate's Status to {}, so AWS refuses the device's connection",
                if s.is_empty() { "nothing (it stays PENDING_ACTIVATION)" } else { s }
            ),
            format!("set \"Status\": \"ACTIVE\" in the AWS::IoT::Certificate resource, {update}"),
        )),
        None => out.push(Problem::new(
            "aws-jitp-certificate-not-active",
            "the template has no AWS::IoT::Certificate resource, so the certificate stays PENDING_ACTIVATION",
            format!(
                "add {{\"Type\": \"AWS::IoT::Certificate\", \"Properties\": {{\"CertificateId\": {{\"Ref\": \
                 \"AWS::IoT::Certificate::Id\"}}, \"Status\": \"ACTIVE\"}}}}, {update}"
            ),
        )),
    }
    if let Some(t) = &plan.thing {
        if !thing_name_ok(&t.name) {
            out.push(Problem::new(
                "aws-template-thing-name-invalid",
                format!(
                    "the thing name would be {:?}: AWS IoT thing names are 1-{THING_NAME_MAX} characters of \
                     [a-zA-Z0-9:_-]",
                    t.name
                ),
                format!("keep such characters out of serials ([policy]), or make ThingName from AWS::IoT::Certificate::Id, {update}"),
            ));
        }
        for (k, v) in &t.attributes {
            if !attribute_name_ok(k) || !attribute_value_ok(v) {
                out.push(Problem::new(
                    "aws-jitp-attribute-invalid",
                    format!(
                        "attribute {k:?} = {v:?}: names are 1-{ATTRIBUTE_NAME_MAX} characters of \
                         [a-zA-Z0-9_.,@/:#-], values up to {ATTRIBUTE_MAX} of [a-zA-Z0-9_.,@/:#=[]-]"
                    ),
                    format!("change the attribute in the template or what fills it, {update}"),
                ));
            }
        }
        let limit = if t.thing_type.is_some() { ATTRIBUTES_TYPED } else { ATTRIBUTES_UNTYPED };
        if t.attributes.len() > limit {
            out.push(Problem::new(
                "aws-jitp-attribute-invalid",
                format!(
                    "{} attributes; a thing {} may have {limit}",
                    t.attributes.len(),
                    if t.thing_type.is_some() { "with a thing type" } else { "without a thing type" }
                ),
                format!("drop attributes, or give the thing a ThingTypeName, {update}"),
            ));
        }
        for name in t.thing_type.iter().chain(&t.groups) {
            if !thing_name_ok(name) {
                out.push(Problem::new(
                    "aws-template-invalid",
                    format!("{name:?} is not a valid thing type or thing group name"),
                    format!("fix the name in the template, {update}"),
                ));
            }
        }
    }
    out
}

pub(super) fn policy_document(logical: &str, doc: &str) -> Result<PolicyPlan, Problem> {
    let bad = |why: String| {
        Problem::new(
            "aws-jitp-policy-invalid",
            format!("resource {logical}: the PolicyDocument {why}"),
            "fix the document in the template, then `station ca register --update-template`",
        )
    };
    let v: Value = serde_json::from_str(doc).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let characters = doc.chars().filter(|c| !c.is_whitespace()).count();
    if characters > POLICY_DOCUMENT_MAX {
        return Err(bad(format!(
            "has {characters} characters without whitespace; AWS IoT allows {POLICY_DOCUMENT_MAX}"
        )));
    }
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return Err(bad("has no Statement".into())),
    };
    let mut actions = Vec::new();
    for s in &statements {
        match s.get("Action") {
            Some(Value::String(a)) => actions.push(a.clone()),
            Some(Value::Array(a)) => actions.extend(a.iter().filter_map(Value::as_str).map(String::from)),
            _ => return Err(bad("has a Statement without Action".into())),
        }
    }
    actions.sort();
    actions.dedup();
    Ok(PolicyPlan::Document { characters, actions })
}

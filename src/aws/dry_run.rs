//! `station aws dry-run`: what AWS IoT would do at a device's first connection, worked out before the device
//! ships. The template registered with the CA (or, offline, the configured one) is evaluated against the
//! certificate the way JITP does: its parameters filled from the certificate's subject and ID, its intrinsic
//! functions and conditions applied, and the thing, attributes, policy and certificate status it makes checked
//! against AWS IoT's rules. Online, AWS is also asked what it already holds (the CA's state, the certificate,
//! a thing of that name).

use crate::pki;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The certificate fields JITP passes as `AWS::IoT::Certificate::*` parameters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CertFields {
    pub common_name: Option<String>,
    pub serial_number: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub state_name: Option<String>,
    pub distinguished_name_qualifier: Option<String>,
    /// The certificate ID: hex SHA-256 of the DER.
    pub id: String,
}

impl CertFields {
    /// Reads the subject of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertFields, String> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let subject = cert.subject();
        let first = |oid: &x509_parser::der_parser::Oid<'_>| {
            subject.iter_by_oid(oid).next().and_then(|a| a.as_str().ok()).map(String::from)
        };
        use x509_parser::oid_registry as o;
        Ok(CertFields {
            common_name: first(&o::OID_X509_COMMON_NAME),
            serial_number: first(&o::OID_X509_SERIALNUMBER),
            organization: first(&o::OID_X509_ORGANIZATION_NAME),
            organizational_unit: first(&o::OID_X509_ORGANIZATIONAL_UNIT),
            country: first(&o::OID_X509_COUNTRY_NAME),
            state_name: first(&o::OID_X509_STATE_OR_PROVINCE_NAME),
            distinguished_name_qualifier: first(&o::OID_X509_DN_QUALIFIER),
            id: pki::sha256_hex(der),
        })
    }

    /// The value of `AWS::IoT::Certificate::<name>`, if the certificate has it.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        match name {
            "CommonName" => self.common_name.as_deref(),
            "SerialNumber" => self.serial_number.as_deref(),
            "Organization" => self.organization.as_deref(),
            "OrganizationalUnit" => self.organizational_unit.as_deref(),
            "Country" => self.country.as_deref(),
            "StateName" => self.state_name.as_deref(),
            "DistinguishedNameQualifier" => self.distinguished_name_qualifier.as_deref(),
            "Id" => Some(&self.id),
            _ => None,
        }
    }
}

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

/// The thing JITP would make (or update).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ThingPlan {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub thing_type: Option<String>,
    pub groups: Vec<String>,
}

/// A policy JITP would attach to the certificate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PolicyPlan {
    /// An existing policy, by name.
    Named(String),
    /// A policy made from the template's document (AWS names it after the document's hash).
    Document { characters: usize, actions: Vec<String> },
}

/// What the template makes of one certificate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Plan {
    pub thing: Option<ThingPlan>,
    pub policies: Vec<PolicyPlan>,
    /// The certificate's status after provisioning (`None`: the template has no certificate resource).
    pub certificate_status: Option<String>,
}

/// JITP's limits and character sets (AWS IoT API reference: CreateThing, AttributePayload, CreatePolicy).
const THING_NAME_MAX: usize = 128;
const ATTRIBUTE_NAME_MAX: usize = 128;
const ATTRIBUTE_VALUE_MAX: usize = 800;
/// Attributes a thing may have without a thing type, and with one.
const ATTRIBUTES_UNTYPED: usize = 3;
const ATTRIBUTES_TYPED: usize = 50;
/// A policy document's size, whitespace excluded.
const POLICY_DOCUMENT_MAX: usize = 2048;

fn thing_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= THING_NAME_MAX && s.chars().all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
}

fn attribute_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ATTRIBUTE_NAME_MAX
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c))
}

fn attribute_value_ok(s: &str) -> bool {
    s.len() <= ATTRIBUTE_VALUE_MAX && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c))
}

/// Evaluates a template body against a certificate: the plan, or every reason JITP would fail.
pub fn evaluate(body: &str, cert: &CertFields) -> Result<Plan, Vec<Problem>> {
    let fix_template = "fix the template ([aws] template), then `station ca register --update-template`";
    let invalid = |detail: String| vec![Problem::new("aws-template-invalid", detail, fix_template)];
    let doc: Value = serde_json::from_str(body).map_err(|e| invalid(format!("the template is not JSON: {e}")))?;
    let empty = Map::new();
    let section = |name: &str| doc.get(name).and_then(Value::as_object).unwrap_or(&empty);
    let ev = Evaluator {
        cert,
        declared: section("Parameters"),
        mappings: section("Mappings"),
        conditions: section("Conditions"),
        resources: section("Resources"),
    };
    if ev.resources.is_empty() {
        return Err(invalid("the template has no Resources".into()));
    }
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for (logical, resource) in ev.resources {
        let r = ev.resource(logical, resource, &mut plan);
        if let Err(p) = r {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        problems.extend(ev.judge(&plan));
    }
    if problems.is_empty() { Ok(plan) } else { Err(problems) }
}

struct Evaluator<'a> {
    cert: &'a CertFields,
    declared: &'a Map<String, Value>,
    mappings: &'a Map<String, Value>,
    conditions: &'a Map<String, Value>,
    resources: &'a Map<String, Value>,
}

/// `Ref: AWS::NoValue`: the property is left out.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl Evaluator<'_> {
    fn unsupported(&self, what: String) -> Problem {
        Problem::new(
            "aws-template-invalid",
            what,
            "JITP templates support Ref, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::FindInMap, Fn::If, \
             Fn::Base64 and the conditions Fn::Equals, Fn::Not, Fn::And, Fn::Or; fix [aws] template, then \
             `station ca register --update-template`",
        )
    }

    fn parameter(&self, name: &str) -> Result<String, Problem> {
        if name == "AWS::NoValue" {
            return Ok(NO_VALUE.into());
        }
        if let Some(field) = name.strip_prefix("AWS::IoT::Certificate::")
            && let Some(v) = self.cert.parameter(field)
        {
            return Ok(v.to_string());
        }
        if let Some(default) = self.declared.get(name).and_then(|d| d.get("Default")).and_then(Value::as_str) {
            return Ok(default.to_string());
        }
        if name.starts_with("AWS::IoT::Certificate::") {
            return Err(Problem::new(
                "aws-template-parameter-unfilled",
                format!("the template uses {name}, and the certificate's subject has no such attribute"),
                "set the attribute in [policy] (O, OU, C) or drop the parameter from the template, then \
                 `station ca register --update-template`",
            ));
        }
        if let Some(r) = self.resources.get(name) {
            // Ref to a resource: its physical ID.
            return match r.get("Type").and_then(Value::as_str) {
                Some("AWS::IoT::Certificate") => Ok(self.cert.id.clone()),
                _ => Ok(name.to_string()),
            };
        }
        Err(self.unsupported(format!("Ref {name:?} names no parameter or resource")))
    }

    fn condition(&self, name: &str) -> Result<bool, Problem> {
        let c = self.conditions.get(name).ok_or_else(|| self.unsupported(format!("no condition named {name:?}")))?;
        self.truth(c)
    }

    fn truth(&self, v: &Value) -> Result<bool, Problem> {
        let Some((f, args)) = v.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return Err(self.unsupported(format!("a condition must be one function: {v}")));
        };
        let list = || args.as_array().ok_or_else(|| self.unsupported(format!("{f} takes a list")));
        match f.as_str() {
            "Fn::Equals" => match list()?.as_slice() {
                [a, b] => Ok(self.value(a)? == self.value(b)?),
                _ => Err(self.unsupported("Fn::Equals takes two values".into())),
            },
            "Fn::Not" => match list()?.as_slice() {
                [c] => Ok(!self.truth(c)?),
                _ => Err(self.unsupported("Fn::Not takes one condition".into())),
            },
            "Fn::And" => list()?.iter().try_fold(true, |acc, c| Ok(acc & self.truth(c)?)),
            "Fn::Or" => list()?.iter().try_fold(false, |acc, c| Ok(acc | self.truth(c)?)),
            "Condition" => self.condition(args.as_str().unwrap_or_default()),
            other => Err(self.unsupported(format!("{other} is not a condition function"))),
        }
    }

    fn string(&self, v: &Value) -> Result<String, Problem> {
        match self.value(v)? {
            Value::String(s) => Ok(s),
            other => Err(self.unsupported(format!("expected a string, the template gives {other}"))),
        }
    }

    /// A value with every intrinsic function applied.
    fn value(&self, v: &Value) -> Result<Value, Problem> {
        match v {
            Value::Object(o) if o.len() == 1 && o.keys().all(|k| k == "Ref" || k.starts_with("Fn::")) => {
                let Some((k, args)) = o.iter().next() else { return Ok(Value::Null) };
                if k == "Ref" {
                    return Ok(Value::String(self.parameter(args.as_str().unwrap_or_default())?));
                }
                self.function(k, args)
            }
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, x) in o {
                    let x = self.value(x)?;
                    if x.as_str() != Some(NO_VALUE) {
                        out.insert(k.clone(), x);
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => Ok(Value::Array(
                a.iter()
                    .map(|x| self.value(x))
                    .filter(|x| !matches!(x, Ok(Value::String(s)) if s == NO_VALUE))
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(other.clone()),
        }
    }

    fn function(&self, f: &str, args: &Value) -> Result<Value, Problem> {
        let list = || args.as_array().map(Vec::as_slice).ok_or_else(|| self.unsupported(format!("{f} takes a list")));
        match f {
            "Fn::Join" => match list()? {
                [sep, Value::Array(items)] => {
                    let sep = self.string(sep)?;
                    let parts: Vec<String> = items.iter().map(|i| self.string(i)).collect::<Result<_, _>>()?;
                    Ok(Value::String(parts.join(&sep)))
                }
                _ => Err(self.unsupported("Fn::Join takes [separator, [values]]".into())),
            },
            "Fn::Sub" => {
                let (text, vars) = match args {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(a) => match a.as_slice() {
                        [Value::String(s), Value::Object(v)] => (s.clone(), v.clone()),
                        _ => return Err(self.unsupported("Fn::Sub takes a string or [string, {variables}]".into())),
                    },
                    _ => return Err(self.unsupported("Fn::Sub takes a string or [string, {variables}]".into())),
                };
                self.sub(&text, &vars).map(Value::String)
            }
            "Fn::Select" => match list()? {
                [i, from] => {
                    let i: usize = match self.value(i)? {
                        Value::Number(n) => n.as_u64().unwrap_or(u64::MAX) as usize,
                        Value::String(s) => {
                            s.parse().map_err(|_| self.unsupported(format!("Fn::Select index {s:?}")))?
                        }
                        other => return Err(self.unsupported(format!("Fn::Select index {other}"))),
                    };
                    match self.value(from)? {
                        Value::Array(a) => a
                            .get(i)
                            .cloned()
                            .ok_or_else(|| self.unsupported(format!("Fn::Select index {i} is beyond the list"))),
                        other => Err(self.unsupported(format!("Fn::Select from {other}"))),
                    }
                }
                _ => Err(self.unsupported("Fn::Select takes [index, list]".into())),
            },
            "Fn::Split" => match list()? {
                [sep, s] => {
                    let (sep, s) = (self.string(sep)?, self.string(s)?);
                    Ok(Value::Array(s.split(sep.as_str()).map(|p| Value::String(p.into())).collect()))
                }
                _ => Err(self.unsupported("Fn::Split takes [separator, string]".into())),
            },
            "Fn::FindInMap" => match list()? {
                [m, k1, k2] => {
                    let (m, k1, k2) = (self.string(m)?, self.string(k1)?, self.string(k2)?);
                    self.mappings
                        .get(&m)
                        .and_then(|x| x.get(&k1))
                        .and_then(|x| x.get(&k2))
                        .cloned()
                        .ok_or_else(|| self.unsupported(format!("Fn::FindInMap: no {m}.{k1}.{k2} in Mappings")))
                }
                _ => Err(self.unsupported("Fn::FindInMap takes [map, key, key]".into())),
            },
            "Fn::If" => match list()? {
                [Value::String(c), yes, no] => self.value(if self.condition(c)? { yes } else { no }),
                _ => Err(self.unsupported("Fn::If takes [condition, value, value]".into())),
            },
            "Fn::Base64" => {
                use base64::Engine;
                Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(self.string(args)?)))
            }
            other => Err(self.unsupported(format!("{other} is not a function JITP templates support"))),
        }
    }

    /// `${Name}` replaced by a variable or parameter; `${!Literal}` stays `${Literal}`.
    fn sub(&self, text: &str, vars: &Map<String, Value>) -> Result<String, Problem> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.unsupported(format!("Fn::Sub: an unclosed ${{ in {text:?}")));
            };
            let name = &after[..end];
            if let Some(lit) = name.strip_prefix('!') {
                out.push_str(&format!("${{{lit}}}"));
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.string(v)?);
            } else {
                out.push_str(&self.parameter(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resource(&self, logical: &str, r: &Value, plan: &mut Plan) -> Result<(), Problem> {
        if let Some(c) = r.get("Condition").and_then(Value::as_str)
            && !self.condition(c)?
        {
            return Ok(());
        }
        let props = match r.get("Properties") {
            Some(p) => self.value(p)?,
            None => Value::Object(Map::new()),
        };
        let text = |k: &str| props.get(k).and_then(Value::as_str).map(String::from);
        match r.get("Type").and_then(Value::as_str) {
            Some("AWS::IoT::Thing") => {
                let mut thing = ThingPlan { name: text("ThingName").unwrap_or_default(), ..Default::default() };
                if let Some(attrs) = props.get("AttributePayload").and_then(Value::as_object) {
                    for (k, v) in attrs {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        thing.attributes.insert(k.clone(), v);
                    }
                }
                thing.thing_type = text("ThingTypeName");
                thing.groups = props
                    .get("ThingGroups")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                    .unwrap_or_default();
                plan.thing = Some(thing);
            }
            Some("AWS::IoT::Certificate") => {
                if let Some(id) = text("CertificateId")
                    && id != self.cert.id
                {
                    return Err(self.unsupported(format!(
                        "resource {logical}: CertificateId is {id:?}, not the connecting certificate's ID \
                         (use {{\"Ref\": \"AWS::IoT::Certificate::Id\"}})"
                    )));
                }
                plan.certificate_status = Some(text("Status").unwrap_or_default());
            }
            Some("AWS::IoT::Policy") => match (text("PolicyName"), text("PolicyDocument")) {
                (Some(name), None) => plan.policies.push(PolicyPlan::Named(name)),
                (_, Some(doc)) => plan.policies.push(policy_document(logical, &doc)?),
                (None, None) => {
                    return Err(Problem::new(
                        "aws-jitp-policy-invalid",
                        format!("resource {logical} has neither PolicyName nor PolicyDocument"),
                        "name an existing policy or give a document, then `station ca register --update-template`",
                    ));
                }
            },
            Some(other) => {
                return Err(self.unsupported(format!(
                    "resource {logical} is {other}; JITP makes AWS::IoT::Thing, AWS::IoT::Certificate and \
                     AWS::IoT::Policy only"
                )));
            }
            None => return Err(self.unsupported(format!("resource {logical} has no Type"))),
        }
        Ok(())
    }

    /// AWS IoT's rules on what the template made.
    fn judge(&self, plan: &Plan) -> Vec<Problem> {
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
                             [a-zA-Z0-9_.,@/:#-], values up to {ATTRIBUTE_VALUE_MAX} of [a-zA-Z0-9_.,@/:#=[]-]"
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
}

fn policy_document(logical: &str, doc: &str) -> Result<PolicyPlan, Problem> {
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
pub fn certificate(
    ledger: &crate::ledger::Ledger,
    chain: &[u8],
) -> crate::Result<(Vec<u8>, CertSummary, Vec<Problem>)> {
    let der = pki::certs_from_bytes(chain)?.into_iter().next().unwrap_or_default();
    let info = pki::inspect(&der)?;
    let fields = CertFields::from_der(&der).map_err(pki::PkiError::BadCertificate)?;
    let ca = ledger
        .cas()?
        .into_iter()
        .find(|c| c.cert_der.as_deref().is_some_and(|ca| pki::signed_by(&der, ca)))
        .map(|c| c.name);
    let issued_here = ledger
        .conn()
        .query_row(
            "SELECT serial, bench, issued_at, state, superseded_by IS NULL FROM issuances WHERE cert_id = ?1",
            [&fields.id],
            |r| {
                Ok(IssuedHere {
                    serial: r.get(0)?,
                    bench: r.get(1)?,
                    issued_at: r.get(2)?,
                    state: r.get(3)?,
                    current: r.get(4)?,
                })
            },
        )
        .ok();
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
    Ok((der, summary, problems))
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
            match super::field::jitp(&ctx, iot, &ca).await {
                Ok(checks) => checks.into_iter().filter(|c| c.check.starts_with("jitp-role")).for_each(|c| run.take(c)),
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

#[cfg(test)]
mod tests;

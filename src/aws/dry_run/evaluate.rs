//! The JITP template evaluated against one certificate, as AWS IoT evaluates it at the device's first connection:
//! `AWS::IoT::Certificate::*` filled from the subject and ID, the intrinsic functions and conditions applied, and what
//! the resources make (thing, attributes, policy, certificate status) judged against AWS IoT's rules. Pure: no I/O.

use super::{Problem, rules};
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
        problems.extend(rules::judge(&plan));
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
                (_, Some(doc)) => plan.policies.push(rules::policy_document(logical, &doc)?),
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
}

#[cfg(test)]
mod tests;

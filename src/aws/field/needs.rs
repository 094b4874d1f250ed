//! What a JITP template needs in the account: the IoT resources it names (they must exist in the region) and the
//! actions its resources make AWS IoT call with the provisioning role.
//!
//! The actions follow the provisioning-template resource types (AWS IoT developer guide, "Provisioning templates")
//! and the managed policy AWSIoTThingsRegistration (v3), which grants them all.

use serde_json::Value;
use std::collections::BTreeSet;

/// One permission a resource needs: any one of `actions` grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub actions: &'static [&'static str],
    /// Which resource of the template needs it.
    pub why: String,
}

/// What a template needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub permissions: Vec<Need>,
    /// AWS IoT policies named by `PolicyName` (an existing policy the template attaches).
    pub policies: BTreeSet<String>,
    pub thing_types: BTreeSet<String>,
    pub thing_groups: BTreeSet<String>,
}

/// What every `AWS::IoT::Thing` needs: create it, read it, update its attributes, attach the certificate.
const THING: [&[&str]; 4] =
    [&["iot:CreateThing"], &["iot:DescribeThing"], &["iot:UpdateThing"], &["iot:AttachThingPrincipal"]];

/// The needs of a template body (a template that does not parse needs nothing here: `jitp-template` fails).
pub fn of(body: &str) -> Needs {
    let mut n = Needs::default();
    let Ok(v) = serde_json::from_str::<Value>(body) else { return n };
    let params = v.get("Parameters").cloned().unwrap_or(Value::Null);
    let Some(resources) = v.get("Resources").and_then(Value::as_object) else { return n };
    for (logical, r) in resources {
        let props = r.get("Properties").cloned().unwrap_or(Value::Null);
        let mut need = |actions: &'static [&'static str]| {
            n.permissions.push(Need { actions, why: format!("resource {logical}") });
        };
        match r.get("Type").and_then(Value::as_str) {
            Some("AWS::IoT::Thing") => {
                for a in THING {
                    need(a);
                }
                if let Some(t) = literal(props.get("ThingTypeName"), &params) {
                    need(&["iot:DescribeThingType"]);
                    n.thing_types.insert(t);
                }
                let groups: Vec<String> = match props.get("ThingGroups") {
                    Some(Value::Array(a)) => a.iter().filter_map(|g| literal(Some(g), &params)).collect(),
                    other => literal(other, &params).into_iter().collect(),
                };
                if !groups.is_empty() {
                    need(&["iot:DescribeThingGroup"]);
                    need(&["iot:AddThingToThingGroup"]);
                    n.thing_groups.extend(groups);
                }
            }
            Some("AWS::IoT::Certificate") => {
                need(&["iot:DescribeCertificate"]);
                need(&["iot:UpdateCertificate"]);
            }
            Some("AWS::IoT::Policy") => {
                if props.get("PolicyDocument").is_some() {
                    need(&["iot:CreatePolicy"]);
                } else if let Some(name) = literal(props.get("PolicyName"), &params) {
                    need(&["iot:GetPolicy"]);
                    n.policies.insert(name);
                }
                need(&["iot:AttachPolicy", "iot:AttachPrincipalPolicy"]);
            }
            _ => {}
        }
    }
    n
}

/// A name the template fixes: a string, or a `Ref` to a declared parameter with a `Default`. A name that comes from
/// the certificate (or is computed) is not known before a device connects: None.
fn literal(v: Option<&Value>, params: &Value) -> Option<String> {
    match v? {
        Value::String(s) if !s.contains("${") => Some(s.clone()),
        Value::Object(o) => {
            let name = o.get("Ref")?.as_str()?;
            params.get(name)?.get("Default")?.as_str().map(String::from)
        }
        _ => None,
    }
}

//! JITP: the provisioning role. AWS IoT assumes it to create what the template describes, so it must trust
//! `iot.amazonaws.com` and allow the actions the template's resources need.
//!
//! The permission rule is deliberately simple and documented in docs/aws.md: an action is allowed when a statement
//! with `Effect: Allow` names it in `Action` (wildcards `*` and `?`, any case) or leaves it out of `NotAction`, and no
//! statement with `Effect: Deny` and `Resource: "*"` names it. Resources and conditions of Allow statements are not
//! evaluated; permission boundaries and SCPs are not read.

use serde_json::Value;

/// The AWS managed policy for JITP roles.
pub const THINGS_REGISTRATION: &str = "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration";

/// The role name in a role ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
pub fn role_name(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let rest = resource.strip_prefix("role/")?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

/// A policy document as IAM returns it: URL-encoded JSON (RFC 3986); raw JSON is taken as well.
pub fn decode(document: &str) -> Option<Value> {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8().ok();
    decoded.and_then(|d| serde_json::from_str(&d).ok()).or_else(|| serde_json::from_str(document).ok())
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcard match: `*` any run, `?` one character, case-insensitive (action names are).
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

fn effect(s: &Value) -> &str {
    s.get("Effect").and_then(Value::as_str).unwrap_or_default()
}

/// Whether a trust policy lets `iot.amazonaws.com` assume the role: an Allow statement whose Principal.Service (a
/// string or a list) holds it and whose Action covers `sts:AssumeRole`.
pub fn trusts_iot(doc: &Value) -> bool {
    statements(doc).into_iter().any(|s| {
        effect(s) == "Allow"
            && strings(s.get("Principal").and_then(|p| p.get("Service"))).contains(&"iot.amazonaws.com")
            && strings(s.get("Action")).iter().any(|a| glob(a, "sts:AssumeRole"))
    })
}

/// Why `action` is not allowed by `policies` ((source, document) pairs), or None when it is.
pub fn refusal(policies: &[(String, Value)], action: &str) -> Option<String> {
    let mut allowed = false;
    for (source, doc) in policies {
        for s in statements(doc) {
            let named = strings(s.get("Action")).iter().any(|a| glob(a, action));
            let covered =
                named || (s.get("NotAction").is_some() && !strings(s.get("NotAction")).iter().any(|a| glob(a, action)));
            match effect(s) {
                "Deny" if named && strings(s.get("Resource")).contains(&"*") => {
                    return Some(format!("denied by {source}"));
                }
                "Allow" if covered => allowed = true,
                _ => {}
            }
        }
    }
    if allowed { None } else { Some("allowed by no policy".into()) }
}

//! JITR: the topic rule that acts on `$aws/events/certificates/registered/<caCertificateId>`. Without an enabled
//! rule with an action that selects it, nothing activates a device's certificate and it stays PENDING_ACTIVATION.

use super::super::checks::Check;
use crate::aws::client::{ListedRule, RuleBody};

/// The topic AWS IoT publishes to when a device certificate under the CA registers itself.
pub const REGISTERED: &str = "$aws/events/certificates/registered/";

/// How many rules the detail of a missing rule names.
const SHOWN: usize = 10;

/// The topic (filter) a rule's SQL selects FROM: quoted (single or double quotes) or bare, the keywords in any case,
/// `FROM` inside a quoted string ignored. None when the SQL has no FROM.
pub fn from_topic(sql: &str) -> Option<String> {
    let tokens = tokens(sql);
    let at = tokens.iter().position(|(quoted, t)| !quoted && t.eq_ignore_ascii_case("from"))?;
    tokens.get(at + 1).map(|(_, t)| t.clone()).filter(|t| !t.is_empty())
}

/// Words and quoted strings (without their quotes), in order; `(true, s)` for a quoted one.
fn tokens(sql: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                s.push(d);
            }
            out.push((true, s));
        } else if c.is_whitespace() || c == ',' || c == '(' || c == ')' {
            chars.next();
        } else {
            let mut s = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() || d == ',' || d == '(' || d == ')' || d == '\'' || d == '"' {
                    break;
                }
                s.push(d);
                chars.next();
            }
            out.push((false, s));
        }
    }
    out
}

/// Whether an MQTT topic filter (`+` one level, `#` the rest) matches `topic`. A filter starting with a wildcard does
/// not match a `$` topic, as in MQTT.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    let mut first = true;
    loop {
        match (f.next(), t.next()) {
            (Some("#"), Some(level)) => return !(first && level.starts_with('$')),
            (Some("+"), Some(level)) if !(first && level.starts_with('$')) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

/// Whether a listed rule may select the registered-certificate topic of some CA, so it is worth a GetTopicRule: its
/// topic pattern could match, or the list did not say.
pub fn worth_reading(rule: &ListedRule) -> bool {
    match &rule.topic_pattern {
        None => true,
        Some(p) => p.starts_with(REGISTERED) || filter_matches(p, &format!("{REGISTERED}x")),
    }
}

/// What the check needs: every rule listed (for the detail), the bodies read, the CA's ID and the remedy's target.
pub struct Rules<'a> {
    pub listed: &'a [ListedRule],
    pub bodies: &'a [RuleBody],
    pub ca_id: &'a str,
    /// `Settings::cli_target` of the region.
    pub target: &'a str,
}

/// `jitr-rule`: an enabled topic rule with an action selects FROM the CA's registered topic (or a wildcard over it).
pub fn check(r: &Rules<'_>) -> Check {
    let topic = format!("{REGISTERED}{}", r.ca_id);
    let selecting: Vec<(&RuleBody, String)> = r
        .bodies
        .iter()
        .filter_map(|b| from_topic(&b.sql).map(|t| (b, t)))
        .filter(|(_, t)| filter_matches(t, &topic))
        .collect();
    let describe = |b: &RuleBody, t: &str| format!("rule {} (FROM '{t}')", b.name);
    if let Some((b, t)) = selecting.iter().find(|(b, _)| !b.disabled && b.actions > 0) {
        return Check::pass("jitr-rule", format!("{}, enabled, with {} action(s)", describe(b, t), b.actions));
    }
    if let Some((b, t)) = selecting.iter().find(|(b, _)| b.disabled) {
        let also = if b.actions == 0 { "; it has no action either, so give it one too" } else { "" };
        return Check::fail(
            "jitr-rule",
            "aws-jitr-rule-disabled",
            format!("{} is disabled, so registered certificates stay PENDING_ACTIVATION{also}", describe(b, t)),
            format!("run `aws iot enable-topic-rule --rule-name {} {}`", b.name, r.target),
        );
    }
    if let Some((b, t)) = selecting.first() {
        return Check::fail(
            "jitr-rule",
            "aws-jitr-rule-no-action",
            format!("{} has no action, so nothing activates registered certificates", describe(b, t)),
            format!(
                "give it an action that activates the certificate: run `aws iot replace-topic-rule --rule-name {} \
                 --topic-rule-payload {} {}` (with your activation Lambda's ARN)",
                b.name,
                payload(&topic),
                r.target
            ),
        );
    }
    let seen: Vec<String> = r
        .listed
        .iter()
        .take(SHOWN)
        .map(|l| {
            let t = r.bodies.iter().find(|b| b.name == l.name).and_then(|b| from_topic(&b.sql));
            format!("{} ('{}')", l.name, t.or(l.topic_pattern.clone()).unwrap_or_else(|| "?".into()))
        })
        .collect();
    let seen = match r.listed.len() {
        0 => "the region has no topic rules".to_string(),
        n if n > SHOWN => format!("rules seen: {}, and {} more", seen.join(", "), n - SHOWN),
        _ => format!("rules seen: {}", seen.join(", ")),
    };
    let short: String = r.ca_id.chars().take(12).collect();
    Check::fail(
        "jitr-rule",
        "aws-jitr-rule-missing",
        format!(
            "no topic rule selects FROM '{topic}' (or '{REGISTERED}+'), so registered certificates stay \
             PENDING_ACTIVATION; {seen}"
        ),
        format!(
            "run `aws iot create-topic-rule --rule-name station_jitr_{short} --topic-rule-payload {} {}` (with your \
             activation Lambda's ARN)",
            payload(&topic),
            r.target
        ),
    )
}

/// A topic rule payload for the shell: SELECT * FROM the topic, one Lambda action to fill in.
fn payload(topic: &str) -> String {
    let body = serde_json::json!({
        "sql": format!("SELECT * FROM '{topic}'"),
        "awsIotSqlVersion": "2016-03-23",
        "ruleDisabled": false,
        "actions": [{ "lambda": { "functionArn": "arn:aws:lambda:REGION:ACCOUNT:function:ACTIVATE_CERTIFICATE" } }],
    });
    // Double quotes for the shell: escape what it would expand.
    let text = body.to_string().replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`");
    format!("\"{text}\"")
}

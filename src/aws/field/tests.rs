use super::*;
use crate::aws::checks::{LocalCa, Status};
use crate::aws::template::{BUILTIN, DeviceSubject};
use crate::aws::{Settings, client::RuleBody};
use crate::config::{AwsMode, AwsRegion};
use serde_json::json;
use time::OffsetDateTime;

const ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn settings() -> Settings {
    Settings {
        regions: vec![AwsRegion { name: "eu-west-1".into(), profile: Some("factory".into()) }],
        endpoint_url: None,
        mode: AwsMode::Jitp,
        template: None,
        role_arn: Some("arn:aws:iam::123456789012:role/R".into()),
        timeout: std::time::Duration::from_secs(5),
        max_attempts: 3,
        max_tps: 8,
        subject: DeviceSubject::default(),
        device_days: 365,
    }
}

fn ca() -> LocalCa {
    let now = OffsetDateTime::now_utc();
    LocalCa {
        name: "ca-1".into(),
        der: Vec::new(),
        fingerprint: ID.into(),
        subject: "CN=ca".into(),
        not_before: now,
        not_after: now,
    }
}

fn with_ctx<T>(f: impl FnOnce(&Context<'_>) -> T) -> T {
    let (s, ca) = (settings(), ca());
    let region = s.regions[0].clone();
    let ctx = Context { ca: &ca, region: &region, settings: &s, recorded: None, now: OffsetDateTime::now_utc() };
    f(&ctx)
}

fn rule(name: &str, sql: &str, disabled: bool, actions: usize) -> (ListedRule, RuleBody) {
    (
        ListedRule { name: name.into(), disabled, topic_pattern: from_topic(sql) },
        RuleBody { name: name.into(), sql: sql.into(), disabled, actions },
    )
}

fn rule_code(rules: &[(ListedRule, RuleBody)]) -> (Option<&'static str>, String) {
    let listed: Vec<ListedRule> = rules.iter().map(|r| r.0.clone()).collect();
    let bodies: Vec<RuleBody> = rules.iter().map(|r| r.1.clone()).collect();
    let c = rule::check(&Rules { listed: &listed, bodies: &bodies, ca_id: ID, target: "--region eu-west-1" });
    (c.code, format!("{} | {}", c.detail, c.remedy.unwrap_or_default()))
}

#[test]
fn the_from_topic_is_read_whatever_the_quotes_and_case() {
    let t = format!("$aws/events/certificates/registered/{ID}");
    for sql in [
        format!("SELECT * FROM '{t}'"),
        format!("select certificateId from \"{t}\" where x = 1"),
        format!("SELECT 'from' AS a, b FrOm '{t}'"),
        format!("SELECT *\n  FROM\t'{t}'"),
    ] {
        assert_eq!(from_topic(&sql).as_deref(), Some(t.as_str()), "{sql}");
    }
    assert_eq!(from_topic("SELECT 1"), None);
}

#[test]
fn topic_filters_match_as_mqtt_does() {
    let t = format!("$aws/events/certificates/registered/{ID}");
    assert!(filter_matches("$aws/events/certificates/registered/+", &t));
    assert!(filter_matches("$aws/events/certificates/#", &t));
    assert!(filter_matches(&t, &t));
    assert!(!filter_matches("$aws/events/certificates/registered/other", &t));
    assert!(!filter_matches("#", &t), "a leading wildcard does not match a $ topic");
    assert!(!filter_matches("+/events/certificates/registered/+", &t));
}

#[test]
fn rules_on_any_registered_topic_are_worth_reading() {
    let listed = |p: &str| ListedRule { name: "r".into(), disabled: false, topic_pattern: Some(p.into()) };
    assert!(rule::worth_reading(&listed(&format!("$aws/events/certificates/registered/{ID}"))));
    assert!(rule::worth_reading(&listed("$aws/events/certificates/registered/+")));
    assert!(rule::worth_reading(&listed("$aws/events/#")));
    assert!(!rule::worth_reading(&listed("devices/+/telemetry")));
    assert!(rule::worth_reading(&ListedRule { name: "r".into(), disabled: false, topic_pattern: None }));
}

#[test]
fn each_jitr_rule_problem_has_its_own_code() {
    let good = format!("SELECT * FROM '$aws/events/certificates/registered/{ID}'");
    let plus = "select * from '$aws/events/certificates/registered/+'";
    assert_eq!(rule_code(&[rule("r", &good, false, 1)]).0, None);
    assert_eq!(rule_code(&[rule("r", plus, false, 2)]).0, None);
    let (code, text) = rule_code(&[rule("r", &good, true, 1)]);
    assert_eq!(code, Some("aws-jitr-rule-disabled"));
    assert!(text.contains("aws iot enable-topic-rule --rule-name r --region eu-west-1"), "{text}");
    assert_eq!(rule_code(&[rule("r", &good, false, 0)]).0, Some("aws-jitr-rule-no-action"));
    let (code, text) = rule_code(&[rule("other", "SELECT * FROM 'devices/+/telemetry'", false, 1)]);
    assert_eq!(code, Some("aws-jitr-rule-missing"));
    assert!(text.contains("rules seen: other ('devices/+/telemetry')"), "{text}");
    assert!(text.contains("aws iot create-topic-rule --rule-name station_jitr_a1b2c3d4e5f6"), "{text}");
    assert_eq!(rule_code(&[]).0, Some("aws-jitr-rule-missing"));
    // A good rule beside a broken one passes.
    assert_eq!(rule_code(&[rule("a", &good, true, 0), rule("b", plus, false, 1)]).0, None);
}

#[test]
fn trust_policies_are_read_url_encoded_with_a_service_string_or_list() {
    let one =
        r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
    let encoded: String = percent_encoding::utf8_percent_encode(one, percent_encoding::NON_ALPHANUMERIC).to_string();
    assert!(trusts_iot(&decode(&encoded).unwrap()));
    let list = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com",
        "iot.amazonaws.com"]}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    assert!(trusts_iot(&list));
    let lambda = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]});
    assert!(!trusts_iot(&lambda));
    let deny = json!({"Statement": [{"Effect": "Deny", "Principal": {"Service": "iot.amazonaws.com"},
        "Action": "sts:AssumeRole"}]});
    assert!(!trusts_iot(&deny));
}

#[test]
fn wildcards_allow_and_an_explicit_deny_refuses() {
    assert!(glob("iot:*", "iot:CreateThing") && glob("iot:create*", "iot:CreateThing"));
    assert!(glob("iot:?reateThing", "iot:CreateThing") && !glob("iot:Describe*", "iot:CreateThing"));
    let p = |doc: serde_json::Value| vec![("inline p".to_string(), doc)];
    let allow_all = p(json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    assert_eq!(refusal(&allow_all, "iot:CreateThing"), None);
    let not_action = p(json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}));
    assert_eq!(refusal(&not_action, "iot:CreateThing"), None);
    let mut denied = allow_all.clone();
    denied
        .push(("managed X".into(), json!({"Statement": {"Effect": "Deny", "Action": "iot:Create*", "Resource": "*"}})));
    assert_eq!(refusal(&denied, "iot:CreateThing").as_deref(), Some("denied by managed X"));
    assert_eq!(refusal(&denied, "iot:DescribeThing"), None);
    assert!(refusal(&p(json!({"Statement": []})), "iot:CreateThing").is_some());
}

#[test]
fn the_template_tells_which_resources_and_actions_it_needs() {
    let n = needs::of(BUILTIN);
    let actions: Vec<&str> = n.permissions.iter().flat_map(|p| p.actions.iter().copied()).collect();
    for a in
        ["iot:CreateThing", "iot:AttachThingPrincipal", "iot:UpdateCertificate", "iot:CreatePolicy", "iot:AttachPolicy"]
    {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(n.policies.is_empty() && n.thing_types.is_empty() && n.thing_groups.is_empty());
    let named = json!({
        "Parameters": {"Group": {"Type": "String", "Default": "line-7"}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                "ThingTypeName": "sensor", "ThingGroups": ["fleet", {"Ref": "Group"}]}},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "DevicePolicy"}}
        }
    });
    let n = needs::of(&named.to_string());
    assert_eq!(n.policies.iter().collect::<Vec<_>>(), ["DevicePolicy"]);
    assert_eq!(n.thing_types.iter().collect::<Vec<_>>(), ["sensor"]);
    assert_eq!(n.thing_groups.iter().collect::<Vec<_>>(), ["fleet", "line-7"]);
    let actions: Vec<&str> = n.permissions.iter().flat_map(|p| p.actions.iter().copied()).collect();
    assert!(actions.contains(&"iot:AddThingToThingGroup") && actions.contains(&"iot:GetPolicy"), "{actions:?}");
    assert!(!actions.contains(&"iot:CreatePolicy"), "an existing policy is attached, not created");
}

#[test]
fn role_checks_fail_unknown_or_pass_with_their_codes() {
    let needs = needs::of(BUILTIN);
    let arn = "arn:aws:iam::123456789012:role/path/StationJITP";
    assert_eq!(role_name(arn), Some("StationJITP"));
    let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"},
        "Action": "sts:AssumeRole"}]});
    let managed = json!({"Statement": [{"Effect": "Allow", "Action": ["iot:CreateThing", "iot:DescribeThing",
        "iot:UpdateThing", "iot:AttachThingPrincipal", "iot:DescribeCertificate", "iot:UpdateCertificate",
        "iot:CreatePolicy", "iot:AttachPrincipalPolicy"], "Resource": "*"}]});
    let found = |trust: serde_json::Value, policies: Vec<(String, serde_json::Value)>| RoleRead::Found {
        name: "StationJITP".into(),
        trust: Some(trust),
        policies: Ok(policies),
        attached: vec![],
    };
    with_ctx(|ctx| {
        let codes = |read: &RoleRead| -> Vec<(Status, Option<&'static str>)> {
            role_checks(ctx, arn, read, &needs).into_iter().map(|c| (c.status, c.code)).collect()
        };
        let ok = found(trust.clone(), vec![("managed".into(), managed.clone())]);
        assert_eq!(codes(&ok), vec![(Status::Pass, None); 3]);
        let missing = role_checks(ctx, arn, &RoleRead::Missing, &needs);
        assert_eq!(missing[0].code, Some("aws-jitp-role-not-found"));
        let fix = missing[0].remedy.clone().unwrap();
        assert!(
            fix.contains("aws iam create-role --role-name StationJITP") && fix.contains("--profile factory"),
            "{fix}"
        );
        let lambda = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]});
        let untrusted = found(lambda, vec![("managed".into(), managed.clone())]);
        assert_eq!(codes(&untrusted)[1], (Status::Fail, Some("aws-jitp-role-trust-missing")));
        let bare = found(trust.clone(), vec![]);
        assert_eq!(codes(&bare)[2], (Status::Fail, Some("aws-jitp-role-permissions-missing")));
        let denied = codes(&RoleRead::Denied("iam:GetRole: AccessDenied".into()));
        assert_eq!(denied, vec![(Status::Unknown, Some("aws-iam-read-denied")); 3]);
        let half = RoleRead::Found {
            name: "StationJITP".into(),
            trust: Some(trust.clone()),
            policies: Err("iam:ListAttachedRolePolicies: AccessDenied".into()),
            attached: vec![],
        };
        assert_eq!(codes(&half)[2], (Status::Unknown, Some("aws-iam-read-denied")));
    });
}

#[test]
fn each_missing_resource_kind_has_its_code_and_a_create_command() {
    let needs = Needs::default();
    with_ctx(|ctx| {
        assert_eq!(resources(ctx, &needs, &Missing::default()).status, Status::Pass);
        let policy = Missing { policies: vec!["P".into()], ..Missing::default() };
        assert_eq!(resources(ctx, &needs, &policy).code, Some("aws-jitp-policy-missing"));
        let tt = Missing { thing_types: vec!["sensor".into()], ..Missing::default() };
        let c = resources(ctx, &needs, &tt);
        assert_eq!(c.code, Some("aws-jitp-thing-type-missing"));
        assert!(c.remedy.unwrap().contains("aws iot create-thing-type --thing-type-name sensor --region eu-west-1"));
        let tg = Missing { thing_groups: vec!["fleet".into()], ..Missing::default() };
        assert_eq!(resources(ctx, &needs, &tg).code, Some("aws-jitp-thing-group-missing"));
    });
}

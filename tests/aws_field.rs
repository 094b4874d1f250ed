//! Issue 15: `station ca verify` checks what a device's first connection needs, against the AWS IoT emulator
//! (scripts/moto-iot.py), with the account set up by awscli: the JITR topic rule, the JITP provisioning role in IAM
//! (existence, trust, permissions; `unknown` when IAM may not be read) and the resources a template names.

mod aws_moto;
mod common;

use aws_moto::*;
use common::*;

const REGION: &str = "eu-west-1";
const ACTION: &str = r#"[{"lambda":{"functionArn":"arn:aws:lambda:eu-west-1:123456789012:function:activate"}}]"#;

/// The row of `ca verify` for ca-1 (whatever the exit status).
fn verify(st: &TestStation) -> serde_json::Value {
    let out = run(st, &["ca", "verify", "--name", "ca-1"]);
    let report = out.json();
    let r = row(&report, "ca-1", REGION).clone();
    assert_eq!(out.status == 0, r["outcome"] == "pass", "exit {} for {r}", out.status);
    r
}

fn check<'a>(row: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    row["checks"].as_array().unwrap().iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("{name} in {row}"))
}

fn rule(moto: &Moto, name: &str, sql: &str, disabled: bool, actions: &str) {
    let payload = format!(r#"{{"sql": {}, "ruleDisabled": {disabled}, "actions": {actions}}}"#, serde_json::json!(sql));
    moto.aws(REGION, &["create-topic-rule", "--rule-name", name, "--topic-rule-payload", &payload]);
}

#[test]
fn jitr_rules_missing_wrong_disabled_or_without_action_are_each_caught() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "mode = \"jitr\"");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let id = ca_id(&st, "ca-1");
    let topic = format!("$aws/events/certificates/registered/{id}");

    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitr-rule-missing", "{r}");
    assert!(r["message"].as_str().unwrap().contains("the region has no topic rules"), "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("aws iot create-topic-rule --rule-name station_jitr_"), "{r}");

    rule(&moto, "telemetry", "SELECT * FROM 'devices/+/telemetry'", false, ACTION);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitr-rule-missing", "a rule on another topic is no rule: {r}");
    assert!(r["message"].as_str().unwrap().contains("rules seen: telemetry ('devices/+/telemetry')"), "{r}");

    rule(&moto, "jitr_no_action", "select * from \"$aws/events/certificates/registered/+\"", false, "[]");
    assert_eq!(verify(&st)["failed_check"], "aws-jitr-rule-no-action");
    moto.aws(REGION, &["delete-topic-rule", "--rule-name", "jitr_no_action"]);

    rule(&moto, "jitr_ca", &format!("SELECT * FROM '{topic}'"), true, ACTION);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitr-rule-disabled", "{r}");
    let remedy = r["remedy"].as_str().unwrap();
    assert!(
        remedy.contains(&format!("aws iot enable-topic-rule --rule-name jitr_ca --region {REGION} --endpoint-url"))
    );

    // The remedy, pasted into a shell (awscli, the independent client), fixes it.
    assert_eq!(moto.paste(remedy), 1);
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    assert_eq!(check(&r, "jitr-rule")["status"], "pass");
    assert!(check(&r, "jitr-rule")["detail"].as_str().unwrap().contains("rule jitr_ca"), "{r}");

    // So does the remedy of a missing rule: the rule it creates selects the CA's topic, with an action.
    moto.aws(REGION, &["delete-topic-rule", "--rule-name", "jitr_ca"]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitr-rule-missing", "{r}");
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 1);
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    assert!(check(&r, "jitr-rule")["detail"].as_str().unwrap().contains("rule station_jitr_"), "{r}");
}

#[test]
fn jitr_rule_is_found_on_a_later_page_of_list_topic_rules() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "mode = \"jitr\"");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    // 120 rules on other topics (raw requests: 120 awscli runs would take minutes), then the CA's rule, last by name.
    for i in 0..120 {
        let body = format!(r#"{{"sql": "SELECT * FROM 'line/{i}/status'", "actions": {ACTION}}}"#);
        let (status, text) =
            moto.raw("POST", &format!("/rules/aa_line_{i:03}"), "iot", REGION, "application/json", &body);
        assert_eq!(status, 200, "{text}");
    }
    rule(&moto, "zz_jitr", "SELECT * FROM '$aws/events/certificates/registered/+'", false, ACTION);
    moto.faults("DELETE", "");
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    assert_eq!(moto.calls(REGION, "ListTopicRules"), 2, "100 rules a page");
    assert_eq!(moto.calls(REGION, "GetTopicRule"), 1, "only the rule whose topic may match is read");
}

#[test]
fn jitp_role_missing_untrusting_or_without_permissions_is_each_caught() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();

    // The role Moto::start made (trust + AWSIoTThingsRegistration) passes.
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    for c in ["jitp-role-exists", "jitp-role-trust", "jitp-role-permissions", "jitp-resources"] {
        assert_eq!(check(&r, c)["status"], "pass", "{c}: {r}");
        assert_eq!(check(&r, c)["ok"], true, "{c}: {r}");
    }
    assert!(check(&r, "jitp-role-permissions")["detail"].as_str().unwrap().contains("AWSIoTThingsRegistration"));

    let lambda = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    moto.iam(&["update-assume-role-policy", "--role-name", "StationJITP", "--policy-document", lambda]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-role-trust-missing", "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("aws iam update-assume-role-policy --role-name StationJITP"));
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 1);
    assert_eq!(verify(&st)["outcome"], "pass", "the pasted trust policy is the one IoT needs");

    let managed = "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration";
    moto.iam(&["detach-role-policy", "--role-name", "StationJITP", "--policy-arn", managed]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-role-permissions-missing", "{r}");
    assert!(r["message"].as_str().unwrap().contains("iot:CreateThing"), "{r}");
    assert!(
        r["remedy"]
            .as_str()
            .unwrap()
            .contains(&format!("aws iam attach-role-policy --role-name StationJITP --policy-arn {managed}"))
    );
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 1);
    assert_eq!(verify(&st)["outcome"], "pass", "the pasted remedy attaches AWSIoTThingsRegistration");
    moto.iam(&["detach-role-policy", "--role-name", "StationJITP", "--policy-arn", managed]);
    assert_eq!(verify(&st)["failed_check"], "aws-jitp-role-permissions-missing");

    // Equivalent permissions in a customer managed policy (read through GetPolicyVersion's URL-encoded document).
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    let arn = moto.iam(&["create-policy", "--policy-name", "iot-all", "--policy-document", all])["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    moto.iam(&["attach-role-policy", "--role-name", "StationJITP", "--policy-arn", &arn]);
    assert_eq!(verify(&st)["outcome"], "pass");
    // An explicit Deny in an inline policy counts against.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:Create*","Resource":"*"}]}"#;
    moto.iam(&[
        "put-role-policy",
        "--role-name",
        "StationJITP",
        "--policy-name",
        "no-create",
        "--policy-document",
        deny,
    ]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-role-permissions-missing", "{r}");
    assert!(r["message"].as_str().unwrap().contains("denied by inline no-create"), "{r}");

    moto.iam(&["delete-role-policy", "--role-name", "StationJITP", "--policy-name", "no-create"]);
    moto.iam(&["detach-role-policy", "--role-name", "StationJITP", "--policy-arn", &arn]);
    moto.iam(&["delete-role", "--role-name", "StationJITP"]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-role-not-found", "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("aws iam create-role --role-name StationJITP"), "{r}");
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 2, "create the role, attach the managed policy");
    assert_eq!(verify(&st)["outcome"], "pass");
}

#[test]
fn iam_read_denied_leaves_the_role_checks_unknown_and_the_row_passing() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    // moto authorizes nothing by itself: the launcher's fault injection answers iam:GetRole with AccessDenied.
    moto.faults("POST", r#"{"service": "iam", "error": "AccessDenied", "actions": ["GetRole"], "count": 1}"#);
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    assert!(r["failed_check"].is_null(), "{r}");
    for c in ["jitp-role-exists", "jitp-role-trust", "jitp-role-permissions"] {
        let c = check(&r, c);
        assert_eq!(
            (c["status"].as_str(), c["ok"].as_bool(), c["code"].as_str()),
            (Some("unknown"), Some(false), Some("aws-iam-read-denied")),
            "{c}"
        );
    }
    assert_eq!(check(&r, "jitp-resources")["status"], "pass");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.starts_with("passed; unknown: jitp-role-exists, jitp-role-trust, jitp-role-permissions"),
        "{message}"
    );
    assert!(message.contains("AccessDenied"), "{message}");
    assert_eq!(moto.faults("GET", "")["calls"]["iam:GetRole"], 1);

    // The gate opens on it (an unknown is not a failure) ...
    let ledger = station::ledger::Ledger::open(&st.file("station.db")).unwrap();
    let latest = ledger.latest_aws_verification("ca-1", REGION, &moto.url, "jitp").unwrap().unwrap();
    assert_eq!(latest.outcome, "pass");
    assert!(latest.message.contains("unknown"), "{}", latest.message);
    // ... and the operator sees it.
    moto.faults("POST", r#"{"service": "iam", "error": "AccessDenied", "actions": ["GetRole"], "count": 1}"#);
    let text = run_text(&st, &["ca", "verify", "--name", "ca-1"]);
    assert_eq!(text.status, 0, "{}", text.stdout);
    assert!(text.stdout.contains("- (3 unknown)"), "{}", text.stdout);
    assert!(text.stdout.contains("fix: allow iam:GetRole"), "{}", text.stdout);
}

#[test]
fn a_template_naming_a_missing_policy_thing_type_or_thing_group_is_caught() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "template = \"named.json\"");
    let mut t: serde_json::Value = serde_json::from_str(station::aws::template::BUILTIN).unwrap();
    t["Resources"]["thing"]["Properties"]["ThingTypeName"] = "sensor".into();
    t["Resources"]["thing"]["Properties"]["ThingGroups"] = serde_json::json!(["fleet"]);
    t["Resources"]["policy"]["Properties"] = serde_json::json!({ "PolicyName": "DevicePolicy" });
    std::fs::write(st.file("named.json"), t.to_string()).unwrap();
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();

    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-policy-missing", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("policy DevicePolicy, thing type sensor, thing group fleet"), "{message}");
    let remedy = r["remedy"].as_str().unwrap();
    assert!(remedy.contains("aws iot create-policy --policy-name DevicePolicy --policy-document"), "{remedy}");
    // Pasting every command creates all three; here only the policy (the first command), to see each code.
    let first = remedy.split(" and `").next().unwrap();
    assert_eq!(moto.paste(first), 1);
    let policy = moto.aws(REGION, &["get-policy", "--policy-name", "DevicePolicy"]);
    assert!(policy["policyDocument"].as_str().unwrap().contains("iot:Connect"), "{policy}");
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-thing-type-missing", "{r}");
    assert!(
        r["remedy"].as_str().unwrap().contains("aws iot create-thing-type --thing-type-name sensor --region eu-west-1")
    );
    // The remedy names a command for each resource missing: the thing type and the thing group.
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 2);
    assert_eq!(verify(&st)["outcome"], "pass");
    moto.aws(REGION, &["delete-thing-group", "--thing-group-name", "fleet"]);
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-jitp-thing-group-missing", "{r}");
    assert_eq!(moto.paste(r["remedy"].as_str().unwrap()), 1);
    let r = verify(&st);
    assert_eq!(r["outcome"], "pass", "{r}");
    assert!(check(&r, "jitp-resources")["detail"].as_str().unwrap().contains("3 policy/thing type/thing group"), "{r}");
}

#[test]
fn a_policy_value_a_thing_attribute_cannot_hold_fails_the_registered_template() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "template = \"org.json\"");
    let mut t: serde_json::Value = serde_json::from_str(station::aws::template::BUILTIN).unwrap();
    t["Parameters"]["AWS::IoT::Certificate::Organization"] = serde_json::json!({ "Type": "String" });
    t["Resources"]["thing"]["Properties"]["AttributePayload"]["org"] =
        serde_json::json!({ "Ref": "AWS::IoT::Certificate::Organization" });
    std::fs::write(st.file("org.json"), t.to_string()).unwrap();
    // `station init` writes organization = "Station Demo": a space, which no thing attribute may hold.
    let refused = run(&st, &["ca", "register", "--name", "ca-1"]);
    assert_eq!(refused.status, 3, "{}", refused.stdout);
    assert!(refused.stdout.contains("aws-template-attribute-invalid"), "{}", refused.stdout);
    st.edit_config(|c| c.replace("organization = \"Station Demo\"", "organization = \"Station-Demo\""));
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    assert_eq!(verify(&st)["outcome"], "pass");
    // The policy changes after registration: verify checks the registered template against it.
    st.edit_config(|c| c.replace("organization = \"Station-Demo\"", "organization = \"Station Demo\""));
    let r = verify(&st);
    assert_eq!(r["failed_check"], "aws-template-attribute-invalid", "{r}");
    assert!(r["message"].as_str().unwrap().contains("thing attribute org"), "{r}");
}

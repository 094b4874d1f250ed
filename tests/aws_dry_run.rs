//! Issue 15: `station aws dry-run` against the AWS IoT emulator: the registered template evaluated against a
//! certificate the station issued, and what AWS already holds, region by region; awscli changes the account.

mod aws_moto;
mod common;

use aws_moto::*;
use common::*;
use std::path::{Path, PathBuf};

const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

fn issue(st: &TestStation, serial: &str) -> PathBuf {
    let (csr, _) = openssl_csr(st.path(), serial, "ec:P-256", &format!("/CN={serial}"), &[]);
    st.issue(&csr, &format!("{serial}.pem"), &["--bench", "b1"]).ok();
    st.file(&format!("{serial}.pem"))
}

fn dry_run(st: &TestStation, cert: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["aws", "dry-run", "--cert", cert.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(st, &args)
}

fn region<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["regions"].as_array().unwrap().iter().find(|x| x["region"] == name).unwrap_or_else(|| panic!("{name}: {r}"))
}

/// Replaces the JITP template registered with the CA `id` in `region` (awscli, as an account admin would).
fn register_template(moto: &Moto, st: &TestStation, region: &str, id: &str, template: &serde_json::Value) {
    let cfg = st.file("regcfg.json");
    let body = serde_json::json!({"templateBody": template.to_string(), "roleArn": ROLE}).to_string();
    std::fs::write(&cfg, body).unwrap();
    let file = format!("file://{}", cfg.display());
    moto.aws(region, &["update-ca-certificate", "--certificate-id", id, "--registration-config", &file]);
}

fn codes(region: &serde_json::Value) -> Vec<String> {
    region["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_registered_ca_provisions_the_device_and_each_fault_in_the_account_is_named() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let id = ca_id(&st, "ca-1");
    let chain = issue(&st, "DRY-0001");

    // Every region: the thing is named after the serial, carries serialNumber, the certificate becomes ACTIVE.
    let r = dry_run(&st, &chain, &[]).ok().json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["certificate"]["ca"], "ca-1");
    assert_eq!(r["certificate"]["issued_here"]["serial"], "DRY-0001");
    for name in REGIONS {
        let x = region(&r, name);
        assert_eq!((x["mode"].as_str(), x["outcome"].as_str()), (Some("jitp"), Some("provisions")), "{x}");
        assert_eq!(x["plan"]["thing"]["name"], "DRY-0001");
        assert_eq!(x["plan"]["thing"]["attributes"]["serialNumber"], "DRY-0001");
        assert_eq!(x["plan"]["certificate_status"], "ACTIVE");
        assert_eq!(x["thing_exists"], false);
        assert!(x["certificate_in_aws"].is_null());
    }
    let text = run_text(&st, &["aws", "dry-run", "--cert", chain.to_str().unwrap()]);
    assert!(text.stdout.contains("thing        DRY-0001 (new)"), "{}", text.stdout);
    assert!(text.stdout.contains("iot:Connect, iot:Publish, iot:Receive, iot:Subscribe"), "{}", text.stdout);

    // us-east-1: the CA deactivated, auto-registration off. eu-west-1: a template that leaves the certificate
    // INACTIVE and an attribute value with a space.
    moto.aws(
        "us-east-1",
        &[
            "update-ca-certificate",
            "--certificate-id",
            &id,
            "--new-status",
            "INACTIVE",
            "--new-auto-registration-status",
            "DISABLE",
        ],
    );
    let mut t: serde_json::Value = serde_json::from_str(station::aws::template::BUILTIN).unwrap();
    t["Resources"]["certificate"]["Properties"]["Status"] = "INACTIVE".into();
    t["Resources"]["thing"]["Properties"]["AttributePayload"]["site"] = "hall 7".into();
    register_template(&moto, &st, "eu-west-1", &id, &t);
    let out = dry_run(&st, &chain, &[]);
    assert_eq!(out.status, 8, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["ok"], false);
    let us = region(&r, "us-east-1");
    assert_eq!(us["outcome"], "fails");
    assert_eq!(codes(us), ["aws-ca-inactive", "aws-auto-registration-disabled"]);
    let eu = region(&r, "eu-west-1");
    assert_eq!(codes(eu), ["aws-jitp-certificate-not-active", "aws-jitp-attribute-invalid"]);
    assert!(eu["problems"][1]["detail"].as_str().unwrap().contains("hall 7"), "{eu}");
    // A template that attaches an existing policy by name and puts the thing in a group named after its
    // organization-less serial prefix: both must exist in the region.
    let mut t: serde_json::Value = serde_json::from_str(station::aws::template::BUILTIN).unwrap();
    t["Resources"]["policy"]["Properties"] = serde_json::json!({"PolicyName": "FleetDevice"});
    t["Resources"]["thing"]["Properties"]["ThingGroups"] =
        serde_json::json!([{"Fn::Select": [0, {"Fn::Split": ["-", {"Ref": "AWS::IoT::Certificate::CommonName"}]}]}]);
    register_template(&moto, &st, "eu-west-1", &id, &t);
    let r = dry_run(&st, &chain, &["--region", "eu-west-1"]).json();
    let eu = region(&r, "eu-west-1");
    assert_eq!(codes(eu), ["aws-jitp-policy-missing"], "{eu}");
    assert!(eu["problems"][0]["detail"].as_str().unwrap().contains("thing group DRY"), "{eu}");
    moto.aws("eu-west-1", &["create-policy", "--policy-name", "FleetDevice", "--policy-document", "{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"iot:Connect\", \"Resource\": \"*\"}]}"]);
    moto.aws("eu-west-1", &["create-thing-group", "--thing-group-name", "DRY"]);
    let r = dry_run(&st, &chain, &["--region", "eu-west-1"]).ok().json();
    let eu = region(&r, "eu-west-1");
    assert_eq!(eu["outcome"], "provisions", "{eu}");
    assert_eq!(eu["plan"]["thing"]["groups"], serde_json::json!(["DRY"]));
    assert_eq!(eu["plan"]["policies"], serde_json::json!([{"named": "FleetDevice"}]));

    // Offline, the configured (built-in) template is what is evaluated: it provisions, and AWS is not asked.
    let calls = moto.calls("eu-west-1", "DescribeCACertificate");
    let r = dry_run(&st, &chain, &["--offline"]).ok().json();
    assert_eq!(region(&r, "(offline)")["outcome"], "provisions", "{r}");
    assert_eq!(moto.calls("eu-west-1", "DescribeCACertificate"), calls);
}

#[test]
fn what_aws_already_holds_is_reported_and_a_foreign_certificate_is_refused() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let ca_pem = st.ca_pem("ca-1");
    let (a, b) = (issue(&st, "DRY-A"), issue(&st, "DRY-B"));
    let leaf = |chain: &Path| {
        let out = chain.with_extension("leaf.pem");
        assert!(openssl(&["x509", "-in", chain.to_str().unwrap(), "-out", out.to_str().unwrap()]).0);
        format!("file://{}", out.display())
    };
    let ca = format!("file://{}", ca_pem.display());
    // DRY-A has connected (JITP registered it ACTIVE, and made its thing); DRY-B's certificate was revoked.
    moto.aws(
        "eu-west-1",
        &["register-certificate", "--certificate-pem", &leaf(&a), "--ca-certificate-pem", &ca, "--status", "ACTIVE"],
    );
    moto.aws("eu-west-1", &["create-thing", "--thing-name", "DRY-A"]);
    let b_id = moto.aws(
        "eu-west-1",
        &["register-certificate", "--certificate-pem", &leaf(&b), "--ca-certificate-pem", &ca, "--status", "ACTIVE"],
    )["certificateId"]
        .as_str()
        .unwrap()
        .to_string();
    moto.aws("eu-west-1", &["update-certificate", "--certificate-id", &b_id, "--new-status", "REVOKED"]);

    let r = dry_run(&st, &a, &[]).ok().json();
    let x = region(&r, "eu-west-1");
    assert_eq!(
        (x["outcome"].as_str(), x["certificate_in_aws"].as_str()),
        (Some("already-active"), Some("ACTIVE")),
        "{x}"
    );
    assert_eq!(x["thing_exists"], true);
    let out = dry_run(&st, &b, &[]);
    assert_eq!(out.status, 8);
    assert_eq!(codes(region(&out.json(), "eu-west-1")), ["aws-device-certificate-revoked"]);

    // A certificate of another CA: named, nothing asked of AWS.
    let other = OpensslCa::new(st.path(), "other", "/CN=Other CA");
    let (csr, _) = openssl_csr(st.path(), "foreign", "ec:P-256", "/CN=DRY-F", &[]);
    let foreign = other.sign(&csr, "foreign.pem", "basicConstraints=CA:FALSE\n");
    let out = dry_run(&st, &foreign, &[]);
    assert_eq!(out.status, 8, "{}", out.stdout);
    let r = out.json();
    assert_eq!(r["problems"][0]["code"], "aws-device-certificate-foreign", "{r}");
    assert_eq!(r["regions"].as_array().unwrap().len(), 0);

    // A CA registered for JITR: without a rule on its registration topic the certificate would stay
    // PENDING_ACTIVATION; with one, it waits for the rule's action.
    let jitr = aws_station(&moto.url, &["us-east-1"], "mode = \"jitr\"");
    run(&jitr, &["ca", "register", "--name", "ca-1"]).ok();
    let c = issue(&jitr, "DRY-J");
    let out = dry_run(&jitr, &c, &[]);
    assert_eq!(out.status, 8, "{}", out.stdout);
    let r = out.json();
    let x = region(&r, "us-east-1");
    assert_eq!((x["mode"].as_str(), x["outcome"].as_str()), (Some("jitr"), Some("fails")), "{x}");
    assert_eq!(codes(x), ["aws-jitr-rule-missing"]);
    moto.jitr_rule("us-east-1");
    let r = dry_run(&jitr, &c, &[]).ok().json();
    let x = region(&r, "us-east-1");
    assert_eq!((x["mode"].as_str(), x["outcome"].as_str()), (Some("jitr"), Some("pending-activation")), "{x}");
}

//! Issue 5: what goes wrong between the station and AWS IoT — bad templates, an unreachable or silent
//! endpoint, throttling — and the fail-closed gate. Against scripts/moto-iot.py where AWS is needed.

mod aws_moto;
mod common;

use aws_moto::*;
use common::*;
use station::aws::gate;
use station::config::Config;
use station::error::Coded;
use station::ledger::Ledger;
use std::time::{Duration, Instant};

#[test]
fn commands_without_regions_say_how_to_configure_them() {
    let st = TestStation::new();
    st.run(&["ca", "create", "--name", "ca-1"]).ok();
    run(&st, &["ca", "verify"]).fails_with("aws-not-configured", 3);
    run(&st, &["ca", "register", "--name", "ca-1"]).fails_with("aws-not-configured", 3);
    run(&st, &["ca", "verify", "--region", "Mars-1"]).fails_with("aws-region-invalid", 3);
}

#[test]
fn a_bad_local_template_is_refused_before_anything_is_sent() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "template = \"jitp.json\"");
    let register = || run(&st, &["ca", "register", "--name", "ca-1"]);
    register().fails_with("aws-template-unreadable", 3);
    std::fs::write(st.file("jitp.json"), "{\"Parameters\": {").unwrap();
    register().fails_with("aws-template-invalid", 3);
    let with_org = station::aws::template::BUILTIN.replace(
        "\"AWS::IoT::Certificate::Id\": {",
        "\"AWS::IoT::Certificate::Organization\": {\"Type\": \"String\"}, \"AWS::IoT::Certificate::Id\": {",
    );
    std::fs::write(st.file("jitp.json"), with_org).unwrap();
    st.edit_config(|t| t.replace("organization = \"Station Demo\"\n", ""));
    let out = register();
    out.fails_with("aws-template-parameter-unfilled", 3);
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("AWS::IoT::Certificate::Organization"));
    assert_eq!(moto.calls("eu-west-1", "GetRegistrationCode") + moto.calls("eu-west-1", "RegisterCACertificate"), 0);
    assert_eq!(moto.aws("eu-west-1", &["list-ca-certificates"])["certificates"], serde_json::json!([]));
}

#[test]
fn a_registered_template_that_is_broken_or_needs_a_missing_attribute_fails_verification() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "template = \"jitp.json\"");
    let with_org = station::aws::template::BUILTIN.replace(
        "\"AWS::IoT::Certificate::Id\": {",
        "\"AWS::IoT::Certificate::Organization\": {\"Type\": \"String\"}, \"AWS::IoT::Certificate::Id\": {",
    );
    std::fs::write(st.file("jitp.json"), with_org).unwrap();
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    run(&st, &["ca", "verify"]).ok();

    // [policy] organization dropped: the devices' subjects lose O, which the template needs.
    st.edit_config(|t| t.replace("organization = \"Station Demo\"\n", ""));
    let out = run(&st, &["ca", "verify"]);
    assert_eq!(out.status, 8);
    let r = out.json();
    let r = row(&r, "ca-1", "eu-west-1");
    assert_eq!(r["failed_check"], "aws-template-parameter-unfilled", "{r}");
    assert!(r["message"].as_str().unwrap().contains("Organization"), "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("[policy]"), "{r}");

    // Someone replaced the template on AWS with one that does not parse.
    let id = ca_id(&st, "ca-1");
    let config = format!("{{\"templateBody\": \"{{oops\", \"roleArn\": \"{ROLE}\"}}");
    moto.aws("eu-west-1", &["update-ca-certificate", "--certificate-id", &id, "--registration-config", &config]);
    let out = run(&st, &["ca", "verify"]);
    let r = out.json();
    assert_eq!(row(&r, "ca-1", "eu-west-1")["failed_check"], "aws-template-invalid", "{r}");

    // The remedy: push the configured template (now the built-in one) again.
    st.edit_config(|t| t.replace("template = \"jitp.json\"\n", ""));
    run(&st, &["ca", "register", "--name", "ca-1", "--update-template"]).ok();
    run(&st, &["ca", "verify"]).ok();
}

#[test]
fn an_unreachable_endpoint_is_a_clear_per_region_error_within_the_timeout() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let st = aws_station(
        &format!("http://127.0.0.1:{closed}"),
        &["eu-west-1", "us-east-1"],
        "timeout_secs = 3\nmax_attempts = 2",
    );
    let timeout = Duration::from_secs(3);

    let start = Instant::now();
    let out = run(&st, &["ca", "verify"]);
    assert!(start.elapsed() < timeout + Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(out.status, 8, "{}", out.stdout);
    let report = out.json();
    for region in ["eu-west-1", "us-east-1"] {
        let r = row(&report, "ca-1", region);
        assert_eq!(
            (r["outcome"].as_str(), r["failed_check"].as_str()),
            (Some("error"), Some("aws-unreachable")),
            "{r}"
        );
        assert!(r["message"].as_str().unwrap().contains("Connection refused"), "{r}");
        assert!(r["remedy"].as_str().unwrap().contains(&format!("http://127.0.0.1:{closed}")), "{r}");
    }
    let reg = run(&st, &["ca", "register", "--name", "ca-1"]);
    assert_eq!(reg.status, 8);
    assert_eq!(reg.json()["regions"][0]["code"], "aws-unreachable");
    assert!(Ledger::open(&st.file("station.db")).unwrap().aws_registrations().unwrap().is_empty());

    // A server that accepts the connection and never answers: the timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let start = Instant::now();
    let out = run(&st, &["ca", "verify", "--endpoint-url", &url]);
    let took = start.elapsed();
    assert!(took >= timeout && took < timeout + Duration::from_secs(3), "took {took:?}");
    let report = out.json();
    for region in ["eu-west-1", "us-east-1"] {
        let r = row(&report, "ca-1", region);
        assert_eq!(r["failed_check"], "aws-timeout", "{r}");
        assert!(r["message"].as_str().unwrap().contains("within 3s"), "{r}");
    }
}

#[test]
fn throttling_is_answered_with_backoff() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1", "us-east-1"], "");
    moto.faults("POST", r#"{"throttle": 2, "actions": ["RegisterCACertificate"], "region": "eu-west-1"}"#);
    let reg = run(&st, &["ca", "register", "--name", "ca-1"]).ok().json();
    assert_eq!(reg["regions"][0]["outcome"], "registered", "{reg}");
    assert_eq!(moto.calls("eu-west-1", "RegisterCACertificate"), 3, "two throttled attempts, then success");

    moto.faults("POST", r#"{"throttle": 3, "actions": ["DescribeCACertificate"]}"#);
    run(&st, &["ca", "verify"]).ok();
    assert_eq!(moto.faults("GET", "")["rules"], serde_json::json!([]), "every injected fault was met");

    // Throttled beyond max_attempts: that region's row is an error with a remedy, the others pass.
    st.edit_config(|t| format!("{t}max_attempts = 2\n"));
    moto.faults("DELETE", "");
    moto.faults("POST", r#"{"throttle": 10, "region": "us-east-1"}"#);
    let out = run(&st, &["ca", "verify"]);
    assert_eq!(out.status, 8);
    let report = out.json();
    let r = row(&report, "ca-1", "us-east-1");
    assert_eq!((r["outcome"].as_str(), r["failed_check"].as_str()), (Some("error"), Some("aws-throttled")), "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("max_tps"), "{r}");
    assert_eq!(moto.calls("us-east-1", "DescribeCACertificate"), 2, "max_attempts = 2");
    assert_eq!(row(&report, "ca-1", "eu-west-1")["outcome"], "pass");
}

#[test]
fn fail_closed_gate_refuses_until_a_fresh_passing_verification_and_says_how_to_fix_it() {
    let moto = Moto::start();
    let extra = "require_verified = true\nmax_verification_age = \"1h\"\nreverify_every = \"10m\"\nmax_attempts = 2";
    let st = aws_station(&moto.url, &["eu-west-1", "us-east-1"], extra);
    let gate = || {
        let cfg = Config::load(&st.config()).unwrap();
        let ledger = Ledger::open(&st.file("station.db")).unwrap();
        gate::require_verified(&cfg, &ledger, "ca-1")
    };

    let err = gate().unwrap_err();
    assert_eq!((err.code(), err.exit_status()), ("aws-verification-missing", 8));
    assert!(err.hint().contains("station ca verify --name ca-1"), "{}", err.hint());

    // A pass at another endpoint (here a second emulator) does not speak for the configured one.
    let other = Moto::start();
    run(&st, &["ca", "register", "--name", "ca-1", "--endpoint-url", &other.url]).ok();
    run(&st, &["ca", "verify", "--endpoint-url", &other.url]).ok();
    assert_eq!(gate().unwrap_err().code(), "aws-verification-missing");
    drop(other);

    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let id = ca_id(&st, "ca-1");
    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "DISABLE"],
    );
    assert_eq!(run(&st, &["ca", "verify"]).status, 8);
    let err = gate().unwrap_err();
    assert_eq!(err.code(), "aws-verification-failed");
    let msg = err.to_string();
    assert!(msg.contains("us-east-1") && msg.contains("aws-auto-registration-disabled"), "{msg}");
    assert!(err.hint().contains("--new-auto-registration-status ENABLE"), "{}", err.hint());
    assert!(err.hint().contains("station ca verify --name ca-1"), "{}", err.hint());

    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "ENABLE"],
    );
    run(&st, &["ca", "verify"]).ok();
    gate().expect("a fresh pass in every region opens the gate");

    // An hour later, without a new verification, it closes again.
    let cfg = Config::load(&st.config()).unwrap();
    let ledger = Ledger::open(&st.file("station.db")).unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(61);
    let err = gate::check(cfg.aws.as_ref().unwrap(), &ledger, "ca-1", later).unwrap_err();
    assert_eq!(err.code(), "aws-verification-stale");
    drop(ledger);

    // The configured endpoint unreachable at the next verification: the gate closes, naming the reason.
    drop(moto);
    assert_eq!(run(&st, &["ca", "verify"]).status, 8);
    let err = gate().unwrap_err();
    assert!(err.to_string().contains("aws-unreachable"), "{err}");
}

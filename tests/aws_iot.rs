//! Issue 5: `station ca register` and `station ca verify` against the AWS IoT emulator (scripts/moto-iot.py,
//! strict verification), cross-checked with awscli and openssl.

mod aws_moto;
mod common;

use aws_moto::*;
use common::*;
use station::ledger::Ledger;

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];

#[test]
fn register_then_verify_passes_in_three_regions() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "");
    let ca_pem = st.ca_pem("ca-1");
    let id = ca_id(&st, "ca-1");

    let reg = run(&st, &["ca", "register", "--name", "ca-1"]).ok().json();
    assert_eq!(reg["ok"], true, "{reg}");
    for (i, region) in REGIONS.iter().enumerate() {
        let r = &reg["regions"][i];
        assert_eq!((r["region"].as_str(), r["outcome"].as_str()), (Some(*region), Some("registered")), "{r}");
        assert_eq!(r["certificate_id"], id.as_str());
        assert_eq!(r["certificate_arn"], format!("arn:aws:iot:{region}:123456789012:cacert/{id}").as_str());
        // What was sent as the verification certificate: CN = this region's code, signed by the CA key.
        let ver = st.file(&format!("verification-{region}.pem"));
        std::fs::write(&ver, r["verification_certificate_pem"].as_str().unwrap()).unwrap();
        let (ok, msg) =
            openssl(&["verify", "-x509_strict", "-CAfile", ca_pem.to_str().unwrap(), ver.to_str().unwrap()]);
        assert!(ok, "{region}: {msg}");
        let code = moto.aws(region, &["get-registration-code"])["registrationCode"].as_str().unwrap().to_string();
        let (_, subject) = openssl(&["x509", "-in", ver.to_str().unwrap(), "-noout", "-subject"]);
        assert_eq!(subject.trim(), format!("subject=CN = {code}"), "{region}");
    }

    let report = run(&st, &["ca", "verify", "--name", "ca-1"]).ok().json();
    assert_eq!(report["ok"], true, "{report}");
    for region in REGIONS {
        let row = row(&report, "ca-1", region);
        assert_eq!(row["outcome"], "pass", "{row}");
        let checks: Vec<&str> =
            row["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
        assert_eq!(
            checks,
            [
                "exists",
                "certificate",
                "certificate-id",
                "status",
                "auto-registration",
                "certificate-mode",
                "validity",
                "jitp-template",
                "jitp-role",
                "jitp-role-exists",
                "jitp-role-trust",
                "jitp-role-permissions",
                "jitp-resources",
                "subject-headroom"
            ]
        );
        // The independent client sees what station reports.
        let aws = moto.aws(region, &["describe-ca-certificate", "--certificate-id", &id]);
        let d = &aws["certificateDescription"];
        let mine = &row["aws"];
        assert_eq!(mine["certificate_id"], d["certificateId"]);
        assert_eq!(mine["certificate_arn"], d["certificateArn"]);
        assert_eq!(mine["status"], d["status"]);
        assert_eq!(mine["auto_registration_status"], d["autoRegistrationStatus"]);
        assert_eq!(mine["certificate_mode"], d["certificateMode"]);
        assert_eq!(mine["customer_version"], d["customerVersion"]);
        assert_eq!(mine["generation_id"], d["generationId"]);
        assert_eq!(mine["role_arn"], aws["registrationConfig"]["roleArn"]);
        assert_eq!(aws["registrationConfig"]["templateBody"], station::aws::template::BUILTIN);
    }

    // Registering again reports the existing registrations and adds none.
    let again = run(&st, &["ca", "register", "--name", "ca-1"]).ok().json();
    for region in REGIONS {
        let r = again["regions"].as_array().unwrap().iter().find(|r| r["region"] == region).unwrap();
        assert_eq!(r["outcome"], "already-registered", "{r}");
        assert!(r["verification_certificate_pem"].is_null(), "no new verification certificate: {r}");
        let list = moto.aws(region, &["list-ca-certificates"]);
        assert_eq!(list["certificates"].as_array().unwrap().len(), 1, "{region}: {list}");
    }

    // The ledger holds the registrations, the results, and chained events for both.
    let ledger = Ledger::open(&st.file("station.db")).unwrap();
    assert_eq!(ledger.aws_registrations().unwrap().len(), 3);
    for region in REGIONS {
        let latest = ledger.latest_aws_verification("ca-1", region, &moto.url, "jitp").unwrap().unwrap();
        assert_eq!(latest.outcome, "pass");
    }
    let mut kinds = Vec::new();
    let walk = station::ledger::walk_chain(ledger.conn(), |e| kinds.push(e.kind.clone())).unwrap();
    assert!(walk.first_bad.is_none(), "{walk:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "aws-ca-registered").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "aws-ca-verified").count(), 1, "{kinds:?}");
}

#[test]
fn auto_registration_disabled_in_one_region_fails_that_row_with_the_remedy() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let id = ca_id(&st, "ca-1");
    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "DISABLE"],
    );

    let out = run(&st, &["ca", "verify"]);
    assert_eq!(out.status, 8, "{}", out.stdout);
    let report = out.json();
    assert_eq!(report["ok"], false);
    let bad = row(&report, "ca-1", "us-east-1");
    assert_eq!(bad["outcome"], "fail");
    assert_eq!(bad["failed_check"], "aws-auto-registration-disabled");
    let remedy = bad["remedy"].as_str().unwrap();
    let want = format!("aws iot update-ca-certificate --certificate-id {id} --new-auto-registration-status ENABLE");
    assert!(remedy.contains(&want) && remedy.contains("--region us-east-1"), "{remedy}");
    for region in ["eu-west-1", "ap-southeast-2"] {
        assert_eq!(row(&report, "ca-1", region)["outcome"], "pass");
    }

    // What the operator reads: a table with the failing check, then the fix.
    let text = run_text(&st, &["ca", "verify"]);
    assert_eq!(text.status, 8);
    let line = text.stdout.lines().find(|l| l.contains("us-east-1")).unwrap();
    assert!(line.contains("FAIL") && line.contains("aws-auto-registration-disabled"), "{}", text.stdout);
    assert!(text.stdout.contains(&format!("fix: run `{want}")), "{}", text.stdout);
    assert!(text.stderr.contains("[3/3]"), "progress on stderr: {}", text.stderr);
    assert!(!out.stderr.contains("[3/3]"), "no progress with --json: {}", out.stderr);

    // The remedy, applied with the independent client, fixes it.
    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "ENABLE"],
    );
    assert_eq!(run(&st, &["ca", "verify"]).ok().json()["ok"], true);
}

#[test]
fn inactive_ca_fails_the_status_check() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let id = ca_id(&st, "ca-1");
    moto.aws("eu-west-1", &["update-ca-certificate", "--certificate-id", &id, "--new-status", "INACTIVE"]);
    let out = run(&st, &["ca", "verify", "--name", "ca-1"]);
    assert_eq!(out.status, 8);
    let r = out.json();
    let r = row(&r, "ca-1", "eu-west-1");
    assert_eq!((r["failed_check"].as_str(), r["aws"]["status"].as_str()), (Some("aws-ca-inactive"), Some("INACTIVE")));
    assert!(r["remedy"].as_str().unwrap().contains("--new-status ACTIVE"), "{r}");
}

#[test]
fn another_certificate_under_the_recorded_id_or_a_deleted_ca_fails() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    st.run(&["ca", "create", "--name", "ca-2", "--days", "7300"]).ok();
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    run(&st, &["ca", "register", "--name", "ca-2"]).ok();
    let (id1, id2) = (ca_id(&st, "ca-1"), ca_id(&st, "ca-2"));

    // The ledger's record for ca-1 now names ca-2's registration.
    let ledger = Ledger::open(&st.file("station.db")).unwrap();
    ledger.conn().execute("UPDATE aws_registrations SET certificate_id = ?1 WHERE ca_name = 'ca-1'", [&id2]).unwrap();
    drop(ledger);
    let out = run(&st, &["ca", "verify", "--name", "ca-1"]);
    assert_eq!(out.status, 8);
    let r = out.json();
    let r = row(&r, "ca-1", "eu-west-1");
    assert_eq!(r["failed_check"], "aws-certificate-mismatch", "{r}");
    assert!(r["message"].as_str().unwrap().contains(&id1), "{r}");
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["certificate", "certificate-id"]);

    // ca-2 deleted on AWS (deactivated first, as AWS requires).
    moto.aws("eu-west-1", &["update-ca-certificate", "--certificate-id", &id2, "--new-status", "INACTIVE"]);
    moto.aws("eu-west-1", &["delete-ca-certificate", "--certificate-id", &id2]);
    let out = run(&st, &["ca", "verify", "--name", "ca-2"]);
    assert_eq!(out.status, 8);
    let r = out.json();
    let r = row(&r, "ca-2", "eu-west-1");
    assert_eq!(r["failed_check"], "aws-ca-deleted", "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("station ca register --name ca-2 --region eu-west-1"), "{r}");
    let again = run(&st, &["ca", "register", "--name", "ca-2"]).ok().json();
    assert_eq!(again["regions"][0]["outcome"], "re-registered", "{again}");
    run(&st, &["ca", "verify", "--name", "ca-2"]).ok();
}

#[test]
fn verify_all_reports_a_retired_ca_as_retired_and_a_pending_one_as_skipped() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    st.run(&["ca", "create", "--name", "old", "--days", "7300"]).ok();
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    run(&st, &["ca", "register", "--name", "old"]).ok();
    let csr = st.file("int.csr");
    st.run(&["ca", "create", "--name", "int", "--intermediate", "--csr-out", csr.to_str().unwrap()]).ok();
    // `ca retire` comes with issue 6; the state is what verify reads.
    let ledger = Ledger::open(&st.file("station.db")).unwrap();
    ledger.conn().execute("UPDATE cas SET state = 'retired' WHERE name = 'old'", []).unwrap();
    drop(ledger);
    let report = run(&st, &["ca", "verify", "--all"]).ok().json();
    assert_eq!(row(&report, "ca-1", "eu-west-1")["outcome"], "pass");
    let old = row(&report, "old", "eu-west-1");
    assert_eq!(old["outcome"], "retired", "{old}");
    assert!(old["message"].as_str().unwrap().contains("still ACTIVE with auto-registration ENABLE"), "{old}");
    assert_eq!(row(&report, "int", "eu-west-1")["outcome"], "skipped");
    let refused = run(&st, &["ca", "register", "--name", "old"]);
    refused.fails_with("aws-ca-not-registrable", 6);
}

#[test]
fn ten_cas_with_one_subject_leave_no_headroom() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let subject = "CN=Line CA,O=Station Demo,C=DE";
    for i in 0..10 {
        let name = format!("line-{i}");
        st.run(&["ca", "create", "--name", &name, "--days", "7300", "--subject", subject]).ok();
        run(&st, &["ca", "register", "--name", &name]).ok();
    }
    let out = run(&st, &["ca", "verify", "--all"]);
    assert_eq!(out.status, 8);
    let report = out.json();
    assert_eq!(row(&report, "ca-1", "eu-west-1")["outcome"], "pass", "another subject has room");
    let r = row(&report, "line-3", "eu-west-1");
    assert_eq!(r["failed_check"], "aws-subject-limit", "{r}");
    assert!(r["message"].as_str().unwrap().contains("10 of 10"), "{r}");
    assert_eq!(moto.calls("eu-west-1", "ListCACertificates"), 1, "listed once per region and run");
}

#[test]
fn jitr_registers_no_template_and_jitp_verification_then_misses_it() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    let reg = run(&st, &["ca", "register", "--name", "ca-1", "--mode", "jitr"]).ok().json();
    assert_eq!(reg["regions"][0]["mode"], "jitr");
    moto.jitr_rule("eu-west-1");
    let id = ca_id(&st, "ca-1");
    let aws = moto.aws("eu-west-1", &["describe-ca-certificate", "--certificate-id", &id]);
    assert!(aws.get("registrationConfig").is_none(), "{aws}");
    // Without --mode, verify checks the mode the CA was registered in (issue 11).
    run(&st, &["ca", "verify"]).ok();
    let out = run(&st, &["ca", "verify", "--mode", "jitp"]);
    assert_eq!(out.status, 8);
    let r = out.json();
    let r = row(&r, "ca-1", "eu-west-1");
    assert_eq!(r["failed_check"], "aws-template-missing", "{r}");
    assert!(r["remedy"].as_str().unwrap().contains("--update-template"), "{r}");
    let upd = run(&st, &["ca", "register", "--name", "ca-1", "--update-template"]).ok().json();
    assert_eq!(upd["regions"][0]["outcome"], "template-updated", "{upd}");
    // Registered for JITP now: verify checks JITP, and passes.
    let report = run(&st, &["ca", "verify"]).ok().json();
    assert_eq!(row(&report, "ca-1", "eu-west-1")["mode"], "jitp");
}

/// Issue 11: `ca verify` without `--mode` checks a CA in the mode it was registered in, not `[aws] mode`.
#[test]
fn ca_verify_without_mode_checks_the_mode_the_ca_was_registered_in() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &["eu-west-1"], "");
    run(&st, &["ca", "register", "--name", "ca-1", "--mode", "jitr"]).ok();
    moto.jitr_rule("eu-west-1");
    let report = run(&st, &["ca", "verify", "--name", "ca-1"]).ok().json();
    let r = row(&report, "ca-1", "eu-west-1");
    assert_eq!((r["outcome"].as_str(), r["mode"].as_str()), (Some("pass"), Some("jitr")), "{r}");
    let checks: Vec<&str> = r["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert!(!checks.contains(&"jitp-template"), "a JITR CA is not checked for a template: {checks:?}");
    // Told otherwise, it checks JITP, and fails for want of a template.
    let forced = run(&st, &["ca", "verify", "--name", "ca-1", "--mode", "jitp"]).json();
    let r = row(&forced, "ca-1", "eu-west-1");
    assert_eq!(
        (r["outcome"].as_str(), r["failed_check"].as_str()),
        (Some("fail"), Some("aws-template-missing")),
        "{r}"
    );
    // The fail-closed gate reads the registered mode too: the JITR pass opens it, the forced JITP failure does not
    // count against it.
    st.edit_config(|t| t.replace("[aws]\n", "[aws]\nrequire_verified = true\n"));
    station::aws::gate::check(
        &station::config::Config::load(&st.config()).unwrap().aws.unwrap(),
        &Ledger::open(&st.file("station.db")).unwrap(),
        "ca-1",
        time::OffsetDateTime::now_utc(),
    )
    .expect("the gate opens on the JITR pass");
}

//! Issue 6's AWS part, and issue 5's fail-closed daemon: against the AWS IoT emulator.

mod aws_moto;
mod common;

use aws_moto::*;
use common::bench::*;
use common::*;
use station_protocol::{Csr, Message, Stored};

const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

#[test]
fn retire_with_aws_disables_auto_registration_there_and_verify_reports_it_retired() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    // Rotation: with [aws], rotate registers the next CA in every region and verifies it; then activate,
    // and the old one is retired in AWS too.
    let rot = run(&st, &["ca", "rotate", "--name", "ca-2", "--days", "7300"]).ok().json();
    assert_eq!(rot["ca"]["state"], "ready", "{rot}");
    assert_eq!(rot["aws_register"]["ok"], true, "{rot}");
    assert_eq!(rot["aws_verify"]["ok"], true, "{rot}");
    let id2 = ca_id(&st, "ca-2");
    for region in REGIONS {
        let d = moto.aws(region, &["describe-ca-certificate", "--certificate-id", &id2]);
        assert_eq!(d["certificateDescription"]["status"], "ACTIVE", "{region}: {d}");
    }
    run(&st, &["ca", "activate", "ca-2"]).ok();
    let id = ca_id(&st, "ca-1");
    let r = run(&st, &["ca", "retire", "ca-1", "--aws", "--aws-status", "INACTIVE"]).ok().json();
    assert_eq!(r["aws"].as_array().unwrap().len(), 2, "{r}");
    for region in REGIONS {
        let d = moto.aws(region, &["describe-ca-certificate", "--certificate-id", &id]);
        let desc = &d["certificateDescription"];
        assert_eq!(desc["autoRegistrationStatus"], "DISABLE", "{region}: {d}");
        assert_eq!(desc["status"], "INACTIVE", "{region}: {d}");
    }
    let report = run(&st, &["ca", "verify", "--all"]).ok().json();
    for region in REGIONS {
        assert_eq!(row(&report, "ca-1", region)["outcome"], "retired");
        assert_eq!(row(&report, "ca-2", region)["outcome"], "pass");
    }
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn with_require_verified_serve_refuses_to_start_and_issue_refuses_until_verify_passes() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "require_verified = true");
    let pair = PtyPair::new(st.path(), "bench-0");
    // Registered but never verified: closed.
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let serve = st.run(&["serve", "--bench", &format!("bench-0={}", pair.station_end.display())]);
    serve.fails_with("aws-verification-missing", 8);
    assert!(serve.json()["error"]["hint"].as_str().unwrap().contains("station ca verify"));
    let (csr, _) = openssl_csr(st.path(), "d", "ec:P-256", "/CN=DEV-1", &[]);
    st.issue(&csr, "d.pem", &[]).fails_with("aws-verification-missing", 8);
    assert_eq!(st.issuance_count(), 0);
    // Verified: open.
    run(&st, &["ca", "verify", "--name", "ca-1"]).ok();
    st.issue(&csr, "d.pem", &[]).ok();
    let daemon = Daemon::start(&st, &[("bench-0", pair.station_end.as_path())], &[]);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello(Some("DEV-2")));
    assert!(matches!(dev.recv(10), Message::Welcome(_)));
    let (_k, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    let Message::Chain(c) = dev.recv(10) else { panic!("expected CHAIN") };
    dev.send(&Message::Stored(Stored { sha256: c.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    assert!(daemon.line(5).contains(" OK "));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_failed_reverification_halts_new_issuance_mid_run_and_a_passing_one_resumes_it() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &REGIONS, "require_verified = true");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    run(&st, &["ca", "verify", "--name", "ca-1"]).ok();
    let pair = PtyPair::new(st.path(), "bench-0");
    let daemon = Daemon::start(&st, &[("bench-0", pair.station_end.as_path())], &[]);
    let mut dev = Device::open(&pair.device_end);
    let mut session = |serial: &str| -> Message {
        dev.send(&hello(Some(serial)));
        assert!(matches!(dev.recv(10), Message::Welcome(_)));
        let (_k, csr) = device_csr(None);
        dev.send(&Message::Csr(Csr { der: csr }));
        let reply = dev.recv(10);
        if let Message::Chain(c) = &reply {
            dev.send(&Message::Stored(Stored { sha256: c.sha256.clone() }));
            assert!(matches!(dev.recv(10), Message::Done(_)));
        }
        reply
    };
    assert!(matches!(session("DEV-BEFORE"), Message::Chain(_)));
    assert!(daemon.line(5).contains("DEV-BEFORE"));
    // Someone disables auto-registration in one region; the next verification fails.
    let id = ca_id(&st, "ca-1");
    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "DISABLE"],
    );
    assert_eq!(run(&st, &["ca", "verify", "--name", "ca-1"]).status, 8);
    let alert = daemon.line(20);
    assert!(alert.contains("HALTED") && alert.contains("aws-verification-failed"), "{alert}");
    let Message::Error(e) = session("DEV-DURING") else { panic!("a halted station must not send a chain") };
    assert_eq!((e.code.as_str(), e.retryable), ("issuance-halted", true));
    daemon.line(5); // the device's FAIL line
    // Fixed and verified again: issuance resumes.
    moto.aws(
        "us-east-1",
        &["update-ca-certificate", "--certificate-id", &id, "--new-auto-registration-status", "ENABLE"],
    );
    run(&st, &["ca", "verify", "--name", "ca-1"]).ok();
    assert!(daemon.line(20).contains("RESUMED"));
    assert!(matches!(session("DEV-AFTER"), Message::Chain(_)));
    assert_eq!(daemon.stop(), 0);
    assert_eq!(st.issuance_count(), 2);
}

//! Issue 11: the device contract of protocol revision 1.1, over real ptys, with a scripted device and with
//! `station-devsim`. Each test is named after the rule of schemas/bench-protocol.md it proves.

mod common;
use common::bench::*;
use common::sim::{self, finish};
use common::*;
use station_protocol::{self as protocol, Csr, ErrorMsg, Hello, Message, Stored};
use std::path::Path;

/// A station with one bench, `[serve]` lines and a config edit, its daemon, and the device end.
fn bench(serve: &str, edit: impl Fn(String) -> String) -> (TestStation, PtyPair, Daemon) {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| format!("{}\n[serve]\n{serve}\n", edit(t)));
    let pair = PtyPair::new(st.path(), "bench-0");
    let daemon = Daemon::start(&st, &[("bench-0", pair.station_end.as_path())], &[]);
    (st, pair, daemon)
}

fn station_mode(t: String) -> String {
    t.replace("serial_source = \"device\"", "serial_source = \"station\"")
}

/// A revision 1.1 HELLO.
fn hello11(serial: Option<&str>) -> Message {
    Message::Hello(Hello {
        protocol: 1,
        model: "test-rig".into(),
        firmware: "1.0".into(),
        serial: serial.map(String::from),
        revision: Some(1),
    })
}

fn error(m: Message) -> ErrorMsg {
    match m {
        Message::Error(e) => e,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

fn chain_of(m: Message) -> protocol::Chain {
    match m {
        Message::Chain(c) => c,
        other => panic!("expected CHAIN, got {other:?}"),
    }
}

fn welcome_of(m: Message) -> protocol::Welcome {
    match m {
        Message::Welcome(w) => w,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

fn db(st: &TestStation) -> std::path::PathBuf {
    st.file("station.db")
}

/// A damaged copy of a frame (one bit of its body flipped: a CRC error).
fn damaged(msg: &Message) -> Vec<u8> {
    let mut f = protocol::encode(msg).unwrap();
    f[12] ^= 0x01;
    f
}

#[test]
fn welcome_states_the_serial_mode_to_a_revision_1_1_device_and_sends_a_1_0_device_no_new_field() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("DEV-11")));
    let w = welcome_of(dev.recv(10));
    assert_eq!(
        (w.serial.as_deref(), w.serial_source.as_deref(), w.revision),
        (Some("DEV-11"), Some("device"), Some(1))
    );
    dev.send(&hello(Some("DEV-10")));
    let line = String::from_utf8(dev.recv_raw_line(10)).unwrap();
    assert!(line.contains("\"serial\":\"DEV-10\"") && !line.contains("serial_source") && !line.contains("revision"));
}

#[test]
fn a_1_1_device_without_a_serial_at_a_device_mode_station_is_refused_serial_missing_at_hello() {
    let (st, pair, daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(None));
    let e = error(dev.recv(10));
    assert_eq!((e.code.as_str(), e.retryable), ("serial-missing", false));
    assert!(e.message.contains("serial_source"), "{}", e.message);
    assert!(daemon.line(5).contains("serial-missing"));
    assert_eq!(daemon.stop(), 0);
    assert_eq!(sqlite(&db(&st), "SELECT code FROM refusals"), "serial-missing");
}

#[test]
fn a_1_0_device_whose_csr_cn_is_its_model_is_refused_and_one_with_its_serial_in_the_cn_is_served() {
    let (st, pair, daemon) = bench("shutdown_grace_secs = 1", |t| t);
    let mut dev = Device::open(&pair.device_end);
    // The 1.0 example: no serial in HELLO, the model as the CN.
    dev.send(&hello(None));
    assert!(welcome_of(dev.recv(10)).serial.is_none());
    let (_k, csr) = device_csr(Some("test-rig"));
    dev.send(&Message::Csr(Csr { der: csr }));
    let e = error(dev.recv(10));
    assert_eq!((e.code.as_str(), e.retryable), ("serial-missing", false));
    assert!(e.message.contains("model"), "{}", e.message);
    daemon.line(5);
    // A 1.0 device that carries its serial in the CN works as before.
    dev.send(&hello(None));
    dev.recv(10);
    let (_k, csr) = device_csr(Some("DEV-CN-1"));
    dev.send(&Message::Csr(Csr { der: csr }));
    let c = chain_of(dev.recv(10));
    assert_eq!(c.serial, "DEV-CN-1");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(st.issuance_count(), 1, "no device got the model as its serial");
}

#[test]
fn a_station_mode_station_refuses_a_device_serial_at_hello_and_allocates_one_for_a_device_without() {
    let (st, pair, daemon) = bench("shutdown_grace_secs = 1", station_mode);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("OWN-1")));
    let e = error(dev.recv(10));
    assert_eq!((e.code.as_str(), e.retryable), ("serial-not-allowed", false));
    let line = daemon.line(5);
    assert!(line.contains("serial-not-allowed") && line.contains("OWN-1"), "{line}");
    // The 7.1 session: no serial, the model as the CN.
    dev.send(&hello11(None));
    let w = welcome_of(dev.recv(10));
    assert_eq!((w.serial.as_deref(), w.serial_source.as_deref()), (Some("SN-000001"), Some("station")));
    let (_k, csr) = device_csr(Some("test-rig"));
    dev.send(&Message::Csr(Csr { der: csr }));
    assert_eq!(chain_of(dev.recv(10)).serial, "SN-000001");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(sqlite(&db(&st), "SELECT code, serial FROM refusals"), "serial-not-allowed|OWN-1");
}

#[test]
fn in_station_mode_a_retried_device_takes_the_serial_of_chain_and_its_new_reservation_goes_to_the_next_device() {
    let (st, pair, daemon) = bench("shutdown_grace_secs = 1", station_mode);
    let mut dev = Device::open(&pair.device_end);
    let (_k, csr) = device_csr(None);
    dev.send(&hello11(None));
    assert_eq!(welcome_of(dev.recv(10)).serial.as_deref(), Some("SN-000001"));
    dev.send(&Message::Csr(Csr { der: csr.clone() }));
    let first = chain_of(dev.recv(10));
    // The device resets before STORED, and starts again with the same key.
    dev.send(&hello11(None));
    assert_eq!(welcome_of(dev.recv(10)).serial.as_deref(), Some("SN-000002"), "a new reservation");
    dev.send(&Message::Csr(Csr { der: csr }));
    let again = chain_of(dev.recv(10));
    assert_eq!((again.serial.as_str(), again.chain == first.chain), ("SN-000001", true), "CHAIN's serial prevails");
    dev.send(&Message::Stored(Stored { sha256: again.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(d) if d.serial == "SN-000001"));
    // The next device gets the number the retry reserved: no gap.
    dev.send(&hello11(None));
    assert_eq!(welcome_of(dev.recv(10)).serial.as_deref(), Some("SN-000002"));
    let (_k2, csr2) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr2 }));
    assert_eq!(chain_of(dev.recv(10)).serial, "SN-000002");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(sqlite(&db(&st), "SELECT group_concat(serial) FROM issuances ORDER BY id"), "SN-000001,SN-000002");
}

#[test]
fn after_stored_hash_mismatch_the_device_starts_again_from_hello_not_with_stored() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    let (_k, csr) = device_csr(None);
    dev.send(&hello11(Some("DEV-HASH")));
    dev.recv(10);
    dev.send(&Message::Csr(Csr { der: csr.clone() }));
    let first = chain_of(dev.recv(10));
    dev.send(&Message::Stored(Stored { sha256: "0".repeat(64) }));
    let e = error(dev.recv(10));
    assert_eq!((e.code.as_str(), e.retryable), ("stored-hash-mismatch", true));
    assert_eq!(e.hint, "start again from HELLO; the station re-sends the identical chain");
    // What the 1.0 hint said to do is refused.
    dev.send(&Message::Stored(Stored { sha256: first.sha256.clone() }));
    assert_eq!(error(dev.recv(10)).code, "unexpected-message");
    // What the spec says works.
    dev.send(&hello11(Some("DEV-HASH")));
    dev.recv(10);
    dev.send(&Message::Csr(Csr { der: csr }));
    let second = chain_of(dev.recv(10));
    assert_eq!(second.chain, first.chain);
    dev.send(&Message::Stored(Stored { sha256: second.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
}

#[test]
fn protocol_1_0_is_the_integer_1() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    let body = br#"{"protocol":1.0,"model":"test-rig","firmware":"1.0","serial":"DEV-FLOAT"}"#;
    dev.raw(&protocol::encode_raw(1, "HELLO", body).unwrap());
    assert_eq!(welcome_of(dev.recv(10)).serial.as_deref(), Some("DEV-FLOAT"));
    let body = br#"{"protocol":1.5,"model":"test-rig","firmware":"1.0"}"#;
    dev.raw(&protocol::encode_raw(1, "HELLO", body).unwrap());
    assert_eq!(error(dev.recv(10)).code, "message-invalid");
}

#[test]
fn message_invalid_gets_its_own_code_and_does_not_count_towards_too_many_frame_errors() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    let h = hello11(Some("DEV-COUNT"));
    let invalid =
        protocol::encode_raw(1, "HELLO", br#"{"protocol":1,"model":"m","firmware":"f","serail":"X"}"#).unwrap();
    for _ in 0..2 {
        dev.raw(&damaged(&h));
        assert_eq!(error(dev.recv(10)).code, "frame-crc-mismatch");
    }
    // The third bad frame in a row is intact but invalid: its own code, and the count starts again.
    dev.raw(&invalid);
    assert_eq!(error(dev.recv(10)).code, "message-invalid");
    for _ in 0..3 {
        dev.raw(&invalid);
        assert_eq!(error(dev.recv(10)).code, "message-invalid");
    }
    for _ in 0..2 {
        dev.raw(&damaged(&h));
        assert_eq!(error(dev.recv(10)).code, "frame-crc-mismatch");
    }
    dev.raw(&damaged(&h));
    assert_eq!(error(dev.recv(10)).code, "too-many-frame-errors");
}

#[test]
fn frame_errors_count_in_both_directions_at_the_station() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("DEV-BOTH")));
    let welcome = dev.recv_raw_line(10);
    let resend = Message::Error(ErrorMsg::new("frame-crc-mismatch", "bad crc", "", true));
    for _ in 0..2 {
        dev.send(&resend);
        assert_eq!(dev.recv_raw_line(10), welcome, "re-sent byte for byte");
    }
    dev.send(&resend);
    assert_eq!(error(dev.recv(10)).code, "too-many-frame-errors");
}

#[test]
fn frame_too_large_is_answered_when_the_limit_is_reached_before_any_delimiter() {
    let (_st, pair, _daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    let mut big = b"@1 HELLO 99999 ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 17 * 1024));
    dev.raw(&big);
    let e = error(dev.recv(10));
    assert_eq!((e.code.as_str(), e.retryable), ("frame-too-large", true), "answered with no LF sent yet");
    dev.raw(b"\n");
    dev.send(&hello11(Some("DEV-BIG")));
    assert!(matches!(dev.recv(10), Message::Welcome(_)), "the rest of the line was skipped without a second report");
}

#[test]
fn device_errors_are_recorded_in_the_ledger_against_their_certificate_and_shown_on_the_operator_line() {
    let (st, pair, daemon) = bench("", |t| t);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("DEV-UNTRUSTED")));
    dev.recv(10);
    let (_k, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    chain_of(dev.recv(10));
    dev.send(&Message::Error(ErrorMsg::new("chain-untrusted", "not signed by the trust anchor", "", false)));
    assert!(dev.try_recv(1).is_none(), "the station answers a device's ERROR with nothing");
    let line = daemon.line(5);
    assert!(line.contains("DEV-UNTRUSTED") && line.contains("chain-untrusted") && line.contains("device:"), "{line}");
    // An ERROR after DONE is the device's that just finished.
    dev.send(&hello11(Some("DEV-DONE")));
    dev.recv(10);
    let (_k, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    let c = chain_of(dev.recv(10));
    dev.send(&Message::Stored(Stored { sha256: c.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    daemon.line(5);
    dev.send(&Message::Error(ErrorMsg::new("done-serial-mismatch", "DONE names DEV-X", "", false)));
    let line = daemon.line(5);
    assert!(line.contains("DEV-DONE") && line.contains("done-serial-mismatch"), "{line}");
    assert_eq!(daemon.stop(), 0);
    let rows = sqlite(
        &db(&st),
        "SELECT e.subject, json_extract(e.detail, '$.code'), json_extract(e.detail, '$.state'), i.serial \
         FROM events e JOIN issuances i ON i.id = e.ref_id WHERE e.kind = 'device-error' ORDER BY e.seq",
    );
    assert_eq!(
        rows,
        "DEV-UNTRUSTED|chain-untrusted|await-stored|DEV-UNTRUSTED\nDEV-DONE|done-serial-mismatch|done|DEV-DONE"
    );
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn a_simulated_device_that_does_not_trust_the_chain_says_chain_untrusted_and_the_station_records_it() {
    let (st, pair, daemon) = bench("", |t| t);
    st.run(&["ca", "rotate", "--name", "ca-other"]).ok();
    let other = st.ca_pem("ca-other");
    let out = st.file("devices");
    let (code, v) = finish(sim::spawn(&pair.device_end, &other, &out, &["--serial", "DEV-SIM-U"]));
    assert_eq!((code, v["devices"][0]["code"].as_str()), (1, Some("chain-untrusted")), "{v}");
    assert!(daemon.line(5).contains("chain-untrusted"));
    assert_eq!(daemon.stop(), 0);
    let n = sqlite(&db(&st), "SELECT COUNT(*) FROM events WHERE kind = 'device-error' AND subject = 'DEV-SIM-U'");
    assert_eq!(n, "1");
}

#[test]
fn a_late_chain_after_the_devices_own_restart_is_ignored_and_the_new_session_serves_the_identical_chain() {
    let (st, pair, daemon) = bench("", |t| t);
    let ca = st.ca_pem("ca-1");
    let out = st.file("devices");
    let (code, v) =
        finish(sim::spawn(&pair.device_end, &ca, &out, &["--misbehave", "late-chain", "--serial", "DEV-LATE"]));
    assert_eq!(code, 0, "{v}");
    assert!(daemon.line(5).contains("DEV-LATE"));
    assert_eq!(daemon.stop(), 0);
    let kinds = sqlite(
        &db(&st),
        "SELECT group_concat(kind, ',') FROM (SELECT kind FROM events WHERE subject = 'DEV-LATE' ORDER BY seq)",
    );
    assert_eq!(kinds, "issued,delivered,confirmed");
}

/// An RSA-2048 CSR made by openssl, DER.
fn rsa_csr(dir: &Path) -> Vec<u8> {
    let (csr, _key) = openssl_csr(dir, "rsa-dev", "rsa:2048", "/CN=ignored", &["-outform", "DER"]);
    std::fs::read(csr).unwrap()
}

#[test]
fn a_key_whose_type_is_no_longer_offered_keeps_its_chain_and_an_unissued_one_makes_the_device_switch_keys() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let pair = PtyPair::new(st.path(), "bench-0");
    let serve = |st: &TestStation| Daemon::start(st, &[("bench-0", pair.station_end.as_path())], &[]);
    let csr = rsa_csr(st.path());
    let daemon = serve(&st);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("DEV-RSA")));
    dev.recv(10);
    dev.send(&Message::Csr(Csr { der: csr.clone() }));
    let first = chain_of(dev.recv(10));
    dev.send(&Message::Stored(Stored { sha256: first.sha256.clone() }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    assert_eq!(daemon.stop(), 0);
    drop(dev);
    // The station stops offering RSA.
    st.edit_config(|t| {
        t.replace(
            r#"key_types = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]"#,
            r#"key_types = ["ec-p256"]"#,
        )
    });
    let daemon = serve(&st);
    let mut dev = Device::open(&pair.device_end);
    dev.send(&hello11(Some("DEV-RSA")));
    assert_eq!(welcome_of(dev.recv(10)).key_types, ["ec-p256"]);
    dev.send(&Message::Csr(Csr { der: csr }));
    let again = chain_of(dev.recv(10));
    assert_eq!(again.chain, first.chain, "the chain already issued for the key");
    dev.send(&Message::Stored(Stored { sha256: again.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    drop(dev);
    // A device holding an RSA key never issued for: refused, then a key of the offered type.
    let out = st.file("devices");
    let args = ["--serial", "DEV-SWITCH", "--key-type", "rsa-2048", "--backoff", "50ms"];
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &args));
    assert_eq!(code, 0, "{v}");
    let d = &v["devices"][0];
    assert!(d["codes_seen"].as_array().unwrap().iter().any(|c| c == "csr-key-type-not-allowed"), "{d}");
    let cert = out.join("DEV-SWITCH").join("deviceCertAndCACert.crt");
    assert!(cert_text(&cert).contains("id-ecPublicKey"), "the new key is EC");
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_serial_that_could_not_be_a_thing_name_is_refused_at_intake_where_jitp_makes_the_thing_name() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let (csr, _) = openssl_csr(st.path(), "dot", "ec:P-256", "/CN=ACME.0001", &[]);
    // The default pattern has no `.`.
    st.issue(&csr, "a.pem", &["--serial", "ACME.0001"]).fails_with("serial-pattern-mismatch", 7);
    // A pattern that allows it, and no JITP: PrintableString, issued.
    st.edit_config(|t| {
        t.replace(
            "serial_pattern = \"[A-Za-z0-9][A-Za-z0-9:-]{0,63}\"",
            "serial_pattern = \"[A-Z0-9][A-Z0-9.-]{0,63}\"",
        )
    });
    st.issue(&csr, "a.pem", &["--serial", "ACME.0001"]).ok();
    // With JITP making the thing name from the CN, that pattern is refused when the config is checked…
    st.edit_config(|t| {
        format!("{t}\n[aws]\nregions = [{{ name = \"eu-west-1\" }}]\nrole_arn = \"arn:aws:iam::123456789012:role/x\"\n")
    });
    let r = st.issue(&csr, "b.pem", &["--serial", "ACME.0002"]);
    r.fails_with("config-field-invalid", 3);
    assert!(r.stdout.contains("thing name"), "{}", r.stdout);
    // …and with the default pattern back, the serial is refused at intake for what it is.
    st.edit_config(|t| {
        t.replace(
            "serial_pattern = \"[A-Z0-9][A-Z0-9.-]{0,63}\"",
            "serial_pattern = \"[A-Za-z0-9][A-Za-z0-9:-]{0,63}\"",
        )
    });
    let (csr2, _) = openssl_csr(st.path(), "dot2", "ec:P-256", "/CN=ACME.0003", &[]);
    let r = st.issue(&csr2, "c.pem", &["--serial", "ACME.0003"]);
    r.fails_with("serial-invalid", 7);
    assert!(r.stdout.contains("thing name"), "{}", r.stdout);
}

#[test]
fn issue_serial_against_a_different_csr_cn_is_serial_mismatch_on_the_command_line_only() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let (csr, _) = openssl_csr(st.path(), "cn", "ec:P-256", "/CN=DEV-A", &[]);
    st.issue(&csr, "x.pem", &["--serial", "DEV-B"]).fails_with("serial-mismatch", 7);
}

#[test]
fn ca_show_pem_prints_the_certificate_alone() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let out = std::process::Command::new(STATION)
        .arg("-c")
        .arg(st.config())
        .args(["ca", "show", "ca-1", "--pem"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("-----BEGIN CERTIFICATE-----\n") && text.ends_with("-----END CERTIFICATE-----\n"),
        "{text}"
    );
    let file = st.file("piped.pem");
    std::fs::write(&file, &text).unwrap();
    let (ok, msg) = openssl(&["x509", "-in", file.to_str().unwrap(), "-noout", "-subject"]);
    assert!(ok, "{msg}");
}

#[test]
fn simulated_devices_meet_the_serial_mode_at_hello_before_they_send_a_csr() {
    // Device mode (the default): a 1.1 device without a serial is refused at once.
    let (st, pair, daemon) = bench("", |t| t);
    let ca = st.ca_pem("ca-1");
    let out = st.file("devices");
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &[]));
    assert_eq!((code, v["devices"][0]["code"].as_str()), (1, Some("serial-missing")), "{v}");
    assert_eq!(v["devices"][0]["retries"], 0, "not retryable: the device stops at once");
    assert_eq!(daemon.stop(), 0);
    drop(pair);
    // Station mode: a device with its own serial is refused; one without gets the next serial.
    let (st, pair, daemon) = bench("", station_mode);
    let ca = st.ca_pem("ca-1");
    let out = st.file("devices");
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &["--serial", "OWN-1"]));
    assert_eq!((code, v["devices"][0]["code"].as_str()), (1, Some("serial-not-allowed")), "{v}");
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &["--count", "2"]));
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["devices"][0]["serial"].as_str(), v["devices"][1]["serial"].as_str()),
        (Some("SN-000001"), Some("SN-000002"))
    );
    assert_eq!(daemon.stop(), 0);
    assert_eq!(st.issuance_count(), 2);
}

#[test]
fn a_revision_1_0_simulated_device_is_provisioned_unchanged_in_both_serial_modes() {
    let (st, pair, daemon) = bench("", |t| t);
    let ca = st.ca_pem("ca-1");
    let out = st.file("devices");
    let args = ["--revision", "0", "--count", "2", "--serial-from", "1", "--serial-prefix", "OLD-"];
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &args));
    assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(2)), "{v}");
    assert_eq!(daemon.stop(), 0);
    drop(pair);
    let (st, pair, daemon) = bench("", station_mode);
    let ca = st.ca_pem("ca-1");
    let out = st.file("devices");
    let (code, v) = finish(sim::spawn(&pair.device_end, &ca, &out, &["--revision", "0"]));
    assert_eq!((code, v["devices"][0]["serial"].as_str()), (0, Some("SN-000001")), "{v}");
    assert_eq!(daemon.stop(), 0);
    sim::verify_chains(&ca, &sim::chain_files(&out));
}

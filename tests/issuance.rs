//! Issue 3: every certificate is policy-clean and verifies; hostile CSRs are refused with their code
//! and leave no row; idempotency; the ledger detects edits.

mod common;
use common::*;

fn station_with_ca(key_type: &str) -> (TestStation, std::path::PathBuf) {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", key_type);
    (st, ca)
}

fn assert_policy_profile(cert: &std::path::Path, ca: &std::path::Path, serial: &str) {
    let (ok, msg) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    let text = cert_text(cert);
    assert!(
        text.contains(&format!("Subject: C = DE, O = Station Demo, CN = {serial}, serialNumber = {serial}\n")),
        "{text}"
    );
    assert!(text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"), "{text}");
    assert!(text.contains("X509v3 Extended Key Usage: \n                TLS Web Client Authentication\n"), "{text}");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

#[test]
fn certificates_for_every_allowed_key_type_verify_under_ec_and_rsa_cas() {
    for ca_type in ["ec-p256", "rsa-2048"] {
        let (st, ca) = station_with_ca(ca_type);
        for (i, key) in ["ec:P-256", "ec:P-384", "rsa:2048"].iter().enumerate() {
            let serial = format!("DEV-{i:04}");
            let (csr, _) = openssl_csr(st.path(), &serial, key, &format!("/CN={serial}"), &[]);
            let r = st.issue(&csr, &format!("{serial}.pem"), &[]).ok().json();
            assert_eq!(r["outcome"], "new");
            assert_eq!(r["serial"], serial.as_str());
            assert_policy_profile(&st.file(&format!("{serial}.pem")), &ca, &serial);
        }
        assert_eq!(st.issuance_count(), 3);
    }
}

#[test]
fn chain_is_device_certificate_then_ca_certificate() {
    let (st, ca) = station_with_ca("ec-p256");
    let (csr, _) = openssl_csr(st.path(), "d", "ec:P-256", "/CN=DEV-1", &[]);
    st.issue(&csr, "chain.pem", &[]).ok();
    let chain = std::fs::read_to_string(st.file("chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.ends_with(&std::fs::read_to_string(&ca).unwrap()), "the CA certificate closes the chain");
}

#[test]
fn csr_requests_for_ca_key_cert_sign_and_sans_are_ignored() {
    let (st, ca) = station_with_ca("ec-p256");
    let (csr, _) = openssl_csr(
        st.path(),
        "greedy",
        "ec:P-256",
        "/CN=DEV-7/O=Evil Corp/OU=Root",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-addext",
            "subjectAltName=DNS:evil.example,IP:10.0.0.1",
            "-addext",
            "extendedKeyUsage=serverAuth,codeSigning",
        ],
    );
    st.issue(&csr, "greedy.pem", &[]).ok();
    assert_policy_profile(&st.file("greedy.pem"), &ca, "DEV-7");
    assert!(!cert_text(&st.file("greedy.pem")).contains("Evil"), "the subject is the station's, not the device's");
}

#[test]
fn p384_key_signed_with_sha256_gets_a_correct_p384_certificate() {
    let (st, ca) = station_with_ca("ec-p256");
    let (csr, key) = openssl_csr(st.path(), "p384", "ec:P-384", "/CN=DEV-384", &["-sha256"]);
    st.issue(&csr, "p384.pem", &[]).ok();
    assert_policy_profile(&st.file("p384.pem"), &ca, "DEV-384");
    // The certificate carries exactly the device's P-384 key.
    let (_, cert_pub) = openssl(&["x509", "-in", st.file("p384.pem").to_str().unwrap(), "-noout", "-pubkey"]);
    let (_, key_pub) = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert_eq!(cert_pub, key_pub);
    assert!(cert_text(&st.file("p384.pem")).contains("ASN1 OID: secp384r1"));
}

#[test]
fn hostile_csrs_get_their_code_and_leave_no_row() {
    let (st, _ca) = station_with_ca("ec-p256");
    let dir = st.path();
    let mut cases: Vec<(&str, std::path::PathBuf)> = Vec::new();
    // Tampered signature: flip a byte near the end of the DER (inside the signature).
    let (good, _) = openssl_csr(dir, "tamper", "ec:P-256", "/CN=DEV-T", &["-outform", "DER"]);
    let mut der = std::fs::read(&good).unwrap();
    let n = der.len();
    der[n - 5] ^= 0x55;
    std::fs::write(dir.join("tampered.der"), der).unwrap();
    cases.push(("csr-bad-signature", dir.join("tampered.der")));
    cases.push(("csr-key-too-weak", openssl_csr(dir, "rsa1024", "rsa:1024", "/CN=DEV-R", &[]).0));
    cases.push(("csr-key-type-not-allowed", openssl_csr(dir, "ed", "ed25519", "/CN=DEV-E", &[]).0));
    cases.push(("csr-key-type-not-allowed", openssl_csr(dir, "k256", "ec:secp256k1", "/CN=DEV-K", &[]).0));
    cases.push(("serial-invalid", openssl_csr(dir, "pat", "ec:P-256", "/CN=bad serial!", &[]).0));
    cases.push(("serial-pattern-mismatch", openssl_csr(dir, "dot", "ec:P-256", "/CN=ACME.0001", &[]).0));
    cases.push(("serial-missing", openssl_csr(dir, "nocn", "ec:P-256", "/O=No CN Ltd", &[]).0));
    std::fs::write(dir.join("garbage.csr"), b"\x30\x82\x01\x00this is not a CSR at all").unwrap();
    cases.push(("csr-malformed", dir.join("garbage.csr")));
    std::fs::write(
        dir.join("notpem.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    cases.push(("csr-malformed", dir.join("notpem.csr")));
    std::fs::write(dir.join("huge.csr"), vec![b'A'; 9000]).unwrap();
    cases.push(("csr-too-large", dir.join("huge.csr")));
    for (i, (code, csr)) in cases.iter().enumerate() {
        let out = format!("refused-{i}.pem");
        st.issue(csr, &out, &[]).fails_with(code, 7);
        assert!(!st.file(&out).exists(), "{code}: no chain may be written");
    }
    assert_eq!(st.issuance_count(), 0, "refusals leave no issuance row");
    let refusals = sqlite(&st.file("station.db"), "SELECT COUNT(*) FROM refusals");
    assert_eq!(refusals, cases.len().to_string(), "each refusal is counted for stats");
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn idempotency_table_holds() {
    let (st, _ca) = station_with_ca("ec-p256");
    let (csr_a, _) = openssl_csr(st.path(), "a", "ec:P-256", "/CN=DEV-100", &[]);
    let first = st.issue(&csr_a, "a1.pem", &[]).ok().json();
    // Same serial, same key: the identical stored bytes, no new row.
    let again = st.issue(&csr_a, "a2.pem", &[]).ok().json();
    assert_eq!(again["outcome"], "repeat");
    assert_eq!(again["certificate_id"], first["certificate_id"]);
    assert_eq!(std::fs::read(st.file("a1.pem")).unwrap(), std::fs::read(st.file("a2.pem")).unwrap());
    assert_eq!(st.issuance_count(), 1);
    // Same serial, different key: refused.
    let (csr_b, _) = openssl_csr(st.path(), "b", "ec:P-256", "/CN=DEV-100", &[]);
    st.issue(&csr_b, "b.pem", &[]).fails_with("serial-already-issued", 7);
    // …unless re-issued with a reason, which links the rows.
    let re = st.issue(&csr_b, "b.pem", &["--reissue", "--reason", "flash replaced"]).ok().json();
    assert_eq!(re["outcome"], "reissue");
    let link = sqlite(&st.file("station.db"), "SELECT reissue_of || '|' || reissue_reason FROM issuances WHERE id = 2");
    assert_eq!(link, format!("{}|flash replaced", first["id"]));
    let old = sqlite(&st.file("station.db"), "SELECT superseded_by FROM issuances WHERE id = 1");
    assert_eq!(old, "2");
    // Same key, different serial: key reuse.
    let (csr_c, _) = openssl_csr(st.path(), "c", "ec:P-256", "/CN=DEV-101", &[]);
    let key_b = st.file("b.key");
    let csr_reuse = st.file("reuse.csr");
    let (ok, msg) = openssl(&[
        "req",
        "-new",
        "-key",
        key_b.to_str().unwrap(),
        "-subj",
        "/CN=DEV-102",
        "-out",
        csr_reuse.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    st.issue(&csr_reuse, "reuse.pem", &[]).fails_with("key-reuse", 7);
    st.issue(&csr_c, "c.pem", &[]).ok();
    // --serial and CN must agree.
    st.issue(&csr_c, "c2.pem", &["--serial", "DEV-999"]).fails_with("serial-mismatch", 7);
    assert_eq!(st.issuance_count(), 3);
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn concurrent_requests_for_one_serial_yield_one_issuance() {
    let (st, _ca) = station_with_ca("ec-p256");
    let (csr, _) = openssl_csr(st.path(), "race", "ec:P-256", "/CN=DEV-RACE", &[]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let out = st.file(&format!("race-{i}.pem"));
            std::process::Command::new(STATION)
                .arg("-c")
                .arg(st.config())
                .arg("--json")
                .args(["issue", "--csr", csr.to_str().unwrap(), "--out", out.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        outcomes.push(v["outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(outcomes.iter().filter(|o| *o == "new").count(), 1, "{outcomes:?}");
    assert_eq!(st.issuance_count(), 1);
    let first = std::fs::read(st.file("race-0.pem")).unwrap();
    for i in 1..8 {
        assert_eq!(std::fs::read(st.file(&format!("race-{i}.pem"))).unwrap(), first, "every caller got the same bytes");
    }
}

#[test]
fn editing_a_row_with_sqlite3_is_detected_and_the_row_named() {
    let (st, _ca) = station_with_ca("ec-p256");
    for i in 0..5 {
        let (csr, _) = openssl_csr(st.path(), &format!("d{i}"), "ec:P-256", &format!("/CN=DEV-{i}"), &[]);
        st.issue(&csr, &format!("d{i}.pem"), &[]).ok();
    }
    st.run(&["audit", "verify"]).ok();
    let db = st.file("station.db");
    // An issuance row: the operator changed behind the station's back.
    sqlite(&db, "UPDATE issuances SET operator = 'mallory' WHERE serial = 'DEV-3'");
    let r = st.run(&["audit", "verify"]);
    assert_eq!(r.status, 9, "{}", r.stdout);
    let f = &r.json()["findings"][0];
    assert_eq!(f["check"], "row-matches-event");
    assert!(f["subject"].as_str().unwrap().contains("DEV-3"), "{f}");
    // An event row: the chain names the event.
    sqlite(&db, "UPDATE issuances SET operator = '' WHERE serial = 'DEV-3'");
    sqlite(
        &db,
        "UPDATE events SET detail = replace(detail, 'DEV-2', 'DEV-X') WHERE subject = 'DEV-2' AND kind = 'issued'",
    );
    let seq = sqlite(&db, "SELECT seq FROM events WHERE subject = 'DEV-2' AND kind = 'issued'");
    let r = st.run(&["audit", "verify"]);
    assert_eq!(r.status, 9);
    assert_eq!(r.json()["findings"][0]["subject"], format!("event {seq}"));
}

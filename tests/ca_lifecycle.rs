//! Issue 2: the CA key lives in the HSM; init, ca and hsm commands; their error paths.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn ca_certificates_pass_openssl_strict_verify_for_ec_and_rsa() {
    let st = TestStation::new();
    for (name, kt, sig) in [
        ("ca-p256", "ec-p256", "ecdsa-with-SHA256"),
        ("ca-p384", "ec-p384", "ecdsa-with-SHA384"),
        ("ca-rsa", "rsa-2048", "sha256WithRSAEncryption"),
    ] {
        let pem = st.create_ca(name, kt);
        let p = pem.to_str().unwrap();
        let (ok, out) = openssl(&["verify", "-x509_strict", "-CAfile", p, p]);
        assert!(ok, "{name}: {out}");
        let text = cert_text(&pem);
        assert!(text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        assert!(text.contains(&format!("Signature Algorithm: {sig}")), "{text}");
        assert!(text.contains(&format!("Subject: CN = {name}, O = Station Demo, C = DE")), "{text}");
    }
    let list = st.run(&["ca", "list"]).ok().json();
    let states: Vec<_> = list.as_array().unwrap().iter().map(|c| (c["name"].clone(), c["state"].clone())).collect();
    assert_eq!(states[0], ("ca-p256".into(), "active".into()), "the first CA becomes active");
    assert!(states[1..].iter().all(|s| s.1 == "ready"));
}

#[test]
fn ca_record_carries_fingerprint_and_aws_certificate_id_of_the_der() {
    let st = TestStation::new();
    let pem = st.create_ca("ca-1", "ec-p256");
    let show = st.run(&["ca", "show", "ca-1"]).ok().json();
    let (ok, fp) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-fingerprint", "-sha256"]);
    assert!(ok);
    let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase();
    assert_eq!(show["fingerprint_sha256"], fp.as_str());
    assert_eq!(show["certificate_id"], fp.as_str());
    assert_eq!(show["key_uri"], "pkcs11:token=station;object=ca-1;type=private");
    assert_eq!(show["key_type"], "ec-p256");
}

#[test]
fn ca_private_key_is_sensitive_never_extractable_and_sign_only() {
    let st = TestStation::new();
    st.create_ca("ca-ec", "ec-p256");
    st.create_ca("ca-rsa", "rsa-2048");
    // Through cryptoki, as the station reads it.
    let status = st.run(&["hsm", "status"]).ok().json();
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(k["sensitive"], true, "{k}");
        assert_eq!(k["always_sensitive"], true, "{k}");
        assert_eq!(k["extractable"], false, "{k}");
        assert_eq!(k["never_extractable"], true, "{k}");
        assert_eq!(k["sign"], true, "{k}");
        assert_eq!(k["decrypt"], false, "{k}");
        assert_eq!(k["unwrap"], false, "{k}");
        assert_eq!(k["derive"], false, "{k}");
        assert_eq!(k["locked_down"], true, "{k}");
    }
    // Independently, through OpenSC's pkcs11-tool.
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            SOFTHSM,
            "--token-label",
            "station",
            "--login",
            "--pin",
            &st.user_pin(),
            "--list-objects",
            "--type",
            "privkey",
        ])
        .env("SOFTHSM2_CONF", st.file("softhsm2.conf"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let blocks: Vec<&str> = text.split("Private Key Object").skip(1).collect();
    assert_eq!(blocks.len(), 2, "{text}");
    for b in blocks {
        let usage = b.lines().find(|l| l.trim_start().starts_with("Usage:")).unwrap_or_default();
        let access = b.lines().find(|l| l.trim_start().starts_with("Access:")).unwrap_or_default();
        assert!(usage.contains("sign"), "{b}");
        assert!(!usage.contains("decrypt") && !usage.contains("unwrap") && !usage.contains("derive"), "{b}");
        assert!(access.contains("sensitive") && access.contains("never extractable"), "{b}");
        let flags: Vec<&str> = access.split(':').nth(1).unwrap_or_default().split(',').map(str::trim).collect();
        assert!(!flags.contains(&"extractable"), "{b}");
    }
}

#[test]
fn verification_cert_has_the_code_as_cn_and_verifies_against_the_ca() {
    let st = TestStation::new();
    for (name, kt) in [("ca-ec", "ec-p256"), ("ca-rsa", "rsa-2048")] {
        let ca = st.create_ca(name, kt);
        let code = "7f2d1c0b9a8e4f6d5c3b2a1908f7e6d5c4b3a2918f7e6d5c4b3a291807f6e5d4";
        let out = st.file(&format!("{name}-verify.pem"));
        st.run(&[
            "ca",
            "verification-cert",
            "--name",
            name,
            "--registration-code",
            code,
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        let (ok, msg) = openssl(&["verify", "-x509_strict", "-CAfile", ca.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(ok, "{name}: {msg}");
        let (_, subject) = openssl(&["x509", "-in", out.to_str().unwrap(), "-noout", "-subject"]);
        assert_eq!(subject.trim(), format!("subject=CN = {code}"));
    }
}

#[test]
fn intermediate_round_trips_through_an_offline_openssl_root() {
    let st = TestStation::new();
    let root = OpensslCa::new(st.path(), "root", "/CN=Offline Root/O=Example/C=DE");
    let csr = st.file("int.csr");
    st.run(&[
        "ca",
        "create",
        "--name",
        "int",
        "--intermediate",
        "--csr-out",
        csr.to_str().unwrap(),
        "--subject",
        "CN=Line 1 Issuing CA,O=Example,C=DE",
    ])
    .ok();
    assert_eq!(st.run(&["ca", "show", "int"]).ok().json()["state"], "pending");
    let (ok, msg) = openssl(&["req", "-in", csr.to_str().unwrap(), "-noout", "-verify"]);
    assert!(ok, "{msg}");
    let signed = root.sign(&csr, "int-signed.pem", CA_EXT);
    st.run(&[
        "ca",
        "import",
        "--name",
        "int",
        "--cert",
        signed.to_str().unwrap(),
        "--chain",
        root.cert.to_str().unwrap(),
    ])
    .ok();
    let show = st.run(&["ca", "show", "int"]).ok().json();
    assert_eq!(show["state"], "active");
    // Used: a verification certificate made under the imported CA chains to the root.
    let vc = st.file("vc.pem");
    st.run(&[
        "ca",
        "verification-cert",
        "--name",
        "int",
        "--registration-code",
        "abc123",
        "--out",
        vc.to_str().unwrap(),
    ])
    .ok();
    let (ok, msg) = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        root.cert.to_str().unwrap(),
        "-untrusted",
        signed.to_str().unwrap(),
        vc.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
}

#[test]
fn import_of_a_certificate_for_another_key_is_refused() {
    let st = TestStation::new();
    let root = OpensslCa::new(st.path(), "root", "/CN=Offline Root/O=Example/C=DE");
    let csr = st.file("int.csr");
    st.run(&["ca", "create", "--name", "int", "--intermediate", "--csr-out", csr.to_str().unwrap()]).ok();
    // A CSR for a key that is not the HSM's, signed by the same root.
    let other_csr = st.file("other.csr");
    let (ok, msg) = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        st.file("other.key").to_str().unwrap(),
        "-subj",
        "/CN=int",
        "-out",
        other_csr.to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    let wrong = root.sign(&other_csr, "wrong.pem", CA_EXT);
    let r = st.run(&[
        "ca",
        "import",
        "--name",
        "int",
        "--cert",
        wrong.to_str().unwrap(),
        "--chain",
        root.cert.to_str().unwrap(),
    ]);
    r.fails_with("ca-import-key-mismatch", 6);
    assert_eq!(st.run(&["ca", "show", "int"]).ok().json()["state"], "pending", "nothing was stored");
}

#[test]
fn init_twice_refuses_and_leaves_the_station_intact() {
    let st = TestStation::new();
    let before = std::fs::read(st.config()).unwrap();
    let r = station(&["--json", "init", "--dir", st.path().to_str().unwrap()]);
    r.fails_with("init-station-exists", 2);
    assert_eq!(std::fs::read(st.config()).unwrap(), before);
    st.run(&["hsm", "status"]).ok();
}

#[test]
fn init_writes_private_pin_files_and_a_private_ledger() {
    let st = TestStation::new();
    for f in ["hsm-pin", "hsm-so-pin", "station.db", "station.toml"] {
        let mode = std::fs::metadata(st.file(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    assert_ne!(st.user_pin(), std::fs::read_to_string(st.file("hsm-so-pin")).unwrap().trim());
}

#[test]
fn world_readable_pin_file_is_refused() {
    let st = TestStation::new();
    std::fs::set_permissions(st.file("hsm-pin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = st.run(&["hsm", "status"]);
    r.fails_with("hsm-pin-file-permissions", 4);
    assert!(r.json()["error"]["hint"].as_str().unwrap().contains("chmod 600"));
}

#[test]
fn unknown_config_field_is_refused_by_name() {
    let st = TestStation::new();
    st.edit_config(|t| t.replace("[ledger]\n", "[ledger]\nsynchronus = \"off\"\n"));
    let r = st.run(&["ca", "list"]);
    r.fails_with("config-invalid", 3);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("synchronus"));
}

#[test]
fn hsm_error_paths_give_their_codes_and_exit_status() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    // Wrong PIN (the environment variable wins over the file).
    st.run_env(&["hsm", "status"], &[("STATION_HSM_PIN", "wrong-pin")]).fails_with("hsm-login-failed", 4);
    // Key missing: delete it behind the station's back.
    let del = Command::new("pkcs11-tool")
        .args([
            "--module",
            SOFTHSM,
            "--token-label",
            "station",
            "--login",
            "--pin",
            &st.user_pin(),
            "--delete-object",
            "--type",
            "privkey",
            "--label",
            "ca-1",
        ])
        .env("SOFTHSM2_CONF", st.file("softhsm2.conf"))
        .output()
        .unwrap();
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    let out = st.file("vc.pem");
    st.run(&[
        "ca",
        "verification-cert",
        "--name",
        "ca-1",
        "--registration-code",
        "abc",
        "--out",
        out.to_str().unwrap(),
    ])
    .fails_with("hsm-key-missing", 4);
    // CA name taken.
    st.run(&["ca", "create", "--name", "ca-1"]).fails_with("ca-name-taken", 6);
    // Token not found.
    st.edit_config(|t| t.replace("token_label = \"station\"", "token_label = \"nosuch\""));
    st.run(&["hsm", "status"]).fails_with("hsm-token-not-found", 4);
    // Module missing.
    st.edit_config(|t| t.replace(SOFTHSM, "/nonexistent/libpkcs11.so"));
    st.run(&["hsm", "status"]).fails_with("hsm-module-missing", 4);
}

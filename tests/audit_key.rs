//! Issue 15: the dedicated audit key signs checkpoints (and manifests); CA keys then sign certificates only. Old
//! checkpoints signed by a CA keep verifying; openssl verifies the audit certificate and an audit-key checkpoint.

mod common;
use common::*;

fn set_audit(st: &TestStation, fields: &str) {
    st.edit_config(|t| format!("{t}\n[audit]\n{fields}\n"));
}

fn checkpoint_kinds(st: &TestStation) -> String {
    sqlite(
        &st.file("station.db"),
        "SELECT group_concat(signer_kind || ':' || ca_name, ' ') FROM checkpoints ORDER BY id",
    )
}

#[test]
fn the_audit_key_signs_checkpoints_once_configured_and_ca_signed_checkpoints_keep_verifying() {
    let st = TestStation::new();
    let ca1 = st.create_ca("ca-1", "ec-p256");
    st.run(&["audit", "checkpoint"]).ok();

    let made = st.run(&["audit", "key", "create"]).ok().json();
    assert_eq!((made["label"].as_str(), made["ca_name"].as_str()), (Some("station-audit"), Some("ca-1")));
    let audit_pem = st.file("audit.pem");
    std::fs::write(&audit_pem, made["certificate_pem"].as_str().unwrap()).unwrap();
    // The audit certificate, checked by openssl: issued by the CA, a signing certificate and nothing more.
    let (ok, out) = openssl(&["verify", "-CAfile", ca1.to_str().unwrap(), audit_pem.to_str().unwrap()]);
    assert!(ok, "{out}");
    let text = cert_text(&audit_pem);
    assert!(text.contains("CN=test-station audit") || text.contains("CN = test-station audit"), "{text}");
    assert!(text.contains("Digital Signature") && !text.contains("Certificate Sign"), "{text}");
    assert!(text.contains("CA:FALSE") && !text.contains("Extended Key Usage"), "{text}");
    let shown = st.run(&["audit", "key", "show"]).ok().json();
    assert_eq!(shown["fingerprint"], made["fingerprint"]);
    let pem = station(&["-c", st.config().to_str().unwrap(), "audit", "key", "show", "--pem"]);
    assert_eq!(pem.stdout.trim(), made["certificate_pem"].as_str().unwrap().trim());
    // The key is in the token, sign-only and never extractable, like a CA key.
    let status = st.run(&["hsm", "status"]).ok().json();
    let key = status["keys"].as_array().unwrap().iter().find(|k| k["label"] == "station-audit").expect("in the token");
    assert_eq!(key["locked_down"], true, "{key}");

    // Not configured yet: today's behaviour, the CA signs.
    st.run(&["audit", "checkpoint"]).ok();
    set_audit(&st, "key = \"station-audit\"\ncheckpoint_every = 1");
    let cp = st.run(&["audit", "checkpoint"]).ok().json();
    assert_eq!((cp["signer_kind"].as_str(), cp["ca_name"].as_str()), (Some("audit-key"), Some("station-audit")));
    assert!(cp["signed"].as_str().unwrap().ends_with("\naudit-key=station-audit\n"), "{cp}");
    // The engine's periodic checkpoint (checkpoint_every = 1) is the audit key's too.
    let (csr, _) = openssl_csr(st.path(), "d1", "ec:P-256", "/CN=AK-1", &[]);
    st.issue(&csr, "d1.pem", &[]).ok();
    assert_eq!(checkpoint_kinds(&st), "ca:ca-1 ca:ca-1 audit-key:station-audit audit-key:station-audit");

    // A CA rotation changes nothing for the audit evidence.
    st.run(&["ca", "rotate", "--name", "ca-2"]).ok();
    st.run(&["ca", "activate", "ca-2"]).ok();
    st.run(&["audit", "checkpoint"]).ok();
    let v = st.run(&["audit", "verify"]).ok().json();
    let signers = v["checkpoint_signers"].as_array().unwrap();
    assert_eq!(signers.len(), 2, "{v}");
    assert_eq!((signers[0]["kind"].as_str(), signers[0]["name"].as_str()), (Some("ca"), Some("ca-1")));
    assert_eq!((signers[0]["checkpoints"].as_i64(), signers[1]["checkpoints"].as_i64()), (Some(2), Some(3)));
    assert_eq!(signers[1]["kind"], "audit-key");
    assert_eq!(signers[1]["fingerprint"], made["fingerprint"], "named with its certificate's fingerprint");
    let text = station(&["-c", st.config().to_str().unwrap(), "audit", "verify"]).stdout;
    assert!(text.contains("audit key station-audit") && text.contains("CA ca-1"), "{text}");

    // openssl verifies an audit-key checkpoint with the audit certificate's public key alone.
    let db = st.file("station.db");
    std::fs::write(st.file("cp.txt"), sqlite(&db, "SELECT signed FROM checkpoints WHERE id = 3") + "\n").unwrap();
    let sig = hex::decode(sqlite(&db, "SELECT signature FROM checkpoints WHERE id = 3")).unwrap();
    std::fs::write(st.file("cp.sig"), sig).unwrap();
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        audit_pem.to_str().unwrap(),
        "-pubkey",
        "-noout",
        "-out",
        st.file("pub.pem").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        st.file("pub.pem").to_str().unwrap(),
        "-signature",
        st.file("cp.sig").to_str().unwrap(),
        st.file("cp.txt").to_str().unwrap(),
    ]);
    assert!(ok && out.contains("Verified OK"), "{out}");

    // A checkpoint that claims the audit key but carries a CA's signature is forged.
    sqlite(&db, "UPDATE checkpoints SET signature = (SELECT signature FROM checkpoints WHERE id = 1) WHERE id = 4");
    let r = st.run(&["audit", "verify"]);
    assert_eq!(r.status, 9);
    let v = r.json();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "checkpoint-signature" && f["subject"] == "checkpoint 4"),
        "{v}"
    );
}

#[test]
fn a_configured_audit_key_that_is_missing_stops_the_start_with_its_code_and_hint() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    set_audit(&st, "key = \"not-made\"");
    st.run(&["audit", "checkpoint"]).fails_with("audit-key-missing", 4);
    let (csr, _) = openssl_csr(st.path(), "d1", "ec:P-256", "/CN=AK-2", &[]);
    let r = st.issue(&csr, "d1.pem", &[]);
    r.fails_with("audit-key-missing", 4);
    assert!(r.json()["error"]["hint"].as_str().unwrap().contains("station audit key create --label not-made"));
    assert_eq!(st.issuance_count(), 0, "nothing is issued without the configured audit key");
    // Made now ([audit] key is the default label): the same commands go through.
    assert_eq!(st.run(&["audit", "key", "create"]).ok().json()["label"], "not-made");
    st.run(&["audit", "key", "create", "--label", "not-made"]).fails_with("audit-key-exists", 2);
    st.issue(&csr, "d1.pem", &[]).ok();
    st.run(&["audit", "checkpoint"]).ok();
    st.edit_config(|t| t.replace("key = \"not-made\"", "key = \"bad label\""));
    st.run(&["audit", "checkpoint"]).fails_with("config-field-invalid", 3);
}

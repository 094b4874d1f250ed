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

/// The marker in README.md above the openssl recipe this file runs.
const RECIPE_MARK: &str = "<!-- tests/audit_key.rs runs the recipe below as it stands -->";

/// The README's openssl recipe for a manifest, exactly as documented.
fn readme_recipe() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find(RECIPE_MARK).expect("the recipe's marker in README.md")..];
    let start = after.find("```sh\n").unwrap() + "```sh\n".len();
    after[start..start + after[start..].find("\n```").unwrap()].to_string()
}

/// Runs the README's recipe with bash in a fresh folder holding `M.json` and `ca.pem`: (success, output).
fn run_recipe(st: &TestStation, name: &str, manifest: &str, ca_pem: &std::path::Path) -> (bool, String) {
    let dir = st.file(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("M.json"), manifest).unwrap();
    std::fs::copy(ca_pem, dir.join("ca.pem")).unwrap();
    std::fs::write(dir.join("recipe.sh"), readme_recipe()).unwrap();
    let o = std::process::Command::new("bash").arg("-e").arg("recipe.sh").current_dir(&dir).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn issue_devices(st: &TestStation, serials: &[&str]) -> Vec<String> {
    serials
        .iter()
        .map(|s| {
            let (csr, _) = openssl_csr(st.path(), s, "ec:P-256", &format!("/CN={s}"), &[]);
            st.issue(&csr, &format!("{s}.pem"), &["--bench", "bench-7"]).ok();
            let pem = std::fs::read(st.file(&format!("{s}.pem"))).unwrap();
            station::pki::sha256_hex(pem::parse_many(&pem).unwrap()[0].contents())
        })
        .collect()
}

/// Re-encodes the manifest's payload after `edit`, keeping its signature.
fn tamper_payload(text: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut jws: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(jws["payload"].as_str().unwrap()).unwrap()).unwrap();
    edit(&mut payload);
    jws["payload"] = b64.encode(payload.to_string()).into();
    jws.to_string()
}

fn verify_manifest(st: &TestStation, path: &std::path::Path, ca: Option<&std::path::Path>) -> Run {
    let mut args = vec!["--json", "audit", "manifest", "verify", path.to_str().unwrap()];
    if let Some(ca) = ca {
        args.extend(["--ca", ca.to_str().unwrap()]);
        // A customer has no station: no config, only the file and the CA.
        return station(&args);
    }
    st.run(&args[1..])
}

#[test]
fn a_manifest_verifies_with_the_station_and_with_openssl_alone_and_any_tampering_is_refused_by_both() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let ids = issue_devices(&st, &["M-1", "M-2", "M-3"]);
    let m = st.file("M.json");
    let ms = m.to_str().unwrap();
    st.run(&["audit", "manifest", "--since", "2000-01-01", "--out", ms]).fails_with("manifest-needs-audit-key", 2);
    st.run(&["audit", "key", "create"]).ok();
    set_audit(&st, "key = \"station-audit\"");
    st.run(&["audit", "manifest", "--out", ms]).fails_with("manifest-selection-invalid", 2);
    st.run(&["audit", "manifest", "--since", "yesterday", "--out", ms]).fails_with("manifest-selection-invalid", 2);

    // By serials: exactly those; a serial without a certificate is refused.
    std::fs::write(st.file("serials.txt"), "# order 17\nM-3\nM-1\n").unwrap();
    let r = st.run(&["audit", "manifest", "--serials", st.file("serials.txt").to_str().unwrap(), "--out", ms]).ok();
    assert_eq!(r.json()["count"], 2);
    std::fs::write(st.file("serials.txt"), "M-1\nM-404\n").unwrap();
    st.run(&["audit", "manifest", "--serials", st.file("serials.txt").to_str().unwrap(), "--out", ms])
        .fails_with("manifest-selection-invalid", 2);

    // By bench and date: all three.
    let r = st.run(&["audit", "manifest", "--bench", "bench-7", "--since", "2000-01-01", "--out", ms]).ok();
    assert_eq!((r.json()["count"].as_i64(), r.json()["alg"].as_str()), (Some(3), Some("ES256")));
    let v = verify_manifest(&st, &m, None).ok().json();
    assert_eq!(v["count"], 3);
    let v = verify_manifest(&st, &m, Some(&ca)).ok().json();
    assert_eq!((v["count"].as_i64(), v["station"].as_str()), (Some(3), Some("test-station")));
    let text = std::fs::read_to_string(&m).unwrap();
    let payload = {
        use base64::Engine as _;
        let jws: serde_json::Value = serde_json::from_str(&text).unwrap();
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jws["payload"].as_str().unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&b).unwrap()
    };
    let listed: Vec<&str> =
        payload["devices"].as_array().unwrap().iter().map(|d| d["certificate_sha256"].as_str().unwrap()).collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>(), "each device's certificate, by its SHA-256");
    let ca_fp = sqlite(&st.file("station.db"), "SELECT fingerprint FROM cas WHERE name = 'ca-1'");
    assert!(
        payload["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["ca_fingerprint"] == ca_fp.as_str() && d["bench"] == "bench-7")
    );

    // The README's recipe: openssl, jq and coreutils only.
    let (ok, out) = run_recipe(&st, "recipe-ok", &text, &ca);
    assert!(ok && out.contains("Verified OK") && out.contains("audit.pem: OK"), "{out}");

    // A payload with one serial changed, and a signature with one character changed: refused by both.
    let forged = tamper_payload(&text, |p| p["devices"][1]["serial"] = "M-999".into());
    let mut jws: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut sig: Vec<char> = jws["signature"].as_str().unwrap().chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    jws["signature"] = sig.into_iter().collect::<String>().into();
    for (name, bad) in [("payload", forged), ("signature", jws.to_string())] {
        let path = st.file(&format!("tampered-{name}.json"));
        std::fs::write(&path, &bad).unwrap();
        verify_manifest(&st, &path, None).fails_with("manifest-signature-invalid", 9);
        verify_manifest(&st, &path, Some(&ca)).fails_with("manifest-signature-invalid", 9);
        let (ok, out) = run_recipe(&st, &format!("recipe-{name}"), &bad, &ca);
        assert!(!ok && !out.contains("Verified OK"), "openssl accepted a tampered {name}: {out}");
    }

    // Another CA does not vouch for this audit certificate.
    let other = TestStation::new();
    let other_ca = other.create_ca("other", "ec-p256");
    verify_manifest(&st, &m, Some(&other_ca)).fails_with("manifest-untrusted", 9);
    let (ok, _) = run_recipe(&st, "recipe-other-ca", &text, &other_ca);
    assert!(!ok, "openssl verify refuses the audit certificate under another CA");
}

/// ES384 and RS256: the r‖s of a P-384 key and an RSA signature, through the station and the README's recipe.
#[test]
fn manifests_signed_by_p384_and_rsa_audit_keys_verify_with_the_station_and_openssl() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p384");
    issue_devices(&st, &["K-1"]);
    set_audit(&st, "key = \"audit-p384\"");
    for (label, kt, alg) in [("audit-p384", "ec-p384", "ES384"), ("audit-rsa", "rsa-2048", "RS256")] {
        st.edit_config(|t| t.replace("key = \"audit-p384\"", &format!("key = \"{label}\"")));
        st.run(&["audit", "key", "create", "--label", label, "--key-type", kt]).ok();
        let m = st.file(&format!("{label}.json"));
        let r = st.run(&["audit", "manifest", "--since", "2000-01-01", "--out", m.to_str().unwrap()]).ok();
        assert_eq!(r.json()["alg"], alg);
        verify_manifest(&st, &m, Some(&ca)).ok();
        let text = std::fs::read_to_string(&m).unwrap();
        let (ok, out) = run_recipe(&st, &format!("recipe-{label}"), &text, &ca);
        assert!(ok && out.contains("Verified OK"), "{alg}: {out}");
        let forged = tamper_payload(&text, |p| p["devices"][0]["bench"] = "elsewhere".into());
        let (ok, _) = run_recipe(&st, &format!("recipe-{label}-forged"), &forged, &ca);
        assert!(!ok, "{alg}: openssl accepted a forged payload");
    }
}

//! Issue 10: the same end-to-end checks on every PKCS#11 token that runs here: SoftHSM2, tpm2-pkcs11 over
//! swtpm, the opencryptoki soft token (which has no EC), and NSS softokn (which needs C_Initialize
//! arguments, `[hsm] init_args`). Keys are read back independently with pkcs11-tool (NSS: certutil, which
//! lists them but cannot show their attributes), and every certificate is verified by
//! `openssl verify -x509_strict`.

mod common;
use common::bench::PtyPair;
use common::sim::{chain_files, finish, verify_chains};
use common::tokens::{Kind, TokenStation, private_keys};
use common::*;
use std::path::Path;

const ALL_TYPES: [&str; 5] = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"];

/// What each token offers, as measured (docs/hsm.md): the station must find exactly this.
fn offered(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::SoftHsm | Kind::Nss => &ALL_TYPES,
        Kind::Tpm2 => &["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"],
        Kind::Ock => &["rsa-2048", "rsa-3072", "rsa-4096"],
    }
}

fn signature_algorithm(kt: &str) -> &'static str {
    match kt {
        "ec-p256" => "ecdsa-with-SHA256",
        "ec-p384" => "ecdsa-with-SHA384",
        _ => "sha256WithRSAEncryption",
    }
}

fn ca_create_for_every_key_type_the_token_offers(kind: Kind) {
    let ts = TokenStation::new(kind);
    let status = ts.run(&["hsm", "status"]).ok().json();
    let usable: Vec<String> = status["mechanisms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["generate"].is_string() && p["sign"].is_string())
        .map(|p| p["key_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(usable, offered(kind), "{status}");
    for kt in ALL_TYPES {
        let name = format!("ca-{kt}");
        let r = ts.run(&["ca", "create", "--name", &name, "--key-type", kt]);
        if !offered(kind).contains(&kt) {
            r.fails_with("hsm-mechanism-missing", 4);
            continue;
        }
        r.ok();
        let pem = ts.ca_pem(&name);
        let p = pem.to_str().unwrap();
        let (ok, msg) = openssl(&["verify", "-x509_strict", "-CAfile", p, p]);
        assert!(ok, "{kt}: {msg}");
        assert!(cert_text(&pem).contains(&format!("Signature Algorithm: {}", signature_algorithm(kt))), "{kt}");
    }
    let mut wanted: Vec<String> = offered(kind).iter().map(|kt| format!("ca-{kt}")).collect();
    wanted.sort();
    // As the station reads them back.
    let status = ts.run(&["hsm", "status"]).ok().json();
    for k in status["keys"].as_array().unwrap() {
        assert_eq!(k["locked_down"], true, "{k}");
    }
    if kind == Kind::Nss {
        // pkcs11-tool cannot pass init_args; NSS's own certutil lists the keys (not their attributes).
        let listing = nss_keys(&ts);
        let mut names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
        names.retain(|n| n.starts_with("ca-"));
        names.sort();
        assert_eq!(names, wanted, "{listing}");
        return;
    }
    // Independently: every key the station made is sign-only, sensitive and never extractable, and a
    // refused key type left nothing behind.
    let keys = private_keys(&ts.pkcs11_tool(&["--list-objects", "--type", "privkey"]));
    let mut labels: Vec<&str> = keys.iter().map(|(l, _, _)| l.as_str()).collect();
    labels.sort();
    assert_eq!(labels, wanted, "{keys:?}");
    for (label, usage, access) in &keys {
        assert!(usage.contains("sign"), "{label}: {usage}");
        for no in ["decrypt", "unwrap", "derive"] {
            assert!(!usage.contains(no), "{label} can {no}: {usage}");
        }
        let flags: Vec<&str> = access.split(',').map(str::trim).collect();
        assert!(flags.contains(&"sensitive") && flags.contains(&"never extractable"), "{label}: {access}");
        assert!(!flags.contains(&"extractable"), "{label}: {access}");
    }
}

/// `certutil -K` on the NSS database of a station: one line per private key, its name last.
fn nss_keys(ts: &TokenStation) -> String {
    let args = &ts.token.as_ref().unwrap().facts["INIT_ARGS"];
    let db = args.split('\'').nth(1).unwrap();
    let pw = ts.file("nss-pw");
    std::fs::write(&pw, format!("{}\n", ts.user_pin())).unwrap();
    let out =
        std::process::Command::new("certutil").args(["-K", "-d", db, "-f", pw.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "certutil -K: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn issue_and_serve_give_chains_that_verify_and_the_audit_passes(kind: Kind) {
    let ts = TokenStation::new(kind);
    let ca_type = if kind == Kind::Ock { "rsa-2048" } else { "ec-p256" };
    let ca = ts.create_ca("ca-1", ca_type);
    // `station issue` from an openssl CSR.
    let (csr, _key) = openssl_csr(ts.path(), "dev", "ec:P-256", "/CN=TOK-CLI-1", &[]);
    ts.issue(&csr, "dev.pem", &[]).ok();
    let (ok, msg) =
        openssl(&["verify", "-x509_strict", "-CAfile", ca.to_str().unwrap(), ts.file("dev.pem").to_str().unwrap()]);
    assert!(ok, "{msg}");
    // `station serve` with two benches of simulated devices.
    let pairs: Vec<PtyPair> = (0..2).map(|b| PtyPair::new(ts.path(), &format!("bench-{b}"))).collect();
    let benches: Vec<(&str, &Path)> =
        vec![("bench-0", pairs[0].station_end.as_path()), ("bench-1", pairs[1].station_end.as_path())];
    let daemon = common::bench::Daemon::start(&ts, &benches, &[]);
    let out = ts.file("devices");
    let sims: Vec<_> = (0..2)
        .map(|b| {
            let from = (b * 15 + 1).to_string();
            common::sim::spawn(&pairs[b].device_end, &ca, &out, &["--count", "15", "--serial-from", &from])
        })
        .collect();
    for s in sims {
        let (code, v) = finish(s);
        assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(15)), "{v}");
    }
    assert_eq!(daemon.stop(), 0);
    let files = chain_files(&out);
    assert_eq!(files.len(), 30);
    verify_chains(&ca, &files);
    let db = ts.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances WHERE state = 'confirmed'"), "30");
    assert_eq!(ts.issuance_count(), 31);
    // The audit re-checks the chain, the signed checkpoint (made by this token at shutdown) and the keys.
    let audit = ts.run(&["audit", "verify"]).ok().json();
    assert!(audit["checkpoints"].as_u64().unwrap() >= 1, "{audit}");
}

macro_rules! token_matrix {
    ($($token:ident => $kind:expr),* $(,)?) => {$(
        mod $token {
            use super::*;

            #[test]
            fn ca_create_makes_a_sign_only_key_for_every_key_type_the_token_offers_and_refuses_the_others() {
                ca_create_for_every_key_type_the_token_offers($kind);
            }

            #[test]
            fn issue_and_serve_give_chains_openssl_verifies_strictly_and_the_audit_passes() {
                issue_and_serve_give_chains_that_verify_and_the_audit_passes($kind);
            }
        }
    )*};
}

token_matrix!(softhsm => Kind::SoftHsm, tpm2 => Kind::Tpm2, opencryptoki => Kind::Ock, nss => Kind::Nss);

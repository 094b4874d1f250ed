//! Issue 15: `station audit reconcile --aws` against the AWS IoT emulator. Devices "connect" by having their
//! certificates registered under the CA with awscli (what JITP/JITR does at a first connection); a certificate the
//! CA key signed outside the station's ledger is made by the station itself against a copy of its ledger, so it is
//! a real signature by the HSM key that the real ledger does not have.

mod aws_moto;
mod common;

use aws_moto::*;
use common::pg::Pg;
use common::*;
use std::path::{Path, PathBuf};

const REGION: &str = "eu-west-1";

/// The leaf of a chain file, alone (what a device presents and AWS registers).
fn leaf(chain: &Path) -> PathBuf {
    let out = chain.with_extension("leaf.pem");
    let (ok, msg) = openssl(&["x509", "-in", chain.to_str().unwrap(), "-out", out.to_str().unwrap()]);
    assert!(ok, "{msg}");
    out
}

fn der_sha256(pem: &Path) -> String {
    let der = pem.with_extension("der");
    let (ok, msg) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-outform", "DER", "-out", der.to_str().unwrap()]);
    assert!(ok, "{msg}");
    let (ok, out) = openssl(&["dgst", "-sha256", "-r", der.to_str().unwrap()]);
    assert!(ok, "{out}");
    out.split_whitespace().next().unwrap().to_string()
}

/// Issues a device `serial` on `bench`; returns the leaf's path.
fn issue(st: &TestStation, serial: &str, bench: &str, extra: &[&str]) -> PathBuf {
    let name = format!("{serial}-{}", st.issuance_count());
    let (csr, _) = openssl_csr(st.path(), &name, "ec:P-256", &format!("/CN={serial}"), &[]);
    let mut args = vec!["--bench", bench];
    args.extend_from_slice(extra);
    st.issue(&csr, &format!("{name}.pem"), &args).ok();
    leaf(&st.file(&format!("{name}.pem")))
}

/// What JITP does at a device's first connection: the certificate is registered under the CA.
fn connect(moto: &Moto, ca_pem: &Path, leaf: &Path) -> String {
    let r = moto.aws(
        REGION,
        &[
            "register-certificate",
            "--certificate-pem",
            &format!("file://{}", leaf.display()),
            "--ca-certificate-pem",
            &format!("file://{}", ca_pem.display()),
            "--status",
            "ACTIVE",
        ],
    );
    r["certificateId"].as_str().unwrap().to_string()
}

fn reconcile(st: &TestStation) -> Run {
    run(st, &["audit", "reconcile", "--aws"])
}

fn group<'a>(r: &'a serde_json::Value, bench: &str) -> &'a serde_json::Value {
    r["reconciliation"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["bench"] == bench)
        .unwrap_or_else(|| panic!("no group for bench {bench}: {r}"))
}

fn listed(r: &serde_json::Value, what: &str) -> Vec<String> {
    r["reconciliation"][what]["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["certificate_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn strays_revoked_and_superseded_certificates_are_found_and_connected_devices_counted() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let ca_pem = st.ca_pem("ca-1");
    let d: Vec<PathBuf> =
        ["RC-0001", "RC-0002", "RC-0003", "RC-0004"].iter().map(|s| issue(&st, s, "b1", &[])).collect();

    // Nothing has connected yet: clean, 0 of 4 connected.
    let r = reconcile(&st);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let r = r.json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!((group(&r, "b1")["issued"].as_u64(), group(&r, "b1")["connected"].as_u64()), (Some(4), Some(0)));

    // Three devices connect: still clean, 3 of 4 connected.
    let ids: Vec<String> = d[..3].iter().map(|p| connect(&moto, &ca_pem, p)).collect();
    for (id, p) in ids.iter().zip(&d) {
        assert_eq!(*id, der_sha256(p), "AWS's certificate ID is the SHA-256 of the DER, as the ledger's");
    }
    let r = reconcile(&st).ok().json();
    assert_eq!(group(&r, "b1")["connected"], 3, "{r}");
    assert_eq!(r["reconciliation"]["pairs"][0]["listed"], 3);

    // The security team revokes RC-0002 in AWS; RC-0003 is re-issued (its old certificate stays ACTIVE in AWS);
    // and the CA key signs a certificate the ledger does not have (the station run against a copy of its ledger).
    moto.aws(REGION, &["update-certificate", "--certificate-id", &ids[1], "--new-status", "REVOKED"]);
    issue(&st, "RC-0003", "b2", &["--reissue", "--reason", "flash replaced"]);
    sqlite(&st.file("station.db"), &format!(".backup {}", st.file("rogue.db").display()));
    let rogue_cfg = st.file("rogue.toml");
    let cfg = std::fs::read_to_string(st.config()).unwrap();
    assert!(cfg.contains("path = \"station.db\""), "{cfg}");
    std::fs::write(&rogue_cfg, cfg.replace("path = \"station.db\"", "path = \"rogue.db\"")).unwrap();
    let (csr, _) = openssl_csr(st.path(), "rogue", "ec:P-256", "/CN=RC-9999", &[]);
    let rogue_chain = st.file("rogue-chain.pem");
    station(&[
        "-c",
        rogue_cfg.to_str().unwrap(),
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        rogue_chain.to_str().unwrap(),
    ])
    .ok();
    let (ok, msg) = openssl(&["verify", "-CAfile", ca_pem.to_str().unwrap(), rogue_chain.to_str().unwrap()]);
    assert!(ok, "the stray is a real certificate of the CA: {msg}");
    let rogue = connect(&moto, &ca_pem, &leaf(&rogue_chain));

    let run = reconcile(&st);
    assert_eq!(run.status, 9, "differences are an audit failure: {}\n{}", run.stdout, run.stderr);
    let r = run.json();
    assert_eq!(
        r["codes"],
        serde_json::json!(["stray-certificate", "certificate-inactive-in-aws", "superseded-active-in-aws"])
    );
    assert_eq!(listed(&r, "stray"), [rogue.as_str()]);
    assert!(r["reconciliation"]["stray"]["listed"][0]["serial"].is_null());
    assert_eq!(
        r["reconciliation"]["stray"]["listed"][0]["subject"], "C=DE, O=Station Demo, CN=RC-9999, serialNumber=RC-9999",
        "what the key signed"
    );
    assert_eq!(listed(&r, "inactive_in_aws"), [ids[1].clone()]);
    assert_eq!(r["reconciliation"]["inactive_in_aws"]["listed"][0]["serial"], "RC-0002");
    assert_eq!(r["reconciliation"]["inactive_in_aws"]["listed"][0]["aws_status"], "REVOKED");
    assert_eq!(listed(&r, "superseded_active"), [ids[2].clone()]);
    assert_eq!(r["reconciliation"]["superseded_active"]["listed"][0]["serial"], "RC-0003");
    // Current issuances: RC-0001, RC-0002 (connected; revoked since), RC-0004 on b1; the new RC-0003 on b2.
    assert_eq!((group(&r, "b1")["issued"].as_u64(), group(&r, "b1")["connected"].as_u64()), (Some(3), Some(2)));
    assert_eq!((group(&r, "b2")["issued"].as_u64(), group(&r, "b2")["connected"].as_u64()), (Some(1), Some(0)));
    // The independent client sees the same certificates under the CA.
    let id = ca_id(&st, "ca-1");
    let aws = moto.aws(REGION, &["list-certificates-by-ca", "--ca-certificate-id", &id]);
    assert_eq!(
        aws["certificates"].as_array().unwrap().len() as u64,
        r["reconciliation"]["pairs"][0]["listed"].as_u64().unwrap()
    );

    let text = run_text(&st, &["audit", "reconcile", "--aws"]);
    assert_eq!(text.status, 9);
    assert!(text.stdout.contains(&format!("{REGION} ca-1 {rogue} ACTIVE")), "{}", text.stdout);
    assert!(
        text.stdout.contains("[stray-certificate]") && text.stdout.contains("result: DIFFERENCES"),
        "{}",
        text.stdout
    );
}

#[test]
fn every_page_is_read_and_an_unreachable_region_is_not_a_pass() {
    let moto = Moto::start();
    let st = aws_station(&moto.url, &[REGION], "");
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    let ca_pem = st.ca_pem("ca-1");
    // 260 certificates under the CA in AWS (more than one 250-certificate page), none from the ledger: made and
    // registered in one Python process (boto3 from the emulator's venv) with another key, which AWS does not
    // check when a certificate is registered with its CA.
    let script = r#"
import sys, datetime, boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
url, region, ca_path = sys.argv[1:4]
ca_pem = open(ca_path).read()
issuer = x509.load_pem_x509_certificate(ca_pem.encode()).subject
key = ec.generate_private_key(ec.SECP256R1())
iot = boto3.client("iot", endpoint_url=url, region_name=region)
now = datetime.datetime.now(datetime.timezone.utc)
for i in range(260):
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, f"STRAY-{i:04}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    iot.register_certificate(certificatePem=pem, caCertificatePem=ca_pem, status="ACTIVE")
print("registered")
"#;
    let mut cmd = std::process::Command::new(venv_python());
    cmd.args(["-c", script, &moto.url, REGION, ca_pem.to_str().unwrap()]);
    for (k, v) in aws_env(st.path()) {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = moto.calls(REGION, "ListCertificatesByCA");
    let r = reconcile(&st);
    assert_eq!(r.status, 9, "{}", r.stderr);
    let r = r.json();
    assert_eq!(r["reconciliation"]["pairs"][0]["listed"], 260, "{}", r["reconciliation"]["pairs"]);
    assert_eq!(r["reconciliation"]["stray"]["count"], 260);
    assert_eq!(moto.calls(REGION, "ListCertificatesByCA") - before, 2, "two pages of at most 250");

    // AWS unreachable in one region: the region is reported, not passed (exit 8 when nothing else was found).
    let st2 = aws_station(&moto.url, &[REGION], "");
    st2.edit_config(|t| t.replace(&moto.url, "http://127.0.0.1:9").replace("[aws]", "[aws]\nmax_attempts = 1"));
    let r = reconcile(&st2);
    assert_eq!(r.status, 8, "{}\n{}", r.stdout, r.stderr);
    let r = r.json();
    assert_eq!(r["ok"], false);
    assert_eq!(r["reconciliation"]["pairs"][0]["error"]["code"], "aws-unreachable", "{r}");
}

/// A station with `[aws]` at `endpoint` and its own CA, in the registry.
fn fleet_station(id: &str, pg: &Pg, endpoint: &str) -> TestStation {
    let st = TestStation::with_id(id);
    st.create_ca(&format!("{id}-ca"), "ec-p256");
    st.edit_config(|t| {
        format!(
            "{t}\n[aws]\nregions = [{{ name = \"{REGION}\" }}]\nendpoint_url = \"{endpoint}\"\nrole_arn = \"{ROLE}\"\n"
        )
    });
    st.join_registry(pg, "");
    st
}

#[test]
fn with_a_registry_every_stations_certificates_are_reconciled() {
    let moto = Moto::start();
    let pg = Pg::start();
    let a = fleet_station("line-a", &pg, &moto.url);
    let b = fleet_station("line-b", &pg, &moto.url);
    a.run(&["registry", "init"]).ok();
    let mut connected = Vec::new();
    for (st, id) in [(&a, "line-a"), (&b, "line-b")] {
        let ca = &format!("{id}-ca");
        run(st, &["ca", "register", "--name", ca]).ok();
        let ca_pem = st.ca_pem(ca);
        for i in 0..3 {
            let leaf = issue(st, &format!("{}-{i:03}", id.to_uppercase()), "b1", &[]);
            if i < 2 {
                connected.push(connect(&moto, &ca_pem, &leaf));
            }
        }
    }
    // line-a re-issues its connected LINE-A-000 on bench b2; the old certificate stays ACTIVE in AWS.
    issue(&a, "LINE-A-000", "b2", &["--reissue", "--reason", "flash replaced"]);
    for st in [&a, &b] {
        st.run(&["registry", "push"]).ok();
    }
    // line-b's CA key signs outside line-b's ledger.
    sqlite(&b.file("station.db"), &format!(".backup {}", b.file("rogue.db").display()));
    let cfg = std::fs::read_to_string(b.config()).unwrap();
    std::fs::write(b.file("rogue.toml"), cfg.replace("path = \"station.db\"", "path = \"rogue.db\"")).unwrap();
    let (csr, _) = openssl_csr(b.path(), "rogue", "ec:P-256", "/CN=ROGUE-1", &[]);
    let chain = b.file("rogue-chain.pem");
    station(&[
        "-c",
        b.file("rogue.toml").to_str().unwrap(),
        "issue",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        chain.to_str().unwrap(),
    ])
    .ok();
    let rogue = connect(&moto, &b.ca_pem("line-b-ca"), &leaf(&chain));

    // Asked from line-a, with the registry: both stations' CAs and certificates.
    let r = reconcile(&a);
    assert_eq!(r.status, 9, "{}\n{}", r.stdout, r.stderr);
    let r = r.json();
    assert!(r["reconciliation"]["source"].as_str().unwrap().starts_with("registry "), "{r}");
    let pairs = r["reconciliation"]["pairs"].as_array().unwrap();
    let cas: Vec<&str> = pairs.iter().map(|p| p["ca"].as_str().unwrap()).collect();
    assert_eq!(cas, ["line-a-ca", "line-b-ca"]);
    assert_eq!((pairs[0]["listed"].as_u64(), pairs[0]["stray"].as_u64()), (Some(2), Some(0)));
    assert_eq!((pairs[1]["listed"].as_u64(), pairs[1]["stray"].as_u64()), (Some(3), Some(1)));
    assert_eq!(listed(&r, "stray"), [rogue]);
    assert_eq!(listed(&r, "superseded_active"), [connected[0].as_str()]);
    assert_eq!(r["reconciliation"]["superseded_active"]["listed"][0]["station"], "line-a");
    assert_eq!(r["codes"], serde_json::json!(["stray-certificate", "superseded-active-in-aws"]));
    let groups = r["reconciliation"]["groups"].as_array().unwrap();
    let counts = |station: &str, bench: &str| {
        let g = groups
            .iter()
            .find(|g| g["station"] == station && g["bench"] == bench)
            .unwrap_or_else(|| panic!("{station} {bench}: {r}"));
        (g["issued"].as_u64().unwrap(), g["connected"].as_u64().unwrap())
    };
    assert_eq!(counts("line-a", "b1"), (2, 1), "the re-issued serial counts once, on its new bench");
    assert_eq!(counts("line-a", "b2"), (1, 0));
    assert_eq!(counts("line-b", "b1"), (3, 2));
    // Without the registry, line-a's ledger alone: only its own CA; its superseded certificate, no stray.
    a.edit_config(|t| t[..t.find("\n[registry]").unwrap()].to_string());
    let out = reconcile(&a);
    assert_eq!(out.status, 9);
    let r = out.json();
    assert!(r["reconciliation"]["source"].as_str().unwrap().starts_with("ledger "), "{r}");
    assert_eq!(r["reconciliation"]["pairs"].as_array().unwrap().len(), 1);
    assert_eq!(r["codes"], serde_json::json!(["superseded-active-in-aws"]));
}

//! Issue 3, in process: the engine under concurrency, station serial allocation, and a crash.

mod common;
use common::*;
use station::config::Config;
use station::issue::{Engine, IssueRequest, Outcome};
use std::collections::BTreeSet;
use std::sync::Arc;

fn csr(cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![]).unwrap();
    let mut params = params;
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn engine_for(st: &TestStation, policy: &str) -> Arc<Engine> {
    st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| t.replace("serial_source = \"device\"", policy));
    let cfg = Config::load(&st.config()).unwrap();
    let hsm = open_hsm(&cfg);
    Arc::new(Engine::open(&cfg, hsm).unwrap())
}

fn request(csr: Vec<u8>) -> IssueRequest {
    IssueRequest { csr, bench: "bench-1".into(), ..Default::default() }
}

#[test]
fn station_allocation_is_gapless_under_concurrency() {
    let st = TestStation::new();
    let engine = engine_for(&st, "serial_source = \"station\"");
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let e = engine.clone();
            std::thread::spawn(move || {
                (0..25).map(|_| e.issue(&request(csr("ignored"))).unwrap().serial).collect::<Vec<_>>()
            })
        })
        .collect();
    let serials: BTreeSet<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    engine.close();
    let expected: BTreeSet<String> = (1..=400).map(|n| format!("SN-{n:06}")).collect();
    assert_eq!(serials, expected);
    assert_eq!(st.issuance_count(), 400);
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn a_released_or_abandoned_reservation_goes_to_the_next_device() {
    let st = TestStation::new();
    let engine = engine_for(&st, "serial_source = \"station\"");
    // A device said HELLO, got SN-000001, and vanished: its reservation is released.
    let vanished = engine.reserve().unwrap();
    assert_eq!(vanished.serial, "SN-000001");
    engine.writer().release(vanished.number);
    assert_eq!(engine.issue(&request(csr("x"))).unwrap().serial, "SN-000001");
    // A reservation held when the station stops (a crash) is reused after restart.
    let held = engine.reserve().unwrap();
    assert_eq!(held.serial, "SN-000002");
    engine.close();
    drop(engine);
    let cfg = Config::load(&st.config()).unwrap();
    let engine = Engine::open(&cfg, open_hsm(&cfg)).unwrap();
    assert_eq!(engine.issue(&request(csr("y"))).unwrap().serial, "SN-000002");
    // The same key again is the same device: its certificate, not a new serial.
    let again = csr("z");
    let first = engine.issue(&request(again.clone())).unwrap();
    let second = engine.issue(&request(again)).unwrap();
    assert_eq!((first.serial.as_str(), second.outcome), ("SN-000003", Outcome::Repeat));
    assert_eq!(first.chain_pem, second.chain_pem);
    engine.close();
}

#[test]
fn an_exhausted_serial_range_is_a_clear_error() {
    let st = TestStation::new();
    let engine = engine_for(&st, "serial_source = \"station\"\nserial_last = 3");
    for _ in 0..3 {
        engine.issue(&request(csr("x"))).unwrap();
    }
    let err = engine.issue(&request(csr("x"))).unwrap_err();
    assert_eq!(station::error::Coded::code(&err), "serial-range-exhausted");
    engine.close();
    assert_eq!(st.issuance_count(), 3);
}

#[test]
fn many_racing_requests_for_one_serial_yield_one_issuance_and_identical_bytes() {
    let st = TestStation::new();
    let engine = engine_for(&st, "serial_source = \"device\"");
    let one = csr("DEV-RACE");
    let results: Vec<_> = (0..32)
        .map(|_| {
            let (e, c) = (engine.clone(), one.clone());
            std::thread::spawn(move || e.issue(&request(c)).unwrap())
        })
        .map(|t| t.join().unwrap())
        .collect();
    engine.close();
    assert_eq!(results.iter().filter(|r| r.outcome == Outcome::New).count(), 1);
    assert!(results.iter().all(|r| r.chain_pem == results[0].chain_pem));
    assert_eq!(st.issuance_count(), 1);
}

/// The child half of the crash test: issues in a loop from four threads, writing each chain only
/// after `issue` returned. Runs only when the parent sets STATION_CRASH_DIR.
#[test]
#[ignore = "run by killed_issuing_process_leaves_a_verifiable_ledger"]
fn crash_child() {
    let Ok(dir) = std::env::var("STATION_CRASH_DIR") else { return };
    let cfg = Config::load(&std::path::Path::new(&dir).join("station.toml")).unwrap();
    let engine = Arc::new(Engine::open(&cfg, open_hsm(&cfg)).unwrap());
    let out = std::path::Path::new(&dir).join("out");
    std::fs::create_dir_all(&out).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (e, out) = (engine.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let serial = format!("CRASH-{w}-{i:05}");
                    let issued = e.issue(&request(csr(&serial))).unwrap();
                    let tmp = out.join(format!(".{serial}"));
                    std::fs::write(&tmp, &issued.chain_pem).unwrap();
                    std::fs::rename(&tmp, out.join(format!("{serial}.pem"))).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

#[test]
fn killed_issuing_process_leaves_a_verifiable_ledger() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env("STATION_CRASH_DIR", st.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = st.file("out");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0) < 200 {
        assert!(std::time::Instant::now() < deadline, "the child issued too slowly");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, mid-loop
    child.wait().unwrap();
    st.run(&["audit", "verify"]).ok();
    assert_eq!(sqlite(&st.file("station.db"), "PRAGMA integrity_check"), "ok");
    let mut checked = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(serial) = name.strip_suffix(".pem") else { continue };
        let pem = std::fs::read(&path).unwrap();
        let der = pem::parse_many(&pem).unwrap().remove(0).into_contents();
        let id = station::pki::sha256_hex(&der);
        let row = sqlite(&st.file("station.db"), &format!("SELECT cert_id FROM issuances WHERE serial = '{serial}'"));
        assert_eq!(row, id, "{serial}: a chain on disk must have its ledger row");
        checked += 1;
    }
    assert!(checked >= 200, "{checked}");
}

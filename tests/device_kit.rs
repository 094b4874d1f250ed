//! Issue 12: the C device kit (device/c) against the real station. `make -C device/c` builds the kit with its
//! pinned flags (`-std=c99 -Wall -Wextra -Werror -pedantic`); its unit tests run; then the host example `bp-device`
//! (termios + mbedTLS) provisions devices over ptys against `station serve`, and openssl verifies every stored chain.

mod common;
use common::bench::*;
use common::sim::{chain_files, verify_chains};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The kit's build folder, beside the station binary; built once per process. `flock` serialises the parallel test
/// processes of nextest, and make does nothing when nothing changed.
fn kit() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(STATION).parent().expect("a profile folder").join("device-c");
        std::fs::create_dir_all(&out).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("device/c");
        let o = Command::new("flock")
            .arg(out.join(".lock"))
            .arg("make")
            .arg("--no-print-directory")
            .arg("-C")
            .arg(&src)
            .arg(format!("O={}", out.display()))
            .arg("all")
            .output()
            .expect("flock and make are installed (scripts/test.sh installs them)");
        assert!(o.status.success(), "make -C device/c failed:\n{}{}", String::from_utf8_lossy(&o.stdout), {
            String::from_utf8_lossy(&o.stderr)
        });
        out
    })
}

fn bp_device() -> PathBuf {
    kit().join("bp-device")
}

/// A station and its benches. `holds` keeps each device end open in this process for the whole test: when
/// `bp-device` exits (or closes its port to simulate a dropped line) and nothing else holds the device end, socat
/// ends, its /dev/pts numbers go back to the kernel, and the station, which reopens a lost port by its path, could
/// open another test's pty under that number. Tests bind `daemon` last, so that it drops (stops) first.
/// What this cannot prevent: another station on the same machine (say a soak run) whose lost port is reopened by a
/// path that now names one of these ptys. Its answers then reach these devices, which fail (`chain-untrusted`,
/// `serial-missing`): the test fails, it never passes wrongly.
struct Rig {
    daemon: Daemon,
    _holds: Vec<std::fs::File>,
    pairs: Vec<PtyPair>,
    ca: PathBuf,
    st: TestStation,
}

/// A station with `benches` ptys, `serial_source = "station"` when `station_mode`, and `[serve]` lines.
fn rig(benches: usize, station_mode: bool, serve: &str) -> Rig {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| {
        let t = if station_mode { t.replace("serial_source = \"device\"", "serial_source = \"station\"") } else { t };
        format!("{t}\n[serve]\n{serve}\n")
    });
    let pairs: Vec<PtyPair> = (0..benches).map(|i| PtyPair::new(st.path(), &format!("bench-{i}"))).collect();
    let names: Vec<String> = (0..benches).map(|i| format!("bench-{i}")).collect();
    let refs: Vec<(&str, &Path)> =
        names.iter().zip(&pairs).map(|(n, p)| (n.as_str(), p.station_end.as_path())).collect();
    let daemon = Daemon::start(&st, &refs, &[]);
    let holds = pairs
        .iter()
        .map(|p| {
            use std::os::unix::fs::OpenOptionsExt;
            const O_NOCTTY: i32 = 0o400;
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(O_NOCTTY).open(&p.device_end).unwrap()
        })
        .collect();
    Rig { daemon, _holds: holds, pairs, ca, st }
}

fn spawn(port: &Path, ca: &Path, out: &Path, args: &[&str]) -> Child {
    Command::new(bp_device())
        .arg("--port")
        .arg(port)
        .arg("--ca")
        .arg(ca)
        .arg("--out")
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bp-device")
}

/// The exit status, one JSON object per device, and the summary (the last line).
fn finish(child: Child) -> (i32, Vec<serde_json::Value>, serde_json::Value) {
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bp-device JSON ({e}): {l}\n{text}")))
        .collect();
    let summary = lines.pop().unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap_or(-1), lines, summary)
}

fn assert_all_ok(code: i32, devices: &[serde_json::Value], summary: &serde_json::Value, n: u64) {
    assert_eq!((code, summary["devices_ok"].as_u64()), (0, Some(n)), "{summary} {devices:?}");
}

#[test]
fn the_kit_builds_with_the_pinned_flags_and_its_unit_tests_pass() {
    let out = kit();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("device/c");
    let o = Command::new("flock")
        .arg(out.join(".lock"))
        .arg("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(&src)
        .arg(format!("O={}", out.display()))
        .arg("test")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    let frames = text.split("section 7: ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse::<u32>().ok());
    assert!(frames.is_some_and(|n| n >= 19), "every frame of the spec's section 7, byte for byte: {text}");
    assert_eq!(text.matches(", 0 failed").count(), 2, "{text}");
}

#[test]
fn devices_on_three_benches_with_their_own_serials_are_provisioned_and_every_chain_verifies() {
    let Rig { st, ca, pairs, _holds, daemon } = rig(3, false, "");
    let out = st.file("devices");
    let kids: Vec<Child> = (0..3)
        .map(|b| {
            let from = (b * 100 + 1).to_string();
            spawn(&pairs[b].device_end, &ca, &out, &["--count", "8", "--serial-from", &from, "--serial-prefix", "CK-"])
        })
        .collect();
    for k in kids {
        let (code, devices, summary) = finish(k);
        assert_all_ok(code, &devices, &summary, 8);
        let retried: Vec<_> = devices.iter().filter(|d| d["failed_sessions"] != 0).collect();
        assert!(retried.is_empty(), "a clean line needs no retry: {retried:?}");
    }
    assert_eq!(daemon.stop(), 0);
    let files = chain_files(&out);
    assert_eq!(files.len(), 24);
    verify_chains(&ca, &files);
    for f in &files {
        let key = f.with_file_name("deviceCert.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        // the stored key is the certificate's key
        let (ok, pubkey) = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
        let (ok2, cert_key) = openssl(&["x509", "-in", f.to_str().unwrap(), "-noout", "-pubkey"]);
        assert!(ok && ok2 && pubkey == cert_key, "{pubkey} / {cert_key}");
    }
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances WHERE state = 'confirmed'"), "24");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances WHERE serial LIKE 'CK-%'"), "24");
}

#[test]
fn a_station_that_allocates_serials_provisions_kit_devices_and_they_store_chain_serial() {
    let Rig { st, ca, pairs, _holds, daemon } = rig(2, true, "");
    let out = st.file("devices");
    let kids: Vec<Child> = (0..2).map(|b| spawn(&pairs[b].device_end, &ca, &out, &["--count", "5"])).collect();
    let mut serials = Vec::new();
    for k in kids {
        let (code, devices, summary) = finish(k);
        assert_all_ok(code, &devices, &summary, 5);
        serials.extend(devices.iter().map(|d| d["serial"].as_str().unwrap().to_string()));
    }
    assert_eq!(daemon.stop(), 0);
    let files = chain_files(&out);
    assert_eq!(files.len(), 10);
    verify_chains(&ca, &files);
    for s in &serials {
        assert!(out.join(s).join("deviceCertAndCACert.crt").is_file(), "{s}");
    }
}

#[test]
fn a_revision_1_0_kit_device_is_provisioned_in_both_serial_modes() {
    for station_mode in [false, true] {
        let Rig { st, ca, pairs, _holds, daemon } = rig(1, station_mode, "");
        let out = st.file("devices");
        let args: &[&str] = if station_mode { &["--revision", "0"] } else { &["--revision", "0", "--serial", "OLD-1"] };
        let (code, devices, summary) = finish(spawn(&pairs[0].device_end, &ca, &out, args));
        let lines: Vec<String> = daemon.lines.try_iter().collect();
        assert_eq!((code, summary["devices_ok"].as_u64()), (0, Some(1)), "{station_mode} {devices:?} {lines:?}");
        assert_eq!(daemon.stop(), 0, "station mode: {station_mode}");
        verify_chains(&ca, &chain_files(&out));
    }
}

#[test]
fn line_corruption_is_recovered_by_resends_and_restarts() {
    let Rig { st, ca, pairs, _holds, daemon } = rig(2, false, "max_frame_errors = 10");
    let out = st.file("devices");
    let kids: Vec<Child> = (0..2)
        .map(|b| {
            let from = (b * 100 + 1).to_string();
            let seed = (b + 3).to_string();
            spawn(
                &pairs[b].device_end,
                &ca,
                &out,
                &["--count", "15", "--serial-from", &from, "--corrupt", "0.002", "--seed", &seed, "--backoff-ms", "50"],
            )
        })
        .collect();
    let mut resends = 0;
    for k in kids {
        let (code, devices, summary) = finish(k);
        assert_all_ok(code, &devices, &summary, 15);
        resends += devices.iter().map(|d| d["resends"].as_u64().unwrap()).sum::<u64>();
    }
    drop(daemon);
    // the corruption reached the station: it answered damaged frames with frame-* ERRORs, and the kit re-sent
    assert!(resends > 0, "no frame was damaged: raise --corrupt");
    let files = chain_files(&out);
    assert_eq!(files.len(), 30);
    verify_chains(&ca, &files);
    assert_eq!(sqlite(&st.file("station.db"), "SELECT COUNT(*) FROM issuances"), "30");
}

/// A dropped line (the device resets and the port is reopened) after CSR, and after CHAIN before STORED: the device
/// starts again with the same key and the station serves the identical chain (the kit checks it byte for byte
/// through its SHA-256 and would stop with chain-not-idempotent).
#[test]
fn a_line_dropped_after_csr_or_after_chain_gets_the_identical_chain_for_the_same_key() {
    let Rig { st, ca, pairs, _holds, daemon } = rig(2, true, "");
    let out = st.file("devices");
    let csr = spawn(&pairs[0].device_end, &ca, &out, &["--drop-after", "csr", "--backoff-ms", "50"]);
    let chain = spawn(&pairs[1].device_end, &ca, &out, &["--drop-after", "chain", "--backoff-ms", "50"]);
    let (code, devices, summary) = finish(chain);
    assert_all_ok(code, &devices, &summary, 1);
    let hashes = devices[0]["chains"].as_array().unwrap();
    assert_eq!(hashes.len(), 2, "{devices:?}");
    assert_eq!(hashes[0], hashes[1]);
    let (code, devices, summary) = finish(csr);
    assert_all_ok(code, &devices, &summary, 1);
    assert!(!devices[0]["chains"].as_array().unwrap().is_empty());
    drop(daemon);
    let files = chain_files(&out);
    assert_eq!(files.len(), 2);
    verify_chains(&ca, &files);
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances"), "2", "no second certificate for the same key");
    // each device was served the chain already issued for its key again (the ledger's re-delivery event)
    assert_eq!(sqlite(&db, "SELECT COUNT(DISTINCT subject) FROM events WHERE kind = 'delivered'"), "2");
}

/// A flash that stores a wrong bit: STORED carries another hash, the station answers stored-hash-mismatch, the
/// device starts again from HELLO and gets the identical chain.
#[test]
fn a_wrong_stored_hash_is_refused_and_the_retry_stores_the_identical_chain() {
    let Rig { st, ca, pairs, _holds, daemon } = rig(1, false, "");
    let out = st.file("devices");
    let args = ["--serial", "FLAKY-1", "--flaky-store", "1", "--backoff-ms", "50"];
    let (code, devices, summary) = finish(spawn(&pairs[0].device_end, &ca, &out, &args));
    assert_all_ok(code, &devices, &summary, 1);
    assert_eq!(devices[0]["failed_sessions"], 1, "{devices:?}");
    let hashes = devices[0]["chains"].as_array().unwrap();
    assert_eq!((hashes.len(), &hashes[0]), (2, &hashes[1]));
    drop(daemon);
    verify_chains(&ca, &chain_files(&out));
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances"), "1");
}

#[test]
fn a_kit_device_that_does_not_trust_the_chain_stops_with_chain_untrusted_and_stores_nothing() {
    let Rig { st, pairs, _holds, daemon, .. } = rig(1, false, "");
    let other = OpensslCa::new(st.path(), "other-root", "/CN=Another Root").cert;
    let out = st.file("devices");
    let (code, devices, _) = finish(spawn(&pairs[0].device_end, &other, &out, &["--serial", "UNTRUSTED-1"]));
    assert_eq!((code, devices[0]["code"].as_str()), (1, Some("chain-untrusted")), "{devices:?}");
    assert!(chain_files(&out).is_empty());
    assert_eq!(daemon.stop(), 0);
    let events = sqlite(&st.file("station.db"), "SELECT COUNT(*) FROM events WHERE kind = 'device-error'");
    assert_eq!(events, "1", "the station recorded the device's ERROR");
}

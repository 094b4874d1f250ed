//! Issue 4 end to end: `station serve` on linked ptys with `station-devsim` devices.

mod common;
use common::bench::*;
use common::mqtt::Broker;
use common::sim::{chain_files, finish, verify_chains};
use common::*;
use std::path::{Path, PathBuf};

struct Rig {
    st: TestStation,
    ca: PathBuf,
    pairs: Vec<PtyPair>,
}

fn rig(benches: usize, serve_section: &str) -> (Rig, Daemon) {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| format!("{t}\n[serve]\n{serve_section}\n"));
    let pairs: Vec<PtyPair> = (0..benches).map(|i| PtyPair::new(st.path(), &format!("bench-{i}"))).collect();
    let names: Vec<String> = (0..benches).map(|i| format!("bench-{i}")).collect();
    let refs: Vec<(&str, &Path)> =
        names.iter().zip(&pairs).map(|(n, p)| (n.as_str(), p.station_end.as_path())).collect();
    let daemon = Daemon::start(&st, &refs, &[]);
    (Rig { st, ca, pairs }, daemon)
}

/// Starts one simulator on bench `b`.
fn devsim(rig: &Rig, b: usize, out: &Path, args: &[&str]) -> std::process::Child {
    sim::spawn(&rig.pairs[b].device_end, &rig.ca, out, args)
}

#[test]
fn eight_benches_times_one_hundred_devices_all_verify_and_the_ledger_counts_them() {
    let (rig, daemon) = rig(8, "");
    let out = rig.st.file("devices");
    let sims: Vec<_> = (0..8)
        .map(|b| {
            let from = (b * 100 + 1).to_string();
            devsim(&rig, b, &out, &["--count", "100", "--serial-from", &from, "--serial-prefix", "E2E-"])
        })
        .collect();
    for s in sims {
        let (code, v) = finish(s);
        assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(100)), "{v}");
    }
    assert_eq!(daemon.stop(), 0);
    let files = chain_files(&out);
    assert_eq!(files.len(), 800);
    verify_chains(&rig.ca, &files);
    let db = rig.st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances"), "800");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances WHERE state = 'confirmed'"), "800");
    rig.st.run(&["audit", "verify"]).ok();
}

#[test]
fn byte_corruption_is_caught_by_the_crc_and_retried_to_success() {
    let (rig, daemon) = rig(2, "max_frame_errors = 10");
    let out = rig.st.file("devices");
    let sims: Vec<_> = (0..2)
        .map(|b| {
            let from = (b * 40 + 1).to_string();
            devsim(
                &rig,
                b,
                &out,
                &[
                    "--count",
                    "40",
                    "--serial-from",
                    &from,
                    "--corrupt",
                    "0.001",
                    "--seed",
                    &(b + 7).to_string(),
                    "--backoff",
                    "50ms",
                ],
            )
        })
        .collect();
    let mut damaged = 0;
    for s in sims {
        let (code, v) = finish(s);
        assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(40)), "{v}");
        damaged += v["wire"]["frames_corrupted"].as_u64().unwrap();
    }
    assert!(damaged > 0, "the run must actually damage frames");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(chain_files(&out).len(), 80);
    assert_eq!(rig.st.issuance_count(), 80, "retries never issue twice");
    rig.st.run(&["audit", "verify"]).ok();
}

#[test]
fn hostile_devices_get_error_frames_and_the_daemon_survives_them() {
    let (rig, daemon) = rig(5, "csr_timeout_secs = 1");
    let out = rig.st.file("devices");
    let modes: [(&str, &[&str]); 5] =
        [("garbage", &[]), ("oversize", &[]), ("bad-csr", &[]), ("stall", &["--stall-for", "3s"]), ("disconnect", &[])];
    let sims: Vec<_> = modes
        .iter()
        .enumerate()
        .map(|(b, (mode, extra))| {
            let mut args = vec![
                "--misbehave",
                mode,
                "--serial",
                ["HOST-GARBAGE", "HOST-OVERSIZE", "HOST-BADCSR", "HOST-STALL", "HOST-DISC"][b],
            ];
            args.extend_from_slice(extra);
            devsim(&rig, b, &out, &args)
        })
        .collect();
    for (s, (mode, _)) in sims.into_iter().zip(modes) {
        let (code, v) = finish(s);
        assert_eq!(code, 0, "{mode}: the station must answer as the protocol requires: {v}");
    }
    // The daemon is still serving every bench.
    let after: Vec<_> = (0..5).map(|b| devsim(&rig, b, &out, &["--serial", &format!("AFTER-{b}")])).collect();
    for s in after {
        assert_eq!(finish(s).0, 0);
    }
    assert_eq!(daemon.stop(), 0);
    rig.st.run(&["audit", "verify"]).ok();
    status_matches_the_rows(&rig.st, 5);
}

/// `station status` (counts kept by triggers, schema 4) says what counting the rows says, bench by bench.
fn status_matches_the_rows(st: &TestStation, benches: usize) {
    let db = st.file("station.db");
    let status = st.run(&["status"]).ok().json();
    let listed = status["benches"].as_array().unwrap();
    assert_eq!(listed.len(), benches, "{status}");
    for b in listed {
        let name = b["bench"].as_str().unwrap();
        let count = |sql: &str| sqlite(&db, &sql.replace("?", &format!("'{name}'"))).parse::<u64>().unwrap();
        let issued = count("SELECT COUNT(*) FROM issuances WHERE bench = ?");
        let confirmed = count("SELECT COUNT(*) FROM issuances WHERE bench = ? AND state = 'confirmed'");
        let refused = count("SELECT COUNT(*) FROM refusals WHERE bench = ?");
        assert_eq!(
            (b["issued"].as_u64(), b["confirmed"].as_u64(), b["refusals"].as_u64()),
            (Some(issued), Some(confirmed), Some(refused)),
            "{name}: {b}"
        );
        let last =
            sqlite(&db, &format!("SELECT serial FROM issuances WHERE bench = '{name}' ORDER BY id DESC LIMIT 1"));
        assert_eq!(b["last_serial"].as_str().unwrap_or(""), last, "{name}");
    }
    assert!(listed.iter().any(|b| b["refusals"].as_u64() > Some(0)), "the hostile benches were refused: {status}");
}

#[test]
fn a_simulated_devices_stored_key_and_chain_connect_to_a_tls_broker() {
    let (rig, daemon) = rig(1, "");
    let out = rig.st.file("devices");
    let (code, v) = finish(devsim(&rig, 0, &out, &["--serial", "SN-000777"]));
    assert_eq!(code, 0, "{v}");
    assert_eq!(daemon.stop(), 0);
    let dir = out.join("SN-000777");
    let (chain, key) = (dir.join("deviceCertAndCACert.crt"), dir.join("deviceCert.key"));
    let broker = Broker::start(rig.st.path(), &rig.ca);
    let (ok, msg) = broker.publish(&chain, &key, "SN-000777", "SN-000777/hello", "provisioned at the bench");
    assert!(ok, "{msg}");
    assert!(broker.log_text().contains("u'SN-000777'"), "{}", broker.log_text());
}

/// A simulator that makes its own line (`--pty`) and its keys ahead (`--pregenerate`), as scripts/bench-serial.sh
/// runs them; it is started before the daemon and waits for the station to open the line.
fn devsim_pty(ca: &Path, link: &Path, out: &Path, args: &[&str]) -> std::process::Child {
    sim::spawn(link, ca, out, &[&["--pty"][..], args].concat())
}

#[test]
fn simulators_on_their_own_ptys_with_keys_made_ahead_provision_and_every_device_gets_its_line() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| format!("{t}\n[serve]\nreopen_backoff_max_ms = 200\n"));
    let out = st.file("devices");
    let links: Vec<PathBuf> = (0..3).map(|b| st.file(&format!("line-{b}"))).collect();
    let mut sims: Vec<_> = (0..2)
        .map(|b| {
            let from = (b * 20 + 1).to_string();
            devsim_pty(&ca, &links[b], &out, &["--count", "20", "--pregenerate", "--serial-from", &from])
        })
        .collect();
    // A device unplugged after CHAIN: its line goes away and comes back as a new pty at the same link.
    sims.push(devsim_pty(&ca, &links[2], &out, &["--misbehave", "disconnect", "--serial", "PTY-DISC"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !links.iter().all(|l| l.exists()) {
        assert!(std::time::Instant::now() < deadline, "the simulators did not make their lines");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let names = ["bench-0", "bench-1", "bench-2"];
    let benches: Vec<(&str, &Path)> = names.iter().copied().zip(links.iter().map(PathBuf::as_path)).collect();
    let serve_started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let daemon = Daemon::start(&st, &benches, &[]);
    for (b, s) in sims.into_iter().enumerate() {
        let (code, v) = finish(s);
        assert_eq!(code, 0, "simulator {b}: {v}");
        // Started before the daemon, the simulator's clock starts only once the station has the line.
        let (started, finished) = (v["started_unix"].as_f64().unwrap(), v["finished_unix"].as_f64().unwrap());
        assert!(started >= serve_started && finished >= started, "{v}");
        if b < 2 {
            assert_eq!(v["devices_ok"].as_u64(), Some(20), "{v}");
        }
    }
    // 40 devices, and the unplugged one twice: its lost session, then its retry (the identical chain).
    let lines: Vec<String> = (0..42).map(|_| daemon.line(10)).collect();
    assert_eq!(lines.iter().filter(|l| l.contains(" OK ") && l.contains("SIM-")).count(), 40, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("PTY-DISC") && l.contains("port-lost")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("PTY-DISC") && l.contains(" OK ") && l.contains("repeat")), "{lines:?}");
    assert!(links.iter().all(|l| !l.exists()), "each simulator removes its link when it ends");
    assert_eq!(daemon.stop(), 0);
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances WHERE state = 'confirmed'"), "41");
    assert_eq!(chain_files(&out).len(), 41);
}

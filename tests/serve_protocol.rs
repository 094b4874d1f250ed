//! Issue 4: `station serve` over real ttys, driven by a scripted device frame by frame.

mod common;
use common::bench::*;
use common::*;
use station_protocol::{Csr, Message, Stored};

fn station_with_benches(n: usize, serve_section: &str) -> (TestStation, Vec<PtyPair>) {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    st.edit_config(|t| format!("{t}\n[serve]\n{serve_section}\n"));
    let pairs = (0..n).map(|i| PtyPair::new(st.path(), &format!("bench-{i}"))).collect();
    (st, pairs)
}

fn serve(st: &TestStation, pairs: &[PtyPair]) -> Daemon {
    let names: Vec<String> = (0..pairs.len()).map(|i| format!("bench-{i}")).collect();
    let benches: Vec<(&str, &std::path::Path)> =
        names.iter().zip(pairs).map(|(n, p)| (n.as_str(), p.station_end.as_path())).collect();
    Daemon::start(st, &benches, &[])
}

/// A whole session; returns the CHAIN message.
fn provision(dev: &mut Device, serial: &str) -> station_protocol::Chain {
    dev.send(&hello(Some(serial)));
    let Message::Welcome(w) = dev.recv(10) else { panic!("expected WELCOME") };
    assert_eq!(w.station, "test-station");
    assert!(w.key_types.contains(&"ec-p256".to_string()));
    let (_key, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    let Message::Chain(chain) = dev.recv(10) else { panic!("expected CHAIN") };
    dev.send(&Message::Stored(Stored { sha256: chain.sha256.clone() }));
    let Message::Done(done) = dev.recv(10) else { panic!("expected DONE") };
    assert_eq!(done.serial, serial);
    chain
}

#[test]
fn a_device_is_provisioned_in_one_exchange_and_the_operator_sees_one_line() {
    let (st, pairs) = station_with_benches(1, "");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    let chain = provision(&mut dev, "DEV-0001");
    assert_eq!(chain.serial, "DEV-0001");
    assert_eq!(chain.sha256, station::pki::sha256_hex(chain.chain.as_bytes()));
    let line = daemon.line(5);
    assert!(
        line.starts_with("bench-0") && line.contains("DEV-0001") && line.contains(" OK ") && line.contains("new"),
        "{line}"
    );
    std::fs::write(st.file("chain.pem"), &chain.chain).unwrap();
    let (ok, msg) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        st.file("ca-1.pem").to_str().unwrap(),
        st.file("chain.pem").to_str().unwrap(),
    ]);
    assert!(ok, "{msg}");
    assert_eq!(daemon.stop(), 0);
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT state FROM issuances WHERE serial = 'DEV-0001'"), "confirmed");
    // A device that confirms goes from issued straight to confirmed: two chained events.
    let kinds = sqlite(
        &db,
        "SELECT group_concat(kind, ',') FROM (SELECT kind FROM events WHERE subject = 'DEV-0001' ORDER BY seq)",
    );
    assert_eq!(kinds, "issued,confirmed");
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn a_device_that_gets_its_chain_but_never_confirms_leaves_a_delivered_row() {
    let (st, pairs) = station_with_benches(1, "stored_timeout_secs = 1");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    dev.send(&hello(Some("DEV-SILENT")));
    assert!(matches!(dev.recv(10), Message::Welcome(_)));
    let (_key, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    assert!(matches!(dev.recv(10), Message::Chain(_)));
    let Message::Error(e) = dev.recv(10) else { panic!("expected ERROR timeout") };
    assert_eq!(e.code, "timeout");
    assert!(daemon.line(5).contains("DEV-SILENT"));
    assert_eq!(daemon.stop(), 0);
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT state FROM issuances WHERE serial = 'DEV-SILENT'"), "delivered");
    let kinds = sqlite(
        &db,
        "SELECT group_concat(kind, ',') FROM (SELECT kind FROM events WHERE subject = 'DEV-SILENT' ORDER BY seq)",
    );
    assert_eq!(kinds, "issued,delivered");
}

#[test]
fn a_stored_hash_mismatch_is_recorded_and_the_retry_gets_the_identical_chain() {
    let (st, pairs) = station_with_benches(1, "");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    let (_key, csr) = device_csr(None);
    dev.send(&hello(Some("DEV-M")));
    dev.recv(10);
    dev.send(&Message::Csr(Csr { der: csr.clone() }));
    let Message::Chain(first) = dev.recv(10) else { panic!() };
    dev.send(&Message::Stored(Stored { sha256: "0".repeat(64) }));
    let Message::Error(e) = dev.recv(10) else { panic!("expected ERROR") };
    assert_eq!((e.code.as_str(), e.retryable), ("stored-hash-mismatch", true));
    assert!(daemon.line(5).contains("stored-hash-mismatch"));
    // The device starts again from HELLO with the same key.
    dev.send(&hello(Some("DEV-M")));
    dev.recv(10);
    dev.send(&Message::Csr(Csr { der: csr }));
    let Message::Chain(second) = dev.recv(10) else { panic!() };
    assert_eq!(first.chain, second.chain);
    dev.send(&Message::Stored(Stored { sha256: second.sha256.clone() }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    assert!(daemon.line(5).contains("repeat"));
    assert_eq!(daemon.stop(), 0);
    let db = st.file("station.db");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM issuances"), "1");
    assert_eq!(sqlite(&db, "SELECT COUNT(*) FROM events WHERE kind = 'stored-mismatch'"), "1");
    // The first session was sent its chain and did not confirm it; the retry confirmed.
    let kinds = sqlite(
        &db,
        "SELECT group_concat(kind, ',') FROM (SELECT kind FROM events WHERE subject = 'DEV-M' ORDER BY seq)",
    );
    assert_eq!(kinds, "issued,stored-mismatch,delivered,confirmed");
}

#[test]
fn garbage_damaged_and_oversize_frames_get_error_frames_and_the_bench_recovers() {
    let (st, pairs) = station_with_benches(1, "max_frame_errors = 5");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    // Boot-log noise without a frame marker is ignored.
    dev.raw(b"U-Boot 2024.01 booting...\r\nrandom noise \x00\x01\x02\n");
    // A frame with one flipped byte: CRC mismatch.
    let mut frame = station_protocol::encode(&hello(Some("DEV-G"))).unwrap();
    frame[20] ^= 0x01;
    dev.raw(&frame);
    let Message::Error(e) = dev.recv(10) else { panic!() };
    assert_eq!((e.code.as_str(), e.retryable), ("frame-crc-mismatch", true));
    // An oversize frame.
    let mut big = b"@1 HELLO 99999 ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 17 * 1024));
    big.push(b'\n');
    dev.raw(&big);
    let Message::Error(e) = dev.recv(10) else { panic!() };
    assert_eq!(e.code, "frame-too-large");
    // Then a normal session works on the same bench.
    provision(&mut dev, "DEV-G");
    assert!(daemon.line(5).contains(" OK "));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_device_frame_error_makes_the_station_resend_its_last_frame_byte_for_byte() {
    let (st, pairs) = station_with_benches(1, "");
    let _daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    dev.send(&hello(Some("DEV-R")));
    let welcome = dev.recv_raw_line(10);
    let err = station_protocol::ErrorMsg::new("frame-crc-mismatch", "bad crc", "", true);
    dev.send(&Message::Error(err));
    assert_eq!(dev.recv_raw_line(10), welcome);
}

#[test]
fn a_bad_csr_gets_its_engine_code_and_leaves_no_row() {
    let (st, pairs) = station_with_benches(1, "");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    dev.send(&hello(Some("DEV-B")));
    dev.recv(10);
    let (_k, mut csr) = device_csr(None);
    let n = csr.len();
    csr[n - 3] ^= 0xff;
    dev.send(&Message::Csr(Csr { der: csr }));
    let Message::Error(e) = dev.recv(10) else { panic!() };
    assert_eq!((e.code.as_str(), e.retryable), ("csr-bad-signature", false));
    let line = daemon.line(5);
    assert!(line.contains("FAIL") && line.contains("csr-bad-signature") && line.contains("DEV-B"), "{line}");
    provision(&mut dev, "DEV-B2");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(st.issuance_count(), 1);
}

#[test]
fn a_stalled_device_times_out_while_another_bench_carries_on() {
    let (st, pairs) = station_with_benches(2, "csr_timeout_secs = 2");
    let daemon = serve(&st, &pairs);
    let mut stalled = Device::open(&pairs[0].device_end);
    stalled.send(&hello(Some("DEV-STALL")));
    assert!(matches!(stalled.recv(10), Message::Welcome(_)));
    let t0 = std::time::Instant::now();
    // Meanwhile the other bench provisions three devices.
    let mut other = Device::open(&pairs[1].device_end);
    for i in 0..3 {
        provision(&mut other, &format!("DEV-OK-{i}"));
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "the other bench was not held up");
    let Message::Error(e) = stalled.recv(10) else { panic!() };
    assert_eq!((e.code.as_str(), e.retryable), ("timeout", true));
    let lines: Vec<String> = (0..4).map(|_| daemon.line(10)).collect();
    assert!(lines.iter().any(|l| l.contains("DEV-STALL") && l.contains("timeout")), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.contains(" OK ")).count(), 3);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn out_of_order_messages_get_unexpected_message() {
    let (st, pairs) = station_with_benches(1, "");
    let _daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    dev.send(&Message::Stored(Stored { sha256: "a".repeat(64) }));
    let Message::Error(e) = dev.recv(10) else { panic!() };
    assert_eq!((e.code.as_str(), e.retryable), ("unexpected-message", true));
}

#[test]
fn a_port_that_goes_away_is_reopened_and_serves_again() {
    let (st, mut pairs) = station_with_benches(1, "reopen_backoff_max_ms = 200");
    let daemon = serve(&st, &pairs);
    {
        let mut dev = Device::open(&pairs[0].device_end);
        provision(&mut dev, "DEV-BEFORE");
    }
    daemon.line(5);
    // Unplug: the pty pair disappears, then comes back at the same path.
    let old = pairs.remove(0);
    drop(old);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pair = PtyPair::new(st.path(), "bench-0");
    std::thread::sleep(std::time::Duration::from_millis(600));
    let mut dev = Device::open(&pair.device_end);
    provision(&mut dev, "DEV-AFTER");
    assert!(daemon.line(5).contains("DEV-AFTER"));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn sigterm_mid_run_exits_zero_and_every_chain_a_device_holds_has_its_row() {
    let (st, pairs) = station_with_benches(4, "shutdown_grace_secs = 10");
    let daemon = serve(&st, &pairs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(b, p)| provision_until(p.device_end.clone(), format!("TERM-{b}"), stop.clone()))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(daemon.stop(), 0, "SIGTERM mid-run exits 0");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held: Vec<_> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(held.len() >= 4, "the run was under way: {} chains", held.len());
    let db = st.file("station.db");
    for c in &held {
        let der = pem::parse_many(c.chain.as_bytes()).unwrap().remove(0).into_contents();
        let row = sqlite(&db, &format!("SELECT cert_id FROM issuances WHERE serial = '{}'", c.serial));
        assert_eq!(row, station::pki::sha256_hex(&der), "{}: a chain without its durable row", c.serial);
    }
    st.run(&["audit", "verify"]).ok();
    let cps = sqlite(&db, "SELECT COUNT(*) FROM checkpoints");
    assert_eq!(cps, "1", "a checkpoint is signed at shutdown");
}

#[test]
fn with_a_serial_in_hello_the_csr_cn_may_be_anything_and_model_and_firmware_are_recorded() {
    let (st, pairs) = station_with_benches(1, "");
    let daemon = serve(&st, &pairs);
    let mut dev = Device::open(&pairs[0].device_end);
    dev.send(&hello(Some("DEV-CN")));
    dev.recv(10);
    let (_k, csr) = device_csr(Some("acme-sensor-v2"));
    dev.send(&Message::Csr(Csr { der: csr }));
    let Message::Chain(c) = dev.recv(10) else { panic!("expected CHAIN") };
    assert_eq!(c.serial, "DEV-CN");
    dev.send(&Message::Stored(Stored { sha256: c.sha256 }));
    assert!(matches!(dev.recv(10), Message::Done(_)));
    daemon.line(5);
    assert_eq!(daemon.stop(), 0);
    let detail = sqlite(&st.file("station.db"), "SELECT detail FROM events WHERE kind = 'issued'");
    let v: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((v["device_model"].as_str(), v["device_firmware"].as_str()), (Some("test-rig"), Some("1.0")));
    let status = st.run(&["status"]).ok().json();
    assert_eq!(status["benches"][0]["confirmed"], 1);
    assert_eq!(status["benches"][0]["last_serial"], "DEV-CN");
}

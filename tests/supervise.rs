//! Issue 14, a daemon that fails closed and loudly: threads that die (fault injection through the `test-hooks`
//! fail points), the engine's own gate deadline, and what systemd hears (READY, STATUS, the watchdog) over an
//! abstract notification socket. Built with the cargo feature `test-hooks` only (scripts/test.sh turns it on).
#![cfg(feature = "test-hooks")]

mod aws_moto;
mod common;

use aws_moto::*;
use common::bench::*;
use common::http::*;
use common::*;
use station_protocol::{Csr, Message, Stored};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stand-in for systemd: an abstract datagram socket that keeps every notification, with when it came.
struct Systemd {
    name: String,
    heard: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Systemd {
    fn listen() -> Systemd {
        let name = format!("station-test-notify-{}-{}", std::process::id(), rand_suffix());
        let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let keep = heard.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                keep.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        });
        Systemd { name, heard }
    }

    fn socket(&self) -> String {
        format!("@{}", self.name)
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.heard.lock().unwrap().clone()
    }

    /// Waits until `count` notifications contain `text`.
    fn wait_for(&self, text: &str, count: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.messages().iter().filter(|(_, m)| m.contains(text)).count() < count {
            assert!(Instant::now() < deadline, "no {count} x {text:?} within {secs} s: {:?}", self.messages());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos().into()
}

/// HELLO and CSR for a new device: the station's answer to the CSR.
fn csr_answer(dev: &mut Device, serial: &str) -> Message {
    dev.send(&hello(Some(serial)));
    assert!(matches!(dev.recv(10), Message::Welcome(_)));
    let (_k, csr) = device_csr(None);
    dev.send(&Message::Csr(Csr { der: csr }));
    dev.recv(10)
}

/// A whole session; the answer to the CSR.
fn session(dev: &mut Device, serial: &str) -> Message {
    let reply = csr_answer(dev, serial);
    if let Message::Chain(c) = &reply {
        dev.send(&Message::Stored(Stored { sha256: c.sha256.clone() }));
        assert!(matches!(dev.recv(10), Message::Done(_)));
    }
    reply
}

#[test]
fn a_dead_ledger_writer_ends_the_daemon_non_zero_after_systemd_heard_ready_status_and_watchdog_pings() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let pair = PtyPair::new(st.path(), "bench-0");
    let systemd = Systemd::listen();
    let socket = systemd.socket();
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "1000000"),
        // The writer thread panics on its first operation: the first device's certificate.
        ("STATION_TEST_FAILPOINT", "ledger-writer-dies"),
    ];
    let daemon = Daemon::start_env(&st, &[("bench-0", pair.station_end.as_path())], &[], &env);
    systemd.wait_for("READY=1", 1, 20);
    let ready = systemd.messages().into_iter().find(|(_, m)| m.contains("READY=1")).unwrap().1;
    assert!(ready.contains("STATUS=1 bench, 0 devices provisioned, 0 failed; ready"), "{ready}");
    // Pinged every half WatchdogSec while healthy.
    systemd.wait_for("WATCHDOG=1", 3, 10);
    let mut dev = Device::open(&pair.device_end);
    let Message::Error(e) = csr_answer(&mut dev, "DEV-1") else { panic!("a chain without a ledger row") };
    assert_eq!((e.code.as_str(), e.retryable), ("ledger-writer-stopped", true));
    let (status, stderr) = daemon.wait(30);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("error[serve-thread-died]: the ledger writer thread died (it panicked: test hook: the ledger writer thread dies)"), "{stderr}");
    assert!(stderr.contains("systemd (Restart=on-failure) starts the station again"), "{stderr}");
    let heard = systemd.messages();
    let failed = heard.iter().position(|(_, m)| m.contains("STATUS=FAILED: ")).expect("a FAILED status");
    assert!(heard[failed].1.contains("ledger writer thread died"), "{:?}", heard[failed]);
    assert!(heard[..failed].iter().any(|(_, m)| m.contains("WATCHDOG=1")));
    assert!(!heard[failed..].iter().any(|(_, m)| m.contains("WATCHDOG=1")), "no ping after the fault: {heard:?}");
    assert!(heard[failed].1.contains("STOPPING=1"), "{:?}", heard[failed]);
    assert_eq!(st.issuance_count(), 0);
}

#[test]
fn a_killed_watch_thread_leaves_the_gate_to_close_by_itself_at_the_verification_deadline() {
    let moto = Moto::start();
    let st = aws_station(
        &moto.url,
        &["eu-west-1"],
        "require_verified = true\nmax_verification_age = \"61s\"\nreverify_every = \"60s\"",
    );
    run(&st, &["ca", "register", "--name", "ca-1"]).ok();
    run(&st, &["ca", "verify", "--name", "ca-1"]).ok();
    // The passing verification is dated 45 s ago: it goes stale 16 s from now, and only the engine is left to see it.
    let verified = time::OffsetDateTime::now_utc() - time::Duration::seconds(45);
    let deadline = Instant::now() + Duration::from_secs(16);
    let at = station::pki::rfc3339(verified);
    sqlite(&st.file("station.db"), &format!("UPDATE aws_verifications SET at = '{at}'"));
    let port = enable_http(&st);
    let pair = PtyPair::new(st.path(), "bench-0");
    let env = [("STATION_TEST_FAILPOINT", "aws-watch-dies")];
    let daemon = Daemon::start_env(&st, &[("bench-0", pair.station_end.as_path())], &[], &env);
    let died = daemon.line(20);
    assert!(
        died.contains("STATION    aws-watch thread died (it panicked: test hook: the AWS watch thread dies)"),
        "{died}"
    );
    let mut dev = Device::open(&pair.device_end);
    assert!(matches!(session(&mut dev, "DEV-BEFORE"), Message::Chain(_)), "open before the deadline");
    wait_for_endpoint(port);
    assert_eq!(get(port, "/readyz", &[]).json()["gate"]["ok"], true);
    // Whatever else the daemon says meanwhile (the device's line, the watch dying again), the gate closes at the
    // deadline, not before and not a tick of the watch later.
    let halted = loop {
        let l = daemon.line(40);
        if l.contains("HALTED") {
            break l;
        }
        assert!(l.contains("DEV-BEFORE") || l.contains("aws-watch thread died"), "{l}");
    };
    let when = Instant::now();
    assert!(when + Duration::from_secs(1) >= deadline, "closed {:?} early", deadline - when);
    assert!(when <= deadline + Duration::from_secs(5), "closed {:?} late", when - deadline);
    assert!(halted.contains("aws-verification-stale") && halted.contains("station ca verify --name ca-1"), "{halted}");
    let Message::Error(e) = session(&mut dev, "DEV-AFTER") else { panic!("a chain past the deadline") };
    assert_eq!((e.code.as_str(), e.retryable), ("issuance-halted", true));
    assert!(e.message.contains("aws-verification-stale"), "{}", e.message);
    let ready = get(port, "/readyz", &[]);
    assert_eq!(ready.status, 503);
    let gate = &ready.json()["gate"];
    assert_eq!(gate["ok"], false);
    assert!(gate["detail"].as_str().unwrap().contains("aws-verification-stale"), "{gate}");
    let metrics = get(port, "/metrics", &[]).body;
    assert!(metrics.contains("\nstation_aws_gate_open 0\n"), "{metrics}");
    assert!(metrics.contains("station_thread_restarts_total{thread=\"aws-watch\"}"), "{metrics}");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(st.issuance_count(), 1);
}

#[test]
fn a_bench_thread_that_dies_is_started_again_and_its_bench_provisions() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let port = enable_http(&st);
    let pair = PtyPair::new(st.path(), "bench-0");
    let env = [("STATION_TEST_FAILPOINT", "bench-dies-bench-0")];
    let daemon = Daemon::start_env(&st, &[("bench-0", pair.station_end.as_path())], &[], &env);
    let died = daemon.line(20);
    assert!(
        died.contains("bench:bench-0 thread died (it panicked: test hook: the thread of bench bench-0 dies); starting it again in 1 s"),
        "{died}"
    );
    let mut dev = Device::open(&pair.device_end);
    assert!(matches!(session(&mut dev, "DEV-1"), Message::Chain(_)));
    assert!(daemon.line(10).contains("DEV-1"));
    wait_for_endpoint(port);
    let metrics = get(port, "/metrics", &[]).body;
    assert!(metrics.contains("station_thread_restarts_total{thread=\"bench:bench-0\"} 1"), "{metrics}");
    assert_eq!(get(port, "/readyz", &[]).status, 200);
    assert_eq!(daemon.stop(), 0);
}

//! `station-devsim` against a scripted station over real linked ptys (`openpty` in process). The binary is run as a
//! process, as a bench script would; files are checked on disk and chains with `openssl verify`.

#[path = "devsim/bench.rs"]
mod bench;
#[path = "devsim/peer.rs"]
mod peer;

use bench::{Bench, DEVSIM, assert_stored, ca};
use peer::{Script, Seen, TestCa};
use serde_json::Value;
use station_protocol::Message;
use std::process::Command;

fn happy_path(key_type: &str) {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--key-type", key_type, "--serial", "SN-1"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(run.device(0)["serial"], "SN-1");
    assert_eq!(run.json["key_type"], key_type);
    assert_stored(&bench, "SN-1", &log);
    let kinds: Vec<_> = log.messages().iter().map(|m| m.message_type().name()).collect();
    assert_eq!(kinds, ["HELLO", "CSR", "STORED"]);
}

#[test]
fn ec_p256_device_stores_a_private_key_and_a_chain_that_openssl_verifies() {
    happy_path("ec-p256");
}

#[test]
fn rsa_2048_device_stores_a_private_key_and_a_chain_that_openssl_verifies() {
    happy_path("rsa-2048");
}

#[test]
fn count_with_serial_from_runs_successive_devices_each_with_its_own_key() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--count", "3", "--serial-from", "41"]);
    let log = bench.stop();
    run.assert_ok();
    for (i, serial) in ["SIM-000041", "SIM-000042", "SIM-000043"].iter().enumerate() {
        assert_eq!(run.device(i)["serial"], *serial);
        assert_stored(&bench, serial, &log);
    }
    let hellos: Vec<String> = log
        .messages()
        .into_iter()
        .filter_map(|m| if let Message::Hello(h) = m { h.serial.clone() } else { None })
        .collect();
    assert_eq!(hellos, ["SIM-000041", "SIM-000042", "SIM-000043"]);
    let keys = log.csr_keys();
    assert_eq!(keys.len(), 3);
    assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2], "each device needs a new key");
    assert_eq!(run.json["devices_ok"], 3);
}

#[test]
fn without_a_serial_the_device_takes_the_one_the_station_allocates() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--count", "2"]);
    let log = bench.stop();
    run.assert_ok();
    let hello_serials = log.messages().into_iter().filter(|m| matches!(m, Message::Hello(h) if h.serial.is_some()));
    assert_eq!(hello_serials.count(), 0, "HELLO must not carry a serial");
    for (i, serial) in ["ST-000001", "ST-000002"].iter().enumerate() {
        assert_eq!(run.device(i)["serial"], *serial);
        assert_stored(&bench, serial, &log);
    }
}

#[test]
fn frame_crc_mismatch_makes_the_device_resend_its_last_frame_unchanged() {
    let ca = ca("Test CA");
    let script = Script { crc_errors_on_csr: 1, ..Script::new(&ca) };
    let mut bench = Bench::new(script, &[&ca]);
    let run = bench.run(&["--serial", "SN-2"]);
    let log = bench.stop();
    run.assert_ok();
    let csrs: Vec<_> = log.messages().into_iter().filter(|m| matches!(m, Message::Csr(_))).collect();
    assert_eq!(csrs.len(), 2, "the CSR is sent again");
    assert_eq!(csrs[0], csrs[1], "the re-sent CSR is the same frame");
    assert_eq!(log.count("HELLO"), 1, "a frame error does not restart the session");
    assert_eq!(run.device(0)["resends"], 1);
    assert_eq!(run.device(0)["retries"], 0);
    assert_eq!(run.device(0)["codes_seen"], serde_json::json!(["frame-crc-mismatch"]));
    assert_stored(&bench, "SN-2", &log);
}

#[test]
fn damaged_frame_from_the_station_is_answered_with_a_frame_error_and_sent_again() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script { damage_first_welcome: true, ..Script::new(&ca) }, &[&ca]);
    let run = bench.run(&["--serial", "SN-12"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(log.device_errors(), ["frame-crc-mismatch"], "the device asks for the WELCOME again");
    assert_eq!(log.count("HELLO"), 1);
    assert_eq!(run.device(0)["codes_seen"], serde_json::json!(["frame-crc-mismatch"]));
    assert_stored(&bench, "SN-12", &log);
}

#[test]
fn retryable_error_restarts_from_hello_with_the_same_key() {
    let ca = ca("Test CA");
    let script = Script { retryable_error_on_csr: Some("hsm-unavailable"), ..Script::new(&ca) };
    let mut bench = Bench::new(script, &[&ca]);
    let run = bench.run(&["--serial", "SN-3"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(log.count("HELLO"), 2, "the device starts again from HELLO");
    let keys = log.csr_keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the retry uses the same key");
    assert_eq!(run.device(0)["retries"], 1);
    assert_eq!(run.json["codes_seen"]["hsm-unavailable"], 1);
    assert_stored(&bench, "SN-3", &log);
}

#[test]
fn station_that_never_answers_fails_the_device_after_the_retries_with_reply_timeout() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script { silent: true, ..Script::new(&ca) }, &[&ca]);
    let run = bench.run(&["--reply-timeout", "200ms", "--retries", "2"]);
    let log = bench.stop();
    assert_eq!(run.status, 1, "{:#}", run.json);
    assert_eq!(run.device(0)["code"], "reply-timeout");
    assert_eq!(run.device(0)["retries"], 2);
    assert_eq!(log.count("HELLO"), 3, "one session and two retries");
}

/// Runs one device against a station with `script` and a device that trusts `trusted`; the device must refuse.
fn refused(script: Script, trusted: &[&TestCa], code: &str) {
    let mut bench = Bench::new(script, trusted);
    let run = bench.run(&["--serial", "SN-4"]);
    let log = bench.stop();
    assert_eq!(run.status, 1, "{:#}", run.json);
    assert_eq!(run.device(0)["code"], code, "{:#}", run.json);
    assert_eq!(log.device_errors(), [code], "the device tells the station why");
    assert_eq!(log.count("STORED"), 0);
    assert!(!bench.out().join("SN-4").exists(), "a refused chain is not stored");
}

#[test]
fn chain_from_another_ca_is_refused_as_untrusted() {
    let (trusted, other) = (ca("Trusted CA"), ca("Other CA"));
    refused(Script::new(&other), &[&trusted], "chain-untrusted");
}

#[test]
fn chain_carrying_another_ca_than_the_signer_is_refused_as_untrusted() {
    // A mixed chain does not verify up to the trust anchor: the spec's `chain-untrusted` (6.3).
    let (old, new) = (ca("Old CA"), ca("New CA"));
    refused(Script { chain_ca: Some(new.clone()), ..Script::new(&old) }, &[&old, &new], "chain-untrusted");
}

#[test]
fn certificate_for_another_key_is_refused() {
    let ca = ca("Test CA");
    refused(Script { wrong_key: true, ..Script::new(&ca) }, &[&ca], "chain-key-mismatch");
}

#[test]
fn chain_under_a_rotated_ca_is_accepted_when_the_ca_file_holds_both() {
    let (old, new) = (ca("Old CA"), ca("New CA"));
    let mut bench = Bench::new(Script::new(&new), &[&old, &new]);
    let run = bench.run(&["--serial", "SN-5"]);
    let log = bench.stop();
    run.assert_ok();
    assert_stored(&bench, "SN-5", &log);
}

#[test]
fn line_rate_115200_takes_at_least_the_wire_time_of_what_the_device_sends() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--count", "4", "--serial-from", "1", "--line-rate", "115200"]);
    let log = bench.stop();
    run.assert_ok();
    let frames: Vec<_> = log
        .seen
        .iter()
        .filter_map(|s| if let Seen::Frame { at, len, .. } = s { Some((*at, *len)) } else { None })
        .collect();
    let later_bytes: usize = frames[1..].iter().map(|(_, len)| len).sum();
    let total: usize = frames.iter().map(|(_, len)| len).sum();
    assert!(total > 1_800, "the exchange should be about 2 KB from the device, was {total} B");
    // Lock-step: every frame after the first is sent after the previous one arrived, and takes its wire time.
    let wire = std::time::Duration::from_secs_f64(later_bytes as f64 * 10.0 / 115_200.0);
    let elapsed = frames[frames.len() - 1].0 - frames[0].0;
    assert!(elapsed >= wire, "{later_bytes} B took {elapsed:?}, less than their wire time {wire:?}");
    assert_eq!(run.json["wire"]["bytes_sent"], total as u64);
}

#[test]
fn corrupt_damages_frames_at_about_the_rate_and_the_device_recovers() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let rate = 0.002;
    let run = bench.run(&["--count", "12", "--corrupt", "0.002", "--seed", "11", "--reply-timeout", "500ms"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(run.json["seed"], 11);
    let wire = &run.json["wire"];
    let (bytes, flipped) = (wire["bytes_sent"].as_f64().unwrap(), wire["bits_flipped"].as_f64().unwrap());
    let (frames, damaged) = (wire["frames_sent"].as_f64().unwrap(), wire["frames_corrupted"].as_u64().unwrap());
    assert!(flipped > bytes * rate * 0.4 && flipped < bytes * rate * 2.0, "{flipped} bits flipped in {bytes} bytes");
    let expected = frames * (1.0 - (1.0 - rate).powf(bytes / frames));
    assert!((damaged as f64) > expected * 0.4 && (damaged as f64) < expected * 2.0, "{damaged} of {frames} damaged");
    // Each damaged frame is either rejected by the station's decoder (and re-sent), or lost without a trace (a
    // flipped LF or `@`) and recovered by a restart from HELLO after the reply timeout.
    let retries: u64 = run.json["devices"].as_array().unwrap().iter().map(|d| d["retries"].as_u64().unwrap()).sum();
    let rejected = log.rejected() as u64;
    assert!(
        rejected <= damaged && rejected + retries >= damaged,
        "{rejected} rejected, {damaged} damaged, {retries} retries"
    );
    assert!(rejected > 0, "at this rate some frames must be damaged");
}

#[test]
fn misbehave_garbage_gets_silence_for_noise_and_frame_errors_for_junk_frames() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "garbage", "--serial", "SN-6", "--seed", "3"]);
    let log = bench.stop();
    run.assert_ok();
    let observed = run.device(0)["misbehave"]["observed"].to_string();
    assert!(observed.contains("ERROR frame-malformed") || observed.contains("ERROR frame-crc-mismatch"), "{observed}");
    assert_eq!(log.rejected(), 2, "only the two junk frames are frames to the station");
    assert_stored(&bench, "SN-6", &log);
}

#[test]
fn misbehave_oversize_sends_a_frame_over_16_kib_and_expects_frame_too_large() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "oversize", "--serial", "SN-7"]);
    let log = bench.stop();
    run.assert_ok();
    assert!(log.seen.iter().any(|s| matches!(s, Seen::Rejected { code: "frame-too-large" })));
    assert_eq!(run.device(0)["codes_seen"][0], "frame-too-large");
    assert_stored(&bench, "SN-7", &log);
}

#[test]
fn misbehave_stall_goes_silent_after_welcome_and_expects_error_timeout() {
    let ca = ca("Test CA");
    let script = Script { csr_timeout: std::time::Duration::from_millis(300), ..Script::new(&ca) };
    let mut bench = Bench::new(script, &[&ca]);
    let run = bench.run(&["--misbehave", "stall", "--stall-for", "5s", "--serial", "SN-8"]);
    let log = bench.stop();
    run.assert_ok();
    assert!(run.device(0)["misbehave"]["observed"].to_string().contains("ERROR timeout"), "{:#}", run.json);
    assert_eq!(log.count("HELLO"), 2, "the stalled session, then a normal one");
    assert_stored(&bench, "SN-8", &log);
}

#[test]
fn misbehave_stall_fails_when_the_station_never_times_out() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "stall", "--stall-for", "400ms"]);
    bench.stop();
    assert_eq!(run.status, 1);
    assert_eq!(run.device(0)["code"], "expected-error-missing");
}

#[test]
fn misbehave_disconnect_after_chain_gets_the_identical_chain_after_reconnecting() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "disconnect", "--serial", "SN-9"]);
    let log = bench.stop();
    run.assert_ok();
    let chains: Vec<_> =
        log.sent.iter().filter_map(|m| if let Message::Chain(c) = m { Some(c) } else { None }).collect();
    assert_eq!(chains.len(), 2, "a chain before the unplug, and one after");
    assert_eq!(chains[0], chains[1]);
    assert_eq!(log.count("STORED"), 1, "no STORED before the unplug");
    assert_stored(&bench, "SN-9", &log);
}

#[test]
fn misbehave_disconnect_after_csr_reconnects_and_provisions_with_the_same_key() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "disconnect", "--disconnect-after", "csr", "--serial", "SN-10"]);
    let log = bench.stop();
    run.assert_ok();
    let keys = log.csr_keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    assert_stored(&bench, "SN-10", &log);
}

#[test]
fn misbehave_bad_csr_succeeds_when_the_station_answers_csr_bad_signature() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--misbehave", "bad-csr", "--serial", "SN-11"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(run.device(0)["codes_seen"], serde_json::json!(["csr-bad-signature"]));
    assert!(!log.sent.iter().any(|m| matches!(m, Message::Chain(_))));
    assert!(!bench.out().join("SN-11").exists());
}

#[test]
fn misbehave_bad_csr_fails_when_the_station_issues_a_chain_anyway() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script { accept_bad_signatures: true, ..Script::new(&ca) }, &[&ca]);
    let run = bench.run(&["--misbehave", "bad-csr"]);
    bench.stop();
    assert_eq!(run.status, 1);
    assert_eq!(run.device(0)["code"], "station-accepted-bad-csr");
}

#[test]
fn usage_errors_exit_2_with_a_stable_code() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let run = bench.run(&["--serial", "SN-1", "--count", "2"]);
    assert_eq!((run.status, &run.json["error"]["code"]), (2, &Value::from("serial-needs-count-1")));
    std::fs::write(bench.ca_file(), "not a certificate").expect("write");
    let run = bench.run(&[]);
    assert_eq!((run.status, &run.json["error"]["code"]), (2, &Value::from("ca-invalid")));
    bench.stop();
    // Every required argument given, so the refusal is --count's own.
    let out = Command::new(DEVSIM)
        .args(["--port", "/dev/null", "--ca", "ca.pem", "--out", "out", "--count", "0"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--count"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn text_output_has_one_line_per_device_and_a_summary_with_the_seed() {
    let ca = ca("Test CA");
    let mut bench = Bench::new(Script::new(&ca), &[&ca]);
    let out = Command::new(DEVSIM)
        .args(["--port", &bench.port, "--count", "2", "--serial-from", "5", "--seed", "99"])
        .arg("--ca")
        .arg(bench.ca_file())
        .arg("--out")
        .arg(bench.out())
        .output()
        .expect("runs");
    bench.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("#1") && lines[0].contains("SIM-000005") && lines[0].contains("OK"), "{text}");
    assert!(lines[1].starts_with("#2") && lines[1].contains("SIM-000006"), "{text}");
    assert!(lines[2].contains("2 devices: 2 ok, 0 failed") && lines[2].contains("seed 99"), "{text}");
}

#[test]
fn pty_mode_never_replaces_a_file_or_a_link_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let file = dir.path().join("ttyUSB0");
    std::fs::write(&file, "not a line").unwrap();
    // Say a udev link under /dev/serial/by-id: someone else's, to something that exists.
    let link = dir.path().join("usb-adapter");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    for port in [&file, &link] {
        let out = Command::new(DEVSIM)
            .args(["--pty", "--json", "--port"])
            .arg(port)
            .arg("--ca")
            .arg(&ca_file)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "port-open-failed", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("not a line this simulator made"), "{v}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a line", "the file is left as it was");
    assert_eq!(std::fs::read_link(&link).unwrap(), file, "the link is left as it was");
}

/// Issue 11, spec 4.3: the device's own limit of frame-level errors in a row (here, three frame-* ERRORs for its
/// CSR): it tells the station with too-many-frame-errors and starts again from HELLO, a failed session.
#[test]
fn the_device_ends_a_session_after_three_frame_errors_in_a_row_and_starts_again() {
    let ca = ca("Test CA");
    let script = Script { crc_errors_on_csr: 3, ..Script::new(&ca) };
    let mut bench = Bench::new(script, &[&ca]);
    let run = bench.run(&["--serial", "SN-LIMIT", "--backoff", "50ms"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(log.device_errors(), ["too-many-frame-errors"], "the device says why it gives up the session");
    assert_eq!(log.count("HELLO"), 2);
    assert_eq!((run.device(0)["resends"].as_u64(), run.device(0)["retries"].as_u64()), (Some(2), Some(1)));
    assert_stored(&bench, "SN-LIMIT", &log);
}

/// Issue 11, spec 4.3: while waiting for WELCOME, an ERROR timeout answers an earlier session: ignored.
#[test]
fn a_stale_timeout_while_waiting_for_welcome_is_ignored() {
    let ca = ca("Test CA");
    let script = Script { stale_timeout_before_welcome: true, ..Script::new(&ca) };
    let mut bench = Bench::new(script, &[&ca]);
    let run = bench.run(&["--serial", "SN-STALE"]);
    let log = bench.stop();
    run.assert_ok();
    assert_eq!(log.count("HELLO"), 1, "no restart");
    assert_eq!(run.device(0)["retries"], 0);
    assert_stored(&bench, "SN-STALE", &log);
}

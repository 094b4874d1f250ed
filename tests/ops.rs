//! Issue 14, operations: `/metrics` checked by the Prometheus client's own parsers, `/healthz` and `/readyz`, the
//! endpoint's refusals, and the line view rendered by headless Chromium during a serve run with station-devsim.

mod common;
use common::bench::*;
use common::http::*;
use common::sim::{self, finish};
use common::*;
use serde_json::Value;
use std::time::Duration;

struct Line {
    st: TestStation,
    port: u16,
    daemon: Daemon,
    _pairs: Vec<PtyPair>,
}

/// A station with the endpoint on: bench-0 provisions `good` simulated devices, bench-1 meets a device whose CSR
/// signature is broken (`--misbehave bad-csr`, serial HOST-BADCSR); both simulators have finished.
fn line_with_a_hostile_device(good: usize) -> Line {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let port = enable_http(&st);
    let pairs: Vec<PtyPair> = (0..2).map(|i| PtyPair::new(st.path(), &format!("bench-{i}"))).collect();
    let daemon = Daemon::start(
        &st,
        &[("bench-0", pairs[0].station_end.as_path()), ("bench-1", pairs[1].station_end.as_path())],
        &[],
    );
    wait_for_endpoint(port);
    let out = st.file("devices");
    let count = good.to_string();
    let sims = [
        sim::spawn(&pairs[0].device_end, &ca, &out, &["--count", &count, "--serial-from", "1"]),
        sim::spawn(&pairs[1].device_end, &ca, &out, &["--misbehave", "bad-csr", "--serial", "HOST-BADCSR"]),
    ];
    for s in sims {
        let (code, v) = finish(s);
        assert_eq!(code, 0, "{v}");
    }
    for _ in 0..=good {
        daemon.line(10);
    }
    Line { st, port, daemon, _pairs: pairs }
}

fn family<'a>(families: &'a Value, name: &str) -> &'a Value {
    families.get(name).unwrap_or_else(|| panic!("no family {name} in {families}"))
}

/// The value of the sample `sample` whose labels include `labels`.
fn sample(families: &Value, fam: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
    family(families, fam)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == sample && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {sample}{labels:?} in {}", family(families, fam)))
}

#[test]
fn the_metrics_parse_with_the_prometheus_parsers_and_count_devices_failures_and_latencies() {
    let line = line_with_a_hostile_device(5);
    let om = get(line.port, "/metrics", &["Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"]);
    assert_eq!(om.status, 200);
    assert!(om.header("content-type").unwrap().starts_with("application/openmetrics-text"), "{:?}", om.headers);
    let plain = get(line.port, "/metrics", &[]);
    assert!(plain.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"), "{:?}", plain.headers);
    let f = python_helper("parse_metrics.py", &["openmetrics"], &om.body);
    python_helper("parse_metrics.py", &["prometheus"], &plain.body);
    // Every family is the station's, counters carry _total, durations are in seconds.
    for (name, fam) in f.as_object().unwrap() {
        assert!(name.starts_with("station_"), "{name}");
        if fam["type"] == "histogram" && name.contains("duration") {
            assert_eq!(fam["unit"], "seconds", "{name}");
        }
    }
    let bench0 = [("bench", "bench-0")];
    assert_eq!(
        sample(&f, "station_devices", "station_devices_total", &[("bench", "bench-0"), ("outcome", "new")]),
        5.0
    );
    assert_eq!(
        sample(&f, "station_devices", "station_devices_total", &[("bench", "bench-1"), ("outcome", "failed")]),
        1.0
    );
    let failures = [("bench", "bench-1"), ("code", "csr-bad-signature")];
    assert_eq!(sample(&f, "station_device_failures", "station_device_failures_total", &failures), 1.0);
    let issuance = "station_issuance_duration_seconds";
    assert_eq!(family(&f, issuance)["type"], "histogram");
    assert_eq!(sample(&f, issuance, "station_issuance_duration_seconds_count", &bench0), 5.0);
    let inf = [("bench", "bench-0"), ("le", "+Inf")];
    assert_eq!(sample(&f, issuance, "station_issuance_duration_seconds_bucket", &inf), 5.0);
    // Each certificate was signed in the HSM and committed in some group.
    assert!(sample(&f, "station_hsm_sign_duration_seconds", "station_hsm_sign_duration_seconds_count", &[]) >= 5.0);
    let commits =
        sample(&f, "station_ledger_commit_duration_seconds", "station_ledger_commit_duration_seconds_count", &[]);
    assert!(commits >= 1.0, "{commits}");
    assert!(sample(&f, "station_ledger_commit_group_size", "station_ledger_commit_group_size_sum", &[]) >= 10.0);
    for name in ["station_frame_errors", "station_frames_resent", "station_port_reopens"] {
        assert_eq!(sample(&f, name, &format!("{name}_total"), &bench0), 0.0, "{name}");
    }
    let state = |bench: &str, s: &str| {
        sample(&f, "station_bench_state", "station_bench_state", &[("bench", bench), ("state", s)])
    };
    assert_eq!((state("bench-0", "idle"), state("bench-0", "busy"), state("bench-0", "port-down")), (1.0, 0.0, 0.0));
    for (name, value) in [("station_hsm_up", 1.0), ("station_ledger_writer_up", 1.0), ("station_ready", 1.0)] {
        assert_eq!(sample(&f, name, name, &[]), value, "{name}");
    }
    assert!(f.get("station_aws_gate_open").is_none(), "no [aws] gate configured");
    assert!(f.get("station_registry_forward_lag_events").is_none(), "no fleet registry reports a lag");
    assert_eq!(line.daemon.stop(), 0);
}

/// What the page shows, read from the browser's rendered DOM: each tile's data attributes and visible text (as
/// the screen shows it: hidden parts left out, CSS capitals applied), and the header's pills.
const PAGE_STATE: &str = "({
    tiles: [...document.querySelectorAll('.tile')].map(t => ({
        bench: t.dataset.bench, alert: t.dataset.alert, state: t.dataset.state, text: t.innerText })),
    pills: Object.fromEntries([...document.querySelectorAll('.pill')].map(p => [p.id, p.innerText])),
    problems: document.getElementById('problems').hidden ? null : document.getElementById('problems').innerText,
})";

fn words(v: &Value) -> String {
    v.as_str().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_line_view_in_headless_chromium_shows_the_devices_and_an_error_tile_for_a_hostile_device() {
    let line = line_with_a_hostile_device(5);
    let url = format!("http://127.0.0.1:{}/", line.port);
    let (dom, shot) = (artifact("line-view.html"), artifact("line-view.png"));
    let _ = std::fs::remove_file(&shot);
    // The page draws from its event stream: wait until the first view has arrived and both tiles are drawn.
    let until =
        "document.getElementById('link').textContent === 'LIVE' && document.querySelectorAll('.tile').length === 2";
    let page = browser(&url, until, PAGE_STATE, Some(&dom), Some(&shot), Duration::from_secs(60))["value"].clone();
    let tiles = page["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), 2, "one tile per bench: {page}");
    let tile = |bench: &str| tiles.iter().find(|t| t["bench"] == bench).unwrap_or_else(|| panic!("no {bench}: {page}"));
    let good = tile("bench-0");
    let text = words(&good["text"]);
    assert_eq!((good["alert"].as_str(), good["state"].as_str()), (Some("ok"), Some("idle")), "{good}");
    assert!(text.starts_with("bench-0 IDLE 5 OK 0 FAILED"), "the counts: {text}");
    assert!(text.contains("LAST DEVICE SIM-000005 OK new"), "{text}");
    for serial in ["SIM-000004", "SIM-000003", "SIM-000002"] {
        assert!(text.contains(&format!("{serial} OK new")), "{serial} among the recent devices: {text}");
    }
    let hostile = tile("bench-1");
    let text = words(&hostile["text"]);
    assert_eq!(hostile["alert"], "error", "the hostile device's tile is an error tile: {hostile}");
    assert!(text.starts_with("bench-1 IDLE 0 OK 1 FAILED"), "{text}");
    assert!(text.contains("LAST DEVICE HOST-BADCSR FAILED csr-bad-signature"), "{text}");
    assert!(text.contains("LAST ERROR"), "{text}");
    assert!(text.contains("The CSR's self-signature does not verify."), "what the code means: {text}");
    assert!(text.contains("the device must sign its CSR with the key it asks a certificate for"), "what to do: {text}");
    assert!(text.contains("device HOST-BADCSR"), "{text}");
    let pills = &page["pills"];
    assert_eq!(
        (words(&pills["link"]), words(&pills["hsm"]), words(&pills["ledger"]), words(&pills["gate"])),
        ("LIVE".into(), "HSM UP".into(), "LEDGER OK".into(), "AWS GATE NOT REQUIRED".into()),
        "{page}"
    );
    assert!(page["problems"].is_null(), "nothing is wrong with the station: {page}");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot, {} bytes", png.len());
    assert!(std::fs::read_to_string(&dom).unwrap().contains("HOST-BADCSR"), "the rendered DOM is kept");
    assert_eq!(line.daemon.stop(), 0);
    line.st.run(&["audit", "verify"]).ok();
}

#[test]
fn readyz_names_a_bench_whose_port_is_missing_while_healthz_stays_alive() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let port = enable_http(&st);
    let pair = PtyPair::new(st.path(), "bench-0");
    let missing = st.file("no-such-adapter");
    let daemon = Daemon::start(&st, &[("bench-0", pair.station_end.as_path()), ("bench-9", missing.as_path())], &[]);
    wait_for_endpoint(port);
    let ready = (0..100)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get(port, "/readyz", &[])
        })
        .find(|a| a.body.contains("bench-9:"))
        .expect("/readyz names bench-9");
    assert_eq!(ready.status, 503);
    let r = ready.json();
    assert_eq!(r["ready"], false);
    assert_eq!(
        (r["hsm"]["ok"].as_bool(), r["ledger"]["ok"].as_bool(), r["gate"]["ok"].as_bool()),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(r["benches"]["ok"], false);
    assert_eq!(r["benches"]["detail"], "1 of 2 benches running");
    let problems = r["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{r}");
    let p = problems[0].as_str().unwrap();
    assert!(p.starts_with("bench-9: cannot open ") && p.contains("no-such-adapter"), "{p}");
    let h = get(port, "/healthz", &[]);
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("alive")));
    // The line view carries the same problem, and the endpoint answers nothing else.
    assert!(get(port, "/line.json", &[]).json()["problems"][0].as_str().unwrap().starts_with("bench-9:"));
    assert_eq!(get(port, "/nothing-here", &[]).status, 404);
    // A web page elsewhere cannot read a loopback endpoint through a name it controls (DNS rebinding).
    let foreign = get(port, "/metrics", &["Host: attacker.example:9464"]);
    assert_eq!(foreign.status, 421, "{}", foreign.body);
    let page = get(port, "/", &["Host: localhost"]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_port_already_taken_stops_serve_with_http_bind_failed_before_any_bench_starts() {
    let st = TestStation::new();
    st.create_ca("ca-1", "ec-p256");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    st.edit_config(|t| format!("{t}\n[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let pair = PtyPair::new(st.path(), "bench-0");
    let run = st.run(&["serve", "--bench", &format!("bench-0={}", pair.station_end.display())]);
    run.fails_with("http-bind-failed", 1);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains(&port.to_string()), "{}", run.stdout);
    assert_eq!(st.issuance_count(), 0);
}

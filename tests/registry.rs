//! Issue 13, the fleet registry: real PostgreSQL servers (scripts/pg.sh), stations made by `station init` with their
//! own SoftHSM tokens and ledgers, `station serve` with station-devsim simulators on ptys.

mod common;
use common::bench::*;
use common::pg::Pg;
use common::sim::{chain_files, finish, verify_chains};
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A station in device mode with a CA, joined to `pg`, with `n` certificates issued by hand.
fn station_with_issuances(id: &str, pg: &Pg, n: usize) -> TestStation {
    let st = TestStation::with_id(id);
    st.create_ca(&format!("{id}-ca"), "ec-p256");
    st.join_registry(pg, "");
    for i in 0..n {
        let (csr, _) = openssl_csr(st.path(), &format!("d{i}"), "ec:P-256", &format!("/CN={id}-DEV-{i:04}"), &[]);
        st.issue(&csr, &format!("d{i}.pem"), &[]).ok();
    }
    st
}

fn init_registry(st: &TestStation) {
    st.run(&["registry", "init"]).ok();
}

/// Waits until the registry holds every event of the station's ledger.
fn wait_drained(pg: &Pg, st: &TestStation, id: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let head = st.ledger_head();
        let have = pg.count(&format!("SELECT COALESCE(MAX(seq), 0) FROM registry.events WHERE station_id = '{id}'"));
        if have == head {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: the registry holds {have} of {head} events after {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn push_forwards_every_event_once_with_signed_heads_and_registry_verify_passes() {
    let pg = Pg::start();
    let st = station_with_issuances("line-a", &pg, 5);
    init_registry(&st);
    let first = st.run(&["registry", "push"]).ok().json();
    let head = st.ledger_head();
    assert_eq!((first["from_seq"].as_i64(), first["to_seq"].as_i64()), (Some(0), Some(head)), "{first}");
    // Idempotent: a second push sends nothing.
    let again = st.run(&["registry", "push"]).ok().json();
    assert_eq!(again["events"], 0, "{again}");
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), head);
    assert_eq!(pg.count("SELECT count(*) FROM registry.issuances"), st.issuance_count());
    assert!(pg.count("SELECT count(*) FROM registry.heads") >= 1);
    // The registry's copy is byte-for-byte the ledger's chain (compared with sqlite3 and psql independently).
    let ledger = sqlite(
        &st.file("station.db"),
        "SELECT group_concat(row_hash, ',') FROM (SELECT row_hash FROM events ORDER BY seq)",
    );
    let registry = pg.sql("SELECT string_agg(row_hash, ',' ORDER BY seq) FROM registry.events");
    assert_eq!(ledger, registry);
    let v = st.run(&["registry", "verify"]).ok().json();
    assert_eq!(v["ok"], true, "{v}");
    let found = st.run(&["registry", "find", "line-a-DEV-0003"]).ok().json();
    let i = &found["issuances"][0];
    assert_eq!((i["station"].as_str(), i["ca"].as_str()), (Some("line-a"), Some("line-a-ca")), "{found}");
    let missing = st.run(&["registry", "find", "NO-SUCH-SERIAL"]);
    assert_eq!(missing.status, 9, "{}", missing.stdout);
    let status = st.run(&["registry", "status"]).ok().json();
    assert_eq!((status[0]["station"].as_str(), status[0]["backlog"].as_i64()), (Some("line-a"), Some(0)), "{status}");
}

#[test]
fn registry_init_is_idempotent_and_a_newer_schema_is_refused_with_nothing_written() {
    let pg = Pg::start();
    let st = station_with_issuances("line-a", &pg, 1);
    let first = st.run(&["registry", "init"]).ok().json();
    assert_eq!(first["applied"], serde_json::json!([1, 2]), "{first}");
    let second = st.run(&["registry", "init"]).ok().json();
    assert_eq!(second["applied"], serde_json::json!([]), "{second}");
    pg.sql("INSERT INTO registry.schema_version (version) VALUES (99)");
    st.run(&["registry", "init"]).fails_with("registry-schema-too-new", 10);
    st.run(&["registry", "push"]).fails_with("registry-schema-too-new", 10);
    st.run(&["registry", "status"]).fails_with("registry-schema-too-new", 10);
    assert_eq!(pg.count("SELECT count(*) FROM registry.stations"), 0);
    assert_eq!(pg.count("SELECT max(version) FROM registry.schema_version"), 99);
    // A registry nobody initialised is named as such.
    let fresh = Pg::start();
    let other = station_with_issuances("line-b", &fresh, 0);
    other.run(&["registry", "push"]).fails_with("registry-schema-missing", 10);
}

#[test]
fn a_wrong_password_or_an_open_password_file_is_refused_with_nothing_written() {
    let pg = Pg::start();
    let st = station_with_issuances("line-a", &pg, 1);
    init_registry(&st);
    let wrong = st.run_env(&["registry", "push"], &[("STATION_REGISTRY_PASSWORD", "not-the-password")]);
    wrong.fails_with("registry-auth-failed", 10);
    assert!(!wrong.stdout.contains("not-the-password") && !wrong.stderr.contains("not-the-password"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(st.file("registry-password"), std::fs::Permissions::from_mode(0o644)).unwrap();
    st.run(&["registry", "push"]).fails_with("registry-password-file-permissions", 10);
    assert_eq!(pg.count("SELECT count(*) FROM registry.stations"), 0);
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), 0);
}

#[test]
fn a_station_id_already_used_by_another_stations_ledger_and_key_is_refused_with_nothing_written() {
    let pg = Pg::start();
    let a = station_with_issuances("line-a", &pg, 2);
    init_registry(&a);
    a.run(&["registry", "push"]).ok();
    let before = pg.count("SELECT count(*) FROM registry.events");
    // Another station (its own token, key and ledger) configured with the same id.
    let b = station_with_issuances("line-b", &pg, 3);
    b.edit_config(|t| t.replace("id = \"line-b\"", "id = \"line-a\""));
    let run = b.run(&["registry", "push"]);
    run.fails_with("registry-station-conflict", 10);
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("line-a-ca"), "{}", run.stdout);
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), before);
    assert_eq!(pg.count("SELECT count(*) FROM registry.station_cas"), 1);
    a.run(&["registry", "verify"]).ok();
}

#[test]
fn a_changed_deleted_or_reordered_row_in_postgresql_is_named_by_registry_verify() {
    let pg = Pg::start();
    let stations: Vec<TestStation> =
        ["st-changed", "st-deleted", "st-reordered"].iter().map(|id| station_with_issuances(id, &pg, 4)).collect();
    init_registry(&stations[0]);
    for st in &stations {
        st.run(&["registry", "push"]).ok();
    }
    stations[0].run(&["registry", "verify"]).ok();
    pg.sql(
        "UPDATE registry.events SET detail = replace(detail, 'st-changed-DEV-0001', 'st-changed-DEV-9999') \
         WHERE station_id = 'st-changed' AND seq = 5",
    );
    pg.sql("DELETE FROM registry.events WHERE station_id = 'st-deleted' AND seq = 4");
    // Rows 3 and 6 swap places (the primary key allows no two rows at one seq, so through a free seq).
    let swap = |from: i64, to: i64| {
        format!("UPDATE registry.events SET seq = {to} WHERE station_id = 'st-reordered' AND seq = {from};")
    };
    pg.sql(&format!("BEGIN; {} {} {} COMMIT;", swap(3, -1), swap(6, 3), swap(-1, 6)));
    let run = stations[0].run(&["registry", "verify"]);
    assert_eq!(run.status, 9, "{}", run.stdout);
    let v = run.json();
    let findings = v["findings"].as_array().unwrap();
    let named = |station: &str, check: &str, subject: &str| {
        findings.iter().any(|f| f["station"] == station && f["check"] == check && f["subject"] == subject)
    };
    assert!(named("st-changed", "event-altered", "event 5"), "{v:#}");
    assert!(named("st-deleted", "event-missing", "event 4"), "{v:#}");
    assert!(named("st-reordered", "event-reordered", "event 3"), "{v:#}");
    assert!(named("st-reordered", "event-reordered", "event 6"), "{v:#}");
    // The text names them for a person too.
    let text = Command::new(STATION)
        .args(["-c", stations[0].config().to_str().unwrap(), "registry", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("[event-missing] station st-deleted event 4"), "{text}");
}

#[test]
fn with_an_audit_key_the_registry_heads_are_signed_by_it_and_registry_verify_checks_them() {
    let pg = Pg::start();
    let st = station_with_issuances("line-a", &pg, 2);
    init_registry(&st);
    st.run(&["registry", "push"]).ok();
    // The audit key is made and configured: from now on it signs the heads, the CA key signs certificates only.
    st.run(&["audit", "key", "create", "--label", "line-a-audit"]).ok();
    st.edit_config(|t| format!("{t}\n[audit]\nkey = \"line-a-audit\"\n"));
    for i in 2..4 {
        let (csr, _) = openssl_csr(st.path(), &format!("d{i}"), "ec:P-256", &format!("/CN=line-a-DEV-{i:04}"), &[]);
        st.issue(&csr, &format!("d{i}.pem"), &[]).ok();
    }
    st.run(&["registry", "push"]).ok();
    let heads = pg.sql(
        "SELECT h.audit_key_fingerprint IS NOT NULL, substring(h.signed from '(\\S+)\\s*$') FROM registry.heads h \
         WHERE station_id = 'line-a' ORDER BY seq",
    );
    let rows: Vec<&str> = heads.lines().collect();
    assert_eq!(rows.len(), 2, "{heads}");
    assert_eq!(rows[0], "f|ca=line-a-ca", "the first batch, by the CA: {heads}");
    assert_eq!(rows[1], "t|audit-key=line-a-audit", "the second batch, by the audit key: {heads}");
    let ak = pg.sql("SELECT label || ' ' || fingerprint FROM registry.station_audit_keys WHERE station_id = 'line-a'");
    let shown = st.run(&["audit", "key", "show"]).ok().json();
    assert_eq!(ak, format!("line-a-audit {}", shown["fingerprint"].as_str().unwrap()), "{shown}");
    let v = st.run(&["registry", "verify"]).ok().json();
    assert_eq!(v["ok"], true, "{v}");

    // A forged signature on the audit-signed head, and the audit certificate swapped for the CA's, are each named.
    pg.sql(
        "UPDATE registry.heads SET signature = overlay(signature placing 'ff' from 20 for 2) \
         WHERE station_id = 'line-a' AND audit_key_fingerprint IS NOT NULL",
    );
    let run = st.run(&["registry", "verify"]);
    assert_eq!(run.status, 9, "{}", run.stdout);
    let v = run.json();
    let f = &v["findings"][0];
    assert_eq!(f["check"], "signed-head", "{v}");
    assert!(f["problem"].as_str().unwrap().contains("audit key line-a-audit's certificate"), "{v}");
    pg.sql(
        "UPDATE registry.station_audit_keys k SET cert_der = c.cert_der FROM registry.station_cas c \
         WHERE k.station_id = 'line-a' AND c.station_id = 'line-a'",
    );
    let v = st.run(&["registry", "verify"]).json();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["problem"].as_str().unwrap().contains("is not the one its fingerprint names")),
        "{v}"
    );
}

/// One station serving `benches` pty benches, with simulators started on each; returns the daemon and simulators.
struct Serving {
    st: TestStation,
    ca: PathBuf,
    _pairs: Vec<PtyPair>,
    daemon: Daemon,
    sims: Vec<std::process::Child>,
}

fn serve_with_sims(st: TestStation, benches: usize, count: usize, extra_sim: &[&str]) -> Serving {
    let ca = st.ca_pem(&format!("{}-ca", station_id(&st)));
    let pairs: Vec<PtyPair> = (0..benches).map(|i| PtyPair::new(st.path(), &format!("bench-{i}"))).collect();
    let names: Vec<String> = (0..benches).map(|i| format!("bench-{i}")).collect();
    let refs: Vec<(&str, &Path)> =
        names.iter().zip(&pairs).map(|(n, p)| (n.as_str(), p.station_end.as_path())).collect();
    let daemon = Daemon::start(&st, &refs, &[]);
    let out = st.file("devices");
    let count = count.to_string();
    let sims = pairs
        .iter()
        .map(|p| {
            let mut args = vec!["--count", count.as_str(), "--pregenerate", "--backoff", "200ms", "--retries", "30"];
            args.extend_from_slice(extra_sim);
            sim::spawn(&p.device_end, &ca, &out, &args)
        })
        .collect();
    Serving { st, ca, _pairs: pairs, daemon, sims }
}

/// `station_registry_forward_lag_events` and `station_registry_forward_lag_seconds` from the daemon's `/metrics`.
fn forward_lag(port: u16) -> (f64, f64) {
    let body = common::http::get(port, "/metrics", &[]).body;
    let value = |name: &str| -> f64 {
        let line =
            body.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (value("station_registry_forward_lag_events"), value("station_registry_forward_lag_seconds"))
}

fn station_id(st: &TestStation) -> String {
    let text = std::fs::read_to_string(st.config()).unwrap();
    let line = text.lines().find(|l| l.starts_with("id = ")).unwrap();
    line.trim_start_matches("id = ").trim_matches('"').to_string()
}

fn fleet_station(id: &str, pg: &Pg, registry_extra: &str) -> TestStation {
    let st = TestStation::with_id(id);
    st.create_ca(&format!("{id}-ca"), "ec-p256");
    st.station_serials();
    st.join_registry(pg, registry_extra);
    st
}

#[test]
fn three_stations_serving_at_once_in_station_mode_never_issue_the_same_serial_and_the_registry_adds_up() {
    let pg = Pg::start();
    // Small blocks, so that the three stations lease many times while they race.
    let ids = ["line-1", "line-2", "line-3"];
    let stations: Vec<TestStation> =
        ids.iter().map(|id| fleet_station(id, &pg, "lease_size = 16\nlease_low_water = 6")).collect();
    init_registry(&stations[0]);
    let serving: Vec<Serving> = stations.into_iter().map(|st| serve_with_sims(st, 2, 40, &[])).collect();
    let mut all_serials = Vec::new();
    for s in serving {
        let Serving { st, ca, _pairs, daemon, sims } = s;
        for sim in sims {
            let (code, v) = finish(sim);
            assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(40)), "{v}");
        }
        assert_eq!(daemon.stop(), 0);
        let files = chain_files(&st.file("devices"));
        assert_eq!(files.len(), 80);
        verify_chains(&ca, &files);
        let id = station_id(&st);
        wait_drained(&pg, &st, &id, 30);
        let serials = sqlite(&st.file("station.db"), "SELECT serial FROM issuances ORDER BY id");
        all_serials.extend(serials.lines().map(String::from));
        assert_eq!(
            pg.count(&format!("SELECT count(*) FROM registry.issuances WHERE station_id = '{id}'")),
            st.issuance_count()
        );
        let leases_in_ledger = sqlite(&st.file("station.db"), "SELECT COUNT(*) FROM serial_leases");
        let leases_in_registry = pg.count(&format!("SELECT count(*) FROM registry.leases WHERE station_id = '{id}'"));
        assert_eq!(leases_in_ledger.parse::<i64>().unwrap(), leases_in_registry, "{id}: every lease recorded");
        st.run(&["audit", "verify"]).ok();
    }
    let unique: BTreeSet<&String> = all_serials.iter().collect();
    assert_eq!((all_serials.len(), unique.len()), (240, 240), "every serial unique across the factory");
    assert_eq!(pg.count("SELECT count(*) FROM registry.issuances"), 240);
    assert_eq!(pg.count("SELECT count(DISTINCT serial) FROM registry.issuances"), 240);
    assert!(pg.count("SELECT count(*) FROM registry.leases") >= 15, "stations leased block after block");
    let order: String = all_serials.iter().map(|s| format!("{s}\n")).collect();
    let order_file = pg.dir.path().join("order.txt");
    std::fs::write(&order_file, order).unwrap();
    let any = TestStation::with_id("auditor");
    any.join_registry(&pg, "");
    let rec = any.run(&["registry", "reconcile", "--expected", order_file.to_str().unwrap()]).ok().json();
    assert_eq!(rec["issued"], 240, "{rec}");
    let v = any.run(&["registry", "verify"]).ok().json();
    assert_eq!(v["ok"], true, "{v}");
    let status = any.run(&["registry", "status"]).ok().json();
    assert_eq!(status.as_array().unwrap().len(), 3, "{status}");
    assert!(status.as_array().unwrap().iter().all(|s| s["backlog"] == 0 && s["issuances"] == 80), "{status}");
    let export = any.file("fleet.csv");
    any.run(&["registry", "export", "--format", "csv", "--out", export.to_str().unwrap()]).ok();
    let mut rdr = csv::Reader::from_path(&export).unwrap();
    assert_eq!(rdr.records().count(), 240);
    let one = any.file("line-2.json");
    any.run(&["registry", "export", "--format", "json", "--station", "line-2", "--out", one.to_str().unwrap()]).ok();
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&one).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 80);
}

#[test]
fn with_postgresql_down_stations_issue_from_their_blocks_then_the_backlog_drains_with_nothing_lost_or_doubled() {
    let pg = Pg::start();
    let st = fleet_station("line-1", &pg, "lease_size = 30\nlease_low_water = 5");
    init_registry(&st);
    let port = common::http::enable_http(&st);
    let s = serve_with_sims(st, 1, 10, &[]);
    let (code, v) = finish(s.sims.into_iter().next().unwrap());
    assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(10)), "{v}");
    let Serving { st, ca, _pairs, daemon, .. } = Serving { sims: Vec::new(), ..s };
    wait_drained(&pg, &st, "line-1", 20);
    pg.kill();
    // 30 leased, 10 used: 20 more go out of the block while the registry is down; the 21st device waits for
    // the registry (serial-lease-unavailable, retryable) and is served once it is back.
    let out = st.file("devices");
    let sim = sim::spawn(
        &_pairs[0].device_end,
        &ca,
        &out,
        &["--count", "21", "--pregenerate", "--backoff", "200ms", "--retries", "60"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("serial-lease-unavailable")) {
        assert!(Instant::now() < deadline, "no device was told serial-lease-unavailable: {lines:#?}");
        lines.push(daemon.line(60));
    }
    assert!(lines.iter().any(|l| l.contains("REGISTRY unreachable")), "{lines:#?}");
    assert_eq!(st.issuance_count(), 30, "issued from the leased block while the registry was down");
    let (events, age) = forward_lag(port);
    assert!(events >= 40.0 && age >= 0.0, "/metrics shows the backlog while PostgreSQL is down: {events} event(s)");
    pg.resume();
    let (code, v) = finish(sim);
    assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(21)), "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while forward_lag(port) != (0.0, 0.0) {
        assert!(Instant::now() < deadline, "the lag on /metrics never went back to 0: {:?}", forward_lag(port));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.stop(), 0);
    wait_drained(&pg, &st, "line-1", 30);
    verify_chains(&ca, &chain_files(&out));
    assert_eq!(pg.count("SELECT count(*) FROM registry.issuances"), 31);
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), st.ledger_head());
    assert_eq!(pg.count("SELECT count(DISTINCT seq) FROM registry.events"), st.ledger_head());
    st.run(&["registry", "verify"]).ok();
    st.run(&["audit", "verify"]).ok();
}

#[test]
fn a_push_or_a_daemon_killed_mid_batch_leaves_no_gap_and_no_duplicate_after_restart() {
    let pg = Pg::start();
    let st = station_with_issuances("line-a", &pg, 6);
    st.edit_config(|t| t.replace("poll_ms = 50", "poll_ms = 50\nbatch_max = 4"));
    init_registry(&st);
    let marker = st.file("paused");
    let pause = |cmd: &mut Command| {
        cmd.env("STATION_TEST_PAUSE_POINT", "registry-batch").env("STATION_TEST_PAUSE_MARKER", &marker);
    };
    let wait_marker = |child: &mut std::process::Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !marker.exists() {
            assert!(child.try_wait().unwrap().is_none(), "the process ended before its batch");
            assert!(Instant::now() < deadline, "the batch never reached its commit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
        let _ = child.wait();
        std::fs::remove_file(&marker).unwrap();
    };
    // 1. `registry push`, killed inside its first batch's transaction.
    let mut cmd = Command::new(STATION);
    cmd.args(["-c", st.config().to_str().unwrap(), "registry", "push"]);
    pause(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_marker(&mut child);
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), 0, "the killed batch was rolled back whole");
    // 2. One batch goes through; then `serve`'s forwarder is killed inside the next one.
    std::process::Command::new(STATION)
        .args(["-c", st.config().to_str().unwrap(), "registry", "push"])
        .output()
        .unwrap();
    let pushed = pg.count("SELECT count(*) FROM registry.events");
    assert_eq!(pushed, st.ledger_head());
    for i in 6..12 {
        let (csr, _) = openssl_csr(st.path(), &format!("d{i}"), "ec:P-256", &format!("/CN=line-a-DEV-{i:04}"), &[]);
        st.issue(&csr, &format!("d{i}.pem"), &[]).ok();
    }
    let pair = PtyPair::new(st.path(), "bench-0");
    let mut cmd = Command::new(STATION);
    cmd.args(["-c", st.config().to_str().unwrap(), "serve", "--bench"])
        .arg(format!("bench-0={}", pair.station_end.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    pause(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    wait_marker(&mut child);
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), pushed, "nothing of the killed batch arrived");
    // 3. The daemon again, unpaused: it resumes where the registry is.
    let daemon = Daemon::start(&st, &[("bench-0", pair.station_end.as_path())], &[]);
    wait_drained(&pg, &st, "line-a", 30);
    assert_eq!(daemon.stop(), 0);
    wait_drained(&pg, &st, "line-a", 30);
    let head = st.ledger_head();
    assert_eq!(pg.count("SELECT count(*) FROM registry.events"), head, "no gap, no duplicate");
    assert_eq!(pg.count("SELECT max(seq) - min(seq) + 1 FROM registry.events"), head);
    st.run(&["registry", "verify"]).ok();
}

#[test]
fn tls_to_the_registry_checks_the_server_against_ca_file_and_refuses_another_ca() {
    let pg = Pg::start_with(&["--tls"]);
    let st = station_with_issuances("line-a", &pg, 1);
    let ca = pg.vars["PG_CA"].clone();
    st.edit_config(|t| {
        t.replace(
            "password_file = \"registry-password\"",
            &format!("password_file = \"registry-password\"\nca_file = \"{ca}\""),
        )
    });
    init_registry(&st);
    // The server accepts TCP only through `hostssl` (scripts/pg.sh --tls): the push went over TLS.
    st.run(&["registry", "push"]).ok();
    // A CA that did not sign the server's certificate.
    let other = OpensslCa::new(st.path(), "other", "/CN=not the registry CA");
    st.edit_config(|t| t.replace(&ca, other.cert.to_str().unwrap()));
    st.run(&["registry", "status"]).fails_with("registry-tls-failed", 10);
    // The server refuses plain TCP.
    st.edit_config(|t| t.replace("sslmode=require", "sslmode=disable"));
    st.run(&["registry", "status"]).fails_with("registry-auth-failed", 10);
}

/// The text of a config's `[hsm]` table.
fn hsm_section(text: &str) -> String {
    let start = text.find("\n[hsm]").expect("[hsm]") + 1;
    let end = text[start + 5..].find("\n[").map_or(text.len(), |i| start + 5 + i + 1);
    text[start..end].to_string()
}

#[test]
fn one_intermediate_per_station_under_the_offline_root_and_the_registry_records_each_stations_ca() {
    let pg = Pg::start();
    let root_dir = tempfile::tempdir().unwrap();
    let root = OpensslCa::new(root_dir.path(), "root", "/CN=Factory Offline Root/O=Example Ltd");
    let mut fingerprints = Vec::new();
    let mut stations = Vec::new();
    for id in ["line-1", "line-2"] {
        let st = TestStation::with_id(id);
        let name = format!("{id}-int");
        let csr = st.file("int.csr");
        st.run(&["ca", "create", "--name", &name, "--intermediate", "--csr-out", csr.to_str().unwrap()]).ok();
        let cert = root.sign(&csr, &format!("{id}-int.pem"), CA_EXT);
        st.run(&[
            "ca",
            "import",
            "--name",
            &name,
            "--cert",
            cert.to_str().unwrap(),
            "--chain",
            root.cert.to_str().unwrap(),
        ])
        .ok();
        st.join_registry(&pg, "");
        let (dcsr, _) = openssl_csr(st.path(), "d", "ec:P-256", &format!("/CN={id}-DEV-1"), &[]);
        st.issue(&dcsr, "d.pem", &[]).ok();
        let chain = st.file("d.pem");
        let (ok, msg) = openssl(&[
            "verify",
            "-x509_strict",
            "-CAfile",
            root.cert.to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            chain.to_str().unwrap(),
        ]);
        assert!(ok, "{id}: {msg}");
        if stations.is_empty() {
            init_registry(&st);
        }
        st.run(&["registry", "push"]).ok();
        let found = st.run(&["registry", "find", &format!("{id}-DEV-1")]).ok().json();
        let i = &found["issuances"][0];
        assert_eq!((i["station"].as_str(), i["ca"].as_str()), (Some(id), Some(name.as_str())), "{found}");
        fingerprints.push(i["ca_fingerprint"].as_str().unwrap().to_string());
        stations.push(st);
    }
    assert_ne!(fingerprints[0], fingerprints[1], "each station has its own intermediate");
    let status = stations[0].run(&["registry", "status"]).ok().json();
    assert_eq!(status[0]["cas"], serde_json::json!(["line-1-int"]), "{status}");
    assert_eq!(status[1]["cas"], serde_json::json!(["line-2-int"]), "{status}");
    stations[0].run(&["registry", "verify"]).ok();
}

#[test]
fn one_ca_key_in_a_shared_token_serves_two_stations_that_the_registry_tells_apart_by_their_ledgers() {
    // One SoftHSM token that both stations log into stands in for a network HSM partition.
    let pg = Pg::start();
    let a = TestStation::with_id("line-1");
    let ca_pem = a.create_ca("shared-ca", "ec-p256");
    let b = TestStation::with_id("line-2");
    let a_hsm = hsm_section(&std::fs::read_to_string(a.config()).unwrap());
    let a_pin = a.file("hsm-pin");
    let a_hsm = a_hsm.replace("pin_file = \"hsm-pin\"", &format!("pin_file = \"{}\"", a_pin.display()));
    b.edit_config(|t| t.replace(&hsm_section(&t), &a_hsm));
    // Importing a certificate whose key is not in the token under that label is refused.
    let other = TestStation::with_id("other");
    let other_pem = other.create_ca("other-ca", "ec-p256");
    b.run(&["ca", "import", "--name", "other-ca", "--cert", other_pem.to_str().unwrap(), "--existing-key"])
        .fails_with("hsm-key-missing", 4);
    b.run(&["ca", "import", "--name", "shared-ca", "--cert", ca_pem.to_str().unwrap(), "--existing-key"]).ok();
    for (st, id) in [(&a, "line-1"), (&b, "line-2")] {
        st.join_registry(&pg, "");
        for n in 0..2 {
            let (csr, _) = openssl_csr(st.path(), &format!("d{n}"), "ec:P-256", &format!("/CN={id}-DEV-{n}"), &[]);
            st.issue(&csr, &format!("d{n}.pem"), &[]).ok();
            let (ok, msg) = openssl(&[
                "verify",
                "-CAfile",
                ca_pem.to_str().unwrap(),
                st.file(&format!("d{n}.pem")).to_str().unwrap(),
            ]);
            assert!(ok, "{msg}");
        }
    }
    init_registry(&a);
    a.run(&["registry", "push"]).ok();
    b.run(&["registry", "push"]).ok();
    let status = a.run(&["registry", "status"]).ok().json();
    assert_eq!(status.as_array().unwrap().len(), 2, "two stations, one key: {status}");
    assert!(status.as_array().unwrap().iter().all(|s| s["cas"] == serde_json::json!(["shared-ca"])), "{status}");
    let one = a.run(&["registry", "find", "line-2-DEV-1"]).ok().json();
    assert_eq!(one["issuances"][0]["station"], "line-2", "{one}");
    a.run(&["registry", "verify"]).ok();
}

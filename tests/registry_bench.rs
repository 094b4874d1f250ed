//! Measurements for docs/PERFORMANCE.md (run by scripts/bench-registry.sh; ignored in the test suite): the station's
//! peak issuance rate against the forwarder's throughput, the registry's lag under full load, and the time to drain
//! a backlog of 100,000 events. One real PostgreSQL server, one station with a SoftHSM token.

mod common;
use common::pg::Pg;
use common::*;
use station::config::Config;
use station::issue::{Engine, IssueRequest};
use station::registry::{forward, signer::HeadSigner};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn csrs(from: usize, n: usize) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, format!("PERF-{i:07}"));
            p.serialize_request(&key).unwrap().der().to_vec()
        })
        .collect()
}

/// Issues every CSR from `threads` threads, each device as the daemon records one that confirms: issued, confirmed.
fn issue_all(engine: &Arc<Engine>, csrs: Vec<Vec<u8>>, threads: usize) -> f64 {
    let chunks: Vec<Vec<Vec<u8>>> = {
        let mut v = vec![Vec::new(); threads];
        for (i, c) in csrs.into_iter().enumerate() {
            v[i % threads].push(c);
        }
        v
    };
    let t0 = Instant::now();
    let workers: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(w, list)| {
            let e = engine.clone();
            std::thread::spawn(move || {
                for csr in list {
                    let req = IssueRequest { csr, bench: format!("bench-{w}"), ..Default::default() };
                    let issued = e.issue(&req).unwrap();
                    e.confirm(&issued, &req.bench, &issued.chain_sha256.clone()).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    t0.elapsed().as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
#[ignore = "a benchmark: scripts/bench-registry.sh"]
fn measure_forwarding_against_peak_issuance() {
    let devices = env_n("PERF_DEVICES", 3000);
    let threads = env_n("PERF_THREADS", 8);
    let drain_events = env_n("PERF_DRAIN_EVENTS", 100_000);
    let pg = Pg::start();
    let st = TestStation::with_id("perf-1");
    st.create_ca("perf-ca", "ec-p256");
    st.join_registry(&pg, "");
    st.edit_config(|t| t.replace("poll_ms = 50", "poll_ms = 20").replace("heartbeat_secs = 1", "heartbeat_secs = 5"));
    st.run(&["registry", "init"]).ok();
    let cfg = Config::load(&st.config()).unwrap();
    let hsm = open_hsm(&cfg);
    let engine = Arc::new(Engine::open(&cfg, hsm.clone()).unwrap());
    let signer = Arc::new(HeadSigner::new(hsm.clone(), cfg.ledger.path.clone(), cfg.audit.key.clone()));
    println!("machine: {} cores; devices per phase {devices}, issuing threads {threads}", num_cpus());

    // A. Peak issuance, nothing forwarding.
    let secs = issue_all(&engine, csrs(0, devices), threads);
    let events_a = st.ledger_head();
    println!("RESULT peak-issuance {:.0} devices/s {:.0} events/s", devices as f64 / secs, (devices * 2) as f64 / secs);
    // B. The forwarder alone on that backlog.
    let t0 = Instant::now();
    let rep = forward::push(&cfg, &signer).unwrap();
    let fsecs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT forward-alone {:.0} events/s ({} events, {} batches)",
        rep.events as f64 / fsecs,
        rep.events,
        rep.batches
    );
    assert_eq!(rep.to_seq, events_a);

    // C. Full load with the forwarder running: sample both heads every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(forward::ForwardState::default());
    let r = cfg.registry.clone().unwrap();
    let fwd = forward::spawn(r, &cfg, signer.clone(), stop.clone(), state.clone(), Box::new(|_| {})).unwrap();
    // The forwarder first finds the registry's head (everything of phase B); sampling starts from there.
    let from = st.ledger_head();
    let t_wait = Instant::now();
    while state.registry_seq.load(Ordering::Relaxed) < from {
        assert!(t_wait.elapsed() < Duration::from_secs(30), "the forwarder did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, state, db) = (sampling.clone(), state.clone(), cfg.ledger.path.clone());
        std::thread::spawn(move || {
            let conn = station::ledger::open_connection(&db).unwrap();
            let t0 = Instant::now();
            let (mut seen_ledger, mut seen_registry) = (HashMap::new(), HashMap::new());
            let (mut last_l, mut last_r, mut max_backlog) = (from, from, 0i64);
            while sampling.load(Ordering::Relaxed) {
                let now = t0.elapsed().as_secs_f64();
                let l: i64 = conn.query_row("SELECT COALESCE(MAX(seq),0) FROM events", [], |r| r.get(0)).unwrap();
                let r = state.registry_seq.load(Ordering::Relaxed);
                for s in last_l + 1..=l {
                    seen_ledger.insert(s, now);
                }
                for s in last_r + 1..=r {
                    seen_registry.insert(s, now);
                }
                (last_l, last_r) = (l.max(last_l), r.max(last_r));
                max_backlog = max_backlog.max(l - r);
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut lags: Vec<f64> =
                seen_registry.iter().filter_map(|(s, tr)| seen_ledger.get(s).map(|tl| (tr - tl).max(0.0))).collect();
            lags.sort_by(f64::total_cmp);
            (lags, max_backlog)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let secs = issue_all(&engine, csrs(devices, devices), threads);
    let backlog_at_end = st.ledger_head() - state.registry_seq.load(Ordering::Relaxed);
    let t_drain = Instant::now();
    while state.registry_seq.load(Ordering::Relaxed) < st.ledger_head() {
        assert!(t_drain.elapsed() < Duration::from_secs(120), "the forwarder did not catch up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let catch_up = t_drain.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    sampling.store(false, Ordering::Relaxed);
    let (lags, max_backlog) = sampler.join().unwrap();
    let events_c = st.ledger_head() - from;
    println!(
        "RESULT under-load issuance {:.0} devices/s {:.0} events/s; forwarded while issuing; backlog max {max_backlog} events, at the end {backlog_at_end}, caught up {catch_up:.2} s later",
        devices as f64 / secs,
        events_c as f64 / secs
    );
    println!(
        "RESULT lag p50 {:.0} ms p99 {:.0} ms max {:.0} ms ({} events sampled every 10 ms)",
        pct(&lags, 0.5) * 1e3,
        pct(&lags, 0.99) * 1e3,
        pct(&lags, 1.0) * 1e3,
        lags.len()
    );
    stop.store(true, Ordering::Relaxed);
    fwd.join().unwrap();

    // D. A backlog of `drain_events` events (the size of an `issued` event's detail), drained by one push.
    let detail = sqlite(&st.file("station.db"), "SELECT detail FROM events WHERE kind = 'issued' LIMIT 1");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (writer, detail) = (engine.writer().clone(), detail.clone());
            std::thread::spawn(move || {
                for i in 0..drain_events / 4 {
                    writer.event("perf-backlog", &format!("B-{w}-{i}"), detail.clone()).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    engine.close();
    let backlog = st.ledger_head() - pg.count("SELECT max(seq) FROM registry.events WHERE station_id = 'perf-1'");
    let t0 = Instant::now();
    let rep = forward::push(&cfg, &signer).unwrap();
    let dsecs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT drain {} events in {dsecs:.1} s ({:.0} events/s, {} batches of at most {})",
        rep.events,
        rep.events as f64 / dsecs,
        rep.batches,
        cfg.registry.as_ref().unwrap().batch_max
    );
    assert_eq!(rep.events, backlog);
    st.run(&["registry", "verify"]).ok();
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

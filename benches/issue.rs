//! The issuance engine end to end (parse + verify CSR, HSM sign, durable group-committed ledger row)
//! on pre-generated CSRs; and the seeds' way (one `openssl x509 -req` per device plus `cat`).
//! scripts/bench-issue.sh makes the stations and runs this once per CA (a PKCS#11 module serves one
//! token configuration per process), then once for the seeds' way.
//!
//! `issue engine STATION_TOML LABEL DEVICES`: 1 caller, 64 closed-loop callers, then 64 callers paced
//! (open loop) at half the measured 64-caller capacity, with latency measured from each request's
//! scheduled time (no coordinated omission).
//! `issue seeds DEVICES`: the seeds' way.
//! Output lines starting with `RESULT` are machine-readable: RESULT label callers rate p50_ms p99_ms.

use station::config::Config;
use station::hsm::Hsm;
use station::issue::{Engine, IssueRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["engine", toml, label, devices] => engine_runs(toml, label, devices.parse().expect("DEVICES")),
        ["seeds", devices] => {
            let n: usize = devices.parse().expect("DEVICES");
            let rate = seeds_way(&make_csrs(n));
            println!("seeds' way (openssl x509 -req + cat per device, file CA key): {rate:.1} devices/s ({n} devices)");
            println!("RESULT seeds 1 {rate:.1} 0 0");
        }
        _ => {
            eprintln!("usage: issue engine STATION_TOML LABEL DEVICES | issue seeds DEVICES");
            std::process::exit(2);
        }
    }
}

fn engine_runs(toml: &str, label: &str, devices: usize) {
    let csrs = make_csrs(devices);
    let cfg = Config::load(std::path::Path::new(toml)).expect("config");
    for (k, v) in &cfg.hsm.module_env {
        // SAFETY: the benchmark has not started any thread yet.
        unsafe { std::env::set_var(k, v) };
    }
    let engine = Arc::new(Engine::open(&cfg, Hsm::open(&cfg.hsm).expect("hsm")).expect("engine"));
    // Disjoint keys per run: a key already certified would (rightly) be refused as key reuse.
    let (one, rest) = csrs.split_at(devices / 5);
    let (closed, paced) = rest.split_at(rest.len() / 2);
    let r1 = run(&engine, one, 1, None);
    print_row(label, "1 caller", &r1, one.len());
    let r64 = run(&engine, closed, 64, None);
    print_row(label, "64 callers", &r64, closed.len());
    let pace = r64.rate / 2.0;
    let rp = run(&engine, paced, 64, Some(pace));
    print_row(label, &format!("64 paced {pace:.0}/s"), &rp, paced.len());
    engine.close();
}

fn print_row(label: &str, how: &str, r: &Outcome, n: usize) {
    println!(
        "{label:<12} {how:<20} {:>7.0} certs/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({n} certs)",
        r.rate, r.p50, r.p99
    );
    println!("RESULT {label} {} {:.1} {:.3} {:.3}", how.replace(' ', "_"), r.rate, r.p50, r.p99);
}

struct Outcome {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn make_csrs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let key = rcgen::KeyPair::generate().expect("key");
            // No CN: the serial comes from the request, as for a device that learns it at the bench.
            let mut p = rcgen::CertificateParams::new(vec![]).expect("params");
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.serialize_request(&key).expect("csr").der().to_vec()
        })
        .collect()
}

/// Runs `callers` threads over the CSRs. With `pace`, request i is due at start + i/pace and its
/// latency counts from that moment.
fn run(engine: &Arc<Engine>, csrs: &[Vec<u8>], callers: usize, pace: Option<f64>) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let csrs = Arc::new(csrs.to_vec());
    let run_id: u32 = rand::random();
    let start = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (engine, next, csrs) = (engine.clone(), next.clone(), csrs.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(csr) = csrs.get(i) else { break };
                    let due = match pace {
                        Some(rate) => {
                            let due = start + Duration::from_secs_f64(i as f64 / rate);
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                            due
                        }
                        None => Instant::now(),
                    };
                    let req = IssueRequest {
                        csr: csr.clone(),
                        serial: Some(format!("B-{run_id:08x}-{i:07}")),
                        bench: "bench".into(),
                        ..Default::default()
                    };
                    if let Err(e) = engine.issue(&req) {
                        panic!("issue failed: {e}");
                    }
                    lat.push(due.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    let wall = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Outcome { rate: lat.len() as f64 / wall, p50: pct(0.50), p99: pct(0.99) }
}

/// The seeds' way: a file CA key, one `openssl x509 -req` and one `cat` per device.
fn seeds_way(csrs: &[Vec<u8>]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh").arg("-c").arg(cmd).current_dir(d).status().expect("sh").success();
        assert!(ok, "{cmd}");
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 3650 \
        -subj /CN=seed-ca 2>/dev/null");
    for (i, c) in csrs.iter().enumerate() {
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", c.clone()));
        std::fs::write(d.join(format!("{i}.csr")), pem).expect("write csr");
    }
    let start = Instant::now();
    for i in 0..csrs.len() {
        sh(&format!(
            "openssl x509 -req -in {i}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out {i}.pem 2>/dev/null \
             && cat {i}.pem ca.pem > {i}-chain.pem"
        ));
    }
    csrs.len() as f64 / start.elapsed().as_secs_f64()
}

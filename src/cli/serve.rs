//! `station serve`: the daemon. One thread per bench; tokio waits for SIGTERM/SIGINT, then the
//! benches finish the device in progress (bounded by `[serve] shutdown_grace_secs`) and the ledger is
//! flushed before exit 0.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::bench::{self, BenchStats, OperatorLine, Shared, Timers};
use crate::config::BenchSection;
use crate::error::Error;
use crate::issue::Engine;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A bench as NAME=PATH[@BAUD] (repeatable). Given on the command line, these replace [[bench]].
    #[arg(long = "bench", value_name = "NAME=PATH[@BAUD]")]
    pub benches: Vec<String>,
    /// When the daemon stops, write its statistics (counts, station-side latency) as JSON here.
    #[arg(long)]
    pub stats_out: Option<PathBuf>,
}

pub fn run(cli: &Cli, a: &ServeArgs) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let benches = if a.benches.is_empty() { st.config.benches.clone() } else { parse_benches(&a.benches)? };
    if benches.is_empty() {
        return Err(Error::usage(
            "serve-no-benches",
            "no benches to serve",
            "add [[bench]] sections to station.toml or pass --bench NAME=/dev/ttyUSB0",
        ));
    }
    // Fail closed before anything starts: the active CA's AWS IoT registration must verify.
    crate::aws::watch::check_gate(&st.config)?;
    let hsm = st.hsm()?;
    // One operator line when the HSM goes down and one when it is back (the healer logs them too).
    hsm.on_health(Arc::new(|event: &crate::hsm::HealthEvent| {
        println!("STATION    {event}");
    }));
    let engine = Arc::new(Engine::open(&st.config, hsm.clone())?);
    let mut registry = start_registry(&st.config, &engine, hsm)?;
    let s = &st.config.serve;
    let json = cli.json;
    let stats = Arc::new(BenchStats::default());
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        station_id: st.config.station.id.clone(),
        timers: Timers {
            hello: Duration::from_secs(s.hello_timeout_secs),
            csr: Duration::from_secs(s.csr_timeout_secs),
            stored: Duration::from_secs(s.stored_timeout_secs),
            max_frame_errors: s.max_frame_errors,
        },
        reopen_backoff_max: Duration::from_millis(s.reopen_backoff_max_ms),
        stopping: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        stats: stats.clone(),
        lines: Box::new(move |l: &OperatorLine| print_line(l, json)),
    });
    let threads: Vec<_> = benches
        .iter()
        .map(|b| {
            let (shared, b) = (shared.clone(), b.clone());
            std::thread::Builder::new().name(format!("bench-{}", b.name)).spawn(move || bench::run(shared, b))
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("serve-thread-failed", "cannot start bench threads", "check system limits", e))?;
    tracing::info!(benches = benches.len(), ca = %engine.active_ca().map(|c| c.name.clone()).unwrap_or_default(), "serving");
    if !json {
        eprintln!(
            "station serving {} bench(es); Ctrl-C or SIGTERM stops it after the devices in progress",
            benches.len()
        );
    }
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watch = crate::aws::watch::spawn(
        st.config.clone(),
        engine.clone(),
        watch_stop.clone(),
        Box::new(|msg: &str| {
            tracing::error!(alert = msg, "AWS IoT gate");
            println!("STATION    {msg}");
        }),
    )
    .map_err(|e| Error::io("serve-thread-failed", "cannot start the AWS watch", "check system limits", e))?;
    sd_notify("READY=1");
    wait_for_signal()?;
    sd_notify("STOPPING=1");
    shared.stopping.store(true, Ordering::Relaxed);
    watch_stop.store(true, Ordering::Relaxed);
    let _ = watch.join();
    let grace = Instant::now() + Duration::from_secs(s.shutdown_grace_secs);
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    shared.abort.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // The lease keeper stops before the writer does: a block it leases is recorded, never left for the next start.
    registry.stop_keeper();
    match engine.checkpoint() {
        Ok(cp) => tracing::info!(seq = cp.seq, "shutdown checkpoint signed"),
        Err(e) => tracing::warn!(error = %e, "shutdown checkpoint failed"),
    }
    engine.close();
    // The forwarder drains what the ledger holds now (the last devices, the shutdown checkpoint) and stops.
    registry.stop_forwarder();
    let snap = stats.snapshot();
    if let Some(path) = &a.stats_out {
        let text = serde_json::to_string_pretty(&snap).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| {
            Error::io("output-unwritable", format!("cannot write {}", path.display()), "check the path", e)
        })?;
    }
    let failed: u64 = snap.failures.values().sum();
    let text = format!("stopped: {} device(s) provisioned, {failed} failed; ledger flushed", snap.devices_ok);
    Ok(Output::new(snap, text))
}

/// The daemon's registry threads: stopped one after the other at shutdown.
#[derive(Default)]
struct RegistryThreads {
    keeper: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    forwarder: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl RegistryThreads {
    fn stop(slot: &mut Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>) {
        if let Some((stop, t)) = slot.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
    fn stop_keeper(&mut self) {
        Self::stop(&mut self.keeper);
    }
    fn stop_forwarder(&mut self) {
        Self::stop(&mut self.forwarder);
    }
}

/// With `[registry]`: the forwarder, and in station mode the lease keeper (which has a block in hand, or has said
/// why not, before the benches start). Both print their changes as STATION lines; neither is on a device's path.
fn start_registry(
    cfg: &crate::config::Config,
    engine: &Arc<Engine>,
    hsm: Arc<crate::hsm::Hsm>,
) -> Result<RegistryThreads> {
    use crate::registry::{forward, leases, signer::HeadSigner};
    let mut threads = RegistryThreads::default();
    let Some(r) = &cfg.registry else { return Ok(threads) };
    let thread_err =
        |e| Error::io("serve-thread-failed", "cannot start the registry threads", "check system limits", e);
    let notify = || -> forward::Notify { Box::new(|msg: &str| println!("STATION    {msg}")) };
    if let Some(status) = engine.lease_status(true) {
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = leases::spawn_keeper(
            cfg.clone(),
            r.clone(),
            engine.writer().clone(),
            status.clone(),
            stop.clone(),
            notify(),
        )
        .map_err(thread_err)?;
        threads.keeper = Some((stop, keeper));
        // Give the keeper its first look before devices arrive (bounded: an absent registry never blocks serve).
        let deadline = Instant::now() + Duration::from_secs(r.connect_timeout_secs + 1);
        let conn = crate::ledger::open_connection(&cfg.ledger.path)?;
        while Instant::now() < deadline
            && status.last_error().is_none()
            && crate::ledger::leases::remaining(&conn, &cfg.policy.serial_prefix)? == 0
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let signer = Arc::new(HeadSigner::new(hsm, cfg.ledger.path.clone()));
    let state = Arc::new(forward::ForwardState::default());
    let stop = Arc::new(AtomicBool::new(false));
    let forwarder = forward::spawn(r.clone(), cfg, signer, stop.clone(), state, notify()).map_err(thread_err)?;
    threads.forwarder = Some((stop, forwarder));
    Ok(threads)
}

fn print_line(l: &OperatorLine, json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if json { writeln!(out, "{}", serde_json::to_string(l).unwrap_or_default()) } else { writeln!(out, "{l}") };
    let _ = out.flush();
}

/// `NAME=PATH[@BAUD]`.
fn parse_benches(specs: &[String]) -> Result<Vec<BenchSection>> {
    let bad = |s: &str| {
        Error::usage(
            "serve-bench-invalid",
            format!("--bench {s:?} is not NAME=PATH[@BAUD]"),
            "e.g. --bench bench-1=/dev/ttyUSB0@115200",
        )
    };
    let mut out: Vec<BenchSection> = Vec::new();
    for s in specs {
        let (name, rest) = s.split_once('=').ok_or_else(|| bad(s))?;
        let (path, baud) = match rest.rsplit_once('@') {
            Some((p, b)) => (p, b.parse().map_err(|_| bad(s))?),
            None => (rest, 115_200),
        };
        if name.is_empty() || path.is_empty() || out.iter().any(|b| b.name == name) {
            return Err(bad(s));
        }
        out.push(BenchSection { name: name.into(), port: path.into(), baud });
    }
    crate::config::check_bench_list(&out).map_err(|(field, problem, fix)| {
        Error::usage("serve-bench-invalid", format!("--bench: {} {problem}", field.trim_start_matches("bench.")), fix)
    })?;
    Ok(out)
}

fn wait_for_signal() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("serve-runtime-failed", "cannot start the signal runtime", "check system limits", e))?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        Ok::<(), std::io::Error>(())
    })
    .map_err(|e| Error::io("serve-signal-failed", "cannot wait for signals", "check the environment", e))
}

/// Tells systemd (Type=notify) about readiness and stopping; a no-op without NOTIFY_SOCKET.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let path = PathBuf::from(path);
    let _ = sock.send_to(state.as_bytes(), &path);
}

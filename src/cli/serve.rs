//! `station serve`: the daemon. One thread per bench, the AWS watch and the HTTP endpoint, all supervised from the
//! main thread (`supervise`) until SIGTERM/SIGINT; then the benches finish the device in progress (bounded by
//! `[serve] shutdown_grace_secs`) and the ledger is flushed before exit 0. A dead ledger writer ends the daemon
//! with a non-zero status instead.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::bench::{self, BenchStats, OperatorLine, Shared, Timers};
use crate::config::BenchSection;
use crate::error::Error;
use crate::issue::Engine;
use crate::metrics::Metrics;
use crate::supervise::{self, Live, Supervisor};
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
    let mut registry = start_registry(&st.config, &engine, hsm.clone())?;
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
    let (live, metrics) = observe(&st.config, &benches, &engine, &hsm);
    if let Some(state) = registry.forwarding.clone() {
        // Read at scrape time through a connection of its own (a scrape every few seconds; never on a device's path).
        let conn = std::sync::Mutex::new(crate::ledger::open_connection(&st.config.ledger.path)?);
        live.set_forwarding_lag(Arc::new(move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let lag = crate::registry::forward::lag(&state, &conn);
            lag.ok().flatten().map(|(events, seconds)| crate::metrics::ForwardLag { events, seconds })
        }));
    }
    let mut sup = Supervisor::new(live.clone(), metrics.clone());
    // The endpoint first: a port it cannot have stops the daemon before any bench starts.
    let mut http_note = String::new();
    if let Some(h) = &st.config.http {
        let (listen, live, metrics) = (h.listen, live.clone(), metrics.clone());
        sup.start("http", None, Box::new(move || crate::http::start(listen, live.clone(), metrics.clone())))?;
        http_note = format!("; line view, /metrics, /healthz and /readyz on http://{listen}/");
    }
    let ports = open_ports(&benches)?;
    for ((b, state), port) in benches.iter().zip(live.board.benches()).zip(ports) {
        let (shared, b, state) = (shared.clone(), b.clone(), state.clone());
        let name = format!("bench:{}", b.name);
        let (mut first, watched) = (port, state.clone());
        let spawn = move || spawn_bench(&shared, &b, &state, first.take());
        sup.start(&name, Some(watched), Box::new(spawn))?;
    }
    let watch_stop = Arc::new(AtomicBool::new(false));
    if st.config.aws.as_ref().is_some_and(|a| a.require_verified) {
        let (cfg, engine, stop) = (st.config.clone(), engine.clone(), watch_stop.clone());
        sup.start(
            "aws-watch",
            None,
            Box::new(move || {
                crate::aws::watch::spawn(cfg.clone(), engine.clone(), stop.clone()).map_err(|e| {
                    Error::io("serve-thread-failed", "cannot start the AWS watch", "check system limits", e)
                })
            }),
        )?;
    }
    tracing::info!(benches = benches.len(), ca = %engine.active_ca().map(|c| c.name.clone()).unwrap_or_default(), "serving");
    if !json {
        eprintln!(
            "station serving {} bench(es){http_note}; Ctrl-C or SIGTERM stops it after the devices in progress",
            benches.len()
        );
    }
    sup.ready();
    let outcome = supervise_until_signal(&mut sup);
    match &outcome {
        Ok(()) => sup.stopping("stopping: finishing the devices in progress"),
        Err(e) => sup.stopping(&format!("FAILED: {e}; exiting")),
    }
    shared.stopping.store(true, Ordering::Relaxed);
    watch_stop.store(true, Ordering::Relaxed);
    sup.join("aws-watch");
    if let Err(e) = outcome {
        // Nothing can be recorded any more: end the sessions now and exit with the fault, for systemd to restart.
        shared.abort.store(true, Ordering::Relaxed);
        wait_for_benches(&sup, Instant::now() + FAULT_GRACE);
        return Err(e);
    }
    wait_for_benches(&sup, Instant::now() + Duration::from_secs(s.shutdown_grace_secs));
    shared.abort.store(true, Ordering::Relaxed);
    sup.join_benches();
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
    /// The forwarder's position, for the lag on `/metrics`.
    forwarding: Option<Arc<crate::registry::forward::ForwardState>>,
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
    let signer = Arc::new(HeadSigner::new(hsm, cfg.ledger.path.clone(), cfg.audit.key.clone()));
    let state = Arc::new(forward::ForwardState::default());
    let stop = Arc::new(AtomicBool::new(false));
    let forwarder =
        forward::spawn(r.clone(), cfg, signer, stop.clone(), state.clone(), notify()).map_err(thread_err)?;
    threads.forwarder = Some((stop, forwarder));
    threads.forwarding = Some(state);
    Ok(threads)
}

/// How long the sessions get to end after a fault that ends the daemon.
const FAULT_GRACE: Duration = Duration::from_secs(5);

/// The metrics, the benches' board and the live state the supervisor, `/metrics`, `/readyz` and the line view read;
/// the HSM and the ledger writer report into them from now on.
fn observe(
    cfg: &crate::config::Config,
    benches: &[BenchSection],
    engine: &Arc<Engine>,
    hsm: &Arc<crate::hsm::Hsm>,
) -> (Arc<Live>, Arc<Metrics>) {
    let mut metrics = Metrics::new();
    let board = Arc::new(bench::Board::new(benches, &metrics));
    // A bench is stalled when a call outlasts the longest wait for an HSM session by a minute.
    let stall_after = Duration::from_millis(cfg.hsm.session_wait_ms) + Duration::from_secs(60);
    let live = Arc::new(Live::new(&cfg.station.id, board, engine.clone(), hsm.clone(), stall_after));
    metrics.register_gauges(live.clone());
    let metrics = Arc::new(metrics);
    hsm.on_sign(metrics.sign_observer());
    engine.writer().observe_commits(live.commit_observer(metrics.clone()));
    (live, metrics)
}

/// Opens every bench's port before any bench starts, so that a port another process holds (a second station, a
/// terminal program) stops `serve` with `serial-port-busy` instead of leaving a bench that waits for it. A port
/// that cannot be opened for another reason (an adapter not plugged in yet) is left to its bench, which retries.
fn open_ports(benches: &[BenchSection]) -> Result<Vec<Option<crate::serial::Tty>>> {
    benches
        .iter()
        .map(|b| match crate::serial::open(b) {
            Ok(port) => Ok(Some(port)),
            Err(e @ crate::serial::OpenError::Busy { .. }) => Err(Error::io(
                "serial-port-busy",
                format!("bench {}: {e}", b.name),
                e.hint(),
                std::io::Error::new(std::io::ErrorKind::ResourceBusy, e.to_string()),
            )),
            Err(_) => Ok(None),
        })
        .collect()
}

fn spawn_bench(
    shared: &Arc<Shared>,
    b: &BenchSection,
    state: &Arc<bench::BenchState>,
    first: Option<crate::serial::Tty>,
) -> Result<std::thread::JoinHandle<()>> {
    let (shared, b, state) = (shared.clone(), b.clone(), state.clone());
    std::thread::Builder::new()
        .name(format!("bench-{}", b.name))
        .spawn(move || bench::run(shared, b, state, first))
        .map_err(|e| Error::io("serve-thread-failed", "cannot start bench threads", "check system limits", e))
}

fn wait_for_benches(sup: &Supervisor, until: Instant) {
    while sup.benches_running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
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
        out.push(BenchSection::new(name, path, baud));
    }
    crate::config::check_bench_list(&out).map_err(|(field, problem, fix)| {
        Error::usage("serve-bench-invalid", format!("--bench: {} {problem}", field.trim_start_matches("bench.")), fix)
    })?;
    Ok(out)
}

/// Runs the supervisor every [`supervise::TICK`] until SIGTERM or SIGINT (`Ok`), or until it finds a fault that
/// ends the daemon (`Err`).
fn supervise_until_signal(sup: &mut Supervisor) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("serve-runtime-failed", "cannot start the signal runtime", "check system limits", e))?;
    rt.block_on(async {
        let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        let mut tick = tokio::time::interval(supervise::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(Ok(())),
                _ = int.recv() => return Ok(Ok(())),
                _ = tick.tick() => if let Err(e) = sup.tick() { return Ok(Err(e)) },
            }
        }
    })
    .map_err(|e: std::io::Error| {
        Error::io("serve-signal-failed", "cannot wait for signals", "check the environment", e)
    })?
}

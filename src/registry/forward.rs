//! Store and forward: the ledger's chained events go to the registry in order, in batches, each batch in one
//! transaction with the head it ends at signed in the HSM. Keyed by (station, seq) and checked against the
//! registry's head under a row lock, so a batch is applied exactly once: after a crash, a kill -9 or an outage the
//! forwarder asks the registry where it is and goes on from there. Runs on its own thread, reading the ledger
//! through its own connection: never inside the writer, never on a device's path.

use super::client::Target;
use super::session::Session;
use super::signer::HeadSigner;
use crate::Result;
use crate::config::RegistrySection;
use crate::error::Coded;
use crate::ledger::{self, LedgerError};
use rusqlite::Connection;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How far the registry is behind the ledger, read through `conn`: the events it has not acknowledged, and the age in
/// seconds of the oldest of them (0 when none; the ledger keeps times to the second). `None` until the forwarder has
/// reached the registry once.
pub fn lag(state: &ForwardState, conn: &Connection) -> Result<Option<(u64, f64)>, LedgerError> {
    if !state.known.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let acked = state.registry_seq.load(Ordering::Relaxed);
    let head = ledger::chain_head(conn)?.0;
    if head <= acked {
        return Ok(Some((0, 0.0)));
    }
    let at: String = conn
        .query_row("SELECT at FROM events WHERE seq = ?1", [acked + 1], |r| r.get(0))
        .map_err(LedgerError::sql("read the oldest unforwarded event"))?;
    let age = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
        .map(|t| (time::OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0))
        .unwrap_or(0.0);
    Ok(Some(((head - acked) as u64, age)))
}

/// What a push (or the daemon's forwarder, so far) sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub station: String,
    pub registry: String,
    /// The registry's head for this station before and after.
    pub from_seq: i64,
    pub to_seq: i64,
    pub events: i64,
    pub batches: u64,
    pub seconds: f64,
}

/// The forwarder's position, for the daemon's stats and the benchmarks.
#[derive(Debug, Default)]
pub struct ForwardState {
    /// Set once the forwarder has learnt the registry's head for this station (`registry_seq` is meaningful).
    pub known: AtomicBool,
    pub registry_seq: AtomicI64,
    pub events: AtomicI64,
    pub batches: AtomicI64,
}

/// The ledger side of forwarding: a read connection and the count of issuances up to the registry's head.
struct Source {
    conn: Connection,
    issuances: i64,
    batch_max: usize,
}

impl Source {
    fn open(path: &Path, batch_max: usize) -> Result<Source, LedgerError> {
        Ok(Source { conn: ledger::open_connection(path)?, issuances: 0, batch_max })
    }

    /// Issuance events up to `seq` (the `issuances=` of a head ending there).
    fn count_issuances(&mut self, seq: i64) -> Result<(), LedgerError> {
        self.issuances = self
            .conn
            .query_row("SELECT COUNT(*) FROM events WHERE seq <= ?1 AND kind IN ('issued', 'reissued')", [seq], |r| {
                r.get(0)
            })
            .map_err(LedgerError::sql("count issuances"))?;
        Ok(())
    }

    fn head_seq(&self) -> Result<i64, LedgerError> {
        Ok(ledger::chain_head(&self.conn)?.0)
    }

    fn next_batch(&self, after: i64) -> Result<Vec<ledger::Event>, LedgerError> {
        ledger::chain::after(&self.conn, after, self.batch_max)
    }
}

/// Sends one batch if there is one; returns how many events went.
fn step(session: &mut Session, source: &mut Source, signer: &HeadSigner) -> Result<usize> {
    let events = source.next_batch(session.registry_seq)?;
    if events.is_empty() {
        return Ok(0);
    }
    let issuances =
        source.issuances + events.iter().filter(|e| e.kind == "issued" || e.kind == "reissued").count() as i64;
    let ledger_seq = source.head_seq()?;
    session.send(&events, issuances, ledger_seq, signer)?;
    source.issuances = issuances;
    Ok(events.len())
}

fn open_session(target: &Target, station_id: &str, source: &mut Source) -> Result<Session> {
    let session = Session::open(target, station_id, &source.conn)?;
    source.count_issuances(session.registry_seq)?;
    Ok(session)
}

/// `station registry push`: forwards everything the registry does not have yet, then reports in.
pub fn push(cfg: &crate::config::Config, signer: &HeadSigner) -> Result<PushReport> {
    let r = cfg.registry.as_ref().ok_or(super::RegistryError::NotConfigured)?;
    let target = Target::new(r)?;
    let mut source = Source::open(&cfg.ledger.path, r.batch_max)?;
    let started = Instant::now();
    let mut session = open_session(&target, &cfg.station.id, &mut source)?;
    let mut report = PushReport {
        station: cfg.station.id.clone(),
        registry: target.name.clone(),
        from_seq: session.registry_seq,
        ..Default::default()
    };
    loop {
        let n = step(&mut session, &mut source, signer)?;
        if n == 0 {
            break;
        }
        report.events += n as i64;
        report.batches += 1;
    }
    session.heartbeat(source.head_seq()?)?;
    report.to_seq = session.registry_seq;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Where the daemon's forwarder tells the operator about the registry (one line per change).
pub type Notify = Box<dyn Fn(&str) + Send + Sync>;

/// The daemon's forwarder: runs until `stop`, forwarding as events arrive and retrying with backoff while the
/// registry is away. Issuance never waits for it.
pub fn spawn(
    r: RegistrySection,
    cfg: &crate::config::Config,
    signer: Arc<HeadSigner>,
    stop: Arc<AtomicBool>,
    state: Arc<ForwardState>,
    notify: Notify,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (station_id, ledger_path) = (cfg.station.id.clone(), cfg.ledger.path.clone());
    std::thread::Builder::new().name("registry-forward".into()).spawn(move || {
        run(&r, &station_id, &ledger_path, &signer, &stop, &state, &notify);
    })
}

/// Sleeps up to `d`, waking early when `stop` is set.
pub(super) fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
    }
}

fn run(
    r: &RegistrySection,
    station_id: &str,
    ledger_path: &Path,
    signer: &HeadSigner,
    stop: &AtomicBool,
    state: &ForwardState,
    notify: &Notify,
) {
    let mut down: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    while !stop.load(Ordering::Relaxed) {
        match forward_until_error(r, station_id, ledger_path, signer, stop, state, &mut down, notify) {
            Ok(()) => return,
            Err(e) if e.retryable() => {
                let waiting = Source::open(ledger_path, 1)
                    .and_then(|s| s.head_seq())
                    .map(|h| h - state.registry_seq.load(Ordering::Relaxed))
                    .unwrap_or(0);
                let line = format!("REGISTRY unreachable: [{}] {e}; issuing goes on", e.code());
                if down.as_deref() != Some(line.as_str()) {
                    tracing::warn!(code = e.code(), error = %e, backlog = waiting, "registry forwarding paused");
                    notify(&format!("{line} (backlog {waiting} event(s))"));
                    down = Some(line);
                }
                nap(backoff, stop);
                backoff = (backoff * 2).min(Duration::from_millis(r.retry_max_ms));
            }
            Err(e) => {
                tracing::error!(code = e.code(), error = %e, "registry forwarding stopped");
                notify(&format!(
                    "REGISTRY refused this station: [{}] {e}; forwarding stopped, issuing goes on",
                    e.code()
                ));
                notify(&format!("REGISTRY hint: {}", e.hint()));
                return;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_until_error(
    r: &RegistrySection,
    station_id: &str,
    ledger_path: &Path,
    signer: &HeadSigner,
    stop: &AtomicBool,
    state: &ForwardState,
    down: &mut Option<String>,
    notify: &Notify,
) -> Result<()> {
    let target = Target::new(r)?;
    let mut source = Source::open(ledger_path, r.batch_max)?;
    let mut session = open_session(&target, station_id, &mut source)?;
    state.registry_seq.store(session.registry_seq, Ordering::Relaxed);
    state.known.store(true, Ordering::Relaxed);
    if down.take().is_some() {
        notify(&format!("REGISTRY reachable again: forwarding from event {}", session.registry_seq + 1));
    }
    let mut last_report = Instant::now() - Duration::from_secs(r.heartbeat_secs);
    loop {
        if stop.load(Ordering::Relaxed) {
            // One last drain so that a clean stop leaves no backlog.
            while step(&mut session, &mut source, signer)? > 0 {}
            session.heartbeat(source.head_seq()?)?;
            state.registry_seq.store(session.registry_seq, Ordering::Relaxed);
            return Ok(());
        }
        let n = step(&mut session, &mut source, signer)?;
        state.registry_seq.store(session.registry_seq, Ordering::Relaxed);
        if n > 0 {
            state.events.fetch_add(n as i64, Ordering::Relaxed);
            state.batches.fetch_add(1, Ordering::Relaxed);
            last_report = Instant::now();
            continue;
        }
        if last_report.elapsed() >= Duration::from_secs(r.heartbeat_secs) {
            session.heartbeat(source.head_seq()?)?;
            last_report = Instant::now();
        }
        nap(Duration::from_millis(r.poll_ms), stop);
    }
}

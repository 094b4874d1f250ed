//! What every bench is doing, for the supervisor, `/metrics`, `/readyz` and the line view.
//!
//! A bench's own thread writes its state: atomics for the phase and the heartbeat, and one short lock per device
//! for the last device, the last error and the counts. Readers copy what they need and let go; nothing a reader
//! holds can make a bench wait longer than that copy.

use super::OperatorLine;
use crate::config::BenchSection;
use crate::metrics::{BenchMetrics, Metrics};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a bench is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The thread has not opened the port yet.
    Starting,
    /// The port is open and no device is in a session.
    Idle,
    /// A device is in a session (HELLO to its end).
    Busy,
    /// The port cannot be opened (adapter unplugged, no permission), or went away; the bench keeps trying.
    PortDown,
    /// The daemon is stopping, and this bench has stopped.
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 5] = [Phase::Starting, Phase::Idle, Phase::Busy, Phase::PortDown, Phase::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Idle => "idle",
            Phase::Busy => "busy",
            Phase::PortDown => "port-down",
            Phase::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> Phase {
        Phase::ALL.get(usize::from(v)).copied().unwrap_or(Phase::Starting)
    }
}

/// How a device's session ended, as the line view shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Ended {
    pub serial: String,
    pub ok: bool,
    /// The outcome (`new`, `repeat`, `reissue`) or the failure's code.
    pub what: String,
    /// What the code means, from the code registry (failures only).
    pub meaning: String,
    /// What to do (failures only).
    pub hint: String,
    pub millis: u64,
    pub at_unix_ms: u64,
}

/// How many of a bench's newest devices the line view lists.
pub const RECENT: usize = 4;

/// Devices per minute over the last hour: 60 slots, a fixed size however many devices pass.
#[derive(Debug, Clone)]
struct PerMinute {
    counts: [u32; 60],
    /// The minute (since the board started) the newest slot belongs to.
    newest: u64,
}

impl Default for PerMinute {
    fn default() -> Self {
        PerMinute { counts: [0; 60], newest: 0 }
    }
}

impl PerMinute {
    fn advance(&mut self, minute: u64) {
        if minute > self.newest {
            for m in (self.newest + 1)..=minute.min(self.newest + 60) {
                self.counts[(m % 60) as usize] = 0;
            }
            self.newest = minute;
        }
    }

    fn add(&mut self, minute: u64) {
        self.advance(minute);
        let slot = &mut self.counts[(minute % 60) as usize];
        *slot = slot.saturating_add(1);
    }

    /// Devices per hour over the last hour, or over the minutes since the start when fewer (the current minute
    /// counts as a whole one, so the figure changes once a minute, not with every second).
    fn per_hour(&self, minute: u64) -> f64 {
        let mut now = self.clone();
        now.advance(minute);
        let total: u64 = now.counts.iter().map(|&c| u64::from(c)).sum();
        let window = (minute + 1).min(60) as f64;
        total as f64 * 60.0 / window
    }
}

#[derive(Debug, Default)]
struct Record {
    ok: u64,
    failed: u64,
    /// The newest devices, newest first (at most [`RECENT`]).
    recent: std::collections::VecDeque<Ended>,
    last_error: Option<Ended>,
    /// Why the port is down, while it is.
    port_problem: Option<String>,
    opened_before: bool,
    per_minute: PerMinute,
}

/// One bench.
pub struct BenchState {
    pub name: String,
    pub port: String,
    epoch: Instant,
    phase: AtomicU8,
    /// Milliseconds since `epoch` when the bench's thread last went round its loop.
    beat_ms: AtomicU64,
    /// Set by the supervisor: whether the bench's thread runs.
    thread_alive: AtomicBool,
    record: Mutex<Record>,
    metrics: BenchMetrics,
}

impl BenchState {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// The bench's thread went round its loop; `busy` while a device is in a session.
    pub fn beat(&self, busy: bool) {
        self.beat_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.set_phase(if busy { Phase::Busy } else { Phase::Idle });
    }

    /// The thread is alive but not serving (waiting to reopen its port): it still beats.
    pub fn beat_waiting(&self) {
        self.beat_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago the bench's thread last went round its loop.
    pub fn since_beat(&self) -> Duration {
        let beat = Duration::from_millis(self.beat_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(beat)
    }

    pub fn thread_alive(&self) -> bool {
        self.thread_alive.load(Ordering::Relaxed)
    }

    /// The supervisor started (true) or found dead (false) the bench's thread.
    pub fn set_thread_alive(&self, alive: bool) {
        if alive {
            self.beat_waiting();
        }
        self.thread_alive.store(alive, Ordering::Relaxed);
    }

    pub fn port_opened(&self) {
        let mut r = self.record();
        if r.opened_before {
            self.metrics.port_reopened();
        }
        r.opened_before = true;
        r.port_problem = None;
        drop(r);
        self.beat(false);
    }

    pub fn port_down(&self, why: &str) {
        self.record().port_problem = Some(why.to_string());
        self.set_phase(Phase::PortDown);
        self.beat_waiting();
    }

    pub fn stopped(&self) {
        self.set_phase(Phase::Stopped);
    }

    pub fn frame_error(&self) {
        self.metrics.frame_error();
    }

    pub fn frame_resent(&self) {
        self.metrics.frame_resent();
    }

    pub fn issuance(&self, took: Duration) {
        self.metrics.issuance(took);
    }

    pub fn session_panicked(&self) {
        self.metrics.session_panicked();
    }

    /// A device's session ended with this operator line.
    pub fn device_done(&self, l: &OperatorLine) {
        self.metrics.device(l.ok, &l.what);
        let meaning = if l.ok {
            String::new()
        } else {
            crate::codes::lookup(&l.what).map(|c| c.meaning.into()).unwrap_or_default()
        };
        let ended = Ended {
            serial: l.serial.clone(),
            ok: l.ok,
            what: l.what.clone(),
            meaning,
            hint: l.hint.clone(),
            millis: u64::try_from(l.millis).unwrap_or(u64::MAX),
            at_unix_ms: unix_ms(SystemTime::now()),
        };
        let minute = self.epoch.elapsed().as_secs() / 60;
        let mut r = self.record();
        if l.ok {
            r.ok += 1;
            r.per_minute.add(minute);
        } else {
            r.failed += 1;
            r.last_error = Some(ended.clone());
        }
        r.recent.push_front(ended);
        r.recent.truncate(RECENT);
    }

    /// A copy for readers.
    pub fn view(&self) -> BenchView {
        let r = self.record();
        let uptime = self.epoch.elapsed();
        BenchView {
            name: self.name.clone(),
            port: self.port.clone(),
            state: self.phase().as_str(),
            thread_alive: self.thread_alive(),
            since_beat_ms: self.since_beat().as_millis() as u64,
            ok: r.ok,
            failed: r.failed,
            per_hour: (r.per_minute.per_hour(uptime.as_secs() / 60) * 10.0).round() / 10.0,
            last: r.recent.front().cloned(),
            recent: r.recent.iter().cloned().collect(),
            last_error: r.last_error.clone(),
            port_problem: r.port_problem.clone(),
        }
    }
}

/// One bench as readers see it (the line view's tile, `/readyz`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchView {
    pub name: String,
    pub port: String,
    pub state: &'static str,
    pub thread_alive: bool,
    /// How long ago the bench's thread went round its loop (for the supervisor; it moves all the time).
    #[serde(skip)]
    pub since_beat_ms: u64,
    pub ok: u64,
    pub failed: u64,
    /// Devices provisioned per hour, over the last hour (or since the start, when shorter).
    pub per_hour: f64,
    pub last: Option<Ended>,
    /// The newest devices, newest first: the last one and a few before it.
    pub recent: Vec<Ended>,
    pub last_error: Option<Ended>,
    pub port_problem: Option<String>,
}

/// Every bench.
pub struct Board {
    epoch: Instant,
    started: SystemTime,
    benches: Vec<Arc<BenchState>>,
}

impl Board {
    pub fn new(benches: &[BenchSection], metrics: &Metrics) -> Board {
        let epoch = Instant::now();
        let benches = benches
            .iter()
            .map(|b| {
                Arc::new(BenchState {
                    name: b.name.clone(),
                    port: b.port.display().to_string(),
                    epoch,
                    phase: AtomicU8::new(Phase::Starting as u8),
                    beat_ms: AtomicU64::new(0),
                    thread_alive: AtomicBool::new(false),
                    record: Mutex::new(Record::default()),
                    metrics: metrics.bench(&b.name),
                })
            })
            .collect();
        Board { epoch, started: SystemTime::now(), benches }
    }

    pub fn benches(&self) -> &[Arc<BenchState>] {
        &self.benches
    }

    pub fn views(&self) -> Vec<BenchView> {
        self.benches.iter().map(|b| b.view()).collect()
    }

    pub fn uptime(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn started(&self) -> SystemTime {
        self.started
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ok: bool, what: &str) -> OperatorLine {
        OperatorLine {
            bench: "b".into(),
            serial: "SN-1".into(),
            ok,
            what: what.into(),
            millis: 12,
            hint: "do x".into(),
        }
    }

    #[test]
    fn devices_per_hour_come_from_sixty_minute_slots_that_age_out() {
        let mut m = PerMinute::default();
        for _ in 0..30 {
            m.add(0);
        }
        assert_eq!(m.per_hour(0), 1800.0, "30 in the first minute: 1800 an hour");
        assert_eq!(m.per_hour(9), 180.0, "30 in ten minutes");
        m.add(59);
        assert_eq!(m.per_hour(59), 31.0);
        assert_eq!(m.per_hour(60), 1.0, "the first minute's 30 aged out");
        assert_eq!(m.per_hour(500), 0.0);
    }

    #[test]
    fn a_failed_device_becomes_the_last_error_with_what_its_code_means_and_what_to_do() {
        let metrics = Metrics::new();
        let section = BenchSection::new("bench-1", "/dev/ttyUSB0", 115_200);
        let board = Board::new(&[section], &metrics);
        let b = &board.benches()[0];
        assert_eq!(b.phase(), Phase::Starting);
        b.device_done(&line(true, "new"));
        b.device_done(&line(false, "csr-bad-signature"));
        let v = b.view();
        assert_eq!((v.ok, v.failed), (1, 1));
        let e = v.last_error.expect("a last error");
        assert_eq!((e.what.as_str(), e.hint.as_str()), ("csr-bad-signature", "do x"));
        assert!(e.meaning.contains("self-signature"), "{}", e.meaning);
        assert_eq!(v.last.unwrap(), e, "the last device is the failed one");
        b.port_down("No such file or directory");
        assert_eq!(b.view().state, "port-down");
        b.port_opened();
        assert_eq!((b.view().state, b.view().port_problem), ("idle", None));
    }
}

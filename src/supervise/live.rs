//! The live state every reader shares: the supervisor (STATUS, the watchdog), `/metrics`, `/readyz` and the line
//! view. What "ready" and "healthy" mean is decided here, once.

use crate::bench::{BenchView, Board};
use crate::hsm::{Gate as HsmGate, Hsm};
use crate::issue::Engine;
use crate::issue::gate::GateStatus;
use crate::ledger::LedgerError;
use crate::metrics::{ForwardLag, GaugeSource, GaugeValues, Metrics};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// What [`crate::ledger::Writer::observe_commits`] takes: told of every group commit.
type CommitObserver = Arc<dyn Fn(Duration, usize, Option<&LedgerError>) + Send + Sync>;

/// Reports the forwarder's lag to the fleet registry (`None` while it cannot tell).
pub type ForwardLagSource = Arc<dyn Fn() -> Option<ForwardLag> + Send + Sync>;

/// The handles to the live state.
pub struct Live {
    pub station_id: String,
    pub board: Arc<Board>,
    pub engine: Arc<Engine>,
    pub hsm: Arc<Hsm>,
    /// A bench whose thread has not gone round its loop for this long is stalled.
    pub stall_after: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` of the supervisor's last round.
    supervisor_beat_ms: AtomicU64,
    last_commit_error: Mutex<Option<String>>,
    forwarding: RwLock<Option<ForwardLagSource>>,
}

/// One check of `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

fn check(ok: bool, detail: impl Into<String>) -> Check {
    Check { ok, detail: detail.into() }
}

/// `/readyz`: the HSM logged in, the ledger writable, the gate open, the benches running; what is wrong if not.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub problems: Vec<String>,
    pub hsm: Check,
    pub ledger: Check,
    pub gate: Check,
    pub benches: Check,
}

/// The line view's data: the whole line, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LineView {
    pub station: String,
    pub now_unix_ms: u64,
    pub started_unix_ms: u64,
    pub ready: bool,
    pub problems: Vec<String>,
    pub gate: PageGate,
    pub hsm: Check,
    pub ledger: Check,
    pub benches: Vec<BenchView>,
}

/// The gate as the page shows it (absolute times, so that an unchanged gate gives an unchanged view).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PageGate {
    pub required: bool,
    pub open: bool,
    pub ca: String,
    pub reason: Option<String>,
    pub closes_at_unix_ms: Option<i64>,
}

impl Live {
    pub fn new(station_id: &str, board: Arc<Board>, engine: Arc<Engine>, hsm: Arc<Hsm>, stall_after: Duration) -> Live {
        Live {
            station_id: station_id.to_string(),
            board,
            engine,
            hsm,
            stall_after,
            epoch: Instant::now(),
            supervisor_beat_ms: AtomicU64::new(0),
            last_commit_error: Mutex::new(None),
            forwarding: RwLock::new(None),
        }
    }

    /// For [`crate::ledger::Writer::observe_commits`]: the metrics, and whether the ledger is writable.
    pub fn commit_observer(self: &Arc<Self>, metrics: Arc<Metrics>) -> CommitObserver {
        let live = Arc::downgrade(self);
        Arc::new(move |took: Duration, size: usize, error: Option<&LedgerError>| {
            metrics.commit(took, size, error.is_none());
            if let Some(live) = live.upgrade() {
                *live.last_commit_error.lock().unwrap_or_else(|p| p.into_inner()) = error.map(|e| e.to_string());
            }
        })
    }

    /// The hook for the fleet registry's forwarder: once set, `/metrics` carries `station_registry_forward_lag_*`.
    pub fn set_forwarding_lag(&self, source: ForwardLagSource) {
        *self.forwarding.write().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The supervisor went round its loop.
    pub fn supervisor_beat(&self) {
        self.supervisor_beat_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago the supervisor last went round its loop.
    pub fn since_supervisor_beat(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.supervisor_beat_ms.load(Ordering::Relaxed)))
    }

    fn hsm_check(&self) -> Check {
        let (gate, (in_use, idle), max) = self.hsm.state();
        match gate {
            HsmGate::Open => check(
                true,
                format!("token {:?} logged in; {in_use} of {max} sessions in use, {idle} idle", self.hsm.token_label()),
            ),
            HsmGate::Healing(cause) => check(false, format!("HSM down, re-initialising it: {cause}")),
            HsmGate::Stopped(cause) => check(false, format!("HSM refused the station: {cause}; fix it and restart")),
        }
    }

    fn ledger_check(&self) -> Check {
        if let Some(why) = self.engine.writer().failure() {
            return check(false, format!("the ledger writer thread died ({why}); the station is exiting"));
        }
        match self.last_commit_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => check(false, format!("the last ledger commit failed: {e}")),
            None => check(true, "writable"),
        }
    }

    fn gate_check(status: &GateStatus) -> Check {
        match (status.required, &status.reason) {
            (false, _) => check(true, "no AWS IoT verification required ([aws] require_verified is off)"),
            (true, Some(reason)) => check(false, format!("issuance halted: {reason}")),
            (true, None) => check(
                true,
                format!(
                    "open for CA {}; closes in {} s unless a re-verification passes",
                    status.ca,
                    status.closes_in_secs.unwrap_or_default()
                ),
            ),
        }
    }

    /// What is wrong with a bench for the watchdog (`Some` means: restart the station if it lasts).
    pub fn bench_fault(&self, v: &BenchView) -> Option<String> {
        bench_fault(v, self.stall_after)
    }

    /// What is wrong with a bench for `/readyz`: a fault, or a port that is down.
    fn bench_problem(&self, v: &BenchView) -> Option<String> {
        self.bench_fault(v).or_else(|| match (v.state, &v.port_problem) {
            ("port-down", Some(why)) => Some(format!("{}: {why}", v.name)),
            ("port-down", None) => Some(format!("{}: port {} is down", v.name, v.port)),
            ("stopped", _) => Some(format!("{}: stopped", v.name)),
            _ => None,
        })
    }

    fn benches_check(&self, views: &[BenchView]) -> (Check, Vec<String>) {
        let problems: Vec<String> = views.iter().filter_map(|v| self.bench_problem(v)).collect();
        let running = views.len() - problems.len();
        (check(problems.is_empty(), format!("{running} of {} benches running", views.len())), problems)
    }

    fn readiness_of(&self, views: &[BenchView], gate: &GateStatus) -> Readiness {
        let (hsm, ledger, gate) = (self.hsm_check(), self.ledger_check(), Self::gate_check(gate));
        let (benches, bench_problems) = self.benches_check(views);
        let mut problems: Vec<String> =
            [&hsm, &ledger, &gate].iter().filter(|c| !c.ok).map(|c| c.detail.clone()).collect();
        problems.extend(bench_problems);
        Readiness { ready: problems.is_empty(), problems, hsm, ledger, gate, benches }
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness_of(&self.board.views(), &self.engine.gate_status())
    }

    /// Healthy enough to ping the watchdog: the writer runs and every bench's thread runs and turns. A port that is
    /// down or a closed gate is no reason for systemd to restart the station; a thread that does not turn is.
    pub fn faults(&self) -> Vec<String> {
        let mut faults: Vec<String> = self.board.views().iter().filter_map(|v| self.bench_fault(v)).collect();
        if let Some(why) = self.engine.writer().failure() {
            faults.push(format!("the ledger writer thread died ({why})"));
        }
        faults
    }

    /// The line view.
    pub fn view(&self) -> LineView {
        let benches = self.board.views();
        let gate = self.engine.gate_status();
        let r = self.readiness_of(&benches, &gate);
        LineView {
            station: self.station_id.clone(),
            now_unix_ms: crate::bench::unix_ms(SystemTime::now()),
            started_unix_ms: crate::bench::unix_ms(self.board.started()),
            ready: r.ready,
            problems: r.problems,
            gate: PageGate {
                required: gate.required,
                open: gate.open,
                ca: gate.ca,
                reason: gate.reason,
                closes_at_unix_ms: gate.closes_at_unix_ms,
            },
            hsm: r.hsm,
            ledger: r.ledger,
            benches,
        }
    }

    /// One line for systemd's STATUS: the counts, and what is wrong.
    pub fn status_line(&self) -> String {
        let views = self.board.views();
        let (ok, failed): (u64, u64) = views.iter().fold((0, 0), |(o, f), v| (o + v.ok, f + v.failed));
        let r = self.readiness_of(&views, &self.engine.gate_status());
        let benches = if views.len() == 1 { "1 bench".to_string() } else { format!("{} benches", views.len()) };
        let head = format!("{benches}, {ok} devices provisioned, {failed} failed");
        match r.problems.first() {
            None => format!("{head}; ready"),
            Some(p) if r.problems.len() == 1 => format!("{head}; NOT READY: {p}"),
            Some(p) => format!("{head}; NOT READY: {p} (and {} more, see /readyz)", r.problems.len() - 1),
        }
    }
}

/// A bench's thread that died, or that has not gone round its loop for `stall_after`.
fn bench_fault(v: &BenchView, stall_after: Duration) -> Option<String> {
    if !v.thread_alive && v.state != "stopped" {
        return Some(format!("{}: its thread died; the supervisor restarts it", v.name));
    }
    let stalled = Duration::from_millis(v.since_beat_ms);
    (v.thread_alive && stalled > stall_after).then(|| {
        format!("{}: stalled for {} s (a call into the HSM or the ledger has not returned)", v.name, stalled.as_secs())
    })
}

impl GaugeSource for Live {
    fn gauges(&self) -> GaugeValues {
        let views = self.board.views();
        let gate = self.engine.gate_status();
        let ready = self.readiness_of(&views, &gate).ready;
        let (hsm_gate, (in_use, idle), max) = self.hsm.state();
        let forwarding = self.forwarding.read().unwrap_or_else(|p| p.into_inner()).clone().and_then(|f| f());
        GaugeValues {
            benches: views.iter().map(|v| (v.name.clone(), v.state)).collect(),
            hsm_up: hsm_gate == HsmGate::Open,
            hsm_sessions: (in_use, idle, max),
            ledger_writer_up: self.engine.writer().failure().is_none(),
            ledger_last_commit_ok: self.last_commit_error.lock().unwrap_or_else(|p| p.into_inner()).is_none(),
            ready,
            gate: gate.required.then_some((gate.open, gate.verification_age_secs, gate.max_age_secs)),
            forwarding,
            start_time_unix: self
                .board
                .started()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(state: &'static str, thread_alive: bool, since_beat_ms: u64) -> BenchView {
        BenchView {
            name: "bench-1".into(),
            port: "/dev/ttyUSB0".into(),
            state,
            thread_alive,
            since_beat_ms,
            ok: 0,
            failed: 0,
            per_hour: 0.0,
            last: None,
            recent: Vec::new(),
            last_error: None,
            port_problem: None,
        }
    }

    #[test]
    fn a_dead_or_stalled_bench_thread_is_a_fault_for_the_watchdog_and_a_port_that_is_down_is_not() {
        let stall = Duration::from_secs(70);
        assert_eq!(bench_fault(&bench("idle", true, 50), stall), None);
        assert_eq!(bench_fault(&bench("port-down", true, 20), stall), None, "a restart would not plug the adapter in");
        assert_eq!(bench_fault(&bench("busy", true, 69_000), stall), None, "a long HSM wait, within the limit");
        let stalled = bench_fault(&bench("busy", true, 71_000), stall).expect("stalled");
        assert!(stalled.starts_with("bench-1: stalled for 71 s"), "{stalled}");
        let dead = bench_fault(&bench("busy", false, 10), stall).expect("dead");
        assert!(dead.contains("its thread died"), "{dead}");
        assert_eq!(bench_fault(&bench("stopped", false, 90_000), stall), None, "stopped at shutdown");
    }
}

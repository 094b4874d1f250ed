//! The daemon supervises itself: it watches the ledger writer, the AWS watch, the bench threads and the HTTP
//! endpoint, and tells systemd how it is.
//!
//! - A bench, watch or HTTP thread that dies is started again, with backoff, and an operator line says so.
//! - A ledger writer that dies ends the process with a non-zero status and a clear line: nothing can be issued
//!   without it, and a fresh process (systemd's `Restart=on-failure`) is the cure. The engine's own gate deadline
//!   keeps issuance closed meanwhile if the watch is the one that is gone.
//! - systemd hears READY once the benches run, STATUS with the counts and what is wrong, STOPPING at shutdown, and
//!   a watchdog ping (`WatchdogSec=`) only while the writer runs and every bench's thread runs and turns: a thread
//!   stuck in a call that never returns stops the pings, and systemd restarts the station.
//! - The operator hears when the fail-closed gate closes (`HALTED`) or opens again (`RESUMED`), whoever closed it.

mod live;
mod notify;

pub use live::{Check, ForwardLagSource, LineView, Live, PageGate, Readiness};
pub use notify::Notifier;

use crate::Result;
use crate::bench::BenchState;
use crate::error::{Error, panic_text};
use crate::metrics::Metrics;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the supervisor looks.
pub const TICK: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A thread that ran this long before it died starts again after the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// STATUS is sent when it changes, at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Starts (or starts again) one supervised thread.
pub type Spawn = Box<dyn FnMut() -> Result<JoinHandle<()>> + Send>;

/// One supervised thread.
struct Worker {
    name: String,
    bench: Option<Arc<BenchState>>,
    spawn: Spawn,
    handle: Option<JoinHandle<()>>,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: Duration,
}

impl Worker {
    /// Looks at the thread: a dead one is reported and scheduled to start again, a due one is started.
    fn look(&mut self, now: Instant, metrics: &Metrics) {
        if self.handle.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(handle) = self.handle.take()
        {
            let why = match handle.join() {
                Ok(()) => "it returned".to_string(),
                Err(panic) => format!("it panicked: {}", panic_text(panic.as_ref())),
            };
            if let Some(b) = &self.bench {
                b.set_thread_alive(false);
            }
            if self.started.elapsed() > STABLE_AFTER {
                self.backoff = FIRST_BACKOFF;
            }
            tracing::error!(thread = %self.name, reason = %why, "thread died; starting it again");
            println!("STATION    {} thread died ({why}); starting it again in {} s", self.name, self.backoff.as_secs());
            self.restart_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        if self.handle.is_none() && self.restart_at.is_some_and(|t| now >= t) {
            match (self.spawn)() {
                Ok(h) => {
                    self.handle = Some(h);
                    self.started = now;
                    self.restart_at = None;
                    metrics.thread_restarted(&self.name);
                    if let Some(b) = &self.bench {
                        b.set_thread_alive(true);
                    }
                    tracing::warn!(thread = %self.name, "thread started again");
                }
                Err(e) => {
                    tracing::error!(thread = %self.name, error = %e, "cannot start the thread again; retrying");
                    self.restart_at = Some(now + self.backoff);
                }
            }
        }
    }
}

/// The supervisor: owns the supervised threads, runs in the daemon's main thread.
pub struct Supervisor {
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    workers: Vec<Worker>,
    /// The gate's reason when the operator was last told it closed.
    halted: Option<String>,
    status: String,
    status_sent: Option<Instant>,
    pinged: Option<Instant>,
    /// The faults that stopped the watchdog pings, as last logged.
    faults: Vec<String>,
}

impl Supervisor {
    pub fn new(live: Arc<Live>, metrics: Arc<Metrics>) -> Supervisor {
        Supervisor {
            live,
            metrics,
            notifier: Notifier::from_env(),
            workers: Vec::new(),
            halted: None,
            status: String::new(),
            status_sent: None,
            pinged: None,
            faults: Vec::new(),
        }
    }

    /// Starts a thread to supervise (`bench`: the bench it serves). The first start failing is the caller's error.
    pub fn start(&mut self, name: &str, bench: Option<Arc<BenchState>>, mut spawn: Spawn) -> Result<()> {
        let handle = spawn()?;
        if let Some(b) = &bench {
            b.set_thread_alive(true);
        }
        self.workers.push(Worker {
            name: name.to_string(),
            bench,
            spawn,
            handle: Some(handle),
            started: Instant::now(),
            restart_at: None,
            backoff: FIRST_BACKOFF,
        });
        Ok(())
    }

    /// Tells systemd the station is ready.
    pub fn ready(&mut self) {
        self.live.supervisor_beat();
        let status = self.live.status_line();
        self.notifier.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        self.status = status;
        self.status_sent = Some(Instant::now());
    }

    /// One round. `Err`: a fault that ends the daemon (the ledger writer died).
    pub fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        self.live.supervisor_beat();
        if let Some(why) = self.live.engine.writer().failure() {
            let message = format!("the ledger writer thread died ({why}); nothing can be issued without it");
            tracing::error!(reason = %why, "ledger writer died; exiting so that the station is restarted");
            return Err(Error::io(
                "serve-thread-died",
                message,
                "committed rows are safe; systemd (Restart=on-failure) starts the station again; if it happens \
                 again, keep the log above and report it",
                std::io::Error::other(why),
            ));
        }
        for w in &mut self.workers {
            w.look(now, &self.metrics);
        }
        self.gate_lines();
        self.send_status(now);
        self.watchdog(now);
        Ok(())
    }

    /// `HALTED` when the gate closes, `RESUMED` when it opens again: the engine decides, whoever changed it.
    fn gate_lines(&mut self) {
        let gate = self.live.engine.gate_status();
        match (gate.reason, &self.halted) {
            (Some(reason), None) => {
                tracing::error!(alert = %reason, "AWS IoT gate closed");
                println!("STATION    HALTED  {reason}");
                self.halted = Some(reason);
            }
            (None, Some(_)) => {
                tracing::warn!("AWS IoT gate open again");
                println!("STATION    RESUMED  the CA's AWS IoT registration verifies again");
                self.halted = None;
            }
            _ => {}
        }
    }

    fn send_status(&mut self, now: Instant) {
        if self.status_sent.is_some_and(|t| now - t < STATUS_EVERY) {
            return;
        }
        let status = self.live.status_line();
        if status != self.status {
            self.notifier.send(&[NotifyState::Status(&status)]);
            self.status = status;
            self.status_sent = Some(now);
        }
    }

    /// Pings systemd's watchdog every half interval, only while nothing is wrong that a restart would cure.
    fn watchdog(&mut self, now: Instant) {
        let Some(interval) = self.notifier.watchdog() else { return };
        let faults = self.live.faults();
        if faults != self.faults {
            if faults.is_empty() {
                tracing::warn!("healthy again; watchdog pings resume");
            } else {
                tracing::error!(faults = %faults.join("; "), "unhealthy; watchdog pings withheld");
            }
            self.faults = faults;
        }
        if self.faults.is_empty() && self.pinged.is_none_or(|t| now - t >= interval / 2) {
            self.notifier.send(&[NotifyState::Watchdog]);
            self.pinged = Some(now);
        }
    }

    /// Tells systemd the station is stopping, and why.
    pub fn stopping(&self, status: &str) {
        self.notifier.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// Waits for the named thread to end (after its stop flag was set).
    pub fn join(&mut self, name: &str) {
        for w in self.workers.iter_mut().filter(|w| w.name == name) {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }

    /// Whether any bench's thread still runs.
    pub fn benches_running(&self) -> bool {
        self.workers.iter().any(|w| w.bench.is_some() && w.handle.as_ref().is_some_and(|h| !h.is_finished()))
    }

    /// Waits for every bench's thread to end.
    pub fn join_benches(&mut self) {
        for w in self.workers.iter_mut().filter(|w| w.bench.is_some()) {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

//! The benches: one thread per port, each running device sessions one after another, reopening the
//! port with backoff when it goes away. A bench's garbage, stall or unplug never touches another.
//!
//! Threads, not async tasks: every step of a session (HSM signing, the ledger commit) is a blocking
//! call, and a dedicated thread per port keeps one bench's slowness out of every other bench's way.

mod board;
mod line;
mod session;
mod stats;

pub use board::{BenchState, BenchView, Board, Ended, Phase, RECENT, unix_ms};
pub use line::OperatorLine;
pub use session::{Session, Timers};
pub use stats::{BenchStats, StatsSnapshot};

use crate::config::BenchSection;
use crate::issue::Engine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What every bench shares.
pub struct Shared {
    pub engine: Arc<Engine>,
    pub station_id: String,
    pub timers: Timers,
    pub reopen_backoff_max: Duration,
    /// Set on SIGTERM: finish the device in progress, take no new one.
    pub stopping: AtomicBool,
    /// Set when the grace period is over: end whatever is in progress.
    pub abort: AtomicBool,
    pub stats: Arc<BenchStats>,
    /// Where operator lines go (stdout in the daemon).
    pub lines: Box<dyn Fn(&OperatorLine) + Send + Sync>,
}

/// Drives one bench until the station stops, telling `state` what it does (the supervisor, the metrics and the line
/// view read it). `first` is the port when `serve` opened it already at start-up (to refuse a port that another
/// process holds before any bench starts).
pub fn run(shared: Arc<Shared>, bench: BenchSection, state: Arc<BenchState>, mut first: Option<crate::serial::Tty>) {
    #[cfg(feature = "test-hooks")]
    if crate::test_hooks::fail_once(&format!("bench-dies-{}", bench.name)) {
        panic!("test hook: the thread of bench {} dies", bench.name);
    }
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    while !shared.stopping.load(Ordering::Relaxed) {
        match first.take().map_or_else(|| crate::serial::open(&bench), Ok) {
            Ok(mut port) => {
                // The configured path is resolved at every open: a by-id link finds an adapter that came back as
                // another ttyUSBn.
                tracing::info!(bench = %bench.name, port = %bench.port.display(), device = %port.device.display(),
                    modem_lines = port.modem_lines, dtr = bench.dtr, rts = bench.rts, exclusive = bench.exclusive,
                    "port open");
                if !port.modem_lines && (bench.dtr || bench.rts) {
                    tracing::info!(bench = %bench.name, "a pseudo-terminal has no modem lines: dtr/rts not applied");
                }
                state.port_opened();
                backoff = Duration::from_millis(100);
                warned = false;
                let mut session = Session::new(&shared, &state);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.run(&mut port)));
                match result {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        tracing::warn!(bench = %bench.name, error = %e, "port lost; reopening");
                        state.port_down(&format!("the port went away ({e}); reopening it"));
                    }
                    Err(_) => {
                        tracing::error!(bench = %bench.name, "bench session panicked; restarting it");
                        state.session_panicked();
                    }
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(bench = %bench.name, port = %bench.port.display(), code = e.code().unwrap_or(""),
                        error = %e, hint = %e.hint(), "cannot open port; retrying");
                    warned = true;
                }
                state.port_down(&e.problem());
            }
        }
        sleep_unless_stopping(&shared, &state, backoff);
        backoff = (backoff * 2).min(shared.reopen_backoff_max);
    }
    state.stopped();
}

fn sleep_unless_stopping(shared: &Shared, state: &BenchState, d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end && !shared.stopping.load(Ordering::Relaxed) {
        state.beat_waiting();
        std::thread::sleep(Duration::from_millis(20));
    }
}

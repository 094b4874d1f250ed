//! The benches: one thread per port, each running device sessions one after another, reopening the
//! port with backoff when it goes away. A bench's garbage, stall or unplug never touches another.
//!
//! Threads, not async tasks: every step of a session (HSM signing, the ledger commit) is a blocking
//! call, and a dedicated thread per port keeps one bench's slowness out of every other bench's way.

mod line;
mod session;
mod stats;

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

/// Drives one bench until the station stops.
pub fn run(shared: Arc<Shared>, bench: BenchSection) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    while !shared.stopping.load(Ordering::Relaxed) {
        match crate::serial::open(&bench.port, bench.baud) {
            Ok(mut port) => {
                tracing::info!(bench = %bench.name, port = %bench.port.display(), "port open");
                backoff = Duration::from_millis(100);
                warned = false;
                let mut session = Session::new(&shared, &bench.name);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.run(&mut port)));
                match result {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => tracing::warn!(bench = %bench.name, error = %e, "port lost; reopening"),
                    Err(_) => tracing::error!(bench = %bench.name, "bench session panicked; restarting it"),
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(bench = %bench.name, port = %bench.port.display(), error = %e, "cannot open port; retrying");
                    warned = true;
                }
            }
        }
        sleep_unless_stopping(&shared, backoff);
        backoff = (backoff * 2).min(shared.reopen_backoff_max);
    }
}

fn sleep_unless_stopping(shared: &Shared, d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end && !shared.stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

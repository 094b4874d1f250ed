//! Counters and station-side latency (CSR fully received → last byte of CHAIN written).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct BenchStats {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ok: u64,
    failed: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What `--stats-out` writes when the daemon stops.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub devices_ok: u64,
    pub failures: BTreeMap<String, u64>,
    pub chains_sent: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// Devices confirmed per second between the first and the last confirmation.
    pub devices_per_sec: f64,
}

impl BenchStats {
    pub fn chain_latency(&self, d: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.latencies_us.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn device_ok(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        g.ok += 1;
        g.first.get_or_insert(now);
        g.last = Some(now);
    }

    pub fn device_failed(&self, code: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.failed.entry(code.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut l = g.latencies_us.clone();
        l.sort_unstable();
        let pct =
            |p: f64| if l.is_empty() { 0.0 } else { l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e3 };
        let span = match (g.first, g.last) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        StatsSnapshot {
            devices_ok: g.ok,
            failures: g.failed.clone(),
            chains_sent: l.len(),
            latency_p50_ms: pct(0.50),
            latency_p99_ms: pct(0.99),
            latency_max_ms: l.last().map_or(0.0, |v| *v as f64 / 1e3),
            devices_per_sec: if span > 0.0 { (g.ok.saturating_sub(1)) as f64 / span } else { 0.0 },
        }
    }
}

//! Counters and station-side latency (CSR fully received → last byte of CHAIN written). Latencies go into an HDR
//! histogram (3 significant digits, 1 µs to 1 h): its size is fixed, however many devices a daemon serves.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct BenchStats {
    inner: Mutex<Inner>,
}

struct Inner {
    ok: u64,
    failed: BTreeMap<String, u64>,
    latencies_us: Histogram<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Default for BenchStats {
    fn default() -> Self {
        let latencies_us = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        BenchStats {
            inner: Mutex::new(Inner { ok: 0, failed: BTreeMap::new(), latencies_us, first: None, last: None }),
        }
    }
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
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        g.latencies_us.saturating_record(us);
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
        let l = &g.latencies_us;
        let pct = |q: f64| if l.is_empty() { 0.0 } else { l.value_at_quantile(q) as f64 / 1e3 };
        let span = match (g.first, g.last) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        StatsSnapshot {
            devices_ok: g.ok,
            failures: g.failed.clone(),
            chains_sent: l.len() as usize,
            latency_p50_ms: pct(0.50),
            latency_p99_ms: pct(0.99),
            latency_max_ms: if l.is_empty() { 0.0 } else { l.max() as f64 / 1e3 },
            devices_per_sec: if span > 0.0 { (g.ok.saturating_sub(1)) as f64 / span } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_come_from_a_fixed_size_histogram() {
        let stats = BenchStats::default();
        for ms in 1..=1000u64 {
            stats.chain_latency(Duration::from_millis(ms));
        }
        let s = stats.snapshot();
        assert_eq!(s.chains_sent, 1000);
        assert!((s.latency_p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.latency_p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.latency_max_ms - 1000.0).abs() < 1.0, "{s:?}");
        let size = stats.inner.lock().unwrap().latencies_us.distinct_values();
        for _ in 0..100_000 {
            stats.chain_latency(Duration::from_micros(1234));
        }
        assert_eq!(stats.inner.lock().unwrap().latencies_us.distinct_values(), size, "no growth with the count");
    }
}

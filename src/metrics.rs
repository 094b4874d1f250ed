//! The station's Prometheus metrics.
//!
//! Counters and histograms are bumped where things happen (a bench, the HSM signer, the ledger writer) through the
//! handles made here; gauges are read from the live state when `/metrics` is scraped ([`GaugeSource`]), so the
//! metrics and the line view read the same state. Names follow the Prometheus conventions: the `station_` prefix,
//! base units (`_seconds`), `_total` on counters, and labels of bounded sets only (bench names, registered codes).
//! The encoding is `prometheus-client`'s: OpenMetrics text, or the Prometheus text format 0.0.4.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BenchLabel {
    bench: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    bench: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    bench: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreadLabel {
    thread: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Station-side issuance latency (CSR received → CHAIN written): 1 ms to 8 s.
fn issuance_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// The families and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    devices: Family<DeviceLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    issuance: Histograms<BenchLabel>,
    frame_errors: Family<BenchLabel, Counter>,
    frames_resent: Family<BenchLabel, Counter>,
    port_reopens: Family<BenchLabel, Counter>,
    session_panics: Family<BenchLabel, Counter>,
    thread_restarts: Family<ThreadLabel, Counter>,
    hsm_sign: Histogram,
    hsm_sign_errors: Counter,
    commit: Histogram,
    commit_group: Histogram,
    commit_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("station"),
            devices: Family::default(),
            failures: Family::default(),
            issuance: Family::new_with_constructor(issuance_histogram as fn() -> Histogram),
            frame_errors: Family::default(),
            frames_resent: Family::default(),
            port_reopens: Family::default(),
            session_panics: Family::default(),
            thread_restarts: Family::default(),
            hsm_sign: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            hsm_sign_errors: Counter::default(),
            commit: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            commit_group: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            commit_errors: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "devices",
            "Devices whose session ended, by bench and outcome (new, repeat, reissue, failed)",
            m.devices.clone(),
        );
        r.register(
            "device_failures",
            "Devices whose session failed, by bench and code (codes the station does not know count as `other`)",
            m.failures.clone(),
        );
        r.register_with_unit(
            "issuance_duration",
            "Station-side issuance latency per device: CSR received to the last byte of CHAIN written",
            Unit::Seconds,
            m.issuance.clone(),
        );
        r.register(
            "frame_errors",
            "Damaged frames the station received (CRC, grammar, too large)",
            m.frame_errors.clone(),
        );
        r.register(
            "frames_resent",
            "Frames the station sent again because the device reported them damaged",
            m.frames_resent.clone(),
        );
        r.register(
            "port_reopens",
            "Times a bench's serial port was opened again after it went away",
            m.port_reopens.clone(),
        );
        r.register(
            "bench_session_panics",
            "Bench sessions that panicked and were started again on the same thread",
            m.session_panics.clone(),
        );
        r.register(
            "thread_restarts",
            "Internal threads that died and were started again by the supervisor (bench-NAME, aws-watch, http)",
            m.thread_restarts.clone(),
        );
        r.register_with_unit(
            "hsm_sign_duration",
            "HSM signatures: waiting for a session, C_Sign and the DER conversion",
            Unit::Seconds,
            m.hsm_sign.clone(),
        );
        r.register("hsm_sign_errors", "HSM signatures that failed", m.hsm_sign_errors.clone());
        r.register_with_unit(
            "ledger_commit_duration",
            "Ledger group commits, BEGIN to COMMIT with its fsync",
            Unit::Seconds,
            m.commit.clone(),
        );
        r.register("ledger_commit_group_size", "Operations per ledger group commit", m.commit_group.clone());
        r.register(
            "ledger_commit_errors",
            "Ledger group commits that failed (nothing of the group was written)",
            m.commit_errors.clone(),
        );
        m
    }

    /// Registers the gauges read from the live state at each scrape.
    pub fn register_gauges(&mut self, source: Arc<dyn GaugeSource>) {
        self.registry.register_collector(Box::new(Gauges(source)));
    }

    /// The handles one bench bumps.
    pub fn bench(&self, name: &str) -> BenchMetrics {
        let l = BenchLabel { bench: name.to_string() };
        let outcome =
            |o: &str| self.devices.get_or_create_owned(&DeviceLabels { bench: name.to_string(), outcome: o.into() });
        BenchMetrics {
            bench: name.to_string(),
            new: outcome("new"),
            repeat: outcome("repeat"),
            reissue: outcome("reissue"),
            failed: outcome("failed"),
            failures: self.failures.clone(),
            issuance: self.issuance.get_or_create_owned(&l),
            frame_errors: self.frame_errors.get_or_create_owned(&l),
            frames_resent: self.frames_resent.get_or_create_owned(&l),
            port_reopens: self.port_reopens.get_or_create_owned(&l),
            session_panics: self.session_panics.get_or_create_owned(&l),
        }
    }

    /// A thread the supervisor started again.
    pub fn thread_restarted(&self, thread: &str) {
        self.thread_restarts.get_or_create(&ThreadLabel { thread: thread.to_string() }).inc();
    }

    /// For [`crate::hsm::Hsm::on_sign`].
    pub fn sign_observer(self: &Arc<Self>) -> crate::hsm::SignObserver {
        let m = self.clone();
        Arc::new(move |took: Duration, ok: bool| {
            m.hsm_sign.observe(took.as_secs_f64());
            if !ok {
                m.hsm_sign_errors.inc();
            }
        })
    }

    /// Records one group commit (the ledger writer's observer calls it).
    pub fn commit(&self, took: Duration, size: usize, ok: bool) {
        self.commit.observe(took.as_secs_f64());
        self.commit_group.observe(size as f64);
        if !ok {
            self.commit_errors.inc();
        }
    }

    /// The exposition: OpenMetrics text when `openmetrics`, else the Prometheus text format 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let done = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        if let Err(e) = done {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// One bench's counters and histogram.
#[derive(Clone, Debug)]
pub struct BenchMetrics {
    bench: String,
    new: Counter,
    repeat: Counter,
    reissue: Counter,
    failed: Counter,
    failures: Family<FailureLabels, Counter>,
    issuance: Histogram,
    frame_errors: Counter,
    frames_resent: Counter,
    port_reopens: Counter,
    session_panics: Counter,
}

impl BenchMetrics {
    /// A device's session ended: `what` is the outcome (`new`, `repeat`, `reissue`) or the failure's code.
    pub fn device(&self, ok: bool, what: &str) {
        match (ok, what) {
            (true, "repeat") => self.repeat.inc(),
            (true, "reissue") => self.reissue.inc(),
            (true, _) => self.new.inc(),
            (false, code) => {
                self.failed.inc();
                // A device can send any code in its ERROR: only registered ones become label values.
                let code = crate::codes::lookup(code).map_or("other", |c| c.code);
                self.failures.get_or_create(&FailureLabels { bench: self.bench.clone(), code: code.into() }).inc()
            }
        };
    }

    pub fn issuance(&self, took: Duration) {
        self.issuance.observe(took.as_secs_f64());
    }
    pub fn frame_error(&self) {
        self.frame_errors.inc();
    }
    pub fn frame_resent(&self) {
        self.frames_resent.inc();
    }
    pub fn port_reopened(&self) {
        self.port_reopens.inc();
    }
    pub fn session_panicked(&self) {
        self.session_panics.inc();
    }
}

/// The state gauges, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct GaugeValues {
    /// (bench, its state), the state one of [`crate::bench::Phase::ALL`]'s names.
    pub benches: Vec<(String, &'static str)>,
    pub hsm_up: bool,
    /// (in use, idle, at most).
    pub hsm_sessions: (usize, usize, usize),
    pub ledger_writer_up: bool,
    pub ledger_last_commit_ok: bool,
    pub ready: bool,
    /// With `[aws] require_verified`: open?, the verification's age, the age limit.
    pub gate: Option<(bool, Option<i64>, u64)>,
    /// The forwarder's lag, once a fleet registry reports it.
    pub forwarding: Option<ForwardLag>,
    pub start_time_unix: f64,
}

/// How far the forwarder to the fleet registry is behind the ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardLag {
    /// Ledger events not yet acknowledged by the registry.
    pub events: u64,
    /// Age of the oldest of them.
    pub seconds: f64,
}

/// Where the gauges come from.
pub trait GaugeSource: Send + Sync + 'static {
    fn gauges(&self) -> GaugeValues;
}

struct Gauges(Arc<dyn GaugeSource>);

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(enc.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

impl Collector for Gauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let g = self.0.gauges();
        {
            let mut family = enc.encode_descriptor(
                "bench_state",
                "1 for the state each bench is in (starting, idle, busy, port-down, stopped), 0 for the others",
                None,
                MetricType::Gauge,
            )?;
            for (bench, state) in &g.benches {
                for s in crate::bench::Phase::ALL.map(|p| p.as_str()) {
                    let labels = [("bench", bench.as_str()), ("state", s)];
                    ConstGauge::new(flag(s == *state)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        gauge(&mut enc, "ready", "1 when /readyz answers ready", None, flag(g.ready))?;
        gauge(&mut enc, "hsm_up", "1 while the HSM hands out sessions (logged in, not healing)", None, flag(g.hsm_up))?;
        {
            let mut family =
                enc.encode_descriptor("hsm_sessions", "PKCS#11 sessions by state", None, MetricType::Gauge)?;
            let (in_use, idle, _) = g.hsm_sessions;
            for (state, n) in [("in_use", in_use), ("idle", idle)] {
                ConstGauge::new(n as i64).encode(family.encode_family(&[("state", state)])?)?;
            }
        }
        gauge(&mut enc, "hsm_sessions_max", "[hsm] max_sessions", None, g.hsm_sessions.2 as i64)?;
        gauge(&mut enc, "ledger_writer_up", "1 while the ledger writer thread runs", None, flag(g.ledger_writer_up))?;
        gauge(
            &mut enc,
            "ledger_last_commit_ok",
            "1 when the last group commit succeeded",
            None,
            flag(g.ledger_last_commit_ok),
        )?;
        if let Some((open, age, max_age)) = g.gate {
            gauge(
                &mut enc,
                "aws_gate_open",
                "1 while the fail-closed AWS IoT gate lets the active CA issue",
                None,
                flag(open),
            )?;
            if let Some(age) = age {
                gauge(
                    &mut enc,
                    "aws_verification_age",
                    "Age of the CA's passing AWS IoT verification the gate's deadline comes from",
                    Some(&Unit::Seconds),
                    age,
                )?;
            }
            gauge(
                &mut enc,
                "aws_verification_max_age",
                "[aws] max_verification_age: the gate closes when the verification is older",
                Some(&Unit::Seconds),
                max_age as i64,
            )?;
        }
        if let Some(lag) = g.forwarding {
            gauge(
                &mut enc,
                "registry_forward_lag_events",
                "Ledger events the fleet registry has not acknowledged yet",
                None,
                lag.events as i64,
            )?;
            gauge(
                &mut enc,
                "registry_forward_lag",
                "Age of the oldest ledger event the fleet registry has not acknowledged",
                Some(&Unit::Seconds),
                lag.seconds,
            )?;
        }
        gauge(&mut enc, "start_time", "When this daemon started (Unix time)", Some(&Unit::Seconds), g.start_time_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(GaugeValues);
    impl GaugeSource for Fixed {
        fn gauges(&self) -> GaugeValues {
            self.0.clone()
        }
    }

    #[test]
    fn a_device_code_the_station_does_not_know_is_counted_as_other() {
        let m = Metrics::new();
        let b = m.bench("bench-1");
        b.device(false, "csr-bad-signature");
        b.device(false, "made-up-by-a-hostile-device");
        b.device(true, "new");
        let text = m.encode(true);
        assert!(
            text.contains("station_device_failures_total{bench=\"bench-1\",code=\"csr-bad-signature\"} 1"),
            "{text}"
        );
        assert!(text.contains("station_device_failures_total{bench=\"bench-1\",code=\"other\"} 1"), "{text}");
        assert!(!text.contains("made-up"), "{text}");
        assert!(text.contains("station_devices_total{bench=\"bench-1\",outcome=\"failed\"} 2"), "{text}");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    }

    #[test]
    fn the_forwarding_lag_appears_only_once_a_registry_reports_it() {
        let mut m = Metrics::new();
        m.register_gauges(Arc::new(Fixed(GaugeValues::default())));
        assert!(!m.encode(false).contains("registry_forward"));
        let mut m = Metrics::new();
        let values = GaugeValues { forwarding: Some(ForwardLag { events: 3, seconds: 1.5 }), ..GaugeValues::default() };
        m.register_gauges(Arc::new(Fixed(values)));
        let text = m.encode(false);
        assert!(text.contains("station_registry_forward_lag_events 3"), "{text}");
        assert!(text.contains("station_registry_forward_lag_seconds 1.5"), "{text}");
    }
}

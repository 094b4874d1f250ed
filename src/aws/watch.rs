//! The daemon's watch over the AWS IoT registration: re-verify every `[aws] reverify_every`, re-check the
//! fail-closed gate every 10 s (a verification can fail, a CA can be switched) and hand the engine the verdict with
//! its deadline. Devices already past the gate finish. The engine closes the gate at the deadline by itself, so a
//! watch that dies or hangs cannot keep it open.

use crate::config::Config;
use crate::issue::Engine;
use crate::ledger::Ledger;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the gate is re-checked against the ledger.
pub const GATE_EVERY: Duration = Duration::from_secs(10);

/// Starts the watch on a plain thread (verification builds its own runtime). It only tells the engine: the engine
/// keeps each verdict's deadline itself, and the supervisor tells the operator when the gate closes or opens.
pub fn spawn(cfg: Config, engine: Arc<Engine>, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("aws-watch".into()).spawn(move || {
        let Some(aws) = cfg.aws.clone().filter(|a| a.require_verified) else { return };
        #[cfg(feature = "test-hooks")]
        if crate::test_hooks::fail_point("aws-watch-dies").is_err() {
            panic!("test hook: the AWS watch thread dies");
        }
        let reverify = Duration::from_secs(aws.reverify_every.secs());
        let (mut next_verify, mut next_gate) = (Instant::now() + reverify, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_verify {
                next_verify = now + reverify;
                if let Err(e) = reverify_active(&cfg) {
                    tracing::warn!(error = %e, "AWS re-verification could not run");
                }
                next_gate = now;
            }
            if now >= next_gate {
                next_gate = now + GATE_EVERY;
                match verdict(&cfg) {
                    Ok((ca, verdict)) => engine.set_gate(&ca, verdict),
                    // No ledger or no active CA now: the engine's deadline still holds; say why it was not renewed.
                    Err(e) => tracing::warn!(error = %e, "AWS IoT gate could not be checked"),
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// The active CA and its gate verdict, from the ledger.
fn verdict(cfg: &Config) -> crate::Result<(String, crate::issue::gate::Verdict)> {
    let aws = cfg.aws.as_ref().ok_or(super::AwsError::NotConfigured)?;
    let ledger = Ledger::open(&cfg.ledger.path)?;
    let ca = ledger.active_ca()?.ok_or(crate::ca::CaError::NoneActive)?;
    let verdict = super::gate::verdict(aws, &ledger, &ca.name, time::OffsetDateTime::now_utc());
    Ok((ca.name, verdict))
}

/// The gate for the active CA, as an error with its code, hint and exit status.
pub fn check_gate(cfg: &Config) -> crate::Result<()> {
    let ledger = Ledger::open(&cfg.ledger.path)?;
    let ca = ledger.active_ca()?.ok_or(crate::ca::CaError::NoneActive)?;
    super::gate::require_verified(cfg, &ledger, &ca.name)
}

fn reverify_active(cfg: &Config) -> crate::Result<()> {
    let mut ledger = Ledger::open(&cfg.ledger.path)?;
    let report = super::verify::verify_and_record(
        cfg,
        &mut ledger,
        &super::verify::Selection::Active,
        &super::Overrides::default(),
        &|_, _, _| {},
    )?;
    tracing::info!(ok = report.ok, "AWS IoT registration re-verified");
    Ok(())
}

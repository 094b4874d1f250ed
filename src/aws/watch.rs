//! The daemon's watch over the AWS IoT registration: re-verify every `[aws] reverify_every`, re-check the
//! fail-closed gate every 10 s (a verification can go stale, a CA can be switched), and halt or resume
//! new issuance accordingly. Devices already past the gate finish.

use crate::config::Config;
use crate::error::Coded;
use crate::issue::Engine;
use crate::ledger::Ledger;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the gate is re-checked against the ledger.
pub const GATE_EVERY: Duration = Duration::from_secs(10);

/// Starts the watch on a plain thread (verification builds its own runtime). `alert` tells the operator.
pub fn spawn(
    cfg: Config,
    engine: Arc<Engine>,
    stop: Arc<AtomicBool>,
    alert: Box<dyn Fn(&str) + Send>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("aws-watch".into()).spawn(move || {
        let Some(aws) = cfg.aws.clone().filter(|a| a.require_verified) else { return };
        let reverify = Duration::from_secs(aws.reverify_every.secs());
        let (mut next_verify, mut next_gate) = (Instant::now() + reverify, Instant::now());
        let mut halted = false;
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
                let verdict = gate(&cfg);
                // The engine changes state before the operator is told, so "RESUMED" is already true.
                engine.halt(verdict.clone().err());
                match (&verdict, halted) {
                    (Err(reason), false) => {
                        alert(&format!("HALTED  {reason}"));
                        halted = true;
                    }
                    (Ok(()), true) => {
                        alert("RESUMED  the CA's AWS IoT registration verifies again");
                        halted = false;
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// The gate for the active CA: `Err(reason)` names the code and the command that fixes it.
pub fn gate(cfg: &Config) -> Result<(), String> {
    check_gate(cfg).map_err(|e| format!("{}: {e} ({})", e.code(), e.hint()))
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

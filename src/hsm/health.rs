//! Healing: up → healing → up, or → stopped.
//!
//! When the token itself fails (device error, device removed, token not present, module not initialised),
//! the first call to see it closes the pool's gate and starts one healer thread; every other call gets
//! `hsm-unavailable` (retryable) at once. The healer waits for the calls in flight, closes the sessions,
//! finalises and initialises the module, finds the token again, logs in again and reopens the pool in a
//! new generation (key handles are looked up again), retrying with backoff (50 ms doubling to 1 s) until
//! the token is back. A PIN the token refuses stops healing for good (`hsm-recovery-stopped`): retrying
//! would count towards the token's lockout. Each change is logged once and reported to the observer.

use super::pool::Gate;
use super::token::open_token;
use super::{Hsm, HsmError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A change in the HSM's health, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The token failed; the station is re-initialising it.
    Down { cause: String },
    /// The token is back.
    Up { after: Duration, attempts: u32 },
    /// The token came back but refused the PIN; the station no longer tries.
    Stopped { cause: String },
}

impl std::fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthEvent::Down { cause } => {
                write!(f, "HSM down: {cause}; re-initialising it, devices are told to retry")
            }
            HealthEvent::Up { after, attempts } => {
                write!(f, "HSM back after {:.1} s ({attempts} attempt(s)); issuing again", after.as_secs_f64())
            }
            HealthEvent::Stopped { cause } => {
                write!(f, "HSM refused the station: {cause}; fix it and restart the station")
            }
        }
    }
}

/// Told about every health change (the daemon prints an operator line).
pub type HealthObserver = Arc<dyn Fn(&HealthEvent) + Send + Sync>;

const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(1);

impl Hsm {
    /// Registers who hears about health changes.
    pub fn on_health(&self, observer: HealthObserver) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn report(&self, event: &HealthEvent) {
        match event {
            HealthEvent::Down { cause } => tracing::error!(token = %self.label, cause, "HSM down; re-initialising"),
            HealthEvent::Up { after, attempts } => {
                tracing::warn!(token = %self.label, after_ms = after.as_millis() as u64, attempts, "HSM back")
            }
            HealthEvent::Stopped { cause } => tracing::error!(token = %self.label, cause, "HSM recovery stopped"),
        }
        let observer = self.observer.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(o) = observer {
            o(event);
        }
    }

    /// A call saw the token fail: close the gate and, if this call was the first to see it, start healing.
    /// Returns what the caller answers.
    pub(super) fn token_failed(&self, e: &HsmError) -> HsmError {
        let cause = e.to_string();
        if self.pool.close(Gate::Healing(cause.clone())) {
            self.report(&HealthEvent::Down { cause: cause.clone() });
            if let Some(me) = self.me.upgrade() {
                let spawned = std::thread::Builder::new().name("hsm-heal".into()).spawn(move || me.heal());
                if let Err(err) = spawned {
                    tracing::error!(error = %err, "cannot start the HSM healer thread");
                }
            }
        }
        HsmError::Unavailable { cause }
    }

    /// The token refused the PIN: never log in again in this process.
    pub(super) fn stop(&self, e: &HsmError) {
        let cause = e.to_string();
        if self.pool.gate() != Gate::Stopped(cause.clone()) {
            self.pool.close(Gate::Stopped(cause.clone()));
            self.report(&HealthEvent::Stopped { cause });
        }
    }

    fn heal(self: Arc<Self>) {
        let started = Instant::now();
        let mut delay = FIRST_DELAY;
        let mut last_error = String::new();
        for attempts in 1u32.. {
            match self.reopen() {
                Ok(()) => {
                    self.report(&HealthEvent::Up { after: started.elapsed(), attempts });
                    return;
                }
                Err(e) if e.is_pin_refusal() => {
                    self.stop(&e);
                    return;
                }
                Err(e) => {
                    let text = e.to_string();
                    if text != last_error {
                        tracing::info!(token = %self.label, attempt = attempts, error = %text, "HSM still down");
                        last_error = text;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(MAX_DELAY);
                }
            }
        }
    }

    /// One healing attempt.
    fn reopen(&self) -> Result<(), HsmError> {
        drop(self.pool.drain());
        drop(self.anchor.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.module.reinitialize()?;
        let (token, anchor) = open_token(&self.module, &self.label, &self.pin)?;
        let mechanisms = super::mechanisms::Mechanisms::discover(self.module.ctx(), token.slot)?;
        let slot = token.slot;
        *self.anchor.lock().unwrap_or_else(|p| p.into_inner()) = Some(anchor);
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
        *self.mechanisms.write().unwrap_or_else(|p| p.into_inner()) = mechanisms;
        self.pool.reopen(slot);
        Ok(())
    }
}

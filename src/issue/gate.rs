//! The fail-closed gate as the engine holds it. With `[aws] require_verified`, the engine keeps the verdict for one
//! CA together with its deadline: the moment the newest passing verification of some region grows older than
//! `max_verification_age`. Past the deadline the engine refuses by itself, whatever the watch thread did or did not
//! do: a watch that died, hung in an AWS call or was never scheduled cannot leave an open gate open.
//!
//! The deadline is kept on both clocks: the wall clock (verifications are dated by it) and the monotonic clock, so
//! that setting the wall clock back does not extend it.

use crate::aws::AwsError;
use crate::error::Coded;
use serde::Serialize;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What the ledger says about a CA's AWS IoT verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may issue until `until`: then `region`'s newest passing verification (made at `verified_at`) goes stale.
    Open { until: OffsetDateTime, region: String, verified_at: String },
    /// It may not issue: the code, the message and the command that fixes it.
    Closed(String),
}

/// The gate's answer to a CA that wants to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Closed, with the reason (code, message and fix).
    Closed(String),
    /// The gate holds a verdict for another CA (the active CA was switched): it must be looked up first.
    OtherCa,
}

#[derive(Debug, Clone)]
struct Held {
    ca: String,
    verdict: Verdict,
    /// `until` on the monotonic clock, from when the verdict was set.
    until_mono: Option<Instant>,
}

/// The engine's gate. Without `require_verified` it is always open.
pub struct Gate {
    max_age: Duration,
    held: Option<RwLock<Held>>,
}

/// What the gate says now, for the operator, `/readyz`, `/metrics` and the line view.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GateStatus {
    /// Whether a verification is required at all (`[aws] require_verified`).
    pub required: bool,
    pub open: bool,
    /// The CA the verdict is about.
    pub ca: String,
    /// Why it is closed: the code, the message and the command that fixes it.
    pub reason: Option<String>,
    /// Seconds until the deadline, while open.
    pub closes_in_secs: Option<i64>,
    /// How old the verification the deadline comes from is.
    pub verification_age_secs: Option<i64>,
    /// The deadline (Unix time, milliseconds), while a passing verification holds it.
    pub closes_at_unix_ms: Option<i64>,
    pub max_age_secs: u64,
}

impl Gate {
    /// No gate: every CA may issue.
    pub fn unguarded() -> Gate {
        Gate { max_age: Duration::ZERO, held: None }
    }

    /// A gate holding `verdict` for `ca`; verifications go stale after `max_age`.
    pub fn new(max_age: Duration, ca: &str, verdict: Verdict) -> Gate {
        let held = Held::new(ca, verdict, OffsetDateTime::now_utc(), Instant::now());
        Gate { max_age, held: Some(RwLock::new(held)) }
    }

    pub fn required(&self) -> bool {
        self.held.is_some()
    }

    /// Replaces the verdict (the watch re-checked the ledger).
    pub fn set(&self, ca: &str, verdict: Verdict) {
        if let Some(h) = &self.held {
            *h.write().unwrap_or_else(|p| p.into_inner()) =
                Held::new(ca, verdict, OffsetDateTime::now_utc(), Instant::now());
        }
    }

    /// Whether `ca` may issue now.
    pub fn check(&self, ca: &str) -> Result<(), Refusal> {
        self.check_at(ca, OffsetDateTime::now_utc(), Instant::now())
    }

    fn check_at(&self, ca: &str, now: OffsetDateTime, mono: Instant) -> Result<(), Refusal> {
        let Some(h) = &self.held else { return Ok(()) };
        let h = h.read().unwrap_or_else(|p| p.into_inner());
        if h.ca != ca {
            return Err(Refusal::OtherCa);
        }
        match h.closed_reason(self.max_age, now, mono) {
            Some(reason) => Err(Refusal::Closed(reason)),
            None => Ok(()),
        }
    }

    /// The gate now.
    pub fn status(&self) -> GateStatus {
        self.status_at(OffsetDateTime::now_utc(), Instant::now())
    }

    fn status_at(&self, now: OffsetDateTime, mono: Instant) -> GateStatus {
        let max_age_secs = self.max_age.as_secs();
        let Some(h) = &self.held else {
            return GateStatus {
                required: false,
                open: true,
                ca: String::new(),
                reason: None,
                closes_in_secs: None,
                verification_age_secs: None,
                closes_at_unix_ms: None,
                max_age_secs,
            };
        };
        let h = h.read().unwrap_or_else(|p| p.into_inner());
        let reason = h.closed_reason(self.max_age, now, mono);
        let (closes_in_secs, verification_age_secs, closes_at_unix_ms) = match &h.verdict {
            Verdict::Open { until, .. } => {
                let left = (*until - now).whole_seconds();
                let at = i64::try_from(until.unix_timestamp_nanos() / 1_000_000).ok();
                (Some(left).filter(|_| reason.is_none()), Some(max_age_secs as i64 - left), at)
            }
            Verdict::Closed(_) => (None, None, None),
        };
        GateStatus {
            required: true,
            open: reason.is_none(),
            ca: h.ca.clone(),
            reason,
            closes_in_secs,
            verification_age_secs,
            closes_at_unix_ms,
            max_age_secs,
        }
    }
}

impl Held {
    fn new(ca: &str, verdict: Verdict, now: OffsetDateTime, mono: Instant) -> Held {
        let until_mono = match &verdict {
            Verdict::Open { until, .. } => {
                let left = Duration::try_from(*until - now).unwrap_or(Duration::ZERO);
                Some(mono + left)
            }
            Verdict::Closed(_) => None,
        };
        Held { ca: ca.to_string(), verdict, until_mono }
    }

    /// Why `ca` may not issue at `now`, if it may not: the verdict's reason, or the deadline passed on either clock.
    fn closed_reason(&self, max_age: Duration, now: OffsetDateTime, mono: Instant) -> Option<String> {
        match &self.verdict {
            Verdict::Closed(reason) => Some(reason.clone()),
            Verdict::Open { until, region, verified_at } => {
                let passed = now > *until || self.until_mono.is_some_and(|m| mono > m);
                passed.then(|| {
                    let e = AwsError::VerificationStale {
                        ca: self.ca.clone(),
                        region: region.clone(),
                        at: verified_at.clone(),
                        max_age: format!("[aws] max_verification_age = {}s", max_age.as_secs()),
                    };
                    reason_text(&e)
                })
            }
        }
    }
}

/// How a gate refusal reads: `code: message (fix)`.
pub fn reason_text<E: Coded + std::fmt::Display + ?Sized>(e: &E) -> String {
    format!("{}: {e} ({})", e.code(), e.hint())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_until(until: OffsetDateTime) -> Verdict {
        Verdict::Open { until, region: "eu-west-1".into(), verified_at: "2026-01-01T00:00:00Z".into() }
    }

    #[test]
    fn an_open_gate_closes_at_its_deadline_with_aws_verification_stale_whoever_updates_it() {
        let (now, mono) = (OffsetDateTime::now_utc(), Instant::now());
        let until = now + time::Duration::seconds(30);
        let gate = Gate {
            max_age: Duration::from_secs(3600),
            held: Some(RwLock::new(Held::new("ca-1", open_until(until), now, mono))),
        };
        assert_eq!(gate.check_at("ca-1", now, mono), Ok(()));
        assert_eq!(gate.check_at("ca-1", until, mono + Duration::from_secs(30)), Ok(()), "open up to the deadline");
        let later = until + time::Duration::seconds(1);
        let Err(Refusal::Closed(reason)) = gate.check_at("ca-1", later, mono + Duration::from_secs(31)) else {
            panic!("open past the deadline")
        };
        assert!(reason.starts_with("aws-verification-stale: "), "{reason}");
        assert!(reason.contains("eu-west-1") && reason.contains("station ca verify --name ca-1"), "{reason}");
        let status = gate.status_at(later, mono + Duration::from_secs(31));
        assert!(status.required && !status.open && status.closes_in_secs.is_none(), "{status:?}");
    }

    #[test]
    fn setting_the_wall_clock_back_does_not_extend_the_deadline() {
        let (now, mono) = (OffsetDateTime::now_utc(), Instant::now());
        let until = now + time::Duration::seconds(30);
        let held = Held::new("ca-1", open_until(until), now, mono);
        let gate = Gate { max_age: Duration::from_secs(3600), held: Some(RwLock::new(held)) };
        let wall_set_back = now - time::Duration::hours(1);
        assert!(matches!(
            gate.check_at("ca-1", wall_set_back, mono + Duration::from_secs(31)),
            Err(Refusal::Closed(_))
        ));
    }

    #[test]
    fn a_closed_verdict_refuses_with_its_reason_and_another_ca_must_be_looked_up() {
        let gate = Gate::new(Duration::from_secs(60), "ca-1", Verdict::Closed("aws-verification-failed: x".into()));
        assert_eq!(gate.check("ca-1"), Err(Refusal::Closed("aws-verification-failed: x".into())));
        assert_eq!(gate.check("ca-2"), Err(Refusal::OtherCa));
        gate.set("ca-2", open_until(OffsetDateTime::now_utc() + time::Duration::minutes(1)));
        assert_eq!(gate.check("ca-2"), Ok(()));
        assert_eq!(Gate::unguarded().check("any"), Ok(()));
        assert!(!Gate::unguarded().status().required);
    }
}

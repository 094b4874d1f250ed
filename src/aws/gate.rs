//! Fail closed: with `[aws] require_verified = true`, no certificate is issued under a CA unless its newest
//! verification passed in every configured region and is younger than `max_verification_age`.
//!
//! `station issue` calls [`require_verified`] before issuing; `station serve` calls it before each device
//! and re-verifies every `[aws] reverify_every` (see `verify::verify_and_record`), so a failure stops new
//! issuance while devices already past the gate finish.

use super::AwsError;
use super::error::FailedVerification;
use crate::config::{AwsSection, Config};
use crate::issue::gate::Verdict;
use crate::ledger::Ledger;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Refuses (exit status 8, a code naming why, a hint naming the command) unless `ca_name` may issue.
/// A no-op without `[aws]` or with `require_verified = false`.
pub fn require_verified(cfg: &Config, ledger: &Ledger, ca_name: &str) -> crate::Result<()> {
    match &cfg.aws {
        Some(aws) if aws.require_verified => check(aws, ledger, ca_name, OffsetDateTime::now_utc()),
        _ => Ok(()),
    }
}

/// The gate's rule at time `now`, whatever `require_verified` says. Only verifications made against the
/// configured endpoint (AWS, unless `endpoint_url` is set) count, in the mode the CA was registered in there
/// (else the configured mode): the mode `station ca verify` checks without `--mode`.
pub fn check(aws: &AwsSection, ledger: &Ledger, ca_name: &str, now: OffsetDateTime) -> crate::Result<()> {
    open_until(aws, ledger, ca_name, now).map(|_| ())
}

/// The gate's verdict for `ca_name` at `now`, as the engine holds it: open until the first region's newest pass goes
/// stale, or closed with the reason (code, message, fix).
pub fn verdict(aws: &AwsSection, ledger: &Ledger, ca_name: &str, now: OffsetDateTime) -> Verdict {
    match open_until(aws, ledger, ca_name, now) {
        Ok(v) => v,
        Err(e) => Verdict::Closed(crate::issue::gate::reason_text(&e)),
    }
}

/// As [`check`], returning until when the CA may issue: the moment the earliest-expiring region's newest passing
/// verification grows older than `max_verification_age`.
fn open_until(aws: &AwsSection, ledger: &Ledger, ca_name: &str, now: OffsetDateTime) -> crate::Result<Verdict> {
    let endpoint = aws.endpoint_url.as_deref().unwrap_or_default();
    let max_age = time::Duration::seconds(i64::try_from(aws.max_verification_age.secs()).unwrap_or(i64::MAX));
    // No region at all (the config check refuses that): closed at once.
    let mut open = Verdict::Open { until: now, region: String::new(), verified_at: String::new() };
    for region in &aws.regions {
        let registered = ledger.aws_registration(ca_name, &region.name)?;
        let mode = super::verify::pair_mode(None, registered.as_ref(), aws.mode);
        let Some(v) = ledger.latest_aws_verification(ca_name, &region.name, endpoint, mode.as_str())? else {
            return Err(AwsError::VerificationMissing { ca: ca_name.into(), region: region.name.clone() }.into());
        };
        if v.outcome != "pass" {
            return Err(AwsError::VerificationFailed(Box::new(FailedVerification {
                ca: ca_name.into(),
                region: region.name.clone(),
                at: v.at,
                check: v.failed_check.unwrap_or_else(|| v.outcome.clone()),
                message: v.message,
                remedy: if v.remedy.is_empty() { "fix the failing check".into() } else { v.remedy },
            }))
            .into());
        }
        let at = OffsetDateTime::parse(&v.at, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let age = now - at;
        if age.is_negative() || age > max_age {
            return Err(AwsError::VerificationStale {
                ca: ca_name.into(),
                region: region.name.clone(),
                at: v.at,
                max_age: format!("[aws] max_verification_age = {}", aws.max_verification_age),
            }
            .into());
        }
        let until = at + max_age;
        if matches!(&open, Verdict::Open { region, until: u, .. } if region.is_empty() || until < *u) {
            open = Verdict::Open { until, region: region.name.clone(), verified_at: v.at };
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Age, AwsRegion};
    use crate::error::Coded;
    use crate::ledger::AwsVerification;

    fn section() -> AwsSection {
        AwsSection {
            regions: ["eu-west-1", "us-east-1"].map(|n| AwsRegion { name: n.into(), profile: None }).to_vec(),
            require_verified: true,
            max_verification_age: Age(3600),
            ..AwsSection::default()
        }
    }

    fn ledger_with_ca() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::create(&dir.path().join("station.db")).unwrap();
        l.conn()
            .execute(
                "INSERT INTO cas (name, key_uri, key_type, state, subject, created_at) \
                 VALUES ('ca-1', 'pkcs11:object=ca-1', 'ec-p256', 'active', 'CN=ca-1', '2026-01-01T00:00:00Z')",
                [],
            )
            .unwrap();
        (dir, l)
    }

    fn record(l: &mut Ledger, region: &str, at: OffsetDateTime, outcome: &str) {
        record_at(l, region, at, outcome, "", "jitp");
    }

    fn record_at(l: &mut Ledger, region: &str, at: OffsetDateTime, outcome: &str, endpoint: &str, mode: &str) {
        let v = AwsVerification {
            ca_name: "ca-1".into(),
            region: region.into(),
            endpoint: endpoint.into(),
            mode: mode.into(),
            at: crate::pki::rfc3339(at),
            outcome: outcome.into(),
            failed_check: (outcome != "pass").then(|| "aws-auto-registration-disabled".into()),
            message: String::new(),
            remedy: "run `aws iot update-ca-certificate …`".into(),
            detail: "{}".into(),
        };
        l.record_aws_verifications(&[v]).unwrap();
    }

    fn code(r: crate::Result<()>) -> &'static str {
        r.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn gate_needs_a_fresh_pass_in_every_region() {
        let (_d, mut l) = ledger_with_ca();
        let now = OffsetDateTime::now_utc();
        let aws = section();
        assert_eq!(code(check(&aws, &l, "ca-1", now)), "aws-verification-missing");
        record(&mut l, "eu-west-1", now, "pass");
        assert_eq!(code(check(&aws, &l, "ca-1", now)), "aws-verification-missing", "us-east-1 still missing");
        record(&mut l, "us-east-1", now, "fail");
        let err = check(&aws, &l, "ca-1", now).unwrap_err();
        assert_eq!(err.code(), "aws-verification-failed");
        assert_eq!(err.exit_status(), crate::error::exit::AWS);
        assert!(err.hint().contains("station ca verify --name ca-1"), "{}", err.hint());
        record(&mut l, "us-east-1", now, "pass");
        assert_eq!(code(check(&aws, &l, "ca-1", now)), "ok");
        let later = now + time::Duration::hours(2);
        assert_eq!(code(check(&aws, &l, "ca-1", later)), "aws-verification-stale");
    }

    #[test]
    fn only_verifications_at_the_configured_endpoint_and_mode_count() {
        let (_d, mut l) = ledger_with_ca();
        let now = OffsetDateTime::now_utc();
        let aws = section();
        for region in ["eu-west-1", "us-east-1"] {
            record_at(&mut l, region, now, "pass", "http://127.0.0.1:4566", "jitp");
            record_at(&mut l, region, now, "pass", "", "jitr");
        }
        assert_eq!(code(check(&aws, &l, "ca-1", now)), "aws-verification-missing", "an emulator or JITR pass");
        let emulated = AwsSection { endpoint_url: Some("http://127.0.0.1:4566".into()), ..section() };
        assert_eq!(code(check(&emulated, &l, "ca-1", now)), "ok");
        record(&mut l, "eu-west-1", now, "fail");
        assert_eq!(code(check(&emulated, &l, "ca-1", now)), "ok", "a failure at AWS says nothing about the emulator");
    }

    #[test]
    fn the_verdict_is_open_until_the_earliest_region_goes_stale() {
        let (_d, mut l) = ledger_with_ca();
        let now = OffsetDateTime::now_utc();
        let aws = section();
        record(&mut l, "eu-west-1", now - time::Duration::minutes(10), "pass");
        record(&mut l, "us-east-1", now - time::Duration::minutes(40), "pass");
        let Verdict::Open { until, region, .. } = verdict(&aws, &l, "ca-1", now) else { panic!("closed") };
        assert_eq!(region, "us-east-1");
        let expected = now + time::Duration::minutes(20);
        assert!((until - expected).abs() < time::Duration::seconds(1), "{until} vs {expected}");
        record(&mut l, "us-east-1", now, "fail");
        let Verdict::Closed(reason) = verdict(&aws, &l, "ca-1", now) else { panic!("open after a failure") };
        assert!(reason.starts_with("aws-verification-failed: "), "{reason}");
    }

    #[test]
    fn gate_is_open_without_require_verified() {
        let (_d, l) = ledger_with_ca();
        let cfg_text =
            "[station]\nid = \"s\"\n[hsm]\nmodule = \"/x.so\"\ntoken_label = \"t\"\n[ledger]\npath = \"l.db\"\n";
        let cfg = Config::from_toml(cfg_text, std::path::Path::new("/tmp/station.toml")).unwrap();
        assert_eq!(code(require_verified(&cfg, &l, "ca-1")), "ok");
    }
}

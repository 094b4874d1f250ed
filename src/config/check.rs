//! Field checks: each failure names the field and says how to fix it.

use super::{Config, ConfigError};
use crate::pki::{DeviceKeyType, KeyType};
use std::path::Path;

pub(super) fn check(cfg: &Config, path: &Path) -> Result<(), ConfigError> {
    let bad = |field: &str, problem: String, fix: &str| {
        Err(ConfigError::Field { path: path.to_path_buf(), field: field.into(), problem, fix: fix.into() })
    };
    if let Some(aws) = &cfg.aws {
        super::aws::check(aws, path)?;
    }
    if let Some(r) = &cfg.registry {
        super::registry::check(r, path)?;
    }
    if let Some(label) = &cfg.audit.key
        && !crate::audit::label_ok(label)
    {
        return bad(
            "audit.key",
            format!("is {label:?}"),
            "use the label `station audit key create` printed: 1-64 characters from A-Z a-z 0-9 - _ .",
        );
    }
    let id = &cfg.station.id;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return bad("station.id", format!("is {id:?}"), "use 1-64 characters from A-Z a-z 0-9 - _ .");
    }
    let label = &cfg.hsm.token_label;
    if label.is_empty() || label.len() > 32 {
        return bad("hsm.token_label", format!("is {label:?}"), "PKCS#11 token labels are 1-32 bytes");
    }
    if cfg.hsm.module.as_os_str().is_empty() {
        return bad(
            "hsm.module",
            "is empty".into(),
            "set it to the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so",
        );
    }
    if !(1..=64).contains(&cfg.hsm.max_sessions) {
        return bad("hsm.max_sessions", format!("is {}", cfg.hsm.max_sessions), "use 1 to 64");
    }
    if !(100..=600_000).contains(&cfg.hsm.session_wait_ms) {
        return bad("hsm.session_wait_ms", format!("is {}", cfg.hsm.session_wait_ms), "use 100 to 600000 milliseconds");
    }
    if cfg.hsm.init_args.as_deref().is_some_and(|a| a.is_empty() || a.contains('\0')) {
        return bad(
            "hsm.init_args",
            "is empty or contains a NUL".into(),
            "give the module's parameter string, or leave init_args out",
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for (k, v) in &cfg.hsm.module_env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return bad(
                &format!("hsm.module_env.{k}"),
                "is not a valid environment variable".into(),
                "use NAME = \"value\"",
            );
        }
        // Values are passed as written. A relative value that names a file next to the config is almost
        // certainly meant as that file (older configs relied on the station resolving it).
        if !v.is_empty() && Path::new(v).is_relative() && base.join(v).is_file() {
            return bad(
                &format!("hsm.module_env.{k}"),
                format!("is the relative path {v:?}; values reach the module exactly as written"),
                &format!("write the absolute path: {k} = \"{}\"", base.join(v).display()),
            );
        }
    }
    if let Err(e) = cfg.ca.key_type.parse::<KeyType>() {
        return bad("ca.key_type", e, "use one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096");
    }
    if cfg.ca.days == 0 {
        return bad("ca.days", "is 0".into(), "give the CA validity in days, e.g. 3650");
    }
    if !(1..=4096).contains(&cfg.ledger.group_commit_max) {
        return bad(
            "ledger.group_commit_max",
            format!("is {}", cfg.ledger.group_commit_max),
            "use 1 to 4096 (64 is a good default)",
        );
    }
    check_policy(cfg, &bad)?;
    check_serial_rule(cfg, base, &bad)?;
    check_benches(cfg, &bad)?;
    match &cfg.http {
        Some(http) => super::http::check(http, path),
        None => Ok(()),
    }
}

/// The prefix and the pattern can only make serials the station may issue (spec 3.1; `pki::serial`): X.509
/// PrintableString and, where a JITP template makes the thing name from the serial, AWS IoT thing names.
fn check_serial_rule(
    cfg: &Config,
    base: &Path,
    bad: &dyn Fn(&str, String, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let p = &cfg.policy;
    let rule = crate::aws::template::serial_rule(cfg.aws.as_ref(), base);
    let fix = format!("use only {} (a serial starts with a letter or digit)", rule.alphabet());
    if let Some(c) = p.serial_prefix.chars().find(|c| !rule.allows(*c)) {
        return bad("policy.serial_prefix", format!("{:?} contains {c:?}, {}", p.serial_prefix, rule.why_not(c)), &fix);
    }
    if p.serial_prefix.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
        return bad(
            "policy.serial_prefix",
            format!("{:?} does not start with a letter or digit", p.serial_prefix),
            &fix,
        );
    }
    if let Ok(Some(c)) = rule.escape_of_pattern(&p.serial_pattern) {
        return bad(
            "policy.serial_pattern",
            format!("{:?} can match {c:?}, {}", p.serial_pattern, rule.why_not(c)),
            &format!("{fix}, e.g. \"[A-Za-z0-9][A-Za-z0-9:-]{{0,63}}\""),
        );
    }
    Ok(())
}

fn check_benches(cfg: &Config, bad: &dyn Fn(&str, String, &str) -> Result<(), ConfigError>) -> Result<(), ConfigError> {
    if let Err((field, problem, fix)) = check_bench_list(&cfg.benches) {
        return bad(field, problem, fix);
    }
    let s = &cfg.serve;
    for (field, v) in [
        ("serve.hello_timeout_secs", s.hello_timeout_secs),
        ("serve.csr_timeout_secs", s.csr_timeout_secs),
        ("serve.stored_timeout_secs", s.stored_timeout_secs),
    ] {
        if !(1..=3600).contains(&v) {
            return bad(field, format!("is {v}"), "use 1 to 3600 seconds");
        }
    }
    if !(1..=3600).contains(&s.shutdown_grace_secs) {
        return bad("serve.shutdown_grace_secs", format!("is {}", s.shutdown_grace_secs), "use 1 to 3600 seconds");
    }
    if !(100..=600_000).contains(&s.reopen_backoff_max_ms) {
        return bad("serve.reopen_backoff_max_ms", format!("is {}", s.reopen_backoff_max_ms), "use 100 to 600000");
    }
    if s.max_frame_errors == 0 {
        return bad("serve.max_frame_errors", "is 0".into(), "use 1 or more (3 is the protocol default)");
    }
    Ok(())
}

fn check_policy(cfg: &Config, bad: &dyn Fn(&str, String, &str) -> Result<(), ConfigError>) -> Result<(), ConfigError> {
    let p = &cfg.policy;
    if p.key_types.is_empty() {
        return bad("policy.key_types", "is empty".into(), "allow at least one, e.g. [\"ec-p256\"]");
    }
    for k in &p.key_types {
        if let Err(e) = k.parse::<DeviceKeyType>() {
            return bad("policy.key_types", e, "use ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096");
        }
    }
    if let Some(c) = &p.country
        && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()))
    {
        return bad("policy.country", format!("is {c:?}"), "use a two-letter ISO 3166 code such as \"DE\"");
    }
    if p.days == 0 {
        return bad("policy.days", "is 0".into(), "give the device certificate validity in days");
    }
    if p.backdate_minutes > 24 * 60 {
        return bad("policy.backdate_minutes", format!("is {}", p.backdate_minutes), "use at most 1440 (one day)");
    }
    if let Err(e) = regex::Regex::new(&p.serial_pattern) {
        return bad("policy.serial_pattern", format!("is not a valid regex: {e}"), "fix the regular expression");
    }
    if !(1..=20).contains(&p.serial_width) {
        return bad("policy.serial_width", format!("is {}", p.serial_width), "use 1 to 20 digits");
    }
    if p.serial_first > p.serial_last {
        return bad(
            "policy.serial_first",
            format!("({}) is above policy.serial_last ({})", p.serial_first, p.serial_last),
            "make serial_first <= serial_last",
        );
    }
    if p.serial_last.to_string().len() > p.serial_width {
        return bad(
            "policy.serial_last",
            format!("({}) has more digits than policy.serial_width ({})", p.serial_last, p.serial_width),
            "widen serial_width or lower serial_last",
        );
    }
    if p.serial_prefix.len() > 32 || p.serial_prefix.chars().any(|c| c.is_control() || c == ',') {
        return bad("policy.serial_prefix", format!("is {:?}", p.serial_prefix), "use up to 32 printable characters");
    }
    Ok(())
}

/// Checks benches from `[[bench]]` or `--bench`: names unique and tidy, rates plausible.
pub fn check_bench_list(benches: &[super::BenchSection]) -> Result<(), (&'static str, String, &'static str)> {
    let mut names = std::collections::HashSet::new();
    for b in benches {
        if b.name.is_empty()
            || b.name.len() > 32
            || !b.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(("bench.name", format!("is {:?}", b.name), "use 1-32 characters from A-Z a-z 0-9 - _ ."));
        }
        if !names.insert(&b.name) {
            return Err(("bench.name", format!("{:?} is used twice", b.name), "give every bench its own name"));
        }
        if !(300..=4_000_000).contains(&b.baud) {
            return Err((
                "bench.baud",
                format!("is {} for bench {}", b.baud, b.name),
                "use a serial rate such as 115200",
            ));
        }
    }
    Ok(())
}

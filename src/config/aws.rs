//! `[aws]`: where the CA is registered with AWS IoT and how strictly issuance depends on it.
//!
//! ```toml
//! [aws]
//! regions = [{ name = "eu-central-1", profile = "factory-eu" }, { name = "us-east-1" }]
//! mode = "jitp"
//! role_arn = "arn:aws:iam::123456789012:role/StationJITP"
//! require_verified = true
//! ```

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The `[aws]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// The target regions. JITP is per account and region, so each can name an account profile.
    #[serde(default)]
    pub regions: Vec<AwsRegion>,
    /// Send every AWS IoT call here instead of AWS (an emulator such as scripts/moto-iot.py).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// `jitp` (a provisioning template is registered with the CA) or `jitr` (no template).
    #[serde(default)]
    pub mode: AwsMode,
    /// The JITP template. Unset: the copy of schemas/jitp-template.json built into station.
    /// Relative paths resolve against the config file's folder.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// The provisioning role (with AWSIoTThingsRegistration) that JITP uses.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Refuse to issue under a CA without a passing verification younger than `max_verification_age`.
    #[serde(default)]
    pub require_verified: bool,
    /// How old a passing verification may be, e.g. "24h", "90m", "7d" or seconds.
    #[serde(default = "default_max_age")]
    pub max_verification_age: Age,
    /// How often `station serve` re-verifies its CA.
    #[serde(default = "default_reverify")]
    pub reverify_every: Age,
    /// Each AWS call, retries included, ends within this many seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts per call (throttling and transient errors are retried with backoff).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Calls per second per account and region (AWS's default quota is 10 per API).
    #[serde(default = "default_tps")]
    pub max_tps: u32,
}

impl Default for AwsSection {
    fn default() -> Self {
        AwsSection {
            regions: Vec::new(),
            endpoint_url: None,
            mode: AwsMode::default(),
            template: None,
            role_arn: None,
            require_verified: false,
            max_verification_age: default_max_age(),
            reverify_every: default_reverify(),
            timeout_secs: default_timeout(),
            max_attempts: default_attempts(),
            max_tps: default_tps(),
        }
    }
}

fn default_max_age() -> Age {
    Age(24 * 3600)
}
fn default_reverify() -> Age {
    Age(3600)
}
fn default_timeout() -> u64 {
    30
}
fn default_attempts() -> u32 {
    5
}
fn default_tps() -> u32 {
    8
}

/// One target region, optionally with the named profile (account) to use there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsRegion {
    pub name: String,
    #[serde(default)]
    pub profile: Option<String>,
}

/// How devices are provisioned at their first connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AwsMode {
    /// Just-in-time provisioning: the CA carries a template and a role.
    #[default]
    Jitp,
    /// Just-in-time registration: no template; a rule/Lambda activates devices.
    Jitr,
}

impl AwsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AwsMode::Jitp => "jitp",
            AwsMode::Jitr => "jitr",
        }
    }
}

impl FromStr for AwsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jitp" => Ok(AwsMode::Jitp),
            "jitr" => Ok(AwsMode::Jitr),
            _ => Err(format!("{s:?} is not a mode: use jitp or jitr")),
        }
    }
}

/// A duration written as seconds or as a number with a unit: `90s`, `30m`, `24h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub u64);

impl Age {
    pub fn secs(self) -> u64 {
        self.0
    }
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s {
            0 => write!(f, "0s"),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl FromStr for Age {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration such as \"24h\""))?;
        let mult = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => return Err(format!("unit {other:?} in {s:?} is not one of s, m, h, d")),
        };
        n.checked_mul(mult).map(Age).ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl Serialize for Age {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Age {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Age;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("seconds, or a string such as \"24h\", \"90m\", \"7d\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Age, E> {
                Ok(Age(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Age, E> {
                u64::try_from(v).map(Age).map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Age, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl AwsSection {
    /// Makes the template path absolute against the config file's folder.
    pub(super) fn resolve(&mut self, base: &Path) {
        if let Some(t) = &self.template
            && t.is_relative()
        {
            self.template = Some(base.join(t));
        }
    }
}

/// An AWS region name such as `eu-central-1`, `us-gov-west-1` or `cn-north-1`.
pub fn valid_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
}

/// Field checks for `[aws]`.
pub(super) fn check(aws: &AwsSection, path: &Path) -> Result<(), ConfigError> {
    let bad = |field: &str, problem: String, fix: &str| {
        Err(ConfigError::Field { path: path.to_path_buf(), field: field.into(), problem, fix: fix.into() })
    };
    if aws.regions.is_empty() {
        return bad(
            "aws.regions",
            "is empty".into(),
            "list the target regions, e.g. regions = [{ name = \"eu-central-1\" }]",
        );
    }
    let mut seen = std::collections::HashSet::new();
    for r in &aws.regions {
        if !valid_region(&r.name) {
            return bad("aws.regions.name", format!("{:?} is not an AWS region", r.name), "use e.g. \"eu-central-1\"");
        }
        if !seen.insert(&r.name) {
            return bad(
                "aws.regions.name",
                format!("{:?} is listed twice", r.name),
                "list each region once (one account per region)",
            );
        }
        if r.profile.as_deref().is_some_and(|p| p.is_empty() || p.chars().any(char::is_whitespace)) {
            return bad(
                "aws.regions.profile",
                format!("{:?} is not a profile name", r.profile),
                "name a profile in ~/.aws/config",
            );
        }
    }
    if let Some(u) = &aws.endpoint_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return bad("aws.endpoint_url", format!("is {u:?}"), "use an http:// or https:// URL, or remove it for AWS");
    }
    if let Some(arn) = &aws.role_arn
        && !valid_role_arn(arn)
    {
        return bad(
            "aws.role_arn",
            format!("is {arn:?}"),
            "use an IAM role ARN, e.g. arn:aws:iam::123456789012:role/StationJITP",
        );
    }
    if aws.mode == AwsMode::Jitp && aws.role_arn.is_none() {
        return bad(
            "aws.role_arn",
            "is missing, and mode is jitp".into(),
            "set the provisioning role (with the AWSIoTThingsRegistration policy), or use mode = \"jitr\"",
        );
    }
    if aws.max_verification_age.secs() < 60 {
        return bad(
            "aws.max_verification_age",
            format!("is {}", aws.max_verification_age),
            "use at least 60s, e.g. \"24h\"",
        );
    }
    if aws.reverify_every.secs() < 60 || aws.reverify_every.secs() >= aws.max_verification_age.secs() {
        return bad(
            "aws.reverify_every",
            format!("is {} (max_verification_age is {})", aws.reverify_every, aws.max_verification_age),
            "use at least 60s and less than max_verification_age, so a passing verification never goes stale",
        );
    }
    if !(1..=600).contains(&aws.timeout_secs) {
        return bad("aws.timeout_secs", format!("is {}", aws.timeout_secs), "use 1 to 600 seconds");
    }
    if !(1..=10).contains(&aws.max_attempts) {
        return bad("aws.max_attempts", format!("is {}", aws.max_attempts), "use 1 to 10 (5 is the default)");
    }
    if !(1..=100).contains(&aws.max_tps) {
        return bad("aws.max_tps", format!("is {}", aws.max_tps), "use 1 to 100; AWS's default quota is 10 per API");
    }
    Ok(())
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub fn valid_role_arn(arn: &str) -> bool {
    let p: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6
        && p[0] == "arn"
        && p[1].starts_with("aws")
        && p[2] == "iam"
        && p[3].is_empty()
        && p[4].len() == 12
        && p[4].chars().all(|c| c.is_ascii_digit())
        && p[5].strip_prefix("role/").is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units_and_print_back() {
        for (s, secs) in [("24h", 86_400), ("90m", 5400), ("7d", 604_800), ("45", 45), ("30s", 30)] {
            assert_eq!(s.parse::<Age>(), Ok(Age(secs)), "{s}");
        }
        assert_eq!(Age(86_400).to_string(), "1d");
        assert!("1w".parse::<Age>().is_err());
        assert!("h".parse::<Age>().is_err());
    }

    #[test]
    fn regions_and_role_arns_are_recognised() {
        for r in ["eu-central-1", "us-gov-west-1", "cn-north-1", "ap-southeast-2"] {
            assert!(valid_region(r), "{r}");
        }
        for r in ["eu-central", "EU-central-1", "eu_central_1", "", "eu--1"] {
            assert!(!valid_region(r), "{r}");
        }
        assert!(valid_role_arn("arn:aws:iam::123456789012:role/StationJITP"));
        assert!(valid_role_arn("arn:aws-cn:iam::123456789012:role/path/Name"));
        assert!(!valid_role_arn("arn:aws:iam::1234:role/x"));
        assert!(!valid_role_arn("arn:aws:iam::123456789012:user/x"));
    }

    const BASE: &str = r#"
[station]
id = "s1"
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "station"
[ledger]
path = "station.db"
[aws]
regions = [{ name = "eu-central-1", profile = "factory-eu" }, { name = "us-east-1" }]
role_arn = "arn:aws:iam::123456789012:role/StationJITP"
"#;

    fn load(text: &str) -> Result<crate::config::Config, ConfigError> {
        crate::config::Config::from_toml(text, Path::new("/etc/station/station.toml"))
    }

    #[test]
    fn aws_section_parses_with_defaults_and_resolves_the_template() {
        let cfg =
            load(&BASE.replace("[aws]", "[aws]\ntemplate = \"jitp.json\"\nmax_verification_age = \"12h\"")).unwrap();
        let aws = cfg.aws.expect("[aws]");
        assert_eq!(aws.regions[0], AwsRegion { name: "eu-central-1".into(), profile: Some("factory-eu".into()) });
        assert_eq!(aws.template.as_deref(), Some(Path::new("/etc/station/jitp.json")));
        assert_eq!((aws.mode, aws.require_verified, aws.max_verification_age), (AwsMode::Jitp, false, Age(43_200)));
        assert_eq!((aws.timeout_secs, aws.max_attempts, aws.max_tps), (30, 5, 8));
        let none = load(&BASE[..BASE.find("[aws]").unwrap()]).unwrap();
        assert!(none.aws.is_none());
    }

    #[test]
    fn bad_aws_fields_are_named_with_a_fix() {
        let cases = [
            ("name = \"us-east-1\"", "name = \"useast\"", "aws.regions.name"),
            ("{ name = \"us-east-1\" }", "{ name = \"eu-central-1\" }", "aws.regions.name"),
            ("role_arn = \"arn:aws:iam::123456789012:role/StationJITP\"", "", "aws.role_arn"),
            ("role_arn = \"arn:aws:iam::123456789012:role/StationJITP\"", "role_arn = \"StationJITP\"", "aws.role_arn"),
            ("[aws]", "[aws]\nendpoint_url = \"localhost:4566\"", "aws.endpoint_url"),
            ("[aws]", "[aws]\nmax_attempts = 0", "aws.max_attempts"),
            ("[aws]", "[aws]\nmax_verification_age = \"1h\"\nreverify_every = \"2h\"", "aws.reverify_every"),
        ];
        for (from, to, field) in cases {
            let err = load(&BASE.replace(from, to)).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
            assert!(!crate::error::Coded::hint(&err).is_empty());
        }
        let typo = load(&BASE.replace("[aws]", "[aws]\nregion = \"x\"")).unwrap_err();
        assert!(typo.to_string().contains("region"), "{typo}");
        let jitr = load(&BASE.replace("role_arn = \"arn:aws:iam::123456789012:role/StationJITP\"", "mode = \"jitr\""));
        assert!(jitr.is_ok(), "JITR needs no role: {jitr:?}");
    }
}

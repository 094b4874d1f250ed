//! The device certificate profile. Built from station policy alone: the CSR contributes the key.

use crate::config::{PolicySection, SerialSource};
use crate::ledger::SerialFormat;
use crate::pki::KeyType;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PublicKeyData, SignatureAlgorithm,
};
use regex::Regex;
use time::{Duration, OffsetDateTime};

/// The policy, checked and compiled once.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed: Vec<KeyType>,
    pub pattern: Regex,
    pub pattern_text: String,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub days: u32,
    pub backdate: Duration,
    pub source: SerialSource,
    pub format: SerialFormat,
    pub include_root: bool,
    /// The serials the station may issue at all (PrintableString; a thing name where JITP needs it).
    pub rule: crate::pki::SerialRule,
}

impl Policy {
    /// Compiles `[policy]` (already checked by the config loader).
    pub fn from_config(p: &PolicySection, rule: crate::pki::SerialRule) -> Policy {
        let anchored = format!("^(?:{})$", p.serial_pattern);
        Policy {
            allowed: p.key_types.iter().filter_map(|k| k.parse().ok()).collect(),
            pattern: Regex::new(&anchored).unwrap_or_else(|_| Regex::new("^$").expect("empty regex")),
            pattern_text: p.serial_pattern.clone(),
            organization: p.organization.clone(),
            organizational_unit: p.organizational_unit.clone(),
            country: p.country.clone(),
            days: p.days,
            backdate: Duration::minutes(p.backdate_minutes.into()),
            source: p.serial_source,
            format: SerialFormat {
                prefix: p.serial_prefix.clone(),
                width: p.serial_width,
                first: p.serial_first,
                last: p.serial_last,
                leased: false,
            },
            include_root: p.include_root,
            rule,
        }
    }

    /// The device subject: C, O, OU from policy; CN and serialNumber = the device serial.
    pub fn subject(&self, serial: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            dn.push(DnType::CountryName, printable(c));
        }
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        if let Some(ou) = &self.organizational_unit {
            dn.push(DnType::OrganizationalUnitName, ou.as_str());
        }
        dn.push(DnType::CommonName, serial);
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), printable(serial));
        dn
    }

    /// The full device profile: CA:FALSE, digitalSignature (critical), clientAuth, SKI, AKI, random
    /// serial, backdated notBefore, notAfter capped at the CA's.
    pub fn params(&self, serial: &str, ca_not_after: OffsetDateTime, now: OffsetDateTime) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = self.subject(serial);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(crate::ca::random_serial());
        p.not_before = now - self.backdate;
        p.not_after = (now + Duration::days(self.days.into())).min(ca_not_after);
        p
    }
}

/// PrintableString when the value allows it (X.520 prefers it for C and serialNumber), else UTF-8.
fn printable(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_string()),
    }
}

/// A device public key, normalised: the SPKI written into the certificate is rebuilt from the key
/// type the station checked, not copied from the CSR.
pub struct DeviceKey<'a> {
    pub key_type: KeyType,
    pub raw: &'a [u8],
}

impl PublicKeyData for DeviceKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        crate::pki::signature_algorithm(self.key_type)
    }
}

//! Subject strings such as `CN=Factory CA,O=Example Ltd,C=DE`.

use super::PkiError;
use rcgen::{DistinguishedName, DnType};

/// Parses a comma-separated subject. Known attributes: CN, O, OU, C, ST, L, serialNumber.
/// A comma inside a value is written `\,`.
pub fn parse_dn(input: &str) -> Result<DistinguishedName, PkiError> {
    let bad = |problem: String| PkiError::BadSubject { input: input.to_string(), problem };
    let mut dn = DistinguishedName::new();
    let mut has_cn = false;
    for part in split_unescaped(input) {
        let part = part.trim();
        let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} has no '='")))?;
        let v = v.trim().replace("\\,", ",");
        if v.is_empty() {
            return Err(bad(format!("{k} is empty")));
        }
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => {
                has_cn = true;
                DnType::CommonName
            }
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => {
                if v.len() != 2 {
                    return Err(bad(format!("C={v} is not a two-letter country code")));
                }
                DnType::CountryName
            }
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "SERIALNUMBER" => DnType::CustomDnType(vec![2, 5, 4, 5]),
            other => return Err(bad(format!("unknown attribute {other:?}"))),
        };
        match ty {
            // X.520 wants PrintableString for these; everything else is UTF8String.
            DnType::CountryName | DnType::CustomDnType(_) => match rcgen::string::PrintableString::try_from(v.as_str())
            {
                Ok(p) => dn.push(ty, rcgen::DnValue::PrintableString(p)),
                Err(_) => dn.push(ty, v),
            },
            _ => dn.push(ty, v),
        }
    }
    if !has_cn {
        return Err(bad("CN is required".into()));
    }
    Ok(dn)
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut prev_backslash = false;
    for c in s.chars() {
        if c == ',' && !prev_backslash {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
        prev_backslash = c == '\\';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_attributes_and_escaped_commas() {
        let dn = parse_dn("CN=Factory CA,O=Example\\, Ltd,C=DE").unwrap();
        assert_eq!(dn.iter().count(), 3);
        match dn.get(&DnType::OrganizationName) {
            Some(rcgen::DnValue::Utf8String(s)) => assert_eq!(s, "Example, Ltd"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_missing_cn_unknown_attribute_and_bad_country() {
        for s in ["O=x", "CN=a,XX=b", "CN=a,C=Germany", "CN=", "CN"] {
            assert!(parse_dn(s).is_err(), "{s}");
        }
    }
}

//! PKCS#11 URIs (RFC 7512) for keys: `pkcs11:token=station;object=ca-2026-11;type=private`.

use super::HsmError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use std::str::FromStr;

/// Characters left unescaped in a path attribute value (RFC 7512 `pk11-pchar` unreserved subset).
const PCHAR: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The address of a private key in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    pub token: String,
    pub object: String,
    /// CKA_ID, when the URI names one.
    pub id: Option<Vec<u8>>,
}

impl KeyUri {
    pub fn new(token: &str, object: &str) -> KeyUri {
        KeyUri { token: token.into(), object: object.into(), id: None }
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| utf8_percent_encode(s, PCHAR).to_string();
        write!(f, "pkcs11:token={};object={}", enc(&self.token), enc(&self.object))?;
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            write!(f, ";id={hex}")?;
        }
        f.write_str(";type=private")
    }
}

impl FromStr for KeyUri {
    type Err = HsmError;
    fn from_str(uri: &str) -> Result<Self, HsmError> {
        let bad = |problem: &str| HsmError::BadUri { uri: uri.into(), problem: problem.into() };
        let rest = uri.strip_prefix("pkcs11:").ok_or_else(|| bad("it must start with pkcs11:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.split('&').any(|q| q.starts_with("pin-value") || q.starts_with("pin-source")) {
            return Err(bad("a PIN never goes in a URI; use STATION_HSM_PIN or [hsm] pin_file"));
        }
        let (mut token, mut object, mut id) = (None, None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr.split_once('=').ok_or_else(|| bad("an attribute has no '='"))?;
            let raw = percent_decode_str(v).collect::<Vec<u8>>();
            let text = || String::from_utf8(raw.clone()).map_err(|_| bad("a value is not UTF-8"));
            match k {
                "token" => token = Some(text()?),
                "object" => object = Some(text()?),
                "id" => id = Some(raw.clone()),
                "type" if v != "private" => {
                    return Err(bad("the station signs with type=private keys"));
                }
                "type"
                | "manufacturer"
                | "model"
                | "serial"
                | "library-description"
                | "library-manufacturer"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer"
                | "slot-id" => {}
                _ => return Err(bad(&format!("unknown attribute {k:?}"))),
            }
        }
        Ok(KeyUri {
            token: token.ok_or_else(|| bad("token= is required"))?,
            object: object.ok_or_else(|| bad("object= is required"))?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_escaping() {
        let mut u = KeyUri::new("station", "ca 2026;11");
        u.id = Some(vec![0xab, 0x01]);
        let s = u.to_string();
        assert_eq!(s, "pkcs11:token=station;object=ca%202026%3B11;id=%ab%01;type=private");
        assert_eq!(s.parse::<KeyUri>().unwrap(), u);
        assert_eq!(
            "pkcs11:token=station;object=ca-2026-11;type=private".parse::<KeyUri>().unwrap(),
            KeyUri::new("station", "ca-2026-11")
        );
    }

    #[test]
    fn refuses_pins_missing_parts_and_public_keys() {
        for bad in [
            "pkcs11:token=a;object=b?pin-value=1234",
            "pkcs11:object=b",
            "pkcs11:token=a",
            "file:token=a;object=b",
            "pkcs11:token=a;object=b;type=public",
        ] {
            assert!(bad.parse::<KeyUri>().is_err(), "{bad}");
        }
    }
}

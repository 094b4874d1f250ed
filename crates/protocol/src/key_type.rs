//! The key type names of the protocol (spec 3.3): what WELCOME.key_types offers and a device's key is. The station
//! accepts device keys of these types and generates its CA keys in them too.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A key type, named on the wire as [`as_str`](Self::as_str) gives it (`ec-p256` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum KeyType {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub const ALL: [KeyType; 5] =
        [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048, KeyType::Rsa3072, KeyType::Rsa4096];

    /// The name on the wire and in station.toml.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_ec(self) -> bool {
        matches!(self, KeyType::EcP256 | KeyType::EcP384)
    }

    /// RSA modulus size in bits (0 for EC keys).
    pub fn rsa_bits(self) -> u64 {
        match self {
            KeyType::Rsa2048 => 2048,
            KeyType::Rsa3072 => 3072,
            KeyType::Rsa4096 => 4096,
            _ => 0,
        }
    }

    /// The RSA key type for a modulus size, if the protocol names one.
    pub fn from_rsa_bits(bits: usize) -> Option<KeyType> {
        match bits {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("{s:?} is not a supported key type"))
    }
}

impl From<KeyType> for String {
    fn from(k: KeyType) -> String {
        k.as_str().to_string()
    }
}

impl TryFrom<String> for KeyType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

//! The seven message bodies of protocol version 1, as serde structs, and the rules each field must follow.
//!
//! Each struct matches one schemas/msg-*.schema.json. Bodies are compact JSON objects. Unknown fields are refused,
//! except names that start with `x-`, which receivers ignore (see the spec, "Body rules").

use serde::{Deserialize, Serialize};

/// The message types of version 1, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `HELLO`, device → station.
    Hello,
    /// `WELCOME`, station → device.
    Welcome,
    /// `CSR`, device → station.
    Csr,
    /// `CHAIN`, station → device.
    Chain,
    /// `STORED`, device → station.
    Stored,
    /// `DONE`, station → device.
    Done,
    /// `ERROR`, either direction.
    Error,
}

impl MessageType {
    /// Every type, in flow order.
    pub const ALL: [MessageType; 7] = [
        MessageType::Hello,
        MessageType::Welcome,
        MessageType::Csr,
        MessageType::Chain,
        MessageType::Stored,
        MessageType::Done,
        MessageType::Error,
    ];

    /// The name on the wire, e.g. `HELLO`.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "HELLO",
            MessageType::Welcome => "WELCOME",
            MessageType::Csr => "CSR",
            MessageType::Chain => "CHAIN",
            MessageType::Stored => "STORED",
            MessageType::Done => "DONE",
            MessageType::Error => "ERROR",
        }
    }

    /// The type with this wire name, if version 1 defines one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Device → station: who I am.
    Hello(Hello),
    /// Station → device: who we are, what keys we accept, maybe your serial.
    Welcome(Welcome),
    /// Device → station: my certificate signing request.
    Csr(Csr),
    /// Station → device: your certificate chain (sent only after the ledger row is durable).
    Chain(Chain),
    /// Device → station: the hash of what I wrote to flash.
    Stored(Stored),
    /// Station → device: provisioning complete.
    Done(Done),
    /// Either way: something went wrong.
    Error(ErrorMsg),
}

/// `HELLO`: the first message of every session, sent by the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The protocol version the device speaks; equals the frame's version (1). Any JSON number with an integer
    /// value is accepted (`1`, `1.0`, `1e0`), as JSON Schema's `integer` does.
    #[serde(deserialize_with = "integer::required")]
    pub protocol: u32,
    /// Hardware model, printable ASCII, 1–64 characters.
    pub model: String,
    /// Firmware version, printable ASCII, 1–64 characters.
    pub firmware: String,
    /// The device's own serial, if it has one independently of any station (OTP, label); never one learned from a
    /// CHAIN. Omitted: at a `station`-mode station the station allocates one (spec 3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The revision of protocol 1 the device implements (revision 1.1: `1`). Omitted: 1.0. Since revision 1.1.
    #[serde(default, deserialize_with = "integer::optional", skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// Where the serial in the certificate comes from, as WELCOME states it (revision 1.1).
pub mod serial_source {
    /// The station allocates the serial; a device must not bring one.
    pub const STATION: &str = "station";
    /// The device brings its serial, in HELLO (or, from a revision 1.0 device, in the CSR's CN).
    pub const DEVICE: &str = "device";
}

/// `WELCOME`: the station's answer to HELLO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// The station's id, printable ASCII, 1–64 characters.
    pub station: String,
    /// Key types the station accepts in the CSR, most preferred first (`ec-p256`, `rsa-2048`, …).
    pub key_types: Vec<String>,
    /// The serial the station allocated or confirmed, when it knows it at this point. CHAIN's serial is authoritative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// `station` or `device` ([`serial_source`]). Sent only to a device whose HELLO carried `revision` (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_source: Option<String>,
    /// The revision both sides use in this session: the lower of the device's and the station's. Sent only to a
    /// device whose HELLO carried `revision`.
    #[serde(default, deserialize_with = "integer::optional", skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// `CSR`: the device's PKCS#10 request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Csr {
    /// The DER bytes of the PKCS#10 CertificationRequest; on the wire, field `csr`, standard base64 with padding.
    #[serde(rename = "csr", with = "b64")]
    pub der: Vec<u8>,
}

/// `CHAIN`: the issued chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// The serial the certificate carries.
    pub serial: String,
    /// PEM text, LF line endings: the device certificate, then the CA certificate(s). The device stores these bytes.
    pub chain: String,
    /// SHA-256 (64 lowercase hex digits) of the bytes of `chain` (the decoded string, not its JSON form).
    pub sha256: String,
}

/// `STORED`: what the device wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// SHA-256 (64 lowercase hex digits) of the chain as read back from the device's flash.
    pub sha256: String,
}

/// `DONE`: the last message of a successful session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// The serial the device now carries.
    pub serial: String,
}

/// `ERROR`: a failure, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorMsg {
    /// Stable kebab-case code, e.g. `stored-hash-mismatch`.
    pub code: String,
    /// What happened, for a human; 1–512 characters, no control characters.
    pub message: String,
    /// What to do about it; 0–512 characters, no control characters.
    pub hint: String,
    /// True if starting again (or, for `frame-*` codes, re-sending the last message) can succeed.
    pub retryable: bool,
}

/// The most characters `ErrorMsg::message` and `ErrorMsg::hint` may hold.
pub const MAX_ERROR_TEXT: usize = 512;

impl ErrorMsg {
    /// An ERROR that always encodes: control characters become spaces and the texts are cut to 512 characters.
    /// `code` should be one of [`codes`](super::codes) or an engine code (kebab-case).
    pub fn new(code: impl Into<String>, message: impl Into<String>, hint: impl Into<String>, retryable: bool) -> Self {
        let clean = |s: String| -> String {
            s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_ERROR_TEXT).collect()
        };
        let mut message = clean(message.into());
        if message.is_empty() {
            message.push('-');
        }
        ErrorMsg { code: code.into(), message, hint: clean(hint.into()), retryable }
    }
}

impl Message {
    /// This message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Welcome(_) => MessageType::Welcome,
            Message::Csr(_) => MessageType::Csr,
            Message::Chain(_) => MessageType::Chain,
            Message::Stored(_) => MessageType::Stored,
            Message::Done(_) => MessageType::Done,
            Message::Error(_) => MessageType::Error,
        }
    }

    /// Checks every field against the spec's limits; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Message::Hello(m) => {
                if m.protocol != super::PROTOCOL_VERSION {
                    return Err(format!("`protocol` is {}, but this frame is version 1", m.protocol));
                }
                check_text("model", &m.model)?;
                check_text("firmware", &m.firmware)?;
                m.serial.as_deref().map_or(Ok(()), |s| check_serial("serial", s))
            }
            Message::Welcome(m) => {
                check_text("station", &m.station)?;
                check_key_types(&m.key_types)?;
                if let Some(source) = m.serial_source.as_deref()
                    && source != serial_source::STATION
                    && source != serial_source::DEVICE
                {
                    return Err(format!("`serial_source` {source:?} must be \"station\" or \"device\""));
                }
                m.serial.as_deref().map_or(Ok(()), |s| check_serial("serial", s))
            }
            Message::Csr(m) if m.der.is_empty() => Err("`csr` is empty".into()),
            Message::Csr(_) => Ok(()),
            Message::Chain(m) => {
                check_serial("serial", &m.serial)?;
                check_chain(&m.chain)?;
                check_sha256(&m.sha256)
            }
            Message::Stored(m) => check_sha256(&m.sha256),
            Message::Done(m) => check_serial("serial", &m.serial),
            Message::Error(m) => {
                if !is_kebab(&m.code, 64) {
                    return Err(format!("`code` {:?} is not kebab-case of 1-64 characters", m.code));
                }
                check_free_text("message", &m.message, 1)?;
                check_free_text("hint", &m.hint, 0)
            }
        }
    }

    /// The JSON body: compact, with every `@` written as `\u0040` so the marker never appears inside a frame.
    pub(crate) fn body_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let json = match self {
            Message::Hello(m) => serde_json::to_vec(m),
            Message::Welcome(m) => serde_json::to_vec(m),
            Message::Csr(m) => serde_json::to_vec(m),
            Message::Chain(m) => serde_json::to_vec(m),
            Message::Stored(m) => serde_json::to_vec(m),
            Message::Done(m) => serde_json::to_vec(m),
            Message::Error(m) => serde_json::to_vec(m),
        }?;
        // `@` can only occur inside JSON strings, where `\u0040` is an equivalent escape.
        let mut out = Vec::with_capacity(json.len());
        for b in json {
            match b {
                b'@' => out.extend_from_slice(br"\u0040"),
                _ => out.push(b),
            }
        }
        Ok(out)
    }
}

macro_rules! into_message {
    ($($body:ident => $variant:ident),*) => {$(
        impl From<$body> for Message {
            fn from(body: $body) -> Self {
                Message::$variant(body)
            }
        }
    )*};
}

into_message!(
    Hello => Hello,
    Welcome => Welcome,
    Csr => Csr,
    Chain => Chain,
    Stored => Stored,
    Done => Done,
    ErrorMsg => Error
);

fn check_text(field: &str, s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| (0x20..=0x7e).contains(&b));
    ok.then_some(()).ok_or_else(|| format!("`{field}` must be 1-64 printable ASCII characters"))
}

/// Serial: what an X.509 `serialNumber` attribute (PrintableString) can hold, minus DN-special and space.
fn check_serial(field: &str, s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let first_ok = b.first().is_some_and(u8::is_ascii_alphanumeric);
    let rest_ok = b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-'));
    (first_ok && rest_ok && b.len() <= 64)
        .then_some(())
        .ok_or_else(|| format!("`{field}` {s:?} must be 1-64 characters of A-Z a-z 0-9 . : -, starting alphanumeric"))
}

fn check_key_types(types: &[String]) -> Result<(), String> {
    if !(1..=16).contains(&types.len()) {
        return Err("`key_types` must list 1-16 key types".into());
    }
    for (i, t) in types.iter().enumerate() {
        if !is_kebab(t, 32) {
            return Err(format!("`key_types[{i}]` {t:?} is not kebab-case of 1-32 characters"));
        }
        if types[..i].contains(t) {
            return Err(format!("`key_types[{i}]` {t:?} is listed twice"));
        }
    }
    Ok(())
}

/// The most certificates a CHAIN may carry.
pub const MAX_CHAIN_CERTS: usize = 8;

/// PEM as the station writes it: 1–8 CERTIFICATE blocks, base64 lines of 1–64 characters, LF endings, nothing else.
fn check_chain(chain: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`chain` {why}"));
    let Some(text) = chain.strip_suffix('\n') else {
        return bad("must end with LF");
    };
    let (mut blocks, mut in_block, mut lines_in_block) = (0, false, 0);
    for line in text.split('\n') {
        match (in_block, line) {
            (false, "-----BEGIN CERTIFICATE-----") => (in_block, lines_in_block) = (true, 0),
            (true, "-----END CERTIFICATE-----") if lines_in_block > 0 => (in_block, blocks) = (false, blocks + 1),
            (true, _) if is_base64_line(line) => lines_in_block += 1,
            _ => {
                return bad("must be PEM CERTIFICATE blocks with base64 lines of at most 64 characters and LF endings");
            }
        }
    }
    if in_block || !(1..=MAX_CHAIN_CERTS).contains(&blocks) {
        return bad("must hold 1-8 complete CERTIFICATE blocks");
    }
    Ok(())
}

fn is_base64_line(line: &str) -> bool {
    (1..=64).contains(&line.len()) && line.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn check_sha256(s: &str) -> Result<(), String> {
    let ok = s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(()).ok_or_else(|| "`sha256` must be 64 lowercase hex digits".into())
}

fn check_free_text(field: &str, s: &str, min: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n < min || n > MAX_ERROR_TEXT || s.chars().any(char::is_control) {
        return Err(format!("`{field}` must be {min}-{MAX_ERROR_TEXT} characters without control characters"));
    }
    Ok(())
}

/// `a-z0-9` words joined by single hyphens, at most `max` bytes.
pub(crate) fn is_kebab(s: &str, max: usize) -> bool {
    let words_ok =
        s.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    !s.is_empty() && s.len() <= max && words_ok
}

/// Integer fields: any JSON number whose value is a whole number that fits a `u32` (`1`, `1.0`, `1e0`); JSON Schema
/// 2020-12 counts `1.0` as an integer, so a schema-valid body must decode. `1.5`, `-1` and `true` are refused.
mod integer {
    use serde::de::{self, Deserializer, Visitor};

    struct Whole;

    impl Visitor<'_> for Whole {
        type Value = u32;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer from 0 to 4294967295")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
            if v.is_finite() && v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                Ok(v as u32)
            } else {
                Err(E::custom(format!("{v} is not an integer from 0 to 4294967295")))
            }
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        d.deserialize_any(Whole)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        struct Maybe;
        impl<'de> Visitor<'de> for Maybe {
            type Value = Option<u32>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<Option<u32>, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
                d.deserialize_any(Whole).map(Some)
            }
        }
        d.deserialize_option(Maybe)
    }
}

/// Standard base64 with padding, as a JSON string.
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(|e| serde::de::Error::custom(format!("not standard base64: {e}")))
    }
}

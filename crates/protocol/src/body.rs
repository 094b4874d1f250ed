//! Body decoding: one JSON object, no duplicate keys, unknown fields refused except `x-*`, then the field rules.

use super::error::FrameError;
use super::message::{Message, MessageType};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Decodes the body of a frame whose envelope already checked out.
pub(crate) fn decode_body(kind: MessageType, body: &[u8]) -> Result<Message, FrameError> {
    let bad = |reason: String| FrameError::BadBody { kind: kind.name(), reason };
    let UniqueObject(mut map) = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    map.retain(|key, _| !key.starts_with("x-"));
    let object = Value::Object(map);
    let msg = match kind {
        MessageType::Hello => Message::Hello(fields(object).map_err(bad)?),
        MessageType::Welcome => Message::Welcome(fields(object).map_err(bad)?),
        MessageType::Csr => Message::Csr(fields(object).map_err(bad)?),
        MessageType::Chain => Message::Chain(fields(object).map_err(bad)?),
        MessageType::Stored => Message::Stored(fields(object).map_err(bad)?),
        MessageType::Done => Message::Done(fields(object).map_err(bad)?),
        MessageType::Error => Message::Error(fields(object).map_err(bad)?),
    };
    msg.validate().map_err(bad)?;
    Ok(msg)
}

fn fields<T: DeserializeOwned>(object: Value) -> Result<T, String> {
    serde_json::from_value(object).map_err(|e| e.to_string())
}

/// A top-level JSON object whose keys are all distinct (serde_json's `Map` would keep the last silently; a C parser
/// usually keeps the first, so a duplicate could mean different things to the two ends).
struct UniqueObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = UniqueObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value: Value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(UniqueObject(map))
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{Csr, Hello};
    use super::*;

    fn reason(kind: MessageType, body: &str) -> String {
        match decode_body(kind, body.as_bytes()) {
            Err(FrameError::BadBody { reason, .. }) => reason,
            other => panic!("expected BadBody for {body}, got {other:?}"),
        }
    }

    #[test]
    fn x_prefixed_fields_are_ignored() {
        let body = format!(r#"{{"x-boot":3,"sha256":"{}","x-note":{{"a":[1]}}}}"#, "0a".repeat(32));
        let msg = decode_body(MessageType::Stored, body.as_bytes());
        assert!(matches!(msg, Ok(Message::Stored(_))), "{msg:?}");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let r = reason(MessageType::Hello, r#"{"protocol":1,"model":"m","firmware":"f","serail":"A1"}"#);
        assert!(r.contains("serail"), "{r}");
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let r = reason(MessageType::Done, r#"{"serial":"A1","serial":"A2"}"#);
        assert!(r.contains("duplicate field `serial`"), "{r}");
    }

    #[test]
    fn missing_fields_and_wrong_types_are_named() {
        assert!(reason(MessageType::Hello, r#"{"protocol":1,"model":"m"}"#).contains("firmware"));
        assert!(
            reason(MessageType::Error, r#"{"code":"x","message":"m","hint":"","retryable":"yes"}"#).contains("bool")
        );
    }

    #[test]
    fn non_objects_and_trailing_bytes_are_refused() {
        for body in ["[]", "\"a\"", "1", "", "{} {}", "{\"serial\":\"A1\"}x", "\u{feff}{}"] {
            assert!(decode_body(MessageType::Done, body.as_bytes()).is_err(), "{body:?}");
        }
        assert!(decode_body(MessageType::Done, &[b'{', 0xff, b'}']).is_err());
    }

    #[test]
    fn null_optional_fields_mean_absent() {
        let msg = decode_body(MessageType::Hello, br#"{"protocol":1,"model":"m","firmware":"f","serial":null}"#);
        assert!(matches!(msg, Ok(Message::Hello(Hello { serial: None, .. }))), "{msg:?}");
    }

    #[test]
    fn escaped_marker_decodes_to_at_sign() {
        let msg = decode_body(MessageType::Hello, br#"{"protocol":1,"model":"m\u0040x","firmware":"f"}"#);
        assert!(matches!(msg, Ok(Message::Hello(Hello { ref model, .. })) if model == "m@x"), "{msg:?}");
    }

    #[test]
    fn csr_must_be_standard_padded_base64() {
        let ok = decode_body(MessageType::Csr, br#"{"csr":"MAA="}"#);
        assert_eq!(ok, Ok(Message::Csr(Csr { der: vec![0x30, 0] })));
        assert!(reason(MessageType::Csr, r#"{"csr":"MAA"}"#).contains("base64"));
        assert!(reason(MessageType::Csr, r#"{"csr":"M-A="}"#).contains("base64"));
        assert!(reason(MessageType::Csr, r#"{"csr":""}"#).contains("empty"));
    }
}

//! The bench wire protocol, version 1: frames and messages between a device and the station over USB serial.
//!
//! Pure: no I/O, no clocks, no threads. The normative text is schemas/bench-protocol.md; the bodies are described by
//! schemas/msg-*.schema.json. The station (the top-level crate) and the simulator (`station-devsim`, crates/devsim)
//! both speak it through this crate, and the fuzz target (fuzz/) builds it alone.
//!
//! A frame is one line of text: `@<ver> <TYPE> <len> <json-body> <crc32-hex8>\n`, CRC-32/ISO-HDLC over everything
//! before the CRC digits. Senders call [`encode`]; receivers feed bytes to a [`Decoder`] and take
//! `Result<Message, FrameError>`s out. Every error has a stable code ([`codes`]) to send back in an `ERROR`.
//!
//! ```text
//! @1 HELLO 58 {"protocol":1,"model":"acme-sensor-v2","firmware":"1.4.2"} 7e5a85ef
//! ```

#![forbid(unsafe_code)]

mod body;
mod decoder;
mod error;
mod frame;
mod key_type;
mod message;
#[cfg(test)]
mod tests;

pub use decoder::Decoder;
pub use error::{EncodeError, FrameError, codes};
pub use frame::{DELIMITER, FRAME_MARKER, crc32, encode_raw};
pub use key_type::KeyType;
pub use message::{
    Chain, Csr, Done, ErrorMsg, Hello, MAX_CHAIN_CERTS, MAX_ERROR_TEXT, Message, MessageType, Stored, Welcome,
    serial_source,
};

use std::time::Duration;

/// The protocol version this crate speaks (the `<ver>` of every frame).
pub const PROTOCOL_VERSION: u32 = 1;

/// The revision of protocol 1 this crate implements: 1.1. A device announces its own in HELLO's `revision`; a
/// 1.0 device (no `revision`) gets 1.0 bodies, so it meets no field it does not know.
pub const REVISION: u32 = 1;

/// The device key type names of the protocol (spec 3.3), in [`KeyType::ALL`]'s order: exactly the types
/// `[policy] key_types` can allow.
pub const KEY_TYPES: [&str; 5] = {
    let [a, b, c, d, e] = KeyType::ALL;
    [a.as_str(), b.as_str(), c.as_str(), d.as_str(), e.as_str()]
};

/// The longest frame, from `@` to the LF inclusive, in bytes.
pub const MAX_FRAME: usize = 16 * 1024;

/// Default time the station, idle, waits for a frame to end once part of it has arrived ([`Decoder::is_mid_frame`]).
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time the station waits for CSR after sending WELCOME (the device may generate a key meanwhile).
pub const DEFAULT_CSR_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time the station waits for STORED after sending CHAIN (flash write and read-back).
pub const DEFAULT_STORED_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of consecutive frame-level errors after which the station ends a session.
pub const DEFAULT_MAX_FRAME_ERRORS: u32 = 3;

/// One complete frame for `msg`, delimiter included, ready to write to the port.
///
/// Fails if a field breaks the spec's limits (a bug on the sending side) or the frame would exceed [`MAX_FRAME`]
/// (e.g. a CA chain that is too long). An [`ErrorMsg`] built with [`ErrorMsg::new`] and a kebab-case code always
/// encodes.
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let kind = msg.message_type().name();
    let invalid = |reason: String| EncodeError::Invalid { kind: kind.to_string(), reason };
    msg.validate().map_err(invalid)?;
    let body = msg.body_json().map_err(|e| invalid(e.to_string()))?;
    encode_raw(PROTOCOL_VERSION, kind, &body)
}

/// Decodes one frame: the bytes from `@` up to the delimiter (a trailing CR and/or LF is ignored).
///
/// Receivers normally use [`Decoder`], which also finds frame boundaries and resynchronises; this is for a frame
/// already isolated (tests, tools, a spec example pasted in).
pub fn decode_frame(line: &[u8]) -> Result<Message, FrameError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() >= MAX_FRAME {
        return Err(FrameError::TooLarge);
    }
    let raw = frame::open(line)?;
    let kind = MessageType::from_name(raw.kind).ok_or_else(|| FrameError::UnknownType(raw.kind.to_string()))?;
    body::decode_body(kind, raw.body)
}

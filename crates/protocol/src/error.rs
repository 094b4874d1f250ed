//! What can go wrong on the wire, each with the stable code the spec lists (schemas/bench-protocol.md, "Errors").

use super::MAX_FRAME;
use super::message::ErrorMsg;

/// The stable protocol error codes (kebab-case). Peers and scripts match on these strings; they never change meaning.
///
/// Codes that start with `frame-` are *frame-level*: the receiver discarded one frame and the sender re-sends its last
/// message. Every other retryable code means "start again from HELLO".
pub mod codes {
    /// A frame whose CRC-32 did not match; the receiver discarded it.
    pub const FRAME_CRC_MISMATCH: &str = "frame-crc-mismatch";
    /// A frame longer than `MAX_FRAME` bytes; the receiver discarded it.
    pub const FRAME_TOO_LARGE: &str = "frame-too-large";
    /// A frame that does not follow the grammar (header, length or CRC trailer); the receiver discarded it.
    pub const FRAME_MALFORMED: &str = "frame-malformed";
    /// A well-formed frame of a protocol version the receiver does not speak.
    pub const UNSUPPORTED_VERSION: &str = "unsupported-version";
    /// A well-formed frame whose message type the receiver does not know.
    pub const UNKNOWN_MESSAGE_TYPE: &str = "unknown-message-type";
    /// A well-formed frame whose JSON body does not match the message's schema.
    pub const MESSAGE_INVALID: &str = "message-invalid";
    /// A valid message that is not allowed in the receiver's current state.
    pub const UNEXPECTED_MESSAGE: &str = "unexpected-message";
    /// The station waited longer than the step's timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The device stored a chain whose SHA-256 differs from the one sent.
    pub const STORED_HASH_MISMATCH: &str = "stored-hash-mismatch";
    /// A side gave up on a session after too many consecutive frame-level errors (either direction).
    pub const TOO_MANY_FRAME_ERRORS: &str = "too-many-frame-errors";
    /// HELLO while the station is shutting down.
    pub const STATION_STOPPING: &str = "station-stopping";

    /// Every code above, in the order the spec's table lists them.
    pub const ALL: &[&str] = &[
        FRAME_CRC_MISMATCH,
        FRAME_TOO_LARGE,
        FRAME_MALFORMED,
        UNSUPPORTED_VERSION,
        UNKNOWN_MESSAGE_TYPE,
        MESSAGE_INVALID,
        UNEXPECTED_MESSAGE,
        TIMEOUT,
        STORED_HASH_MISMATCH,
        TOO_MANY_FRAME_ERRORS,
        STATION_STOPPING,
    ];

    /// The codes a device sends about its own failures and about what it finds wrong in the station's answers
    /// (spec 6.3), with their `retryable` flag.
    pub mod device {
        /// None of WELCOME's key types is one the device can generate.
        pub const NO_ACCEPTABLE_KEY_TYPE: &str = "no-acceptable-key-type";
        /// The device could not make or store its key pair or its CSR.
        pub const KEY_GENERATION_FAILED: &str = "key-generation-failed";
        /// CHAIN.sha256 is not the SHA-256 of CHAIN.chain as received.
        pub const CHAIN_HASH_MISMATCH: &str = "chain-hash-mismatch";
        /// The chain is not PEM certificates that parse.
        pub const CHAIN_UNPARSEABLE: &str = "chain-unparseable";
        /// The device certificate is not for the device's key.
        pub const CHAIN_KEY_MISMATCH: &str = "chain-key-mismatch";
        /// The certificate's serial differs from CHAIN.serial, or CHAIN.serial from the device's own serial.
        pub const CHAIN_SERIAL_MISMATCH: &str = "chain-serial-mismatch";
        /// The chain does not verify against the device's trust anchor.
        pub const CHAIN_UNTRUSTED: &str = "chain-untrusted";
        /// Writing the chain, or reading it back, failed.
        pub const FLASH_WRITE_FAILED: &str = "flash-write-failed";
        /// DONE names another serial than CHAIN did.
        pub const DONE_SERIAL_MISMATCH: &str = "done-serial-mismatch";
        /// A new session with the same key brought a different chain than the one the device already holds.
        pub const CHAIN_NOT_IDEMPOTENT: &str = "chain-not-idempotent";

        /// Every device code and its `retryable`, in the order of the spec's table.
        pub const ALL: &[(&str, bool)] = &[
            (NO_ACCEPTABLE_KEY_TYPE, false),
            (KEY_GENERATION_FAILED, true),
            (CHAIN_HASH_MISMATCH, false),
            (CHAIN_UNPARSEABLE, false),
            (CHAIN_KEY_MISMATCH, false),
            (CHAIN_SERIAL_MISMATCH, false),
            (CHAIN_UNTRUSTED, false),
            (FLASH_WRITE_FAILED, true),
            (DONE_SERIAL_MISMATCH, false),
            (CHAIN_NOT_IDEMPOTENT, false),
        ];

        /// The `retryable` a device sends with `code`, if it is a device code.
        pub fn retryable(code: &str) -> Option<bool> {
            ALL.iter().find(|(c, _)| *c == code).map(|(_, r)| *r)
        }
    }

    /// True for the `frame-*` codes: the peer discarded a frame and wants the last message re-sent as it was.
    pub fn is_frame_level(code: &str) -> bool {
        code.starts_with("frame-")
    }
}

/// A frame the decoder received but could not turn into a [`Message`](super::Message).
///
/// The decoder has already discarded the offending bytes and resynchronised; the next good frame decodes normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More than `MAX_FRAME` bytes arrived after a frame marker without a delimiter.
    #[error("frame longer than {MAX_FRAME} bytes; discarded up to the next delimiter or frame marker")]
    TooLarge,
    /// The CRC-32 in the trailer does not match the frame's bytes.
    #[error("frame CRC mismatch: trailer says {received:08x}, bytes give {computed:08x}")]
    Crc {
        /// The CRC written in the frame's trailer.
        received: u32,
        /// The CRC computed over the received bytes.
        computed: u32,
    },
    /// The frame does not follow the grammar (marker, header fields, length, trailer).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A CRC-valid frame of another protocol version.
    #[error("protocol version {0} is not supported (this side speaks version {v})", v = super::PROTOCOL_VERSION)]
    UnsupportedVersion(u32),
    /// A CRC-valid frame whose type this version does not define.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// A CRC-valid frame of a known type whose body is not valid for that type.
    #[error("invalid {kind} body: {reason}")]
    BadBody {
        /// The message type, e.g. `HELLO`.
        kind: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
}

impl FrameError {
    /// The stable protocol code (see [`codes`]).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge => codes::FRAME_TOO_LARGE,
            FrameError::Crc { .. } => codes::FRAME_CRC_MISMATCH,
            FrameError::Malformed(_) => codes::FRAME_MALFORMED,
            FrameError::UnsupportedVersion(_) => codes::UNSUPPORTED_VERSION,
            FrameError::UnknownType(_) => codes::UNKNOWN_MESSAGE_TYPE,
            FrameError::BadBody { .. } => codes::MESSAGE_INVALID,
        }
    }

    /// Whether sending the same thing again can succeed: true for the frame-level (transmission) errors.
    pub fn retryable(&self) -> bool {
        codes::is_frame_level(self.code())
    }

    /// What the peer should do about it, in one sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            FrameError::TooLarge => "re-send the last message; frames are limited to 16384 bytes including the LF",
            FrameError::Crc { .. } | FrameError::Malformed(_) => {
                "re-send the last message; if this repeats, check the cable, baud rate and ground"
            }
            FrameError::UnsupportedVersion(_) => "speak protocol version 1 (`@1 ...` frames)",
            FrameError::UnknownType(_) => {
                "version 1 defines HELLO, WELCOME, CSR, CHAIN, STORED, DONE and ERROR; update the firmware"
            }
            FrameError::BadBody { .. } => "fix the named field; schemas/msg-*.schema.json describes every body",
        }
    }

    /// The ERROR message a receiver sends back for this frame.
    pub fn to_error_msg(&self) -> ErrorMsg {
        ErrorMsg::new(self.code(), self.to_string(), self.hint(), self.retryable())
    }
}

/// A message that cannot be put on the wire: a bug or a misconfiguration on the sending side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The frame would exceed `MAX_FRAME` bytes (e.g. a CA chain that is too long).
    #[error("{kind} frame would be {len} bytes, more than the {MAX_FRAME}-byte limit")]
    TooLarge {
        /// The message type.
        kind: String,
        /// The length the frame would have had.
        len: usize,
    },
    /// A field breaks the message's schema.
    #[error("invalid {kind} message: {reason}")]
    Invalid {
        /// The message type.
        kind: String,
        /// What is wrong, naming the field.
        reason: String,
    },
}

impl EncodeError {
    /// The stable code: `frame-too-large` or `message-invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::TooLarge { .. } => codes::FRAME_TOO_LARGE,
            EncodeError::Invalid { .. } => codes::MESSAGE_INVALID,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_errors_map_to_stable_codes_and_retry_classes() {
        let cases = [
            (FrameError::TooLarge, "frame-too-large", true),
            (FrameError::Crc { received: 1, computed: 2 }, "frame-crc-mismatch", true),
            (FrameError::Malformed("x".into()), "frame-malformed", true),
            (FrameError::UnsupportedVersion(2), "unsupported-version", false),
            (FrameError::UnknownType("PING".into()), "unknown-message-type", false),
            (FrameError::BadBody { kind: "HELLO", reason: "x".into() }, "message-invalid", false),
        ];
        for (err, code, retryable) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.retryable(), retryable, "{code}");
            let msg = err.to_error_msg();
            assert_eq!(msg.code, code);
            assert_eq!(msg.retryable, retryable);
            assert!(!msg.hint.is_empty());
        }
    }

    #[test]
    fn every_code_is_kebab_case_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for code in codes::ALL {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(super::super::message::is_kebab(code, 64), "{code}");
        }
    }
}

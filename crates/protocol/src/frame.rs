//! The envelope: `@<ver> <TYPE> <len> <body> <crc32-hex8>\n`, CRC-32/ISO-HDLC over everything before the CRC.
//!
//! This layer knows nothing about message bodies except that they are opaque bytes free of the three reserved bytes
//! (`@`, CR, LF). See schemas/bench-protocol.md, "Framing".

use super::error::{EncodeError, FrameError};
use super::{MAX_FRAME, PROTOCOL_VERSION};

/// The byte that starts every frame. It never appears anywhere else in a frame.
pub const FRAME_MARKER: u8 = b'@';
/// The byte that ends every frame a sender writes. Receivers also accept CR as a delimiter.
pub const DELIMITER: u8 = b'\n';
/// The longest message type name.
const MAX_TYPE_LEN: usize = 16;

/// CRC-32/ISO-HDLC (the zlib/Ethernet/PNG CRC): poly 0x04C11DB7, init and xorout 0xFFFFFFFF, reflected.
/// Slice-by-16 tables (16 KiB, built at compile time): a 2 KiB CHAIN frame checks in a fraction of the time a
/// byte-at-a-time table takes.
const CRC32: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `bytes`; `crc32(b"123456789") == 0xCBF43926`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Length of the trailer after the body: one space and eight hex digits.
const TRAILER_LEN: usize = 9;

/// True for the bytes a body may never contain (they delimit frames).
pub(crate) fn is_reserved(b: u8) -> bool {
    b == FRAME_MARKER || b == b'\n' || b == b'\r'
}

/// Wraps `body` in a frame of the given version and type, CRC and delimiter included.
///
/// This is the low-level builder; [`encode`](super::encode) is what senders normally call. Simulators may use it to
/// send deliberately wrong versions or unknown types. It refuses bodies that contain `@`, CR or LF, type names that are
/// not 1–16 ASCII capitals, and frames over `MAX_FRAME` bytes.
pub fn encode_raw(version: u32, kind: &str, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let invalid = |reason: &str| EncodeError::Invalid { kind: kind.to_string(), reason: reason.to_string() };
    if !is_type_name(kind.as_bytes()) {
        return Err(invalid("the type must be 1-16 ASCII capital letters"));
    }
    if body.iter().copied().any(is_reserved) {
        return Err(invalid("the body must not contain `@`, CR or LF"));
    }
    let mut frame = format!("@{version} {kind} {} ", body.len()).into_bytes();
    frame.extend_from_slice(body);
    frame.push(b' ');
    let crc = crc32(&frame);
    frame.extend_from_slice(format!("{crc:08x}").as_bytes());
    frame.push(DELIMITER);
    if frame.len() > MAX_FRAME {
        return Err(EncodeError::TooLarge { kind: kind.to_string(), len: frame.len() });
    }
    Ok(frame)
}

/// A frame whose envelope checked out: CRC, version, type syntax and length. The body is not parsed yet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawFrame<'a> {
    pub kind: &'a str,
    pub body: &'a [u8],
}

/// Checks one frame's envelope. `line` starts at the marker and excludes the delimiter.
///
/// Order (the spec's "Validation order"): trailer syntax, CRC, version, header syntax, length.
/// A frame whose CRC fails is reported as a CRC error even if other fields look wrong, so that line noise always
/// yields a retryable error.
pub(crate) fn open(line: &[u8]) -> Result<RawFrame<'_>, FrameError> {
    let malformed = |why: String| Err(FrameError::Malformed(why));
    if line.first() != Some(&FRAME_MARKER) {
        return malformed("a frame starts with `@`".into());
    }
    if line.len() < 1 + TRAILER_LEN + 1 {
        return malformed(format!("{} bytes is too short to be a frame", line.len()));
    }
    if line[1..].iter().copied().any(is_reserved) {
        return malformed("`@`, CR or LF inside the frame".into());
    }
    let (covered, hex) = line.split_at(line.len() - (TRAILER_LEN - 1));
    if covered.last() != Some(&b' ') {
        return malformed("no space before the CRC trailer".into());
    }
    let Some(received) = parse_hex8(hex) else {
        return malformed("the CRC trailer is not 8 hex digits".into());
    };
    let computed = crc32(covered);
    if received != computed {
        return Err(FrameError::Crc { received, computed });
    }
    // `covered` is `@<ver> <TYPE> <len> <body> `; drop the marker and the trailing space.
    let inner = &covered[1..covered.len() - 1];
    let (ver, rest) = split_token(inner, "version")?;
    let version = parse_decimal(ver, 9).ok_or_else(|| bad("the version is not a decimal number"))?;
    if version != u64::from(PROTOCOL_VERSION) {
        let v = u32::try_from(version).unwrap_or(u32::MAX);
        return Err(FrameError::UnsupportedVersion(v));
    }
    let (kind, rest) = split_token(rest, "type")?;
    if !is_type_name(kind) {
        return malformed("the type is not 1-16 ASCII capital letters".into());
    }
    let (len, body) = split_token(rest, "length")?;
    let len = parse_decimal(len, 5).ok_or_else(|| bad("the length is not a decimal number of at most 5 digits"))?;
    if len != body.len() as u64 {
        return malformed(format!(
            "the length field says {len} bytes but the body has {} (a byte was lost or inserted)",
            body.len()
        ));
    }
    // `kind` is ASCII capitals, so this cannot fail; map rather than unwrap anyway.
    let kind = std::str::from_utf8(kind).map_err(|_| bad("the type is not ASCII"))?;
    Ok(RawFrame { kind, body })
}

fn bad(why: &str) -> FrameError {
    FrameError::Malformed(why.to_string())
}

/// Splits at the first space: `(token, rest)`. The token must be non-empty.
fn split_token<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), FrameError> {
    match bytes.iter().position(|&b| b == b' ') {
        Some(0) => Err(FrameError::Malformed(format!("the {what} field is empty (two spaces in a row)"))),
        Some(i) => Ok((&bytes[..i], &bytes[i + 1..])),
        None => Err(FrameError::Malformed(format!("the header ends before the {what} field"))),
    }
}

fn is_type_name(bytes: &[u8]) -> bool {
    (1..=MAX_TYPE_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_uppercase)
}

/// A decimal number of 1..=`max_digits` digits, without leading zeros (except `0` itself).
fn parse_decimal(bytes: &[u8], max_digits: usize) -> Option<u64> {
    let ok_len = (1..=max_digits).contains(&bytes.len());
    let no_lead_zero = bytes.len() == 1 || bytes.first() != Some(&b'0');
    if !ok_len || !no_lead_zero || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Exactly eight hex digits, either case.
fn parse_hex8(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != 8 {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, &b| Some((n << 4) | (b as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(frame: &[u8]) -> &[u8] {
        frame.strip_suffix(b"\n").expect("frames end with LF")
    }

    #[test]
    fn crc_matches_the_iso_hdlc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn encode_raw_writes_the_documented_layout() {
        let frame = encode_raw(1, "DONE", br#"{"serial":"A1"}"#).expect("valid");
        let text = std::str::from_utf8(&frame).expect("ascii");
        let crc = crc32(br#"@1 DONE 15 {"serial":"A1"} "#);
        assert_eq!(text, format!("@1 DONE 15 {{\"serial\":\"A1\"}} {crc:08x}\n"));
        let raw = open(line(&frame)).expect("opens");
        assert_eq!(raw, RawFrame { kind: "DONE", body: br#"{"serial":"A1"}"# });
    }

    #[test]
    fn encode_raw_refuses_reserved_bytes_bad_types_and_oversize() {
        assert!(encode_raw(1, "DONE", b"{\"a\":\"@\"}").is_err());
        assert!(encode_raw(1, "DONE", b"{\n}").is_err());
        assert!(encode_raw(1, "done", b"{}").is_err());
        assert!(encode_raw(1, "", b"{}").is_err());
        let big = vec![b'x'; MAX_FRAME];
        assert!(matches!(encode_raw(1, "DONE", &big), Err(EncodeError::TooLarge { .. })));
    }

    #[test]
    fn uppercase_crc_hex_is_accepted() {
        let frame = encode_raw(1, "DONE", b"{}").expect("valid");
        let upper = line(&frame).to_ascii_uppercase();
        assert!(open(&upper).is_ok());
    }

    #[test]
    fn crc_is_checked_before_the_version_so_noise_stays_retryable() {
        let frame = encode_raw(1, "DONE", b"{}").expect("valid");
        let mut damaged = line(&frame).to_vec();
        damaged[1] = b'7';
        assert!(matches!(open(&damaged), Err(FrameError::Crc { .. })));
        let v2 = encode_raw(2, "DONE", b"{}").expect("valid");
        assert_eq!(open(line(&v2)), Err(FrameError::UnsupportedVersion(2)));
    }

    #[test]
    fn header_grammar_violations_are_malformed() {
        let cases: [&[u8]; 8] = [
            b"@1 DONE 2 {}",          // no trailer
            b"@",                     // too short
            b"@1 DONE 2 {}00000000",  // no space before the trailer
            b"@1 DONE 2 {} 0000000g", // trailer not hex
            b"@01 DONE 2 {} ",        // leading zero (crc fixed below)
            b"@1 Done 2 {} ",         // lower-case type
            b"@1 DONE 3 {} ",         // length mismatch
            b"@1  DONE 2 {} ",        // empty field
        ];
        for case in cases {
            let mut frame = case.to_vec();
            if frame.ends_with(b" ") {
                let crc = crc32(&frame);
                frame.extend_from_slice(format!("{crc:08x}").as_bytes());
            }
            let got = open(&frame);
            assert!(matches!(got, Err(FrameError::Malformed(_))), "{}: {got:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn decimal_and_hex_parsers_are_strict() {
        assert_eq!(parse_decimal(b"0", 5), Some(0));
        assert_eq!(parse_decimal(b"16384", 5), Some(16384));
        assert_eq!(parse_decimal(b"123456", 5), None);
        assert_eq!(parse_decimal(b"-1", 5), None);
        assert_eq!(parse_decimal(b"", 5), None);
        assert_eq!(parse_hex8(b"CBF43926"), Some(0xCBF4_3926));
        assert_eq!(parse_hex8(b"+bf43926"), None);
    }
}

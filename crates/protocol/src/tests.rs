//! Whole-crate tests: round trips, a noisy 1,000-frame stream, and the frames printed in the spec.

use super::*;

const SHA_A: &str = "3b0f1f7a3c1f5e4ad1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
const CHAIN_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdevice==\n-----END CERTIFICATE-----\n\
                         -----BEGIN CERTIFICATE-----\nMIIBca==\n-----END CERTIFICATE-----\n";

/// One message of every type, with every optional field set one way or the other.
fn samples() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            protocol: 1,
            model: "acme-sensor-v2 rev@B \"quoted\"".into(),
            firmware: "1.4.2+g3f9c2a1".into(),
            serial: None,
            revision: Some(1),
        }),
        Message::Hello(Hello {
            protocol: 1,
            model: "m".into(),
            firmware: "f".into(),
            serial: Some("ACME-00001234".into()),
            revision: None,
        }),
        Message::Welcome(Welcome {
            station: "bench-07".into(),
            key_types: vec!["ec-p256".into(), "ec-p384".into(), "rsa-2048".into()],
            serial: Some("ACME-00001234".into()),
            serial_source: Some("station".into()),
            revision: Some(1),
        }),
        Message::Welcome(Welcome {
            station: "s".into(),
            key_types: vec!["ec-p256".into()],
            serial: None,
            serial_source: None,
            revision: None,
        }),
        Message::Csr(Csr { der: (0..=255u8).collect() }),
        Message::Chain(Chain { serial: "ACME-00001234".into(), chain: CHAIN_PEM.into(), sha256: SHA_A.into() }),
        Message::Stored(Stored { sha256: SHA_A.into() }),
        Message::Done(Done { serial: "ACME-00001234".into() }),
        Message::Error(ErrorMsg::new(codes::STORED_HASH_MISMATCH, "stored 1b2c…, sent 3b0f…", "retry", true)),
        Message::Error(ErrorMsg::new("csr-bad-signature", "line1\nline2 ünïcode @", "", false)),
    ]
}

#[test]
fn every_message_type_round_trips() {
    let all = samples();
    for t in MessageType::ALL {
        assert!(all.iter().any(|m| m.message_type() == t), "no sample for {t}");
        assert_eq!(MessageType::from_name(t.name()), Some(t));
    }
    for msg in all {
        let frame = encode(&msg).expect("sample encodes");
        assert_eq!(frame.last(), Some(&b'\n'));
        assert_eq!(frame.iter().filter(|&&b| b == b'@').count(), 1, "marker appears once");
        assert!(!frame[..frame.len() - 1].iter().any(|&b| b == b'\n' || b == b'\r'));
        assert_eq!(decode_frame(&frame), Ok(msg.clone()));
        let mut d = Decoder::new();
        d.push(&frame);
        assert_eq!(d.next_frame(), Some(Ok(msg)));
        assert_eq!(d.next_frame(), None);
    }
}

#[test]
fn invalid_messages_do_not_encode() {
    let bad = [
        Message::Hello(Hello { protocol: 2, model: "m".into(), firmware: "f".into(), serial: None, revision: None }),
        Message::Hello(Hello { protocol: 1, model: String::new(), firmware: "f".into(), serial: None, revision: None }),
        Message::Hello(Hello {
            protocol: 1,
            model: "m".into(),
            firmware: "f".into(),
            serial: Some("A_1".into()),
            revision: None,
        }),
        Message::Welcome(Welcome {
            station: "s".into(),
            key_types: vec![],
            serial: None,
            serial_source: None,
            revision: None,
        }),
        Message::Welcome(Welcome {
            station: "s".into(),
            key_types: vec!["EC-P256".into()],
            serial: None,
            serial_source: None,
            revision: None,
        }),
        Message::Welcome(Welcome {
            station: "s".into(),
            key_types: vec!["a".into(), "a".into()],
            serial: None,
            serial_source: None,
            revision: None,
        }),
        Message::Csr(Csr { der: vec![] }),
        Message::Chain(Chain { serial: "A".into(), chain: "not pem".into(), sha256: SHA_A.into() }),
        Message::Chain(Chain { serial: "A".into(), chain: CHAIN_PEM.replace('\n', "\r\n"), sha256: SHA_A.into() }),
        Message::Stored(Stored { sha256: SHA_A.to_uppercase() }),
        Message::Done(Done { serial: "-A".into() }),
        Message::Error(ErrorMsg {
            code: "Bad_Code".into(),
            message: "m".into(),
            hint: String::new(),
            retryable: false,
        }),
        Message::Error(ErrorMsg { code: "c".into(), message: "a\u{7}b".into(), hint: String::new(), retryable: false }),
    ];
    for msg in bad {
        let got = encode(&msg);
        assert!(matches!(got, Err(EncodeError::Invalid { .. })), "{msg:?} gave {got:?}");
    }
    let big_cert = format!("-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n", "QUJD\n".repeat(1000));
    let huge = Chain { serial: "A".into(), chain: big_cert.repeat(8), sha256: SHA_A.into() };
    assert!(matches!(encode(&Message::Chain(huge)), Err(EncodeError::TooLarge { .. })));
}

#[test]
fn chain_must_be_strict_pem() {
    let block = |body: &str| format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n");
    let chain = |text: String| Message::Chain(Chain { serial: "A".into(), chain: text, sha256: SHA_A.into() });
    assert!(encode(&chain(block("QUJD\n").repeat(8))).is_ok());
    assert!(encode(&chain(block(&format!("{}\n", "A".repeat(64))))).is_ok());
    let bad = [
        block("QUJD\n").repeat(9),
        block(&format!("{}\n", "A".repeat(65))),
        block(""),
        block("QU JD\n"),
        block("QUJD\n").trim_end().to_string(),
        format!("junk\n{}", block("QUJD\n")),
        "-----BEGIN CERTIFICATE-----\nQUJD\n".into(),
        String::new(),
    ];
    for text in bad {
        assert!(matches!(encode(&chain(text.clone())), Err(EncodeError::Invalid { .. })), "{text:?}");
    }
}

#[test]
fn error_msg_new_always_encodes() {
    let msg = ErrorMsg::new("issuance-halted", "\u{0}".repeat(2000), "h\r\n".repeat(300), true);
    assert_eq!(msg.message.chars().count(), MAX_ERROR_TEXT);
    assert!(encode(&Message::Error(msg)).is_ok());
    assert!(encode(&Message::Error(ErrorMsg::new("timeout", "", "", true))).is_ok());
}

#[test]
fn unknown_type_and_unsupported_version_are_reported_after_a_good_crc() {
    let ping = encode_raw(1, "PING", b"{}").expect("raw");
    assert_eq!(decode_frame(&ping), Err(FrameError::UnknownType("PING".into())));
    let v2 = encode_raw(2, "HELLO", b"{}").expect("raw");
    assert_eq!(decode_frame(&v2), Err(FrameError::UnsupportedVersion(2)));
    let huge_version = encode_raw(999_999_999, "HELLO", b"{}").expect("raw");
    assert_eq!(decode_frame(&huge_version), Err(FrameError::UnsupportedVersion(999_999_999)));
}

/// xorshift64*: a tiny deterministic generator, so the noisy-stream test needs no `rand`.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Makes sample `msg` unique to frame `i`, so that a decoded message tells which frame it came from.
fn tag(mut msg: Message, i: usize) -> Message {
    match &mut msg {
        Message::Hello(m) => m.firmware = format!("fw{i}"),
        Message::Welcome(m) => m.station = format!("st{i}"),
        Message::Csr(m) => m.der.extend_from_slice(&i.to_be_bytes()),
        Message::Chain(m) => m.serial = format!("S{i}"),
        Message::Stored(m) => m.sha256 = format!("{i:064x}"),
        Message::Done(m) => m.serial = format!("S{i}"),
        Message::Error(m) => m.message = format!("m{i}"),
    }
    msg
}

#[test]
fn noisy_stream_of_1000_frames_recovers_every_undamaged_frame() {
    for seed in [0x005E_ED0F_BE4C, 1, 0xDEAD, 0xBEEF, 0x1234_5678] {
        noisy_stream(seed);
    }
}

fn noisy_stream(seed: u64) {
    let mut rng = XorShift(seed);
    let samples = samples();
    let mut stream = Vec::new();
    let mut frames = Vec::new(); // (start, end, message) of each frame in `stream`
    for i in 0..1000 {
        let msg = tag(samples[rng.below(samples.len())].clone(), i);
        if rng.below(10) == 0 {
            stream.extend_from_slice(b"boot log \x00\xff noise\r\n");
        }
        let frame = encode(&msg).expect("encodes");
        frames.push((stream.len(), stream.len() + frame.len(), msg));
        stream.extend(frame);
    }
    let mut damaged = vec![false; stream.len()];
    for _ in 0..300 {
        let at = rng.below(stream.len());
        stream[at] ^= 1 << rng.below(8);
        damaged[at] = true;
    }
    let mut d = Decoder::new();
    let mut decoded = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = 1 + rng.below(700);
        d.push(&stream[at..(at + n).min(stream.len())]);
        at += n;
        while let Some(r) = d.next_frame() {
            decoded.extend(r.ok());
        }
    }
    // Each decoded message is exactly the message of one frame, in stream order: never a wrong message. (A damaged
    // frame may still decode when the flip was harmless, e.g. a CRC hex digit changed case.)
    let mut origin = Vec::new();
    for msg in &decoded {
        let i = frames.iter().position(|(_, _, m)| m == msg).unwrap_or_else(|| panic!("seed {seed}: {msg:?}"));
        assert!(origin.last().is_none_or(|&last| last < i), "seed {seed}: frame {i} out of order");
        origin.push(i);
    }
    // Every undamaged frame comes out.
    let mut hit = 0;
    for (i, (start, end, _)) in frames.iter().enumerate() {
        if damaged[*start..*end].contains(&true) {
            hit += 1;
        } else {
            assert!(origin.contains(&i), "seed {seed}: undamaged frame {i} was lost");
        }
    }
    assert!(hit > 100, "seed {seed}: the test must actually damage frames ({hit})");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(42);
    let mut d = Decoder::new();
    for _ in 0..2000 {
        let len = rng.below(64);
        let chunk: Vec<u8> = (0..len)
            .map(|_| match rng.below(8) {
                0 => b'@',
                1 => b'\n',
                2 => b' ',
                3 => b'1',
                _ => rng.next() as u8,
            })
            .collect();
        d.push(&chunk);
        while d.next_frame().is_some() {}
        let _ = decode_frame(&chunk);
    }
}

/// The spec's example frames: every line starting with `@` between `<!-- frames:begin -->` and
/// `<!-- frames:end -->` in schemas/bench-protocol.md must decode.
fn spec_frames() -> Vec<Vec<Message>> {
    let spec = include_str!("../../../schemas/bench-protocol.md");
    let mut blocks = Vec::new();
    for part in spec.split("<!-- frames:begin -->").skip(1) {
        let block = part.split("<!-- frames:end -->").next().unwrap_or_default();
        let msgs = block
            .lines()
            .filter(|l| l.starts_with('@'))
            .map(|l| decode_frame(l.as_bytes()).unwrap_or_else(|e| panic!("spec frame does not decode: {e}\n{l}")))
            .collect();
        blocks.push(msgs);
    }
    blocks
}

#[test]
fn spec_example_frames_decode_and_follow_the_flow() {
    let blocks = spec_frames();
    assert!(blocks.len() >= 2, "the spec has a transcript block and an errors block");
    let happy = &blocks[0];
    let types: Vec<&str> = happy.iter().map(|m| m.message_type().name()).collect();
    assert_eq!(types, ["HELLO", "WELCOME", "CSR", "CHAIN", "STORED", "DONE"]);
    let (Message::Chain(chain), Message::Stored(stored)) = (&happy[3], &happy[4]) else { unreachable!() };
    assert_eq!(chain.sha256, stored.sha256, "the device echoes the chain hash");
    let frames_in_spec = blocks.iter().map(Vec::len).sum::<usize>();
    assert!(frames_in_spec >= 10, "{frames_in_spec}");
}

#[test]
fn spec_lists_every_protocol_code_and_the_crc_check_value() {
    let spec = include_str!("../../../schemas/bench-protocol.md");
    for code in codes::ALL {
        assert!(spec.contains(&format!("`{code}`")), "spec does not document {code}");
    }
    assert!(spec.contains("0xCBF43926"));
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn integer_fields_accept_any_json_number_with_an_integer_value() {
    for (body, want) in [
        (r#"{"protocol":1,"model":"m","firmware":"f"}"#, Some(1)),
        (r#"{"protocol":1.0,"model":"m","firmware":"f"}"#, Some(1)),
        (r#"{"protocol":1e0,"model":"m","firmware":"f","revision":1.0}"#, Some(1)),
        (r#"{"protocol":1.5,"model":"m","firmware":"f"}"#, None),
        (r#"{"protocol":-1,"model":"m","firmware":"f"}"#, None),
        (r#"{"protocol":"1","model":"m","firmware":"f"}"#, None),
        (r#"{"protocol":1,"model":"m","firmware":"f","revision":0.5}"#, None),
    ] {
        let frame = encode_raw(1, "HELLO", body.as_bytes()).unwrap();
        let got = decode_frame(&frame);
        match want {
            Some(p) => assert!(matches!(&got, Ok(Message::Hello(h)) if h.protocol == p), "{body}: {got:?}"),
            None => assert!(matches!(got, Err(FrameError::BadBody { .. })), "{body}: {got:?}"),
        }
    }
    // Re-encoded, an integer is written plainly.
    let frame = encode_raw(1, "HELLO", br#"{"protocol":1.0,"model":"m","firmware":"f","revision":1.0}"#).unwrap();
    let again = encode(&decode_frame(&frame).unwrap()).unwrap();
    assert!(String::from_utf8(again).unwrap().contains(r#"{"protocol":1,"model":"m","firmware":"f","revision":1}"#));
}

#[test]
fn welcome_serial_source_is_station_or_device() {
    let w = |s: &str| {
        Message::Welcome(Welcome {
            serial_source: Some(s.into()),
            ..Welcome { station: "s".into(), key_types: vec!["ec-p256".into()], ..Default::default() }
        })
    };
    assert!(encode(&w("station")).is_ok() && encode(&w("device")).is_ok());
    assert!(matches!(encode(&w("both")), Err(EncodeError::Invalid { .. })));
}

#[test]
fn the_spec_names_exactly_the_key_types_a_station_can_accept() {
    let spec = include_str!("../../../schemas/bench-protocol.md");
    let line = spec.lines().find(|l| l.starts_with("Key type names:")).expect("the key type names in 3.3");
    let named: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
    assert_eq!(named, KEY_TYPES);
    assert!(!spec.contains("ec-p521"));
}

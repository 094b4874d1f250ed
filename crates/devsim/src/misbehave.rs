//! `--misbehave`: hostile devices that drive the station's failure paths. Each mode knows what the protocol requires
//! of the station, records what the station actually sent, and succeeds only when the two agree.
//!
//! | mode | the device | the station must |
//! |---|---|---|
//! | garbage | a noise line (boot log, random bytes, no `@`) before every frame of a normal session; then two junk frames (`@` + random text) | drop the noise silently and provision the device; answer each junk frame with a `frame-*` ERROR (or `too-many-frame-errors`) |
//! | oversize | after WELCOME, a CSR frame of about 17 KiB | answer ERROR `frame-too-large`, send no CHAIN; then provision the device in a new session |
//! | stall | HELLO, then silence for `--stall-for` | answer ERROR `timeout`; then provision the device in a new session |
//! | disconnect | closes the port after the CSR or the CHAIN (`--disconnect-after`), reopens it, starts again with the same key | provision the device, with the identical chain when one was seen |
//! | bad-csr | a CSR whose signature does not verify | answer ERROR `csr-bad-signature`, send no CHAIN |

use super::args::{DisconnectPoint, Misbehave};
use super::codes;
use super::device::{Device, Failure, Provisioned, Stop, pick_chain};
use super::report::MisbehaveReport;
use super::wire::Incoming;
use rand::Rng;
use rand::rngs::StdRng;
use station_protocol::{self as protocol, Csr, Message, crc32};
use std::time::{Duration, Instant};

/// How long a disconnected device stays unplugged.
const UNPLUGGED: Duration = Duration::from_millis(300);
/// Junk frames sent by `garbage` (below the station's default limit of 3 frame errors in a row).
const JUNK_FRAMES: usize = 2;
/// The engine's code for a CSR whose self-signature fails.
const CSR_BAD_SIGNATURE: &str = "csr-bad-signature";

type Outcome = Result<Option<Provisioned>, Failure>;

/// Runs one misbehaving device; the result is `Ok` when the station behaved as the protocol requires.
pub(crate) fn run(device: &mut Device<'_>, mode: Misbehave) -> (Outcome, MisbehaveReport) {
    let mut seen = Vec::new();
    let (expected, result) = match mode {
        Misbehave::Garbage => (GARBAGE, garbage(device, &mut seen)),
        Misbehave::Oversize => (OVERSIZE, oversize(device, &mut seen)),
        Misbehave::Stall => (STALL, stall(device, &mut seen)),
        Misbehave::Disconnect => match device.args.disconnect_after {
            DisconnectPoint::Csr => (DISCONNECT_CSR, disconnect(device, &mut seen, DisconnectPoint::Csr)),
            DisconnectPoint::Chain => (DISCONNECT_CHAIN, disconnect(device, &mut seen, DisconnectPoint::Chain)),
        },
        Misbehave::BadCsr => (BAD_CSR, bad_csr(device, &mut seen)),
        Misbehave::LateChain => (LATE_CHAIN, late_chain(device, &mut seen)),
    };
    (result, MisbehaveReport { mode, expected, observed: seen })
}

const GARBAGE: &str =
    "noise dropped silently and the device provisioned; each junk frame answered with a frame-* ERROR";
const OVERSIZE: &str = "ERROR frame-too-large and no CHAIN for the oversize frame; then the device provisioned";
const STALL: &str = "ERROR timeout after the silence; then the device provisioned";
const DISCONNECT_CSR: &str = "after unplugging right after the CSR, the device provisioned with the same key";
const DISCONNECT_CHAIN: &str =
    "after unplugging without STORED, the identical chain served again and the device provisioned";
const BAD_CSR: &str = "ERROR csr-bad-signature and no CHAIN";
const LATE_CHAIN: &str =
    "the CHAIN answering the CSR sent before a restart ignored; then the identical chain in the new session";

/// CSR, then at once HELLO, as a device that reset before its CHAIN came. The station answers the CSR (CHAIN) and
/// then the HELLO (WELCOME); the device, waiting for WELCOME, must ignore the late CHAIN and provision in the new
/// session with the same key, getting the same chain.
fn late_chain(device: &mut Device<'_>, seen: &mut Vec<String>) -> Outcome {
    let welcome = device.hello().map_err(Stop::into_failure)?;
    seen.push("WELCOME".into());
    let csr = Csr { der: device.csr_der(&welcome, false).map_err(Stop::into_failure)? };
    device.send(&csr.into()).map_err(|e| Failure::port_io(&e))?;
    seen.push("sent CSR, then HELLO at once".into());
    let provisioned = device.provision()?;
    let late = device.trace.ignored.iter().find_map(|m| match m {
        Message::Chain(c) => Some(c.sha256.clone()),
        _ => None,
    });
    let Some(late) = late else {
        return Err(missing("no late CHAIN arrived while the device waited for WELCOME".into()));
    };
    seen.push(format!("ignored a late CHAIN {late}"));
    let got = device.trace.chain_sha256.clone().unwrap_or_default();
    if got != late {
        let message = format!("the new session's chain {got} is not the late one {late}");
        return Err(Failure::new(codes::CHAIN_NOT_IDEMPOTENT, message));
    }
    seen.push(format!("provisioned {} with the identical chain", provisioned.serial));
    Ok(Some(provisioned))
}

fn garbage(device: &mut Device<'_>, seen: &mut Vec<String>) -> Outcome {
    device.noise = true;
    let provisioned = device.provision();
    device.noise = false;
    seen.push(match &provisioned {
        Ok(p) => format!("provisioned {} through the noise", p.serial),
        Err(f) => format!("session failed: {}", f.code),
    });
    let provisioned = provisioned?;
    if let Some(code) = device.trace.station_errors.iter().find(|c| protocol::codes::is_frame_level(c)) {
        let message = format!("the station answered noise lines with ERROR {code}; it must drop lines without `@`");
        return Err(Failure::new(codes::STATION_ANSWERED_NOISE, message));
    }
    for n in 1..=JUNK_FRAMES {
        let junk = junk_frame(device.wire.rng());
        device.wire.send_raw(&junk).map_err(|e| Failure::port_io(&e))?;
        match observe(device, seen, device.args.reply_timeout)? {
            Incoming::Message(Message::Error(e))
                if protocol::codes::is_frame_level(&e.code) || e.code == protocol::codes::TOO_MANY_FRAME_ERRORS => {}
            other => {
                return Err(missing(format!("junk frame {n} drew {} instead of a frame-* ERROR", describe(&other))));
            }
        }
    }
    Ok(Some(provisioned))
}

fn oversize(device: &mut Device<'_>, seen: &mut Vec<String>) -> Outcome {
    let welcome = device.hello().map_err(Stop::into_failure)?;
    seen.push("WELCOME".into());
    let csr = device.csr_der(&welcome, false).map_err(Stop::into_failure)?;
    let frame = oversize_frame(&csr);
    seen.push(format!("sent a CSR frame of {} bytes", frame.len()));
    device.wire.send_raw(&frame).map_err(|e| Failure::port_io(&e))?;
    match observe(device, seen, device.args.reply_timeout)? {
        Incoming::Message(Message::Error(e)) if e.code == protocol::codes::FRAME_TOO_LARGE => {}
        other => return Err(missing(format!("the oversize frame drew {}", describe(&other)))),
    }
    device.wire.discard_input();
    device.provision().map(Some)
}

fn stall(device: &mut Device<'_>, seen: &mut Vec<String>) -> Outcome {
    device.hello().map_err(Stop::into_failure)?;
    seen.push("WELCOME, then silence".into());
    match observe(device, seen, device.args.stall_for)? {
        Incoming::Message(Message::Error(e)) if e.code == protocol::codes::TIMEOUT => {}
        other => {
            let what = describe(&other);
            return Err(missing(format!("after {:?} of silence the station sent {what}", device.args.stall_for)));
        }
    }
    device.wire.discard_input();
    device.provision().map(Some)
}

fn disconnect(device: &mut Device<'_>, seen: &mut Vec<String>, at: DisconnectPoint) -> Outcome {
    let welcome = device.hello().map_err(Stop::into_failure)?;
    seen.push("WELCOME".into());
    let csr: Message = Csr { der: device.csr_der(&welcome, false).map_err(Stop::into_failure)? }.into();
    match at {
        DisconnectPoint::Csr => device.send(&csr).map_err(|e| Failure::port_io(&e))?,
        DisconnectPoint::Chain => {
            let chain = device.request(&csr, "CHAIN", pick_chain).map_err(Stop::into_failure)?;
            device.accept_chain(&chain).map_err(Stop::into_failure)?;
            seen.push(format!("CHAIN sha256 {}", chain.sha256));
        }
    }
    device.wire.close();
    seen.push(format!("closed the port for {} ms", UNPLUGGED.as_millis()));
    std::thread::sleep(UNPLUGGED);
    device.wire.reopen().map_err(|e| Failure::new(codes::PORT_IO, format!("cannot reopen the port: {e}")))?;
    let provisioned = device.provision()?;
    let sha = device.trace.chain_sha256.clone().unwrap_or_default();
    seen.push(format!("provisioned {} with chain sha256 {sha}", provisioned.serial));
    Ok(Some(provisioned))
}

fn bad_csr(device: &mut Device<'_>, seen: &mut Vec<String>) -> Outcome {
    let welcome = device.hello().map_err(Stop::into_failure)?;
    seen.push("WELCOME".into());
    let csr = Csr { der: device.csr_der(&welcome, true).map_err(Stop::into_failure)? };
    device.send(&csr.into()).map_err(|e| Failure::port_io(&e))?;
    match observe(device, seen, device.args.reply_timeout)? {
        Incoming::Message(Message::Error(e)) if e.code == CSR_BAD_SIGNATURE => Ok(None),
        Incoming::Message(Message::Chain(c)) => {
            let message = format!("the station issued a chain (serial {}) for a CSR with a broken signature", c.serial);
            Err(Failure::new(codes::STATION_ACCEPTED_BAD_CSR, message))
        }
        other => Err(missing(format!("the CSR with a broken signature drew {}", describe(&other)))),
    }
}

/// Waits up to `wait` for the station's next frame and records it.
fn observe(device: &mut Device<'_>, seen: &mut Vec<String>, wait: Duration) -> Result<Incoming, Failure> {
    let incoming = device.wire.recv(Instant::now() + wait).map_err(|e| Failure::port_io(&e))?;
    if let Incoming::Message(Message::Error(e)) = &incoming {
        device.trace.codes_seen.push(e.code.clone());
        device.trace.station_errors.push(e.code.clone());
    }
    seen.push(describe(&incoming));
    Ok(incoming)
}

fn describe(incoming: &Incoming) -> String {
    match incoming {
        Incoming::Message(Message::Error(e)) => format!("ERROR {}", e.code),
        Incoming::Message(m) => m.message_type().name().to_string(),
        Incoming::Bad(e) => format!("an undecodable frame ({})", e.code()),
        Incoming::Timeout => "no answer".to_string(),
    }
}

fn missing(message: String) -> Failure {
    Failure::new(codes::EXPECTED_ERROR_MISSING, message)
}

/// A line of noise, as a boot ROM or a debug log would print on the same UART: text and random bytes, never `@`,
/// ended by LF. A receiver must drop it without answering.
pub(crate) fn noise(rng: &mut StdRng) -> Vec<u8> {
    let mut line = b"\r\nets Jun  8 2016 00:22:57 rst:0x1 (POWERON_RESET),boot:0x13 ".to_vec();
    let n = rng.random_range(16..64);
    line.extend(std::iter::repeat_with(|| rng.random::<u8>()).filter(|b| !is_delimiting(*b)).take(n));
    line.push(b'\n');
    line
}

/// `@` followed by random printable text and LF: a frame to the receiver, and a malformed one.
fn junk_frame(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.random_range(24..80);
    let mut frame = vec![b'@'];
    frame.extend(std::iter::repeat_with(|| rng.random_range(0x21u8..0x7f)).filter(|b| *b != b'@').take(n));
    frame.push(b'\n');
    frame
}

fn is_delimiting(b: u8) -> bool {
    matches!(b, b'@' | b'\r' | b'\n')
}

/// A well-formed CSR frame padded past the 16 KiB limit with an `x-pad` field (CRC and length correct).
fn oversize_frame(csr_der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let csr = base64::engine::general_purpose::STANDARD.encode(csr_der);
    let body = format!(r#"{{"csr":"{csr}","x-pad":"{}"}}"#, "A".repeat(protocol::MAX_FRAME + 512));
    let mut frame = format!("@{} CSR {} {body} ", protocol::PROTOCOL_VERSION, body.len()).into_bytes();
    let crc = crc32(&frame);
    frame.extend_from_slice(format!("{crc:08x}\n").as_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use station_protocol::{Decoder, FrameError};

    #[test]
    fn noise_is_dropped_silently_and_junk_frames_are_rejected() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut decoder = Decoder::new();
        for _ in 0..50 {
            decoder.push(&noise(&mut rng));
        }
        assert!(decoder.next_frame().is_none(), "noise must not produce frames");
        decoder.push(&junk_frame(&mut rng));
        assert!(matches!(decoder.next_frame(), Some(Err(e)) if e.retryable()));
    }

    #[test]
    fn oversize_frame_exceeds_the_limit_and_draws_too_large() {
        let frame = oversize_frame(&[0x30, 0x00]);
        assert!(frame.len() > protocol::MAX_FRAME);
        let mut decoder = Decoder::new();
        decoder.push(&frame);
        assert_eq!(decoder.next_frame(), Some(Err(FrameError::TooLarge)));
        assert_eq!(decoder.next_frame(), None);
    }
}

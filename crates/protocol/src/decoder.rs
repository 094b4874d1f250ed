//! The incremental receiver: bytes in, messages (or frame errors) out, with resynchronisation and bounded memory.
//!
//! The rules (schemas/bench-protocol.md, "Receiving"):
//! - CR and LF both end a line; a line that holds no `@` is not a frame and is dropped silently (boot logs, noise).
//! - `@` starts a frame. A second `@` before the delimiter means the first frame was cut short: its bytes are dropped
//!   silently and the new frame starts there. So a frame that lost its tail never costs the frame after it.
//! - A frame that reaches `MAX_FRAME` bytes without a delimiter yields one `TooLarge`; the rest is skipped up to the
//!   next delimiter or `@`.

use super::error::FrameError;
use super::frame::FRAME_MARKER;
use super::{MAX_FRAME, Message, decode_frame};
use std::collections::VecDeque;

/// What the decoder is doing with the bytes it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: dropping everything until `@`.
    Hunting,
    /// Collecting a frame that started with `@`.
    InFrame,
    /// After an oversize frame: dropping until a delimiter or `@`.
    Skipping,
}

/// A unit of work for `next_frame`.
#[derive(Debug)]
enum Ready {
    /// A complete frame, from `@` up to (not including) the delimiter.
    Line(Vec<u8>),
    /// A frame that grew past `MAX_FRAME`.
    TooLarge,
}

/// Incremental frame decoder for one serial stream.
///
/// Feed it whatever the port returns with [`push`](Self::push), then call [`next_frame`](Self::next_frame) until it
/// returns `None`. It never panics; the partial frame it holds never exceeds `MAX_FRAME` bytes. Complete frames not
/// yet taken with `next_frame` are queued, so drain after each `push`.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    partial: Vec<u8>,
    ready: VecDeque<Ready>,
    discarded: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// An empty decoder, hunting for the first `@`.
    pub fn new() -> Self {
        Decoder { state: State::Hunting, partial: Vec::new(), ready: VecDeque::new(), discarded: 0 }
    }

    /// Takes bytes from the wire, in any chunking (one byte at a time works).
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(b);
        }
    }

    fn push_byte(&mut self, b: u8) {
        match (self.state, b) {
            (State::InFrame, FRAME_MARKER) => {
                self.drop_partial();
                self.partial.push(b);
            }
            (_, FRAME_MARKER) => {
                self.partial.clear();
                self.partial.push(b);
                self.state = State::InFrame;
            }
            (State::InFrame, b'\n' | b'\r') => {
                let line = std::mem::take(&mut self.partial);
                self.ready.push_back(Ready::Line(line));
                self.state = State::Hunting;
            }
            (State::InFrame, _) if self.partial.len() >= MAX_FRAME - 1 => {
                self.drop_partial();
                self.discarded += 1;
                self.ready.push_back(Ready::TooLarge);
                self.state = State::Skipping;
            }
            (State::InFrame, _) => self.partial.push(b),
            (State::Skipping, b'\n' | b'\r') => {
                self.discarded += 1;
                self.state = State::Hunting;
            }
            (State::Hunting | State::Skipping, _) => self.discarded += 1,
        }
    }

    fn drop_partial(&mut self) {
        self.discarded += self.partial.len() as u64;
        self.partial.clear();
    }

    /// The next message or frame error, in wire order; `None` when no complete frame is waiting.
    pub fn next_frame(&mut self) -> Option<Result<Message, FrameError>> {
        match self.ready.pop_front()? {
            Ready::Line(line) => Some(decode_frame(&line)),
            Ready::TooLarge => Some(Err(FrameError::TooLarge)),
        }
    }

    /// True while part of a frame has arrived but not its delimiter (the station's HELLO timer uses this).
    pub fn is_mid_frame(&self) -> bool {
        self.state == State::InFrame
    }

    /// Bytes dropped so far without being reported: noise between frames, log lines, cut-short frames, the tail of an
    /// oversize frame. A steadily growing count with no frames usually means a wrong baud rate.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Forgets any partial or queued frame (e.g. after the port was reopened); the discard count is kept.
    pub fn reset(&mut self) {
        self.drop_partial();
        self.ready.clear();
        self.state = State::Hunting;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Done, Stored, encode};
    use super::*;

    fn done(serial: &str) -> Vec<u8> {
        encode(&Message::Done(Done { serial: serial.into() })).expect("encodes")
    }

    fn drain(d: &mut Decoder) -> Vec<Result<Message, FrameError>> {
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    fn serial_of(r: &Result<Message, FrameError>) -> &str {
        match r {
            Ok(Message::Done(Done { serial })) => serial,
            other => panic!("expected DONE, got {other:?}"),
        }
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_silently() {
        let mut d = Decoder::new();
        d.push(b"\x00\xff ets Jun  8 2016 rst:0x1 (POWERON_RESET)\r\nboot: ok\n\x7f");
        d.push(&done("A1"));
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(serial_of(&got[0]), "A1");
        assert!(d.discarded_bytes() > 40);
    }

    #[test]
    fn byte_at_a_time_feeding_decodes_the_same() {
        let mut stream = done("A1");
        stream.extend(done("A2"));
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            got.extend(drain(&mut d));
        }
        let serials: Vec<&str> = got.iter().map(serial_of).collect();
        assert_eq!(serials, ["A1", "A2"]);
    }

    #[test]
    fn one_flipped_byte_gives_a_crc_error_then_the_next_frame_decodes() {
        let mut first = done("A1");
        first[12] ^= 0x01;
        let mut d = Decoder::new();
        d.push(&first);
        d.push(&done("A2"));
        let got = drain(&mut d);
        assert!(matches!(got[0], Err(FrameError::Crc { .. })), "{:?}", got[0]);
        assert_eq!(serial_of(&got[1]), "A2");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn truncated_frame_followed_by_a_good_one() {
        let cut = done("A1");
        let mut d = Decoder::new();
        // Cut short without a delimiter (device reset mid-send): dropped silently.
        d.push(&cut[..cut.len() / 2]);
        d.push(&done("A2"));
        // Cut short but delimited: reported, then recovery.
        d.push(&cut[..cut.len() - 4]);
        d.push(b"\n");
        d.push(&done("A3"));
        let got = drain(&mut d);
        assert_eq!(serial_of(&got[0]), "A2");
        assert!(matches!(got[1], Err(FrameError::Malformed(_))), "{:?}", got[1]);
        assert_eq!(serial_of(&got[2]), "A3");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn oversize_line_yields_one_too_large_then_recovers() {
        let mut d = Decoder::new();
        d.push(b"@1 CHAIN 99999 ");
        for _ in 0..40 {
            d.push(&[b'A'; 1000]);
            assert!(d.partial.len() < MAX_FRAME, "buffer must stay bounded");
        }
        d.push(b"\n");
        d.push(&done("A1"));
        let got = drain(&mut d);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Err(FrameError::TooLarge));
        assert_eq!(serial_of(&got[1]), "A1");
    }

    #[test]
    fn oversize_line_without_delimiter_resyncs_on_the_next_marker() {
        let mut d = Decoder::new();
        d.push(b"@");
        d.push(&vec![b'B'; 3 * MAX_FRAME]);
        d.push(&done("A1"));
        let got = drain(&mut d);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Err(FrameError::TooLarge));
        assert_eq!(serial_of(&got[1]), "A1");
    }

    #[test]
    fn a_frame_of_exactly_max_frame_bytes_is_accepted_and_one_more_is_not() {
        let fits = |n: usize| {
            let sha = "a".repeat(64);
            let body = format!(r#"{{"sha256":"{sha}","x-pad":"{}"}}"#, "p".repeat(n));
            super::super::encode_raw(1, "STORED", body.as_bytes())
        };
        let base = fits(0).expect("fits").len();
        let pad = (0..MAX_FRAME - base).rev().find(|&n| fits(n).is_ok()).expect("some padding fits");
        let frame = fits(pad).expect("fits");
        assert_eq!(frame.len(), MAX_FRAME);
        let mut d = Decoder::new();
        d.push(&frame);
        assert!(matches!(d.next_frame(), Some(Ok(Message::Stored(Stored { .. })))));
        let mut over = frame[..frame.len() - 1].to_vec();
        over.insert(20, b'p');
        over.push(b'\n');
        d.push(&over);
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLarge)));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn cr_lf_and_crlf_all_delimit() {
        let mut d = Decoder::new();
        for end in [&b"\r"[..], b"\n", b"\r\n"] {
            let mut frame = done("A1");
            frame.pop();
            frame.extend_from_slice(end);
            d.push(&frame);
        }
        assert_eq!(drain(&mut d).iter().map(serial_of).count(), 3);
    }

    #[test]
    fn reset_forgets_partial_frames() {
        let mut d = Decoder::new();
        let frame = done("A1");
        d.push(&frame[..10]);
        assert!(d.is_mid_frame());
        d.reset();
        assert!(!d.is_mid_frame());
        d.push(&frame[10..]);
        assert!(drain(&mut d).is_empty());
    }
}

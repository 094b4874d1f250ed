//! Fuzzes the bench wire codec: arbitrary bytes, fed in arbitrary chunks, must never panic, the
//! decoder's buffer must stay bounded, and every message it accepts must re-encode and decode to
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use station_protocol::{Decoder, decode_frame, encode};

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame(data);
    // The first byte picks the chunk size, so frames are split at every possible place.
    let (chunk, rest) = match data.split_first() {
        Some((c, r)) => (usize::from(*c % 64) + 1, r),
        None => return,
    };
    let mut d = Decoder::new();
    for piece in rest.chunks(chunk) {
        d.push(piece);
        while let Some(frame) = d.next_frame() {
            if let Ok(msg) = frame {
                let bytes = encode(&msg).expect("an accepted message re-encodes");
                let again = decode_frame(&bytes).expect("a re-encoded message decodes");
                assert_eq!(again, msg);
            }
        }
    }
});

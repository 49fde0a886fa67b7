//! Decoding is lossless: every framed message that decodes `Ok` encodes, with the same
//! options, to exactly the bytes it came from, and those bytes decode to the same value.
//!
//! Input: one selector byte (see `wren_fuzz::negotiated`), then the stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wren::wire::decode;
use wren_fuzz::{Piece, pieces, split_input};

fuzz_target!(|data: &[u8]| {
    let Some((neg, stream)) = split_input(data) else {
        return;
    };
    for piece in pieces(stream, &neg) {
        let Piece::Message(wire) = piece else {
            continue;
        };
        let Ok(first) = decode(wire, &neg) else {
            continue;
        };
        let mut buf = BytesMut::new();
        if let Err(e) = first.encode(&neg, &mut buf) {
            panic!(
                "decoded message does not encode: {e}\n  neg {neg:?}\n  input {}\n  decoded {first:?}",
                hex(wire)
            );
        }
        assert!(
            buf[..] == wire[..],
            "re-encoding is not lossless\n  neg {neg:?}\n  input   {}\n  encoded {}\n  decoded {first:?}",
            hex(wire),
            hex(&buf)
        );
        let second = decode(&buf, &neg).expect("re-encoded message does not decode");
        assert_eq!(first, second, "decode(encode(decode(b))) != decode(b)");
    }
});

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

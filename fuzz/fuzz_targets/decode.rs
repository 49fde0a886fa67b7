//! Frames and decodes an arbitrary byte stream: nothing may panic.
//!
//! Input: one selector byte (see `wren_fuzz::negotiated`), then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wren::wire::{Message, decode};
use wren_fuzz::{Piece, pieces, split_input};

fuzz_target!(|data: &[u8]| {
    let Some((neg, stream)) = split_input(data) else {
        return;
    };
    for piece in pieces(stream, &neg) {
        // Truncated and refused pieces go through `decode` too: it must refuse them cleanly.
        let (Piece::Message(m) | Piece::Tail(m) | Piece::BadHeader(m)) = piece;
        match decode(m, &neg) {
            Ok(msg) => {
                // Encoding what was decoded must not panic either (it may refuse).
                let _ = msg.to_bytes(&neg);
            }
            Err(e) => {
                // The error's text and NOTIFICATION must be formattable.
                let _ = e.to_string();
                // RFC 7606: the salvaged UPDATE is re-announced/withdrawn by the session, so it
                // must encode without panicking.
                if let Some(u) = e.update {
                    let _ = Message::Update(*u).to_bytes(&neg);
                }
            }
        }
    }
});

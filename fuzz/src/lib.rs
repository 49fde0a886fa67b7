//! Shared helpers for the wren fuzz targets.
//!
//! Every fuzz input is one selector byte followed by a byte stream of BGP messages. The
//! selector's low four bits choose the [`Negotiated`] options the stream is read with:
//!
//! | bit | option             |
//! |-----|--------------------|
//! | 0   | `four_octet_as`    |
//! | 1   | `add_path_ipv4`    |
//! | 2   | `add_path_ipv6`    |
//! | 3   | `extended_message` |
//!
//! The upper four bits are ignored.

use wren::wire::{Negotiated, frame};

/// The options a selector byte stands for.
pub fn negotiated(selector: u8) -> Negotiated {
    Negotiated {
        four_octet_as: selector & 0x01 != 0,
        add_path_ipv4: selector & 0x02 != 0,
        add_path_ipv6: selector & 0x04 != 0,
        extended_message: selector & 0x08 != 0,
    }
}

/// The selector byte for a set of options (the inverse of [`negotiated`]).
pub fn selector(neg: &Negotiated) -> u8 {
    u8::from(neg.four_octet_as)
        | u8::from(neg.add_path_ipv4) << 1
        | u8::from(neg.add_path_ipv6) << 2
        | u8::from(neg.extended_message) << 3
}

/// Splits a fuzz input into its options and its byte stream (`None` for an empty input).
pub fn split_input(data: &[u8]) -> Option<(Negotiated, &[u8])> {
    let (&sel, stream) = data.split_first()?;
    Some((negotiated(sel), stream))
}

/// One step of reading a stream the way a session does.
pub enum Piece<'a> {
    /// A whole message as delimited by [`frame`].
    Message(&'a [u8]),
    /// Bytes left at the end that do not make a whole message.
    Tail(&'a [u8]),
    /// [`frame`] refused the header at this point; the rest of the stream.
    BadHeader(&'a [u8]),
}

/// Splits `stream` with [`frame`], as a receive loop would, until the stream ends or a header
/// is refused.
pub fn pieces<'a>(mut stream: &'a [u8], neg: &Negotiated) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        match frame(stream, neg) {
            Ok(Some(n)) => {
                assert!(
                    n > 0 && n <= stream.len(),
                    "frame returned {n} for {} bytes",
                    stream.len()
                );
                out.push(Piece::Message(&stream[..n]));
                stream = &stream[n..];
            }
            Ok(None) => {
                out.push(Piece::Tail(stream));
                break;
            }
            Err(_) => {
                out.push(Piece::BadHeader(stream));
                break;
            }
        }
    }
    out
}

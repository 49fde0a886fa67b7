//! The BGP-4 codec: messages as types, decoded from bytes with `nom`-style slicing and encoded
//! into `BytesMut`. No I/O here.
//!
//! Decoding is lossless: for a well-formed message `encode(decode(b)) == b`, attribute order
//! and flag bits included. Errors name the NOTIFICATION or RFC 7606 action to take.

pub mod attr;
pub mod error;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod text;
pub mod update;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

pub use attr::{Attr, Attributes, PathAttribute};
pub use error::{Action, EncodeError, Error};
pub use nlri::{Afi, Family, Prefix, Prefixes, Safi};
pub use notification::Notification;
pub use open::{Capability, Open};
pub use update::{Announcement, Update};

use notification::{Code, header};

/// Header size: marker, length, type (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability (RFC 4271 §4.1).
pub const MAX_LEN: usize = 4096;
/// Largest message with the extended message capability (RFC 8654 §4).
pub const MAX_EXTENDED_LEN: usize = 65535;

/// What the two OPENs agreed that changes how messages are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// Both sides sent the 4-octet AS capability (RFC 6793 §4): AS_PATH and AGGREGATOR carry
    /// 4-octet AS numbers.
    pub four_octet_as: bool,
    /// IPv4 prefixes carry add-path identifiers in this direction (RFC 7911 §4).
    pub add_path_ipv4: bool,
    /// IPv6 prefixes carry add-path identifiers in this direction.
    pub add_path_ipv6: bool,
    /// Messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
}

impl Default for Negotiated {
    /// What a modern speaker negotiates with another: 4-octet AS, nothing else.
    fn default() -> Self {
        Negotiated {
            four_octet_as: true,
            add_path_ipv4: false,
            add_path_ipv6: false,
            extended_message: false,
        }
    }
}

impl Negotiated {
    /// The encoding for messages that `sender` sends to `receiver`: 4-octet AS and extended
    /// messages need both sides; add-path needs the sender to send and the receiver to
    /// receive (RFC 7911 §4).
    pub fn between(sender: &Open, receiver: &Open) -> Negotiated {
        let add_path = |f: Family| {
            sender.add_path_mode(f) & open::AddPathFamily::SEND != 0
                && receiver.add_path_mode(f) & open::AddPathFamily::RECEIVE != 0
        };
        let ext = Capability::ExtendedMessage;
        Negotiated {
            four_octet_as: sender.four_octet_as() && receiver.four_octet_as(),
            add_path_ipv4: add_path(Family::IPV4_UNICAST),
            add_path_ipv6: add_path(Family::IPV6_UNICAST),
            extended_message: sender.has(&ext) && receiver.has(&ext),
        }
    }

    pub fn max_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_LEN
        } else {
            MAX_LEN
        }
    }
}

/// A BGP message (RFC 4271 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[allow(
    clippy::large_enum_variant,
    reason = "an UPDATE keeps its first attributes and prefix inline; boxing it costs the \
              receive loop an allocation per message (benches/README.md, `wire`)"
)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// ROUTE-REFRESH (RFC 2918 §3) with the RFC 7313 §3 subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRefresh {
    pub afi: Afi,
    /// 0 normal request, 1 Beginning of Route Refresh, 2 End of Route Refresh.
    #[serde(default)]
    pub subtype: u8,
    pub safi: Safi,
}

impl RouteRefresh {
    pub const REQUEST: u8 = 0;
    pub const BORR: u8 = 1;
    pub const EORR: u8 = 2;
}

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
mod kind {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Finds the first message in a receive buffer (RFC 4271 §4.1, §6.1).
///
/// `Ok(None)`: more bytes are needed. `Ok(Some(n))`: the first `n` bytes are one message.
/// `Err`: the header is bad, and that error is the NOTIFICATION to send — at once, without
/// waiting for the bytes a bad length promises.
#[inline]
pub fn frame(buf: &[u8], neg: &Negotiated) -> Result<Option<usize>, Error> {
    let Some((header, _)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return partial_header(buf);
    };
    if header[..16] != [0xff; 16] {
        return Err(not_synchronized());
    }
    // A fixed-size read from the header array: no bounds to check, no parser call.
    let len = u16::from_be_bytes([header[16], header[17]]) as usize;
    if !(HEADER_LEN..=neg.max_len()).contains(&len) {
        return Err(bad_length(len, "message length out of range"));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Fewer bytes than a header: only the marker octets received so far can be judged.
#[cold]
fn partial_header(buf: &[u8]) -> Result<Option<usize>, Error> {
    if buf.iter().take(16).any(|b| *b != 0xff) {
        return Err(not_synchronized());
    }
    Ok(None)
}

#[cold]
fn not_synchronized() -> Error {
    Error::reset(
        Code::Header,
        header::CONNECTION_NOT_SYNCHRONIZED,
        Vec::new(),
        "marker is not all ones",
    )
}

/// RFC 4271 §6.1: the data of a Bad Message Length error is the erroneous length field.
fn bad_length(len: usize, reason: &str) -> Error {
    Error::reset(
        Code::Header,
        header::BAD_MESSAGE_LENGTH,
        (len as u16).to_be_bytes(),
        reason,
    )
}

/// Decodes one complete message (as delimited by [`frame`]).
pub fn decode(msg: &[u8], neg: &Negotiated) -> Result<Message, Error> {
    match frame(msg, neg)? {
        Some(n) if n == msg.len() => {}
        Some(n) => {
            return Err(bad_length(
                n,
                "message length does not match the bytes given",
            ));
        }
        None if msg.len() >= HEADER_LEN => {
            return Err(bad_length(
                msg.len(),
                "message length does not match the bytes given",
            ));
        }
        None => return Err(bad_length(msg.len(), "message shorter than a header")),
    }
    let ty = msg[18];
    let body = &msg[HEADER_LEN..];
    // RFC 4271 §6.1: per-type minimum lengths (OPEN 29, UPDATE 23, NOTIFICATION 21,
    // KEEPALIVE exactly 19); RFC 8654 §4: OPEN and KEEPALIVE never exceed 4096.
    let (min, max) = match ty {
        kind::OPEN => (29, MAX_LEN),
        kind::UPDATE => (23, MAX_EXTENDED_LEN),
        kind::NOTIFICATION => (21, MAX_EXTENDED_LEN),
        kind::KEEPALIVE => (19, 19),
        kind::ROUTE_REFRESH => (23, MAX_EXTENDED_LEN),
        _ => {
            return Err(Error::reset(
                Code::Header,
                header::BAD_MESSAGE_TYPE,
                [ty],
                format!("unknown message type {ty}"),
            ));
        }
    };
    if !(min..=max).contains(&msg.len()) {
        return Err(bad_length(msg.len(), "length wrong for the message type"));
    }
    Ok(match ty {
        // Returned as built: the UPDATE is the one large message moved once per receive.
        kind::UPDATE => return Update::decode(body, neg).map(Message::Update),
        kind::OPEN => Message::Open(Open::decode(body)?),
        kind::NOTIFICATION => Message::Notification(Notification::decode(body)),
        kind::KEEPALIVE => Message::Keepalive,
        _ => {
            // RFC 7313 §5: a ROUTE-REFRESH of any length but 23 is its own error.
            if msg.len() != 23 {
                return Err(Error::reset(
                    Code::RouteRefresh,
                    notification::route_refresh::INVALID_MESSAGE_LENGTH,
                    msg.to_vec(),
                    "ROUTE-REFRESH is not 23 octets",
                ));
            }
            Message::RouteRefresh(RouteRefresh {
                afi: Afi(u16::from_be_bytes([body[0], body[1]])),
                subtype: body[2],
                safi: Safi(body[3]),
            })
        }
    })
}

impl Message {
    fn kind(&self) -> u8 {
        match self {
            Message::Open(_) => kind::OPEN,
            Message::Update(_) => kind::UPDATE,
            Message::Notification(_) => kind::NOTIFICATION,
            Message::Keepalive => kind::KEEPALIVE,
            Message::RouteRefresh(_) => kind::ROUTE_REFRESH,
        }
    }

    /// Appends the message to `buf`. On error `buf` is left as it was.
    pub fn encode(&self, neg: &Negotiated, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        buf.put_bytes(0xff, 16);
        buf.put_u16(0);
        buf.put_u8(self.kind());
        let body = match self {
            Message::Open(o) => o.encode_body(buf),
            Message::Update(u) => u.encode_body(neg, buf),
            Message::Notification(n) => {
                n.encode_body(buf);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                buf.put_u16(r.afi.0);
                buf.put_u8(r.subtype);
                buf.put_u8(r.safi.0);
                Ok(())
            }
        };
        let len = buf.len() - start;
        let max = if matches!(self, Message::Open(_)) {
            MAX_LEN
        } else {
            neg.max_len()
        };
        let result = body.and(if len > max {
            Err(EncodeError::TooLong { len, max })
        } else {
            Ok(())
        });
        match result {
            Ok(()) => {
                buf[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
                Ok(())
            }
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }

    /// The message as a fresh byte vector.
    pub fn to_bytes(&self, neg: &Negotiated) -> Result<Vec<u8>, EncodeError> {
        let mut b = BytesMut::new();
        self.encode(neg, &mut b)?;
        Ok(b.to_vec())
    }
}

/// Serde helper: byte strings as lowercase hex.
pub(crate) mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u16, ty: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(ty);
        v
    }

    #[test]
    fn framing_three_outcomes() {
        let neg = Negotiated::default();
        assert_eq!(frame(&[0xff; 10], &neg).unwrap(), None);
        let k = hdr(19, 4);
        assert_eq!(frame(&k[..18], &neg).unwrap(), None);
        assert_eq!(frame(&k, &neg).unwrap(), Some(19));
        let e = frame(&hdr(18, 4), &neg).unwrap_err();
        assert_eq!(
            (e.code, e.subcode, e.data.as_slice()),
            (1, 2, &[0u8, 18][..])
        );
        let e = frame(&hdr(4097, 2), &neg).unwrap_err();
        assert_eq!(e.subcode, header::BAD_MESSAGE_LENGTH);
        let ext = Negotiated {
            extended_message: true,
            ..neg
        };
        assert_eq!(frame(&hdr(4097, 2), &ext).unwrap(), None);
        let mut bad = hdr(19, 4);
        bad[3] = 0;
        assert_eq!(
            frame(&bad, &neg).unwrap_err().subcode,
            header::CONNECTION_NOT_SYNCHRONIZED
        );
        assert!(frame(&[0xff, 0xfe], &neg).is_err());
    }

    #[test]
    fn header_errors_by_type() {
        let neg = Negotiated::default();
        let e = decode(&hdr(19, 9), &neg).unwrap_err();
        assert_eq!(
            (e.subcode, e.data.as_slice()),
            (header::BAD_MESSAGE_TYPE, &[9u8][..])
        );
        let mut k = hdr(20, 4);
        k.push(0);
        assert_eq!(
            decode(&k, &neg).unwrap_err().subcode,
            header::BAD_MESSAGE_LENGTH
        );
        let mut rr = hdr(24, 5);
        rr.extend_from_slice(&[0, 1, 0, 1, 0]);
        let e = decode(&rr, &neg).unwrap_err();
        assert_eq!((e.code, e.subcode), (7, 1));
    }

    #[test]
    fn keepalive_and_route_refresh_round_trip() {
        let neg = Negotiated::default();
        for m in [
            Message::Keepalive,
            Message::RouteRefresh(RouteRefresh {
                afi: Afi::IPV6,
                subtype: RouteRefresh::BORR,
                safi: Safi::UNICAST,
            }),
            Message::Notification(Notification::shutdown(
                notification::cease::ADMINISTRATIVE_SHUTDOWN,
                "bye",
            )),
        ] {
            let b = m.to_bytes(&neg).unwrap();
            assert_eq!(decode(&b, &neg).unwrap(), m);
        }
    }

    /// The receive loop moves every UPDATE at least once: keep the types from growing back.
    #[test]
    fn sizes() {
        use std::mem::size_of;
        assert!(
            size_of::<PathAttribute>() <= 40,
            "{}",
            size_of::<PathAttribute>()
        );
        assert!(size_of::<Message>() <= 256, "{}", size_of::<Message>());
        assert!(size_of::<Open>() <= size_of::<Update>());
    }

    #[test]
    fn too_long_is_refused_and_buffer_untouched() {
        let neg = Negotiated::default();
        let u = Update {
            nlri: (0..1000u32)
                .map(|i| {
                    Prefix::new(
                        format!("198.18.{}.{}/32", i / 256, i % 256)
                            .parse()
                            .unwrap(),
                    )
                })
                .collect(),
            ..Update::default()
        };
        let mut b = BytesMut::from(&b"xy"[..]);
        let e = Message::Update(u.clone()).encode(&neg, &mut b).unwrap_err();
        assert!(matches!(e, EncodeError::TooLong { .. }));
        assert_eq!(&b[..], b"xy");
        let ext = Negotiated {
            extended_message: true,
            ..neg
        };
        assert!(Message::Update(u).encode(&ext, &mut b).is_ok());
    }
}

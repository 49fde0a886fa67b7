//! NOTIFICATION (RFC 4271 §4.5), Cease subcodes (RFC 4486) and the shutdown communication
//! (RFC 8203 / RFC 9003).

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::hexbytes;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Header = 1,
    Open = 2,
    Update = 3,
    HoldTimerExpired = 4,
    Fsm = 5,
    Cease = 6,
    RouteRefresh = 7,
}

/// Message Header Error subcodes (RFC 4271 §4.5).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492 §5).
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §4.5).
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §4).
pub mod fsm {
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 §4).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION message: error code, subcode and data, kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    #[serde(with = "hexbytes", default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: Code, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code: code as u8,
            subcode,
            data: data.into(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003 §2): a length octet and up to 255
    /// octets of UTF-8, cut at a character boundary if longer.
    pub fn shutdown(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification::new(Code::Cease, subcode, data)
    }

    /// Whether this Cease goes as a Hard Reset when the N bit was negotiated (RFC 8538 §5's
    /// table): yes for the end of the peering (prefix limit, shutdown, de-configured, reset),
    /// no for "Other Configuration Change" and the other transient ones, after which the
    /// peer keeps our routes while we come back.
    pub fn hard_reset_suggested(&self) -> bool {
        self.code != Code::Cease as u8
            || matches!(
                self.subcode,
                cease::MAX_PREFIXES
                    | cease::ADMINISTRATIVE_SHUTDOWN
                    | cease::PEER_DECONFIGURED
                    | cease::ADMINISTRATIVE_RESET
                    | cease::HARD_RESET
            )
    }

    /// This Cease wrapped in a Hard Reset (RFC 8538 §3): the receiver flushes our routes
    /// even with graceful restart for NOTIFICATIONs. The data is the original subcode and
    /// data.
    pub fn hard_reset(self) -> Self {
        let mut data = Vec::with_capacity(self.data.len() + 1);
        data.push(self.subcode);
        data.extend_from_slice(&self.data);
        Notification::new(Code::Cease, cease::HARD_RESET, data)
    }

    /// The NOTIFICATION a decode error asks the session to send.
    pub fn from_error(e: &Error) -> Self {
        Notification {
            code: e.code,
            subcode: e.subcode,
            data: e.data.clone(),
        }
    }

    /// The shutdown communication of an Administrative Shutdown or Reset (RFC 9003 §2), if
    /// the data holds a well-formed one.
    pub fn shutdown_message(&self) -> Option<&str> {
        let is_shutdown = self.code == Code::Cease as u8
            && matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            );
        let (&len, text) = self.data.split_first()?;
        if !is_shutdown || text.len() != len as usize {
            return None;
        }
        std::str::from_utf8(text).ok()
    }

    pub(crate) fn decode(body: &[u8]) -> Notification {
        Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        buf.put_u8(self.code);
        buf.put_u8(self.subcode);
        buf.put_slice(&self.data);
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(self.code, self.subcode))?;
        if let Some(m) = self.shutdown_message() {
            write!(f, ": \"{m}\"")
        } else if !self.data.is_empty() {
            write!(f, " (data {})", hex::encode(&self.data))
        } else {
            Ok(())
        }
    }
}

/// The names of a code and subcode, as the RFCs spell them.
pub fn describe(code: u8, subcode: u8) -> String {
    let (c, subs): (&str, &[&str]) = match code {
        1 => (
            "Message Header Error",
            &[
                "",
                "Connection Not Synchronized",
                "Bad Message Length",
                "Bad Message Type",
            ],
        ),
        2 => (
            "OPEN Message Error",
            &[
                "",
                "Unsupported Version Number",
                "Bad Peer AS",
                "Bad BGP Identifier",
                "Unsupported Optional Parameter",
                "",
                "Unacceptable Hold Time",
                "Unsupported Capability",
            ],
        ),
        3 => (
            "UPDATE Message Error",
            &[
                "",
                "Malformed Attribute List",
                "Unrecognized Well-known Attribute",
                "Missing Well-known Attribute",
                "Attribute Flags Error",
                "Attribute Length Error",
                "Invalid ORIGIN Attribute",
                "",
                "Invalid NEXT_HOP Attribute",
                "Optional Attribute Error",
                "Invalid Network Field",
                "Malformed AS_PATH",
            ],
        ),
        4 => ("Hold Timer Expired", &[]),
        5 => (
            "Finite State Machine Error",
            &[
                "",
                "Unexpected Message in OpenSent State",
                "Unexpected Message in OpenConfirm State",
                "Unexpected Message in Established State",
            ],
        ),
        6 => (
            "Cease",
            &[
                "",
                "Maximum Number of Prefixes Reached",
                "Administrative Shutdown",
                "Peer De-configured",
                "Administrative Reset",
                "Connection Rejected",
                "Other Configuration Change",
                "Connection Collision Resolution",
                "Out of Resources",
                "Hard Reset",
            ],
        ),
        7 => (
            "ROUTE-REFRESH Message Error",
            &["", "Invalid Message Length"],
        ),
        _ => return format!("error code {code} subcode {subcode}"),
    };
    match subs.get(subcode as usize) {
        Some(s) if !s.is_empty() => format!("{c} / {s}"),
        _ if subcode == 0 => c.to_string(),
        _ => format!("{c} / subcode {subcode}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_reset_as_rfc_8538_section_5_suggests() {
        let hard = |sub| Notification::shutdown(sub, "").hard_reset_suggested();
        assert!(hard(cease::MAX_PREFIXES) && hard(cease::PEER_DECONFIGURED));
        assert!(!hard(cease::OTHER_CONFIGURATION_CHANGE));
        assert!(!hard(cease::CONNECTION_COLLISION_RESOLUTION));
    }

    #[test]
    fn shutdown_message_round_trip() {
        let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance ☕");
        assert_eq!(n.shutdown_message(), Some("maintenance ☕"));
        assert_eq!(n.data[0] as usize, "maintenance ☕".len());
    }

    #[test]
    fn shutdown_message_cut_at_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let n = Notification::shutdown(cease::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_message().map(str::len), Some(254));
    }

    #[test]
    fn shutdown_message_rejects_bad_length_and_other_codes() {
        let bad = Notification::new(Code::Cease, cease::ADMINISTRATIVE_SHUTDOWN, vec![5, b'a']);
        assert_eq!(bad.shutdown_message(), None);
        let other = Notification::new(Code::Cease, cease::PEER_DECONFIGURED, vec![1, b'a']);
        assert_eq!(other.shutdown_message(), None);
    }

    #[test]
    fn names() {
        assert_eq!(describe(6, 3), "Cease / Peer De-configured");
        assert_eq!(describe(4, 0), "Hold Timer Expired");
        assert_eq!(describe(3, 7), "UPDATE Message Error / subcode 7");
        assert_eq!(describe(9, 1), "error code 9 subcode 1");
    }
}

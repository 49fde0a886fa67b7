//! The BFD Control packet (RFC 5880 §4.1) and its authentication section (§4.2–§4.4).
//! Lossless: every field, reserved ones included, is kept, so `encode(decode(b)) == b` for
//! the `Length` octets of any packet `decode` accepts. No I/O.

use thiserror::Error;

/// UDP port of single-hop BFD (RFC 5881 §4).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// UDP port of multihop BFD (RFC 5883 §5).
pub const PORT_MULTIHOP: u16 = 4784;
/// The version this codec speaks (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// The mandatory section's length (RFC 5880 §4.1).
pub const MIN_LEN: usize = 24;

/// Session states as sent in the `Sta` field (RFC 5880 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The name BIRD shows in `show bfd sessions`.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// Diagnostic codes (RFC 5880 §4.1); values above 8 are kept as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Diag(pub u8);

impl Diag {
    pub const NONE: Diag = Diag(0);
    pub const DETECTION_EXPIRED: Diag = Diag(1);
    pub const ECHO_FAILED: Diag = Diag(2);
    pub const NEIGHBOR_DOWN: Diag = Diag(3);
    pub const FORWARDING_RESET: Diag = Diag(4);
    pub const PATH_DOWN: Diag = Diag(5);
    pub const CONCATENATED_PATH_DOWN: Diag = Diag(6);
    pub const ADMIN_DOWN: Diag = Diag(7);
    pub const REVERSE_CONCATENATED_PATH_DOWN: Diag = Diag(8);

    /// The RFC's wording, for logs.
    pub fn text(self) -> &'static str {
        match self.0 {
            0 => "No Diagnostic",
            1 => "Control Detection Time Expired",
            2 => "Echo Function Failed",
            3 => "Neighbor Signaled Session Down",
            4 => "Forwarding Plane Reset",
            5 => "Path Down",
            6 => "Concatenated Path Down",
            7 => "Administratively Down",
            8 => "Reverse Concatenated Path Down",
            _ => "Reserved",
        }
    }
}

/// Authentication types (RFC 5880 §4.1, `Auth Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
    /// A type this codec does not know, kept as its number.
    Other(u8),
}

impl AuthType {
    pub fn from_u8(v: u8) -> AuthType {
        match v {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            o => AuthType::Other(o),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Other(o) => o,
        }
    }

    /// Length of the digest field (§4.3, §4.4), for the digest types.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => Some(16),
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => Some(20),
            _ => None,
        }
    }
}

/// The authentication section (RFC 5880 §4.2–§4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// §4.2: key ID and a password of 1–16 octets.
    Password { key_id: u8, password: Vec<u8> },
    /// §4.3 / §4.4: key ID, the reserved octet, sequence number and digest (16 octets for
    /// MD5, 20 for SHA1).
    Digest {
        kind: AuthType,
        key_id: u8,
        reserved: u8,
        seq: u32,
        digest: Vec<u8>,
    },
    /// An unknown type: its octets after `Auth Len`.
    Other { kind: u8, data: Vec<u8> },
}

impl Auth {
    pub fn kind(&self) -> AuthType {
        match self {
            Auth::Password { .. } => AuthType::SimplePassword,
            Auth::Digest { kind, .. } => *kind,
            Auth::Other { kind, .. } => AuthType::from_u8(*kind),
        }
    }

    /// The section's length, `Auth Len` (type and length octets included).
    pub fn wire_len(&self) -> usize {
        2 + match self {
            Auth::Password { password, .. } => 1 + password.len(),
            Auth::Digest { digest, .. } => 6 + digest.len(),
            Auth::Other { data, .. } => data.len(),
        }
    }
}

/// A BFD Control packet (RFC 5880 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub version: u8,
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub multipoint: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    /// Microseconds.
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
    pub auth: Option<Auth>,
}

/// Why a packet was discarded (RFC 5880 §6.8.6, the checks that need only the packet).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("{0} octets: shorter than a Control packet")]
    Short(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("Length {length} but {have} octets received")]
    Length { length: usize, have: usize },
    #[error("Length {0} too short for its sections")]
    BadLength(usize),
    #[error("Auth Len {0} does not match the packet")]
    AuthLength(usize),
    #[error("Detect Mult is zero")]
    DetectMult,
    #[error("Multipoint bit set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    MyDiscriminator,
}

impl Packet {
    /// Decodes a packet and applies the checks of RFC 5880 §6.8.6 that need no session
    /// (version, lengths, Detect Mult, M bit, My Discriminator). Octets after `Length` are
    /// ignored.
    pub fn decode(b: &[u8]) -> Result<Packet, Error> {
        if b.len() < MIN_LEN {
            return Err(Error::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let flags = b[1];
        let has_auth = flags & 0x04 != 0;
        let length = usize::from(b[3]);
        if (has_auth && length < MIN_LEN + 2) || (!has_auth && length != MIN_LEN) {
            return Err(Error::BadLength(length));
        }
        if length > b.len() {
            return Err(Error::Length {
                length,
                have: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let auth = match has_auth {
            true => Some(decode_auth(&b[MIN_LEN..length])?),
            false => None,
        };
        let p = Packet {
            version,
            diag: Diag(b[0] & 0x1f),
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            multipoint: flags & 0x01 != 0,
            detect_mult: b[2],
            my_disc: u32_at(4),
            your_disc: u32_at(8),
            desired_min_tx: u32_at(12),
            required_min_rx: u32_at(16),
            required_min_echo_rx: u32_at(20),
            auth,
        };
        if p.detect_mult == 0 {
            return Err(Error::DetectMult);
        }
        if p.multipoint {
            return Err(Error::Multipoint);
        }
        if p.my_disc == 0 {
            return Err(Error::MyDiscriminator);
        }
        Ok(p)
    }

    /// The packet's octets; `Length` counts the authentication section.
    pub fn encode(&self) -> Vec<u8> {
        let len = MIN_LEN + self.auth.as_ref().map_or(0, Auth::wire_len);
        let mut b = Vec::with_capacity(len);
        b.push((self.version << 5) | (self.diag.0 & 0x1f));
        let bit = |on: bool, v: u8| if on { v } else { 0 };
        b.push(
            ((self.state as u8) << 6)
                | bit(self.poll, 0x20)
                | bit(self.final_, 0x10)
                | bit(self.cpi, 0x08)
                | bit(self.auth.is_some(), 0x04)
                | bit(self.demand, 0x02)
                | bit(self.multipoint, 0x01),
        );
        b.push(self.detect_mult);
        b.push(u8::try_from(len).unwrap_or(u8::MAX));
        for v in [
            self.my_disc,
            self.your_disc,
            self.desired_min_tx,
            self.required_min_rx,
            self.required_min_echo_rx,
        ] {
            b.extend(v.to_be_bytes());
        }
        match &self.auth {
            None => {}
            Some(a @ Auth::Password { key_id, password }) => {
                b.extend([a.kind().to_u8(), a.wire_len() as u8, *key_id]);
                b.extend(password);
            }
            Some(
                a @ Auth::Digest {
                    key_id,
                    reserved,
                    seq,
                    digest,
                    ..
                },
            ) => {
                b.extend([a.kind().to_u8(), a.wire_len() as u8, *key_id, *reserved]);
                b.extend(seq.to_be_bytes());
                b.extend(digest);
            }
            Some(a @ Auth::Other { kind, data }) => {
                b.extend([*kind, a.wire_len() as u8]);
                b.extend(data);
            }
        }
        b
    }
}

#[cfg(test)]
impl Packet {
    /// A packet of the tests: `state`, Detect Mult 3, 100 ms both ways, no authentication.
    pub fn sample(state: State, my_disc: u32, your_disc: u32) -> Packet {
        Packet {
            version: VERSION,
            diag: Diag::NONE,
            state,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            multipoint: false,
            detect_mult: 3,
            my_disc,
            your_disc,
            desired_min_tx: 100_000,
            required_min_rx: 100_000,
            required_min_echo_rx: 0,
            auth: None,
        }
    }
}

/// The authentication section: `s` is every octet after the mandatory section up to
/// `Length`, which must be exactly `Auth Len` long.
fn decode_auth(s: &[u8]) -> Result<Auth, Error> {
    let (kind, auth_len) = (AuthType::from_u8(s[0]), usize::from(s[1]));
    if auth_len != s.len() {
        return Err(Error::AuthLength(auth_len));
    }
    let body = &s[2..];
    match kind {
        AuthType::SimplePassword => match body.split_first() {
            Some((&key_id, pw)) if (1..=16).contains(&pw.len()) => Ok(Auth::Password {
                key_id,
                password: pw.to_vec(),
            }),
            _ => Err(Error::AuthLength(auth_len)),
        },
        AuthType::Other(kind) => Ok(Auth::Other {
            kind,
            data: body.to_vec(),
        }),
        digest_kind => {
            let want = digest_kind.digest_len().unwrap_or(0);
            if body.len() != 6 + want {
                return Err(Error::AuthLength(auth_len));
            }
            Ok(Auth::Digest {
                kind: digest_kind,
                key_id: body[0],
                reserved: body[1],
                seq: u32::from_be_bytes([body[2], body[3], body[4], body[5]]),
                digest: body[6..].to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A packet as FRR's bfdd sends it while Down: version 1, Sta Down, Detect Mult 3,
    /// 300 ms intervals, no echo.
    const FRR_DOWN: &str = "20400318 3b9aca01 00000000 000493e0 000493e0 00000000";

    fn bytes(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn vector_without_auth() {
        let b = bytes(FRR_DOWN);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.state, State::Down);
        assert_eq!((p.detect_mult, p.my_disc, p.your_disc), (3, 0x3b9aca01, 0));
        assert_eq!((p.desired_min_tx, p.required_min_rx), (300_000, 300_000));
        assert_eq!(p.auth, None);
        assert_eq!(p.encode(), b);
    }

    #[test]
    fn vector_up_with_poll() {
        // Sta Up, P bit, diag 3, Detect Mult 5.
        let b = bytes("23e80518 00000001 00000002 000186a0 000186a0 00000000");
        let p = Packet::decode(&b).unwrap();
        assert_eq!((p.state, p.poll, p.final_), (State::Up, true, false));
        assert_eq!(p.diag, Diag::NEIGHBOR_DOWN);
        assert!(p.cpi);
        assert_eq!(p.encode(), b);
    }

    #[test]
    fn vector_with_sha1() {
        let mut s = String::from("20440334 00000007 00000000 000f4240 000f4240 00000000");
        s.push_str(" 041c0500 0000002a");
        s.push_str(&"ab".repeat(20));
        let b = bytes(&s);
        let p = Packet::decode(&b).unwrap();
        let Some(Auth::Digest {
            kind, key_id, seq, ..
        }) = &p.auth
        else {
            panic!("{p:?}")
        };
        assert_eq!((*kind, *key_id, *seq), (AuthType::KeyedSha1, 5, 42));
        assert_eq!(p.encode(), b);
    }

    #[test]
    fn vector_with_password_and_trailing_octets() {
        let mut b = bytes("20440321 00000007 00000000 000f4240 000f4240 00000000 0109 01");
        b.extend(b"hunter");
        let p = Packet::decode(&b).unwrap();
        assert_eq!(
            p.auth,
            Some(Auth::Password {
                key_id: 1,
                password: b"hunter".to_vec()
            })
        );
        let mut padded = b.clone();
        padded.extend([0, 0]);
        assert_eq!(Packet::decode(&padded).unwrap().encode(), b);
    }

    #[test]
    fn refuses_what_6_8_6_discards() {
        let good = bytes(FRR_DOWN);
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Packet::decode(&b)
        };
        assert_eq!(Packet::decode(&good[..23]), Err(Error::Short(23)));
        assert_eq!(with(0, 0x40), Err(Error::Version(2)));
        assert_eq!(with(3, 23), Err(Error::BadLength(23)));
        assert_eq!(with(3, 25), Err(Error::BadLength(25)));
        let mut authed = good.clone();
        authed[1] |= 0x04;
        authed[3] = 30;
        assert_eq!(
            Packet::decode(&authed),
            Err(Error::Length {
                length: 30,
                have: 24
            })
        );
        assert_eq!(with(2, 0), Err(Error::DetectMult));
        assert_eq!(with(1, 0xc1), Err(Error::Multipoint));
        let mut b = good.clone();
        b[4..8].fill(0);
        assert_eq!(Packet::decode(&b), Err(Error::MyDiscriminator));
        // The A bit with a section too short, or an MD5 section of a SHA1's length.
        assert_eq!(with(1, 0xc4), Err(Error::BadLength(24)));
        let mut md5 = bytes("20440334 00000007 00000000 000f4240 000f4240 00000000 021c");
        md5.extend([0; 26]);
        assert_eq!(Packet::decode(&md5), Err(Error::AuthLength(28)));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_round_trips(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::decode(&b) {
                let e = p.encode();
                prop_assert_eq!(&e[..], &b[..e.len()]);
                prop_assert_eq!(Packet::decode(&e), Ok(p));
            }
        }

        #[test]
        fn valid_headers_round_trip(
            flags in any::<u8>(), mult in 1u8.., disc in 1u32.., rest in any::<[u32; 4]>(),
            auth in proptest::option::of((2u8..6, any::<u8>(), any::<u8>(), any::<u32>())),
        ) {
            let auth = auth.map(|(kind, key_id, reserved, seq)| {
                let kind = AuthType::from_u8(kind);
                Auth::Digest { kind, key_id, reserved, seq, digest: vec![7; kind.digest_len().unwrap_or(0)] }
            });
            let p = Packet {
                version: 1, diag: Diag(flags & 0x1f), state: State::from_bits(flags >> 6),
                poll: flags & 0x20 != 0, final_: flags & 0x10 != 0, cpi: flags & 8 != 0,
                demand: flags & 2 != 0, multipoint: false, detect_mult: mult, my_disc: disc,
                your_disc: rest[0], desired_min_tx: rest[1], required_min_rx: rest[2],
                required_min_echo_rx: rest[3], auth,
            };
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }
}

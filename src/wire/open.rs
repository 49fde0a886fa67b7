//! OPEN (RFC 4271 §4.2), optional parameters (RFC 9072 extended form) and capabilities
//! (RFC 5492).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::error::{EncodeError, Error};
use super::hexbytes;
use super::nlri::{Afi, Family, Safi};
use super::notification::{Code, open};

/// The AS number a 2-octet field carries for a 4-octet AS (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type for capabilities (RFC 5492 §4).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: this value in the first parameter's type octet marks the extended form.
const PARAM_EXTENDED: u8 = 255;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub version: u8,
    /// My Autonomous System: AS_TRANS when the speaker's AS needs 4 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub params: Vec<OptParam>,
    /// Whether the parameters use RFC 9072's extended length encoding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended_params: bool,
}

/// An optional parameter (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "param", rename_all = "kebab-case")]
pub enum OptParam {
    /// RFC 5492 §4: a list of capabilities (speakers may send several such parameters).
    Capabilities { capabilities: Vec<Capability> },
    /// Any other parameter, kept as received (e.g. the deprecated authentication parameter).
    Other {
        param_type: u8,
        #[serde(with = "hexbytes")]
        data: Vec<u8>,
    },
}

/// A capability (RFC 5492 §4). A known code of the length its RFC gives but another shape (a
/// non-zero reserved octet, a hostname that is not UTF-8) is kept as [`Capability::Other`],
/// so that it re-encodes unchanged; a known code of another length does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "capability", rename_all = "kebab-case")]
pub enum Capability {
    /// RFC 4760 §8 (code 1).
    Multiprotocol { afi: Afi, safi: Safi },
    /// RFC 2918 (code 2).
    RouteRefresh,
    /// RFC 8654 (code 6).
    ExtendedMessage,
    /// RFC 4724 §3 (code 64).
    GracefulRestart(GracefulRestart),
    /// RFC 6793 (code 65).
    FourOctetAs { asn: u32 },
    /// RFC 7911 §4 (code 69).
    AddPath { families: Vec<AddPathFamily> },
    /// RFC 7313 §3 (code 70).
    EnhancedRouteRefresh,
    /// RFC 9494 §3 (code 71).
    LongLivedGracefulRestart { families: Vec<LlgrFamily> },
    /// draft-walton-bgp-hostname-capability (code 73).
    Fqdn { hostname: String, domain: String },
    /// Any other capability, kept as raw bytes.
    Other {
        code: u8,
        #[serde(with = "hexbytes")]
        data: Vec<u8>,
    },
}

/// The graceful restart capability's value (RFC 4724 §3, RFC 8538 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestart {
    /// The four "Restart Flags" bits, as a number 0..=15 (R = 8, N = 4).
    pub flags: u8,
    /// Restart time in seconds, 0..=4095.
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

impl GracefulRestart {
    /// R: the sender has restarted (RFC 4724 §3).
    pub const RESTART_STATE: u8 = 0x8;
    /// N: the sender supports graceful restart for NOTIFICATIONs (RFC 8538 §2).
    pub const NOTIFICATION: u8 = 0x4;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// Bit 0x80: forwarding state preserved across the restart.
    pub flags: u8,
}

impl GrFamily {
    pub const FORWARDING: u8 = 0x80;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPathFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// Send/Receive field: 1 receive, 2 send, 3 both (RFC 7911 §4).
    pub mode: u8,
}

impl AddPathFamily {
    pub const RECEIVE: u8 = 1;
    pub const SEND: u8 = 2;

    pub fn family(&self) -> Family {
        Family {
            afi: self.afi,
            safi: self.safi,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlgrFamily {
    pub afi: Afi,
    pub safi: Safi,
    pub flags: u8,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

impl Open {
    /// Every capability, across all capability parameters, in wire order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flat_map(|p| match p {
            OptParam::Capabilities { capabilities } => capabilities.as_slice(),
            OptParam::Other { .. } => &[],
        })
    }

    /// The speaker's AS: the 4-octet capability's when present (RFC 6793 §3), else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs { asn } => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the 4-octet AS capability is present (RFC 6793).
    pub fn four_octet_as(&self) -> bool {
        self.capabilities()
            .any(|c| matches!(c, Capability::FourOctetAs { .. }))
    }

    /// The families announced with the multiprotocol capability.
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities().filter_map(|c| match c {
            Capability::Multiprotocol { afi, safi } => Some(Family {
                afi: *afi,
                safi: *safi,
            }),
            _ => None,
        })
    }

    /// The add-path mode announced for `family` (0 when none).
    pub fn add_path_mode(&self, family: Family) -> u8 {
        self.capabilities()
            .filter_map(|c| match c {
                Capability::AddPath { families } => families
                    .iter()
                    .find(|f| f.family() == family)
                    .map(|f| f.mode),
                _ => None,
            })
            .next()
            .unwrap_or(0)
    }

    pub fn has(&self, wanted: &Capability) -> bool {
        self.capabilities().any(|c| c == wanted)
    }

    /// RFC 4271 §4.2, RFC 9072 §2. `body` is the message after the header.
    pub(crate) fn decode(body: &[u8]) -> Result<Open, Error> {
        let short = || malformed("OPEN shorter than its fixed fields");
        let (fixed, rest) = body.split_first_chunk::<10>().ok_or_else(short)?;
        let version = fixed[0];
        let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
        let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
        let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
        let opt_len = fixed[9] as usize;
        let extended_params = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
        let (params_field, len_size, declared) = if extended_params {
            let b = rest.get(1..3).ok_or_else(short)?;
            (&rest[3..], 2, u16::from_be_bytes([b[0], b[1]]) as usize)
        } else {
            (rest, 1, opt_len)
        };
        if params_field.len() != declared {
            return Err(malformed(
                "optional parameters length does not match the message length",
            ));
        }
        let params = decode_params(params_field, len_size)?;
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            params,
            extended_params,
        })
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(self.version);
        buf.put_u16(self.my_as);
        buf.put_u16(self.hold_time);
        buf.put_slice(&self.bgp_id.octets());
        let mut params = BytesMut::new();
        for p in &self.params {
            encode_param(p, &mut params, false)?;
        }
        // RFC 9072 §2: 255 octets still fit the short form unless the first parameter's type
        // would read as the extended-form marker.
        let fits =
            params.len() < 255 || (params.len() == 255 && params.first() != Some(&PARAM_EXTENDED));
        if !self.extended_params && fits {
            buf.put_u8(params.len() as u8);
            buf.put_slice(&params);
            return Ok(());
        }
        // RFC 9072 §2: every parameter gets a 2-octet length.
        params.clear();
        for p in &self.params {
            encode_param(p, &mut params, true)?;
        }
        let len = u16::try_from(params.len()).map_err(|_| EncodeError::FieldTooLong {
            what: "OPEN optional parameters",
            len: params.len(),
        })?;
        buf.put_u8(255);
        buf.put_u8(PARAM_EXTENDED);
        buf.put_u16(len);
        buf.put_slice(&params);
        Ok(())
    }
}

fn malformed(reason: &str) -> Error {
    Error::reset(Code::Open, open::UNSPECIFIC, Vec::new(), reason)
}

/// Splits a parameters field into parameters; `len_size` is 1, or 2 in the RFC 9072 form.
fn decode_params(mut i: &[u8], len_size: usize) -> Result<Vec<OptParam>, Error> {
    let mut params = Vec::new();
    while !i.is_empty() {
        let (param_type, len, rest) = match (len_size, i) {
            (1, [t, l, rest @ ..]) => (*t, *l as usize, rest),
            (2, [t, h, l, rest @ ..]) => (*t, u16::from_be_bytes([*h, *l]) as usize, rest),
            _ => return Err(malformed("optional parameter header cut short")),
        };
        let value = rest
            .get(..len)
            .ok_or_else(|| malformed("optional parameter overruns the parameters field"))?;
        params.push(if param_type == PARAM_CAPABILITIES {
            OptParam::Capabilities {
                capabilities: decode_capabilities(value)?,
            }
        } else {
            OptParam::Other {
                param_type,
                data: value.to_vec(),
            }
        });
        i = &rest[len..];
    }
    Ok(params)
}

fn decode_capabilities(mut i: &[u8]) -> Result<Vec<Capability>, Error> {
    let mut caps = Vec::new();
    while !i.is_empty() {
        let [code, len, rest @ ..] = i else {
            return Err(malformed("capability header cut short"));
        };
        let len = *len as usize;
        let value = rest
            .get(..len)
            .ok_or_else(|| malformed("capability overruns its parameter"))?;
        check_length(*code, value)?;
        caps.push(Capability::decode(*code, value));
        i = &rest[len..];
    }
    Ok(caps)
}

/// The value lengths the capabilities' RFCs give. A known capability of another length is
/// an OPEN Message Error, subcode 0 and no data (RFC 4271 §6.2), as BIRD 1.6 and 2 answer;
/// an unknown capability is never checked, only ignored (RFC 5492 §5).
fn check_length(code: u8, v: &[u8]) -> Result<(), Error> {
    let n = v.len();
    let (ok, rule) = match code {
        1 => (
            n == 4,
            "multiprotocol capability not 4 octets (RFC 4760 §8)",
        ),
        2 => (n == 0, "route refresh capability not empty (RFC 2918 §2)"),
        6 => (
            n == 0,
            "extended message capability not empty (RFC 8654 §3)",
        ),
        64 => (
            n % 4 == 2,
            "graceful restart capability not 2 + 4n octets (RFC 4724 §3)",
        ),
        65 => (n == 4, "4-octet AS capability not 4 octets (RFC 6793 §3)"),
        69 => (
            n.is_multiple_of(4),
            "add-path capability not 4n octets (RFC 7911 §4)",
        ),
        70 => (
            n == 0,
            "enhanced route refresh capability not empty (RFC 7313 §3)",
        ),
        71 => (
            n.is_multiple_of(7),
            "long-lived graceful restart capability not 7n octets (RFC 9494 §3)",
        ),
        73 => (
            v.first().is_some_and(|&h| n >= 2 + usize::from(h)),
            "hostname capability shorter than its hostname and domain lengths",
        ),
        _ => (true, ""),
    };
    if ok { Ok(()) } else { Err(malformed(rule)) }
}

fn afi_safi(b: &[u8]) -> (Afi, Safi) {
    (Afi(u16::from_be_bytes([b[0], b[1]])), Safi(b[2]))
}

impl Capability {
    /// The capability code (RFC 5492 §4, IANA "Capability Codes").
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => 1,
            Capability::RouteRefresh => 2,
            Capability::ExtendedMessage => 6,
            Capability::GracefulRestart(_) => 64,
            Capability::FourOctetAs { .. } => 65,
            Capability::AddPath { .. } => 69,
            Capability::EnhancedRouteRefresh => 70,
            Capability::LongLivedGracefulRestart { .. } => 71,
            Capability::Fqdn { .. } => 73,
            Capability::Other { code, .. } => *code,
        }
    }

    /// The typed form when `v` has the shape the capability's RFC gives, else the raw bytes.
    /// `v` has passed [`check_length`].
    fn decode(code: u8, v: &[u8]) -> Capability {
        let typed = match (code, v.len()) {
            (1, 4) if v[2] == 0 => Some(Capability::Multiprotocol {
                afi: Afi(u16::from_be_bytes([v[0], v[1]])),
                safi: Safi(v[3]),
            }),
            (2, 0) => Some(Capability::RouteRefresh),
            (6, 0) => Some(Capability::ExtendedMessage),
            (64, n) if n >= 2 && (n - 2) % 4 == 0 => {
                Some(Capability::GracefulRestart(GracefulRestart {
                    flags: v[0] >> 4,
                    restart_time: u16::from_be_bytes([v[0] & 0x0f, v[1]]),
                    families: v[2..]
                        .chunks_exact(4)
                        .map(|c| {
                            let (afi, safi) = afi_safi(c);
                            GrFamily {
                                afi,
                                safi,
                                flags: c[3],
                            }
                        })
                        .collect(),
                }))
            }
            (65, 4) => Some(Capability::FourOctetAs {
                asn: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            }),
            (69, n) if n % 4 == 0 => Some(Capability::AddPath {
                families: v
                    .chunks_exact(4)
                    .map(|c| {
                        let (afi, safi) = afi_safi(c);
                        AddPathFamily {
                            afi,
                            safi,
                            mode: c[3],
                        }
                    })
                    .collect(),
            }),
            (70, 0) => Some(Capability::EnhancedRouteRefresh),
            (71, n) if n % 7 == 0 => Some(Capability::LongLivedGracefulRestart {
                families: v
                    .chunks_exact(7)
                    .map(|c| {
                        let (afi, safi) = afi_safi(c);
                        LlgrFamily {
                            afi,
                            safi,
                            flags: c[3],
                            stale_time: u32::from_be_bytes([0, c[4], c[5], c[6]]),
                        }
                    })
                    .collect(),
            }),
            (73, _) => decode_fqdn(v),
            _ => None,
        };
        typed.unwrap_or_else(|| Capability::Other {
            code,
            data: v.to_vec(),
        })
    }

    fn encode_value(&self, buf: &mut BytesMut) {
        match self {
            Capability::Multiprotocol { afi, safi } => {
                buf.put_u16(afi.0);
                buf.put_u8(0);
                buf.put_u8(safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::GracefulRestart(gr) => {
                buf.put_u16((u16::from(gr.flags & 0x0f) << 12) | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    buf.put_u16(f.afi.0);
                    buf.put_u8(f.safi.0);
                    buf.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs { asn } => buf.put_u32(*asn),
            Capability::AddPath { families } => {
                for f in families {
                    buf.put_u16(f.afi.0);
                    buf.put_u8(f.safi.0);
                    buf.put_u8(f.mode);
                }
            }
            Capability::LongLivedGracefulRestart { families } => {
                for f in families {
                    buf.put_u16(f.afi.0);
                    buf.put_u8(f.safi.0);
                    buf.put_u8(f.flags);
                    buf.put_slice(&f.stale_time.to_be_bytes()[1..]);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                for s in [hostname, domain] {
                    buf.put_u8(s.len().min(255) as u8);
                    buf.put_slice(&s.as_bytes()[..s.len().min(255)]);
                }
            }
            Capability::Other { data, .. } => buf.put_slice(data),
        }
    }
}

/// Hostname capability: length-prefixed hostname, then length-prefixed domain name.
fn decode_fqdn(v: &[u8]) -> Option<Capability> {
    let (&hl, rest) = v.split_first()?;
    let host = rest.get(..hl as usize)?;
    let (&dl, rest) = rest[hl as usize..].split_first()?;
    if rest.len() != dl as usize {
        return None;
    }
    Some(Capability::Fqdn {
        hostname: std::str::from_utf8(host).ok()?.to_string(),
        domain: std::str::from_utf8(rest).ok()?.to_string(),
    })
}

fn encode_param(p: &OptParam, buf: &mut BytesMut, extended: bool) -> Result<(), EncodeError> {
    let (param_type, value) = match p {
        OptParam::Capabilities { capabilities } => {
            let mut v = BytesMut::new();
            for c in capabilities {
                let mut cv = BytesMut::new();
                c.encode_value(&mut cv);
                let len = u8::try_from(cv.len()).map_err(|_| EncodeError::FieldTooLong {
                    what: "capability",
                    len: cv.len(),
                })?;
                v.put_u8(c.code());
                v.put_u8(len);
                v.put_slice(&cv);
            }
            (PARAM_CAPABILITIES, v.to_vec())
        }
        OptParam::Other { param_type, data } => (*param_type, data.clone()),
    };
    buf.put_u8(param_type);
    let too_long = || EncodeError::FieldTooLong {
        what: "optional parameter",
        len: value.len(),
    };
    if extended {
        buf.put_u16(u16::try_from(value.len()).map_err(|_| too_long())?);
    } else {
        buf.put_u8(u8::try_from(value.len()).map_err(|_| too_long())?);
    }
    buf.put_slice(&value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::wire::{Capability, Message, Negotiated, decode};

    /// An OPEN (AS 64512, hold 90, id 198.51.100.2) with one capability of the given value.
    fn open_with(code: u8, value: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        let len = 19 + 10 + 4 + value.len();
        m.extend((len as u16).to_be_bytes());
        m.extend([1, 4, 0xfc, 0x00, 0, 90, 198, 51, 100, 2]);
        m.extend([
            4 + value.len() as u8,
            2,
            2 + value.len() as u8,
            code,
            value.len() as u8,
        ]);
        m.extend(value);
        m
    }

    /// RFC 4271 §6.2 / BIRD: a known capability of the wrong length is OPEN Message Error,
    /// subcode 0, no data; the right lengths decode.
    #[test]
    fn known_capabilities_of_the_wrong_length_are_open_errors() {
        let cases: &[(u8, &[u8], &[u8])] = &[
            (1, &[0, 1, 0], &[0, 1, 0, 1]),
            (2, &[0], &[]),
            (6, &[0], &[]),
            (64, &[0x40], &[0x40, 0x78, 0, 1, 1, 0x80]),
            (64, &[0x40, 0x78, 0, 1, 1], &[0x40, 0x78]),
            (65, &[0xfc, 0x00], &[0, 0, 0xfc, 0]),
            (69, &[0, 1, 1], &[0, 1, 1, 3, 0, 2, 1, 1]),
            (70, &[0], &[]),
            (71, &[0, 1, 1, 0x80, 0, 0], &[0, 1, 1, 0x80, 0, 0, 60]),
            (73, &[], &[0, 0]),
            (73, &[3, b'a', b'b', b'c'], &[3, b'a', b'b', b'c', 0]),
        ];
        let neg = Negotiated::default();
        for (code, bad, good) in cases {
            let e = decode(&open_with(*code, bad), &neg).unwrap_err();
            assert_eq!(
                (e.code, e.subcode, &e.data[..]),
                (2, 0, &[][..]),
                "{code} {bad:?}"
            );
            let m = decode(&open_with(*code, good), &neg).unwrap();
            let Message::Open(o) = m else { panic!() };
            let c = o.capabilities().next().unwrap();
            assert!(
                !matches!(c, Capability::Other { .. }),
                "{code} {good:?}: {c:?}"
            );
        }
    }

    /// RFC 5492 §5: unknown capabilities are ignored whatever their length, and a known one
    /// of the right length but another shape is kept raw (ignored), as BIRD does.
    #[test]
    fn unknown_and_odd_shaped_capabilities_decode_raw() {
        let neg = Negotiated::default();
        for (code, value) in [
            (9, &[1, 2, 3][..]),
            (200, &[][..]),
            (1, &[0, 1, 5, 1][..]),
            (73, &[1, b'a', 5, b'b'][..]),
            (73, &[1, 0xff, 0][..]),
        ] {
            let bytes = open_with(code, value);
            let m = decode(&bytes, &neg).unwrap();
            let Message::Open(o) = &m else { panic!() };
            assert_eq!(
                o.capabilities().collect::<Vec<_>>(),
                vec![&Capability::Other {
                    code,
                    data: value.to_vec()
                }]
            );
            assert_eq!(m.to_bytes(&neg).unwrap(), bytes);
        }
    }

    /// Found by reading the encoder (and confirmed by the round-trip fuzz target): exactly
    /// 255 octets of parameters in the short form must stay in the short form.
    #[test]
    fn parameters_of_exactly_255_octets_round_trip() {
        let mut msg =
            hex::decode("ffffffffffffffffffffffffffffffff011c0104fde8005ac0000201ff02fdc8fb")
                .unwrap();
        msg.extend(0u8..=0xfa);
        let neg = Negotiated::default();
        let m = decode(&msg, &neg).unwrap();
        assert!(matches!(&m, Message::Open(o) if !o.extended_params));
        assert_eq!(hex::encode(m.to_bytes(&neg).unwrap()), hex::encode(&msg));
    }
}

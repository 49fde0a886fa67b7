//! UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes, NLRI; End-of-RIB (RFC 4724 §2).

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::Negotiated;
use super::attr::{
    Attr, Attributes, MpReach, MpUnreach, PathAttribute, code, decode_attributes, note,
};
use super::error::{Action, EncodeError, Error};
use super::nlri::{Afi, Family, Prefix, Prefixes, decode_prefixes, encode_prefixes, put_prefixes};
use super::notification::{Code, update};

/// An UPDATE message. `withdrawn` and `nlri` are the IPv4 fields of RFC 4271; other families
/// travel in the MP_REACH_NLRI / MP_UNREACH_NLRI attributes.
///
/// The lists keep their first entries inline, so a single-prefix Calico UPDATE decodes
/// without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    #[serde(default, skip_serializing_if = "Prefixes::is_empty")]
    pub withdrawn: Prefixes,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Prefixes::is_empty")]
    pub nlri: Prefixes,
}

impl Update {
    /// The first attribute of the given type code.
    pub fn attr(&self, type_code: u8) -> Option<&Attr> {
        self.attributes
            .iter()
            .find(|a| a.type_code() == type_code)
            .map(|a| &a.value)
    }

    pub fn mp_reach(&self) -> Option<&MpReach> {
        match self.attr(code::MP_REACH_NLRI) {
            Some(Attr::MpReach(m)) => Some(m),
            _ => None,
        }
    }

    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        match self.attr(code::MP_UNREACH_NLRI) {
            Some(Attr::MpUnreach(m)) => Some(m),
            _ => None,
        }
    }

    /// The End-of-RIB marker's family, if this UPDATE is one (RFC 4724 §2): an empty UPDATE
    /// for IPv4 unicast, or one holding only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [a] => match &a.value {
                Attr::MpUnreach(m) if m.withdrawn.is_empty() => Some(Family {
                    afi: m.afi,
                    safi: m.safi,
                }),
                // An End-of-RIB of a family wren does not interpret.
                Attr::Other { type_code, data }
                    if *type_code == code::MP_UNREACH_NLRI && data.len() == 3 =>
                {
                    Some(Family {
                        afi: Afi(u16::from_be_bytes([data[0], data[1]])),
                        safi: super::nlri::Safi(data[2]),
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib_for(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: [PathAttribute::new(Attr::MpUnreach(Box::new(MpUnreach {
                afi: family.afi,
                safi: family.safi,
                withdrawn: Vec::new(),
            })))]
            .into(),
            ..Update::default()
        }
    }

    /// Every prefix announced, with its family.
    pub fn announced(&self) -> impl Iterator<Item = (Family, &Prefix)> {
        let mp = self.mp_reach().into_iter().flat_map(|m| {
            m.nlri.iter().map(move |p| {
                (
                    Family {
                        afi: m.afi,
                        safi: m.safi,
                    },
                    p,
                )
            })
        });
        self.nlri
            .iter()
            .map(|p| (Family::IPV4_UNICAST, p))
            .chain(mp)
    }

    /// Every prefix withdrawn, with its family.
    pub fn withdrawals(&self) -> impl Iterator<Item = (Family, &Prefix)> {
        let mp = self.mp_unreach().into_iter().flat_map(|m| {
            m.withdrawn.iter().map(move |p| {
                (
                    Family {
                        afi: m.afi,
                        safi: m.safi,
                    },
                    p,
                )
            })
        });
        self.withdrawn
            .iter()
            .map(|p| (Family::IPV4_UNICAST, p))
            .chain(mp)
    }

    /// RFC 4271 §4.3 with RFC 7606 handling. `body` is the message after the header.
    #[inline(always)]
    pub(crate) fn decode(body: &[u8], neg: &Negotiated) -> Result<Update, Error> {
        let list_error = |reason: &str| {
            Error::reset(
                Code::Update,
                update::MALFORMED_ATTRIBUTE_LIST,
                Vec::new(),
                reason,
            )
        };
        // RFC 4271 §6.3: lengths that overrun the message are a Malformed Attribute List.
        let (wlen, rest) = body
            .split_first_chunk::<2>()
            .ok_or_else(|| list_error("UPDATE shorter than its length fields"))?;
        let (withdrawn, rest) = rest
            .split_at_checked(u16::from_be_bytes(*wlen) as usize)
            .ok_or_else(|| list_error("withdrawn routes length overruns the message"))?;
        let (alen, rest) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| list_error("total path attribute length missing"))?;
        let (attrs, nlri) = rest
            .split_at_checked(u16::from_be_bytes(*alen) as usize)
            .ok_or_else(|| list_error("total path attribute length overruns the message"))?;

        let mut u = Update {
            withdrawn: decode_prefixes(withdrawn, Afi::IPV4, neg.add_path_ipv4)?,
            ..Update::default()
        };
        let mut worst = None;
        let present = decode_attributes(attrs, neg, &mut u.attributes, &mut worst)?;
        u.nlri = decode_prefixes(nlri, Afi::IPV4, neg.add_path_ipv4)?;
        if let Some(missing) = u.missing_mandatory(present) {
            note(
                &mut worst,
                Error::attribute(
                    Action::TreatAsWithdraw,
                    update::MISSING_WELL_KNOWN_ATTRIBUTE,
                    [missing],
                    format!("missing well-known attribute {missing}"),
                ),
            );
        }
        match worst {
            None => Ok(u),
            Some(mut e) => {
                e.update = Some(Box::new(u));
                Err(e)
            }
        }
    }

    /// RFC 7606 §3 (d): an UPDATE that announces routes needs ORIGIN and AS_PATH, and
    /// NEXT_HOP when it announces IPv4 routes in the NLRI field (RFC 4760 §3).
    #[inline]
    fn missing_mandatory(&self, present: u64) -> Option<u8> {
        let bits = |c: u8| 1u64 << c;
        let required = if !self.nlri.is_empty() {
            bits(code::ORIGIN) | bits(code::AS_PATH) | bits(code::NEXT_HOP)
        } else if present & bits(code::MP_REACH_NLRI) != 0
            && self.mp_reach().is_some_and(|m| !m.nlri.is_empty())
        {
            bits(code::ORIGIN) | bits(code::AS_PATH)
        } else {
            return None;
        };
        // The lowest missing code first: ORIGIN, then AS_PATH, then NEXT_HOP.
        let missing = required & !present;
        (missing != 0).then(|| missing.trailing_zeros() as u8)
    }

    #[inline]
    pub(crate) fn encode_body(
        &self,
        neg: &Negotiated,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let field = |buf: &mut BytesMut, at: usize, what| {
            let len = buf.len() - at - 2;
            let len16 = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong { what, len })?;
            buf[at..at + 2].copy_from_slice(&len16.to_be_bytes());
            Ok(())
        };
        let at = buf.len();
        buf.put_u16(0);
        encode_prefixes(&self.withdrawn, buf);
        field(buf, at, "withdrawn routes")?;
        let at = buf.len();
        buf.put_u16(0);
        for a in &self.attributes {
            a.encode(neg, buf)?;
        }
        field(buf, at, "path attributes")?;
        encode_prefixes(&self.nlri, buf);
        Ok(())
    }
}

/// Path attributes encoded once, to announce runs of prefixes of one family with them: the
/// out path writes each run as an UPDATE without building or encoding the attributes again
/// (RFC 4271 §4.3; outside IPv4 unicast the prefixes go inside MP_REACH_NLRI, RFC 4760 §3).
/// The bytes are those `Message::encode` writes for the same UPDATE.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The attributes as encoded, MP_REACH_NLRI with no prefixes.
    attrs: BytesMut,
    /// MP_REACH_NLRI's flags octet, and where its length field and its value (before the
    /// prefixes) are in `attrs`.
    mp: Option<MpAt>,
}

#[derive(Debug, Clone, Copy)]
struct MpAt {
    flags: usize,
    len: usize,
    value: usize,
    end: usize,
}

impl Announcement {
    /// `attributes` as an UPDATE carries them; an MP_REACH_NLRI among them must hold no
    /// prefixes (they are given to [`Announcement::encode`]).
    pub fn new(attributes: &[PathAttribute], neg: &Negotiated) -> Result<Self, EncodeError> {
        let mut attrs = BytesMut::new();
        let mut mp = None;
        for a in attributes {
            let flags = attrs.len();
            a.encode(neg, &mut attrs)?;
            if a.type_code() == code::MP_REACH_NLRI {
                let extended = attrs[flags] & super::attr::flags::EXTENDED_LENGTH != 0;
                let value = flags + if extended { 4 } else { 3 };
                mp = Some(MpAt {
                    flags,
                    len: flags + 2,
                    value,
                    end: attrs.len(),
                });
            }
        }
        Ok(Announcement { attrs, mp })
    }

    /// Octets of an UPDATE with these attributes and no prefix, counting the octet a
    /// MP_REACH_NLRI grown past 255 octets takes for its longer length field.
    pub fn overhead(&self) -> usize {
        super::HEADER_LEN + 4 + self.attrs.len() + usize::from(self.mp.is_some())
    }

    /// Appends one UPDATE announcing `prefixes` with these attributes. On error `buf` is
    /// left as it was.
    pub fn encode(
        &self,
        prefixes: &[Prefix],
        neg: &Negotiated,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let nlri = prefixes.iter().map(Prefix::wire_len).sum();
        self.write(prefixes, nlri, neg, buf)
    }

    /// Appends one UPDATE announcing as many of `prefixes` as fit in a message (RFC 4271
    /// §4.3), from the first; how many. An error if not even the first fits (`buf` is then
    /// left as it was).
    pub fn encode_fitting(
        &self,
        prefixes: &[Prefix],
        neg: &Negotiated,
        buf: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let room = neg.max_len().saturating_sub(self.overhead());
        let (mut n, mut nlri) = (0, 0);
        for p in prefixes {
            let len = p.wire_len();
            if nlri + len > room {
                break;
            }
            (n, nlri) = (n + 1, nlri + len);
        }
        if n == 0 && !prefixes.is_empty() {
            return Err(EncodeError::TooLong {
                len: self.overhead() + prefixes[0].wire_len(),
                max: neg.max_len(),
            });
        }
        self.write(&prefixes[..n], nlri, neg, buf).map(|()| n)
    }

    /// [`Announcement::encode`] of prefixes whose encodings take `nlri` octets together.
    fn write(
        &self,
        prefixes: &[Prefix],
        nlri: usize,
        neg: &Negotiated,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let start = buf.len();
        buf.reserve(self.overhead() + nlri);
        buf.put_bytes(0xff, 16);
        buf.put_u16(0);
        buf.put_u8(super::kind::UPDATE);
        buf.put_u16(0);
        let attrs_at = buf.len();
        buf.put_u16(0);
        let attrs_len = match self.mp {
            None => {
                buf.put_slice(&self.attrs);
                let n = buf.len() - attrs_at - 2;
                put_prefixes(prefixes, nlri, buf);
                n
            }
            Some(at) => {
                buf.put_slice(&self.attrs[..at.flags]);
                let flags = self.attrs[at.flags];
                let len = at.end - at.value + nlri;
                // As `PathAttribute::encode`: the 2-octet length when the flags ask for it or
                // the value needs it.
                let extended = flags & super::attr::flags::EXTENDED_LENGTH != 0 || len > 255;
                let Ok(len16) = u16::try_from(len) else {
                    buf.truncate(start);
                    return Err(EncodeError::FieldTooLong {
                        what: "path attribute",
                        len,
                    });
                };
                if extended {
                    buf.put_u8(flags | super::attr::flags::EXTENDED_LENGTH);
                    buf.put_u8(self.attrs[at.flags + 1]);
                    buf.put_u16(len16);
                } else {
                    buf.put_slice(&self.attrs[at.flags..at.len]);
                    buf.put_u8(len16 as u8);
                }
                buf.put_slice(&self.attrs[at.value..at.end]);
                put_prefixes(prefixes, nlri, buf);
                buf.put_slice(&self.attrs[at.end..]);
                buf.len() - attrs_at - 2
            }
        };
        let len = buf.len() - start;
        match (u16::try_from(attrs_len), len <= neg.max_len()) {
            (Ok(a), true) => {
                buf[attrs_at..attrs_at + 2].copy_from_slice(&a.to_be_bytes());
                buf[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
                Ok(())
            }
            (Err(_), _) => {
                buf.truncate(start);
                Err(EncodeError::FieldTooLong {
                    what: "path attributes",
                    len: attrs_len,
                })
            }
            (Ok(_), false) => {
                buf.truncate(start);
                Err(EncodeError::TooLong {
                    len,
                    max: neg.max_len(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::Origin;
    use smallvec::smallvec;

    fn neg() -> Negotiated {
        Negotiated::default()
    }

    #[test]
    fn end_of_rib_markers() {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let mut b = BytesMut::new();
            Update::end_of_rib_for(f)
                .encode_body(&neg(), &mut b)
                .unwrap();
            let back = Update::decode(&b, &neg()).unwrap();
            assert_eq!(back.end_of_rib(), Some(f));
        }
        let not = Update {
            withdrawn: smallvec![Prefix::new("192.0.2.0/24".parse().unwrap())],
            ..Update::default()
        };
        assert_eq!(not.end_of_rib(), None);
    }

    #[test]
    fn missing_mandatory_is_treat_as_withdraw() {
        let u = Update {
            attributes: [PathAttribute::new(Attr::Origin {
                origin: Origin::Igp,
            })]
            .into(),
            nlri: smallvec![Prefix::new("203.0.113.0/26".parse().unwrap())],
            ..Update::default()
        };
        let mut b = BytesMut::new();
        u.encode_body(&neg(), &mut b).unwrap();
        let e = Update::decode(&b, &neg()).unwrap_err();
        assert_eq!(e.action, Action::TreatAsWithdraw);
        assert_eq!(e.subcode, update::MISSING_WELL_KNOWN_ATTRIBUTE);
        assert_eq!(e.data, vec![code::AS_PATH]);
        let salvaged = e.update.unwrap();
        assert_eq!(salvaged.announced().count(), 1);
    }

    #[test]
    fn lengths_overrunning_the_message_reset() {
        for body in [&[0u8][..], &[0, 5, 1], &[0, 0, 0, 9, 0x40]] {
            let e = Update::decode(body, &neg()).unwrap_err();
            assert_eq!(e.action, Action::SessionReset);
            assert_eq!(e.subcode, update::MALFORMED_ATTRIBUTE_LIST);
        }
    }

    #[test]
    fn attribute_overrun_is_treat_as_withdraw_and_keeps_nlri() {
        // Total attribute length 3, but ORIGIN claims 5 bytes of value; then one NLRI.
        let body = [0, 0, 0, 3, 0x40, 1, 5, 26, 203, 0, 113, 0];
        let e = Update::decode(&body, &neg()).unwrap_err();
        assert_eq!(e.action, Action::TreatAsWithdraw);
        assert_eq!(e.update.unwrap().nlri.len(), 1);
    }

    /// An UPDATE written from an [`Announcement`] is the one `Message::encode` writes, for
    /// IPv4 NLRI and for MP_REACH_NLRI with 1- and 2-octet lengths.
    #[test]
    fn announcement_writes_what_message_encode_writes() {
        use crate::wire::Message;
        use crate::wire::attr::{Community, MpReach};
        use crate::wire::nlri::Safi;
        let base = vec![
            PathAttribute::new(Attr::Origin {
                origin: Origin::Igp,
            }),
            PathAttribute::new(Attr::AsPath {
                segments: Vec::new(),
            }),
        ];
        let mut v4 = base.clone();
        v4.push(PathAttribute::new(Attr::NextHop {
            next_hop: "198.51.100.1".parse().unwrap(),
        }));
        v4.push(PathAttribute::new(Attr::Communities {
            communities: vec![Community(0xfde8_0001)],
        }));
        let mp = |nlri: &[Prefix]| {
            PathAttribute::new(Attr::MpReach(Box::new(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local: None,
                reserved: 0,
                nlri: nlri.into(),
            })))
        };
        let v6_prefixes: Vec<Prefix> = (0..40u16)
            .map(|i| Prefix::new(format!("2001:db8:{i:x}::/48").parse().unwrap()))
            .collect();
        let v4_prefixes: Vec<Prefix> = (0..200u8)
            .map(|i| Prefix::new(format!("203.0.{i}.0/24").parse().unwrap()))
            .collect();
        let with_mp = |nlri: &[Prefix]| {
            let mut a = base.clone();
            a.push(mp(nlri));
            a.push(PathAttribute::new(Attr::LocalPref { local_pref: 100 }));
            a
        };
        let n = neg();
        for k in [0, 1, 5, 13, 14, 40] {
            let run = &v6_prefixes[..k];
            let a = Announcement::new(&with_mp(&[]), &n).unwrap();
            let mut ours = BytesMut::new();
            a.encode(run, &n, &mut ours).unwrap();
            let u = Update {
                attributes: with_mp(run).into(),
                ..Update::default()
            };
            let mut theirs = BytesMut::new();
            Message::Update(u).encode(&n, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{k} IPv6 prefixes");
            assert!(ours.len() <= a.overhead() + run.iter().map(Prefix::wire_len).sum::<usize>());
        }
        for k in [0, 1, 200] {
            let run = &v4_prefixes[..k];
            let a = Announcement::new(&v4, &n).unwrap();
            let mut ours = BytesMut::new();
            a.encode(run, &n, &mut ours).unwrap();
            let u = Update {
                attributes: v4.clone().into(),
                nlri: run.into(),
                ..Update::default()
            };
            let mut theirs = BytesMut::new();
            Message::Update(u).encode(&n, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{k} IPv4 prefixes");
        }
        // Past the message limit: an error, and nothing written.
        let many: Vec<Prefix> = (0..1100u32)
            .map(|i| Prefix::new(format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()))
            .collect();
        let mut buf = BytesMut::from(&b"kept"[..]);
        let a = Announcement::new(&v4, &n).unwrap();
        assert!(a.encode(&many, &n, &mut buf).is_err());
        assert_eq!(&buf[..], b"kept");
        // As many as fit: the same bytes as `encode` of those, one more would not fit.
        let k = a.encode_fitting(&many, &n, &mut buf).unwrap();
        let mut theirs = BytesMut::from(&b"kept"[..]);
        a.encode(&many[..k], &n, &mut theirs).unwrap();
        assert_eq!(buf, theirs);
        assert!(a.overhead() + 4 * (k + 1) > n.max_len() && buf.len() - 4 <= n.max_len());
        assert!(a.encode(&many[..k + 1], &n, &mut theirs).is_err());
        // IPv6 inside MP_REACH_NLRI: all 40 fit, as `encode` writes them.
        let a = Announcement::new(&with_mp(&[]), &n).unwrap();
        let (mut ours, mut theirs) = (BytesMut::new(), BytesMut::new());
        assert_eq!(a.encode_fitting(&v6_prefixes, &n, &mut ours), Ok(40));
        a.encode(&v6_prefixes, &n, &mut theirs).unwrap();
        assert_eq!(ours, theirs);
        // Attributes leaving no room for one prefix: an error, and nothing written.
        let long = vec![PathAttribute::new(Attr::Communities {
            communities: vec![Community(1); 1020],
        })];
        let a = Announcement::new(&long, &n).unwrap();
        let mut buf = BytesMut::from(&b"kept"[..]);
        assert!(a.encode_fitting(&many, &n, &mut buf).is_err());
        assert_eq!(&buf[..], b"kept");
    }
}

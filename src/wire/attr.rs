//! Path attributes (RFC 4271 §4.3, §5) with RFC 7606 error handling.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_with::{DeserializeFromStr, SerializeDisplay};
use smallvec::SmallVec;

use super::Negotiated;
use super::error::{Action, EncodeError, Error};
use super::hexbytes;
use super::nlri::{Afi, Prefix, Prefixes, Safi, decode_prefixes, encode_prefixes};
use super::notification::update;
use super::open::AS_TRANS;

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// The path attributes of an UPDATE, in wire order. Four are kept inline: Calico's iBGP
/// UPDATEs carry ORIGIN, AS_PATH, NEXT_HOP (or MP_REACH_NLRI) and LOCAL_PREF, and then
/// decoding them allocates nothing.
///
/// It is a `SmallVec` (through `Deref`) with one addition: dropping a list whose attributes
/// are all inline and own no heap memory (Calico's ORIGIN, empty AS_PATH, NEXT_HOP,
/// LOCAL_PREF) skips the per-attribute drop calls — one inlined check per attribute instead
/// of an out-of-line drop of each.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub SmallVec<[PathAttribute; 4]>);

impl Attributes {
    pub fn new() -> Self {
        Attributes(SmallVec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The attributes as a vector (no copy if they had spilled to the heap).
    pub fn into_vec(mut self) -> Vec<PathAttribute> {
        std::mem::take(&mut self.0).into_vec()
    }
}

impl Drop for Attributes {
    #[inline]
    fn drop(&mut self) {
        if !self.0.spilled() && self.0.iter().all(|a| a.value.owns_no_heap()) {
            // Nothing to free: forgetting the list leaks nothing, and the emptied list left
            // behind drops without visiting any attribute.
            std::mem::forget(std::mem::take(&mut self.0));
        }
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Deref for Attributes {
    type Target = SmallVec<[PathAttribute; 4]>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Attributes {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<Vec<PathAttribute>> for Attributes {
    fn from(v: Vec<PathAttribute>) -> Self {
        Attributes(SmallVec::from_vec(v))
    }
}

impl From<SmallVec<[PathAttribute; 4]>> for Attributes {
    fn from(v: SmallVec<[PathAttribute; 4]>) -> Self {
        Attributes(v)
    }
}

impl<const N: usize> From<[PathAttribute; N]> for Attributes {
    fn from(a: [PathAttribute; N]) -> Self {
        Attributes(a.into_iter().collect())
    }
}

impl FromIterator<PathAttribute> for Attributes {
    fn from_iter<I: IntoIterator<Item = PathAttribute>>(i: I) -> Self {
        Attributes(i.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a mut Attributes {
    type Item = &'a mut PathAttribute;
    type IntoIter = std::slice::IterMut<'a, PathAttribute>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a PathAttribute;
    type IntoIter = std::slice::Iter<'a, PathAttribute>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One path attribute: its flags octet as received (so re-encoding keeps the partial and
/// extended-length bits) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathAttribute {
    pub flags: u8,
    #[serde(flatten)]
    pub value: Attr,
}

impl PathAttribute {
    /// An attribute with the canonical flags for its type (extended length chosen at encoding).
    pub fn new(value: Attr) -> Self {
        let flags = match value.category() {
            Some(f) => f,
            None => match &value {
                Attr::Other { type_code, .. } if *type_code < 128 => flags::OPTIONAL,
                _ => flags::OPTIONAL | flags::TRANSITIVE,
            },
        };
        PathAttribute { flags, value }
    }

    pub fn type_code(&self) -> u8 {
        self.value.type_code()
    }

    /// RFC 4271 §4.3: flags, type, a 1- or 2-octet length, the value. The 2-octet length is
    /// used when the flags ask for it or the value needs it.
    pub fn encode(&self, neg: &Negotiated, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let extended = self.flags & flags::EXTENDED_LENGTH != 0;
        let start = buf.len();
        buf.put_u8(self.flags);
        buf.put_u8(self.type_code());
        let len_at = buf.len();
        buf.put_slice(if extended { &[0, 0] } else { &[0] });
        let value_at = buf.len();
        self.value.encode_value(neg, buf);
        let len = buf.len() - value_at;
        if len > usize::from(u16::MAX) {
            buf.truncate(start);
            return Err(EncodeError::FieldTooLong {
                what: "path attribute",
                len,
            });
        }
        if extended {
            buf[len_at..value_at].copy_from_slice(&(len as u16).to_be_bytes());
        } else if len <= 255 {
            buf[len_at] = len as u8;
        } else {
            // Too long for one length octet: switch to the extended form.
            buf.put_u8(0);
            buf.copy_within(value_at..value_at + len, value_at + 1);
            buf[start] |= flags::EXTENDED_LENGTH;
            buf[len_at..len_at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        }
        Ok(())
    }
}

/// A path attribute's value. Attributes wren does not interpret are kept as bytes.
///
/// `repr(u8)`: an explicit tag octet (same 32-byte size as the niche layout rustc would pick
/// otherwise), so every match on the variant is one byte load instead of decoding a niche.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "attr", rename_all = "kebab-case")]
#[repr(u8)]
pub enum Attr {
    /// RFC 4271 §5.1.1.
    Origin { origin: Origin },
    /// RFC 4271 §5.1.2; 2- or 4-octet AS numbers as negotiated (RFC 6793).
    AsPath { segments: Vec<Segment> },
    /// RFC 4271 §5.1.3.
    NextHop { next_hop: Ipv4Addr },
    /// RFC 4271 §5.1.4.
    MultiExitDisc { med: u32 },
    /// RFC 4271 §5.1.5.
    LocalPref { local_pref: u32 },
    /// RFC 4271 §5.1.6.
    AtomicAggregate,
    /// RFC 4271 §5.1.7 (AS in 2 or 4 octets as negotiated).
    Aggregator { asn: u32, address: Ipv4Addr },
    /// RFC 1997.
    Communities { communities: Vec<Community> },
    /// RFC 4456 §8.
    OriginatorId { originator_id: Ipv4Addr },
    /// RFC 4456 §8.
    ClusterList { cluster_list: Vec<Ipv4Addr> },
    /// RFC 4760 §3 (boxed: the largest value, kept out of every other attribute's size).
    MpReach(Box<MpReach>),
    /// RFC 4760 §4 (boxed like MP_REACH_NLRI: inline it would make every attribute 48 bytes).
    MpUnreach(Box<MpUnreach>),
    /// RFC 4360.
    ExtendedCommunities { communities: Vec<ExtCommunity> },
    /// RFC 6793 §3 (always 4-octet AS numbers).
    As4Path { segments: Vec<Segment> },
    /// RFC 6793 §3.
    As4Aggregator { asn: u32, address: Ipv4Addr },
    /// RFC 8092.
    LargeCommunities { communities: Vec<LargeCommunity> },
    /// Any attribute not interpreted here (or an MP_(UN)REACH_NLRI of another family).
    Other {
        type_code: u8,
        #[serde(with = "hexbytes")]
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// An AS_PATH segment (RFC 4271 §4.3, RFC 5065 §3 for the confederation types).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

/// MP_REACH_NLRI for IPv4 or IPv6 unicast/multicast (RFC 4760 §3, RFC 2545 §3 for the
/// link-local next hop, RFC 8950 for IPv6 next hops of IPv4 routes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hop: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_local: Option<Ipv6Addr>,
    /// The octet RFC 4760 reserves (0 when sent; kept as received).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserved: u8,
    pub nlri: Prefixes,
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast/multicast (RFC 4760 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<Prefix>,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// A community (RFC 1997), written `ASN:VALUE`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, SerializeDisplay, DeserializeFromStr,
)]
pub struct Community(pub u32);

/// A large community (RFC 8092 §3), written `GLOBAL:LOCAL1:LOCAL2`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, SerializeDisplay, DeserializeFromStr,
)]
pub struct LargeCommunity(pub [u32; 3]);

/// An extended community (RFC 4360 §2), written as 16 hex digits.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, SerializeDisplay, DeserializeFromStr,
)]
pub struct ExtCommunity(pub [u8; 8]);

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [g, a, b] = self.0;
        write!(f, "{g}:{a}:{b}")
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Parses `N:N[:N]` into exactly `K` numbers, each no larger than `max`.
fn parse_colon<const K: usize>(s: &str, max: u32) -> Result<[u32; K], String> {
    let mut out = [0u32; K];
    let mut parts = s.split(':');
    for slot in &mut out {
        let part = parts
            .next()
            .ok_or_else(|| format!("{s:?}: expected {K} numbers"))?;
        *slot = part
            .parse::<u32>()
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| format!("{s:?}: {part:?} is not a number up to {max}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s:?}: expected {K} numbers"));
    }
    Ok(out)
}

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let [a, b] = parse_colon::<2>(s, 0xffff)?;
        Ok(Community((a << 16) | b))
    }
}

impl FromStr for LargeCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_colon::<3>(s, u32::MAX).map(LargeCommunity)
    }
}

impl FromStr for ExtCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut b = [0u8; 8];
        hex::decode_to_slice(s, &mut b).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(ExtCommunity(b))
    }
}

impl Attr {
    pub fn type_code(&self) -> u8 {
        match self {
            Attr::Origin { .. } => code::ORIGIN,
            Attr::AsPath { .. } => code::AS_PATH,
            Attr::NextHop { .. } => code::NEXT_HOP,
            Attr::MultiExitDisc { .. } => code::MULTI_EXIT_DISC,
            Attr::LocalPref { .. } => code::LOCAL_PREF,
            Attr::AtomicAggregate => code::ATOMIC_AGGREGATE,
            Attr::Aggregator { .. } => code::AGGREGATOR,
            Attr::Communities { .. } => code::COMMUNITIES,
            Attr::OriginatorId { .. } => code::ORIGINATOR_ID,
            Attr::ClusterList { .. } => code::CLUSTER_LIST,
            Attr::MpReach(_) => code::MP_REACH_NLRI,
            Attr::MpUnreach(_) => code::MP_UNREACH_NLRI,
            Attr::ExtendedCommunities { .. } => code::EXTENDED_COMMUNITIES,
            Attr::As4Path { .. } => code::AS4_PATH,
            Attr::As4Aggregator { .. } => code::AS4_AGGREGATOR,
            Attr::LargeCommunities { .. } => code::LARGE_COMMUNITIES,
            Attr::Other { type_code, .. } => *type_code,
        }
    }

    /// Whether dropping the value frees nothing: a fixed-size value, or an empty list that
    /// never allocated.
    #[inline]
    pub fn owns_no_heap(&self) -> bool {
        match self {
            Attr::AsPath { segments } | Attr::As4Path { segments } => segments.capacity() == 0,
            Attr::Communities { communities } => communities.capacity() == 0,
            Attr::ClusterList { cluster_list } => cluster_list.capacity() == 0,
            Attr::ExtendedCommunities { communities } => communities.capacity() == 0,
            Attr::LargeCommunities { communities } => communities.capacity() == 0,
            Attr::Other { data, .. } => data.capacity() == 0,
            Attr::MpReach(_) | Attr::MpUnreach(_) => false,
            Attr::Origin { .. }
            | Attr::NextHop { .. }
            | Attr::MultiExitDisc { .. }
            | Attr::LocalPref { .. }
            | Attr::AtomicAggregate
            | Attr::Aggregator { .. }
            | Attr::OriginatorId { .. }
            | Attr::As4Aggregator { .. } => true,
        }
    }

    /// The Optional and Transitive bits the attribute's RFC gives it.
    fn category(&self) -> Option<u8> {
        expected_category(self.type_code()).filter(|_| !matches!(self, Attr::Other { .. }))
    }

    fn encode_value(&self, neg: &Negotiated, buf: &mut BytesMut) {
        match self {
            Attr::Origin { origin } => buf.put_u8(*origin as u8),
            Attr::AsPath { segments } => encode_segments(segments, neg.four_octet_as, buf),
            Attr::As4Path { segments } => encode_segments(segments, true, buf),
            Attr::NextHop { next_hop: a } | Attr::OriginatorId { originator_id: a } => {
                buf.put_slice(&a.octets())
            }
            Attr::MultiExitDisc { med: v } | Attr::LocalPref { local_pref: v } => buf.put_u32(*v),
            Attr::AtomicAggregate => {}
            Attr::Aggregator { asn, address } => {
                put_asn(*asn, neg.four_octet_as, buf);
                buf.put_slice(&address.octets());
            }
            Attr::As4Aggregator { asn, address } => {
                buf.put_u32(*asn);
                buf.put_slice(&address.octets());
            }
            Attr::Communities { communities } => communities.iter().for_each(|c| buf.put_u32(c.0)),
            Attr::ClusterList { cluster_list } => {
                cluster_list.iter().for_each(|a| buf.put_slice(&a.octets()))
            }
            Attr::MpReach(m) => {
                buf.put_u16(m.afi.0);
                buf.put_u8(m.safi.0);
                let nh_len = match (m.next_hop, m.link_local) {
                    (IpAddr::V4(_), None) => 4,
                    (IpAddr::V4(_), Some(_)) => 20,
                    (IpAddr::V6(_), None) => 16,
                    (IpAddr::V6(_), Some(_)) => 32,
                };
                buf.put_u8(nh_len);
                match m.next_hop {
                    IpAddr::V4(a) => buf.put_slice(&a.octets()),
                    IpAddr::V6(a) => buf.put_slice(&a.octets()),
                }
                if let Some(ll) = m.link_local {
                    buf.put_slice(&ll.octets());
                }
                buf.put_u8(m.reserved);
                encode_prefixes(&m.nlri, buf);
            }
            Attr::MpUnreach(m) => {
                buf.put_u16(m.afi.0);
                buf.put_u8(m.safi.0);
                encode_prefixes(&m.withdrawn, buf);
            }
            Attr::ExtendedCommunities { communities } => {
                communities.iter().for_each(|c| buf.put_slice(&c.0))
            }
            Attr::LargeCommunities { communities } => communities
                .iter()
                .flat_map(|c| c.0)
                .for_each(|v| buf.put_u32(v)),
            Attr::Other { data, .. } => buf.put_slice(data),
        }
    }
}

/// The Optional/Transitive bits each known attribute must carry (RFC 4271 §5, RFC 4456 §8,
/// RFC 4760, RFC 4360 §2, RFC 6793 §3, RFC 8092 §3, RFC 1997).
const fn expected_category(type_code: u8) -> Option<u8> {
    use flags::{OPTIONAL, TRANSITIVE};
    Some(match type_code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => TRANSITIVE,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITIES => OPTIONAL | TRANSITIVE,
        code::MULTI_EXIT_DISC
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => OPTIONAL,
        _ => return None,
    })
}

/// [`expected_category`] of every type code, for one load per attribute while decoding;
/// [`UNKNOWN`] for the codes wren does not interpret (no flags octet masked with
/// Optional|Transitive equals it, so they take the slow path).
const CATEGORY: [u8; 256] = {
    let mut t = [UNKNOWN; 256];
    let mut c = 0;
    while c < 256 {
        if let Some(f) = expected_category(c as u8) {
            t[c] = f;
        }
        c += 1;
    }
    t
};

const UNKNOWN: u8 = 0xff;

/// RFC 7606 §7: how a malformed instance of each attribute is handled.
fn action_for(type_code: u8) -> Action {
    match type_code {
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => Action::SessionReset,
        code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Action::AttributeDiscard
        }
        _ => Action::TreatAsWithdraw,
    }
}

fn put_asn(asn: u32, four_octet: bool, buf: &mut BytesMut) {
    if four_octet {
        buf.put_u32(asn);
    } else {
        // RFC 6793 §4.2.2: an AS that does not fit two octets is sent as AS_TRANS.
        buf.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
    }
}

/// Segments longer than 255 AS numbers are split into several of the same kind.
fn encode_segments(segments: &[Segment], four_octet: bool, buf: &mut BytesMut) {
    for s in segments {
        for chunk in s.asns.chunks(255) {
            buf.put_u8(s.kind as u8);
            buf.put_u8(chunk.len() as u8);
            chunk.iter().for_each(|a| put_asn(*a, four_octet, buf));
        }
    }
}

/// RFC 4271 §6.3 / RFC 7606 §7.2: segment type 1..=4, non-empty, contents within the value.
#[inline]
fn decode_segments(v: &[u8], four_octet: bool) -> Option<Vec<Segment>> {
    if v.is_empty() {
        // An iBGP route's AS_PATH.
        return Some(Vec::new());
    }
    decode_nonempty_segments(v, four_octet)
}

fn decode_nonempty_segments(mut v: &[u8], four_octet: bool) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    let width = if four_octet { 4 } else { 2 };
    while !v.is_empty() {
        let [kind, count, rest @ ..] = v else {
            return None;
        };
        let kind = match kind {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        };
        let n = *count as usize;
        let body = rest.get(..n * width).filter(|_| n > 0)?;
        let asns = if four_octet {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(Segment { kind, asns });
        v = &rest[n * width..];
    }
    Some(segments)
}

fn ipv4(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(v[0], v[1], v[2], v[3])
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// Whether add-path identifiers precede prefixes of `afi` from this peer.
fn add_path(neg: &Negotiated, afi: Afi) -> bool {
    match afi {
        Afi::IPV4 => neg.add_path_ipv4,
        Afi::IPV6 => neg.add_path_ipv6,
        _ => false,
    }
}

/// The families whose NLRI wren interprets inside MP_(UN)REACH_NLRI.
fn interpreted(afi: Afi, safi: Safi) -> bool {
    matches!(afi, Afi::IPV4 | Afi::IPV6) && matches!(safi, Safi::UNICAST | Safi::MULTICAST)
}

/// The attribute data RFC 4271 §6.3 puts in the NOTIFICATION: the whole attribute.
#[cold]
fn malformed(type_code: u8, subcode: u8, raw: &[u8], what: &str) -> Error {
    Error::attribute(action_for(type_code), subcode, raw, what.to_string())
}

/// Decodes one attribute's value and hands it to `put`. `raw` is the whole attribute (flags,
/// type, length, value) for the NOTIFICATION data.
///
/// Each arm calls `put` with its value as built, so that (inlined) the value is written
/// straight into the attribute list instead of through a temporary.
#[inline(always)]
fn decode_value(
    type_code: u8,
    v: &[u8],
    raw: &[u8],
    neg: &Negotiated,
    put: impl FnOnce(Attr),
) -> Result<(), Box<Error>> {
    use update::*;
    let bad_len = || {
        malformed(
            type_code,
            ATTRIBUTE_LENGTH_ERROR,
            raw,
            "bad attribute length",
        )
    };
    let fixed = |n: usize| {
        if v.len() == n {
            Ok(())
        } else {
            Err(Box::new(bad_len()))
        }
    };
    let multiple = |n: usize| {
        if v.len().is_multiple_of(n) {
            Ok(())
        } else {
            Err(bad_len())
        }
    };
    match type_code {
        code::ORIGIN => {
            fixed(1)?;
            let origin = match v[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => {
                    return Err(Box::new(malformed(
                        type_code,
                        INVALID_ORIGIN_ATTRIBUTE,
                        raw,
                        "undefined ORIGIN value",
                    )));
                }
            };
            put(Attr::Origin { origin })
        }
        // An iBGP route's AS_PATH is empty: no segments to read, nothing to allocate.
        code::AS_PATH if v.is_empty() => put(Attr::AsPath {
            segments: Vec::new(),
        }),
        code::AS_PATH => put(Attr::AsPath {
            segments: decode_segments(v, neg.four_octet_as)
                .ok_or_else(|| malformed(type_code, MALFORMED_AS_PATH, &[], "malformed AS_PATH"))?,
        }),
        code::AS4_PATH => put(Attr::As4Path {
            segments: decode_segments(v, true).ok_or_else(|| {
                malformed(type_code, MALFORMED_AS_PATH, &[], "malformed AS4_PATH")
            })?,
        }),
        code::NEXT_HOP => {
            fixed(4)?;
            put(Attr::NextHop { next_hop: ipv4(v) })
        }
        code::MULTI_EXIT_DISC => {
            fixed(4)?;
            put(Attr::MultiExitDisc { med: be32(v) })
        }
        code::LOCAL_PREF => {
            fixed(4)?;
            put(Attr::LocalPref {
                local_pref: be32(v),
            })
        }
        code::ATOMIC_AGGREGATE => {
            fixed(0)?;
            put(Attr::AtomicAggregate)
        }
        code::AGGREGATOR if neg.four_octet_as => {
            fixed(8)?;
            put(Attr::Aggregator {
                asn: be32(v),
                address: ipv4(&v[4..]),
            })
        }
        code::AGGREGATOR => {
            fixed(6)?;
            put(Attr::Aggregator {
                asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
                address: ipv4(&v[2..]),
            })
        }
        code::AS4_AGGREGATOR => {
            fixed(8)?;
            put(Attr::As4Aggregator {
                asn: be32(v),
                address: ipv4(&v[4..]),
            })
        }
        code::COMMUNITIES => {
            multiple(4)?;
            put(Attr::Communities {
                communities: v.chunks_exact(4).map(|c| Community(be32(c))).collect(),
            })
        }
        code::ORIGINATOR_ID => {
            fixed(4)?;
            put(Attr::OriginatorId {
                originator_id: ipv4(v),
            })
        }
        code::CLUSTER_LIST => {
            multiple(4)?;
            put(Attr::ClusterList {
                cluster_list: v.chunks_exact(4).map(ipv4).collect(),
            })
        }
        code::EXTENDED_COMMUNITIES => {
            multiple(8)?;
            put(Attr::ExtendedCommunities {
                communities: v
                    .chunks_exact(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        ExtCommunity(b)
                    })
                    .collect(),
            })
        }
        code::LARGE_COMMUNITIES => {
            multiple(12)?;
            put(Attr::LargeCommunities {
                communities: v
                    .chunks_exact(12)
                    .map(|c| LargeCommunity([be32(c), be32(&c[4..]), be32(&c[8..])]))
                    .collect(),
            })
        }
        code::MP_REACH_NLRI => put(decode_mp_reach(v, raw, neg)?),
        code::MP_UNREACH_NLRI => {
            if v.len() < 3 {
                return Err(Box::new(bad_len()));
            }
            let (afi, safi) = (Afi(u16::from_be_bytes([v[0], v[1]])), Safi(v[2]));
            if interpreted(afi, safi) {
                put(Attr::MpUnreach(Box::new(MpUnreach {
                    afi,
                    safi,
                    withdrawn: decode_prefixes(&v[3..], afi, add_path(neg, afi))?.into_vec(),
                })))
            } else {
                put(other(type_code, v))
            }
        }
        _ => put(other(type_code, v)),
    }
    Ok(())
}

fn other(type_code: u8, v: &[u8]) -> Attr {
    Attr::Other {
        type_code,
        data: v.to_vec(),
    }
}

/// RFC 4760 §3; RFC 7606 §7.11: any error in it resets the session.
fn decode_mp_reach(v: &[u8], raw: &[u8], neg: &Negotiated) -> Result<Attr, Box<Error>> {
    let bad = |what| {
        malformed(
            code::MP_REACH_NLRI,
            update::OPTIONAL_ATTRIBUTE_ERROR,
            raw,
            what,
        )
    };
    let [a0, a1, safi, nh_len, rest @ ..] = v else {
        return Err(Box::new(bad("MP_REACH_NLRI shorter than its fixed fields")));
    };
    let (afi, safi) = (Afi(u16::from_be_bytes([*a0, *a1])), Safi(*safi));
    if !interpreted(afi, safi) {
        return Ok(other(code::MP_REACH_NLRI, v));
    }
    let nh_len = *nh_len as usize;
    let Some((nh, [reserved, nlri @ ..])) = rest.split_at_checked(nh_len) else {
        return Err(Box::new(bad(
            "MP_REACH_NLRI next hop overruns the attribute",
        )));
    };
    let v6 = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ipv6Addr::from(a)
    };
    let (next_hop, link_local) = match nh_len {
        4 => (IpAddr::V4(ipv4(nh)), None),
        20 => (IpAddr::V4(ipv4(nh)), Some(v6(&nh[4..]))),
        16 => (IpAddr::V6(v6(nh)), None),
        32 => (IpAddr::V6(v6(&nh[..16])), Some(v6(&nh[16..]))),
        _ => {
            return Err(Box::new(bad(
                "MP_REACH_NLRI next hop length is not 4, 16 or 32",
            )));
        }
    };
    Ok(Attr::MpReach(Box::new(MpReach {
        afi,
        safi,
        next_hop,
        link_local,
        reserved: *reserved,
        nlri: decode_prefixes(nlri, afi, add_path(neg, afi))?,
    })))
}

/// Reads the path attributes field of an UPDATE (RFC 4271 §4.3) into `out`; returns the
/// set of type codes below 64 that were read well-formed, as a bit mask.
///
/// Errors that RFC 7606 handles without a reset are collected in `worst` (the most severe
/// one wins, §3 (h)) and the offending attribute is left out; a session reset returns `Err`.
///
/// The loop is written for the common case — a known attribute with the flags its RFC gives
/// it, read once — with every other outcome decided out of line.
pub(crate) fn decode_attributes(
    mut i: &[u8],
    neg: &Negotiated,
    out: &mut Attributes,
    worst: &mut Option<Error>,
) -> Result<u64, Error> {
    // Type codes seen (256 bits), and those below 64 that were seen but not kept.
    let mut seen = [0u64; 4];
    let mut failed = 0u64;
    while let [flag_bits, type_code, rest @ ..] = i {
        let (flag_bits, type_code) = (*flag_bits, *type_code);
        let (len, rest) = match rest {
            [l, r @ ..] if flag_bits & flags::EXTENDED_LENGTH == 0 => (*l as usize, r),
            [h, l, r @ ..] if flag_bits & flags::EXTENDED_LENGTH != 0 => {
                (u16::from_be_bytes([*h, *l]) as usize, r)
            }
            _ => break,
        };
        // RFC 7606 §4: an attribute header or value overrunning the attributes field.
        let Some((value, next)) = rest.split_at_checked(len) else {
            break;
        };
        let raw = &i[..i.len() - next.len()];
        i = next;

        // RFC 7606 §3 (g): repeated attributes; MP_(UN)REACH_NLRI twice resets the session.
        let (word, bit) = ((type_code >> 6) as usize, 1u64 << (type_code & 63));
        if seen[word] & bit != 0 {
            reject(worst, repeated(type_code))?;
            continue;
        }
        seen[word] |= bit;
        let low = if word == 0 { bit } else { 0 };

        // RFC 7606 §3 (c) and RFC 4271 §6.3: flags in conflict with the type, or a type
        // not known at all.
        if flag_bits & (flags::OPTIONAL | flags::TRANSITIVE) != CATEGORY[type_code as usize]
            && !unexpected_flags(type_code, flag_bits, raw, worst)?
        {
            failed |= low;
            continue;
        }
        // The error is boxed: the common, well-formed result stays small.
        let put = |value| {
            out.push(PathAttribute {
                flags: flag_bits,
                value,
            })
        };
        if let Err(e) = decode_value(type_code, value, raw, neg, put) {
            failed |= low;
            reject(worst, *e)?;
        }
    }
    if !i.is_empty() {
        reject(worst, overrun())?;
    }
    Ok(seen[0] & !failed)
}

/// An attribute whose Optional/Transitive bits are not those of its type: either a type
/// wren does not know (kept as bytes when optional: `Ok(true)`; a reset when well-known),
/// or a known type with the wrong bits (RFC 7606 §3 (c): left out, `Ok(false)`).
#[cold]
#[inline(never)]
fn unexpected_flags(
    type_code: u8,
    flag_bits: u8,
    raw: &[u8],
    worst: &mut Option<Error>,
) -> Result<bool, Error> {
    if CATEGORY[type_code as usize] == UNKNOWN {
        if flag_bits & flags::OPTIONAL == 0 {
            return Err(unrecognized_well_known(type_code, raw));
        }
        return Ok(true);
    }
    reject(
        worst,
        malformed(
            type_code,
            update::ATTRIBUTE_FLAGS_ERROR,
            raw,
            "attribute flags conflict with its type",
        ),
    )?;
    Ok(false)
}

// The error paths below are kept out of line: the loop above then carries no error state.

/// An attribute left out of the UPDATE: a session reset ends decoding (`Err`); any other
/// action is noted and decoding goes on.
#[cold]
#[inline(never)]
fn reject(worst: &mut Option<Error>, e: Error) -> Result<(), Error> {
    if e.action == Action::SessionReset {
        return Err(e);
    }
    note(worst, e);
    Ok(())
}

/// RFC 7606 §4: an attribute header or value overrunning the attributes field.
#[cold]
fn overrun() -> Error {
    Error::attribute(
        Action::TreatAsWithdraw,
        update::ATTRIBUTE_LENGTH_ERROR,
        Vec::new(),
        "attribute overruns the path attributes field",
    )
}

/// RFC 7606 §3 (g): a repeated attribute is discarded, except MP_(UN)REACH_NLRI (a reset).
#[cold]
fn repeated(type_code: u8) -> Error {
    let e = malformed(
        type_code,
        update::MALFORMED_ATTRIBUTE_LIST,
        &[],
        "attribute appears twice",
    );
    if e.action == Action::SessionReset {
        return e;
    }
    Error {
        action: Action::AttributeDiscard,
        ..e
    }
}

/// RFC 4271 §6.3: an unrecognized well-known attribute.
#[cold]
fn unrecognized_well_known(type_code: u8, raw: &[u8]) -> Error {
    Error::attribute(
        Action::SessionReset,
        update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
        raw,
        format!("unrecognized well-known attribute {type_code}"),
    )
}

/// Keeps the more severe of two RFC 7606 errors (§3 (h)), the first on a tie.
pub(crate) fn note(worst: &mut Option<Error>, e: Error) {
    if worst.as_ref().is_none_or(|w| e.action > w.action) {
        *worst = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(a: &PathAttribute, neg: &Negotiated) -> Vec<u8> {
        let mut b = BytesMut::new();
        a.encode(neg, &mut b).unwrap();
        b.to_vec()
    }

    fn dec(bytes: &[u8], neg: &Negotiated) -> (Attributes, Option<Error>) {
        let mut out = Attributes::new();
        let mut worst = None;
        decode_attributes(bytes, neg, &mut out, &mut worst).unwrap();
        (out, worst)
    }

    #[test]
    fn canonical_encodings() {
        let neg = Negotiated::default();
        let cases: Vec<(Attr, &[u8])> = vec![
            (
                Attr::Origin {
                    origin: Origin::Igp,
                },
                &[0x40, 1, 1, 0],
            ),
            (Attr::AsPath { segments: vec![] }, &[0x40, 2, 0]),
            (
                Attr::AsPath {
                    segments: vec![Segment {
                        kind: SegmentKind::Sequence,
                        asns: vec![64512, 4200000001],
                    }],
                },
                &[0x40, 2, 10, 2, 2, 0, 0, 0xfc, 0, 0xfa, 0x56, 0xea, 0x01],
            ),
            (
                Attr::NextHop {
                    next_hop: Ipv4Addr::new(198, 51, 100, 1),
                },
                &[0x40, 3, 4, 198, 51, 100, 1],
            ),
            (Attr::MultiExitDisc { med: 5 }, &[0x80, 4, 4, 0, 0, 0, 5]),
            (
                Attr::LocalPref { local_pref: 100 },
                &[0x40, 5, 4, 0, 0, 0, 100],
            ),
            (Attr::AtomicAggregate, &[0x40, 6, 0]),
            (
                Attr::Communities {
                    communities: vec!["65000:100".parse().unwrap()],
                },
                &[0xc0, 8, 4, 0xfd, 0xe8, 0, 100],
            ),
            (
                Attr::LargeCommunities {
                    communities: vec!["64512:1:2".parse().unwrap()],
                },
                &[0xc0, 32, 12, 0, 0, 0xfc, 0, 0, 0, 0, 1, 0, 0, 0, 2],
            ),
        ];
        for (attr, wire) in cases {
            let pa = PathAttribute::new(attr);
            assert_eq!(enc(&pa, &neg), wire, "{pa:?}");
            let (back, worst) = dec(wire, &neg);
            assert!(worst.is_none());
            assert_eq!(back[..], [pa]);
        }
    }

    #[test]
    fn two_octet_as_path_and_as_trans() {
        let neg = Negotiated {
            four_octet_as: false,
            ..Negotiated::default()
        };
        let pa = PathAttribute::new(Attr::AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns: vec![65001, 4200000001],
            }],
        });
        assert_eq!(enc(&pa, &neg), [0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0]);
    }

    #[test]
    fn long_value_switches_to_extended_length_and_back() {
        let neg = Negotiated::default();
        let pa = PathAttribute::new(Attr::Communities {
            communities: (0..100).map(Community).collect(),
        });
        let wire = enc(&pa, &neg);
        assert_eq!(wire[0], 0xd0);
        assert_eq!(u16::from_be_bytes([wire[2], wire[3]]), 400);
        let (back, _) = dec(&wire, &neg);
        assert_eq!(back[0].flags, 0xd0);
        assert_eq!(enc(&back[0], &neg), wire);
        // A short value sent with the extended-length bit keeps it.
        let short = [0x50, 1, 0, 1, 2];
        let (back, _) = dec(&short, &neg);
        assert_eq!(enc(&back[0], &neg), short);
    }

    #[test]
    fn rfc7606_actions() {
        let neg = Negotiated::default();
        let cases: &[(&[u8], Action, u8)] = &[
            (
                &[0x40, 1, 1, 7],
                Action::TreatAsWithdraw,
                update::INVALID_ORIGIN_ATTRIBUTE,
            ),
            (
                &[0x40, 1, 2, 0, 0],
                Action::TreatAsWithdraw,
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                &[0x80, 1, 1, 0],
                Action::TreatAsWithdraw,
                update::ATTRIBUTE_FLAGS_ERROR,
            ),
            (
                &[0x40, 2, 2, 2, 0],
                Action::TreatAsWithdraw,
                update::MALFORMED_AS_PATH,
            ),
            (
                &[0x40, 2, 4, 9, 1, 0, 1],
                Action::TreatAsWithdraw,
                update::MALFORMED_AS_PATH,
            ),
            (
                &[0xc0, 8, 3, 1, 2, 3],
                Action::TreatAsWithdraw,
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                &[0x40, 6, 1, 0],
                Action::AttributeDiscard,
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                &[0xc0, 7, 5, 0, 0, 0, 0, 0],
                Action::AttributeDiscard,
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                &[0x40, 1, 5, 0],
                Action::TreatAsWithdraw,
                update::ATTRIBUTE_LENGTH_ERROR,
            ),
            (
                &[0x40, 1, 1, 0, 0x40, 1, 1, 0],
                Action::AttributeDiscard,
                update::MALFORMED_ATTRIBUTE_LIST,
            ),
        ];
        for (wire, action, subcode) in cases {
            let (_, worst) = dec(wire, &neg);
            let e = worst.unwrap_or_else(|| panic!("no error for {wire:?}"));
            assert_eq!((e.action, e.subcode), (*action, *subcode), "{wire:?}: {e}");
        }
    }

    #[test]
    fn session_resets() {
        let neg = Negotiated::default();
        let resets: &[&[u8]] = &[
            &[0x00, 99, 0],                                // unknown well-known
            &[0x40, 14, 3, 0, 1, 1],                       // MP_REACH flags wrong
            &[0x80, 14, 5, 0, 2, 1, 7, 0],                 // next hop length 7
            &[0x80, 15, 4, 0, 1, 1, 33],                   // bad prefix length
            &[0x80, 15, 3, 0, 2, 1, 0x80, 15, 3, 0, 2, 1], // MP_UNREACH twice
        ];
        for wire in resets {
            let mut out = Attributes::new();
            let e = decode_attributes(wire, &neg, &mut out, &mut None).unwrap_err();
            assert_eq!(e.action, Action::SessionReset, "{wire:?}");
        }
    }

    #[test]
    fn mp_reach_ipv6_with_link_local() {
        let neg = Negotiated::default();
        let pa = PathAttribute::new(Attr::MpReach(Box::new(MpReach {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
            reserved: 0,
            nlri: [Prefix::new("2001:db8:1::40/122".parse().unwrap())].into(),
        })));
        let wire = enc(&pa, &neg);
        assert_eq!(&wire[..7], &[0x80, 14, 4 + 32 + 1 + 17, 0, 2, 1, 32]);
        assert_eq!(dec(&wire, &neg).0[..], [pa]);
    }

    #[test]
    fn other_families_stay_raw() {
        let neg = Negotiated::default();
        // L3VPN (AFI 1, SAFI 128) reach: kept as bytes.
        let wire = [0x80, 14, 6, 0, 1, 128, 0, 0, 0];
        let (back, worst) = dec(&wire, &neg);
        assert!(worst.is_none());
        assert!(matches!(back[0].value, Attr::Other { type_code: 14, .. }));
        assert_eq!(enc(&back[0], &neg), wire);
    }

    /// Only attributes that own nothing may be forgotten by `Attributes`' drop.
    #[test]
    fn owns_no_heap_only_when_nothing_to_free() {
        let empty = Attr::AsPath { segments: vec![] };
        assert!(empty.owns_no_heap());
        assert!(Attr::LocalPref { local_pref: 1 }.owns_no_heap());
        let path = Attr::AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns: vec![1],
            }],
        };
        assert!(!path.owns_no_heap());
        assert!(
            !Attr::Other {
                type_code: 99,
                data: vec![1]
            }
            .owns_no_heap()
        );
        let unreach = Attr::MpUnreach(Box::new(MpUnreach {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
            withdrawn: vec![],
        }));
        assert!(!unreach.owns_no_heap());
        // Lists that did allocate are dropped the ordinary way, emptied or not.
        let mut with_cap = Vec::with_capacity(4);
        with_cap.push(Community(1));
        with_cap.clear();
        assert!(
            !Attr::Communities {
                communities: with_cap
            }
            .owns_no_heap()
        );
    }

    #[test]
    fn community_text() {
        assert_eq!(
            "65535:65535".parse::<Community>().unwrap(),
            Community(u32::MAX)
        );
        assert!("65536:1".parse::<Community>().is_err());
        assert!("1:2:3".parse::<Community>().is_err());
        assert_eq!(LargeCommunity([1, 2, 3]).to_string(), "1:2:3");
        let e: ExtCommunity = "0002fde800000064".parse().unwrap();
        assert_eq!(e.to_string(), "0002fde800000064");
    }
}

//! Address families and prefixes as they appear in NLRI fields (RFC 4271 §4.3, RFC 4760 §5,
//! RFC 7911 §3).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use super::error::Error;
use super::notification::{Code, update};

/// Generates a numeric code type that reads and writes JSON as a name when it has one.
macro_rules! named_code {
    ($(#[$m:meta])* $name:ident($int:ty) { $($(#[$cm:meta])* $konst:ident = $val:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$cm])* pub const $konst: $name = $name($val);)*

            /// The registered name, if this code has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}", self.0),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.name() {
                    Some(n) => s.serialize_str(n),
                    None => self.0.serialize(s),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Repr<'a> {
                    Num($int),
                    Name(&'a str),
                }
                match Repr::deserialize(d)? {
                    Repr::Num(n) => Ok($name(n)),
                    Repr::Name(t) => match t {
                        $($text => Ok($name::$konst),)*
                        _ => Err(serde::de::Error::custom(format!(
                            concat!("unknown ", stringify!($name), " {:?}"), t))),
                    },
                }
            }
        }
    };
}

named_code! {
    /// Address Family Identifier (IANA "Address Family Numbers").
    Afi(u16) {
        IPV4 = 1, "ipv4";
        IPV6 = 2, "ipv6";
    }
}

named_code! {
    /// Subsequent Address Family Identifier (RFC 4760 §6).
    Safi(u8) {
        UNICAST = 1, "unicast";
        MULTICAST = 2, "multicast";
    }
}

/// An AFI/SAFI pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
    };

    /// The unicast family of a prefix.
    pub fn unicast_of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::IPV4_UNICAST,
            IpNet::V6(_) => Family::IPV6_UNICAST,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.afi, self.safi)
    }
}

/// One NLRI entry: a prefix, with its RFC 7911 path identifier when add-path is in use.
///
/// The address is kept as received: bits past the prefix length inside the last octet are
/// not cleared, so re-encoding reproduces the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub net: IpNet,
    pub path_id: Option<u32>,
}

impl Prefix {
    pub fn new(net: IpNet) -> Self {
        Prefix { net, path_id: None }
    }

    /// Encoded size: path identifier, length octet, and the significant address octets.
    pub fn wire_len(&self) -> usize {
        let id = if self.path_id.is_some() { 4 } else { 0 };
        id + 1 + (self.net.prefix_len() as usize).div_ceil(8)
    }

    /// RFC 4271 §4.3: length in bits, then the minimum number of octets holding it (after
    /// the path identifier, RFC 7911 §3). The whole address is copied into `dst`, in one
    /// fixed-size copy; only the first [`Prefix::wire_len`] octets are the encoding.
    fn write(&self, dst: &mut [u8; MAX_WIRE_LEN]) {
        let at = match self.path_id {
            Some(id) => {
                dst[..4].copy_from_slice(&id.to_be_bytes());
                4
            }
            None => 0,
        };
        dst[at] = self.net.prefix_len();
        match self.net {
            IpNet::V4(n) => dst[at + 1..at + 5].copy_from_slice(&n.addr().octets()),
            IpNet::V6(n) => dst[at + 1..at + 17].copy_from_slice(&n.addr().octets()),
        }
    }
}

/// The most octets one prefix's encoding takes: a path identifier, the length, an IPv6
/// address.
const MAX_WIRE_LEN: usize = 4 + 1 + 16;

impl From<IpNet> for Prefix {
    fn from(net: IpNet) -> Self {
        Prefix::new(net)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path_id {
            Some(id) => write!(f, "{} path {id}", self.net),
            None => write!(f, "{}", self.net),
        }
    }
}

/// JSON form: `"192.0.2.0/24"`, or `{"prefix": "192.0.2.0/24", "path_id": 7}` with add-path.
impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.path_id {
            None => self.net.serialize(s),
            Some(path_id) => PrefixWithId {
                prefix: self.net,
                path_id,
            }
            .serialize(s),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PrefixWithId {
    prefix: IpNet,
    path_id: u32,
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Plain(IpNet),
            WithId(PrefixWithId),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Plain(net) => Prefix::new(net),
            Repr::WithId(p) => Prefix {
                net: p.prefix,
                path_id: Some(p.path_id),
            },
        })
    }
}

/// A list of prefixes as an NLRI field carries them. One prefix is kept inline: a Calico
/// UPDATE announces or withdraws a single block, and then decoding it allocates nothing.
pub type Prefixes = SmallVec<[Prefix; 1]>;

/// Reads a whole NLRI field (withdrawn routes, NLRI, or the MP_(UN)REACH prefix list) of
/// family `afi`; `add_path` says whether each entry starts with a path identifier.
///
/// An error here leaves the prefixes unknown, so it resets the session (RFC 7606 §5.3).
#[inline]
pub fn decode_prefixes(i: &[u8], afi: Afi, add_path: bool) -> Result<Prefixes, Error> {
    // Most UPDATEs leave the withdrawn routes or the NLRI field empty.
    if i.is_empty() {
        return Ok(Prefixes::new());
    }
    decode_nonempty(i, afi, add_path)
}

fn decode_nonempty(i: &[u8], afi: Afi, add_path: bool) -> Result<Prefixes, Error> {
    let v4 = afi == Afi::IPV4;
    // A field that is exactly one IPv4 prefix (a Calico UPDATE's NLRI or withdrawal): read
    // it straight into the inline slot. Anything else, well-formed or not, goes the long way.
    if v4
        && !add_path
        && let [len, rest @ ..] = i
        && *len <= 32
        && rest.len() == (*len as usize).div_ceil(8)
    {
        let mut a = [0u8; 4];
        a[..rest.len()].copy_from_slice(rest);
        let net = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), *len));
        return Ok(Prefixes::from_buf([Prefix { net, path_id: None }]));
    }
    // Exact for IPv4 /17–/24 and IPv6 /57–/64 (the common lengths of full tables), over by
    // at most a quarter for IPv4 /25–/32 and single longer prefixes; shorter prefixes cost one
    // reallocation. Constant divisors: no division instruction.
    let want = match (v4, add_path) {
        (true, false) => i.len() / 4,
        (true, true) => i.len() / 8,
        (false, false) => i.len() / 9,
        (false, true) => i.len() / 13,
    };
    let mut out = Prefixes::new();
    if want <= out.inline_size() {
        read_prefixes(i, v4, add_path, |p| out.push(p))?;
    } else {
        // Many prefixes: a plain vector fills faster, and becomes the list without a copy.
        let mut v = Vec::with_capacity(want);
        read_prefixes(i, v4, add_path, |p| v.push(p))?;
        out = Prefixes::from_vec(v);
    }
    Ok(out)
}

/// Reads prefixes one after another to the end of `i`, handing each to `put`.
#[inline(always)]
fn read_prefixes(
    mut i: &[u8],
    v4: bool,
    add_path: bool,
    mut put: impl FnMut(Prefix),
) -> Result<(), Error> {
    let max_bits: u8 = if v4 { 32 } else { 128 };
    while !i.is_empty() {
        let path_id = if add_path {
            let Some((id, rest)) = i.split_first_chunk::<4>() else {
                return Err(bad_nlri("path identifier cut short"));
            };
            i = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let Some((&len, rest)) = i.split_first() else {
            return Err(bad_nlri("prefix length missing after path identifier"));
        };
        if len > max_bits {
            return Err(bad_nlri("prefix length longer than the address"));
        }
        let n = (len as usize).div_ceil(8);
        if rest.len() < n {
            return Err(bad_nlri("prefix cut short"));
        }
        let net = if v4 {
            // Read four octets when there are four (the common case) and keep the first n;
            // no variable-length copy.
            let a = match rest.first_chunk::<4>() {
                Some(w) => u32::from_be_bytes(*w) & V4_MASK[n],
                None => {
                    let mut a = [0u8; 4];
                    a[..n].copy_from_slice(&rest[..n]);
                    u32::from_be_bytes(a)
                }
            };
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), len))
        } else {
            let a = match rest.first_chunk::<16>() {
                Some(w) => u128::from_be_bytes(*w) & v6_mask(n),
                None => {
                    let mut a = [0u8; 16];
                    a[..n].copy_from_slice(&rest[..n]);
                    u128::from_be_bytes(a)
                }
            };
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(a), len))
        };
        put(Prefix { net, path_id });
        i = &rest[n..];
    }
    Ok(())
}

const V4_MASK: [u32; 5] = [0, 0xff00_0000, 0xffff_0000, 0xffff_ff00, 0xffff_ffff];

fn v6_mask(n: usize) -> u128 {
    if n == 0 {
        0
    } else {
        u128::MAX << (128 - 8 * n)
    }
}

/// RFC 4271 §6.3: a syntactically incorrect NLRI field is an Invalid Network Field.
fn bad_nlri(reason: &str) -> Error {
    Error::reset(
        Code::Update,
        update::INVALID_NETWORK_FIELD,
        Vec::new(),
        format!("malformed NLRI: {reason}"),
    )
}

/// Writes prefixes one after another.
pub fn encode_prefixes(prefixes: &[Prefix], buf: &mut BytesMut) {
    put_prefixes(prefixes, prefixes.iter().map(Prefix::wire_len).sum(), buf);
}

/// [`encode_prefixes`] of prefixes whose encodings take `len` octets together: the buffer
/// grows once, with room past the end for the last prefix's whole address, and what is
/// past the last encoding is cut.
pub(super) fn put_prefixes(prefixes: &[Prefix], len: usize, buf: &mut BytesMut) {
    let mut at = buf.len();
    buf.resize(at + len + MAX_WIRE_LEN, 0);
    for p in prefixes {
        let room = buf.get_mut(at..).and_then(|b| b.first_chunk_mut());
        let Some(dst) = room else { break };
        p.write(dst);
        at += p.wire_len();
    }
    buf.truncate(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::new(s.parse().unwrap())
    }

    #[test]
    fn round_trip_v4_and_v6() {
        let v = vec![p("203.0.113.64/26"), p("0.0.0.0/0"), p("198.51.100.7/32")];
        let mut b = BytesMut::new();
        encode_prefixes(&v, &mut b);
        assert_eq!(&b[..], &[26, 203, 0, 113, 64, 0, 32, 198, 51, 100, 7]);
        assert_eq!(decode_prefixes(&b, Afi::IPV4, false).unwrap()[..], v);

        let v6 = vec![p("2001:db8:1::40/122")];
        let mut b = BytesMut::new();
        encode_prefixes(&v6, &mut b);
        assert_eq!(b.len(), 1 + 16);
        assert_eq!(decode_prefixes(&b, Afi::IPV6, false).unwrap()[..], v6);
    }

    #[test]
    fn add_path_identifiers() {
        let mut x = p("203.0.113.0/26");
        x.path_id = Some(7);
        let mut b = BytesMut::new();
        encode_prefixes(&[x], &mut b);
        assert_eq!(&b[..], &[0, 0, 0, 7, 26, 203, 0, 113, 0]);
        assert_eq!(decode_prefixes(&b, Afi::IPV4, true).unwrap()[..], [x]);
        // Without add-path the same bytes are a different (bad) field.
        assert!(decode_prefixes(&b, Afi::IPV4, false).is_err());
    }

    /// Each prefix is copied as a whole address and the cursor moved by its encoding's
    /// length: what follows the last one is cut, and what the buffer held before is kept.
    /// Every length from /0 to the full address, both families, with and without path
    /// identifiers, gives the octets written one field at a time.
    #[test]
    fn prefixes_append_exactly_their_encodings() {
        let mut v = Vec::new();
        for len in 0..=32u8 {
            let mut x = Prefix::new(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 255), len).unwrap(),
            ));
            x.path_id = (len % 3 == 0).then_some(u32::from(len) << 20 | 9);
            v.push(x);
        }
        for len in (0..=128u8).step_by(7).chain([128]) {
            let a: Ipv6Addr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
            let mut x = Prefix::new(IpNet::V6(Ipv6Net::new(a, len).unwrap()));
            x.path_id = (len % 2 == 0).then_some(0xfeed_0000 | u32::from(len));
            v.push(x);
        }
        let mut want = b"before".to_vec();
        for x in &v {
            if let Some(id) = x.path_id {
                want.extend(id.to_be_bytes());
            }
            let n = (x.net.prefix_len() as usize).div_ceil(8);
            want.push(x.net.prefix_len());
            match x.net {
                IpNet::V4(a) => want.extend(&a.addr().octets()[..n]),
                IpNet::V6(a) => want.extend(&a.addr().octets()[..n]),
            }
        }
        let mut b = BytesMut::from(&b"before"[..]);
        encode_prefixes(&v, &mut b);
        assert_eq!(&b[..], &want[..]);
        assert_eq!(b.len(), 6 + v.iter().map(Prefix::wire_len).sum::<usize>());
    }

    #[test]
    fn host_bits_kept() {
        let b = [24u8, 192, 0, 2];
        let d = decode_prefixes(&b[..], Afi::IPV4, false).unwrap();
        let mut b2 = BytesMut::new();
        encode_prefixes(&d, &mut b2);
        assert_eq!(&b2[..], &b[..]);
        let odd = [25u8, 192, 0, 2, 0xff];
        let d = decode_prefixes(&odd[..], Afi::IPV4, false).unwrap();
        let mut b2 = BytesMut::new();
        encode_prefixes(&d, &mut b2);
        assert_eq!(&b2[..], &odd[..]);
    }

    #[test]
    fn malformed() {
        for bad in [&[33u8, 1, 2, 3, 4, 5][..], &[24, 1, 2], &[8]] {
            let e = decode_prefixes(bad, Afi::IPV4, false).unwrap_err();
            assert_eq!((e.code, e.subcode), (3, update::INVALID_NETWORK_FIELD));
        }
        assert!(decode_prefixes(&[0, 0, 7], Afi::IPV4, true).is_err());
        assert!(decode_prefixes(&[129], Afi::IPV6, false).is_err());
    }

    #[test]
    fn json_forms() {
        let mut x = p("2001:db8::/32");
        assert_eq!(serde_json::to_string(&x).unwrap(), "\"2001:db8::/32\"");
        x.path_id = Some(3);
        let j = serde_json::to_string(&x).unwrap();
        assert_eq!(j, r#"{"prefix":"2001:db8::/32","path_id":3}"#);
        assert_eq!(serde_json::from_str::<Prefix>(&j).unwrap(), x);
        assert_eq!(serde_json::to_string(&Afi(25)).unwrap(), "25");
        assert_eq!(
            serde_json::from_str::<Safi>("\"unicast\"").unwrap(),
            Safi::UNICAST
        );
    }
}

//! Property tests of the codec: any message → encode → decode gives it back, and the bytes of
//! any decodable message re-encode to themselves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;
use wren::wire::attr::{
    Community, ExtCommunity, LargeCommunity, MpReach, MpUnreach, Origin, Segment, SegmentKind,
    code, flags,
};
use wren::wire::open::{AddPathFamily, GrFamily, GracefulRestart, LlgrFamily, OptParam};
use wren::wire::{
    Action, Afi, Attr, Capability, Message, Negotiated, Notification, Open, PathAttribute, Prefix,
    Safi, Update, decode, frame,
};

fn negotiated() -> impl Strategy<Value = Negotiated> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c, d)| {
        Negotiated {
            four_octet_as: a,
            add_path_ipv4: b,
            add_path_ipv6: c,
            extended_message: d,
        }
    })
}

/// A prefix as the wire can carry it: address octets past the length's last octet are zero.
fn prefix(afi: Afi, add_path: bool) -> impl Strategy<Value = Prefix> {
    let id = if add_path {
        any::<u32>().prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    let net = if afi == Afi::IPV4 {
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(mut a, len)| {
                a[(len as usize).div_ceil(8)..].fill(0);
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), len))
            })
            .boxed()
    } else {
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(mut a, len)| {
                a[(len as usize).div_ceil(8)..].fill(0);
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(a), len))
            })
            .boxed()
    };
    (net, id).prop_map(|(net, path_id)| Prefix { net, path_id })
}

fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    }
}

fn segments(four_octet: bool) -> impl Strategy<Value = Vec<Segment>> {
    let kind = prop_oneof![
        Just(SegmentKind::Set),
        Just(SegmentKind::Sequence),
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet)
    ];
    vec(
        (kind, vec(asn(four_octet), 1..12)).prop_map(|(kind, asns)| Segment { kind, asns }),
        0..4,
    )
}

fn family() -> impl Strategy<Value = (Afi, Safi)> {
    (
        prop_oneof![Just(Afi::IPV4), Just(Afi::IPV6)],
        prop_oneof![Just(Safi::UNICAST), Just(Safi::MULTICAST)],
    )
}

fn add_path_for(neg: &Negotiated, afi: Afi) -> bool {
    if afi == Afi::IPV4 {
        neg.add_path_ipv4
    } else {
        neg.add_path_ipv6
    }
}

fn attr(neg: Negotiated) -> impl Strategy<Value = Attr> {
    let four = neg.four_octet_as;
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    let mp_reach = family().prop_flat_map(move |(afi, safi)| {
        let nh = prop_oneof![
            any::<[u8; 4]>().prop_map(|a| IpAddr::V4(a.into())),
            any::<[u8; 16]>().prop_map(|a| IpAddr::V6(a.into()))
        ];
        let ll = proptest::option::of(any::<[u8; 16]>().prop_map(Ipv6Addr::from));
        (
            nh,
            ll,
            any::<u8>(),
            vec(prefix(afi, add_path_for(&neg, afi)), 0..6),
        )
            .prop_map(move |(next_hop, link_local, reserved, nlri)| {
                Attr::MpReach(Box::new(MpReach {
                    afi,
                    safi,
                    next_hop,
                    link_local,
                    reserved,
                    nlri: nlri.into(),
                }))
            })
    });
    let mp_unreach = family().prop_flat_map(move |(afi, safi)| {
        vec(prefix(afi, add_path_for(&neg, afi)), 0..6).prop_map(move |withdrawn| {
            Attr::MpUnreach(Box::new(MpUnreach {
                afi,
                safi,
                withdrawn,
            }))
        })
    });
    let known = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];
    prop_oneof![
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]
        .prop_map(|origin| Attr::Origin { origin }),
        segments(four).prop_map(|segments| Attr::AsPath { segments }),
        segments(true).prop_map(|segments| Attr::As4Path { segments }),
        v4.clone().prop_map(|next_hop| Attr::NextHop { next_hop }),
        any::<u32>().prop_map(|med| Attr::MultiExitDisc { med }),
        any::<u32>().prop_map(|local_pref| Attr::LocalPref { local_pref }),
        Just(Attr::AtomicAggregate),
        (asn(four), v4.clone()).prop_map(|(asn, address)| Attr::Aggregator { asn, address }),
        (any::<u32>(), v4.clone()).prop_map(|(asn, address)| Attr::As4Aggregator { asn, address }),
        vec(any::<u32>().prop_map(Community), 0..8)
            .prop_map(|communities| Attr::Communities { communities }),
        v4.clone()
            .prop_map(|originator_id| Attr::OriginatorId { originator_id }),
        vec(v4, 0..5).prop_map(|cluster_list| Attr::ClusterList { cluster_list }),
        vec(any::<[u8; 8]>().prop_map(ExtCommunity), 0..5)
            .prop_map(|communities| Attr::ExtendedCommunities { communities }),
        vec(any::<[u32; 3]>().prop_map(LargeCommunity), 0..5)
            .prop_map(|communities| Attr::LargeCommunities { communities }),
        mp_reach,
        mp_unreach,
        (
            any::<u8>().prop_filter("unknown code", move |c| !known.contains(c)),
            vec(any::<u8>(), 0..300)
        )
            .prop_map(|(type_code, data)| Attr::Other { type_code, data }),
    ]
}

/// Canonical flags plus arbitrary partial, extended-length and unused low bits.
fn path_attribute(neg: Negotiated) -> impl Strategy<Value = PathAttribute> {
    (
        attr(neg),
        any::<bool>(),
        any::<bool>(),
        0u8..16,
        any::<bool>(),
    )
        .prop_map(|(value, partial, ext, low, transitive)| {
            let mut pa = PathAttribute::new(value);
            if matches!(pa.value, Attr::Other { .. }) {
                pa.flags = flags::OPTIONAL | if transitive { flags::TRANSITIVE } else { 0 };
            }
            pa.flags |= if partial { flags::PARTIAL } else { 0 }
                | if ext { flags::EXTENDED_LENGTH } else { 0 }
                | low;
            pa
        })
}

fn update(neg: Negotiated) -> impl Strategy<Value = Update> {
    (
        vec(prefix(Afi::IPV4, neg.add_path_ipv4), 0..8),
        vec(path_attribute(neg), 0..8),
        vec(prefix(Afi::IPV4, neg.add_path_ipv4), 0..8),
    )
        .prop_map(|(withdrawn, attrs, nlri)| {
            // One attribute of each type, as RFC 7606 §3 (g) expects.
            let mut seen = std::collections::HashSet::new();
            let attributes = attrs
                .into_iter()
                .filter(|a| seen.insert(a.type_code()))
                .collect();
            Update {
                withdrawn: withdrawn.into(),
                attributes,
                nlri: nlri.into(),
            }
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    let fam = (any::<u16>().prop_map(Afi), any::<u8>().prop_map(Safi));
    let known = [1u8, 2, 6, 64, 65, 69, 70, 71, 73];
    prop_oneof![
        fam.clone()
            .prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(|asn| Capability::FourOctetAs { asn }),
        (0u8..16, 0u16..4096, vec((fam.clone(), any::<u8>()), 0..4)).prop_map(
            |(flags, restart_time, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    flags,
                    restart_time,
                    families: f
                        .into_iter()
                        .map(|((afi, safi), flags)| GrFamily { afi, safi, flags })
                        .collect(),
                })
            }
        ),
        vec((fam.clone(), any::<u8>()), 0..4).prop_map(|f| Capability::AddPath {
            families: f
                .into_iter()
                .map(|((afi, safi), mode)| AddPathFamily { afi, safi, mode })
                .collect(),
        }),
        vec((fam, any::<u8>(), 0u32..(1 << 24)), 0..4).prop_map(|f| {
            Capability::LongLivedGracefulRestart {
                families: f
                    .into_iter()
                    .map(|((afi, safi), flags, stale_time)| LlgrFamily {
                        afi,
                        safi,
                        flags,
                        stale_time,
                    })
                    .collect(),
            }
        }),
        ("[a-z0-9.-]{0,60}", "[a-zé.]{0,40}")
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            any::<u8>().prop_filter("unknown", move |c| !known.contains(c)),
            vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, data)| Capability::Other { code, data }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    let param = prop_oneof![
        4 => vec(capability(), 0..6).prop_map(|capabilities| OptParam::Capabilities { capabilities }),
        1 => (any::<u8>().prop_filter("not capabilities or RFC 9072", |t| *t != 2 && *t != 255),
              vec(any::<u8>(), 0..10))
            .prop_map(|(param_type, data)| OptParam::Other { param_type, data }),
    ];
    (
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u8; 4]>(),
        vec(param, 0..5),
        any::<bool>(),
    )
        .prop_map(
            |(version, my_as, hold_time, id, params, extended_params)| Open {
                version,
                my_as,
                hold_time,
                bgp_id: id.into(),
                params,
                extended_params,
            },
        )
}

fn message(neg: Negotiated) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(neg).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..40)).prop_map(|(code, subcode, data)| {
            Message::Notification(Notification {
                code,
                subcode,
                data,
            })
        }),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
            Message::RouteRefresh(wren::wire::RouteRefresh {
                afi: Afi(afi),
                subtype,
                safi: Safi(safi),
            })
        }),
    ]
}

fn with_negotiated() -> impl Strategy<Value = (Negotiated, Message)> {
    negotiated().prop_flat_map(|neg| (Just(neg), message(neg)))
}

/// An UPDATE that announces routes without ORIGIN/AS_PATH/NEXT_HOP is treat-as-withdraw, but
/// what it carried is still returned whole.
fn decode_lossless(bytes: &[u8], neg: &Negotiated) -> Message {
    match decode(bytes, neg) {
        Ok(m) => m,
        Err(e) if e.action == Action::TreatAsWithdraw && e.subcode == 3 => {
            Message::Update(*e.update.expect("salvaged update"))
        }
        Err(e) => panic!("decode failed: {e}\n{}", hex::encode(bytes)),
    }
}

/// The encoder switches to the long length forms when a value needs them, whatever the
/// message asked for: the extended-length attribute flag, and RFC 9072 OPEN parameters.
fn with_forced_lengths(mut msg: Message, bytes: &[u8], neg: &Negotiated) -> Message {
    match &mut msg {
        Message::Open(o) => o.extended_params |= bytes[28] == 255 && bytes[29] == 255,
        Message::Update(u) => {
            for a in &mut u.attributes {
                let mut b = bytes::BytesMut::new();
                a.encode(neg, &mut b).unwrap();
                a.flags = b[0];
            }
        }
        _ => {}
    }
    msg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_gives_the_message((neg, msg) in with_negotiated()) {
        let Ok(bytes) = msg.to_bytes(&neg) else {
            // Larger than the negotiated maximum: refusing is the right answer.
            return Ok(());
        };
        prop_assert_eq!(frame(&bytes, &neg).unwrap(), Some(bytes.len()));
        prop_assert_eq!(decode_lossless(&bytes, &neg), with_forced_lengths(msg, &bytes, &neg));
    }

    #[test]
    fn decode_then_encode_gives_the_bytes((neg, msg) in with_negotiated()) {
        let Ok(bytes) = msg.to_bytes(&neg) else { return Ok(()); };
        let again = decode_lossless(&bytes, &neg).to_bytes(&neg).unwrap();
        prop_assert_eq!(hex::encode(again), hex::encode(&bytes));
    }

    /// Flipping any byte of a valid message never panics, and whatever still decodes
    /// re-encodes to exactly the bytes it came from.
    #[test]
    fn mutated_messages((neg, msg) in with_negotiated(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let Ok(mut bytes) = msg.to_bytes(&neg) else { return Ok(()); };
        let i = at.index(bytes.len());
        bytes[i] = to;
        if let Ok(m) = decode(&bytes, &neg) {
            prop_assert_eq!(hex::encode(m.to_bytes(&neg).unwrap()), hex::encode(&bytes));
        }
    }

    #[test]
    fn truncated_messages_never_panic((neg, msg) in with_negotiated(), cut in any::<prop::sample::Index>()) {
        let Ok(bytes) = msg.to_bytes(&neg) else { return Ok(()); };
        let short = &bytes[..cut.index(bytes.len())];
        let _ = frame(short, &neg);
        prop_assert!(decode(short, &neg).is_err());
    }
}

#[test]
fn attribute_type_codes_match_values() {
    assert_eq!(
        PathAttribute::new(Attr::AtomicAggregate).type_code(),
        code::ATOMIC_AGGREGATE
    );
}

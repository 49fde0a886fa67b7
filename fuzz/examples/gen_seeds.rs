//! Writes the seed inputs in `fuzz/seeds/<target>/` with the codec itself.
//!
//! Run from the `fuzz` directory: `cargo run --example gen_seeds`. Each seed is a selector
//! byte (see `wren_fuzz::negotiated`) followed by one or more encoded messages.

use std::fs;
use std::path::Path;

use wren::wire::attr::{
    Community, ExtCommunity, LargeCommunity, MpReach, MpUnreach, Origin, Segment, SegmentKind,
};
use wren::wire::notification::cease;
use wren::wire::open::{AddPathFamily, GrFamily, GracefulRestart, LlgrFamily, OptParam};
use wren::wire::{
    Afi, Attr, Capability, Family, Message, Negotiated, Notification, Open, PathAttribute, Prefix,
    RouteRefresh, Safi, Update,
};
use wren_fuzz::selector;

const TARGETS: &[&str] = &["decode", "round_trip"];

fn p(s: &str) -> Prefix {
    Prefix::new(s.parse().unwrap())
}

fn pa(a: Attr) -> PathAttribute {
    PathAttribute::new(a)
}

fn seq(asns: &[u32]) -> Vec<Segment> {
    vec![Segment {
        kind: SegmentKind::Sequence,
        asns: asns.to_vec(),
    }]
}

fn open() -> Open {
    let fam = |afi, safi| AddPathFamily {
        afi,
        safi,
        mode: AddPathFamily::RECEIVE | AddPathFamily::SEND,
    };
    Open {
        version: 4,
        my_as: 23456,
        hold_time: 90,
        bgp_id: "192.0.2.1".parse().unwrap(),
        params: vec![OptParam::Capabilities {
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::Multiprotocol {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                },
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::ExtendedMessage,
                Capability::FourOctetAs { asn: 4200000001 },
                Capability::AddPath {
                    families: vec![fam(Afi::IPV4, Safi::UNICAST), fam(Afi::IPV6, Safi::UNICAST)],
                },
                Capability::GracefulRestart(GracefulRestart {
                    flags: GracefulRestart::NOTIFICATION,
                    restart_time: 120,
                    families: vec![GrFamily {
                        afi: Afi::IPV4,
                        safi: Safi::UNICAST,
                        flags: GrFamily::FORWARDING,
                    }],
                }),
                Capability::LongLivedGracefulRestart {
                    families: vec![LlgrFamily {
                        afi: Afi::IPV6,
                        safi: Safi::UNICAST,
                        flags: 0,
                        stale_time: 3600,
                    }],
                },
                Capability::Fqdn {
                    hostname: "node-1".into(),
                    domain: "cluster.local".into(),
                },
            ],
        }],
        extended_params: false,
    }
}

/// The small iBGP UPDATE Calico's BIRD sends: one IPv4 /26.
fn calico_v4() -> Update {
    Update {
        attributes: vec![
            pa(Attr::Origin {
                origin: Origin::Igp,
            }),
            pa(Attr::AsPath { segments: vec![] }),
            pa(Attr::NextHop {
                next_hop: "10.0.0.11".parse().unwrap(),
            }),
            pa(Attr::LocalPref { local_pref: 100 }),
        ]
        .into(),
        nlri: [p("192.168.17.64/26")].into(),
        ..Update::default()
    }
}

fn mp_v6(nlri: Vec<Prefix>) -> Update {
    Update {
        attributes: vec![
            pa(Attr::Origin {
                origin: Origin::Igp,
            }),
            pa(Attr::AsPath { segments: vec![] }),
            pa(Attr::LocalPref { local_pref: 100 }),
            pa(Attr::MpReach(Box::new(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: "2001:db8::11".parse().unwrap(),
                link_local: Some("fe80::11".parse().unwrap()),
                reserved: 0,
                nlri: nlri.into(),
            }))),
        ]
        .into(),
        ..Update::default()
    }
}

fn ebgp_v4() -> Update {
    Update {
        withdrawn: vec![p("198.51.100.0/24"), p("203.0.113.128/25")].into(),
        attributes: vec![
            pa(Attr::Origin {
                origin: Origin::Incomplete,
            }),
            pa(Attr::AsPath {
                segments: vec![
                    Segment {
                        kind: SegmentKind::Sequence,
                        asns: vec![64512, 4200000001, 65001],
                    },
                    Segment {
                        kind: SegmentKind::Set,
                        asns: vec![65010, 65011],
                    },
                ],
            }),
            pa(Attr::NextHop {
                next_hop: "198.51.100.1".parse().unwrap(),
            }),
            pa(Attr::MultiExitDisc { med: 50 }),
            pa(Attr::AtomicAggregate),
            pa(Attr::Aggregator {
                asn: 4200000001,
                address: "198.51.100.9".parse().unwrap(),
            }),
            pa(Attr::Communities {
                communities: vec![Community(0xfde8_0064), Community(0xffff_ff01)],
            }),
            pa(Attr::OriginatorId {
                originator_id: "192.0.2.7".parse().unwrap(),
            }),
            pa(Attr::ClusterList {
                cluster_list: vec!["192.0.2.1".parse().unwrap()],
            }),
            pa(Attr::ExtendedCommunities {
                communities: vec![ExtCommunity([0, 2, 0xfd, 0xe8, 0, 0, 0, 100])],
            }),
            pa(Attr::LargeCommunities {
                communities: vec![LargeCommunity([4200000001, 1, 2])],
            }),
            pa(Attr::Other {
                type_code: 99,
                data: vec![1, 2, 3],
            }),
        ]
        .into(),
        nlri: vec![
            p("0.0.0.0/0"),
            p("10.0.0.0/8"),
            p("192.0.2.1/32"),
            p("100.64.0.0/10"),
        ]
        .into(),
    }
}

/// 2-octet AS session: AS_TRANS in AS_PATH and AGGREGATOR, real AS numbers in AS4_*.
fn as2_v4() -> Update {
    Update {
        attributes: vec![
            pa(Attr::Origin {
                origin: Origin::Egp,
            }),
            pa(Attr::AsPath {
                segments: seq(&[65001, 23456]),
            }),
            pa(Attr::NextHop {
                next_hop: "198.51.100.1".parse().unwrap(),
            }),
            pa(Attr::Aggregator {
                asn: 23456,
                address: "198.51.100.9".parse().unwrap(),
            }),
            pa(Attr::As4Path {
                segments: seq(&[65001, 4200000001]),
            }),
            pa(Attr::As4Aggregator {
                asn: 4200000001,
                address: "198.51.100.9".parse().unwrap(),
            }),
        ]
        .into(),
        nlri: [p("203.0.113.0/24")].into(),
        ..Update::default()
    }
}

fn with_ids(mut v: Vec<Prefix>) -> Vec<Prefix> {
    for (i, x) in v.iter_mut().enumerate() {
        x.path_id = Some(i as u32 + 1);
    }
    v
}

fn enc(neg: &Negotiated, msgs: &[Message]) -> Vec<u8> {
    let mut out = vec![selector(neg)];
    for m in msgs {
        out.extend(m.to_bytes(neg).unwrap());
    }
    out
}

fn main() {
    let four = Negotiated::default();
    let two = Negotiated {
        four_octet_as: false,
        ..four
    };
    let ap4 = Negotiated {
        add_path_ipv4: true,
        ..four
    };
    let ap6 = Negotiated {
        add_path_ipv6: true,
        ..four
    };
    let ext = Negotiated {
        extended_message: true,
        ..four
    };
    let up = Message::Update;

    let mut big = ebgp_v4();
    big.nlri = (0..1200u32)
        .map(|i| p(&format!("10.{}.{}.0/24", i / 256, i % 256)))
        .collect();

    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("keepalive", enc(&four, &[Message::Keepalive])),
        ("open", enc(&four, &[Message::Open(open())])),
        ("update-calico-v4", enc(&four, &[up(calico_v4())])),
        (
            "update-mp-reach-v6",
            enc(
                &four,
                &[up(mp_v6(vec![
                    p("2001:db8:17::40/122"),
                    p("2001:db8::/32"),
                ]))],
            ),
        ),
        ("update-ebgp-v4", enc(&four, &[up(ebgp_v4())])),
        ("update-as2", enc(&two, &[up(as2_v4())])),
        (
            "update-add-path-v4",
            enc(
                &ap4,
                &[up(Update {
                    withdrawn: with_ids(vec![p("192.168.3.0/26")]).into(),
                    nlri: with_ids(vec![p("192.168.17.64/26"), p("192.168.17.0/26")]).into(),
                    ..calico_v4()
                })],
            ),
        ),
        (
            "update-add-path-v6",
            enc(&ap6, &[up(mp_v6(with_ids(vec![p("2001:db8:17::40/122")])))]),
        ),
        (
            "update-mp-unreach-v6",
            enc(
                &four,
                &[up(Update {
                    attributes: vec![pa(Attr::MpUnreach(Box::new(MpUnreach {
                        afi: Afi::IPV6,
                        safi: Safi::UNICAST,
                        withdrawn: vec![p("2001:db8:17::40/122")],
                    })))]
                    .into(),
                    ..Update::default()
                })],
            ),
        ),
        (
            "end-of-rib",
            enc(
                &four,
                &[
                    up(Update::end_of_rib_for(Family::IPV4_UNICAST)),
                    up(Update::end_of_rib_for(Family::IPV6_UNICAST)),
                ],
            ),
        ),
        (
            "notification",
            enc(
                &four,
                &[Message::Notification(Notification::shutdown(
                    cease::ADMINISTRATIVE_SHUTDOWN,
                    "maintenance",
                ))],
            ),
        ),
        (
            "route-refresh",
            enc(
                &four,
                &[Message::RouteRefresh(RouteRefresh {
                    afi: Afi::IPV6,
                    subtype: RouteRefresh::BORR,
                    safi: Safi::UNICAST,
                })],
            ),
        ),
        ("update-extended-message", enc(&ext, &[up(big)])),
        (
            "session",
            enc(
                &four,
                &[
                    Message::Open(open()),
                    Message::Keepalive,
                    up(calico_v4()),
                    up(mp_v6(vec![p("2001:db8:17::40/122")])),
                    up(Update::end_of_rib_for(Family::IPV4_UNICAST)),
                    Message::Keepalive,
                ],
            ),
        ),
    ];

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in TARGETS {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes).unwrap();
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
}

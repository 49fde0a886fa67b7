//! A raw-socket client sends wrend malformed messages over loopback and checks the
//! NOTIFICATION that comes back, while another peer's session stays Established throughout.
//! Needs no privileges: wrend listens on 127.0.0.1 at a free port, peers dial from other
//! 127.0.0.0/8 addresses.

use std::net::Ipv4Addr;
use std::time::Duration;

use wren::wire::attr::Origin;
use wren::wire::open::OptParam;
use wren::wire::{Attr, Capability, Message, Negotiated, Open, PathAttribute, Prefix, Update};

mod harness;
use harness::bgp::{self, Raw};
use harness::loopback::{Wrend, wait_for};

const ASN: u32 = 64512;
/// Peer addresses: .3 is the well-behaved peer, .10 and up one per malformed case.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// wrend's config: every peer passive, the good one and one per case; `last` is added to
/// the last peer's table.
fn config(port: u16, cases: usize, last: &str) -> String {
    let mut cfg = format!(
        "router_id = \"127.0.0.1\"\nasn = {ASN}\noriginate = [\"203.0.113.0/26\"]\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.1\"]\nport = {port}\n\
         [defaults]\npassive = true\nhold_time = 30\nerror_wait = [1, 1]\n"
    );
    for i in 0..=cases {
        let addr = if i == 0 { GOOD } else { case_addr(i - 1) };
        cfg.push_str(&format!(
            "[[peer]]\nname = \"p{i}\"\naddress = \"{addr}\"\nasn = {ASN}\n"
        ));
    }
    cfg.push_str(last);
    cfg
}

fn case_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// The OPEN every case's peer sends (iBGP, hold time 30).
fn open(id: Ipv4Addr) -> Open {
    bgp::open(ASN, id, 30, &[])
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v
}

/// An UPDATE with the given body after the header.
fn update(body: &[u8]) -> Vec<u8> {
    let mut v = header((19 + body.len()) as u16, 2);
    v.extend_from_slice(body);
    v
}

fn open_bytes(change: impl Fn(&mut Open)) -> Vec<u8> {
    let mut o = open(Ipv4Addr::new(192, 0, 2, 99));
    change(&mut o);
    Message::Open(o)
        .to_bytes(&Negotiated::default())
        .expect("encode OPEN")
}

/// An OPEN whose capabilities are IPv4 unicast, the 4-octet AS (unless `code` is its code)
/// and capability `code` with `value` as it is, whatever its length.
fn open_with_capability(code: u8, value: &[u8]) -> Vec<u8> {
    open_bytes(|o| {
        let mut capabilities = vec![Capability::Multiprotocol {
            afi: wren::wire::Afi::IPV4,
            safi: wren::wire::Safi::UNICAST,
        }];
        if code != 65 {
            capabilities.push(Capability::FourOctetAs { asn: ASN });
        }
        capabilities.push(Capability::Other {
            code,
            data: value.to_vec(),
        });
        o.params = vec![OptParam::Capabilities { capabilities }];
    })
}

/// RFC 4271 §6.2, as BIRD answers a known capability of the wrong length (RFC 5492 §4
/// leaves the value to each capability's RFC): OPEN Message Error, subcode 0, no data.
fn bad_capability(name: &'static str, code: u8, value: &[u8]) -> Case {
    Case {
        name,
        established_first: false,
        bytes: open_with_capability(code, value),
        expect: Some((2, 0)),
        expect_data: Some(&[]),
    }
}

/// What a case sends, and whether it does so after the OPEN exchange.
struct Case {
    name: &'static str,
    established_first: bool,
    bytes: Vec<u8>,
    /// Expected NOTIFICATION code and subcode; None: the session must stay up.
    expect: Option<(u8, u8)>,
    /// When given, the NOTIFICATION's data: its bytes on the wire are checked whole.
    expect_data: Option<&'static [u8]>,
}

fn cases() -> Vec<Case> {
    let mut cases = capability_cases();
    cases.extend(message_cases());
    cases
}

/// Every capability wren reads, at a length its RFC does not allow, and capabilities wren
/// does not know, which are ignored at any length (RFC 5492 §5).
fn capability_cases() -> Vec<Case> {
    vec![
        bad_capability("4-octet AS capability of 2 octets", 65, &[0xfc, 0x00]),
        bad_capability("multiprotocol capability of 3 octets", 1, &[0, 1, 0]),
        bad_capability("route refresh capability of 1 octet", 2, &[0]),
        bad_capability("extended message capability of 1 octet", 6, &[0]),
        bad_capability(
            "graceful restart capability of 4 octets",
            64,
            &[0, 120, 0, 1],
        ),
        bad_capability("add-path capability of 3 octets", 69, &[0, 1, 1]),
        bad_capability("enhanced route refresh capability of 1 octet", 70, &[0]),
        bad_capability(
            "long-lived GR capability of 6 octets",
            71,
            &[0, 1, 1, 0, 0, 9],
        ),
        bad_capability(
            "hostname capability shorter than its hostname",
            73,
            &[5, b'a', 0],
        ),
        Case {
            name: "unknown capabilities of odd lengths (ignored)",
            established_first: false,
            bytes: open_with_capability(9, &[1, 2, 3]),
            expect: None,
            expect_data: None,
        },
    ]
}

fn message_cases() -> Vec<Case> {
    let mut bad_marker = header(19, 4);
    bad_marker[5] = 0;
    // ORIGIN ok, AS_PATH empty, NEXT_HOP, then NLRI 203.0.113.64/26.
    let good_attrs: &[u8] = &[0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 127, 0, 0, 12];
    let with_attrs = |attrs: &[u8], nlri: &[u8]| {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        update(&b)
    };
    vec![
        Case {
            name: "bad marker",
            established_first: false,
            bytes: bad_marker,
            expect: Some((1, 1)),
            expect_data: None,
        },
        Case {
            name: "length below 19",
            established_first: false,
            bytes: header(18, 4),
            expect: Some((1, 2)),
            expect_data: None,
        },
        Case {
            name: "length above 4096",
            established_first: true,
            bytes: header(5000, 2),
            expect: Some((1, 2)),
            expect_data: None,
        },
        Case {
            name: "unknown type",
            established_first: true,
            bytes: header(19, 9),
            expect: Some((1, 3)),
            expect_data: None,
        },
        Case {
            name: "KEEPALIVE of 20 octets",
            established_first: true,
            bytes: {
                let mut k = header(20, 4);
                k.push(0);
                k
            },
            expect: Some((1, 2)),
            expect_data: None,
        },
        Case {
            name: "OPEN version 3",
            established_first: false,
            bytes: open_bytes(|o| o.version = 3),
            expect: Some((2, 1)),
            expect_data: None,
        },
        Case {
            name: "OPEN bad peer AS",
            established_first: false,
            bytes: open_bytes(|o| {
                o.my_as = 65001;
                o.params.clear();
            }),
            expect: Some((2, 2)),
            expect_data: None,
        },
        Case {
            name: "OPEN hold time 2",
            established_first: false,
            bytes: open_bytes(|o| o.hold_time = 2),
            expect: Some((2, 6)),
            expect_data: None,
        },
        Case {
            name: "OPEN truncated parameters",
            established_first: false,
            bytes: {
                let mut b = open_bytes(|_| {});
                let l = b.len() as u16 - 3;
                b.truncate(l as usize);
                b[16..18].copy_from_slice(&l.to_be_bytes());
                b
            },
            expect: Some((2, 0)),
            expect_data: None,
        },
        Case {
            name: "withdrawn length overruns",
            established_first: true,
            bytes: update(&[0, 50, 0, 0]),
            expect: Some((3, 1)),
            expect_data: None,
        },
        Case {
            name: "unrecognized well-known attribute",
            established_first: true,
            bytes: with_attrs(&[0x40, 99, 0], &[]),
            expect: Some((3, 2)),
            expect_data: None,
        },
        Case {
            name: "MP_REACH_NLRI flags",
            established_first: true,
            bytes: with_attrs(&[0x40, 14, 5, 0, 1, 1, 0, 0], &[]),
            expect: Some((3, 4)),
            expect_data: None,
        },
        Case {
            name: "truncated NLRI",
            established_first: true,
            bytes: with_attrs(good_attrs, &[24, 203, 0]),
            expect: Some((3, 10)),
            expect_data: None,
        },
        Case {
            name: "OPEN when Established",
            established_first: true,
            bytes: open_bytes(|_| {}),
            expect: Some((5, 3)),
            expect_data: None,
        },
        Case {
            name: "bad ORIGIN value (treat-as-withdraw, session stays)",
            established_first: true,
            bytes: with_attrs(
                &[0x40, 1, 1, 9, 0x40, 2, 0, 0x40, 3, 4, 127, 0, 0, 12],
                &[26, 203, 0, 113, 64],
            ),
            expect: None,
            expect_data: None,
        },
    ]
}

#[test]
fn malformed_messages_get_the_rfc_notification_and_other_peers_stay_up() {
    let cases = cases();
    let n = cases.len();
    let wrend = Wrend::start("malformed", |port| config(port, n, ""));
    let mut good = Raw::connect(GOOD, wrend.port);
    good.establish(GOOD);
    wait_for(
        || wrend.control("show protocols").contains("Established"),
        "the good peer Established",
    );

    for (i, c) in cases.iter().enumerate() {
        let addr = case_addr(i);
        let mut raw = Raw::connect(addr, wrend.port);
        if c.established_first {
            raw.establish(addr);
        }
        raw.send(&c.bytes);
        match c.expect {
            Some((code, subcode)) => {
                let n = raw
                    .notification()
                    .unwrap_or_else(|| panic!("{}: no NOTIFICATION", c.name));
                assert_eq!((n.code, n.subcode), (code, subcode), "{}: got {n}", c.name);
                if let Some(data) = c.expect_data {
                    let mut exact = header(21 + data.len() as u16, 3);
                    exact.extend([code, subcode]);
                    exact.extend(data);
                    assert_eq!(raw.last, exact, "{}: the NOTIFICATION's bytes", c.name);
                }
                assert!(
                    raw.recv().is_none(),
                    "{}: connection stays open after the NOTIFICATION",
                    c.name
                );
            }
            None => {
                // Still up: a KEEPALIVE exchange works and no NOTIFICATION arrives.
                raw.send_msg(&Message::Keepalive);
                raw.set_read_timeout(Duration::from_millis(500));
                let got = raw.recv();
                assert!(
                    !matches!(got, Some(Message::Notification(_))),
                    "{}: {got:?}",
                    c.name
                );
                wait_for(
                    || {
                        wrend
                            .control(&format!("show protocols p{}", i + 1))
                            .contains("Established")
                    },
                    c.name,
                );
            }
        }
        // The well-behaved peer never noticed.
        good.send_msg(&Message::Keepalive);
        let row = wrend.control("show protocols p0");
        assert!(row.contains("Established"), "after {}: {row}", c.name);
    }
    assert!(wrend.dir.exists());
}

/// Peer p1 (limit 3 with `action`) is sent four routes: the session ends with Cease "Maximum
/// Number of Prefixes Reached" carrying AFI, SAFI and the limit (RFC 4486 §4).
fn exceed_import_limit(action: &str) -> (Wrend, Raw) {
    let last = format!("import_limit = 3\nimport_limit_action = \"{action}\"\n");
    let wrend = Wrend::start("malformed", |port| config(port, 1, &last));
    let mut good = Raw::connect(GOOD, wrend.port);
    good.establish(GOOD);
    let limited = case_addr(0);
    let mut raw = Raw::connect(limited, wrend.port);
    raw.establish(limited);
    // BIRD 1.6's two lines (continuation lines of a 1006 reply start with a space).
    let detail = wrend.control("show protocols all p1");
    assert!(
        detail.contains(&format!(
            "\n   Import limit:   3\n     Action:       {action}\n"
        )),
        "{detail}"
    );
    let nets = [
        "198.18.1.0/24",
        "198.18.2.0/24",
        "198.18.3.0/24",
        "198.18.4.0/24",
    ];
    let u = Update {
        withdrawn: Default::default(),
        attributes: vec![
            PathAttribute::new(Attr::Origin {
                origin: Origin::Igp,
            }),
            PathAttribute::new(Attr::AsPath {
                segments: Vec::new(),
            }),
            PathAttribute::new(Attr::NextHop { next_hop: limited }),
        ]
        .into(),
        nlri: (nets.iter())
            .map(|n| Prefix {
                net: n.parse().expect("prefix"),
                path_id: None,
            })
            .collect(),
    };
    raw.send_msg(&Message::Update(u));
    let n = raw.notification().expect("a NOTIFICATION");
    assert_eq!((n.code, n.subcode), (6, 1), "{n}");
    assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 3], "AFI 1, SAFI 1, limit 3");
    assert!(raw.recv().is_none(), "connection closed after the Cease");
    (wrend, good)
}

/// `action disable`: the peer stays down until `enable`; the other session never notices.
#[test]
fn import_limit_disable_sends_cease_1_and_waits_for_enable() {
    let (wrend, mut good) = exceed_import_limit("disable");
    let limited = case_addr(0);
    let row = wrend.control("show protocols p1");
    assert!(!row.contains("Established"), "{row}");
    let mut again = Raw::connect(limited, wrend.port);
    again.send_msg(&Message::Open(open(limited)));
    assert!(
        !matches!(again.recv(), Some(Message::Open(_))),
        "a disabled peer answered"
    );
    assert!(wrend.control("enable p1").contains("p1: enabled"));
    let mut back = Raw::connect(limited, wrend.port);
    back.establish(limited);
    wait_for(
        || wrend.control("show protocols p1").contains("Established"),
        "p1 Established after enable",
    );
    good.send_msg(&Message::Keepalive);
    let row = wrend.control("show protocols p0");
    assert!(row.contains("Established"), "{row}");
}

/// `action restart`: after the Cease the peer is taken back without `enable`.
#[test]
fn import_limit_restart_sends_cease_1_and_takes_the_peer_back() {
    let (wrend, _good) = exceed_import_limit("restart");
    let limited = case_addr(0);
    let mut back = Raw::connect(limited, wrend.port);
    back.establish(limited);
    wait_for(
        || wrend.control("show protocols p1").contains("Established"),
        "p1 Established again",
    );
}

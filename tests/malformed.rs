//! A raw-socket client sends wrend malformed messages over loopback and checks the
//! NOTIFICATION that comes back, while another peer's session stays Established throughout.
//! Needs no privileges: wrend listens on 127.0.0.1 at a free port, peers dial from other
//! 127.0.0.0/8 addresses.

#[path = "loopback/mod.rs"]
mod loopback;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use loopback::{Wrend, wait_for};

use socket2::{Domain, Socket, Type};
use wren::wire::{Message, Negotiated, Notification, Open, decode, frame};

const ASN: u32 = 64512;
/// Peer addresses: .3 is the well-behaved peer, .10 and up one per malformed case.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// wrend's config: every peer passive, the good one and one per case.
fn config(port: u16, cases: usize) -> String {
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
    cfg
}

fn case_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// A BGP speaker made of bytes.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(from: Ipv4Addr, port: u16) -> Raw {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::from((from, 0)).into())
            .expect("bind source");
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("connect to wrend");
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    fn send_msg(&mut self, m: &Message) {
        let b = m.to_bytes(&Negotiated::default()).expect("encode");
        self.send(&b);
    }

    /// The next message from wrend, or None when it closed the connection.
    fn recv(&mut self) -> Option<Message> {
        let neg = Negotiated::default();
        loop {
            if let Ok(Some(n)) = frame(&self.buf, &neg) {
                let m: Vec<u8> = self.buf.drain(..n).collect();
                return Some(decode(&m, &neg).expect("wrend sent a malformed message"));
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a NOTIFICATION (skipping OPEN/KEEPALIVE/UPDATE); None if none came.
    fn notification(&mut self) -> Option<Notification> {
        while let Some(m) = self.recv() {
            if let Message::Notification(n) = m {
                return Some(n);
            }
        }
        None
    }

    /// OPEN and KEEPALIVE both ways: the session is Established.
    fn establish(&mut self, id: Ipv4Addr) {
        self.send_msg(&Message::Open(open(id)));
        assert!(
            matches!(self.recv(), Some(Message::Open(_))),
            "wrend's OPEN"
        );
        assert!(
            matches!(self.recv(), Some(Message::Keepalive)),
            "wrend's KEEPALIVE"
        );
        self.send_msg(&Message::Keepalive);
    }
}

fn open(id: Ipv4Addr) -> Open {
    loopback::open(ASN, id, 30)
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

/// What a case sends, and whether it does so after the OPEN exchange.
struct Case {
    name: &'static str,
    established_first: bool,
    bytes: Vec<u8>,
    /// Expected NOTIFICATION code and subcode; None: the session must stay up.
    expect: Option<(u8, u8)>,
}

fn cases() -> Vec<Case> {
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
        },
        Case {
            name: "length below 19",
            established_first: false,
            bytes: header(18, 4),
            expect: Some((1, 2)),
        },
        Case {
            name: "length above 4096",
            established_first: true,
            bytes: header(5000, 2),
            expect: Some((1, 2)),
        },
        Case {
            name: "unknown type",
            established_first: true,
            bytes: header(19, 9),
            expect: Some((1, 3)),
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
        },
        Case {
            name: "OPEN version 3",
            established_first: false,
            bytes: open_bytes(|o| o.version = 3),
            expect: Some((2, 1)),
        },
        Case {
            name: "OPEN bad peer AS",
            established_first: false,
            bytes: open_bytes(|o| {
                o.my_as = 65001;
                o.params.clear();
            }),
            expect: Some((2, 2)),
        },
        Case {
            name: "OPEN hold time 2",
            established_first: false,
            bytes: open_bytes(|o| o.hold_time = 2),
            expect: Some((2, 6)),
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
        },
        Case {
            name: "withdrawn length overruns",
            established_first: true,
            bytes: update(&[0, 50, 0, 0]),
            expect: Some((3, 1)),
        },
        Case {
            name: "unrecognized well-known attribute",
            established_first: true,
            bytes: with_attrs(&[0x40, 99, 0], &[]),
            expect: Some((3, 2)),
        },
        Case {
            name: "MP_REACH_NLRI flags",
            established_first: true,
            bytes: with_attrs(&[0x40, 14, 5, 0, 1, 1, 0, 0], &[]),
            expect: Some((3, 4)),
        },
        Case {
            name: "truncated NLRI",
            established_first: true,
            bytes: with_attrs(good_attrs, &[24, 203, 0]),
            expect: Some((3, 10)),
        },
        Case {
            name: "OPEN when Established",
            established_first: true,
            bytes: open_bytes(|_| {}),
            expect: Some((5, 3)),
        },
        Case {
            name: "bad ORIGIN value (treat-as-withdraw, session stays)",
            established_first: true,
            bytes: with_attrs(
                &[0x40, 1, 1, 9, 0x40, 2, 0, 0x40, 3, 4, 127, 0, 0, 12],
                &[26, 203, 0, 113, 64],
            ),
            expect: None,
        },
    ]
}

#[test]
fn malformed_messages_get_the_rfc_notification_and_other_peers_stay_up() {
    let cases = cases();
    let n = cases.len();
    let wrend = Wrend::start("malformed", |port| config(port, n));
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
                assert!(
                    raw.recv().is_none(),
                    "{}: connection stays open after the NOTIFICATION",
                    c.name
                );
            }
            None => {
                // Still up: a KEEPALIVE exchange works and no NOTIFICATION arrives.
                raw.send_msg(&Message::Keepalive);
                raw.s
                    .set_read_timeout(Some(Duration::from_millis(500)))
                    .ok();
                let got = raw.recv();
                assert!(
                    !matches!(got, Some(Message::Notification(_))),
                    "{}: {got:?}",
                    c.name
                );
                let row = wrend.control(&format!("show protocols p{}", i + 1));
                assert!(row.contains("Established"), "{}: {row}", c.name);
            }
        }
        // The well-behaved peer never noticed.
        good.send_msg(&Message::Keepalive);
        let row = wrend.control("show protocols p0");
        assert!(row.contains("Established"), "after {}: {row}", c.name);
    }
    assert!(wrend.dir.exists());
}

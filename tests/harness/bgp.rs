//! A raw BGP speaker for tests and benches, on wren's own codec (`wren::wire`): the OPEN a
//! plain router sends, the attributes of a plain iBGP route, framing what the other side
//! sends, and a blocking speaker ([`Raw`]) that can send any bytes at all.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use socket2::{Domain, Socket, Type};
use wren::wire::attr::Origin;
use wren::wire::open::{AS_TRANS, OptParam};
use wren::wire::{
    Afi, Attr, Capability, Error, Message, Negotiated, Notification, Open, PathAttribute, Safi,
    decode, frame,
};

/// The AS of wrend and its iBGP peers in the tests.
pub const ASN: u32 = 64512;

/// An OPEN (RFC 4271 §4.2) from `asn` with identifier `id`: IPv4 unicast (RFC 4760), then the
/// capabilities in `extra`, then the 4-octet AS (RFC 6793; AS_TRANS in My AS above 65535).
pub fn open(asn: u32, id: Ipv4Addr, hold: u16, extra: &[Capability]) -> Open {
    let mut capabilities = vec![Capability::Multiprotocol {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    }];
    capabilities.extend_from_slice(extra);
    capabilities.push(Capability::FourOctetAs { asn });
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: id,
        params: vec![OptParam::Capabilities { capabilities }],
        extended_params: false,
    }
}

/// Graceful restart for IPv4 unicast, restart time 120 s (RFC 4724 §3): a restarting-capable
/// router's capability.
pub fn graceful_restart_ipv4() -> Capability {
    Capability::GracefulRestart(wren::wire::open::GracefulRestart {
        flags: 0,
        restart_time: 120,
        families: vec![wren::wire::open::GrFamily {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            flags: 0,
        }],
    })
}

/// Messages encoded back to back.
pub fn encode(msgs: &[Message], neg: &Negotiated) -> anyhow::Result<Vec<u8>> {
    let mut b = BytesMut::new();
    for m in msgs {
        m.encode(neg, &mut b)?;
    }
    Ok(b.to_vec())
}

/// The attributes of a plain iBGP route (RFC 4271 §5.1): ORIGIN IGP, an empty AS_PATH,
/// NEXT_HOP `next_hop`, LOCAL_PREF 100.
pub fn ibgp_attributes(next_hop: Ipv4Addr) -> Vec<PathAttribute> {
    vec![
        PathAttribute::new(Attr::Origin {
            origin: Origin::Igp,
        }),
        PathAttribute::new(Attr::AsPath {
            segments: Vec::new(),
        }),
        PathAttribute::new(Attr::NextHop { next_hop }),
        PathAttribute::new(Attr::LocalPref { local_pref: 100 }),
    ]
}

/// The whole message at the front of `buf`, split off; `None` until all of it has arrived.
pub fn next_frame(buf: &mut BytesMut, neg: &Negotiated) -> Result<Option<BytesMut>, Error> {
    Ok(frame(buf, neg)?.map(|n| buf.split_to(n)))
}

/// A blocking BGP speaker made of bytes, on loopback: it sends whatever it is given, and
/// reads what wrend sends as messages.
pub struct Raw {
    s: TcpStream,
    buf: BytesMut,
    /// The bytes of the last message received, as they came.
    pub last: BytesMut,
}

impl Raw {
    /// Dials 127.0.0.1:`port` from `from` (any 127/8 address).
    pub fn connect(from: Ipv4Addr, port: u16) -> Raw {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::from((from, 0)).into())
            .expect("bind source");
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("connect to wrend");
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Raw {
            s,
            buf: BytesMut::new(),
            last: BytesMut::new(),
        }
    }

    /// Dials `to` from `from` inside network namespace `ns` (a thread enters it to make the
    /// socket, which stays there).
    pub fn connect_in(ns: &str, from: SocketAddr, to: SocketAddr) -> Result<Raw, String> {
        let ns = ns.to_string();
        let s = std::thread::spawn(move || -> Result<TcpStream, String> {
            let f = std::fs::File::open(format!("/var/run/netns/{ns}"))
                .map_err(|e| format!("{ns}: {e}"))?;
            wren::sys::enter_netns(&f).map_err(|e| format!("entering {ns}: {e}"))?;
            let sock = Socket::new(Domain::for_address(to), Type::STREAM, None)
                .map_err(|e| e.to_string())?;
            sock.bind(&from.into())
                .map_err(|e| format!("bind {from}: {e}"))?;
            sock.connect_timeout(&to.into(), Duration::from_secs(5))
                .map_err(|e| format!("connect {to}: {e}"))?;
            Ok(sock.into())
        })
        .join()
        .map_err(|_| "the connecting thread panicked".to_string())??;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Ok(Raw {
            s,
            buf: BytesMut::new(),
            last: BytesMut::new(),
        })
    }

    /// How long [`Raw::recv`] waits for bytes before it gives up (10 s at first).
    pub fn set_read_timeout(&mut self, d: Duration) {
        self.s.set_read_timeout(Some(d)).ok();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    pub fn send_msg(&mut self, m: &Message) {
        let b = m.to_bytes(&Negotiated::default()).expect("encode");
        self.send(&b);
    }

    /// The next message from wrend, or None when it closed the connection.
    pub fn recv(&mut self) -> Option<Message> {
        let neg = Negotiated::default();
        loop {
            if let Ok(Some(m)) = next_frame(&mut self.buf, &neg) {
                self.last = m;
                return Some(decode(&self.last, &neg).expect("wrend sent a malformed message"));
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a NOTIFICATION (skipping OPEN/KEEPALIVE/UPDATE); None if none came.
    pub fn notification(&mut self) -> Option<Notification> {
        while let Some(m) = self.recv() {
            if let Message::Notification(n) = m {
                return Some(n);
            }
        }
        None
    }

    /// OPEN (an iBGP peer of [`ASN`] with identifier `id`, hold time 30) and KEEPALIVE both
    /// ways: the session is Established.
    pub fn establish(&mut self, id: Ipv4Addr) {
        self.send_msg(&Message::Open(open(ASN, id, 30, &[])));
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

//! A BGP speaker on loopback that announces a table and holds the session: the load for the
//! control socket's test (tests/control.rs) and bench (benches/control.rs). iBGP, IPv4
//! unicast, 800 prefixes to an UPDATE (ORIGIN IGP, empty AS_PATH, NEXT_HOP its own address,
//! LOCAL_PREF 100), then End-of-RIB (RFC 4724 §2); it reads and drops what the receiver sends
//! and keeps the session with a KEEPALIVE a second, noting when the receiver closes it (the
//! reload bench, benches/calico.rs: a session reset).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};
use wren::wire::attr::Origin;
use wren::wire::open::OptParam;
use wren::wire::{
    Afi, Attr, Capability, Message, Negotiated, Open, PathAttribute, Prefix, Safi, Update, decode,
    frame,
};

/// Prefixes per UPDATE (5 octets each with the attributes fit in 4,096).
const PER_UPDATE: usize = 800;

/// The `k`th /`len` block of 100.64.0.0/10.
pub fn block(k: usize, len: u8) -> Ipv4Net {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let addr = base + ((k as u32) << (32 - u32::from(len)));
    Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default()
}

/// A session announcing a table; dropping it ends the session.
pub struct Feeder {
    stream: TcpStream,
    stop: Arc<AtomicBool>,
    /// CLOCK_MONOTONIC in nanoseconds when the receiver closed the session; 0 while open.
    closed: Arc<AtomicU64>,
}

impl Feeder {
    /// When (CLOCK_MONOTONIC, the same in every namespace) the receiver closed the session.
    pub fn closed_at(&self) -> Option<Duration> {
        match self.closed.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn encode(m: Message, neg: &Negotiated, out: &mut BytesMut) -> io::Result<()> {
    m.encode(neg, out)
        .map_err(|e| io::Error::other(format!("encode: {e:?}")))
}

/// Reads one message.
fn next(s: &mut TcpStream, buf: &mut BytesMut, neg: &Negotiated) -> io::Result<Message> {
    loop {
        if let Some(len) = frame(buf, neg).map_err(|e| io::Error::other(format!("{e:?}")))? {
            let msg = buf.split_to(len);
            return decode(&msg, neg).map_err(|e| io::Error::other(format!("{e:?}")));
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk)? {
            0 => return Err(io::Error::other("closed by the receiver")),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Dials `to` from `from`, again every 100 ms for `wait` while it is not listening.
pub fn dial(from: Ipv4Addr, to: SocketAddr, wait: Duration) -> io::Result<TcpStream> {
    let end = Instant::now() + wait;
    loop {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
        match sock.connect(&to.into()) {
            Ok(()) => return Ok(sock.into()),
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e),
        }
    }
}

/// Dials `to` from `from` (retrying for 10 s while it is not listening), opens an iBGP
/// session as AS `asn` and announces `nets`.
pub fn feed(from: Ipv4Addr, to: SocketAddr, asn: u32, nets: &[Ipv4Net]) -> io::Result<Feeder> {
    let neg = Negotiated {
        four_octet_as: true,
        ..Negotiated::default()
    };
    let mut s = dial(from, to, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = BytesMut::new();
    let open = Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: 90,
        bgp_id: from,
        params: vec![OptParam::Capabilities {
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::FourOctetAs { asn },
            ],
        }],
        extended_params: false,
    };
    encode(Message::Open(open), &neg, &mut out)?;
    s.write_all(&out)?;
    let mut buf = BytesMut::new();
    loop {
        match next(&mut s, &mut buf, &neg)? {
            Message::Open(_) => break,
            Message::Notification(n) => {
                return Err(io::Error::other(format!("NOTIFICATION {n:?}")));
            }
            _ => {}
        }
    }
    let mut keepalive = BytesMut::new();
    encode(Message::Keepalive, &neg, &mut keepalive)?;
    s.write_all(&keepalive)?;
    loop {
        match next(&mut s, &mut buf, &neg)? {
            Message::Keepalive => break,
            Message::Notification(n) => {
                return Err(io::Error::other(format!("NOTIFICATION {n:?}")));
            }
            _ => {}
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicU64::new(0));
    // The receiver's UPDATEs and KEEPALIVEs are read and dropped, until it closes.
    let mut reader = s.try_clone()?;
    reader.set_read_timeout(None)?;
    let at = Arc::clone(&closed);
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        let now = super::proc::clock(libc::CLOCK_MONOTONIC);
        at.store(
            u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    });
    let attributes = vec![
        PathAttribute::new(Attr::Origin {
            origin: Origin::Igp,
        }),
        PathAttribute::new(Attr::AsPath {
            segments: Vec::new(),
        }),
        PathAttribute::new(Attr::NextHop { next_hop: from }),
        PathAttribute::new(Attr::LocalPref { local_pref: 100 }),
    ];
    for chunk in nets.chunks(PER_UPDATE) {
        out.clear();
        let u = Update {
            withdrawn: Default::default(),
            attributes: attributes.clone().into(),
            nlri: chunk
                .iter()
                .map(|&n| Prefix::new(IpNet::V4(n)))
                .collect::<Vec<_>>()
                .into(),
        };
        encode(Message::Update(u), &neg, &mut out)?;
        s.write_all(&out)?;
    }
    out.clear();
    encode(Message::Update(Update::default()), &neg, &mut out)?;
    s.write_all(&out)?;
    // UPDATEs kept the session until now (RFC 4271 §6.5); from here KEEPALIVEs do.
    let mut ka = s.try_clone()?;
    let halt = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !halt.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            if ka.write_all(&keepalive).is_err() {
                return;
            }
        }
    });
    Ok(Feeder {
        stream: s,
        stop,
        closed,
    })
}

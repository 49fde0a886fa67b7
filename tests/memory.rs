//! Memory comes back after a full-table peer leaves (issue 13): a feeder over loopback sends
//! wrend 200,000 routes, then hangs up; wrend's resident memory must return to near where it
//! started, and `show memory` must say what its tables hold now, not what they once held.
//! Needs no privileges (the kernel is off); run it under the shared lock like every test
//! that starts wrend. `WREN_MEMORY_ROUTES=1000000 cargo test --release --test memory --
//! --nocapture` gives the figures in benches/README.md (it prints them).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod harness;
use harness::bgp;
use harness::loopback::{Wrend, wait_up_to};

use ipnet::{IpNet, Ipv4Net};
use socket2::{Domain, Socket, Type};
use wren::wire::attr::{Attr, Origin};
use wren::wire::{Message, Negotiated, PathAttribute, Prefix, Update};

const ASN: u32 = 64512;
const FEEDER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Routes sent unless `WREN_MEMORY_ROUTES` says otherwise.
const ROUTES: u32 = 200_000;
/// Prefixes per UPDATE; each UPDATE has its own attribute set (its MED).
const PER_UPDATE: u32 = 500;

/// wrend on loopback waiting for the feeder, a route-reflector client; the routes are in a
/// pool, so they are exportable (and kept out of the feeder's own stream).
fn config(port: u16) -> String {
    format!(
        "router_id = \"127.0.0.1\"\nasn = {ASN}\ncluster_id = \"127.0.0.1\"\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.1\"]\nport = {port}\n\
         [defaults]\npassive = true\nhold_time = 240\n\
         [[pool]]\ncidr = \"100.64.0.0/10\"\n\
         [[peer]]\nname = \"feeder\"\naddress = \"{FEEDER}\"\nasn = {ASN}\nrr_client = true\n"
    )
}

/// What the test reads from wrend.
trait Measured {
    fn routes(&self) -> u64;
    fn rss_kib(&self) -> u64;
    fn memory(&self) -> Vec<(String, u64)>;
}

impl Measured for Wrend {
    /// Routes in the table (`show route count`: "N of N routes for M networks").
    fn routes(&self) -> u64 {
        let out = self.control("show route count");
        out.lines()
            .find_map(|l| l.strip_prefix("0014 ")?.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// VmRSS in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("wrend's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// `show memory`'s rows in bytes, by name ("Routing tables", ...).
    fn memory(&self) -> Vec<(String, u64)> {
        let out = self.control("show memory");
        out.lines()
            .filter_map(|l| {
                let l = l.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-' || c == ' ');
                let (name, rest) = l.split_once(':')?;
                let mut w = rest.split_whitespace();
                let v: u64 = w.next()?.parse().ok()?;
                let unit = match w.next()? {
                    "B" => 1,
                    "kB" => 1 << 10,
                    "MB" => 1 << 20,
                    "GB" => 1 << 30,
                    _ => return None,
                };
                Some((name.to_string(), v * unit))
            })
            .collect()
    }
}

/// The feeder's messages: OPEN, KEEPALIVE, the routes (100.64.0.0/10 as /32s, an attribute
/// set per UPDATE) and End-of-RIB.
fn feed(routes: u32) -> Vec<u8> {
    let tx = Negotiated {
        four_octet_as: true,
        ..Negotiated::default()
    };
    let open = bgp::open(ASN, FEEDER, 240, &[]);
    let mut out = Vec::new();
    for m in [Message::Open(open), Message::Keepalive] {
        out.extend(m.to_bytes(&Negotiated::default()).expect("encode"));
    }
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    for u in 0..routes / PER_UPDATE {
        let nlri: Vec<Prefix> = (0..PER_UPDATE)
            .map(|i| Prefix {
                net: IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(base + u * PER_UPDATE + i), 32).expect("/32"),
                ),
                path_id: None,
            })
            .collect();
        let update = Update {
            withdrawn: Default::default(),
            attributes: [
                Attr::Origin {
                    origin: Origin::Igp,
                },
                Attr::AsPath { segments: vec![] },
                Attr::NextHop { next_hop: FEEDER },
                Attr::MultiExitDisc { med: u },
                Attr::LocalPref { local_pref: 100 },
            ]
            .map(PathAttribute::new)
            .to_vec()
            .into(),
            nlri: nlri.into(),
        };
        out.extend(Message::Update(update).to_bytes(&tx).expect("encode"));
    }
    out.extend(
        Message::Update(Update::default())
            .to_bytes(&tx)
            .expect("encode"),
    );
    out
}

#[test]
fn memory_returns_after_a_full_table_peer_leaves() {
    let routes = std::env::var("WREN_MEMORY_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUTES);
    let w = Wrend::start("memory", config);
    let messages = feed(routes);
    // Settled: the runtime's threads and first buffers are in place.
    std::thread::sleep(Duration::from_millis(500));
    let start = w.rss_kib();

    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((FEEDER, 0)).into())
        .expect("bind 127.0.0.3");
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], w.port)).into())
        .expect("connect to wrend");
    let mut s: TcpStream = sock.into();
    // What wrend sends (its OPEN, KEEPALIVEs, End-of-RIB) is read and dropped.
    let mut reader = s.try_clone().expect("clone");
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    let t = Instant::now();
    s.write_all(&messages).expect("send the table");
    wait_up_to(
        Duration::from_secs(300),
        || w.routes() >= u64::from(routes),
        "every route in wrend",
    );
    eprintln!("table in after {:?}", t.elapsed());
    let full = w.rss_kib();
    let held = w.memory();

    // The feeder hangs up (the reader's clone would keep the socket open).
    s.shutdown(std::net::Shutdown::Both).expect("hang up");
    drain.join().expect("reader");
    wait_up_to(
        Duration::from_secs(120),
        || w.routes() == 0,
        "the feeder's routes gone",
    );
    eprintln!("table gone after {:?}", t.elapsed());
    // The RIB trims after the last route goes; give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    let after = w.rss_kib();
    let left = w.memory();
    let report = format!(
        "RSS start {start} KiB, with {routes} routes {full} KiB, after {after} KiB; \
         show memory with routes {held:?}, after {left:?}"
    );
    eprintln!("{report}");
    assert!(full > start + 5 * 1024, "the routes took memory: {report}");
    // Back within 4 MiB of the start (the heap keeps some free space and the runtime some
    // buffers; before the fix about 40 % of the peak stayed).
    assert!(after < start + 4 * 1024, "{report}");
    let row = |rows: &[(String, u64)], name: &str| {
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {name} row: {report}"))
    };
    // At least a 16-byte entry per route.
    assert!(
        row(&held, "Routing tables") > u64::from(routes) * 16,
        "tables counted: {report}"
    );
    for name in ["Routing tables", "Route attributes", "Protocols", "Total"] {
        assert!(
            row(&left, name) < 2 << 20,
            "{name} under 2 MB now: {report}"
        );
    }
}

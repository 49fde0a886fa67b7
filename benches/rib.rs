//! RIB ingest, memory and churn: `cargo bench --bench rib` (the daemon comparison needs root:
//! `sudo bash tests/cargo.sh bench --bench rib`).
//!
//! The input, the same for every measurement (deterministic from `--seed`):
//!
//! * `--prefixes` (1,000,000) distinct IPv4 prefixes in public unicast space (1.0.0.0 to
//!   223.255.255.255 less the special-purpose ranges), one per /24 slot: 75 % /24s and 25 % /26s
//!   (`--slash26`). They are never installed anywhere: BIRD's kernel protocol is off and wrend
//!   runs with `[kernel] enabled = false`.
//! * Two eBGP feeders, A (198.51.100.2, AS 65001) and B (198.51.100.3, AS 65002), each
//!   announcing every prefix once, in a random order (different for A and B), packed
//!   `--per-update` (500) prefixes to an UPDATE that share one attribute set: ORIGIN (80 % IGP,
//!   15 % INCOMPLETE, 5 % EGP), an AS_PATH of 3 to 6 4-octet ASNs (the feeder's own AS first,
//!   the rest from a pool of 4,000, a quarter of them above 65535), NEXT_HOP the feeder's
//!   address, a MED on 30 % of the UPDATEs and 0 to 3 COMMUNITIES. Then End-of-RIB. Every
//!   UPDATE is pre-encoded with wren's codec before anything is measured.
//!
//! **In process** (a child process per scenario, so that RSS figures start clean): a
//! `wren::rib::Rib` for node 198.51.100.1, AS 64512, originating 198.18.1.0/26, with the two
//! feeders and `--mesh` (3) iBGP mesh peers Established (wren's own OPEN on both sides of the
//! mesh sessions: add-path both ways, one path sent). Two update groups result: the mesh peers
//! and the two eBGP feeders. Feeder A's UPDATEs, then B's, go through exactly what the daemon's
//! RIB task does per message: `wire::decode` with the session's `rx` encoding, `Rib::update`
//! (import, decision, export to every update group and encoding of the outgoing UPDATEs), and
//! forgetting what waits for the FIB (`fib_forget`) as the daemon does with `[kernel]
//! enabled = false`. Not included: the socket reads and framing, the channel from the session
//! task to the RIB task, writing the outgoing bytes. Scenarios:
//!
//! * `export`: a pool `0.0.0.0/0`, so that Calico's export rules pass every learned prefix:
//!   each change is exported to both update groups (the worst case: all 1M prefixes
//!   advertised to both groups).
//! * `rib-only`: Calico's usual pool 198.18.0.0/16, so the learned prefixes (outside any pool)
//!   are not exported: import and decision only, as BIRD with `export none` below.
//!
//! Measured: wall and CPU time of each feeder's load (End-of-RIB included), prefixes/s, the
//! slowest UPDATE, the VmRSS and malloc heap (`mallinfo2`) growth over the load, in bytes per
//! path. Then churn: `--churn-rate` (10,000) UPDATEs/s for `--churn-secs` (10) s, each one prefix
//! of A or B chosen at random: a withdrawn one is announced again, a present one gets new
//! attributes (60 %) or is withdrawn (40 %). Latency is the time for decode + `Rib::update` to
//! return (export encoding included); "behind" is how late an UPDATE started against its slot.
//!
//! **Daemons** (root; `--no-daemons` skips): BIRD 2 (`/usr/sbin/bird`, kernel protocol off,
//! `import all; export none`) and wrend (`[kernel] enabled = false`, no pool: nothing exported)
//! each run in a network namespace, listening on 198.51.100.1; a light BGP sender (this binary,
//! re-executed in a second namespace joined by a veth) opens the two feeder sessions, waits for
//! both to be Established, then sends A's pre-encoded UPDATEs and End-of-RIB, and after the
//! daemon has all of them, B's. The sender reads (and drops) whatever the daemon sends. Measured
//! per feeder: the time from the first byte sent until every route is in, the daemon's CPU time
//! (utime + stime), VmRSS and peak RSS (VmHWM, reset before each feeder through
//! `/proc/PID/clear_refs`). "Every route is in" is seen two ways, each a run of its own
//! (`--detect`): `cli` asks `show route count` over the control socket 200 ms after each reply
//! (as a `birdc` loop would; the queries cost the daemon time); `idle` samples the daemon's CPU
//! time from /proc every 50 ms and, once it has not grown for 600 ms, asks `show route count`
//! once to confirm: the load ended when the CPU time last grew, and the peak RSS is read before
//! that query.
//!
//! Options (after `--`): `--prefixes N`, `--per-update N`, `--slash26 PCT`, `--mesh N`,
//! `--seed N`, `--scenarios export,rib-only`, `--churn-rate N`, `--churn-secs N`,
//! `--daemons bird2,wrend`, `--no-daemons`, `--detect cli,idle`, `--deadline SECS` (600),
//! `--wrend PATH`, `--bird PATH`, `--out FILE`. Under `cargo test` (no `--bench` argument) it does nothing.
//! Work files go to `target/tmp/rib/`; the report (markdown) to `target/tmp/rib/results.md`.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};

#[path = "../tests/harness/mod.rs"]
mod harness;

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const LOCAL_ASN: u32 = 64512;
/// The two eBGP feeders: address and AS.
const FEEDERS: [(Ipv4Addr, u32); 2] = [
    (Ipv4Addr::new(198, 51, 100, 2), 65001),
    (Ipv4Addr::new(198, 51, 100, 3), 65002),
];
/// Mesh peer k (in process only) is 198.51.100.10 + k.
const MESH_BASE: u8 = 10;
const HOLD: u16 = 240;
const INPROC_CMD: &str = "__rib_inproc";
const SENDER_CMD: &str = "__rib_sender";

fn main() -> ExitCode {
    harness::bench::main(
        "rib",
        false,
        &[(INPROC_CMD, inproc::main), (SENDER_CMD, sender::main)],
        controller::run,
    )
}

#[derive(Parser, Debug)]
#[command(about = "RIB ingest, memory and churn; BIRD 2 and wrend end to end")]
struct Args {
    /// Prefixes per feeder (the same prefixes from both).
    #[arg(long, default_value_t = 1_000_000)]
    prefixes: usize,
    /// Prefixes per UPDATE (one attribute set each).
    #[arg(long, default_value_t = 500)]
    per_update: usize,
    /// Percentage of /26s (the rest are /24s).
    #[arg(long, default_value_t = 25)]
    slash26: u64,
    /// iBGP mesh peers Established in process.
    #[arg(long, default_value_t = 3)]
    mesh: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// In-process scenarios: export, rib-only.
    #[arg(long, value_delimiter = ',', default_value = "export,rib-only")]
    scenarios: Vec<Scenario>,
    /// Churn UPDATEs per second (0: no churn).
    #[arg(long, default_value_t = 10_000)]
    churn_rate: u64,
    #[arg(long, default_value_t = 10)]
    churn_secs: u64,
    /// Daemons fed over BGP: bird2, wrend.
    #[arg(long, value_delimiter = ',', default_value = "bird2,wrend")]
    daemons: Vec<Daemon>,
    #[arg(long)]
    no_daemons: bool,
    /// How a daemon's load is seen to end: `cli` asks `show route count` 200 ms after each
    /// reply; `idle` samples the daemon's CPU time in /proc every 50 ms (not touching it) and
    /// asks for the count once, when it has been idle for 600 ms.
    #[arg(long, value_delimiter = ',', default_value = "cli,idle")]
    detect: Vec<Detect>,
    /// Give up on a daemon's load after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
    #[arg(long, default_value = env!("CARGO_BIN_EXE_wrend"))]
    wrend: std::path::PathBuf,
    #[arg(long, default_value = "/usr/sbin/bird")]
    bird: std::path::PathBuf,
    /// Also write the report (markdown) here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    Export,
    RibOnly,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Export => "export",
            Scenario::RibOnly => "rib-only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Daemon {
    Bird2,
    Wrend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum Detect {
    #[default]
    Cli,
    Idle,
}

impl Detect {
    fn name(self) -> &'static str {
        match self {
            Detect::Cli => "cli",
            Detect::Idle => "idle",
        }
    }
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Bird2 => "bird2",
            Daemon::Wrend => "wrend",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The input.

mod data {
    use std::net::Ipv4Addr;
    use std::ops::Range;

    use bytes::BytesMut;
    use ipnet::{IpNet, Ipv4Net};
    use serde::{Deserialize, Serialize};
    use wren::wire::attr::{Community, Origin, Segment, SegmentKind};
    use wren::wire::{Attr, Family, Message, Negotiated, PathAttribute, Prefix, Update};

    use super::FEEDERS;

    /// What determines the input.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Params {
        pub prefixes: usize,
        pub per_update: usize,
        pub slash26: u64,
        pub seed: u64,
    }

    /// splitmix64.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed)
        }

        pub fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
        }

        pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
            &v[self.below(v.len() as u64) as usize]
        }
    }

    /// /24 slots from 1.0.0.0 to 223.255.255.0.
    const SLOTS: u64 = 223 << 16;

    /// Special-purpose ranges left out (RFC 6890 and the test networks).
    const RESERVED: [&str; 11] = [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
    ];

    /// Distinct prefixes, one per /24 slot, in random order.
    pub fn prefixes(p: &Params) -> Vec<Ipv4Net> {
        let reserved: Vec<Ipv4Net> = RESERVED.iter().map(|r| r.parse().expect("net")).collect();
        let mut taken = vec![0u64; SLOTS.div_ceil(64) as usize];
        let mut rng = Rng::new(p.seed ^ 0x5eed_0001);
        let mut out = Vec::with_capacity(p.prefixes);
        while out.len() < p.prefixes {
            let slot = rng.below(SLOTS);
            let (w, b) = ((slot / 64) as usize, slot % 64);
            if taken[w] & (1 << b) != 0 {
                continue;
            }
            taken[w] |= 1 << b;
            let base = ((slot as u32) + (1 << 16)) << 8;
            if reserved
                .iter()
                .any(|r| r.contains(&Ipv4Addr::from_bits(base)))
            {
                continue;
            }
            let net = if rng.below(100) < p.slash26 {
                Ipv4Net::new(Ipv4Addr::from_bits(base + 64 * rng.below(4) as u32), 26)
            } else {
                Ipv4Net::new(Ipv4Addr::from_bits(base), 24)
            };
            out.push(net.expect("prefix length"));
        }
        out
    }

    /// AS numbers seen in paths: 3,000 2-octet, 1,000 4-octet.
    fn asn_pool(seed: u64) -> Vec<u32> {
        let mut rng = Rng::new(seed ^ 0xa5a5);
        let mut v: Vec<u32> = (0..3000).map(|_| 1 + rng.below(64_000) as u32).collect();
        v.extend((0..1000).map(|_| 131_072 + rng.below(270_000) as u32));
        v
    }

    /// One attribute set from feeder `peer`, as a full-table feed carries.
    pub fn attrs(rng: &mut Rng, peer: usize, pool: &[u32]) -> Vec<PathAttribute> {
        let (addr, asn) = FEEDERS[peer];
        let len = 3 + rng.below(4) as usize;
        let mut asns = vec![asn];
        while asns.len() < len {
            asns.push(*rng.pick(pool));
        }
        let origin = match rng.below(100) {
            0..80 => Origin::Igp,
            80..95 => Origin::Incomplete,
            _ => Origin::Egp,
        };
        let mut v = vec![
            PathAttribute::new(Attr::Origin { origin }),
            PathAttribute::new(Attr::AsPath {
                segments: vec![Segment {
                    kind: SegmentKind::Sequence,
                    asns,
                }],
            }),
            PathAttribute::new(Attr::NextHop { next_hop: addr }),
        ];
        if rng.below(100) < 30 {
            v.push(PathAttribute::new(Attr::MultiExitDisc {
                med: rng.below(1000) as u32,
            }));
        }
        let n = rng.below(4);
        if n > 0 {
            let mut communities: Vec<Community> = (0..n)
                .map(|_| Community((asn << 16) | rng.below(300) as u32))
                .collect();
            communities.sort_unstable();
            communities.dedup();
            v.push(PathAttribute::new(Attr::Communities { communities }));
        }
        v
    }

    /// A stream of encoded messages, back to back.
    pub struct Feed {
        pub bytes: Vec<u8>,
        pub msgs: Vec<Range<usize>>,
    }

    impl Feed {
        pub fn message(&self, i: usize) -> &[u8] {
            &self.bytes[self.msgs[i].clone()]
        }
    }

    fn encode(buf: &mut BytesMut, u: Update) -> Range<usize> {
        let start = buf.len();
        Message::Update(u)
            .encode(&Negotiated::default(), buf)
            .expect("bench UPDATE encodes");
        start..buf.len()
    }

    /// What feeder `peer` sends: every prefix, `per_update` to an UPDATE (End-of-RIB not
    /// included).
    pub fn feed(p: &Params, peer: usize, nets: &[Ipv4Net]) -> Feed {
        let mut rng = Rng::new(p.seed.wrapping_mul(0x100) + peer as u64 + 7);
        let mut order: Vec<u32> = (0..nets.len() as u32).collect();
        if peer > 0 {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let pool = asn_pool(p.seed);
        let mut buf = BytesMut::with_capacity(nets.len() * 5 + nets.len() / p.per_update * 80);
        let mut msgs = Vec::new();
        for chunk in order.chunks(p.per_update) {
            let u = Update {
                withdrawn: Default::default(),
                attributes: attrs(&mut rng, peer, &pool).into(),
                nlri: chunk
                    .iter()
                    .map(|i| Prefix::new(IpNet::V4(nets[*i as usize])))
                    .collect(),
            };
            msgs.push(encode(&mut buf, u));
        }
        Feed {
            bytes: buf.to_vec(),
            msgs,
        }
    }

    pub fn end_of_rib() -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(&mut buf, Update::end_of_rib_for(Family::IPV4_UNICAST));
        buf.to_vec()
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Change,
        Withdraw,
        Announce,
    }

    pub struct Churn {
        pub feed: Feed,
        /// Per message: the feeder and what it does.
        pub events: Vec<(usize, Kind)>,
        /// Paths from the feeders once every event is applied.
        pub paths_after: usize,
    }

    /// One-prefix UPDATEs on top of both full feeds.
    pub fn churn(p: &Params, nets: &[Ipv4Net], count: usize) -> Churn {
        let mut rng = Rng::new(p.seed ^ 0xc4c4_0000);
        let pool = asn_pool(p.seed);
        let mut present = [vec![true; nets.len()], vec![true; nets.len()]];
        let mut buf = BytesMut::with_capacity(count * 64);
        let mut msgs = Vec::with_capacity(count);
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let peer = rng.below(2) as usize;
            let i = rng.below(nets.len() as u64) as usize;
            let prefix = Prefix::new(IpNet::V4(nets[i]));
            let kind = if !present[peer][i] {
                Kind::Announce
            } else if rng.below(100) < 60 {
                Kind::Change
            } else {
                Kind::Withdraw
            };
            let u = if kind == Kind::Withdraw {
                present[peer][i] = false;
                Update {
                    withdrawn: [prefix].into(),
                    ..Update::default()
                }
            } else {
                present[peer][i] = true;
                Update {
                    withdrawn: Default::default(),
                    attributes: attrs(&mut rng, peer, &pool).into(),
                    nlri: [prefix].into(),
                }
            };
            msgs.push(encode(&mut buf, u));
            events.push((peer, kind));
        }
        let paths_after = present.iter().flatten().filter(|p| **p).count();
        Churn {
            feed: Feed {
                bytes: buf.to_vec(),
                msgs,
            },
            events,
            paths_after,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Process measurements.

mod proc_stat {
    use std::time::Duration;

    use crate::harness::proc::clock;

    /// A `/proc/self/status` field in KiB (0 when it cannot be read).
    pub fn self_kib(key: &str) -> u64 {
        crate::harness::proc::status_kib(std::process::id() as i32, key).unwrap_or(0)
    }

    /// Bytes the allocator has handed out and not got back.
    pub fn heap_bytes() -> u64 {
        // SAFETY: mallinfo2 has no preconditions.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }

    /// Gives free heap pages back to the system, so that RSS growth is what is in use.
    pub fn trim() {
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
    }

    /// CPU time (user + system) of this process.
    pub fn self_cpu() -> Duration {
        clock(libc::CLOCK_PROCESS_CPUTIME_ID)
    }

    /// CPU time of the calling thread.
    pub fn thread_cpu() -> Duration {
        clock(libc::CLOCK_THREAD_CPUTIME_ID)
    }
}

// ---------------------------------------------------------------------------------------------
// In process: one scenario per child process.

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InprocParams {
    scenario: Scenario,
    data: data::Params,
    mesh: usize,
    churn_rate: u64,
    churn_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Load {
    feeder: String,
    updates: usize,
    prefixes: usize,
    secs: f64,
    cpu_secs: f64,
    /// End-of-RIB alone (it walks the table for stale paths).
    eor_ms: f64,
    update_p99_ms: f64,
    update_max_ms: f64,
    /// CPU time of the slowest UPDATE (wall time above it is preemption).
    update_max_cpu_ms: f64,
    out_bytes: u64,
    rss_kib: u64,
    heap_bytes: u64,
    table_prefixes: usize,
    paths: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Churn {
    events: usize,
    changes: usize,
    withdrawals: usize,
    announcements: usize,
    secs: f64,
    rate: f64,
    /// decode + Rib::update, µs: p50, p90, p99, p99.9, max.
    latency_us: [f64; 5],
    /// From the UPDATE's slot to its return, µs (queueing included).
    since_due_us: [f64; 5],
    /// CPU time of each UPDATE, µs: p50, p90, p99, p99.9, max.
    cpu_us: [f64; 5],
    /// The slowest UPDATEs: kind, wall µs, CPU µs.
    slowest: Vec<(String, f64, f64)>,
    out_bytes: u64,
    paths_expected: usize,
    paths: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct InprocResult {
    scenario: String,
    groups: usize,
    gen_secs: f64,
    /// Decoding A's UPDATEs alone.
    decode_secs: f64,
    base_rss_kib: u64,
    base_heap_bytes: u64,
    loads: Vec<Load>,
    hwm_kib: u64,
    churn: Option<Churn>,
    /// Sizes of the RIB's types, for reading the memory figures.
    layout: String,
}

mod inproc {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use anyhow::bail;
    use wren::config::{Config, PeerDefaults};
    use wren::rib::Rib;
    use wren::session::Session;
    use wren::session::caps::local_open;
    use wren::wire::{Message, decode};

    use super::data::{self, Feed, Kind};
    use super::proc_stat::{heap_bytes, self_cpu, self_kib, thread_cpu, trim};
    use super::{
        Churn, FEEDERS, InprocParams, InprocResult, LOCAL, LOCAL_ASN, Load, MESH_BASE, Scenario,
    };

    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let Some(p) = args
            .first()
            .and_then(|a| serde_json::from_str::<InprocParams>(a).ok())
        else {
            bail!("usage: {} JSON", super::INPROC_CMD);
        };
        println!("{}", serde_json::to_string(&run(&p)?)?);
        Ok(())
    }

    fn config(p: &InprocParams) -> anyhow::Result<Config> {
        let pool = match p.scenario {
            Scenario::Export => "0.0.0.0/0",
            Scenario::RibOnly => "198.18.0.0/16",
        };
        let mut c = format!(
            "router_id = \"{LOCAL}\"\nasn = {LOCAL_ASN}\noriginate = [\"198.18.1.0/26\"]\n\
             [kernel]\nenabled = false\n[[pool]]\ncidr = \"{pool}\"\n"
        );
        for (addr, asn) in FEEDERS {
            c.push_str(&format!("[[peer]]\naddress = \"{addr}\"\nasn = {asn}\n"));
        }
        for k in 0..p.mesh {
            let addr = Ipv4Addr::new(198, 51, 100, MESH_BASE + k as u8);
            c.push_str(&format!(
                "[[peer]]\naddress = \"{addr}\"\nasn = {LOCAL_ASN}\n"
            ));
        }
        Config::parse(&c).map_err(|e| anyhow::anyhow!("config: {e}"))
    }

    fn session(rib: &Rib, id: usize) -> Session {
        let p = &rib.peer(id).expect("configured").config;
        let me = local_open(LOCAL_ASN, LOCAL, &p.settings, false);
        let IpAddr::V4(a) = p.address else {
            unreachable!("IPv4 peers")
        };
        let them = if id < FEEDERS.len() {
            super::feeder_open(id)
        } else {
            local_open(p.asn, a, &PeerDefaults::default(), false)
        };
        Session::new(me, them, None)
    }

    /// The quantile `q` of sorted nanoseconds, in µs.
    fn quantile(sorted: &[u64], q: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i] as f64 / 1000.0
    }

    fn quantiles(mut v: Vec<u64>) -> [f64; 5] {
        v.sort_unstable();
        [
            quantile(&v, 0.5),
            quantile(&v, 0.9),
            quantile(&v, 0.99),
            quantile(&v, 0.999),
            quantile(&v, 1.0),
        ]
    }

    fn paths(rib: &Rib) -> usize {
        rib.table.values().map(|e| e.paths().len()).sum()
    }

    /// Applies one encoded UPDATE as the daemon's RIB task does; the bytes sent out.
    fn apply(rib: &mut Rib, id: usize, msg: &[u8], rx: &wren::wire::Negotiated) -> u64 {
        let Ok(Message::Update(u)) = decode(msg, rx) else {
            panic!("bench UPDATE does not decode");
        };
        let out = rib.update(id, &u, false);
        rib.fib_forget();
        out.iter().map(|o| o.bytes.len() as u64).sum()
    }

    fn load(rib: &mut Rib, id: usize, feed: &Feed, eor: &[u8], prefixes: usize) -> Load {
        let rx = (rib.peer(id))
            .and_then(|p| p.session.as_ref())
            .map(|s| s.rx)
            .expect("feeder up");
        let mut times = Vec::with_capacity(feed.msgs.len());
        let mut slowest = (0, Duration::ZERO);
        let mut out_bytes = 0;
        let cpu0 = self_cpu();
        let t0 = Instant::now();
        for i in 0..feed.msgs.len() {
            let c = thread_cpu();
            let t = Instant::now();
            out_bytes += apply(rib, id, feed.message(i), &rx);
            let took = t.elapsed().as_nanos() as u64;
            let cpu = thread_cpu() - c;
            if took > slowest.0 {
                slowest = (took, cpu);
            }
            times.push(took);
        }
        let te = Instant::now();
        out_bytes += apply(rib, id, eor, &rx);
        let eor_ms = te.elapsed().as_secs_f64() * 1000.0;
        let secs = t0.elapsed().as_secs_f64();
        let cpu_secs = (self_cpu() - cpu0).as_secs_f64();
        let q = quantiles(times);
        Load {
            feeder: format!("{} (AS {})", FEEDERS[id].0, FEEDERS[id].1),
            updates: feed.msgs.len(),
            prefixes,
            secs,
            cpu_secs,
            eor_ms,
            update_p99_ms: q[2] / 1000.0,
            update_max_ms: q[4] / 1000.0,
            update_max_cpu_ms: slowest.1.as_secs_f64() * 1000.0,
            out_bytes,
            rss_kib: self_kib("VmRSS:"),
            heap_bytes: heap_bytes(),
            table_prefixes: rib.table.len(),
            paths: paths(rib),
        }
    }

    fn run(p: &InprocParams) -> anyhow::Result<InprocResult> {
        let config = config(p)?;
        let started = Instant::now();
        let nets = data::prefixes(&p.data);
        let feeds = [data::feed(&p.data, 0, &nets), data::feed(&p.data, 1, &nets)];
        let eor = data::end_of_rib();
        let churn_count = (p.churn_rate * p.churn_secs) as usize;
        let churn = data::churn(&p.data, &nets, churn_count);
        let gen_secs = started.elapsed().as_secs_f64();

        let mut rib = Rib::new(&config);
        // Numbered as the daemon's registry numbers them at start.
        for (id, peer) in config.peers.iter().enumerate() {
            rib.add_peer(id, peer.clone());
        }
        let local = SocketAddr::from((LOCAL, 179));
        for id in (FEEDERS.len()..config.peers.len()).chain(0..FEEDERS.len()) {
            let s = session(&rib, id);
            rib.up(id, s, local);
        }
        rib.flush_changes();
        let mut r = InprocResult {
            scenario: p.scenario.name().to_string(),
            groups: rib.group_count(),
            gen_secs,
            ..InprocResult::default()
        };
        // Decoding alone, for its share of the time.
        let rx = (rib.peer(0).and_then(|p| p.session.as_ref()))
            .map(|s| s.rx)
            .expect("up");
        let t = Instant::now();
        let mut n = 0;
        for i in 0..feeds[0].msgs.len() {
            if let Ok(Message::Update(u)) = decode(feeds[0].message(i), &rx) {
                n += u.nlri.len();
            }
        }
        r.decode_secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(n == nets.len(), "decoded {n} prefixes");
        let own = rib.table.len();

        trim();
        r.base_rss_kib = self_kib("VmRSS:");
        r.base_heap_bytes = heap_bytes();
        for (id, feed) in feeds.iter().enumerate() {
            let l = load(&mut rib, id, feed, &eor, nets.len());
            anyhow::ensure!(
                l.table_prefixes == nets.len() + own && l.paths == (id + 1) * nets.len() + own,
                "after feeder {id}: {} prefixes, {} paths",
                l.table_prefixes,
                l.paths
            );
            r.loads.push(l);
        }
        r.hwm_kib = self_kib("VmHWM:");

        if churn_count > 0 {
            let rx = [0, 1].map(|id| {
                (rib.peer(id).and_then(|p| p.session.as_ref()))
                    .map(|s| s.rx)
                    .expect("up")
            });
            let period = Duration::from_secs_f64(1.0 / p.churn_rate as f64);
            let mut lat = Vec::with_capacity(churn_count);
            let mut due_lat = Vec::with_capacity(churn_count);
            let mut cpus = Vec::with_capacity(churn_count);
            let mut out_bytes = 0;
            let t0 = Instant::now();
            for (k, (peer, _)) in churn.events.iter().enumerate() {
                let due = t0 + period * k as u32;
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                let c = thread_cpu();
                let t = Instant::now();
                out_bytes += apply(&mut rib, *peer, churn.feed.message(k), &rx[*peer]);
                let end = Instant::now();
                cpus.push((thread_cpu() - c).as_nanos() as u64);
                lat.push((end - t).as_nanos() as u64);
                due_lat.push((end - due).as_nanos() as u64);
            }
            let mut order: Vec<usize> = (0..lat.len()).collect();
            order.sort_unstable_by_key(|i| std::cmp::Reverse(lat[*i]));
            let slowest = order
                .iter()
                .take(5)
                .map(|i| {
                    (
                        format!("{:?}", churn.events[*i].1),
                        lat[*i] as f64 / 1000.0,
                        cpus[*i] as f64 / 1000.0,
                    )
                })
                .collect();
            let secs = t0.elapsed().as_secs_f64();
            let count = |k: Kind| churn.events.iter().filter(|(_, x)| *x == k).count();
            r.churn = Some(Churn {
                events: churn_count,
                changes: count(Kind::Change),
                withdrawals: count(Kind::Withdraw),
                announcements: count(Kind::Announce),
                secs,
                rate: churn_count as f64 / secs,
                latency_us: quantiles(lat),
                since_due_us: quantiles(due_lat),
                cpu_us: quantiles(cpus),
                slowest,
                out_bytes,
                paths_expected: churn.paths_after + own,
                paths: paths(&rib),
            });
        }
        {
            use std::mem::size_of;
            use wren::rib::table::{Entry, Path};
            r.layout = format!(
                "IPv4 table key (u64) 8 B, Entry {} B (one path inline), Path {} B; \
                 no Adj-RIB-Out",
                size_of::<Entry>(),
                size_of::<Path>(),
            );
        }
        // Dropping a table this size takes a while and measures nothing.
        std::mem::forget(rib);
        Ok(r)
    }
}

/// A feeder's OPEN: a plain eBGP router (IPv4 unicast, route refresh, 4-octet AS).
fn feeder_open(i: usize) -> wren::wire::Open {
    let (addr, asn) = FEEDERS[i];
    harness::bgp::open(asn, addr, HOLD, &[wren::wire::Capability::RouteRefresh])
}

// ---------------------------------------------------------------------------------------------
// The BGP sender: runs in the feeders' namespace.

mod sender {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::bail;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::sync::Mutex;
    use tokio::time::Instant;
    use wren::wire::{Message, Negotiated, decode};

    use super::data::{self, Feed};
    use super::{FEEDERS, LOCAL, feeder_open};
    use crate::harness::bgp::{encode, next_frame};

    /// `__rib_sender PARAMS_JSON`; on stdin `send I` (feeder I's UPDATEs and End-of-RIB),
    /// `stop`. Prints `ready` once both sessions are Established and `sent I MS` after each
    /// feed is written.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let Some(p) = args
            .first()
            .and_then(|a| serde_json::from_str::<data::Params>(a).ok())
        else {
            bail!("usage: {} JSON", super::SENDER_CMD);
        };
        crate::harness::bench::block_on(run(p))
    }

    async fn run(p: data::Params) -> anyhow::Result<()> {
        let nets = data::prefixes(&p);
        let feeds: Vec<Arc<Feed>> = (0..FEEDERS.len())
            .map(|i| Arc::new(data::feed(&p, i, &nets)))
            .collect();
        drop(nets);
        let eor = Arc::new(data::end_of_rib());
        let mut cmd_rx = crate::harness::bench::stdin_lines();
        let mut writers = Vec::new();
        for i in 0..FEEDERS.len() {
            writers.push(establish(i).await?);
        }
        println!("ready");
        while let Some(cmd) = cmd_rx.recv().await {
            let mut words = cmd.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|w| w.parse::<usize>().ok()),
            ) {
                (Some("send"), Some(i)) if i < writers.len() => {
                    let w = writers[i].clone();
                    let (feed, eor) = (feeds[i].clone(), eor.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let mut w = w.lock().await;
                        let r = async {
                            w.write_all(&feed.bytes).await?;
                            w.write_all(&eor).await?;
                            w.flush().await
                        }
                        .await;
                        match r {
                            Ok(()) => println!("sent {i} {}", t.elapsed().as_millis()),
                            Err(e) => println!("error {i} {e}"),
                        }
                    });
                }
                (Some("stop"), _) => break,
                _ => eprintln!("sender: unknown command {cmd:?}"),
            }
        }
        Ok(())
    }

    /// Connects feeder `i`, exchanges OPENs and KEEPALIVEs; then reads (and drops) what the
    /// daemon sends and sends a KEEPALIVE every 30 s.
    async fn establish(i: usize) -> anyhow::Result<Arc<Mutex<OwnedWriteHalf>>> {
        let (addr, _) = FEEDERS[i];
        let neg = Negotiated::default();
        let target = SocketAddr::new(IpAddr::V4(LOCAL), 179);
        let until = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            let s = TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(IpAddr::V4(addr), 0))?;
            match s.connect(target).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < until => {
                    eprintln!("sender: feeder {i}: connect: {e}; again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => anyhow::bail!("feeder {i}: connect: {e}"),
            }
        };
        let (mut r, mut w) = stream.into_split();
        w.write_all(&encode(&[Message::Open(feeder_open(i))], &neg)?)
            .await?;
        let mut buf = BytesMut::with_capacity(1 << 16);
        let mut got_open = false;
        loop {
            let m = next(&mut r, &mut buf).await?;
            match m {
                Message::Open(_) => {
                    got_open = true;
                    w.write_all(&encode(&[Message::Keepalive], &neg)?).await?;
                }
                Message::Keepalive if got_open => break,
                Message::Notification(n) => anyhow::bail!("feeder {i}: NOTIFICATION {n:?}"),
                _ => {}
            }
        }
        let w = Arc::new(Mutex::new(w));
        let keepalive = w.clone();
        let ka = encode(&[Message::Keepalive], &neg)?;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if keepalive.lock().await.write_all(&ka).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match next(&mut r, &mut buf).await {
                    Ok(Message::Notification(n)) => {
                        eprintln!("sender: feeder {i}: NOTIFICATION {n:?}");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("sender: feeder {i}: {e}");
                        break;
                    }
                }
            }
        });
        Ok(w)
    }

    /// The next message from the daemon (UPDATEs are framed, not decoded).
    async fn next(r: &mut OwnedReadHalf, buf: &mut BytesMut) -> anyhow::Result<Message> {
        let neg = Negotiated::default();
        loop {
            if buf.len() >= 19 {
                let n = next_frame(buf, &neg).map_err(|e| anyhow::anyhow!("framing: {e:?}"))?;
                if let Some(msg) = n {
                    if msg[18] == 2 {
                        continue;
                    }
                    return decode(&msg, &neg).map_err(|e| anyhow::anyhow!("decode: {e:?}"));
                }
            }
            if r.read_buf(buf).await? == 0 {
                anyhow::bail!("connection closed");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The controller.

#[derive(Debug, Clone, Default)]
struct Phase {
    /// Routes shown, over those before the load (cumulative).
    routes: usize,
    secs: Option<f64>,
    sent_ms: Option<u64>,
    cpu_secs: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

#[derive(Debug, Clone, Default)]
struct DaemonResult {
    name: &'static str,
    detect: Detect,
    version: String,
    base_rss_kib: u64,
    phases: Vec<Phase>,
    polls: u64,
    poll_ms_mean: f64,
    poll_ms_max: f64,
    error: Option<String>,
}

mod controller {
    use std::fmt::Write as _;
    use std::fs::File;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, bail};

    use super::harness::bench::{
        Client, catch_signals, check_stop, cmd_out, machine, route_count, speaker_argv,
        write_report,
    };
    use super::harness::netns::{RecvPeers, remove_stale_namespaces, try_ip};
    use super::harness::proc::{Proc, cpu_secs, status_kib};
    use super::{
        Args, Daemon, DaemonResult, Detect, FEEDERS, INPROC_CMD, InprocParams, InprocResult, LOCAL,
        LOCAL_ASN, Phase, SENDER_CMD, data,
    };

    const NS_PREFIX: &str = "wrib-";
    const POLL: Duration = Duration::from_millis(200);
    /// CPU time samples for `idle` (from /proc; the daemon is not involved).
    const SAMPLE: Duration = Duration::from_millis(50);

    pub fn run(args: &Args) -> anyhow::Result<bool> {
        anyhow::ensure!(args.prefixes > 0, "--prefixes must be at least 1");
        // 5 octets a /26, attributes under 100 octets: one UPDATE stays under 4096 octets.
        anyhow::ensure!(
            (1..=750).contains(&args.per_update),
            "--per-update must be 1..=750"
        );
        anyhow::ensure!(args.prefixes <= 8_000_000, "--prefixes: at most 8,000,000");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rib");
        std::fs::create_dir_all(&base)?;
        let started = Instant::now();
        let params = data::Params {
            prefixes: args.prefixes,
            per_update: args.per_update,
            slash26: args.slash26,
            seed: args.seed,
        };
        let mut ok = true;
        let mut inproc = Vec::new();
        for s in &args.scenarios {
            eprintln!("rib: in process, {} …", s.name());
            let p = InprocParams {
                scenario: *s,
                data: params.clone(),
                mesh: args.mesh,
                churn_rate: args.churn_rate,
                churn_secs: args.churn_secs,
            };
            match run_inproc(&p) {
                Ok(r) => {
                    eprintln!("{}", serde_json::to_string(&r)?);
                    inproc.push(r);
                }
                Err(e) => {
                    eprintln!("rib: {}: {e:#}", s.name());
                    ok = false;
                }
            }
        }
        let mut daemons = Vec::new();
        let root = super::harness::proc::is_root();
        if !args.no_daemons && !args.daemons.is_empty() {
            if root {
                catch_signals();
                remove_stale_namespaces(NS_PREFIX, "rib");
                for det in &args.detect {
                    for d in &args.daemons {
                        eprintln!("rib: {} over BGP ({}) …", d.name(), det.name());
                        let dir = base.join(format!("{}-{}", d.name(), det.name()));
                        let r = run_daemon(args, *d, *det, &params, &dir).unwrap_or_else(|e| {
                            DaemonResult {
                                name: d.name(),
                                detect: *det,
                                error: Some(format!("{e:#}")),
                                ..DaemonResult::default()
                            }
                        });
                        if let Some(e) = &r.error {
                            eprintln!("rib: {}: {e}", d.name());
                            ok = false;
                        }
                        daemons.push(r);
                    }
                }
            } else {
                eprintln!(
                    "rib: not root: daemons skipped (`sudo bash tests/cargo.sh bench --bench rib`)"
                );
            }
        }
        let report = report(args, &inproc, &daemons, started.elapsed());
        write_report("rib", &report, args.out.as_deref(), &base)?;
        Ok(ok)
    }

    fn run_inproc(p: &InprocParams) -> anyhow::Result<InprocResult> {
        let out = Command::new(std::env::current_exe()?)
            .arg(INPROC_CMD)
            .arg(serde_json::to_string(p)?)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("in-process run failed ({})", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().ok_or_else(|| anyhow!("no result"))?;
        Ok(serde_json::from_str(line)?)
    }

    // --- one daemon

    fn run_daemon(
        args: &Args,
        d: Daemon,
        detect: Detect,
        params: &data::Params,
        dir: &Path,
    ) -> anyhow::Result<DaemonResult> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let bin = match d {
            Daemon::Bird2 => &args.bird,
            Daemon::Wrend => &args.wrend,
        };
        if !bin.exists() {
            bail!("{} not found", bin.display());
        }
        let mut r = DaemonResult {
            name: d.name(),
            detect,
            version: cmd_out(&bin.display().to_string(), &["--version"]),
            ..DaemonResult::default()
        };
        // Guards drop in reverse order: sender, daemon, namespaces.
        let net = netns()?;
        let ctl = dir.join("ctl");
        let conf = dir.join(match d {
            Daemon::Bird2 => "bird.conf",
            Daemon::Wrend => "wrend.toml",
        });
        std::fs::write(&conf, config(d, dir))?;
        let pid = dir.join("pid");
        let bird_pid = (d == Daemon::Bird2).then_some(pid.as_path());
        let argv = speaker_argv(bin, &conf, &ctl, bird_pid);
        let log = dir.join("daemon.log");
        let mut daemon = Proc::spawn(&net.recv, &argv, &log, false, 0)?;
        let pid = daemon.pid();
        let t = Instant::now();
        let mut cli = loop {
            daemon.check_alive(&log)?;
            check_stop()?;
            if let Ok(c) = Client::connect(&ctl) {
                break c;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("no control socket after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };

        let sender_log = dir.join("sender.log");
        let sender_argv = vec![
            std::env::current_exe()?.display().to_string(),
            SENDER_CMD.to_string(),
            serde_json::to_string(params)?,
        ];
        let mut sender = Proc::spawn(&net.peers, &sender_argv, &sender_log, true, 0)?;
        let lines = sender.lines()?;
        wait_line(
            &lines,
            &mut sender,
            &sender_log,
            "ready",
            Duration::from_secs(120),
        )?;
        std::thread::sleep(Duration::from_secs(1));
        let base_routes = route_count(&mut cli)?;
        r.base_rss_kib = status_kib(pid, "VmRSS:").unwrap_or(0);
        let mut poll_total = Duration::ZERO;
        let mut progress = File::create(dir.join("progress.tsv"))?;
        writeln!(progress, "feeder\tseconds\troutes\tcpu_s\trss_kib")?;
        for i in 0..FEEDERS.len() {
            let want = base_routes + (i + 1) * params.prefixes;
            // Peak RSS per feeder: VmHWM back to the current RSS (proc(5), clear_refs).
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            let cpu0 = cpu_secs(pid).unwrap_or(0.0);
            let t0 = Instant::now();
            sender.send(&format!("send {i}"))?;
            let deadline = t0 + Duration::from_secs(args.deadline);
            let mut ph = Phase::default();
            let mut next = t0;
            // Idle detection: when the daemon's CPU time last grew.
            let (mut last_cpu, mut last_busy) = (cpu0, t0);
            loop {
                daemon.check_alive(&log)?;
                sender.check_alive(&sender_log)?;
                check_stop()?;
                while let Ok(l) = lines.try_recv() {
                    if let Some(ms) = l.strip_prefix(&format!("sent {i} ")) {
                        ph.sent_ms = ms.parse().ok();
                    } else if l.starts_with("error") {
                        bail!("sender: {l}");
                    }
                }
                let now = Instant::now();
                let cpu = cpu_secs(pid).unwrap_or(0.0);
                if cpu > last_cpu {
                    (last_cpu, last_busy) = (cpu, now);
                }
                let ask = match detect {
                    Detect::Cli => true,
                    Detect::Idle => {
                        ph.sent_ms.is_some() && now - last_busy >= Duration::from_millis(600)
                    }
                };
                if ask {
                    // For `idle`, the peak before the query (whose reply needs memory too).
                    ph.hwm_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
                    let q = Instant::now();
                    let routes = route_count(&mut cli)?;
                    let took = q.elapsed();
                    poll_total += took;
                    r.polls += 1;
                    r.poll_ms_max = r.poll_ms_max.max(took.as_secs_f64() * 1000.0);
                    ph.routes = routes.saturating_sub(base_routes);
                    if routes >= want {
                        ph.secs = Some(match detect {
                            Detect::Cli => t0.elapsed().as_secs_f64(),
                            Detect::Idle => (last_busy - t0).as_secs_f64(),
                        });
                    }
                }
                writeln!(
                    progress,
                    "{i}\t{:.2}\t{}\t{:.2}\t{}",
                    t0.elapsed().as_secs_f64(),
                    ph.routes,
                    cpu - cpu0,
                    status_kib(pid, "VmRSS:").unwrap_or(0)
                )?;
                if ph.secs.is_some() || Instant::now() >= deadline {
                    break;
                }
                // `cli`: 200 ms between a reply and the next query, as a `birdc` loop with
                // `sleep 0.2`; `idle`: a sample every 50 ms.
                next = match detect {
                    Detect::Cli => Instant::now() + POLL,
                    Detect::Idle => (next + SAMPLE).max(Instant::now()),
                };
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            ph.cpu_secs = cpu_secs(pid).unwrap_or(0.0) - cpu0;
            ph.rss_kib = status_kib(pid, "VmRSS:").unwrap_or(0);
            if detect == Detect::Cli {
                ph.hwm_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
            }
            let done = ph.secs.is_some();
            r.phases.push(ph);
            if !done {
                r.error = Some(format!(
                    "feeder {i}: not all routes within {} s",
                    args.deadline
                ));
                break;
            }
        }
        r.poll_ms_mean = poll_total.as_secs_f64() * 1000.0 / r.polls.max(1) as f64;
        let _ = sender.send("stop");
        drop(cli);
        sender.stop(Duration::from_secs(2));
        daemon.stop(Duration::from_secs(5));
        drop(net);
        Ok(r)
    }

    fn wait_line(
        lines: &mpsc::Receiver<String>,
        p: &mut Proc,
        log: &Path,
        want: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let by = Instant::now() + limit;
        loop {
            p.check_alive(log)?;
            check_stop()?;
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l == want => return Ok(()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < by => {}
                Err(_) => bail!("no {want:?} from {} (see {})", p.name(), log.display()),
            }
        }
    }

    fn config(d: Daemon, dir: &Path) -> String {
        let mut c = String::new();
        match d {
            Daemon::Wrend => {
                let _ = write!(
                    c,
                    "router_id = \"{LOCAL}\"\nasn = {LOCAL_ASN}\n\n\
                     [listen]\naddresses = [\"{LOCAL}\"]\nport = 179\n\n\
                     [kernel]\nenabled = false\n\n[defaults]\npassive = true\n"
                );
                for (addr, asn) in FEEDERS {
                    let _ = write!(c, "\n[[peer]]\naddress = \"{addr}\"\nasn = {asn}\n");
                }
            }
            Daemon::Bird2 => {
                let _ = writeln!(
                    c,
                    "log \"{}\" {{ info, remote, warning, error, auth, fatal, bug }};",
                    dir.join("bird.log").display()
                );
                let _ = writeln!(c, "router id {LOCAL};");
                let _ = writeln!(c, "protocol device {{ }}");
                let _ = writeln!(c, "# No kernel protocol: the RIB only.");
                for (k, (addr, asn)) in FEEDERS.iter().enumerate() {
                    let _ = writeln!(
                        c,
                        "protocol bgp feeder{k} {{\n  local {LOCAL} as {LOCAL_ASN};\n  \
                         neighbor {addr} as {asn};\n  passive on;\n  hold time 240;\n  \
                         ipv4 {{ import all; export none; }};\n}}"
                    );
                }
            }
        }
        c
    }

    // --- namespaces

    /// The receiver's and the feeders' namespaces, the feeders' addresses on their end.
    fn netns() -> anyhow::Result<RecvPeers> {
        let g = RecvPeers::create(NS_PREFIX, &[], &[])?;
        let local = format!("{LOCAL}/24");
        for args in [
            vec!["-n", &g.recv, "link", "set", "vr", "up"],
            vec!["-n", &g.recv, "addr", "add", &local, "dev", "vr"],
            vec!["-n", &g.peers, "link", "set", "vp", "up"],
        ] {
            try_ip(&args)?;
        }
        for (addr, _) in FEEDERS {
            try_ip(&[
                "-n",
                &g.peers,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "vp",
                "nodad",
            ])?;
        }
        Ok(g)
    }

    // --- the report

    fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }

    fn report(
        args: &Args,
        inproc: &[InprocResult],
        daemons: &[DaemonResult],
        took: Duration,
    ) -> String {
        let mut s = String::new();
        let n = args.prefixes;
        let _ = writeln!(
            s,
            "Run {} ({}), {}.\n\nInput: {n} IPv4 prefixes ({} % /26) from each of 2 eBGP \
             feeders, {} to an UPDATE ({} UPDATEs a feeder), seed {}. Whole run {:.0} s.\n",
            cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cmd_out(
                "git",
                &[
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "describe",
                    "--always",
                    "--dirty"
                ]
            ),
            machine(),
            args.slash26,
            args.per_update,
            n.div_ceil(args.per_update),
            args.seed,
            took.as_secs_f64()
        );
        if !inproc.is_empty() {
            let _ = writeln!(
                s,
                "In process (decode + `Rib::update`, {} mesh peers + 2 feeders Established; \
                 bytes a path = growth over the load / paths added):\n",
                args.mesh
            );
            let _ = writeln!(
                s,
                "| scenario | feeder | paths after | wall s | prefixes/s | prefixes/CPU-s | \
                 decode share | End-of-RIB ms | UPDATE p99 / max ms (max's CPU) | RSS MiB (growth) | \
                 RSS B/path | heap B/path | sent MiB |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in inproc {
                let (mut rss0, mut heap0) = (r.base_rss_kib, r.base_heap_bytes);
                for (i, l) in r.loads.iter().enumerate() {
                    let decode = if i == 0 {
                        format!("{:.1} %", r.decode_secs / l.secs * 100.0)
                    } else {
                        "".into()
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {decode} | {:.0} | {:.2} / {:.2} ({:.2}) | \
                         {:.0} (+{:.0}) | {:.0} | {:.0} | {:.1} |",
                        r.scenario,
                        if i == 0 { "A" } else { "then B" },
                        l.paths,
                        l.secs,
                        l.prefixes as f64 / l.secs,
                        l.prefixes as f64 / l.cpu_secs,
                        l.eor_ms,
                        l.update_p99_ms,
                        l.update_max_ms,
                        l.update_max_cpu_ms,
                        mib(l.rss_kib),
                        mib(l.rss_kib.saturating_sub(rss0)),
                        (l.rss_kib.saturating_sub(rss0) * 1024) as f64 / l.prefixes as f64,
                        l.heap_bytes.saturating_sub(heap0) as f64 / l.prefixes as f64,
                        l.out_bytes as f64 / 1048576.0,
                    );
                    rss0 = l.rss_kib;
                    heap0 = l.heap_bytes;
                }
                if let Some(last) = r.loads.last() {
                    let paths = r.loads.iter().map(|l| l.prefixes).sum::<usize>();
                    let _ = writeln!(
                        s,
                        "| {} | A + B | {} | {:.2} | {:.0} | {:.0} | | | | {:.0} (+{:.0}) | {:.0} | {:.0} | |",
                        r.scenario,
                        last.paths,
                        r.loads.iter().map(|l| l.secs).sum::<f64>(),
                        paths as f64 / r.loads.iter().map(|l| l.secs).sum::<f64>(),
                        paths as f64 / r.loads.iter().map(|l| l.cpu_secs).sum::<f64>(),
                        mib(last.rss_kib),
                        mib(last.rss_kib.saturating_sub(r.base_rss_kib)),
                        (last.rss_kib.saturating_sub(r.base_rss_kib) * 1024) as f64 / paths as f64,
                        last.heap_bytes.saturating_sub(r.base_heap_bytes) as f64 / paths as f64,
                    );
                }
            }
            let _ = writeln!(
                s,
                "\nBaseline before the load (input, encoded, held in memory): {}. Update groups: {}.\n",
                inproc
                    .iter()
                    .map(|r| format!(
                        "{} RSS {:.0} MiB, peak {:.0} MiB at the end",
                        r.scenario,
                        mib(r.base_rss_kib),
                        mib(r.hwm_kib)
                    ))
                    .collect::<Vec<_>>()
                    .join("; "),
                inproc
                    .iter()
                    .map(|r| format!("{} {}", r.scenario, r.groups))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if let Some(r) = inproc.first() {
                let _ = writeln!(s, "Layout: {}.\n", r.layout);
            }
            if inproc.iter().any(|r| r.churn.is_some()) {
                let _ = writeln!(
                    s,
                    "Churn after both loads ({} UPDATEs/s of one prefix each, {} s; latency of \
                     decode + `Rib::update`; behind = from the UPDATE's slot):\n",
                    args.churn_rate, args.churn_secs
                );
                let _ = writeln!(
                    s,
                    "| scenario | UPDATEs (change / withdraw / announce) | achieved /s | \
                     p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | CPU p99.9 / max µs | \
                     max behind µs | sent MiB | paths as expected |"
                );
                let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
                for r in inproc {
                    let Some(c) = &r.churn else { continue };
                    let l = c.latency_us;
                    let _ = writeln!(
                        s,
                        "| {} | {} ({} / {} / {}) | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | \
                         {:.0} / {:.0} | {:.0} | {:.1} | {} |",
                        r.scenario,
                        c.events,
                        c.changes,
                        c.withdrawals,
                        c.announcements,
                        c.rate,
                        l[0],
                        l[1],
                        l[2],
                        l[3],
                        l[4],
                        c.cpu_us[3],
                        c.cpu_us[4],
                        c.since_due_us[4],
                        c.out_bytes as f64 / 1048576.0,
                        if c.paths == c.paths_expected {
                            format!("yes ({})", c.paths)
                        } else {
                            format!("NO: {} of {}", c.paths, c.paths_expected)
                        }
                    );
                }
                let _ = writeln!(s);
                for r in inproc {
                    let Some(c) = &r.churn else { continue };
                    let _ = writeln!(
                        s,
                        "Slowest churn UPDATEs, {} (kind, wall µs, CPU µs): {}.",
                        r.scenario,
                        c.slowest
                            .iter()
                            .map(|(k, w, c)| format!("{k} {w:.0} / {c:.0}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                let _ = writeln!(s);
            }
        }
        if !daemons.is_empty() {
            let _ = writeln!(
                s,
                "Daemons over BGP (2 feeder sessions from another namespace; A's feed, then B's; \
                 BIRD without a kernel protocol, wrend with `[kernel] enabled = false`; time from \
                 the first byte sent until every route is in: `cli` = `show route count` shows \
                 them, asked 200 ms after each reply; `idle` = the daemon's CPU time last grew \
                 (sampled every 50 ms from /proc, not touching the daemon), then one `show route count` \
                 confirms; peak RSS = VmHWM over that feeder's load (reset before it through \
                 `/proc/PID/clear_refs`), for `idle` read before that one query; \
                 peak B/route = (VmHWM - RSS before the load) / routes):\n"
            );
            let _ = writeln!(
                s,
                "| daemon | done seen by | feeder | routes | s | prefixes/s | CPU s | \
                 prefixes/CPU-s | RSS MiB | peak RSS MiB | peak B/route |"
            );
            let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
            for d in daemons {
                let mut before = 0;
                for (i, p) in d.phases.iter().enumerate() {
                    let added = p.routes.saturating_sub(before);
                    before = p.routes;
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
                        d.name,
                        d.detect.name(),
                        if i == 0 { "A" } else { "then B" },
                        p.routes,
                        p.secs.map_or("—".into(), |v| format!("{v:.1}")),
                        p.secs
                            .map_or("—".into(), |v| format!("{:.0}", added as f64 / v)),
                        p.cpu_secs,
                        added as f64 / p.cpu_secs.max(0.01),
                        mib(p.rss_kib),
                        mib(p.hwm_kib),
                        (p.hwm_kib.saturating_sub(d.base_rss_kib) * 1024) as f64
                            / p.routes.max(1) as f64,
                    );
                }
                if let Some(e) = &d.error {
                    let _ = writeln!(
                        s,
                        "| {} | {} | error: {} | | | | | | | | |",
                        d.name,
                        d.detect.name(),
                        e.replace('\n', " ")
                    );
                }
            }
            let _ = writeln!(s);
            for d in daemons {
                let _ = writeln!(
                    s,
                    "- {} ({}): `{}`; RSS before the load {:.1} MiB; {} `show route count`, \
                     {:.0} ms mean, {:.0} ms max.",
                    d.name,
                    d.detect.name(),
                    d.version.lines().next().unwrap_or(""),
                    mib(d.base_rss_kib),
                    d.polls,
                    d.poll_ms_mean,
                    d.poll_ms_max
                );
            }
        }
        s
    }
}

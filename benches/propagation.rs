//! Propagation through one speaker, eBGP in → eBGP out, wrend against BIRD 2 and FRR in the
//! same run (issue 18, the shape of ze-perf's comparison): `sudo bash tests/cargo.sh bench
//! --bench propagation`.
//!
//! Two fresh network namespaces per trial (`wpg-r-PID`, `wpg-p-PID`) joined by a veth. The
//! speaker under test listens on 198.51.100.1 (AS 65000, passive) with two eBGP peers and
//! no FIB (wrend `[kernel] enabled = false`, BIRD 2 without a kernel protocol, FRR's bgpd
//! with `-n` beside its zebra); it exports everything learned (wrend: the Calico pool
//! 100.64.0.0/10 holds every route; BIRD 2: `export all`; FRR: no `ebgp-requires-policy`,
//! advertisement interval 0). This binary runs again in the peers' namespace as both peers:
//!
//! * the receiver, 198.51.100.3 (AS 65002), connects first and reads everything;
//! * the sender, 198.51.100.2 (AS 65001), connects once the receiver is Established.
//!
//! Two seconds after both are Established (FRR forms its update groups in that time), the
//! sender writes the whole table in one burst: `--routes` (100,000) blocks of 100.64.0.0/10
//! (/27 for 100k), `--per-update` (256) to an UPDATE (391 UPDATEs for 100k), pre-encoded
//! before anything is timed. Every UPDATE carries ORIGIN IGP, AS_PATH 65001 and NEXT_HOP
//! 198.51.100.2; with `--attr-sets N` UPDATE i's AS_PATH is 65001 64600+(i mod N), so N
//! attribute sets interleave.
//!
//! Measured per trial: from the sender's first write to the moment the receiver holds every
//! route (first UPDATE in → last route out); the UPDATEs and octets the speaker sent to the
//! receiver carrying them, and the fewest UPDATEs that could carry them (every route with one
//! outgoing attribute set packed to 4,096 octets, RFC 4271 §4.3); the speaker's CPU time
//! (utime + stime, FRR: bgpd + zebra) over the trial and its peak RSS (VmHWM). Each trial
//! starts the speaker afresh; the table shows each speaker's median of `--trials` (5) and every
//! trial's time. Trials alternate between speakers (wrend, BIRD 2, FRR, wrend, …), so load on
//! the machine spreads over all of them.
//!
//! **The RIB alone** (no root, no sockets): `propagation-HASH __propagation_rib ROUNDS`, the
//! bench binary under `target/release/deps/`, runs the burst through a `wren::rib::Rib` set
//! up as wrend is here (the same configuration, the receiver's session up first), `ROUNDS`
//! times with a fresh RIB each: the UPDATEs decoded beforehand (the session task's work, timed
//! apart), then taken as the daemon's event loop takes a burst that has queued up (256
//! messages or 14,336 prefixes, `RIB_BATCH` / `RIB_ROUTES`), each batch received and then
//! flushed. It prints each round's milliseconds, their median and the UPDATEs out (and what
//! the sender's session going down then costs, as at the end of a trial, timed apart): a
//! stable figure for `perf record` / `perf stat` on the RIB's share of the trial.
//!
//! Options (after `--`): `--routes N`, `--per-update N`, `--attr-sets N`, `--trials N`,
//! `--speakers wrend,bird2,frr`, `--deadline SECONDS` (60, one trial), `--nice N` (-10),
//! `--wait-quiet SECONDS` (30), `--wrend PATH`, `--bird2 PATH`, `--out FILE` (FRR is
//! Debian's, in /usr/lib/frr). Needs root; under `cargo test` it does nothing. Work files
//! (configurations, logs) go to `target/tmp/propagation/SPEAKER-TRIAL/`, the report to
//! `target/tmp/propagation/results.md`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{Client, cmd_out, established, sleep, speaker_argv, stopped};
use harness::netns::{RecvPeers, ip_batch};
use harness::proc::{Proc, cpu_secs, status_kib};

const SPEAKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SPEAKER_ASN: u32 = 65000;
const SENDER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const SENDER_ASN: u32 = 65001;
const RECEIVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
const RECEIVER_ASN: u32 = 65002;
const SPEAKER_MAC: &str = "02:00:5e:00:01:01";
const PEERS_MAC: &str = "02:00:5e:00:01:02";
const NS_PREFIX: &str = "wpg-";
const PEERS_CMD: &str = "__propagation_peers";
const RIB_CMD: &str = "__propagation_rib";
/// Time between both sessions Established and the burst.
const SETTLE: Duration = Duration::from_secs(2);
const HOLD: u16 = 240;

fn main() -> ExitCode {
    harness::bench::main(
        "propagation",
        true,
        &[(PEERS_CMD, peers::main), (RIB_CMD, rib::main)],
        controller::run,
    )
}

#[derive(Parser, Debug)]
#[command(about = "100k routes eBGP in → eBGP out through one speaker")]
struct Args {
    /// Routes in the burst.
    #[arg(long, default_value_t = 100_000)]
    routes: usize,
    /// Prefixes per UPDATE the sender writes.
    #[arg(long, default_value_t = 256)]
    per_update: usize,
    /// Attribute sets the sender's UPDATEs take in turn.
    #[arg(long, default_value_t = 1)]
    attr_sets: usize,
    /// Trials per speaker.
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// Speakers: wrend, bird2, frr.
    #[arg(long, value_delimiter = ',', default_value = "wrend,bird2,frr")]
    speakers: Vec<Speaker>,
    /// Give up on one trial after this many seconds.
    #[arg(long, default_value_t = 60)]
    deadline: u64,
    #[command(flatten)]
    timing: harness::bench::Timing,
    #[command(flatten)]
    daemons: harness::bench::Daemons,
    /// Also write the report (markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Speaker {
    Wrend,
    Bird2,
    Frr,
}

impl Speaker {
    fn name(self) -> &'static str {
        match self {
            Speaker::Wrend => "wrend",
            Speaker::Bird2 => "bird2",
            Speaker::Frr => "frr",
        }
    }
}

/// What the peers process reports after a burst.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Trial {
    /// Sender's first write → the receiver holds every route, in seconds.
    secs: f64,
    /// Sender's first write → the receiver's first UPDATE with a route of the burst.
    first_secs: f64,
    /// UPDATEs (and their octets) the receiver got after the burst started.
    updates: u64,
    octets: u64,
    /// Routes of the burst announced to the receiver (a route sent twice counts twice).
    announced: u64,
    /// UPDATEs and octets the sender wrote.
    sent_updates: u64,
    sent_octets: u64,
}

// ---------------------------------------------------------------------------------------------
// The peers: sender and receiver, in the peers' namespace.

mod peers {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, bail};
    use bytes::BytesMut;
    use wren::wire::attr::{Origin, Segment, SegmentKind};
    use wren::wire::{Attr, Message, Negotiated, PathAttribute, Prefix, Update, decode};

    use super::{HOLD, RECEIVER, RECEIVER_ASN, SENDER, SENDER_ASN, SETTLE, SPEAKER, Trial};
    use crate::harness::{bgp, feeder, kernel};

    /// `__propagation_peers ROUTES PER_UPDATE ATTR_SETS DEADLINE_SECS`: prints "ready" once
    /// both sessions are up, sends the burst on "go", prints the trial as JSON.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let num = |i: usize| -> anyhow::Result<usize> {
            let s = args
                .get(i)
                .context("usage: ROUTES PER_UPDATE ATTR_SETS DEADLINE")?;
            s.parse().with_context(|| format!("not a number: {s}"))
        };
        let (routes, per_update, sets, deadline) = (num(0)?, num(1)?, num(2)?, num(3)?);
        if routes == 0 || per_update == 0 || sets == 0 {
            bail!("ROUTES, PER_UPDATE and ATTR_SETS must be at least 1");
        }
        let len = kernel::prefix_len(routes, None)?;
        let neg = Negotiated::default();
        let burst = burst(routes, per_update, sets, len, &neg)?;
        let mut rx = session(RECEIVER, RECEIVER_ASN, &neg)?;
        let mut tx = session(SENDER, SENDER_ASN, &neg)?;
        std::thread::sleep(SETTLE);
        // What the speaker sent before the burst (its End-of-RIB) is not counted.
        drain(&mut rx)?;
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() != "go" {
            bail!("expected go, got {line:?}");
        }
        let receiver = std::thread::spawn(move || {
            receive(&mut rx, routes, len, Duration::from_secs(deadline as u64))
        });
        let t0 = Instant::now();
        tx.write_all(&burst.0)?;
        let got = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
        let trial = Trial {
            secs: got.done.duration_since(t0).as_secs_f64(),
            first_secs: got
                .first
                .map_or(0.0, |f| f.duration_since(t0).as_secs_f64()),
            updates: got.updates,
            octets: got.octets,
            announced: got.announced,
            sent_updates: burst.1,
            sent_octets: burst.0.len() as u64,
        };
        println!("{}", serde_json::to_string(&trial)?);
        // Keep the sessions until the controller has read the speaker's figures.
        let _ = std::io::stdin().read_line(&mut line);
        drop(tx);
        Ok(())
    }

    /// Every UPDATE of the burst, encoded back to back, and how many.
    pub(super) fn burst(
        routes: usize,
        per_update: usize,
        sets: usize,
        len: u8,
        neg: &Negotiated,
    ) -> anyhow::Result<(Vec<u8>, u64)> {
        let mut out = BytesMut::new();
        let mut n = 0;
        let prefixes: Vec<Prefix> = (0..routes)
            .map(|k| Prefix::new(ipnet::IpNet::V4(kernel::route(k, len))))
            .collect();
        for (i, chunk) in prefixes.chunks(per_update).enumerate() {
            let mut asns = vec![SENDER_ASN];
            if sets > 1 {
                asns.push(64600 + (i % sets) as u32);
            }
            let attributes = vec![
                PathAttribute::new(Attr::Origin {
                    origin: Origin::Igp,
                }),
                PathAttribute::new(Attr::AsPath {
                    segments: vec![Segment {
                        kind: SegmentKind::Sequence,
                        asns,
                    }],
                }),
                PathAttribute::new(Attr::NextHop { next_hop: SENDER }),
            ];
            let u = Update {
                attributes: attributes.into(),
                nlri: chunk.into(),
                ..Update::default()
            };
            Message::Update(u).encode(neg, &mut out)?;
            n += 1;
        }
        Ok((out.to_vec(), n))
    }

    /// Dials the speaker from `from` as `asn` and waits until Established.
    fn session(from: Ipv4Addr, asn: u32, neg: &Negotiated) -> anyhow::Result<TcpStream> {
        let to = SocketAddr::new(IpAddr::V4(SPEAKER), 179);
        let mut s = feeder::dial(from, to, Duration::from_secs(20))
            .with_context(|| format!("connecting from {from}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let open = Message::Open(bgp::open(asn, from, HOLD, &[]));
        s.write_all(&bgp::encode(&[open, Message::Keepalive], neg)?)?;
        let mut buf = BytesMut::new();
        loop {
            match next(&mut s, &mut buf, neg)? {
                Message::Keepalive => return Ok(s),
                Message::Notification(n) => bail!("{from}: NOTIFICATION {n}"),
                _ => {}
            }
        }
    }

    fn next(s: &mut TcpStream, buf: &mut BytesMut, neg: &Negotiated) -> anyhow::Result<Message> {
        loop {
            if let Some(m) = bgp::next_frame(buf, neg).map_err(|e| anyhow::anyhow!("{e:?}"))? {
                return decode(&m, neg).map_err(|e| anyhow::anyhow!("{e:?}"));
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk)? {
                0 => bail!("closed by the speaker"),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads and drops what the socket holds now.
    fn drain(s: &mut TcpStream) -> anyhow::Result<()> {
        s.set_nonblocking(true)?;
        let mut sink = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut sink) {
                Ok(0) => bail!("closed by the speaker"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        s.set_nonblocking(false)?;
        Ok(())
    }

    struct Received {
        first: Option<Instant>,
        done: Instant,
        updates: u64,
        octets: u64,
        announced: u64,
    }

    /// Reads UPDATEs until every route of the burst has been announced, counting in place.
    fn receive(
        s: &mut TcpStream,
        routes: usize,
        len: u8,
        deadline: Duration,
    ) -> anyhow::Result<Received> {
        let base = u32::from(kernel::route(0, len).network());
        let mut held = vec![false; routes];
        let (mut count, mut r) = (
            0,
            Received {
                first: None,
                done: Instant::now(),
                updates: 0,
                octets: 0,
                announced: 0,
            },
        );
        let end = Instant::now() + deadline;
        let mut buf = vec![0u8; 256 * 1024];
        let (mut start, mut filled) = (0, 0);
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        while count < routes {
            if Instant::now() > end {
                bail!("{count} of {routes} routes after {deadline:?}");
            }
            if start > 0 {
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
            }
            // A read timing out only brings the deadline check round again.
            let timed_out = |e: &std::io::Error| {
                use std::io::ErrorKind::{TimedOut, WouldBlock};
                matches!(e.kind(), WouldBlock | TimedOut)
            };
            match s.read(&mut buf[filled..]) {
                Ok(0) => bail!("closed by the speaker after {count} routes"),
                Ok(n) => filled += n,
                Err(e) if timed_out(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            let now = Instant::now();
            while filled - start >= 19 {
                let m = &buf[start..filled];
                let n = usize::from(u16::from_be_bytes([m[16], m[17]]));
                if !(19..=4096).contains(&n) {
                    bail!("bad message length {n}");
                }
                if m.len() < n {
                    break;
                }
                if m[18] == 2 {
                    let fresh = nlri(&m[..n], |addr, plen| {
                        let k = (addr.wrapping_sub(base) >> (32 - u32::from(len))) as usize;
                        if plen == len && k < routes {
                            r.announced += 1;
                            if !std::mem::replace(&mut held[k], true) {
                                count += 1;
                            }
                        }
                    })?;
                    if fresh > 0 {
                        r.updates += 1;
                        r.octets += n as u64;
                        r.first.get_or_insert(now);
                    }
                }
                start += n;
            }
            r.done = now;
        }
        Ok(r)
    }

    /// Calls `f` with each IPv4 prefix of an UPDATE's NLRI field (address, length); how many.
    fn nlri(msg: &[u8], mut f: impl FnMut(u32, u8)) -> anyhow::Result<usize> {
        let body = &msg[19..];
        let field = |b: &[u8], at: usize| -> anyhow::Result<usize> {
            let x = b.get(at..at + 2).context("short UPDATE")?;
            Ok(usize::from(u16::from_be_bytes([x[0], x[1]])))
        };
        let wlen = field(body, 0)?;
        let alen = field(body, 2 + wlen)?;
        let mut rest = body.get(4 + wlen + alen..).context("short UPDATE")?;
        let mut n = 0;
        while let Some((&plen, tail)) = rest.split_first() {
            let octets = usize::from(plen).div_ceil(8);
            if plen > 32 || tail.len() < octets {
                bail!("bad NLRI");
            }
            let mut a = [0u8; 4];
            a[..octets].copy_from_slice(&tail[..octets]);
            f(u32::from_be_bytes(a), plen);
            n += 1;
            rest = &tail[octets..];
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// The RIB alone, in process.

mod rib {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Instant;

    use anyhow::{Context as _, bail};
    use wren::config::Config;
    use wren::rib::Rib;
    use wren::session::Session;
    use wren::session::caps::local_open;
    use wren::wire::{Message, Negotiated, Update, decode};

    use super::{HOLD, RECEIVER, SENDER, SPEAKER, SPEAKER_ASN, Speaker};
    use crate::harness::{bgp, kernel};

    /// What the daemon's event loop takes before it flushes (`src/daemon/event_loop.rs`).
    const RIB_BATCH: usize = 256;
    const RIB_ROUTES: usize = 14_336;

    /// `__propagation_rib ROUNDS`: see the file's header.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let rounds: usize = match args.first() {
            Some(s) => s.parse().with_context(|| format!("not a number: {s}"))?,
            None => bail!("usage: ROUNDS"),
        };
        // As wrend does at its start.
        wren::sys::set_mmap_threshold(128 * 1024);
        let (routes, per_update) = (100_000, 256);
        let len = kernel::prefix_len(routes, None)?;
        let (burst, _) = super::peers::burst(routes, per_update, 1, len, &Negotiated::default())?;
        let dir = std::env::temp_dir();
        let config = Config::parse(&super::controller::config(Speaker::Wrend, &dir))
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let mut times = Vec::new();
        for _ in 0..rounds.max(1) {
            let mut rib = Rib::new(&config);
            for (id, p) in config.peers.iter().enumerate() {
                rib.add_peer(id, p.clone());
            }
            let local = SocketAddr::new(IpAddr::V4(SPEAKER), 179);
            // The receiver (peer 1) is up first, as in the bench.
            for id in [1, 0] {
                let p = &rib.peer(id).context("configured")?.config;
                let me = local_open(SPEAKER_ASN, SPEAKER, &p.settings, false);
                let from = [SENDER, RECEIVER][id];
                let them = bgp::open(p.asn, from, HOLD, &[]);
                rib.up(id, Session::new(me, them, None), local);
            }
            // The daemon flushes at a session up: both join their group before the burst.
            rib.flush_changes();
            let rx = (rib.peer(0).and_then(|p| p.session.as_ref()))
                .map(|s| s.rx)
                .context("up")?;
            let t = Instant::now();
            let updates = decode_all(&burst, &rx)?;
            let decode_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let (mut taken, mut prefixes, mut out) = (0, 0, 0);
            for u in &updates {
                prefixes += rib.receive(0, u, false);
                taken += 1;
                if taken == RIB_BATCH || prefixes >= RIB_ROUTES {
                    out += count(&rib.flush_changes());
                    rib.fib_forget();
                    (taken, prefixes) = (0, 0);
                }
            }
            out += count(&rib.flush_changes());
            rib.fib_forget();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            // The bench's sessions end after the burst: the sender's routes all go.
            let t = Instant::now();
            let gone = count(&rib.down(0, false));
            let down_ms = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "{ms:.2} ms (decoding apart {decode_ms:.2} ms), {out} UPDATEs out; \
                 the sender down {down_ms:.2} ms, {gone} UPDATEs out"
            );
            times.push(ms);
        }
        times.sort_by(f64::total_cmp);
        println!("median {:.2} ms", times[times.len() / 2]);
        Ok(())
    }

    fn decode_all(burst: &[u8], rx: &Negotiated) -> anyhow::Result<Vec<Update>> {
        let mut v = Vec::new();
        let mut rest = burst;
        while rest.len() >= 19 {
            let n = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            match decode(&rest[..n], rx) {
                Ok(Message::Update(u)) => v.push(u),
                other => bail!("not an UPDATE: {other:?}"),
            }
            rest = &rest[n..];
        }
        Ok(v)
    }

    /// UPDATEs in encoded messages.
    fn count(out: &[wren::rib::Outgoing]) -> usize {
        let mut n = 0;
        for o in out {
            let mut b = &o.bytes[..];
            while b.len() >= 19 {
                n += usize::from(b[18] == 2);
                b = &b[usize::from(u16::from_be_bytes([b[16], b[17]])).max(19)..];
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------------------------
// The controller.

mod controller {
    use super::*;

    #[derive(Debug, Default)]
    struct Outcome {
        speaker: &'static str,
        trial: usize,
        error: Option<String>,
        got: Trial,
        cpu: f64,
        peak_rss_kib: u64,
        load: f64,
    }

    pub fn run(args: &Args) -> anyhow::Result<bool> {
        if args.routes == 0 || args.per_update == 0 || args.attr_sets == 0 || args.trials == 0 {
            bail!("--routes, --per-update, --attr-sets and --trials must be at least 1");
        }
        harness::kernel::prefix_len(args.routes, None)?;
        for s in &args.speakers {
            if !binary(args, *s).exists() {
                bail!("{} not found at {}", s.name(), binary(args, *s).display());
            }
        }
        harness::bench::catch_signals();
        harness::netns::remove_stale_namespaces(NS_PREFIX, "propagation");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("propagation");
        std::fs::create_dir_all(&base)?;
        let header = header(args);
        eprintln!("{header}");
        let mut outcomes = Vec::new();
        'all: for trial in 1..=args.trials {
            for &s in &args.speakers {
                if stopped() {
                    break 'all;
                }
                let dir = base.join(format!("{}-{trial}", s.name()));
                let o = run_one(args, s, &dir).unwrap_or_else(|e| Outcome {
                    error: Some(format!("{e:#}")),
                    ..Outcome::default()
                });
                let o = Outcome {
                    speaker: s.name(),
                    trial,
                    ..o
                };
                eprintln!("{}", line(&o));
                outcomes.push(o);
            }
        }
        let all_ran = outcomes.iter().all(|o| o.error.is_none());
        let text = report(&header, args, &outcomes);
        harness::bench::write_report("propagation", &text, args.out.as_deref(), &base)?;
        match stopped() {
            true => bail!("interrupted"),
            false => Ok(all_ran),
        }
    }

    fn binary(args: &Args, s: Speaker) -> PathBuf {
        let d = &args.daemons;
        match s {
            Speaker::Frr => harness::peers::frr_bgpd(),
            Speaker::Bird2 => d.bird2.clone(),
            Speaker::Wrend => d.wrend.clone(),
        }
    }

    fn load() -> f64 {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    }

    fn run_one(args: &Args, s: Speaker, dir: &Path) -> anyhow::Result<Outcome> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        harness::bench::wait_quiet(
            Duration::from_secs(args.timing.wait_quiet),
            0.10,
            Duration::from_secs(2),
        )?;
        let net = netns(dir)?;
        let mut speaker = start(args, s, dir, &net.recv)?;
        // Listening and answering: FRR's bgpd may take a moment to bind.
        sleep(Duration::from_millis(500))?;
        let log = dir.join("peers.log");
        let argv = vec![
            std::env::current_exe()?.display().to_string(),
            PEERS_CMD.to_string(),
            args.routes.to_string(),
            args.per_update.to_string(),
            args.attr_sets.to_string(),
            args.deadline.to_string(),
        ];
        let mut peers = Proc::spawn(&net.peers, &argv, &log, true, args.timing.nice)?;
        let lines = peers.lines()?;
        let wait_line = |peers: &mut Proc, what: &str| -> anyhow::Result<String> {
            let by = Instant::now() + Duration::from_secs(args.deadline + 30);
            loop {
                peers.check_alive(&log)?;
                match lines.recv_timeout(Duration::from_millis(100)) {
                    Ok(l) => return Ok(l),
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < by && !stopped() => {}
                    Err(_) => bail!("no {what} from the peers (see {})", log.display()),
                }
            }
        };
        for (p, plog) in &mut speaker {
            p.check_alive(plog)?;
        }
        if wait_line(&mut peers, "ready")? != "ready" {
            bail!("the peers did not get ready (see {})", log.display());
        }
        if s != Speaker::Frr {
            // Both sessions Established as the speaker sees them.
            let mut c = Client::connect(&dir.join("ctl"))?;
            let up = established(&mut c)?;
            if up != 2 {
                bail!("{up} of 2 sessions Established at the speaker");
            }
        }
        let pids: Vec<i32> = speaker.iter().map(|(p, _)| p.pid()).collect();
        let cpu = |pids: &[i32]| -> anyhow::Result<f64> { pids.iter().map(|p| cpu_secs(*p)).sum() };
        let cpu0 = cpu(&pids)?;
        let load = load();
        peers.send("go")?;
        let json = wait_line(&mut peers, "result")?;
        let got: Trial = serde_json::from_str(&json)
            .with_context(|| format!("the peers said {json:?} (see {})", log.display()))?;
        let o = Outcome {
            got,
            cpu: cpu(&pids)? - cpu0,
            peak_rss_kib: pids
                .iter()
                .map(|p| status_kib(*p, "VmHWM:"))
                .sum::<anyhow::Result<u64>>()?,
            load,
            ..Outcome::default()
        };
        let _ = peers.send("stop");
        peers.stop(Duration::from_secs(2));
        for (p, _) in speaker.iter_mut().rev() {
            p.stop(Duration::from_secs(5));
        }
        drop(net);
        Ok(o)
    }

    /// The speaker's processes (FRR: zebra, then bgpd) and their logs.
    fn start(
        args: &Args,
        s: Speaker,
        dir: &Path,
        ns: &str,
    ) -> anyhow::Result<Vec<(Proc, PathBuf)>> {
        let nice = args.timing.nice;
        let log = dir.join("speaker.log");
        match s {
            Speaker::Wrend | Speaker::Bird2 => {
                let conf = dir.join(if s == Speaker::Wrend {
                    "wrend.toml"
                } else {
                    "bird.conf"
                });
                std::fs::write(&conf, config(s, dir))?;
                let pid = dir.join("pid");
                let bird_pid = (s == Speaker::Bird2).then_some(pid.as_path());
                let argv = speaker_argv(&binary(args, s), &conf, &dir.join("ctl"), bird_pid);
                let p = Proc::spawn(ns, &argv, &log, false, nice)?;
                let t = Instant::now();
                while Client::connect(&dir.join("ctl")).is_err() {
                    if t.elapsed() > Duration::from_secs(10) {
                        bail!("{} did not open its control socket", s.name());
                    }
                    sleep(Duration::from_millis(50))?;
                }
                Ok(vec![(p, log)])
            }
            Speaker::Frr => {
                std::fs::write(dir.join("zebra.conf"), "hostname speaker\n")?;
                std::fs::write(dir.join("bgpd.conf"), config(s, dir))?;
                let daemon = |bin: PathBuf, name: &str| -> Vec<String> {
                    let conf = dir.join(format!("{name}.conf"));
                    let mut v = vec![bin.display().to_string()];
                    v.extend(harness::peers::frr_args(name, &conf, dir));
                    v
                };
                let zlog = dir.join("zebra.log");
                let zebra = Proc::spawn(
                    ns,
                    &daemon(harness::peers::frr_zebra(), "zebra"),
                    &zlog,
                    false,
                    nice,
                )?;
                let t = Instant::now();
                while !dir.join("zserv.api").exists() {
                    if t.elapsed() > Duration::from_secs(10) {
                        bail!("zebra did not come up (see {})", zlog.display());
                    }
                    sleep(Duration::from_millis(50))?;
                }
                let mut argv = daemon(harness::peers::frr_bgpd(), "bgpd");
                // No FIB: nothing goes to zebra's kernel table.
                argv.push("-n".into());
                let bgpd = Proc::spawn(ns, &argv, &log, false, nice)?;
                Ok(vec![(zebra, zlog), (bgpd, log)])
            }
        }
    }

    pub(super) fn config(s: Speaker, dir: &Path) -> String {
        let peers = [
            (SENDER, SENDER_ASN, "Sender"),
            (RECEIVER, RECEIVER_ASN, "Receiver"),
        ];
        let mut c = String::new();
        match s {
            Speaker::Wrend => {
                let _ = write!(
                    c,
                    "router_id = \"{SPEAKER}\"\nasn = {SPEAKER_ASN}\noriginate = []\n\n\
                     [listen]\naddresses = [\"{SPEAKER}\"]\nport = 179\n\n\
                     [defaults]\nhold_time = {HOLD}\npassive = true\n\n\
                     [kernel]\nenabled = false\n\n\
                     [[pool]]\ncidr = \"100.64.0.0/10\"\n"
                );
                for (addr, asn, _) in peers {
                    let _ = write!(c, "\n[[peer]]\naddress = \"{addr}\"\nasn = {asn}\n");
                }
            }
            Speaker::Bird2 => {
                let _ = writeln!(c, "log \"{}\" all;", dir.join("bird.log").display());
                let _ = writeln!(c, "router id {SPEAKER};\nprotocol device {{ }}");
                for (addr, asn, name) in peers {
                    let _ = writeln!(
                        c,
                        "protocol bgp {name} {{\n  local {SPEAKER} as {SPEAKER_ASN};\n  \
                         neighbor {addr} as {asn};\n  passive on;\n  hold time {HOLD};\n  \
                         ipv4 {{ import all; export all; }};\n}}"
                    );
                }
            }
            Speaker::Frr => {
                let _ = writeln!(
                    c,
                    "frr defaults traditional\nhostname speaker\n!\nrouter bgp {SPEAKER_ASN}\n \
                     bgp router-id {SPEAKER}\n no bgp ebgp-requires-policy\n \
                     no bgp default ipv4-unicast"
                );
                for (addr, asn, _) in peers {
                    let _ = writeln!(
                        c,
                        " neighbor {addr} remote-as {asn}\n neighbor {addr} passive\n \
                         neighbor {addr} timers 80 {HOLD}\n \
                         neighbor {addr} advertisement-interval 0"
                    );
                }
                c.push_str(" address-family ipv4 unicast\n");
                for (addr, ..) in peers {
                    let _ = writeln!(c, "  neighbor {addr} activate");
                }
                c.push_str(" exit-address-family\n!\n");
            }
        }
        c
    }

    /// The two namespaces, the veth's ends up, permanent neighbour entries instead of ARP.
    fn netns(dir: &Path) -> anyhow::Result<RecvPeers> {
        let g = RecvPeers::create(
            NS_PREFIX,
            &["address", SPEAKER_MAC],
            &["address", PEERS_MAC],
        )?;
        let speaker = format!(
            "link set vr up\naddr add {SPEAKER}/24 dev vr\n\
             neigh replace {SENDER} lladdr {PEERS_MAC} dev vr nud permanent\n\
             neigh replace {RECEIVER} lladdr {PEERS_MAC} dev vr nud permanent\n"
        );
        let peers = format!(
            "link set vp up\naddr add {SENDER}/24 dev vp\naddr add {RECEIVER}/24 dev vp\n\
             neigh replace {SPEAKER} lladdr {SPEAKER_MAC} dev vp nud permanent\n"
        );
        ip_batch(&g.recv, &speaker, &dir.join("ip-speaker.batch"))?;
        ip_batch(&g.peers, &peers, &dir.join("ip-peers.batch"))?;
        Ok(g)
    }

    /// The fewest UPDATEs that carry `routes` /`len` prefixes of one attribute set
    /// (AS_PATH of two 4-octet ASNs, ORIGIN, NEXT_HOP: 27 octets) in 4,096 octets.
    fn fewest(routes: usize, len: u8) -> usize {
        let room = 4096 - 19 - 4 - 27;
        let per = room / (1 + usize::from(len).div_ceil(8));
        routes.div_ceil(per)
    }

    fn line(o: &Outcome) -> String {
        match &o.error {
            Some(e) => format!("  {} trial {}: error: {e}", o.speaker, o.trial),
            None => format!(
                "  {} trial {}: {:.3} s (first out {:.3} s), {} UPDATEs / {} octets out, \
                 CPU {:.3} s, peak RSS {:.1} MiB, load {:.2}",
                o.speaker,
                o.trial,
                o.got.secs,
                o.got.first_secs,
                o.got.updates,
                o.got.octets,
                o.cpu,
                o.peak_rss_kib as f64 / 1024.0,
                o.load
            ),
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn header(args: &Args) -> String {
        let len = harness::kernel::prefix_len(args.routes, None).unwrap_or(32);
        let mut versions = Vec::new();
        for s in &args.speakers {
            let v = cmd_out(&binary(args, *s).display().to_string(), &["--version"]);
            versions.push(format!("{}: {}", s.name(), v.lines().next().unwrap_or("?")));
        }
        format!(
            "Date: {}\nMachine: {}\nwren checkout: {}; {}\nBurst: {} /{len} routes, {} to an \
             UPDATE ({} UPDATEs), {} attribute set(s); fewest UPDATEs out: {}",
            cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            harness::bench::machine(),
            harness::bench::checkout(),
            versions.join("; "),
            args.routes,
            args.per_update,
            args.routes.div_ceil(args.per_update),
            args.attr_sets,
            fewest(args.routes, len),
        )
    }

    fn report(header: &str, args: &Args, outcomes: &[Outcome]) -> String {
        let mut r = format!("{header}\n\n");
        let _ = writeln!(
            r,
            "| speaker | first UPDATE in → last route out, median (s) | trials (s) | UPDATEs out | \
             octets out | routes announced | CPU, median (s) | peak RSS (MiB) | load (1 min) |\n\
             |---|--:|---|--:|--:|--:|--:|--:|---|"
        );
        let mut medians = Vec::new();
        for s in &args.speakers {
            let ok: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.speaker == s.name() && o.error.is_none())
                .collect();
            if ok.is_empty() {
                let _ = writeln!(r, "| {} | no trial finished | | | | | | | |", s.name());
                continue;
            }
            let m = median(ok.iter().map(|o| o.got.secs).collect());
            medians.push((s.name(), m));
            let list = |f: &dyn Fn(&Outcome) -> String| {
                ok.iter().map(|o| f(o)).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(
                r,
                "| {} | {m:.3} | {} | {} | {} | {} | {:.3} | {:.1} | {} |",
                s.name(),
                list(&|o| format!("{:.3}", o.got.secs)),
                list(&|o| o.got.updates.to_string()),
                list(&|o| o.got.octets.to_string()),
                list(&|o| o.got.announced.to_string()),
                median(ok.iter().map(|o| o.cpu).collect()),
                median(ok.iter().map(|o| o.peak_rss_kib as f64 / 1024.0).collect()),
                list(&|o| format!("{:.1}", o.load)),
            );
        }
        if let (Some((_, w)), Some((_, b))) = (
            medians.iter().find(|(n, _)| *n == "wrend"),
            medians.iter().find(|(n, _)| *n == "bird2"),
        ) {
            let _ = writeln!(r, "\nwrend / BIRD 2: {:.2}×", w / b);
        }
        for o in outcomes.iter().filter(|o| o.error.is_some()) {
            let _ = writeln!(r, "\n{}", line(o));
        }
        r
    }
}

//! Many peers dialling one speaker at once: `sudo bash tests/cargo.sh bench --bench mesh_scale`.
//!
//! For each N (default 100, 300, 1000) and each receiver (wrend, BIRD 2, BIRD 1.6.8, FRR) this
//! builds two network namespaces joined by one veth:
//!
//! * the receiver's, where the speaker listens on 198.51.100.1:179, passive, with one iBGP
//!   peer (AS 64512, hold 9 s, keepalive 3 s) configured per simulated node;
//! * the peers', holding 198.18.0.1, 198.18.0.2, … (one /32 each), where a light BGP client
//!   (this binary, re-executed with `ip netns exec`) opens all N sessions at the same instant.
//!   Peer k sends OPEN (AS 64512, hold 9, multiprotocol IPv4 unicast and 4-octet AS), answers
//!   the receiver's OPEN with a KEEPALIVE, and once Established announces one /26
//!   (100.64.0.0/26 + k·64: ORIGIN IGP, empty AS_PATH, NEXT_HOP its address, LOCAL_PREF 100),
//!   then End-of-RIB, then keeps the session up with keepalives every 3 s. A refused, reset or
//!   timed-out connection is retried 5 s later; a TCP connect waits out the kernel's SYN
//!   retransmissions unless `--connect-timeout` says otherwise.
//!   The client is one thread: every session reads into one buffer and its messages are
//!   parsed there in place, and the thread sleeps 1 ms before it blocks on its sockets
//!   (`client::PAUSE`), so that it costs the machine it shares with the receiver little
//!   (benches/README.md, `mesh_scale --reflector`, session 8).
//!
//! For the receiver the peers are on the link (its veth also has 198.19.255.254/15, as
//! Calico nodes share a subnet), with a permanent neighbour entry each instead of ARP. Every receiver writes the learnt blocks into its
//! namespace's main table as `100.64.x.y/26 via 198.18.x.y` (`--no-kernel` turns that off):
//! wrend with its default `[kernel]` settings, BIRD with a kernel protocol exporting
//! 100.64.0.0/10 and the peers' next hops resolved recursively through a static
//! `198.18.0.0/15 via "vr"` route, FRR (`zebra` and `bgpd`, as user frr, their sockets in the
//! run's directory) with one peer group of passive iBGP neighbours. FRR's figures (CPU, RSS)
//! are the sum of both daemons; its "control socket" is `vtysh -c "show bgp ipv4 unicast
//! summary json"` (state and prefixes received per neighbour), one process per query.
//!
//! Measured from the moment the client is told to dial: the time until the receiver's
//! control socket shows all N sessions Established (`show protocols`) and all N blocks in its
//! table (`show route count`, polled every 100 ms over one connection), and until all N blocks
//! are in the kernel table (read from `/proc/PID/net/route`); the receiver's peak RSS
//! (VmHWM), its CPU time (utime + stime) from the dial until convergence, the kernel's
//! ListenDrops in the receiver namespace, hold-timer expiries (NOTIFICATION 4 from the
//! receiver, or the client's own hold timer), connect errors and SYN retransmissions seen by
//! the client, and then — nothing polled — the receiver's CPU over an idle window.
//!
//! With `--reflector` (issue 18) the receiver is a Calico route-reflector node: cluster ID set,
//! every peer a route-reflector client, pools 100.64.0.0/10 and 2001:db8:100::/40 (wrend),
//! both families (BIRD 2: ipv4 and ipv6 channels; FRR: both address families). Each peer also
//! offers IPv6 unicast, announces its /122 (2001:db8:100::/122 + 64k, next hop
//! 2001:db8:18::k+1, on the receiver's link with a permanent neighbour entry) and End-of-RIB
//! for it, and counts in place every block reflected to it: the client says when every peer
//! holds all 2N − 2 other blocks, and reports its own blocks sent back, UPDATEs, prefixes and
//! withdrawals; the report adds the time from the last Established and the client's CPU.
//! BIRD 1.6 (IPv6 in a second daemon) is not a reflector here.
//!
//! Churn through the reflector (`--churn K`, `--join J`): every peer also offers graceful
//! restart for both families (RFC 4724: restart time 120 s, forwarding state kept) and the
//! receivers have it on (FRR `bgp graceful-restart`, BIRD `graceful restart on`). Once every
//! client holds every block, K clients spread over the mesh reset their connections (no
//! NOTIFICATION) and dial again at once with the Restart State bit, announcing their /26
//! moved to 100.64.0.0/26 + 64·(32768 + k) (a node whose IPAM block changed), their /122 as
//! before, and End-of-RIB; then J more clients, configured from the start, join. A phase
//! ends when every client holds exactly the other clients' current blocks (no stale /26
//! left). Its figures, on the client's clock from the command: the last of its clients up,
//! every client holding its set, the withdrawals of blocks that did not change (none under
//! graceful restart), and the receiver's CPU.
//!
//! Options (after `--`): `--peers 100,300,1000`, `--speakers wrend,bird2,bird16,frr`,
//! `--hold SECONDS` (9) and `--keepalive SECONDS` (3) for the receiver and every peer (Calico's
//! BIRD: 240 and 80; make `--idle` a multiple of the keepalive then, as sessions that came up
//! together send their keepalives together), `--idle SECONDS` (60), `--deadline SECONDS`
//! (180), `--reflector`, `--churn K` (0), `--join J` (0), `--connect-timeout SECONDS` (0: the
//! kernel's SYN backoff), `--spread SECONDS` (0: every peer dials at the same instant;
//! otherwise peer k's first dial comes SECONDS · k / N after the start, as nodes restarting
//! over a few seconds would), `--no-kernel`, `--nice N` (-10, receiver and client),
//! `--wait-quiet SECONDS` (30: wait for other load to end before each run, under 10 % of a
//! core busy over 2 s), `--wrend PATH`, `--bird2 PATH`, `--bird16 PATH`, `--frr DIR`
//! (/usr/lib/frr), `--out FILE`. Needs root. Under `cargo test` (no `--bench` argument) it
//! does nothing. Work files and logs (configurations, receiver and
//! client logs, `progress.tsv` once a second, `ss` snapshots) go to
//! `target/tmp/mesh_scale/SPEAKER-N/`; the report to `target/tmp/mesh_scale/results.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{
    Client, cmd_out, established, route_count, sleep, speaker_argv, stopped, wait_quiet,
};
use harness::netns::{RecvPeers, ip_batch};
use harness::proc::{Proc, cpu_secs, listening, machine_busy_secs, netstat, status_kib};

/// First simulated peer; peer k has `PEER_BASE + k`.
const PEER_BASE: u32 = Ipv4Addr::new(198, 18, 0, 1).to_bits();
/// Peer k announces `BLOCK_BASE + 64 k` / 26.
const BLOCK_BASE: u32 = Ipv4Addr::new(100, 64, 0, 0).to_bits();
/// The receiver's address, and the address of the peers' end of the veth.
const RECEIVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The receiver's address on the peers' subnet (198.18.0.0/15), as Calico nodes share one:
/// BIRD takes the peers' next hops for neighbours only inside an interface's prefix.
const RECEIVER_ONLINK: &str = "198.19.255.254/15";
const PEERS_END: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const RECEIVER_MAC: &str = "02:00:5e:00:00:01";
const PEERS_MAC: &str = "02:00:5e:00:00:02";
const ASN: u32 = 64512;
/// Wait after a failed connection before dialling again (Calico's `connect retry time 5`).
const RETRY: Duration = Duration::from_secs(5);
/// 100.64.0.0/10 holds this many /26s.
const MAX_PEERS: usize = 1 << 16;
/// Namespace names: `wms-r-PID` and `wms-p-PID`.
const NS_PREFIX: &str = "wms-";
const CLIENT_CMD: &str = "__mesh_scale_client";
const POLL: Duration = Duration::from_millis(100);
/// Quiet time between convergence and the idle window.
const SETTLE: Duration = Duration::from_secs(2);

/// Reflector mode: peer k's IPv6 address is `PEER6_BASE + k + 1` (2001:db8:18::/64), its
/// /122 block `BLOCK6_BASE + 64 k`.
const PEER6_BASE: u128 = 0x2001_0db8_0018_0000_0000_0000_0000_0000;
const BLOCK6_BASE: u128 = 0x2001_0db8_0100_0000_0000_0000_0000_0000;
/// The reflector's address on the peers' IPv6 subnet, where their next hops resolve.
const RECEIVER6_ONLINK: &str = "2001:db8:18::ffff:fffe/64";
/// The reflector's cluster ID (RFC 4456 §7).
const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// Churn mode: a restarted peer k announces /26 number `MOVED + k` in place of its own (a
/// node whose IPAM block changed), still inside 100.64.0.0/10.
const MOVED: usize = MAX_PEERS / 2;
/// Churn mode: the restart time the peers announce (RFC 4724 §3), BIRD's and Calico's.
const RESTART_TIME: u16 = 120;

fn peer_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(PEER_BASE + k as u32)
}

fn block(k: usize) -> ipnet::Ipv4Net {
    ipnet::Ipv4Net::new(Ipv4Addr::from_bits(BLOCK_BASE + 64 * k as u32), 26).expect("prefix")
}

/// Churn mode: peer k's /26 after it restarted.
fn moved_block(k: usize) -> ipnet::Ipv4Net {
    block(MOVED + k)
}

fn peer_addr6(k: usize) -> Ipv6Addr {
    Ipv6Addr::from_bits(PEER6_BASE + k as u128 + 1)
}

fn block6(k: usize) -> ipnet::Ipv6Net {
    ipnet::Ipv6Net::new(Ipv6Addr::from_bits(BLOCK6_BASE + 64 * k as u128), 122).expect("prefix")
}

fn main() -> ExitCode {
    harness::bench::main(
        "mesh_scale",
        true,
        &[(CLIENT_CMD, client::main)],
        controller::run,
    )
}

#[derive(Parser, Debug)]
#[command(about = "N peers dialling one BGP speaker at once")]
struct Args {
    /// Numbers of peers, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000")]
    peers: Vec<usize>,
    /// Receivers: wrend, bird2, bird16, frr.
    #[arg(long, value_delimiter = ',', default_value = "wrend,bird2,bird16,frr")]
    speakers: Vec<Speaker>,
    /// Hold time the receiver and every peer propose (Calico's BIRD: 240).
    #[arg(long, default_value_t = 9)]
    hold: u16,
    /// Keepalive interval of the receiver and every peer (Calico's BIRD: 80).
    #[arg(long, default_value_t = 3)]
    keepalive: u16,
    /// Idle window after convergence, in seconds (0: skip).
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Give up on convergence after this many seconds.
    #[arg(long, default_value_t = 180)]
    deadline: u64,
    /// Abandon a TCP connect after this many seconds and dial again after 5 s, as a BIRD
    /// peer with `connect retry time 5` does (0: wait out the kernel's SYN retransmissions).
    #[arg(long, default_value_t = 0)]
    connect_timeout: u64,
    /// Spread the first dials evenly over this many seconds instead of dialling all at once
    /// (peer k dials at SPREAD · k / N).
    #[arg(long, default_value_t = 0.0)]
    spread: f64,
    #[command(flatten)]
    timing: harness::bench::Timing,
    /// Receivers do not write kernel routes (wrend `[kernel] enabled = false`; BIRD without
    /// a kernel protocol).
    #[arg(long)]
    no_kernel: bool,
    /// The receiver is a route reflector (cluster ID set, every peer a client) and every
    /// peer also announces a /122 and counts the blocks reflected to it.
    #[arg(long)]
    reflector: bool,
    /// Reflector mode, churn: once every client holds every block, this many clients
    /// restart at once (TCP reset, no NOTIFICATION; graceful restart on everywhere) and come
    /// back with their /26 moved.
    #[arg(long, default_value_t = 0)]
    churn: usize,
    /// Reflector mode, churn: then this many more clients (configured from the start) join.
    #[arg(long, default_value_t = 0)]
    join: usize,
    #[command(flatten)]
    daemons: harness::bench::Daemons,
    /// FRR's daemons (`zebra` and `bgpd`, Debian's frr) are in this directory.
    #[arg(long, default_value = "/usr/lib/frr")]
    frr: PathBuf,
    /// Also write the report (markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Speaker {
    Wrend,
    Bird2,
    Bird16,
    Frr,
}

impl Speaker {
    fn name(self) -> &'static str {
        match self {
            Speaker::Wrend => "wrend",
            Speaker::Bird2 => "bird2",
            Speaker::Bird16 => "bird16",
            Speaker::Frr => "frr",
        }
    }
}

/// What the client reports when told to stop.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ClientReport {
    /// Sessions Established now, as the client sees them.
    established: usize,
    /// Peers that were Established at least once.
    ever_established: usize,
    /// When the last peer first became Established (client's view), ms after the dial.
    all_established_ms: Option<u64>,
    connect_attempts: u64,
    /// Failed connects by error.
    connect_errors: BTreeMap<String, u64>,
    slowest_connect_ms: u64,
    /// NOTIFICATIONs from the receiver, by "code/subcode".
    notifications: BTreeMap<String, u64>,
    /// The client's own hold timer expired (the receiver went quiet).
    own_hold_expiries: u64,
    /// No OPEN from the receiver within 240 s of connecting (BIRD's `startup hold time`):
    /// the connection never reached the receiver's application.
    opensent_timeouts: u64,
    /// Connections the receiver closed or reset without a NOTIFICATION.
    closed_without_notification: u64,
    /// The same, by how ("eof" or "reset") and when (the session's state).
    closes: BTreeMap<String, u64>,
    /// Established sessions that went down.
    flaps: u64,
    /// Malformed messages from the receiver.
    malformed: u64,
    /// Reflector mode: when every client first held all 2N − 2 other blocks, ms after the dial.
    all_held_ms: Option<u64>,
    /// Clients that hold all 2N − 2 other blocks now.
    full: usize,
    /// Reflector mode: a client's own blocks sent back to it.
    own_routes_back: u64,
    /// UPDATEs and prefixes (announced or withdrawn) received by all clients.
    updates: u64,
    prefixes: u64,
    /// Prefixes withdrawn, and the other blocks all clients hold now.
    withdrawn: u64,
    held: u64,
    /// Churn mode: the current phase (0: the first dial; then each `restart` or `join`).
    phase: u64,
    /// Its clients (restarted or joining), how many of them came up since it began, and
    /// when the last did, ms after it began (the client's clock).
    phase_clients: usize,
    phase_up: usize,
    phase_established_ms: Option<u64>,
    /// When every client first held exactly the blocks of the phase, ms after it began.
    phase_held_ms: Option<u64>,
    /// Withdrawals of blocks the client is to go on holding (a restarting peer's /122, say):
    /// none under graceful restart (RFC 4724 §4.2).
    unchanged_withdrawn: u64,
    /// Sessions the client ended on purpose (churn mode's restarts).
    restarts: u64,
    #[serde(skip)]
    plan: Plan,
}

/// Churn mode: what every client is to hold in the current phase.
#[derive(Debug, Default, Clone)]
struct Plan {
    epoch: u64,
    /// Peers `0..active` are in the mesh.
    active: usize,
    /// Peers whose /26 moved to [`moved_block`].
    moved: Arc<Vec<bool>>,
    /// The peers the phase restarts (`restart`) or adds.
    members: Arc<Vec<bool>>,
    restart: bool,
    started: Option<Instant>,
}

impl Plan {
    fn since_start(&self) -> u64 {
        self.started.map_or(0, |t| t.elapsed().as_millis() as u64)
    }
}

impl ClientReport {
    /// NOTIFICATIONs with code 4 plus the client's own expiries.
    fn hold_expiries(&self) -> u64 {
        self.notifications
            .iter()
            .filter(|(k, _)| k.starts_with("4/"))
            .map(|(_, v)| v)
            .sum::<u64>()
            + self.own_hold_expiries
    }
}

// ---------------------------------------------------------------------------------------------
// The light client: runs inside the peers' namespace.

mod client {
    use std::cell::RefCell;
    use std::io::Read as _;
    use std::net::{IpAddr, SocketAddr};
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use anyhow::bail;
    use socket2::SockRef;
    use tokio::io::{AsyncWriteExt, Interest};
    use tokio::net::{TcpSocket, TcpStream};
    use tokio::sync::watch;
    use tokio::time::Instant;
    use wren::wire::attr::{MpReach, MpUnreach};
    use wren::wire::open::{GrFamily, GracefulRestart};
    use wren::wire::{
        Afi, Attr, Capability, Message, Negotiated, PathAttribute, Prefix, Safi, Update, decode,
        frame,
    };

    use super::{
        ASN, BLOCK_BASE, BLOCK6_BASE, ClientReport, MOVED, Plan, RESTART_TIME, RETRY, block,
        block6, moved_block, peer_addr, peer_addr6,
    };
    use crate::harness::{self, bgp};

    struct Shared {
        t0: OnceLock<Instant>,
        report: Mutex<ClientReport>,
        /// Per peer: ever Established.
        ever: Mutex<Vec<bool>>,
        peers: usize,
        connect_timeout: Option<Duration>,
        /// Peer k's first dial waits `spread · k / initial` after the start (not a joiner's).
        spread: Duration,
        target: SocketAddr,
        /// Proposed hold time and keepalive interval, in seconds.
        hold: u16,
        keepalive: u16,
        /// Reflector mode: announce a /122 too and count what is reflected.
        reflector: bool,
        /// Churn mode: peers `initial..peers` dial only when told to join, and every peer
        /// offers graceful restart.
        initial: usize,
        churn: bool,
        /// `ClientReport::plan`'s epoch, read without the lock.
        epoch: AtomicU64,
        /// A phase began (its epoch): the members of a `restart` phase end their sessions.
        phase_tx: watch::Sender<u64>,
    }

    impl Shared {
        fn with<T>(&self, f: impl FnOnce(&mut ClientReport) -> T) -> T {
            f(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()))
        }

        fn since_t0(&self) -> u64 {
            self.t0.get().map_or(0, |t| t.elapsed().as_millis() as u64)
        }
    }

    /// `__mesh_scale_client PEERS TARGET CONNECT_TIMEOUT_SECS HOLD KEEPALIVE SPREAD_MS
    /// REFLECTOR [JOINERS CHURN]`; then "go" / "stop" on stdin. In reflector mode it prints
    /// "held" once every peer holds all the others' blocks. Churn mode: the last JOINERS of
    /// the PEERS wait for "join"; "restart K" restarts K peers; each phase ends with "held".
    /// "stop" prints the report (and stops nothing).
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let parsed = (|| -> Option<(usize, SocketAddr, u64, u16, u16, u64, bool)> {
            Some((
                args.first()?.parse().ok()?,
                args.get(1)?.parse().ok()?,
                args.get(2)?.parse().ok()?,
                args.get(3)?.parse().ok()?,
                args.get(4)?.parse().ok()?,
                args.get(5)?.parse().ok()?,
                args.get(6)?.parse().ok()?,
            ))
        })();
        let churn = (|| -> Option<(usize, bool)> {
            Some((
                args.get(7).map_or(Some(0), |a| a.parse().ok())?,
                args.get(8).map_or(Some(false), |a| a.parse().ok())?,
            ))
        })();
        let (Some((peers, target, timeout, hold, keepalive, spread_ms, reflector)), Some(churn)) =
            (parsed, churn)
        else {
            bail!(
                "usage: {} PEERS TARGET TIMEOUT HOLD KEEPALIVE SPREAD_MS REFLECTOR [JOINERS CHURN]",
                super::CLIENT_CMD
            );
        };
        let (joiners, churn) = churn;
        if joiners > peers || peers > MOVED {
            bail!("JOINERS must be at most PEERS, and PEERS at most {MOVED}");
        }
        let report = ClientReport {
            plan: Plan {
                active: peers - joiners,
                moved: Arc::new(vec![false; peers]),
                members: Arc::new(vec![false; peers]),
                ..Plan::default()
            },
            ..ClientReport::default()
        };
        let shared = Arc::new(Shared {
            t0: OnceLock::new(),
            report: Mutex::new(report),
            ever: Mutex::new(vec![false; peers]),
            peers,
            connect_timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
            spread: Duration::from_millis(spread_ms),
            target,
            hold,
            keepalive,
            reflector,
            initial: peers - joiners,
            churn,
            epoch: AtomicU64::new(0),
            phase_tx: watch::Sender::new(0),
        });
        // One thread; before it blocks waiting for the sockets it sleeps PAUSE, so that a wake-up
        // finds many sockets ready with more bytes each.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(|| std::thread::sleep(PAUSE))
            .build()?
            .block_on(run(shared))
    }

    async fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
        // Commands from stdin, read by a plain thread.
        let mut cmd_rx = harness::bench::stdin_lines();
        let (go_tx, go_rx) = watch::channel(false);
        let (join_tx, join_rx) = watch::channel(false);
        // Every socket is bound before the start, so the dial is N connect() calls.
        for k in 0..shared.peers {
            let sock = bound_socket(k)?;
            let go = if k < shared.initial { &go_rx } else { &join_rx };
            tokio::spawn(peer(k, sock, go.clone(), shared.clone()));
        }
        println!("ready");
        while let Some(cmd) = cmd_rx.recv().await {
            match cmd.split_whitespace().collect::<Vec<_>>()[..] {
                ["go"] => {
                    let _ = shared.t0.set(Instant::now());
                    go_tx.send_replace(true);
                }
                ["stop"] => {
                    let report = shared.with(|r| r.clone());
                    println!("{}", serde_json::to_string(&report)?);
                }
                ["restart", k] => {
                    let Ok(k) = k.parse::<usize>() else { continue };
                    begin_phase(&shared, |plan| {
                        // K peers spread evenly over the mesh.
                        let k = k.min(plan.active);
                        (0..k).map(|i| i * plan.active / k).collect()
                    });
                }
                ["join"] => {
                    begin_phase(&shared, |plan| {
                        plan.active = shared.peers;
                        (shared.initial..shared.peers).collect()
                    });
                    join_tx.send_replace(true);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Churn mode: a new phase, whose members `pick` chooses (and may change the mesh):
    /// a restart phase moves its members' /26s. Every client is to hold the new set, and the
    /// phase's figures start from now.
    fn begin_phase(shared: &Shared, pick: impl FnOnce(&mut Plan) -> Vec<usize>) {
        let epoch = shared.with(|r| {
            let plan = &mut r.plan;
            let before = plan.active;
            let members = pick(plan);
            plan.restart = plan.active == before;
            let mut is = vec![false; shared.peers];
            let mut moved = plan.moved.to_vec();
            for &k in &members {
                is[k] = true;
                moved[k] |= plan.restart;
            }
            plan.members = Arc::new(is);
            plan.moved = Arc::new(moved);
            plan.epoch += 1;
            plan.started = Some(std::time::Instant::now());
            r.full = 0;
            r.phase = plan.epoch;
            r.phase_clients = members.len();
            r.phase_up = 0;
            r.phase_established_ms = None;
            r.phase_held_ms = None;
            plan.epoch
        });
        shared.epoch.store(epoch, Ordering::Relaxed);
        shared.phase_tx.send_replace(epoch);
    }

    /// RFC 4271 §10 jitter, as BIRD applies it to its connect retry timer: a uniform
    /// 0.75–1.0 of `d`, so that peers that failed together do not retry together.
    fn jittered(d: Duration, k: usize) -> Duration {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos() as u64)
            ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // splitmix64
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let frac = 0.75 + 0.25 * (z >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(frac)
    }

    fn bound_socket(k: usize) -> anyhow::Result<TcpSocket> {
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(IpAddr::V4(peer_addr(k)), 0))
            .map_err(|e| anyhow::anyhow!("bind {}: {e}", peer_addr(k)))?;
        Ok(s)
    }

    /// One simulated node: dial, hold the session, dial again 5 s after it fails.
    async fn peer(k: usize, first: TcpSocket, mut go: watch::Receiver<bool>, shared: Arc<Shared>) {
        if go.wait_for(|g| *g).await.is_err() {
            return;
        }
        // Joiners dial at once when told.
        if !shared.spread.is_zero() && k < shared.initial {
            tokio::time::sleep(shared.spread.mul_f64(k as f64 / shared.initial as f64)).await;
        }
        let mut sock = Some(first);
        // Churn mode: this peer restarted (its OPENs carry the Restart State bit).
        let mut restarted = false;
        loop {
            let s = match sock.take().map_or_else(|| bound_socket(k), Ok) {
                Ok(s) => s,
                Err(e) => {
                    shared.with(|r| *r.connect_errors.entry(e.to_string()).or_default() += 1);
                    tokio::time::sleep(jittered(RETRY, k)).await;
                    continue;
                }
            };
            shared.with(|r| r.connect_attempts += 1);
            let started = Instant::now();
            let conn = match shared.connect_timeout {
                Some(t) => match tokio::time::timeout(t, s.connect(shared.target)).await {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timeout (ours)",
                    )),
                },
                None => s.connect(shared.target).await,
            };
            match conn {
                Ok(stream) => {
                    let ms = started.elapsed().as_millis() as u64;
                    shared.with(|r| r.slowest_connect_ms = r.slowest_connect_ms.max(ms));
                    if session(k, stream, &shared, restarted).await {
                        // Back at once, as a restarted node is (RFC 4724 §4.1).
                        restarted = true;
                        continue;
                    }
                }
                Err(e) => {
                    let key = match e.raw_os_error() {
                        Some(code) => format!("{} ({code})", e.kind()),
                        None => e.to_string(),
                    };
                    shared.with(|r| *r.connect_errors.entry(key).or_default() += 1);
                }
            }
            tokio::time::sleep(jittered(RETRY, k)).await;
        }
    }

    enum End {
        Notification(u8, u8),
        OwnHold,
        OpenSentTimeout,
        Closed(&'static str),
        Malformed,
        /// Churn mode: told to restart; the connection is reset without a NOTIFICATION.
        Restart,
    }

    /// One session; whether it ended in a restart.
    async fn session(k: usize, mut stream: TcpStream, shared: &Shared, restarted: bool) -> bool {
        let _ = stream.set_nodelay(true);
        let mut established = false;
        let mut held = Held::new(k, shared.peers);
        let end = run_session(
            k,
            &mut stream,
            shared,
            restarted,
            (&mut established, &mut held),
        )
        .await;
        let restart = matches!(end, End::Restart);
        // The session's routes are gone with it.
        held.count = 0;
        held.flush(shared);
        shared.with(|r| {
            match end {
                End::Notification(c, s) => {
                    *r.notifications.entry(format!("{c}/{s}")).or_default() += 1
                }
                End::OwnHold => r.own_hold_expiries += 1,
                End::OpenSentTimeout => r.opensent_timeouts += 1,
                End::Closed(how) => {
                    r.closed_without_notification += 1;
                    let phase = if established {
                        "Established"
                    } else {
                        "before Established"
                    };
                    *r.closes.entry(format!("{how} {phase}")).or_default() += 1;
                }
                End::Malformed => r.malformed += 1,
                End::Restart => r.restarts += 1,
            }
            if established {
                r.established -= 1;
                r.flaps += u64::from(!restart);
            }
        });
        restart
    }

    /// Churn mode adds graceful restart for both families (RFC 4724 §3), forwarding state
    /// kept, and the Restart State bit once the peer has restarted.
    fn open(k: usize, shared: &Shared, restarted: bool) -> Message {
        let mut extra = Vec::new();
        if shared.reflector {
            extra.push(Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            });
        }
        if shared.churn {
            let family = |afi| GrFamily {
                afi,
                safi: Safi::UNICAST,
                flags: GrFamily::FORWARDING,
            };
            extra.push(Capability::GracefulRestart(GracefulRestart {
                flags: if restarted {
                    GracefulRestart::RESTART_STATE
                } else {
                    0
                },
                restart_time: RESTART_TIME,
                families: vec![family(Afi::IPV4), family(Afi::IPV6)],
            }));
        }
        Message::Open(bgp::open(ASN, peer_addr(k), shared.hold, &extra))
    }

    /// Peer k's /26 (`moved`: the one it has after a restart), End-of-RIB; in reflector mode
    /// its /122 (next hop its IPv6 address) and IPv6's End-of-RIB too (RFC 4724 §2).
    fn announcements(k: usize, reflector: bool, moved: bool) -> Vec<Message> {
        let v4 = if moved { moved_block(k) } else { block(k) };
        let v4 = Update {
            withdrawn: Default::default(),
            attributes: bgp::ibgp_attributes(peer_addr(k)).into(),
            nlri: [Prefix::new(ipnet::IpNet::V4(v4))].into(),
        };
        let mut out = vec![Message::Update(v4), Message::Update(Update::default())];
        if reflector {
            let mut attributes = bgp::ibgp_attributes(peer_addr(k));
            attributes.retain(|a| !matches!(a.value, Attr::NextHop { .. }));
            attributes.push(PathAttribute::new(Attr::MpReach(Box::new(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: peer_addr6(k).into(),
                link_local: None,
                reserved: 0,
                nlri: [Prefix::new(ipnet::IpNet::V6(block6(k)))].into(),
            }))));
            let eor = PathAttribute::new(Attr::MpUnreach(Box::new(MpUnreach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                withdrawn: Vec::new(),
            })));
            out.push(Message::Update(Update {
                attributes: attributes.into(),
                ..Update::default()
            }));
            out.push(Message::Update(Update {
                attributes: vec![eor].into(),
                ..Update::default()
            }));
        }
        out
    }

    /// The blocks one client holds: bit 2k is peer k's /26, bit 2k + 1 its /122, and in
    /// churn mode bit 2·peers + k its moved /26. The counts go to the report at
    /// [`Held::flush`].
    struct Held {
        me: usize,
        peers: usize,
        bits: Vec<u64>,
        count: usize,
        /// Of `count`, the blocks `plan` wants held and those it does not.
        good: usize,
        bad: usize,
        /// The plan `good` and `bad` are counted against.
        plan: Plan,
        own: u64,
        updates: u64,
        prefixes: u64,
        withdrawn: u64,
        unchanged_withdrawn: u64,
        /// `count` as the report has it.
        reported_count: usize,
        /// The phase in which the report counts this client as holding its set.
        counted: Option<u64>,
    }

    impl Held {
        fn new(me: usize, peers: usize) -> Held {
            Held {
                me,
                peers,
                bits: vec![0; (3 * peers).div_ceil(64)],
                count: 0,
                good: 0,
                bad: 0,
                plan: Plan::default(),
                own: 0,
                updates: 0,
                prefixes: 0,
                withdrawn: 0,
                unchanged_withdrawn: 0,
                reported_count: 0,
                counted: None,
            }
        }

        /// Takes the current phase's plan, counting the blocks held against it again.
        fn sync(&mut self, shared: &Shared) {
            if self.plan.active > 0 && self.plan.epoch == shared.epoch.load(Ordering::Relaxed) {
                return;
            }
            self.plan = shared.with(|r| r.plan.clone());
            (self.good, self.bad) = (0, 0);
            for (w, &word) in self.bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let i = 64 * w + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if self.wanted(i) {
                        self.good += 1;
                    } else {
                        self.bad += 1;
                    }
                }
            }
        }

        /// Whether the plan has this client hold block `i`.
        fn wanted(&self, i: usize) -> bool {
            let (k, v6, moved) = match i.checked_sub(2 * self.peers) {
                Some(k) => (k, false, true),
                None => (i / 2, i % 2 == 1, false),
            };
            k != self.me
                && k < self.plan.active
                && (v6 || self.plan.moved.get(k).copied().unwrap_or(false) == moved)
        }

        /// Adds the counts since the last flush to the report; the first time in a phase that
        /// every client holds its set, notes the time (and the first time, the client's CPU)
        /// and says "held".
        fn flush(&mut self, shared: &Shared) {
            self.sync(shared);
            let full = self.full();
            let now_all = shared.with(|r| {
                r.own_routes_back += std::mem::take(&mut self.own);
                r.updates += std::mem::take(&mut self.updates);
                r.prefixes += std::mem::take(&mut self.prefixes);
                r.withdrawn += std::mem::take(&mut self.withdrawn);
                r.unchanged_withdrawn += std::mem::take(&mut self.unchanged_withdrawn);
                r.held = (r.held + self.count as u64).saturating_sub(self.reported_count as u64);
                self.reported_count = self.count;
                let epoch = r.plan.epoch;
                match (full, self.counted == Some(epoch)) {
                    (true, false) => {
                        r.full += 1;
                        self.counted = Some(epoch);
                    }
                    (false, true) => {
                        r.full -= 1;
                        self.counted = None;
                    }
                    _ => {}
                }
                if r.full < r.plan.active {
                    return false;
                }
                if epoch == 0 && r.all_held_ms.is_none() {
                    r.all_held_ms = Some(shared.since_t0());
                    return true;
                }
                if epoch > 0 && r.phase_held_ms.is_none() {
                    r.phase_held_ms = Some(r.plan.since_start());
                    return true;
                }
                false
            });
            if now_all {
                println!("held");
            }
        }

        /// Whether the client holds exactly the blocks of the plan.
        fn full(&self) -> bool {
            self.me < self.plan.active && self.bad == 0 && self.good == 2 * (self.plan.active - 1)
        }

        /// A prefix announced (`on`) or withdrawn: its length and address octets.
        fn prefix(&mut self, v6: bool, len: u8, addr: &[u8], on: bool) {
            self.prefixes += 1;
            self.withdrawn += u64::from(!on);
            // Only the blocks count: a /26 or a /122, whose address octets are all present.
            let k = match (v6, len) {
                (true, 122) => {
                    let Ok(b) = <[u8; 16]>::try_from(addr) else {
                        return;
                    };
                    (u128::from_be_bytes(b).wrapping_sub(BLOCK6_BASE) / 64) as usize
                }
                (false, 26) => {
                    let Ok(b) = <[u8; 4]>::try_from(addr) else {
                        return;
                    };
                    (u32::from_be_bytes(b).wrapping_sub(BLOCK_BASE) / 64) as usize
                }
                _ => return,
            };
            let i = match k.checked_sub(MOVED) {
                Some(m) if !v6 && m < self.peers => 2 * self.peers + m,
                _ if k < self.peers => 2 * k + usize::from(v6),
                _ => return,
            };
            if k == self.me || k.checked_sub(MOVED) == Some(self.me) {
                self.own += u64::from(on);
                return;
            }
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            let was = self.bits[w] & bit != 0;
            if on == was {
                return;
            }
            self.bits[w] ^= bit;
            let wanted = self.wanted(i);
            let n = if wanted {
                &mut self.good
            } else {
                &mut self.bad
            };
            if on {
                self.count += 1;
                *n += 1;
            } else {
                self.count -= 1;
                *n -= 1;
                self.unchanged_withdrawn += u64::from(wanted);
            }
        }

        /// Prefixes back to back (RFC 4271 §4.3), no path IDs.
        fn prefixes(&mut self, v6: bool, mut b: &[u8], on: bool) -> Option<()> {
            while let Some((&len, rest)) = b.split_first() {
                let n = usize::from(len).div_ceil(8);
                if n > if v6 { 16 } else { 4 } {
                    return None;
                }
                self.prefix(v6, len, rest.get(..n)?, on);
                b = rest.get(n..)?;
            }
            Some(())
        }

        /// One UPDATE's withdrawn routes, MP_REACH / MP_UNREACH (RFC 4760) and NLRI, read in
        /// place: the reflector's whole table reaches every client, so no message is built.
        fn update(&mut self, msg: &[u8]) -> Option<()> {
            self.updates += 1;
            let body = msg.get(19..)?;
            let wlen = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
            self.prefixes(false, body.get(2..2 + wlen)?, false)?;
            let rest = body.get(2 + wlen..)?;
            let alen = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
            let mut attrs = rest.get(2..2 + alen)?;
            self.prefixes(false, rest.get(2 + alen..)?, true)?;
            while let [flags, code, tail @ ..] = attrs {
                let (len, tail) = if flags & 0x10 != 0 {
                    let l = usize::from(u16::from_be_bytes([*tail.first()?, *tail.get(1)?]));
                    (l, tail.get(2..)?)
                } else {
                    (usize::from(*tail.first()?), tail.get(1..)?)
                };
                let value = tail.get(..len)?;
                attrs = tail.get(len..)?;
                const IPV6_UNICAST: &[u8] = &[0, 2, 1];
                match code {
                    // MP_REACH_NLRI: AFI, SAFI, next hop length and next hop, reserved.
                    14 if value.starts_with(IPV6_UNICAST) => {
                        let nh = usize::from(*value.get(3)?);
                        self.prefixes(true, value.get(5 + nh..)?, true)?;
                    }
                    15 if value.starts_with(IPV6_UNICAST) => {
                        self.prefixes(true, value.get(3..)?, false)?
                    }
                    _ => {}
                }
            }
            Some(())
        }
    }

    fn bytes(msgs: &[Message], neg: &Negotiated) -> Vec<u8> {
        bgp::encode(msgs, neg).expect("client messages encode")
    }

    /// What the client waits before it blocks on its sockets, as interrupt coalescing does:
    /// while it sleeps, the reflector's writes wake no one and pile up. Without it, the client
    /// (which keeps up) blocks after each few sockets, and the reflector's next writes pay for
    /// waking it (at 3000 clients 5,900–8,500 context switches of the client against 1,400,
    /// and about 0.1 s more of its CPU: benches/README.md, session 8). It adds at most this
    /// much to any reply or figure on the client's clock.
    const PAUSE: Duration = Duration::from_millis(1);

    /// Octets one read asks for. The reflector's writes to a client pile up while the client
    /// serves the others: at 3000 clients nearly one read in five brings more than 16 KiB.
    const READ: usize = 64 * 1024;
    /// Reads of a full [`READ`] one wake-up does before the session yields to the others.
    const READS_PER_WAKE: usize = 4;
    /// The longest message: the client offers no Extended Message capability (RFC 8654).
    const MAX_MESSAGE: usize = 4096;

    thread_local! {
        /// The read buffer of all sessions (the client runs on one thread): each wake-up reads
        /// into it and parses the messages in place, so the buffer stays in cache; a session
        /// keeps only the start of a message cut at the end ([`Conn::partial`]).
        static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_MESSAGE + READ]);
    }

    /// One session's state between wake-ups, and what its messages ask to be done.
    struct Conn<'a> {
        k: usize,
        shared: &'a Shared,
        neg: Negotiated,
        open_confirm: bool,
        established: &'a mut bool,
        held: &'a mut Held,
        /// The start of a message whose end has not arrived.
        partial: Vec<u8>,
        hold: Duration,
        keepalive: Option<Duration>,
        /// The hold time changed (the OPENs were exchanged).
        hold_changed: bool,
        /// Messages to send.
        out: Vec<Message>,
    }

    impl Conn<'_> {
        /// Reads what the socket holds (at most [`READS_PER_WAKE`] full reads) and handles
        /// every whole message; whether anything arrived.
        fn on_readable(&mut self, stream: &TcpStream) -> Result<bool, End> {
            SCRATCH.with_borrow_mut(|buf| {
                let mut any = false;
                for _ in 0..READS_PER_WAKE {
                    let kept = self.partial.len();
                    buf[..kept].copy_from_slice(&self.partial);
                    let room = buf.len() - kept;
                    let mut got = 0;
                    let r = stream.try_io(Interest::READABLE, || {
                        got = (&*SockRef::from(stream)).read(&mut buf[kept..])?;
                        // A short read emptied the socket (edge-triggered epoll, as tokio's
                        // own reads assume): readiness is cleared now, not by one more read
                        // that could only say WouldBlock.
                        if 0 < got && got < room {
                            return Err(std::io::ErrorKind::WouldBlock.into());
                        }
                        Ok(())
                    });
                    match r {
                        Err(e) if got == 0 && e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if got == 0 && e.kind() == std::io::ErrorKind::ConnectionReset => {
                            return Err(End::Closed("reset"));
                        }
                        Err(_) if got == 0 => return Err(End::Closed("error")),
                        _ if got == 0 => return Err(End::Closed("eof")),
                        _ => {}
                    }
                    if !any && self.shared.reflector {
                        self.held.sync(self.shared);
                    }
                    any = true;
                    let data = &buf[..kept + got];
                    let mut at = 0;
                    while let Some(n) = frame(&data[at..], &self.neg).map_err(|_| End::Malformed)? {
                        self.message(&data[at..at + n])?;
                        at += n;
                    }
                    self.partial.clear();
                    self.partial.extend_from_slice(&data[at..]);
                    if got < room {
                        break;
                    }
                }
                Ok(any)
            })
        }

        /// One whole message.
        fn message(&mut self, msg: &[u8]) -> Result<(), End> {
            // UPDATE (RFC 4271 §4.1 type 2), counted in place.
            if self.shared.reflector && msg.get(18) == Some(&2) {
                return self.held.update(msg).ok_or(End::Malformed);
            }
            match decode(msg, &self.neg) {
                Ok(Message::Open(o)) => {
                    let h = o.hold_time.min(self.shared.hold);
                    if h > 0 {
                        self.hold = Duration::from_secs(u64::from(h));
                        let ka = u64::from(self.shared.keepalive.min(h / 3).max(1));
                        self.keepalive = Some(Duration::from_secs(ka));
                    } else {
                        self.hold = Duration::from_secs(u64::MAX / 4);
                    }
                    self.hold_changed = true;
                    self.open_confirm = true;
                    self.out.push(Message::Keepalive);
                }
                Ok(Message::Keepalive) if self.open_confirm && !*self.established => {
                    *self.established = true;
                    became_established(self.k, self.shared);
                    let moved = self
                        .shared
                        .with(|r| r.plan.moved.get(self.k).copied().unwrap_or(false));
                    self.out
                        .extend(announcements(self.k, self.shared.reflector, moved));
                }
                Ok(Message::Notification(n)) => return Err(End::Notification(n.code, n.subcode)),
                Ok(_) => {}
                Err(_) => return Err(End::Malformed),
            }
            Ok(())
        }
    }

    /// The next change of the churn phase, with the receiver to wait on the one after.
    type PhaseChange = Pin<Box<dyn Future<Output = (watch::Receiver<u64>, bool)> + Send>>;

    fn phase_change(mut rx: watch::Receiver<u64>) -> PhaseChange {
        Box::pin(async move {
            let changed = rx.changed().await.is_ok();
            (rx, changed)
        })
    }

    async fn run_session(
        k: usize,
        stream: &mut TcpStream,
        shared: &Shared,
        restarted: bool,
        (established, held): (&mut bool, &mut Held),
    ) -> End {
        // The peer's 2-octet/4-octet encoding does not matter for what is sent here (empty
        // AS_PATH); framing only needs the standard lengths.
        let neg = Negotiated::default();
        if stream
            .write_all(&bytes(&[open(k, shared, restarted)], &neg))
            .await
            .is_err()
        {
            return End::Closed("write failed");
        }
        let mut conn = Conn {
            k,
            shared,
            neg,
            open_confirm: false,
            established,
            held,
            partial: Vec::new(),
            // RFC 4271 §8.2.2: a large hold time until the OPENs are exchanged.
            hold: Duration::from_secs(240),
            keepalive: None,
            hold_changed: false,
            out: Vec::new(),
        };
        let mut last_rx = Instant::now();
        // The timers are set when their deadlines change, not at every wake-up: the hold
        // timer, when it fires, looks at the last message and waits on if one came since.
        let hold_timer = tokio::time::sleep_until(last_rx + conn.hold);
        let ka_timer = tokio::time::sleep_until(last_rx);
        tokio::pin!(hold_timer, ka_timer);
        let mut phase = phase_change(shared.phase_tx.subscribe());
        let mut epoch = shared.epoch.load(Ordering::Relaxed);
        loop {
            // Data first, and the other branches polled only when none waits: at 3000 clients
            // 18 M UPDATEs arrive in 30–200 k reads. What data could hold back is looked at
            // after it.
            let due = tokio::select! {
                biased;
                r = stream.readable() => {
                    if r.is_err() {
                        return End::Closed("error");
                    }
                    match conn.on_readable(stream) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(end) => return end,
                    }
                    last_rx = Instant::now();
                    if std::mem::take(&mut conn.hold_changed) {
                        hold_timer.as_mut().reset(last_rx + conn.hold);
                    }
                    if !conn.out.is_empty() {
                        let out = bytes(&std::mem::take(&mut conn.out), &neg);
                        if stream.write_all(&out).await.is_err() {
                            return End::Closed("write failed");
                        }
                        if let Some(ka) = conn.keepalive {
                            ka_timer.as_mut().reset(Instant::now() + ka);
                        }
                    }
                    if shared.reflector {
                        conn.held.flush(shared);
                    }
                    Due {
                        phase: shared.epoch.load(Ordering::Relaxed) != epoch,
                        keepalive: conn.keepalive.is_some() && last_rx >= ka_timer.deadline(),
                    }
                }
                // Only churn mode has phases after the first.
                (rx, changed) = &mut phase, if shared.churn => {
                    phase = if changed { phase_change(rx) } else { Box::pin(std::future::pending()) };
                    Due { phase: changed, keepalive: false }
                }
                () = &mut ka_timer, if conn.keepalive.is_some() => Due { phase: false, keepalive: true },
                () = &mut hold_timer => {
                    let due = last_rx + conn.hold;
                    if Instant::now() < due {
                        hold_timer.as_mut().reset(due);
                        continue;
                    }
                    let n = Message::Notification(wren::wire::Notification::new(
                        wren::wire::notification::Code::HoldTimerExpired, 0, Vec::new()));
                    let _ = stream.write_all(&bytes(&[n], &neg)).await;
                    return if conn.open_confirm { End::OwnHold } else { End::OpenSentTimeout };
                }
            };
            if due.phase {
                epoch = shared.epoch.load(Ordering::Relaxed);
                if shared.with(|r| r.plan.restart && r.plan.members[k]) {
                    // A node's sudden restart: a reset, no NOTIFICATION.
                    let _ = stream.set_zero_linger();
                    return End::Restart;
                }
            }
            if due.keepalive {
                if stream
                    .write_all(&bytes(&[Message::Keepalive], &neg))
                    .await
                    .is_err()
                {
                    return End::Closed("write failed");
                }
                ka_timer
                    .as_mut()
                    .reset(Instant::now() + conn.keepalive.unwrap_or_default());
                if shared.reflector {
                    // A phase's plan reaches a client that is sent nothing new too.
                    conn.held.flush(shared);
                }
            }
        }
    }

    /// What a session has to do after a wake-up besides reading.
    struct Due {
        /// A churn phase began: see whether this client restarts.
        phase: bool,
        /// The keepalive interval is over (RFC 4271 §4.4).
        keepalive: bool,
    }

    fn became_established(k: usize, shared: &Shared) {
        let first = {
            let mut ever = shared.ever.lock().unwrap_or_else(|p| p.into_inner());
            !std::mem::replace(&mut ever[k], true)
        };
        let at = shared.since_t0();
        shared.with(|r| {
            r.established += 1;
            if first {
                r.ever_established += 1;
                if r.ever_established == shared.initial {
                    r.all_established_ms = Some(at);
                }
            }
            if r.plan.members.get(k).copied().unwrap_or(false) {
                r.phase_up += 1;
                if r.phase_up == r.phase_clients {
                    r.phase_established_ms = Some(r.plan.since_start());
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The controller: namespaces, receivers, measurements.

mod controller {
    use super::*;

    /// One run's figures.
    #[derive(Debug, Default)]
    struct Outcome {
        speaker: &'static str,
        peers: usize,
        error: Option<String>,
        /// Seconds after the dial; `None` when not reached by the deadline.
        established: Option<f64>,
        established_reached: usize,
        /// Reflector mode: seconds after the dial until every client held all other blocks.
        held: Option<f64>,
        /// The client process's CPU time from the dial until convergence.
        client_cpu: f64,
        rib: Option<f64>,
        rib_reached: usize,
        kernel: Option<f64>,
        kernel_reached: usize,
        kernel_measured: bool,
        deadline: u64,
        peak_rss_kib: u64,
        rss_before_kib: u64,
        cpu_converge: f64,
        cpu_startup: f64,
        listen_drops: u64,
        listen_overflows: u64,
        syn_retrans: u64,
        idle_pct: Option<f64>,
        /// CPU time of the whole machine (all processes) from the dial to convergence, and
        /// its share over the idle window: shows other load on the machine.
        machine_busy_converge: f64,
        machine_busy_pct: Option<f64>,
        /// Seconds waited for a quiet machine before the run, and whether it got quiet.
        quiet_wait: (f64, bool),
        /// TCP sockets by state in each namespace when convergence ended (`ss -tan`).
        sockets_recv: String,
        sockets_peers: String,
        established_after_idle: usize,
        routes_after_idle: usize,
        polls: u64,
        poll_ms_mean: f64,
        poll_ms_max: f64,
        client: ClientReport,
        receiver_warnings: usize,
        dir: PathBuf,
        /// Churn mode: the restart and join phases after convergence.
        phases: Vec<PhaseOutcome>,
    }

    /// One churn phase's figures: times from the command to the client, on its clock.
    #[derive(Debug, Default)]
    struct PhaseOutcome {
        /// "restart" or "join".
        what: &'static str,
        clients: usize,
        /// The client's clock: when the last of the phase's clients came up, and when every
        /// client held its set.
        established_ms: Option<u64>,
        held_ms: Option<u64>,
        /// Clients holding their set at the end, of how many.
        full: usize,
        active: usize,
        /// Received by all clients during the phase.
        updates: u64,
        withdrawn: u64,
        unchanged_withdrawn: u64,
        own_routes_back: u64,
        /// The receiver's CPU from the command until every client held its set.
        cpu: f64,
    }

    pub fn run(args: &Args) -> anyhow::Result<bool> {
        if args.peers.iter().any(|&n| n == 0 || n > MAX_PEERS) {
            bail!("--peers: each N must be 1..={MAX_PEERS}");
        }
        if args.hold < 3 || args.keepalive == 0 || args.keepalive > args.hold {
            bail!("--hold must be at least 3 and --keepalive 1..=hold");
        }
        if args.reflector && args.speakers.contains(&Speaker::Bird16) {
            bail!("--reflector: BIRD 1.6 carries IPv6 in a second daemon; use wrend,bird2,frr");
        }
        if churn(args) && !args.reflector {
            bail!("--churn and --join need --reflector");
        }
        if args
            .peers
            .iter()
            .any(|&n| args.churn > n || n + args.join > MOVED)
        {
            bail!("--churn must be at most each N, and N + --join at most {MOVED}");
        }
        for s in &args.speakers {
            let bin = binary(args, *s);
            if !bin.exists() {
                let hint = match s {
                    Speaker::Wrend => "cargo build --release",
                    Speaker::Bird2 => "apt-get install bird2",
                    Speaker::Frr => "apt-get install frr",
                    Speaker::Bird16 => {
                        "sudo bash tests/peers/install.sh (or: cd target/peers && apt-get \
                         download bird && dpkg -x bird_*.deb bird16)"
                    }
                };
                bail!("{} not found at {} ({hint})", s.name(), bin.display());
            }
        }
        which("ip")?;
        let most = (args.peers.iter().max().copied().unwrap_or(0) + args.join) as u64;
        raise_nofile(1 << 16, most + 256)?;
        harness::bench::catch_signals();
        harness::netns::remove_stale_namespaces(NS_PREFIX, "mesh_scale");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mesh_scale");
        std::fs::create_dir_all(&base)?;
        let started = Instant::now();
        let header = header(args)?;
        eprintln!("{header}");
        let mut outcomes = Vec::new();
        'all: for &n in &args.peers {
            for &s in &args.speakers {
                if stopped() {
                    break 'all;
                }
                eprintln!("mesh_scale: {} with {n} peers …", s.name());
                let dir = base.join(format!("{}-{n}", s.name()));
                let o = match run_one(args, s, n, &dir) {
                    Ok(o) => o,
                    Err(e) => Outcome {
                        speaker: s.name(),
                        peers: n,
                        error: Some(format!("{e:#}")),
                        dir: dir.clone(),
                        ..Outcome::default()
                    },
                };
                eprintln!("{}", summary_line(&o));
                outcomes.push(o);
            }
        }
        let took = started.elapsed();
        let report = report(&header, &outcomes, took, args);
        harness::bench::write_report("mesh_scale", &report, args.out.as_deref(), &base)?;
        if stopped() {
            bail!("interrupted");
        }
        Ok(outcomes.iter().all(|o| o.error.is_none()))
    }

    fn binary(args: &Args, s: Speaker) -> PathBuf {
        match s {
            Speaker::Wrend => args.daemons.wrend.clone(),
            Speaker::Bird2 => args.daemons.bird2.clone(),
            Speaker::Bird16 => args.daemons.bird16.clone(),
            Speaker::Frr => args.frr.join("bgpd"),
        }
    }

    fn run_one(args: &Args, s: Speaker, n: usize, dir: &Path) -> anyhow::Result<Outcome> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let kernel = !args.no_kernel;
        // Blocks per peer in the receiver's table.
        let blocks = if args.reflector { 2 } else { 1 };
        let mut o = Outcome {
            speaker: s.name(),
            peers: n,
            deadline: args.deadline,
            kernel_measured: kernel,
            dir: dir.to_path_buf(),
            ..Outcome::default()
        };

        let q = wait_quiet(
            Duration::from_secs(args.timing.wait_quiet),
            0.10,
            Duration::from_secs(2),
        )?;
        if !q.quiet {
            eprintln!(
                "  the machine is busy ({:.0} % of a core); measuring anyway",
                q.busy_cores * 100.0
            );
        }
        o.quiet_wait = (q.waited, q.quiet);
        // Guards drop in reverse order: client, receiver, namespaces. Joiners are configured
        // from the start.
        let total = n + args.join;
        let net = netns(total, args.reflector, dir)?;
        let spawned = Instant::now();
        let mut receiver = Receiver::start(args, s, total, kernel, dir, &net.recv)?;
        let log = receiver.log.clone();
        let rpid = receiver.main_pid();

        // Ready: the control socket answers and the BGP port is listening.
        let mut ready = |what: &str, ok: &dyn Fn(&mut Receiver) -> bool| {
            while !ok(&mut receiver) {
                receiver.check_alive()?;
                wait(spawned, Duration::from_secs(30), what)?;
                sleep(Duration::from_millis(50))?;
            }
            anyhow::Ok(())
        };
        ready("the receiver's control socket", &|r| r.control_ready())?;
        ready("the receiver to listen on port 179", &|_| {
            listening(rpid, 179)
        })?;
        sleep(Duration::from_secs(1))?;
        receiver.check_alive()?;
        let base_routes = receiver.route_count()?;

        // The client, bound and waiting.
        let client_log = dir.join("client.log");
        let self_exe = std::env::current_exe()?.display().to_string();
        let client_argv = vec![
            self_exe,
            CLIENT_CMD.to_string(),
            total.to_string(),
            SocketAddrV4::new(RECEIVER, 179).to_string(),
            args.connect_timeout.to_string(),
            args.hold.to_string(),
            args.keepalive.to_string(),
            ((args.spread * 1000.0) as u64).to_string(),
            args.reflector.to_string(),
            args.join.to_string(),
            churn(args).to_string(),
        ];
        let mut client = Proc::spawn(
            &net.peers,
            &client_argv,
            &client_log,
            true,
            args.timing.nice,
        )?;
        let lines = client.lines()?;
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            client.check_alive(&client_log)?;
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l == "ready" => break,
                Ok(_) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() > ready_by || stopped() {
                        bail!(
                            "the client did not get ready (see {})",
                            client_log.display()
                        );
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the client exited (see {})", client_log.display())
                }
            }
        }
        let cpid = client.pid();

        // Before the dial.
        let rstat0 = netstat(rpid)?;
        let cstat0 = netstat(cpid)?;
        o.rss_before_kib = receiver.kib("VmRSS:")?;
        let cpu0 = receiver.cpu()?;
        let client_cpu0 = cpu_secs(cpid)?;
        o.cpu_startup = cpu0;
        let busy0 = machine_busy_secs()?;

        client.send("go")?;
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(args.deadline);
        let mut poll_total = Duration::ZERO;
        let mut next = t0;
        let mut progress = File::create(dir.join("progress.tsv"))?;
        writeln!(
            progress,
            "seconds\testablished\tin_rib\tin_kernel\tcpu_s\tlisten_drops"
        )?;
        let mut tick = 0u64;
        loop {
            receiver.check_alive()?;
            if stopped() {
                bail!("interrupted");
            }
            if o.established.is_none() {
                let q = Instant::now();
                o.established_reached = receiver.established()?;
                note_poll(&mut o, &mut poll_total, q.elapsed());
                if o.established_reached >= n {
                    o.established = Some(t0.elapsed().as_secs_f64());
                }
            }
            if args.reflector && o.held.is_none() {
                while let Ok(l) = lines.try_recv() {
                    if l == "held" {
                        o.held = Some(t0.elapsed().as_secs_f64());
                    }
                }
            }
            if o.rib.is_none() {
                let q = Instant::now();
                o.rib_reached = receiver.route_count()?.saturating_sub(base_routes);
                note_poll(&mut o, &mut poll_total, q.elapsed());
                if o.rib_reached >= n * blocks {
                    o.rib = Some(t0.elapsed().as_secs_f64());
                }
            }
            if kernel && o.kernel.is_none() {
                o.kernel_reached = kernel_routes(rpid)?;
                if o.kernel_reached >= n {
                    o.kernel = Some(t0.elapsed().as_secs_f64());
                }
            }
            let done = o.established.is_some()
                && o.rib.is_some()
                && (!kernel || o.kernel.is_some())
                && (!args.reflector || o.held.is_some());
            if tick.is_multiple_of(10) || done {
                let drops = netstat(rpid)?
                    .get("TcpExt.ListenDrops")
                    .copied()
                    .unwrap_or(0);
                writeln!(
                    progress,
                    "{:.1}\t{}\t{}\t{}\t{:.2}\t{}",
                    t0.elapsed().as_secs_f64(),
                    o.established.map_or(o.established_reached, |_| n),
                    o.rib.map_or(o.rib_reached, |_| n * blocks),
                    o.kernel.map_or(o.kernel_reached, |_| n),
                    receiver.cpu()? - cpu0,
                    drops.saturating_sub(rstat0.get("TcpExt.ListenDrops").copied().unwrap_or(0)),
                )?;
            }
            tick += 1;
            if done || Instant::now() >= deadline {
                break;
            }
            next += POLL;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        o.cpu_converge = receiver.cpu()? - cpu0;
        o.client_cpu = cpu_secs(cpid)? - client_cpu0;
        o.sockets_recv = socket_states(&net.recv, &dir.join("ss-receiver.txt"));
        o.sockets_peers = socket_states(&net.peers, &dir.join("ss-peers.txt"));
        o.machine_busy_converge = machine_busy_secs()? - busy0;
        o.poll_ms_mean = poll_total.as_secs_f64() * 1000.0 / o.polls.max(1) as f64;
        let converged = o.established.is_some() && o.rib.is_some();
        if converged && o.held.is_some() {
            for (what, cmd, clients) in phases(args) {
                let p = phase(
                    (&mut client, &lines, &client_log),
                    &mut receiver,
                    (what, &cmd, clients),
                    args.deadline,
                )?;
                eprintln!("  churn: {}", p.row());
                o.phases.push(p);
            }
        }

        // Idle: nothing polled.
        if converged && args.idle > 0 {
            sleep(SETTLE)?;
            let a = receiver.precise_cpu();
            let a_ticks = receiver.cpu()?;
            let busy_a = machine_busy_secs()?;
            let ta = Instant::now();
            sleep(Duration::from_secs(args.idle))?;
            receiver.check_alive()?;
            let b = receiver.precise_cpu();
            let b_ticks = receiver.cpu()?;
            let secs = ta.elapsed().as_secs_f64();
            let used = match (a, b) {
                (Some((a, ta)), Some((b, tb))) if ta == tb => b - a,
                _ => b_ticks - a_ticks,
            };
            o.idle_pct = Some(used / secs * 100.0);
            o.machine_busy_pct = Some((machine_busy_secs()? - busy_a) / secs * 100.0);
        }
        o.established_after_idle = receiver.established()?;
        o.routes_after_idle = receiver.route_count()?.saturating_sub(base_routes);
        o.peak_rss_kib = receiver.kib("VmHWM:")?;
        let rstat1 = netstat(rpid)?;
        let cstat1 = netstat(cpid)?;
        let delta = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, k: &str| {
            b.get(k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(a.get(k).copied().unwrap_or(0))
        };
        o.listen_drops = delta(&rstat0, &rstat1, "TcpExt.ListenDrops");
        o.listen_overflows = delta(&rstat0, &rstat1, "TcpExt.ListenOverflows");
        o.syn_retrans = delta(&cstat0, &cstat1, "TcpExt.TCPSynRetrans");

        // The receiver's log up to here (the client's exit closes every session).
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        o.receiver_warnings = log_text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("<ERR>"))
            .count();
        // The client's view, taken before the receiver is stopped.
        o.client = client_report(&mut client, &lines, &client_log)?;
        client.stop(Duration::from_secs(2));
        receiver.stop();
        drop(net);
        Ok(o)
    }

    /// The client's report so far.
    fn client_report(
        client: &mut Proc,
        lines: &std_mpsc::Receiver<String>,
        log: &Path,
    ) -> anyhow::Result<ClientReport> {
        client.send("stop")?;
        let by = Instant::now() + Duration::from_secs(10);
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with('{') => return Ok(serde_json::from_str(&l)?),
                Ok(_) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) if Instant::now() < by => {}
                Err(_) => bail!("no report from the client (see {})", log.display()),
            }
        }
    }

    /// Churn mode's phases: (name, the client's command, clients in it).
    fn phases(args: &Args) -> Vec<(&'static str, String, usize)> {
        let mut out = Vec::new();
        if args.churn > 0 {
            out.push(("restart", format!("restart {}", args.churn), args.churn));
        }
        if args.join > 0 {
            out.push(("join", "join".to_string(), args.join));
        }
        out
    }

    /// Churn mode: one phase, after a pause for the receiver to settle: the command to the
    /// client, then until every client holds exactly its set or the deadline passes.
    fn phase(
        (client, lines, log): (&mut Proc, &std_mpsc::Receiver<String>, &Path),
        receiver: &mut Receiver,
        (what, cmd, clients): (&'static str, &str, usize),
        deadline: u64,
    ) -> anyhow::Result<PhaseOutcome> {
        sleep(SETTLE)?;
        let before = client_report(client, lines, log)?;
        let cpu0 = receiver.cpu()?;
        client.send(cmd)?;
        let t = Instant::now();
        let by = t + Duration::from_secs(deadline);
        let mut held = false;
        while !held && Instant::now() < by {
            receiver.check_alive()?;
            if stopped() {
                bail!("interrupted");
            }
            match lines.recv_timeout(POLL) {
                Ok(l) if l == "held" => held = true,
                Ok(_) | Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the client exited (see {})", log.display())
                }
            }
        }
        let cpu = receiver.cpu()? - cpu0;
        let after = client_report(client, lines, log)?;
        Ok(PhaseOutcome {
            what,
            clients,
            established_ms: after.phase_established_ms,
            held_ms: after.phase_held_ms,
            full: after.full,
            active: after.established,
            updates: after.updates - before.updates,
            withdrawn: after.withdrawn - before.withdrawn,
            unchanged_withdrawn: after.unchanged_withdrawn - before.unchanged_withdrawn,
            own_routes_back: after.own_routes_back - before.own_routes_back,
            cpu,
        })
    }

    /// `ss -tan` in a namespace, saved to `file`; returns counts by state, and for the peers'
    /// established sockets how many have unacknowledged data (a sent OPEN nobody took).
    fn socket_states(ns: &str, file: &Path) -> String {
        let Ok(out) = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-tanH"])
            .output()
        else {
            return "ss failed".into();
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let _ = std::fs::write(file, &text);
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            *by.entry(f[0].to_string()).or_default() += 1;
            if f[0] == "ESTAB" && f[2] != "0" {
                *by.entry("ESTAB with unacked data".into()).or_default() += 1;
            }
        }
        map_str(&by)
    }

    fn note_poll(o: &mut Outcome, total: &mut Duration, took: Duration) {
        o.polls += 1;
        *total += took;
        o.poll_ms_max = o.poll_ms_max.max(took.as_secs_f64() * 1000.0);
    }

    fn wait(since: Instant, limit: Duration, what: &str) -> anyhow::Result<()> {
        if since.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        Ok(())
    }

    // --- the receiver

    /// The speaker under test: its processes (FRR: zebra, then bgpd) and its control socket.
    struct Receiver {
        procs: Vec<(Proc, PathBuf)>,
        control: Control,
        /// The main process's log (bgpd's for FRR).
        log: PathBuf,
    }

    enum Control {
        /// BIRD's protocol (wrend, BIRD): connected once it answers.
        Cli(PathBuf, Option<Client>),
        /// FRR: `vtysh --vty_socket DIR`, one process per query.
        Vtysh(PathBuf),
    }

    impl Receiver {
        fn start(
            args: &Args,
            s: Speaker,
            n: usize,
            kernel: bool,
            dir: &Path,
            ns: &str,
        ) -> anyhow::Result<Receiver> {
            let log = dir.join("receiver.log");
            let (hold, keepalive) = (args.hold, args.keepalive);
            if s == Speaker::Frr {
                // The daemons drop privileges to `frr`: the directory is theirs.
                let _ = Command::new("chown").args(["frr:frr"]).arg(dir).status();
                std::fs::write(dir.join("zebra.conf"), "hostname receiver\n")?;
                std::fs::write(
                    dir.join("bgpd.conf"),
                    config(
                        s,
                        n,
                        (kernel, args.reflector, churn(args)),
                        dir,
                        (hold, keepalive),
                    ),
                )?;
                let d = dir.display().to_string();
                let daemon = |name: &str| -> Vec<String> {
                    [
                        args.frr.join(name).display().to_string(),
                        "-u".into(),
                        "frr".into(),
                        "-g".into(),
                        "frr".into(),
                        "-f".into(),
                        format!("{d}/{name}.conf"),
                        "-z".into(),
                        format!("{d}/zserv.api"),
                        "--vty_socket".into(),
                        d.clone(),
                        "-i".into(),
                        format!("{d}/{name}.pid"),
                        "-P".into(),
                        "0".into(),
                        "--log".into(),
                        "stdout".into(),
                    ]
                    .to_vec()
                };
                let zlog = dir.join("zebra.log");
                let zebra = Proc::spawn(ns, &daemon("zebra"), &zlog, false, args.timing.nice)?;
                let zsock = dir.join("zserv.api");
                let t = Instant::now();
                while !zsock.exists() {
                    if t.elapsed() > Duration::from_secs(10) {
                        bail!("zebra did not come up (see {})", zlog.display());
                    }
                    sleep(Duration::from_millis(50))?;
                }
                let mut bgpd_argv = daemon("bgpd");
                if !kernel {
                    // bgpd's `--no_kernel`: nothing goes to zebra's FIB.
                    bgpd_argv.push("-n".into());
                }
                let bgpd = Proc::spawn(ns, &bgpd_argv, &log, false, args.timing.nice)?;
                return Ok(Receiver {
                    procs: vec![(zebra, zlog), (bgpd, log.clone())],
                    control: Control::Vtysh(dir.to_path_buf()),
                    log,
                });
            }
            let ctl = dir.join("ctl");
            let conf = dir.join(if s == Speaker::Wrend {
                "wrend.toml"
            } else {
                "bird.conf"
            });
            std::fs::write(
                &conf,
                config(
                    s,
                    n,
                    (kernel, args.reflector, churn(args)),
                    dir,
                    (hold, keepalive),
                ),
            )?;
            let pid = dir.join("pid");
            let bird_pid = (s != Speaker::Wrend).then_some(pid.as_path());
            let argv = speaker_argv(&binary(args, s), &conf, &ctl, bird_pid);
            let p = Proc::spawn(ns, &argv, &log, false, args.timing.nice)?;
            Ok(Receiver {
                procs: vec![(p, log.clone())],
                control: Control::Cli(ctl, None),
                log,
            })
        }

        /// The BGP speaker's pid (bgpd for FRR): its namespace is the receiver's.
        fn main_pid(&self) -> i32 {
            self.procs.last().map_or(0, |(p, _)| p.pid())
        }

        fn check_alive(&mut self) -> anyhow::Result<()> {
            for (p, log) in &mut self.procs {
                p.check_alive(log)?;
            }
            Ok(())
        }

        /// Whether the control socket answers (and, for BIRD's protocol, connects it).
        fn control_ready(&mut self) -> bool {
            match &mut self.control {
                Control::Cli(path, c @ None) => {
                    *c = Client::connect(path).ok();
                    c.is_some()
                }
                Control::Cli(_, Some(_)) => true,
                Control::Vtysh(_) => self.summary().is_ok(),
            }
        }

        fn cli(&mut self) -> anyhow::Result<&mut Client> {
            match &mut self.control {
                Control::Cli(_, Some(c)) => Ok(c),
                _ => bail!("no control connection"),
            }
        }

        /// FRR's `show bgp summary json`: per peer, its state and prefixes received in all
        /// families.
        fn summary(&self) -> anyhow::Result<Vec<(String, usize)>> {
            let Control::Vtysh(dir) = &self.control else {
                bail!("not FRR");
            };
            let out = Command::new("vtysh")
                .arg("--vty_socket")
                .arg(dir)
                .args(["-c", "show bgp summary json"])
                .output()
                .context("running vtysh")?;
            if !out.status.success() {
                bail!("vtysh: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let peers = |family: &str| v.get(family)?.get("peers")?.as_object();
            let v4 = peers("ipv4Unicast")
                .ok_or_else(|| anyhow::anyhow!("no peers in vtysh's summary"))?;
            let v6 = peers("ipv6Unicast");
            let received = |p: &serde_json::Value| {
                p.get("pfxRcd").and_then(|n| n.as_u64()).unwrap_or(0) as usize
            };
            Ok(v4
                .iter()
                .map(|(addr, p)| {
                    let state = p.get("state").and_then(|s| s.as_str()).unwrap_or("");
                    let more = v6.and_then(|m| m.get(addr)).map_or(0, received);
                    (state.to_string(), received(p) + more)
                })
                .collect())
        }

        fn established(&mut self) -> anyhow::Result<usize> {
            if let Control::Vtysh(_) = self.control {
                return Ok(self
                    .summary()?
                    .iter()
                    .filter(|(s, _)| s == "Established")
                    .count());
            }
            established(self.cli()?)
        }

        fn route_count(&mut self) -> anyhow::Result<usize> {
            if let Control::Vtysh(_) = self.control {
                return Ok(self.summary()?.iter().map(|(_, n)| n).sum());
            }
            route_count(self.cli()?)
        }

        /// utime + stime of all the receiver's processes.
        fn cpu(&self) -> anyhow::Result<f64> {
            self.procs.iter().map(|(p, _)| cpu_secs(p.pid())).sum()
        }

        /// A `/proc/PID/status` figure summed over the receiver's processes.
        fn kib(&self, key: &str) -> anyhow::Result<u64> {
            self.procs
                .iter()
                .map(|(p, _)| status_kib(p.pid(), key))
                .sum()
        }

        /// Nanosecond CPU time of the live threads of all the receiver's processes.
        fn precise_cpu(&self) -> Option<(f64, Vec<u32>)> {
            let mut total = 0.0;
            let mut tids = Vec::new();
            for (p, _) in &self.procs {
                let (t, mut ids) = precise_cpu(p.pid())?;
                total += t;
                tids.append(&mut ids);
            }
            Some((total, tids))
        }

        /// bgpd before zebra.
        fn stop(&mut self) {
            self.control = Control::Vtysh(PathBuf::new());
            for (p, _) in self.procs.iter_mut().rev() {
                p.stop(Duration::from_secs(5));
            }
        }
    }

    /// FRR's bgpd.conf: one passive iBGP neighbour per simulated node, in one peer group; as
    /// a reflector, every one a client in both families.
    /// `gr`: graceful restart on (`bgp graceful-restart`; FRR is a helper without it too).
    fn frr_config(
        n: usize,
        (reflector, gr): (bool, bool),
        (hold, keepalive): (u16, u16),
    ) -> String {
        let mut c = format!(
            "frr defaults traditional\nhostname receiver\n!\nrouter bgp {ASN}\n \
             bgp router-id {RECEIVER}\n no bgp default ipv4-unicast\n \
             neighbor MESH peer-group\n neighbor MESH remote-as {ASN}\n neighbor MESH passive\n \
             neighbor MESH timers {keepalive} {hold}\n"
        );
        if reflector {
            let _ = writeln!(c, " bgp cluster-id {CLUSTER_ID}");
        }
        if gr {
            let _ = writeln!(c, " bgp graceful-restart");
        }
        for k in 0..n {
            let _ = writeln!(c, " neighbor {} peer-group MESH", peer_addr(k));
        }
        let families: &[&str] = if reflector {
            &["ipv4", "ipv6"]
        } else {
            &["ipv4"]
        };
        for f in families {
            let _ = writeln!(c, " address-family {f} unicast\n  neighbor MESH activate");
            if reflector {
                let _ = writeln!(c, "  neighbor MESH route-reflector-client");
            }
            c.push_str(" exit-address-family\n");
        }
        c.push_str("!\n");
        c
    }

    // --- configuration files

    fn proto_name(k: usize) -> String {
        format!("Mesh_{}", peer_addr(k).to_string().replace('.', "_"))
    }

    /// `gr`: graceful restart on (wrend keeps a restarting peer's routes by default; BIRD's
    /// default `aware` would too).
    fn config(
        s: Speaker,
        n: usize,
        (kernel, reflector, gr): (bool, bool, bool),
        dir: &Path,
        (hold, keepalive): (u16, u16),
    ) -> String {
        let mut c = String::new();
        match s {
            Speaker::Frr => return frr_config(n, (reflector, gr), (hold, keepalive)),
            Speaker::Wrend => {
                let _ = write!(
                    c,
                    "router_id = \"{RECEIVER}\"\nasn = {ASN}\noriginate = []\n\n\
                     [listen]\naddresses = [\"{RECEIVER}\"]\nport = 179\n\n\
                     [defaults]\nhold_time = {hold}\nkeepalive = {keepalive}\npassive = true\n"
                );
                if reflector {
                    // Calico passes learned routes on only inside its pools (contract §3.2).
                    let _ = write!(
                        c,
                        "rr_client = true\n\n[[pool]]\ncidr = \"100.64.0.0/10\"\n\n\
                         [[pool]]\ncidr = \"2001:db8:100::/40\"\n"
                    );
                    c = c.replace(
                        "originate = []\n",
                        &format!("cluster_id = \"{CLUSTER_ID}\"\noriginate = []\n"),
                    );
                }
                // Kernel routes are on by default (`[kernel] enabled = true`).
                if !kernel {
                    let _ = write!(c, "\n[kernel]\nenabled = false\n");
                }
                for k in 0..n {
                    let _ = write!(
                        c,
                        "\n[[peer]]\naddress = \"{}\"\nasn = {ASN}\n",
                        peer_addr(k)
                    );
                }
            }
            Speaker::Bird2 | Speaker::Bird16 => {
                let v2 = s == Speaker::Bird2;
                let _ = writeln!(c, "log \"{}\" all;", dir.join("bird.log").display());
                let _ = writeln!(c, "router id {RECEIVER};");
                let _ = writeln!(c, "protocol device {{ }}");
                if v2 {
                    let _ = writeln!(
                        c,
                        "protocol static {{ ipv4; route 198.18.0.0/15 via \"vr\"; }}"
                    );
                } else {
                    let _ = writeln!(c, "protocol static {{ route 198.18.0.0/15 via \"vr\"; }}");
                }
                if kernel {
                    let export = "export where net ~ [ 100.64.0.0/10+ ];";
                    if v2 {
                        let _ =
                            writeln!(c, "protocol kernel {{ ipv4 {{ import none; {export} }}; }}");
                    } else {
                        let _ = writeln!(c, "protocol kernel {{ import none; {export} }}");
                    }
                }
                let channel = if reflector {
                    // The clients' IPv6 next hops resolve through the link as the IPv4 ones.
                    let _ = writeln!(
                        c,
                        "protocol static {{ ipv6; route 2001:db8:18::/64 via \"vr\"; }}"
                    );
                    if kernel {
                        let _ = writeln!(
                            c,
                            "protocol kernel {{ ipv6 {{ import none; \
                             export where net ~ [ 2001:db8:100::/40+ ]; }}; }}"
                        );
                    }
                    format!(
                        "  rr client;\n  rr cluster id {CLUSTER_ID};\n  \
                         ipv4 {{ import all; export where source = RTS_BGP; }};\n  \
                         ipv6 {{ import all; export where source = RTS_BGP; }};\n"
                    )
                } else if v2 {
                    "  ipv4 { import all; export none; };\n".to_string()
                } else {
                    "  import all;\n  export none;\n".to_string()
                };
                let gr = if gr { "  graceful restart on;\n" } else { "" };
                let _ = write!(
                    c,
                    "template bgp mesh {{\n  local {RECEIVER} as {ASN};\n  multihop;\n  \
                     passive on;\n  hold time {hold};\n  keepalive time {keepalive};\n{gr}{channel}}}\n"
                );
                for k in 0..n {
                    let _ = writeln!(
                        c,
                        "protocol bgp {} from mesh {{ neighbor {} as {ASN}; }}",
                        proto_name(k),
                        peer_addr(k)
                    );
                }
            }
        }
        c
    }

    // --- namespaces

    /// The receiver's and the peers' namespaces, the veth's ends up with their addresses and
    /// permanent neighbour entries for every peer.
    fn netns(n: usize, reflector: bool, dir: &Path) -> anyhow::Result<RecvPeers> {
        let g = RecvPeers::create(
            NS_PREFIX,
            &["address", RECEIVER_MAC],
            &["address", PEERS_MAC],
        )?;
        // The peers are on the link: next hops `via 198.18.x.y` are valid kernel
        // routes, and permanent neighbour entries stand in for ARP (the neighbour
        // table's gc_thresh limits are shared by all namespaces).
        let mut recv = format!(
            "link set lo up\nlink set vr up\naddr add {RECEIVER}/24 dev vr\n\
                 addr add {RECEIVER_ONLINK} dev vr\n"
        );
        for k in 0..n {
            let _ = writeln!(
                recv,
                "neigh replace {} lladdr {PEERS_MAC} dev vr nud permanent",
                peer_addr(k)
            );
        }
        if reflector {
            let _ = writeln!(recv, "addr add {RECEIVER6_ONLINK} dev vr nodad");
            for k in 0..n {
                let _ = writeln!(
                    recv,
                    "neigh replace {} lladdr {PEERS_MAC} dev vr nud permanent",
                    peer_addr6(k)
                );
            }
        }
        let mut peers = format!(
            "link set lo up\nlink set vp up\naddr add {PEERS_END}/24 dev vp\n\
                 neigh replace {RECEIVER} lladdr {RECEIVER_MAC} dev vp nud permanent\n"
        );
        for k in 0..n {
            let _ = writeln!(peers, "addr add {}/32 dev vp", peer_addr(k));
        }
        ip_batch(&g.recv, &recv, &dir.join("ip-recv.batch"))?;
        ip_batch(&g.peers, &peers, &dir.join("ip-peers.batch"))?;
        Ok(g)
    }

    /// Churn mode: restarts or joins after convergence, graceful restart everywhere.
    fn churn(args: &Args) -> bool {
        args.churn > 0 || args.join > 0
    }

    fn which(cmd: &str) -> anyhow::Result<()> {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).exists()))
            .unwrap_or(false);
        if !found {
            bail!("{cmd} not found in PATH (apt-get install iproute2)");
        }
        Ok(())
    }

    /// Raises the soft RLIMIT_NOFILE to `want` (the hard limit too, if allowed); fails when
    /// fewer than `need` descriptors would be available.
    fn raise_nofile(want: u64, need: u64) -> anyhow::Result<()> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit struct to fill.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            bail!("getrlimit(NOFILE): {}", std::io::Error::last_os_error());
        }
        let raised = libc::rlimit {
            rlim_cur: want.max(lim.rlim_cur),
            rlim_max: want.max(lim.rlim_max),
        };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
        // Without CAP_SYS_RESOURCE the hard limit stays: take all of it.
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 || lim.rlim_cur < need {
            bail!(
                "RLIMIT_NOFILE: need {need} descriptors, the hard limit is {}",
                lim.rlim_max
            );
        }
        Ok(())
    }

    // --- /proc

    /// Nanosecond-exact CPU time of the live threads (`se.sum_exec_runtime`), and their ids.
    fn precise_cpu(pid: i32) -> Option<(f64, Vec<u32>)> {
        let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        let mut ms = 0.0;
        for t in &tids {
            let s = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/sched")).ok()?;
            let v = s
                .lines()
                .find(|l| l.starts_with("se.sum_exec_runtime"))?
                .split(':')
                .nth(1)?
                .trim()
                .parse::<f64>()
                .ok()?;
            ms += v;
        }
        Some((ms / 1000.0, tids))
    }

    /// Routes in the receiver namespace's main table inside 100.64.0.0/10.
    fn kernel_routes(pid: i32) -> anyhow::Result<usize> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/net/route"))?;
        let net: ipnet::Ipv4Net = "100.64.0.0/10".parse()?;
        Ok(s.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|h| u32::from_str_radix(h, 16).ok())
            .filter(|d| net.contains(&Ipv4Addr::from(d.to_le_bytes())))
            .count())
    }

    // --- the report

    fn header(args: &Args) -> anyhow::Result<String> {
        let mut versions = Vec::new();
        for s in &args.speakers {
            let v = cmd_out(&binary(args, *s).display().to_string(), &["--version"]);
            versions.push(format!("{}: {}", s.name(), v.lines().next().unwrap_or("?")));
        }
        let mut h = String::new();
        writeln!(
            h,
            "Date: {}",
            cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        )?;
        writeln!(h, "Machine: {}", harness::bench::machine())?;
        writeln!(
            h,
            "wren checkout: {}; wrend binary: {}; {}",
            harness::bench::checkout(),
            args.daemons.wrend.display(),
            versions.join("; ")
        )?;
        write!(
            h,
            "Settings: hold {} s, keepalive {} s, deadline {} s, idle window {} s, \
             dials {}, connect {}, kernel routes {}",
            args.hold,
            args.keepalive,
            args.deadline,
            args.idle,
            if args.spread > 0.0 {
                format!("spread over {} s", args.spread)
            } else {
                "all at once".to_string()
            },
            if args.connect_timeout == 0 {
                "waits out the kernel's SYN backoff".to_string()
            } else {
                format!("abandoned after {} s", args.connect_timeout)
            },
            if args.no_kernel { "off" } else { "on" }
        )?;
        Ok(h)
    }

    impl Outcome {
        /// Seconds to all Established, all blocks in the RIB and (when measured) all in the
        /// kernel; for one not reached, how far it got by the deadline.
        fn times(&self) -> (String, String, Option<String>) {
            let secs = |v: Option<f64>, reached: usize| match v {
                Some(s) => format!("{s:.2}"),
                None => format!("not in {} s ({reached}/{})", self.deadline, self.peers),
            };
            (
                secs(self.established, self.established_reached),
                secs(self.rib, self.rib_reached),
                self.kernel_measured
                    .then(|| secs(self.kernel, self.kernel_reached)),
            )
        }
    }

    /// Reflector mode: seconds from the dial and from the last client's Established (its
    /// own view) until every client held every other block.
    fn held_times(o: &Outcome) -> (String, String) {
        match (o.held, o.client.all_established_ms) {
            (Some(h), Some(e)) => (format!("{h:.2}"), format!("{:.2}", h - e as f64 / 1000.0)),
            (Some(h), None) => (format!("{h:.2}"), "–".into()),
            (None, _) => (
                format!("not in {} s ({}/{})", o.deadline, o.client.full, o.peers),
                "–".into(),
            ),
        }
    }

    fn summary_line(o: &Outcome) -> String {
        if let Some(e) = &o.error {
            return format!("  FAILED: {e} (files in {})", o.dir.display());
        }
        if o.held.is_some() || o.client.updates > 0 {
            let (held, after) = held_times(o);
            eprintln!(
                "  reflected: all held {held} s, {after} s after all Established, own routes \
                 back {}, UPDATEs {} ({} prefixes, {} withdrawn), blocks held at the end {}, \
                 client CPU {:.2} s",
                o.client.own_routes_back,
                o.client.updates,
                o.client.prefixes,
                o.client.withdrawn,
                o.client.held,
                o.client_cpu
            );
        }
        let (established, rib, kernel) = o.times();
        format!(
            "  Established {established} s, RIB {rib} s, kernel {}, RSS {:.1} MiB, CPU {:.2} s, \
             expiries {}, ListenDrops {}, idle {}",
            kernel.map_or("-".into(), |k| format!("{k} s")),
            o.peak_rss_kib as f64 / 1024.0,
            o.cpu_converge,
            o.client.hold_expiries(),
            o.listen_drops,
            o.idle_pct.map_or("-".into(), |p| format!("{p:.3} %")),
        )
    }

    impl PhaseOutcome {
        /// Seconds from the command until the last of its clients was up and until every
        /// client held its set, and between the two (the client's clock).
        fn times(&self) -> (String, String, String) {
            let s = |ms: Option<u64>| {
                ms.map_or("–".into(), |ms| format!("{:.2}", ms as f64 / 1000.0))
            };
            let after = match (self.held_ms, self.established_ms) {
                (Some(h), Some(e)) => format!("{:.2}", (h as f64 - e as f64) / 1000.0),
                _ => format!("not in time ({}/{} hold their set)", self.full, self.active),
            };
            (s(self.established_ms), s(self.held_ms), after)
        }

        /// The churn table's cells for this phase.
        fn row(&self) -> String {
            let (up, held, after) = self.times();
            format!(
                "{} | {} | {up} | {held} | {after} | {} | {} | {} | {} | {:.2}",
                self.what,
                self.clients,
                self.unchanged_withdrawn,
                self.own_routes_back,
                self.updates,
                self.withdrawn,
                self.cpu
            )
        }
    }

    fn map_str(m: &BTreeMap<String, u64>) -> String {
        if m.is_empty() {
            return "0".into();
        }
        m.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn report(header: &str, outcomes: &[Outcome], took: Duration, args: &Args) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "{header}");
        let _ = writeln!(r, "Whole run: {:.1} min\n", took.as_secs_f64() / 60.0);
        let _ = writeln!(
            r,
            "| receiver | peers | all Established (s) | all blocks in RIB (s) | blocks in kernel (s) \
             | peak RSS (MiB) | CPU dial→converged (s) | hold expiries | ListenDrops | SYN retrans \
             | idle CPU over {} s (% of a core) |",
            args.idle
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for o in outcomes {
            if let Some(e) = &o.error {
                let _ = writeln!(
                    r,
                    "| {} | {} | failed: {} |  |  |  |  |  |  |  |  |",
                    o.speaker,
                    o.peers,
                    e.lines().next().unwrap_or("")
                );
                continue;
            }
            let (established, rib, kernel) = o.times();
            let _ = writeln!(
                r,
                "| {} | {} | {established} | {rib} | {} | {:.1} | {:.2} | {} | {} | {} | {} |",
                o.speaker,
                o.peers,
                kernel.unwrap_or_else(|| "–".into()),
                o.peak_rss_kib as f64 / 1024.0,
                o.cpu_converge,
                o.client.hold_expiries(),
                o.listen_drops,
                o.syn_retrans,
                o.idle_pct.map_or("–".into(), |p| format!("{p:.3}")),
            );
        }
        if args.reflector {
            let _ = writeln!(
                r,
                "\nReflected (every client holds the 2N − 2 other blocks):\n\n\
                 | reflector | clients | all held, from the dial (s) | all held, after all Established (s) \
                 | own routes sent back | UPDATEs received by all clients | prefixes in them \
                 | clients' CPU dial→converged (s) | reflector CPU dial→converged (s) | peak RSS (MiB) |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for o in outcomes.iter().filter(|o| o.error.is_none()) {
                let (held, after) = held_times(o);
                let _ = writeln!(
                    r,
                    "| {} | {} | {held} | {after} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
                    o.speaker,
                    o.peers,
                    o.client.own_routes_back,
                    o.client.updates,
                    o.client.prefixes,
                    o.client_cpu,
                    o.cpu_converge,
                    o.peak_rss_kib as f64 / 1024.0,
                );
            }
        }
        if outcomes.iter().any(|o| !o.phases.is_empty()) {
            let _ = writeln!(
                r,
                "\nChurn (from the client's command; restarted clients come back under graceful \
                 restart with their /26 moved; \"hold the new set\": every client holds exactly the \
                 other clients' current blocks):\n\n\
                 | reflector | clients | phase | clients in it | last of them up (s) \
                 | all hold the new set (s) | after the last up (s) | withdrawals of unchanged blocks \
                 | own routes back | UPDATEs received by all | withdrawals received | reflector CPU (s) |\n\
                 |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for o in outcomes.iter().filter(|o| o.error.is_none()) {
                for p in &o.phases {
                    let _ = writeln!(r, "| {} | {} | {} |", o.speaker, o.peers, p.row());
                }
            }
        }
        let _ = writeln!(r, "\nDetails:\n");
        let _ = writeln!(
            r,
            "| receiver | peers | Established, client's view (s) | RSS before dial (MiB) | CPU at start-up (s) \
             | connect attempts | connect errors | slowest connect (s) | NOTIFICATIONs received \
             | closed without NOTIFICATION | no OPEN in 240 s | flaps | ListenOverflows | Established / blocks after idle \
             | control polls (mean / max ms) | receiver log warnings \
             | machine CPU dial→converged (s) | machine busy over idle window (% of a core) \
             | waited for a quiet machine (s) |"
        );
        let _ = writeln!(
            r,
            "|---|---:|---:|---:|---:|---:|---|---:|---|---|---:|---:|---:|---|---|---:|---:|---:|---|"
        );
        for o in outcomes.iter().filter(|o| o.error.is_none()) {
            let c = &o.client;
            let cells = [
                o.speaker.to_string(),
                o.peers.to_string(),
                c.all_established_ms.map_or_else(
                    || format!("({}/{})", c.ever_established, o.peers),
                    |ms| format!("{:.2}", ms as f64 / 1000.0),
                ),
                format!("{:.1}", o.rss_before_kib as f64 / 1024.0),
                format!("{:.2}", o.cpu_startup),
                c.connect_attempts.to_string(),
                map_str(&c.connect_errors),
                format!("{:.2}", c.slowest_connect_ms as f64 / 1000.0),
                map_str(&c.notifications),
                map_str(&c.closes),
                c.opensent_timeouts.to_string(),
                c.flaps.to_string(),
                o.listen_overflows.to_string(),
                format!("{} / {}", o.established_after_idle, o.routes_after_idle),
                format!("{} ({:.1} / {:.1})", o.polls, o.poll_ms_mean, o.poll_ms_max),
                o.receiver_warnings.to_string(),
                format!("{:.2}", o.machine_busy_converge),
                o.machine_busy_pct.map_or("–".into(), |p| format!("{p:.2}")),
                format!(
                    "{:.0}{}",
                    o.quiet_wait.0,
                    if o.quiet_wait.1 { "" } else { " (still busy)" }
                ),
            ];
            let _ = writeln!(r, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(
            r,
            "\nTCP sockets when convergence ended or the deadline passed (`ss -tan`):\n"
        );
        for o in outcomes.iter().filter(|o| o.error.is_none()) {
            let _ = writeln!(
                r,
                "- {} {}: receiver namespace {}; peers namespace {}",
                o.speaker, o.peers, o.sockets_recv, o.sockets_peers
            );
        }
        for o in outcomes.iter().filter(|o| o.error.is_some()) {
            let _ = writeln!(
                r,
                "\n{} with {} peers failed (files in {}):\n\n```\n{}\n```",
                o.speaker,
                o.peers,
                o.dir.display(),
                o.error.as_deref().unwrap_or("")
            );
        }
        r
    }
}

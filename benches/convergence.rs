//! Convergence of N routes into the kernel, wrend against BIRD 2 and BIRD 1.6.8, with the
//! kernel's floor and `ip -batch` in the same run: `sudo bash tests/cargo.sh bench --bench convergence`.
//!
//! For each N (default 10k and 100k; `--routes 10000,100000,1000000` adds 1M) and each run
//! kind, two fresh network namespaces (`wcv-r-PID-K`, `wcv-s-PID-K`) are joined by a veth:
//! `cr` in the receiver's with 198.51.100.1/24, `cs` in the sender's with 198.51.100.2/24.
//! The routes are those of the `fib` bench: the first N blocks of 100.64.0.0/10 at the
//! shortest length of /26 or longer that holds N (10k: /26, 100k: /27, 1M: /30; `--len`),
//! each `via 198.51.100.2` in the receiver namespace's main table, `proto bird`.
//!
//! * `wrend`, `bird2`, `bird16` — the receiver under test, started as calico-node starts
//!   BIRD (`-R -s CTL -d -c CONF`) and configured as on a Calico node (the contract's
//!   bird.cfg: kernel protocol `learn; persist; scan time 2; graceful restart; merge paths
//!   on` exporting through `calico_kernel_programming`, device and direct protocols, the
//!   `bgp_template` with `gateway recursive; add paths on; graceful restart; multihop`, and
//!   one mesh peer `Mesh_198_51_100_2`, passive since its address is greater; `debug
//!   { states }` everywhere, as before Calico 3.32, which added route debugging on BGP) with
//!   one no-encapsulation pool 100.64.0.0/10; wrend's TOML says the same. The node has no
//!   own block, so the receiver's table gets exactly the N routes. The sender (this binary
//!   again, in the sender's namespace) pre-encodes N announcements, 800 prefixes per UPDATE
//!   (ORIGIN IGP, empty AS_PATH, NEXT_HOP 198.51.100.2, LOCAL_PREF 100), then dials: OPEN
//!   (AS 64512, hold 240, IPv4 unicast, 4-octet AS, graceful restart), KEEPALIVE, then every
//!   UPDATE back to back and End-of-RIB. Install time runs from TCP up (the connect
//!   returning) until the receiver namespace's main table holds all N; withdraw time from
//!   the first withdrawal written (the same 800 a message) until it holds none of them.
//! * `floor` — the kernel's floor, `fib`'s raw netlink loop (pre-built RTM_NEWROUTE in 64 KiB
//!   batches, an ACK per route), and `ip` — `ip -batch`, both run in the receiver namespace;
//!   their times are from the first request to the last reply.
//!
//! The table's route count is `Prefixes` of `Main:` in `/proc/PID/net/fib_triestat`, read
//! every 10 ms, or 3 times as long as the last read took when that is longer (the read walks
//! the table: about 5 ms at 100k routes), so times are upper bounds to that resolution. CPU is the receiver's utime + stime over the phase (for `floor`, the process
//! doing the netlink work; for `ip`, the `ip` process), peak RSS its VmHWM (reset before the
//! install; for `floor` and `ip` the process's maxrss, which includes its route list).
//!
//! Options (after `--`): `--routes 10000,100000`, `--runs floor,ip,wrend,bird2,bird16`,
//! `--reps 1` (the table shows the median install run), `--len L`, `--nice -10`,
//! `--wait-quiet 30` (seconds to wait for under a tenth of a core busy over 2 s),
//! `--deadline 600` (seconds for one phase), `--wrend PATH`, `--bird2 PATH`, `--bird16 PATH`,
//! `--out FILE`. Needs root; under `cargo test` it does nothing.
//! Work files (configurations, logs, the sender's log) go to
//! `target/tmp/convergence/RUN-N/`, the report to `target/tmp/convergence/results.md`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{Client, count_label, stopped};
use harness::kernel::{GATEWAY, prefix_len, route};
use harness::netns::{Namespaces, try_ip};
use harness::proc::{Proc, RESULT};

/// The receiver's address; the sender is `GATEWAY` (198.51.100.2).
const RECEIVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ASN: u32 = 64512;
/// The pool the blocks come from (no encapsulation).
const POOL: &str = "100.64.0.0/10";
/// Namespace names: `wcv-r-PID-K`, `wcv-s-PID-K`.
const NS_PREFIX: &str = "wcv-";
const SENDER_CMD: &str = "__convergence_sender";
const REF_CMD: &str = "__convergence_ref";
/// Prefixes per UPDATE (5 octets each with the attributes fit in 4,096).
const PER_UPDATE: usize = 800;
const POLL: Duration = Duration::from_millis(10);
const SETTLE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    harness::bench::main(
        "convergence",
        true,
        &[(SENDER_CMD, sender::main), (REF_CMD, reference)],
        controller::run,
    )
}

#[derive(Parser, Debug)]
#[command(
    about = "N routes over iBGP into the kernel: wrend, BIRD 2, BIRD 1.6.8, the floor, ip -batch"
)]
struct Args {
    /// Numbers of routes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    routes: Vec<usize>,
    /// What to run for each N, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "floor,ip,wrend,bird2,bird16"
    )]
    runs: Vec<Run>,
    /// Runs of each kind for each N; the table shows the one with the median install time.
    #[arg(long, default_value_t = 1)]
    reps: usize,
    /// Prefix length for every N (default: the shortest of /26 or longer that holds N).
    #[arg(long)]
    len: Option<u8>,
    #[command(flatten)]
    timing: harness::bench::Timing,
    /// Start the receivers with `-R` (graceful-restart recovery), as calico-node always
    /// does: measures a node's restart rather than a session coming up on a running node.
    #[arg(long)]
    restarting: bool,
    /// Give up on one phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
    #[command(flatten)]
    daemons: harness::bench::Daemons,
    /// Also write the report (markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Run {
    Floor,
    Ip,
    Wrend,
    Bird2,
    Bird16,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Floor => "floor",
            Run::Ip => "ip",
            Run::Wrend => "wrend",
            Run::Bird2 => "bird2",
            Run::Bird16 => "bird16",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Run::Floor => "kernel floor (raw netlink loop)",
            Run::Ip => "`ip -batch`",
            Run::Wrend => "wrend",
            Run::Bird2 => "BIRD 2",
            Run::Bird16 => "BIRD 1.6.8",
        }
    }

    fn is_daemon(self) -> bool {
        matches!(self, Run::Wrend | Run::Bird2 | Run::Bird16)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine, so the
/// sender's "TCP up" and the controller's "all in the kernel" can be subtracted.
fn mono_ns() -> u64 {
    harness::proc::clock(libc::CLOCK_MONOTONIC).as_nanos() as u64
}

/// `__convergence_ref METHOD N LEN DIR`: the floor or `ip -batch`, install then withdraw,
/// in the namespace it runs in.
fn reference(args: &[String]) -> anyhow::Result<()> {
    let [method, n, len, dir] = args else {
        bail!("usage: {REF_CMD} floor|ip N LEN DIR");
    };
    let n: usize = n.parse()?;
    let len: u8 = len.parse()?;
    let routes: Vec<Ipv4Net> = (0..n).map(|k| route(k, len)).collect();
    let base = harness::kernel::prefixes()?;
    let outcome = match method.as_str() {
        "floor" => harness::kernel::floor(&routes, base, true)?,
        "ip" => harness::kernel::ip_batch(&routes, base, Path::new(dir))?,
        m => bail!("no reference method {m}"),
    };
    println!("{RESULT}{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// When the sender reached each step of a phase (CLOCK_MONOTONIC ns).
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct SenderTimes {
    /// Install: the connect returned. Withdraw: the first withdrawal is about to be written.
    start: u64,
    /// Install: the receiver's OPEN arrived.
    open: u64,
    /// The last UPDATE (and End-of-RIB) was written.
    sent: u64,
}

// ---------------------------------------------------------------------------------------------
// The sender: runs inside the sender's namespace.

mod sender {
    use std::io::{BufRead, Read, Write};
    use std::net::{IpAddr, SocketAddr, TcpStream};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use anyhow::{anyhow, bail};
    use bytes::BytesMut;
    use ipnet::{IpNet, Ipv4Net};
    use wren::wire::{Message, Negotiated, Prefix, Update, decode};

    use super::{ASN, GATEWAY, PER_UPDATE, RECEIVER, SenderTimes, mono_ns, route};
    use crate::harness::bgp;

    /// What the reader thread saw.
    enum Event {
        Open,
        Keepalive,
        Gone(String),
    }

    /// `__convergence_sender N LEN`: pre-encodes, prints `ready`; then `go` (dial, OPEN,
    /// announce all, print `install {times}`), `withdraw` (withdraw all, print
    /// `withdraw {times}`), `stop` or end of input.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let [n, len] = args else {
            bail!("usage: {} N LEN", super::SENDER_CMD);
        };
        let n: usize = n.parse()?;
        let len: u8 = len.parse()?;
        let routes: Vec<Ipv4Net> = (0..n).map(|k| route(k, len)).collect();
        let neg = Negotiated {
            four_octet_as: true,
            ..Negotiated::default()
        };
        let announce = updates(&routes, false, &neg)?;
        let withdraw = updates(&routes, true, &neg)?;
        drop(routes);
        let mut eor = BytesMut::new();
        Message::Update(Update::default()).encode(&neg, &mut eor)?;
        println!("ready");
        let mut input = std::io::stdin().lock().lines();
        let mut expect = |want: &str| -> anyhow::Result<()> {
            match input.next() {
                Some(Ok(l)) if l.trim() == want => Ok(()),
                Some(Ok(l)) => bail!("expected {want}, got {l:?}"),
                _ => bail!("input closed while waiting for {want}"),
            }
        };
        expect("go")?;

        let stream = connect()?;
        let mut t = SenderTimes {
            start: mono_ns(),
            ..SenderTimes::default()
        };
        stream.set_nodelay(true)?;
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        let (tx, rx) = mpsc::channel();
        let reader = stream;
        std::thread::spawn(move || read_loop(reader, neg, tx));
        let write = |bytes: &[u8]| -> anyhow::Result<()> {
            let mut w = writer.lock().map_err(|_| anyhow!("writer poisoned"))?;
            w.write_all(bytes)?;
            Ok(())
        };
        write(&bgp::encode(&[open()], &neg)?)?;
        let wait = |want: fn(&Event) -> bool| -> anyhow::Result<()> {
            loop {
                match rx.recv_timeout(Duration::from_secs(300)) {
                    Ok(Event::Gone(why)) => bail!("session ended: {why}"),
                    Ok(e) if want(&e) => return Ok(()),
                    Ok(_) => {}
                    Err(_) => bail!("no answer from the receiver"),
                }
            }
        };
        wait(|e| matches!(e, Event::Open))?;
        t.open = mono_ns();
        write(&bgp::encode(&[Message::Keepalive], &neg)?)?;
        wait(|e| matches!(e, Event::Keepalive))?;
        // RFC 4271 §4.4: a KEEPALIVE every hold time ÷ 3 (240 s proposed) keeps the session.
        let ka = Arc::clone(&writer);
        let keepalive = bgp::encode(&[Message::Keepalive], &neg)?;
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(30));
                let Ok(mut w) = ka.lock() else { return };
                if w.write_all(&keepalive).is_err() {
                    return;
                }
            }
        });
        write(&announce)?;
        write(&eor)?;
        t.sent = mono_ns();
        println!("install {}", serde_json::to_string(&t)?);

        expect("withdraw")?;
        let mut w = SenderTimes {
            start: mono_ns(),
            ..SenderTimes::default()
        };
        write(&withdraw)?;
        w.sent = mono_ns();
        println!("withdraw {}", serde_json::to_string(&w)?);
        // Hold the session until told to stop, so that the receiver keeps nothing stale.
        let _ = expect("stop");
        while let Ok(e) = rx.try_recv() {
            if let Event::Gone(why) = e {
                bail!("session ended: {why}");
            }
        }
        Ok(())
    }

    /// Dials the receiver from 198.51.100.2, retrying refused connections for 10 s.
    fn connect() -> anyhow::Result<TcpStream> {
        let target = SocketAddr::new(IpAddr::V4(RECEIVER), 179);
        let mut tries = 0;
        loop {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(IpAddr::V4(GATEWAY), 0).into())?;
            match s.connect(&target.into()) {
                Ok(()) => return Ok(s.into()),
                Err(e) if tries < 100 => {
                    eprintln!("sender: connect: {e}; again in 100 ms");
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => bail!("connect {target}: {e}"),
            }
        }
    }

    /// A restarting-capable iBGP router's OPEN (graceful restart for IPv4 unicast, RFC 4724).
    fn open() -> Message {
        Message::Open(bgp::open(
            ASN,
            GATEWAY,
            240,
            &[bgp::graceful_restart_ipv4()],
        ))
    }

    /// Every route in UPDATEs of `PER_UPDATE` prefixes: announced with one attribute set, or
    /// withdrawn.
    fn updates(routes: &[Ipv4Net], withdraw: bool, neg: &Negotiated) -> anyhow::Result<Vec<u8>> {
        let attributes = bgp::ibgp_attributes(GATEWAY);
        let mut buf =
            BytesMut::with_capacity(routes.len() * 5 + routes.len() / PER_UPDATE * 64 + 64);
        for chunk in routes.chunks(PER_UPDATE) {
            let prefixes: Vec<Prefix> = chunk.iter().map(|&n| Prefix::new(IpNet::V4(n))).collect();
            let u = if withdraw {
                Update {
                    withdrawn: prefixes.into(),
                    ..Update::default()
                }
            } else {
                Update {
                    withdrawn: Default::default(),
                    attributes: attributes.clone().into(),
                    nlri: prefixes.into(),
                }
            };
            Message::Update(u).encode(neg, &mut buf)?;
        }
        Ok(buf.to_vec())
    }

    /// Reads the receiver's messages; reports its OPEN, KEEPALIVEs, and the end.
    fn read_loop(mut s: TcpStream, neg: Negotiated, tx: mpsc::Sender<Event>) {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) => {
                    let _ = tx.send(Event::Gone("closed by the receiver".into()));
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Event::Gone(format!("read: {e}")));
                    return;
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                let msg = match bgp::next_frame(&mut buf, &neg) {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Event::Gone(format!("bad framing: {e:?}")));
                        return;
                    }
                };
                let ev = match decode(&msg, &neg) {
                    Ok(Message::Open(_)) => Event::Open,
                    Ok(Message::Keepalive) => Event::Keepalive,
                    Ok(Message::Notification(n)) => {
                        let why = format!("NOTIFICATION {}/{}", n.code, n.subcode);
                        eprintln!("sender: {why}");
                        let _ = tx.send(Event::Gone(why));
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("sender: undecodable message from the receiver: {e:?}");
                        continue;
                    }
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The controller: namespaces, receivers, measurements.

mod controller {
    use super::*;

    /// One run's figures. Times in seconds.
    #[derive(Debug, Default, Clone)]
    pub struct Row {
        run: Option<Run>,
        n: usize,
        len: u8,
        error: Option<String>,
        /// TCP up (references: first request) → all N in the kernel.
        install: Option<f64>,
        /// The receiver's OPEN → all N in the kernel.
        open_to_kernel: Option<f64>,
        /// TCP up → the sender wrote its last UPDATE.
        sent: Option<f64>,
        install_cpu: f64,
        peak_rss_kib: u64,
        rss_before_kib: u64,
        /// First withdrawal written → none left in the kernel.
        withdraw: Option<f64>,
        withdraw_sent: Option<f64>,
        withdraw_cpu: f64,
        /// Routes in the kernel when a phase gave up.
        reached: i64,
        /// One installed route, as `ip route` shows it.
        sample: String,
        polls: u64,
        poll_ms_mean: f64,
        machine_busy_cores: f64,
        quiet: harness::bench::Quiet,
        /// Install and withdraw times of every repetition, in order of install time.
        all_reps: Vec<(Option<f64>, Option<f64>)>,
        dir: PathBuf,
    }

    pub fn run(args: &Args) -> anyhow::Result<bool> {
        if args.reps == 0 || args.runs.is_empty() || args.routes.is_empty() {
            bail!("nothing to run");
        }
        for &r in args.runs.iter().filter(|r| r.is_daemon()) {
            let bin = binary(args, r);
            if !bin.exists() {
                let hint = match r {
                    Run::Bird16 => {
                        "sudo bash tests/peers/install.sh (or: cd target/peers && apt-get \
                         download bird && dpkg -x bird_*.deb bird16)"
                    }
                    Run::Bird2 => "apt-get install bird2",
                    _ => "cargo build --release",
                };
                bail!("{} not found at {} ({hint})", r.name(), bin.display());
            }
        }
        harness::bench::catch_signals();
        harness::netns::remove_stale_namespaces(NS_PREFIX, "convergence");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("convergence");
        std::fs::create_dir_all(&base)?;
        let started = Instant::now();
        let load_before = loadavg();
        let mut rows = Vec::new();
        let mut seq = 0;
        'all: for &n in &args.routes {
            let len = prefix_len(n, args.len)?;
            let mut reps: Vec<Vec<Row>> = vec![Vec::new(); args.runs.len()];
            for rep in 0..args.reps {
                for (i, &r) in args.runs.iter().enumerate() {
                    if stopped() {
                        break 'all;
                    }
                    seq += 1;
                    let dir = base.join(format!("{}-{}", r.name(), count_label(n)));
                    eprintln!("convergence: {} N={n} /{len} rep {} …", r.name(), rep + 1);
                    let row = match run_one(args, r, n, len, seq, &dir) {
                        Ok(row) => row,
                        Err(e) => Row {
                            run: Some(r),
                            n,
                            len,
                            error: Some(format!("{e:#}")),
                            dir: dir.clone(),
                            ..Row::default()
                        },
                    };
                    eprintln!("  {}", summary(&row));
                    reps[i].push(row);
                }
            }
            for mut runs in reps {
                runs.sort_by(|a, b| {
                    let t = |r: &Row| r.install.unwrap_or(f64::INFINITY);
                    t(a).total_cmp(&t(b))
                });
                let all: Vec<_> = runs.iter().map(|r| (r.install, r.withdraw)).collect();
                let mid = runs.len() / 2;
                if let Some(mut row) = runs.into_iter().nth(mid) {
                    row.all_reps = all;
                    rows.push(row);
                }
            }
        }
        let report = report(args, &rows, started.elapsed(), &load_before);
        harness::bench::write_report("convergence", &report, args.out.as_deref(), &base)?;
        if stopped() {
            bail!("interrupted");
        }
        Ok(rows.iter().all(|r| r.error.is_none()))
    }

    fn binary(args: &Args, r: Run) -> &Path {
        match r {
            Run::Bird2 => &args.daemons.bird2,
            Run::Bird16 => &args.daemons.bird16,
            _ => &args.daemons.wrend,
        }
    }

    /// The receiver's and the sender's namespaces, joined by `cr` — `cs`.
    struct Netns {
        recv: String,
        send: String,
        _guard: Namespaces,
    }

    fn netns(seq: usize) -> anyhow::Result<Netns> {
        let id = std::process::id();
        let (recv, send) = (
            format!("{NS_PREFIX}r-{id}-{seq}"),
            format!("{NS_PREFIX}s-{id}-{seq}"),
        );
        let g = Netns {
            _guard: Namespaces::create(&[recv.clone(), send.clone()])?,
            recv,
            send,
        };
        try_ip(&[
            "link", "add", "cr", "netns", &g.recv, "type", "veth", "peer", "name", "cs", "netns",
            &g.send,
        ])?;
        try_ip(&[
            "-n",
            &g.recv,
            "addr",
            "add",
            &format!("{RECEIVER}/24"),
            "dev",
            "cr",
        ])?;
        try_ip(&[
            "-n",
            &g.send,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            "cs",
        ])?;
        try_ip(&["-n", &g.recv, "link", "set", "cr", "up"])?;
        try_ip(&["-n", &g.send, "link", "set", "cs", "up"])?;
        Ok(g)
    }

    fn run_one(
        args: &Args,
        r: Run,
        n: usize,
        len: u8,
        seq: usize,
        dir: &Path,
    ) -> anyhow::Result<Row> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut row = Row {
            run: Some(r),
            n,
            len,
            dir: dir.to_path_buf(),
            ..Row::default()
        };
        row.quiet = harness::bench::wait_quiet(
            Duration::from_secs(args.timing.wait_quiet),
            0.10,
            Duration::from_secs(2),
        )?;
        let net = netns(seq)?;
        let exe = std::env::current_exe()?.display().to_string();
        if !r.is_daemon() {
            let argv = [
                exe,
                REF_CMD.to_string(),
                r.name().to_string(),
                n.to_string(),
                len.to_string(),
                dir.display().to_string(),
            ];
            let log = dir.join("ref.log");
            let busy0 = harness::proc::machine_busy_secs()?;
            let t0 = Instant::now();
            let mut p = Proc::spawn(&net.recv, &argv, &log, true, args.timing.nice)?;
            let deadline = Instant::now() + Duration::from_secs(2 * args.deadline);
            let o: harness::kernel::Outcome = p.result(&log, deadline)?;
            row.machine_busy_cores =
                (harness::proc::machine_busy_secs()? - busy0) / t0.elapsed().as_secs_f64();
            if o.install.errors + o.withdraw.errors > 0
                || o.install.routes != n as i64
                || o.withdraw.routes != 0
            {
                bail!(
                    "{} errors, {} routes after the install, {} after the withdraw",
                    o.install.errors + o.withdraw.errors,
                    o.install.routes,
                    o.withdraw.routes
                );
            }
            row.install = Some(o.install.wall);
            row.install_cpu = o.install.cpu;
            row.withdraw = Some(o.withdraw.wall);
            row.withdraw_cpu = o.withdraw.cpu;
            row.peak_rss_kib = o.install.maxrss.max(o.withdraw.maxrss) as u64;
            return Ok(row);
        }

        // The receiver, as calico-node starts BIRD.
        let ctl = dir.join("ctl");
        let conf = dir.join(if r == Run::Wrend {
            "wrend.toml"
        } else {
            "bird.cfg"
        });
        std::fs::write(&conf, config(r))?;
        let mut argv = vec![binary(args, r).display().to_string()];
        if args.restarting {
            argv.push("-R".into());
        }
        argv.extend([
            "-s".into(),
            ctl.display().to_string(),
            "-d".into(),
            "-c".into(),
            conf.display().to_string(),
        ]);
        let log = dir.join("receiver.log");
        let spawned = Instant::now();
        let mut receiver = Proc::spawn(&net.recv, &argv, &log, false, args.timing.nice)?;
        let rpid = receiver.pid();
        loop {
            receiver.check_alive(&log)?;
            if Client::connect(&ctl).is_ok() && harness::proc::listening(rpid, 179) {
                break;
            }
            if spawned.elapsed() > Duration::from_secs(30) {
                bail!("the receiver did not come up (see {})", log.display());
            }
            harness::bench::sleep(Duration::from_millis(50))?;
        }
        harness::bench::sleep(SETTLE)?;
        let triestat = format!("/proc/{rpid}/net/fib_triestat");
        let count = || harness::kernel::prefixes_in(&triestat);
        let base = count()?;

        // The sender, routes encoded, waiting.
        let slog = dir.join("sender.log");
        let sargv = [exe, SENDER_CMD.to_string(), n.to_string(), len.to_string()];
        let mut sender = Proc::spawn(&net.send, &sargv, &slog, true, args.timing.nice)?;
        let lines = sender.lines()?;
        let line = |prefix: &str, sender: &mut Proc, limit: Duration| -> anyhow::Result<String> {
            let until = Instant::now() + limit;
            loop {
                sender.check_alive(&slog)?;
                match lines.recv_timeout(Duration::from_millis(50)) {
                    Ok(l) => {
                        if let Some(rest) = l.strip_prefix(prefix) {
                            return Ok(rest.trim().to_string());
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        bail!("the sender exited (see {})", slog.display())
                    }
                }
                if stopped() || Instant::now() > until {
                    bail!("no `{prefix}` from the sender (see {})", slog.display());
                }
            }
        };
        line("ready", &mut sender, Duration::from_secs(120))?;

        // Install.
        harness::proc::reset_peak_rss(rpid)?;
        row.rss_before_kib = harness::proc::status_kib(rpid, "VmRSS:")?;
        let cpu0 = harness::proc::cpu_secs(rpid)?;
        let busy0 = harness::proc::machine_busy_secs()?;
        let w0 = Instant::now();
        sender.send("go")?;
        let deadline = Duration::from_secs(args.deadline);
        let done = wait_count(
            &mut receiver,
            &log,
            &count,
            |c| c - base >= n as i64,
            deadline,
            &mut row,
        )?;
        let cpu1 = harness::proc::cpu_secs(rpid)?;
        row.machine_busy_cores =
            (harness::proc::machine_busy_secs()? - busy0) / w0.elapsed().as_secs_f64();
        let t: SenderTimes = serde_json::from_str(&line("install ", &mut sender, deadline)?)?;
        let Some(done) = done else {
            bail!(
                "{} of {n} routes in the kernel after {} s (see {})",
                row.reached,
                args.deadline,
                dir.display()
            );
        };
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9;
        row.install = Some(secs(t.start, done));
        row.open_to_kernel = Some(secs(t.open, done));
        row.sent = Some(secs(t.start, t.sent));
        row.install_cpu = cpu1 - cpu0;
        harness::bench::sleep(SETTLE)?;
        row.peak_rss_kib = harness::proc::status_kib(rpid, "VmHWM:")?;
        let now = count()? - base;
        if now != n as i64 {
            let table =
                harness::bench::cmd_out("ip", &["-n", &net.recv, "route", "show", "table", "main"]);
            let others: Vec<&str> = table.lines().filter(|l| !l.starts_with("100.")).collect();
            bail!(
                "{now} routes in the kernel after the install settled, not {n}; besides the \
                 blocks: {others:?}"
            );
        }
        row.sample = harness::bench::cmd_out(
            "ip",
            &["-n", &net.recv, "route", "show", &route(0, len).to_string()],
        );

        // Withdraw.
        let cpu0 = harness::proc::cpu_secs(rpid)?;
        sender.send("withdraw")?;
        let done = wait_count(
            &mut receiver,
            &log,
            &count,
            |c| c <= base,
            deadline,
            &mut row,
        )?;
        let cpu1 = harness::proc::cpu_secs(rpid)?;
        let w: SenderTimes = serde_json::from_str(&line("withdraw ", &mut sender, deadline)?)?;
        let Some(done) = done else {
            bail!(
                "{} of {n} routes still in the kernel {} s after the withdrawal (see {})",
                row.reached,
                args.deadline,
                dir.display()
            );
        };
        row.withdraw = Some(secs(w.start, done));
        row.withdraw_sent = Some(secs(w.start, w.sent));
        row.withdraw_cpu = cpu1 - cpu0;
        row.peak_rss_kib = row
            .peak_rss_kib
            .max(harness::proc::status_kib(rpid, "VmHWM:")?);

        sender.send("stop")?;
        sender.stop(Duration::from_secs(5));
        receiver.stop(Duration::from_secs(5));
        drop(net);
        Ok(row)
    }

    /// Polls the receiver namespace's route count every `POLL` until `done(count)`; the
    /// CLOCK_MONOTONIC time of the read that saw it, or `None` after `limit` (the count
    /// then in `row.reached`, relative to nothing: the raw table size).
    fn wait_count(
        receiver: &mut Proc,
        log: &Path,
        count: &dyn Fn() -> anyhow::Result<i64>,
        done: impl Fn(i64) -> bool,
        limit: Duration,
        row: &mut Row,
    ) -> anyhow::Result<Option<u64>> {
        let until = Instant::now() + limit;
        let mut spent = Duration::ZERO;
        loop {
            receiver.check_alive(log)?;
            if stopped() {
                bail!("interrupted");
            }
            let q = Instant::now();
            let c = count()?;
            let at = mono_ns();
            spent += q.elapsed();
            row.polls += 1;
            row.poll_ms_mean = spent.as_secs_f64() * 1000.0 / row.polls as f64;
            row.reached = c;
            if done(c) {
                return Ok(Some(at));
            }
            if Instant::now() > until {
                return Ok(None);
            }
            // fib_triestat walks the whole table (about 5 ms at 100k routes): poll at most a
            // quarter of the time, so the reading costs the receiver little CPU.
            std::thread::sleep(POLL.max(q.elapsed() * 3));
        }
    }

    // --- configuration: a Calico node with one mesh peer, the sender

    fn config(r: Run) -> String {
        let peer = GATEWAY;
        let name = format!("Mesh_{}", peer.to_string().replace('.', "_"));
        if r == Run::Wrend {
            return format!(
                "# A Calico node (contract §2): one no-encapsulation pool, one mesh peer.\n\
                 router_id = \"{RECEIVER}\"\nasn = {ASN}\noriginate = []\n\n\
                 [[pool]]\ncidr = \"{POOL}\"\nencapsulation = \"none\"\n\n\
                 [defaults]\nsource_address = \"{RECEIVER}\"\n\n\
                 # Calico's passive rule: the peer's address is greater, so it dials.\n\
                 [[peer]]\nname = \"{name}\"\naddress = \"{peer}\"\nasn = {ASN}\npassive = true\n"
            );
        }
        let v2 = r == Run::Bird2;
        // calico_kernel_programming for a no-encapsulation pool (stock BIRD has no
        // krt_tunnel), and calico_export_to_bgp_peers for that pool (contract §3.2, §3.7).
        // BIRD 1.6 never writes `direct` routes to the kernel; BIRD 2 would (metric 32), so
        // its filter leaves them out to write the same table.
        let device = if v2 {
            "  if ( source = RTS_DEVICE ) then { reject; }\n"
        } else {
            ""
        };
        let mut c = format!(
            "# A Calico node's bird.cfg (contract §2.1): one no-encapsulation pool, one mesh peer.\n\
             router id {RECEIVER};\n\n\
             filter calico_kernel_programming {{\n{device}  if ( net ~ {POOL} ) then {{ accept; }}\n  accept;\n}}\n\n\
             function calico_export_to_bgp_peers(bool is_internal) {{\n  \
             if ( net ~ {POOL} ) then {{ accept; }}\n}}\n\n"
        );
        let kernel_opts =
            "learn;\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;";
        if v2 {
            let _ = write!(
                c,
                "protocol kernel {{\n  {kernel_opts}\n  ipv4 {{\n    import all;\n    \
                 export filter calico_kernel_programming;\n  }};\n}}\n\n"
            );
        } else {
            let _ = write!(
                c,
                "protocol kernel {{\n  {kernel_opts}\n  import all;\n  \
                 export filter calico_kernel_programming;\n}}\n\n"
            );
        }
        let _ = write!(
            c,
            "protocol device {{\n  debug {{ states }};\n  scan time 2;\n}}\n\n\
             protocol direct {{\n  debug {{ states }};\n{}  interface -\"cali*\", -\"kube-ipvs*\", \"*\";\n}}\n\n",
            if v2 { "  ipv4;\n" } else { "" }
        );
        let channel = |body: &str| {
            if v2 {
                format!("  ipv4 {{\n{body}  }};\n")
            } else {
                body.replace("    ", "  ")
            }
        };
        let _ = write!(
            c,
            "template bgp bgp_template {{\n  debug {{ states }};\n  \
             description \"Connection to BGP peer\";\n  local as {ASN};\n  multihop;\n{}  \
             graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  \
             error wait time 5,30;\n}}\n\n",
            channel("    gateway recursive;\n    add paths on;\n    import all;\n")
        );
        let _ = write!(
            c,
            "protocol bgp {name} from bgp_template {{\n  neighbor {peer} as {ASN};\n  \
             source address {RECEIVER};\n  passive on;\n{}}}\n",
            channel(
                "    import all;\n    export filter {\n      \
                 calico_export_to_bgp_peers(true);\n      reject;\n    };\n"
            )
        );
        c
    }

    // --- the report

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }

    fn secs(v: Option<f64>) -> String {
        v.map_or("–".into(), |s| format!("{s:.3}"))
    }

    fn summary(r: &Row) -> String {
        if let Some(e) = &r.error {
            return format!("FAILED: {e} (files in {})", r.dir.display());
        }
        format!(
            "install {} s (CPU {:.2} s), withdraw {} s (CPU {:.2} s), peak RSS {:.1} MiB; \
             machine {:.2} cores busy",
            secs(r.install),
            r.install_cpu,
            secs(r.withdraw),
            r.withdraw_cpu,
            r.peak_rss_kib as f64 / 1024.0,
            r.machine_busy_cores
        )
    }

    fn find(rows: &[Row], run: Run, n: usize) -> Option<&Row> {
        rows.iter()
            .find(|r| r.run == Some(run) && r.n == n && r.error.is_none())
    }

    fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
        match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    fn report(args: &Args, rows: &[Row], took: Duration, load_before: &str) -> String {
        let mut s = String::new();
        let mut versions = Vec::new();
        for &r in args.runs.iter().filter(|r| r.is_daemon()) {
            let v = harness::bench::cmd_out(&binary(args, r).display().to_string(), &["--version"]);
            versions.push(format!("{}: {}", r.name(), v.lines().next().unwrap_or("?")));
        }
        let _ = writeln!(
            s,
            "Date: {}. Machine: {}. wren checkout {}; {}. Load average (1, 5, 15 min) {} at \
             the start, {} at the end; whole run {:.1} min; {} run(s) of each, the table shows \
             the median install.\n",
            harness::bench::cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            harness::bench::machine(),
            harness::bench::checkout(),
            versions.join("; "),
            load_before,
            loadavg(),
            took.as_secs_f64() / 60.0,
            args.reps,
        );
        let _ = writeln!(
            s,
            "| N | prefix | receiver | TCP up → all N in kernel (s) | ÷ floor | OPEN → kernel (s) \
             | sender done (s) | CPU (s) | peak RSS (MiB) | withdraw → none in kernel (s) \
             | ÷ floor | withdraw CPU (s) |"
        );
        let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in rows {
            let Some(run) = r.run else { continue };
            if let Some(e) = &r.error {
                let _ = writeln!(
                    s,
                    "| {} | /{} | {} | failed: {} |||||||||",
                    count_label(r.n),
                    r.len,
                    run.label(),
                    e.lines().next().unwrap_or("")
                );
                continue;
            }
            let floor = find(rows, Run::Floor, r.n);
            let fmt_ratio = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "| {} | /{} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {:.2} |",
                count_label(r.n),
                r.len,
                run.label(),
                secs(r.install),
                fmt_ratio(ratio(r.install, floor.and_then(|f| f.install))),
                secs(r.open_to_kernel),
                secs(r.sent),
                r.install_cpu,
                r.peak_rss_kib as f64 / 1024.0,
                secs(r.withdraw),
                fmt_ratio(ratio(r.withdraw, floor.and_then(|f| f.withdraw))),
                r.withdraw_cpu,
            );
        }
        // Targets (issue 8), as ratios in this run.
        let mut targets = String::new();
        let mut target = |n: usize, what: &str, value: Option<f64>, ok: fn(f64) -> bool| {
            let v = value.map_or("not measured".to_string(), |v| {
                format!("{v:.2} — {}", if ok(v) { "**met**" } else { "**missed**" })
            });
            let _ = writeln!(targets, "| {} | {what} | {v} |", count_label(n));
        };
        let install = |run: Run, n: usize| find(rows, run, n).and_then(|r| r.install);
        for &n in &args.routes {
            if n == 100_000 {
                target(
                    n,
                    "wrend ÷ kernel floor ≤ 1.2",
                    ratio(install(Run::Wrend, n), install(Run::Floor, n)),
                    |v| v <= 1.2,
                );
                target(
                    n,
                    "wrend ÷ BIRD 2 ≤ 0.75",
                    ratio(install(Run::Wrend, n), install(Run::Bird2, n)),
                    |v| v <= 0.75,
                );
                target(
                    n,
                    "BIRD 1.6.8 ÷ wrend ≥ 5",
                    ratio(install(Run::Bird16, n), install(Run::Wrend, n)),
                    |v| v >= 5.0,
                );
            }
            if n == 1_000_000 {
                target(
                    n,
                    "wrend ÷ BIRD 2 ≤ 0.6",
                    ratio(install(Run::Wrend, n), install(Run::Bird2, n)),
                    |v| v <= 0.6,
                );
                let rss = |run: Run| find(rows, run, n).map(|r| r.peak_rss_kib as f64);
                target(
                    n,
                    "wrend peak RSS ÷ BIRD 2's ≤ 1",
                    ratio(rss(Run::Wrend), rss(Run::Bird2)),
                    |v| v <= 1.0,
                );
            }
        }
        if !targets.is_empty() {
            let _ = writeln!(
                s,
                "\nTargets (TCP up → all in kernel, ratios in this run):\n\n| N | target | result |\n|---|---|---|\n{targets}"
            );
        }
        let _ = writeln!(s, "\nDetails:\n");
        let _ = writeln!(
            s,
            "| N | receiver | RSS before (MiB) | withdraw written (s) | kernel polls (mean ms) \
             | machine busy over the run (cores) | waited for a quiet machine (s) | a route in the kernel \
             | every run: install / withdraw (s) |"
        );
        let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|---|---|");
        for r in rows.iter().filter(|r| r.error.is_none()) {
            let Some(run) = r.run else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.2} | {:.0}{} | {} | {} |",
                count_label(r.n),
                run.name(),
                if run.is_daemon() {
                    format!("{:.1}", r.rss_before_kib as f64 / 1024.0)
                } else {
                    "–".into()
                },
                secs(r.withdraw_sent),
                if run.is_daemon() {
                    format!("{} ({:.2})", r.polls, r.poll_ms_mean)
                } else {
                    "–".into()
                },
                r.machine_busy_cores,
                r.quiet.waited,
                if r.quiet.quiet { "" } else { " (still busy)" },
                if r.sample.is_empty() {
                    "–".to_string()
                } else {
                    format!("`{}`", r.sample.lines().next().unwrap_or(""))
                },
                r.all_reps
                    .iter()
                    .map(|(i, w)| format!("{} / {}", secs(*i), secs(*w)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        for r in rows.iter().filter(|r| r.error.is_some()) {
            let _ = writeln!(
                s,
                "\n{} N={} failed (files in {}):\n\n```\n{}\n```",
                r.run.map_or("?", Run::name),
                r.n,
                r.dir.display(),
                r.error.as_deref().unwrap_or("")
            );
        }
        s
    }
}

//! Many BFD sessions in one daemon, wrend against FRR's bfdd: CPU, memory and false Downs.
//! `sudo bash tests/cargo.sh bench --bench bfd_scale` (issue 17).
//!
//! Two namespaces joined by a veth: the daemon under test (DUT) in one, 198.19.255.254/15,
//! with a permanent neighbour entry per peer instead of ARP; in the other the simulated
//! peers, 198.18.0.1, 198.18.0.2, … (one address each on the same /15), run by this bench on
//! a thread of its own (`tests/harness/bfdsim.rs`: wren's RFC 5880 state machine per session,
//! one socket per session on source port 49152 + k with TTL 255, jittered transmission,
//! a Final for every Poll), which watches the DUT's state in every packet it receives.
//!
//! The DUT runs one single-hop session per peer at `--interval` ms × `--multiplier` both
//! ways:
//!
//! * wrend: one passive iBGP peer per simulated address with `bfd` on and its source
//!   address set (as Calico's configuration sets it). Nobody connects to port 179, so BGP
//!   stays Active and costs nothing, while every peer's BFD session runs from the start
//!   (RFC 5882 §4.3: BGP waits for BFD, not the other way round). `[kernel]` is off: no
//!   routes come. Its metrics endpoint gives its own count of flaps.
//! * FRR: `bfdd` alone (no zebra, no bgpd), one `peer ADDR local-address DUT` per simulated
//!   address with the same timers.
//!
//! For each DUT: the time until every session is Up on both sides, then after `--settle`
//! seconds (the Poll Sequences to the fast rate are over) a window of `--window` seconds in
//! which the DUT's CPU time (utime + stime, all threads) and the simulator thread's are
//! taken, then the DUT's RSS (steady: VmRSS at the end; peak: VmHWM), then a soak of
//! `--soak` seconds (0: none). Counted over the whole run from the wire: the DUT's Ups, and
//! its Downs after Up (false unless the simulator's side went Down first, which shows the
//! simulator lagging, as does its latest transmission); for wrend also its own count of
//! sessions Up (`show bfd sessions`), of flaps (`wren_bfd_session_flaps_total`) and of
//! "-> Down" lines in its log.
//!
//! Options (after `--`): `--sessions 1000`, `--interval 100`, `--multiplier 3`, `--window
//! 120`, `--soak 0`, `--settle 10`, `--runs wrend,frr`, `--nice 0` (the DUT's), `--sim-nice
//! -10` (the simulator thread's, so that it is not the one to lag on a busy machine),
//! `--wrend PATH` (another build to compare), `--out FILE`. Needs root; under `cargo test`
//! it does nothing. Work files and logs in `target/tmp/bfd_scale/DUT/`, the report in
//! `target/tmp/bfd_scale/results.md`.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

use harness::bench::{Client, check_stop, checkout, machine, sleep, wait_quiet, write_report};
use harness::bfdsim::{Sim, Totals};
use harness::netns::{RecvPeers, in_netns, ip_batch};
use harness::peers::{frr_args, frr_bfdd};
use harness::proc::{Proc, cpu_secs, status_kib, tail_file};
use wren::bfd::Timers;

#[derive(Parser, Debug)]
#[command(about = "Many BFD sessions in one daemon: wrend against FRR's bfdd")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Transmit and receive interval, milliseconds.
    #[arg(long, default_value_t = 100)]
    interval: u32,
    #[arg(long, default_value_t = 3)]
    multiplier: u8,
    /// Seconds of steady state over which CPU is measured.
    #[arg(long, default_value_t = 120)]
    window: u64,
    /// Seconds of soak after the window (false Downs counted throughout).
    #[arg(long, default_value_t = 0)]
    soak: u64,
    /// Seconds between all sessions Up and the window.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    #[arg(long, value_delimiter = ',', default_value = "wrend,frr")]
    runs: Vec<String>,
    /// Nice value of the DUT.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    nice: i32,
    /// Nice value of the simulator thread.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    sim_nice: i32,
    /// wrend to measure (default: the one `cargo bench` builds with this bench).
    #[arg(long, default_value = env!("CARGO_BIN_EXE_wrend"))]
    wrend: PathBuf,
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    harness::bench::main("bfd_scale", true, &[], run)
}

const DUT: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);
const SIM_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DUT_MAC: &str = "02:00:5e:00:01:01";
const SIM_MAC: &str = "02:00:5e:00:01:02";
const METRICS: &str = "127.0.0.1:9324";
/// How long every session may take to come Up.
const UP_WITHIN: Duration = Duration::from_secs(120);

fn run(a: &Args) -> anyhow::Result<bool> {
    harness::bench::catch_signals();
    let quiet = wait_quiet(Duration::from_secs(30), 0.5, Duration::from_secs(2))?;
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp/bfd_scale");
    let mut report = format!(
        "## BFD at scale: {} sessions at {} ms x {}\n\n{} ; wren {} ({}) ; before the run: \
         {:.2} cores busy, load average {}\n\n\
         | DUT | all Up after s | window s | CPU % of a core | peak RSS MiB | steady RSS MiB \
         | simulator CPU % | sim latest tx ms |\n|---|---|---|---|---|---|---|---|\n",
        a.sessions,
        a.interval,
        a.multiplier,
        machine(),
        checkout(),
        a.wrend.display(),
        quiet.busy_cores,
        loadavg()
    );
    let mut counts = String::from(
        "\n| DUT | run s | DUT Ups | false Downs | Downs after ours | our Downs (expired) \
         | rx / tx | DUT's own count |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut clean = true;
    for who in &a.runs {
        let dir = top.join(who);
        std::fs::create_dir_all(&dir)?;
        let m =
            measure(who, a, &dir).with_context(|| format!("{who}: logs in {}", dir.display()))?;
        let t = &m.totals;
        let _ = writeln!(
            report,
            "| {who} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            m.up_after,
            a.window,
            m.cpu_pct,
            m.peak_kib as f64 / 1024.0,
            m.steady_kib as f64 / 1024.0,
            m.sim_cpu_pct,
            t.max_tx_late.as_millis()
        );
        // The DUT's diagnostics in its Downs, when there were any: "(diag 1 x3)".
        let diags: String = (t.down_diags.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| format!(" (diag {d} x{n})"))
            .collect();
        let _ = writeln!(
            counts,
            "| {who} | {:.0} | {} | {}{diags} | {} | {} ({}) | {} / {} | {} |",
            m.ran,
            t.dut_ups,
            t.false_downs,
            t.followed_downs,
            t.sim_downs,
            t.sim_expired,
            t.rx,
            t.tx,
            m.own
        );
        clean &= t.false_downs == 0 && t.followed_downs == 0 && t.sim_downs == 0;
    }
    report.push_str(&counts);
    let _ = writeln!(report, "\nload average after the run: {}", loadavg());
    write_report("bfd_scale", &report, a.out.as_deref(), &top)?;
    Ok(clean)
}

/// One DUT's figures.
struct Measured {
    up_after: f64,
    cpu_pct: f64,
    sim_cpu_pct: f64,
    peak_kib: u64,
    steady_kib: u64,
    /// Seconds from the start to the last count.
    ran: f64,
    totals: Totals,
    /// What the DUT itself says of its sessions.
    own: String,
}

fn measure(who: &str, a: &Args, dir: &Path) -> anyhow::Result<Measured> {
    let n = a.sessions;
    let net = RecvPeers::create("wbs-", &["address", DUT_MAC], &["address", SIM_MAC])?;
    let sim_addrs = (0..n).map(|k| Ipv4Addr::from_bits(SIM_BASE.to_bits() + k as u32));
    let mut dut_side = format!("link set vr up\naddr add {DUT}/15 dev vr\n");
    let mut sim_side =
        format!("link set vp up\nneigh replace {DUT} lladdr {DUT_MAC} dev vp nud permanent\n");
    for s in sim_addrs.clone() {
        let _ = writeln!(
            dut_side,
            "neigh replace {s} lladdr {SIM_MAC} dev vr nud permanent"
        );
        let _ = writeln!(sim_side, "addr add {s}/15 dev vp");
    }
    ip_batch(&net.recv, &dut_side, &dir.join("ip-dut.batch"))?;
    ip_batch(&net.peers, &sim_side, &dir.join("ip-sim.batch"))?;
    let ms = a.interval * 1000;
    let timers = Timers {
        min_tx: ms,
        min_rx: ms,
        multiplier: a.multiplier,
    };
    let mut sim = Sim::start(&net.peers, SIM_BASE, n, DUT, timers, a.sim_nice)?;
    let start = Instant::now();
    let (mut dut, ctl) = start_dut(who, a, &net.recv, sim_addrs, dir)?;
    let log = dir.join(format!("{who}.log"));
    // Every session Up on both sides.
    loop {
        check_stop()?;
        dut.check_alive(&log)?;
        if sim.totals().both_up == n {
            break;
        }
        if start.elapsed() > UP_WITHIN {
            bail!(
                "{} of {n} sessions Up after {UP_WITHIN:?}",
                sim.totals().both_up
            );
        }
        sleep(Duration::from_millis(100))?;
    }
    let up_after = start.elapsed().as_secs_f64();
    sleep(Duration::from_secs(a.settle))?;
    let (cpu0, sim0, t0) = (cpu_secs(dut.pid())?, sim.totals().cpu, Instant::now());
    sleep(Duration::from_secs(a.window))?;
    dut.check_alive(&log)?;
    let (cpu1, sim1, secs) = (cpu_secs(dut.pid())?, sim.totals().cpu, t0.elapsed());
    let steady_kib = status_kib(dut.pid(), "VmRSS:")?;
    let peak_kib = status_kib(dut.pid(), "VmHWM:")?;
    let soak_until = Instant::now() + Duration::from_secs(a.soak);
    while Instant::now() < soak_until {
        dut.check_alive(&log)?;
        sleep(Duration::from_secs(1))?;
    }
    // A last publication of the counts.
    sleep(Duration::from_millis(200))?;
    let totals = sim.totals();
    let own = match &ctl {
        Some(ctl) => wrend_counts(ctl, &net.recv, &log)?,
        None => "–".to_string(),
    };
    let ran = start.elapsed().as_secs_f64();
    dut.stop(Duration::from_secs(5));
    sim.stop();
    Ok(Measured {
        up_after,
        cpu_pct: 100.0 * (cpu1 - cpu0) / secs.as_secs_f64(),
        sim_cpu_pct: 100.0 * (sim1 - sim0).as_secs_f64() / secs.as_secs_f64(),
        peak_kib,
        steady_kib,
        ran,
        totals,
        own,
    })
}

/// Starts the DUT in namespace `ns` with a session to each of `peers`; wrend's control
/// socket too.
fn start_dut(
    who: &str,
    a: &Args,
    ns: &str,
    peers: impl Iterator<Item = Ipv4Addr>,
    dir: &Path,
) -> anyhow::Result<(Proc, Option<PathBuf>)> {
    let log = dir.join(format!("{who}.log"));
    let (ms, mult) = (a.interval, a.multiplier);
    match who {
        "wrend" => {
            let mut conf = format!(
                "router_id = \"{DUT}\"\nasn = 64512\nmetrics = \"{METRICS}\"\n\n\
                 [kernel]\nenabled = false\n\n\
                 [bfd]\nmin_tx = {ms}\nmin_rx = {ms}\nmultiplier = {mult}\n\n\
                 [defaults]\nbfd = true\nsource_address = \"{DUT}\"\n"
            );
            for p in peers {
                let _ = write!(
                    conf,
                    "\n[[peer]]\naddress = \"{p}\"\nasn = 64512\npassive = true\n"
                );
            }
            let path = dir.join("wrend.toml");
            std::fs::write(&path, conf)?;
            let ctl = dir.join("wrend.ctl");
            let argv = [
                a.wrend.display().to_string(),
                "-c".into(),
                path.display().to_string(),
                "-s".into(),
                ctl.display().to_string(),
            ];
            Ok((Proc::spawn(ns, &argv, &log, false, a.nice)?, Some(ctl)))
        }
        "frr" => {
            let mut conf = String::from("bfd\n");
            for p in peers {
                let _ = write!(
                    conf,
                    " peer {p} local-address {DUT}\n  receive-interval {ms}\n  \
                     transmit-interval {ms}\n  detect-multiplier {mult}\n !\n"
                );
            }
            conf.push_str("!\n");
            let path = dir.join("bfdd.conf");
            std::fs::write(&path, conf)?;
            let mut argv = vec![frr_bfdd().display().to_string()];
            argv.extend(frr_args("bfdd", &path, dir));
            argv.extend(["--bfdctl".into(), format!("{}/bfdd.sock", dir.display())]);
            Ok((Proc::spawn(ns, &argv, &log, false, a.nice)?, None))
        }
        other => bail!("unknown DUT {other:?}: wrend or frr"),
    }
}

/// wrend's own account: sessions Up in `show bfd sessions`, flaps in its metrics, and
/// "-> Down" lines in its log.
fn wrend_counts(ctl: &Path, ns: &str, log: &Path) -> anyhow::Result<String> {
    let mut cli = Client::connect(ctl)?;
    let up = (cli.command("show bfd sessions")?.iter())
        .filter(|l| l.text.split_whitespace().nth(2) == Some("Up"))
        .count();
    let metrics = scrape(ns)?;
    let flaps: f64 = (metrics.lines())
        .filter(|l| l.starts_with("wren_bfd_session_flaps_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let text = std::fs::read_to_string(log)?;
    let downs = text.lines().filter(|l| l.contains("-> Down")).count();
    if downs > 0 {
        eprintln!("wrend's log, last lines:\n{}", tail_file(log, 10));
    }
    Ok(format!("{up} Up, {flaps} flaps, {downs} Down lines"))
}

/// GET /metrics from wrend's endpoint in namespace `ns`.
fn scrape(ns: &str) -> anyhow::Result<String> {
    let at: SocketAddr = METRICS.parse()?;
    let mut s = in_netns(ns, || {
        TcpStream::connect_timeout(&at, Duration::from_secs(5))
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: wren\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

//! BFD detection time, failure to kernel route removal, for wrend, BIRD 2 and FRR side by
//! side: `sudo bash tests/cargo.sh bench --bench bfd`.
//!
//! For each interval (default 100 and 300 ms, multiplier 3) and each detector, the lab of
//! the interop tests (two namespaces joined by a veth): the detector in the first
//! (198.51.100.1) with BFD on its iBGP session to BIRD 2 in the second (198.51.100.2), which
//! announces 203.0.113.64/26; the detector installs it in its kernel (wrend `proto bird`,
//! BIRD 2's kernel protocol, FRR's zebra `proto bgp`). Each trial waits for the route and
//! for both BFD sessions Up, lets BFD settle (2 s and ten intervals), freezes the BIRD 2
//! peer (SIGSTOP) and times from just before the signal to the route's deletion as the
//! detector's kernel logs it (`ip -ts monitor route`), then thaws the peer. FRR's detector
//! is zebra, bgpd and bfdd (its BFD peer configured in bfdd with the same timers).
//!
//! The time from the failure holds the peer's phase: the freeze falls anywhere in the
//! (jittered) interval after its last packet. So the bench also captures the peer's BFD
//! packets in the detector's namespace (an AF_PACKET socket, the kernel's receive time) and
//! reports the time from the last one the detector received to the deletion: the detection
//! time (3 x the interval, RFC 5880 §6.8.4) plus the detector's own delay, which is that
//! minus the detection time. For wrend it also breaks the delay into stages from its log
//! (debug level): the detection timer firing (BFD thread), the peer task closing the BGP
//! session, the RIB handing the withdrawal to the FIB thread, and the FIB thread's netlink
//! request done. And from the same capture, each detector's own transmit intervals while
//! Up (RFC 5880 §6.8.7 wants 75–100 % of the interval): the peer's detection of it rests
//! on them.
//!
//! Options (after `--`): `--trials 20`, `--intervals 100,300`, `--runs wrend,bird2,frr`,
//! `--out FILE`. Needs root; under `cargo test` it does nothing. Work files in
//! /tmp/wren-interop/bfdb-*; the report in target/tmp/bfd/results.md.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::Parser;

use harness::bench::{checkout, machine, wait_quiet, write_report};
use harness::lab::{Fam, Lab, PEER_NET4, WREN_ASN};
use harness::netns::{in_netns, monitor_deletions, seconds_of_day};
use harness::peers::{Kind, Peer, PeerBfd, PeerOpts, frr_args, frr_bfdd, frr_bgpd, frr_zebra};
use harness::proc::{ProcId, cli, system_bin, wait_until};
use harness::wrend::{WrenConf, wrenc_bin};

#[derive(Parser, Debug)]
#[command(about = "BFD detection time to kernel route removal: wrend, BIRD 2, FRR")]
struct Args {
    /// Trials per detector and interval.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Intervals (min tx = min rx), milliseconds, multiplier 3.
    #[arg(long, value_delimiter = ',', default_value = "100,300")]
    intervals: Vec<u32>,
    #[arg(long, value_delimiter = ',', default_value = "wrend,bird2,frr")]
    runs: Vec<String>,
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    harness::bench::main("bfd", true, &[], run)
}

const MULTIPLIER: u8 = 3;
/// RFC 5881 §4: single-hop Control packets go to UDP 3784.
const BFD_PORT: u16 = 3784;

/// wrend's log lines that mark the stages of its path from the detection timer to the
/// kernel, in order, with what each one ends.
const STAGES: [(&str, &str); 4] = [
    (
        "BFD session Up -> Down",
        "detection timer fired (BFD thread)",
    ),
    ("session down:", "BGP session closed (peer task)"),
    (
        "kernel changes to the FIB thread",
        "RIB withdrew, FIB thread told",
    ),
    ("kernel table changed", "netlink delete acknowledged"),
];

/// One trial's times, in seconds since midnight UTC.
struct Trial {
    failed: f64,
    last_rx: Option<f64>,
    deleted: f64,
    /// wrend's stages ([`STAGES`]) as its log timed them.
    stages: Vec<Option<f64>>,
    /// The gaps between the detector's own packets in the second half of the settling.
    tx: Vec<f64>,
}

fn run(a: &Args) -> anyhow::Result<bool> {
    harness::bench::catch_signals();
    let quiet = wait_quiet(Duration::from_secs(30), 0.5, Duration::from_secs(2))?;
    let mut report = format!(
        "## BFD detection time (failure to kernel route removal)\n\n\
         {} ; wren {} ; machine load before the run: {:.2} cores busy (other engineers \
         compile here)\n\n\
         From the failure (SIGSTOP to the peer) to the route's deletion in the detector's \
         kernel, and from the last BFD packet the detector received to the deletion; the \
         detector's own delay is the latter minus the detection time. Milliseconds, \
         p50 / p99 / mean.\n\n\
         | detector | interval x mult | trials | failure → deleted | last packet → deleted \
         | own delay |\n|---|---|---|---|---|---|\n",
        machine(),
        checkout(),
        quiet.busy_cores
    );
    let mut stages = String::new();
    let mut tx = String::from(
        "\n### Transmit intervals (RFC 5880 §6.8.7: 75–100 % of the interval)\n\n\
         The gaps between the detector's own packets while Up at the fast rate, as its \
         kernel sent them, in % of the interval.\n\n\
         | detector | interval | gaps | min | p50 | max |\n|---|---|---|---|---|---|\n",
    );
    for &ms in &a.intervals {
        for who in &a.runs {
            let t = trials(who, ms, a.trials)?;
            let detect = f64::from(ms * u32::from(MULTIPLIER));
            let total: Vec<f64> = t.iter().map(|t| t.deleted - t.failed).collect();
            let since: Vec<f64> = t
                .iter()
                .filter_map(|t| Some(t.deleted - t.last_rx?))
                .collect();
            let own: Vec<f64> = since.iter().map(|s| s * 1000.0 - detect).collect();
            let _ = writeln!(
                report,
                "| {who} | {ms} ms x {MULTIPLIER} | {} | {} | {} | {} |",
                t.len(),
                summary(&total, 1000.0, 0),
                summary(&since, 1000.0, 1),
                summary(&own, 1.0, 1),
            );
            if who == "wrend" {
                stage_table(&mut stages, ms, &t);
            }
            let mut gaps: Vec<f64> = (t.iter())
                .flat_map(|t| t.tx.iter().map(|g| g * 100_000.0 / f64::from(ms)))
                .collect();
            gaps.sort_by(f64::total_cmp);
            if let (Some(min), Some(max)) = (gaps.first(), gaps.last()) {
                let _ = writeln!(
                    tx,
                    "| {who} | {ms} ms | {} | {min:.1} | {:.1} | {max:.1} |",
                    gaps.len(),
                    gaps[gaps.len() / 2]
                );
            }
        }
    }
    report.push_str(&stages);
    report.push_str(&tx);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp/bfd");
    std::fs::create_dir_all(&dir)?;
    write_report("bfd", &report, a.out.as_deref(), &dir)?;
    Ok(true)
}

/// "p50 / p99 / mean" of `v` times `scale`, with `decimals`, or "–" for none.
fn summary(v: &[f64], scale: f64, decimals: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let mut d: Vec<f64> = v.iter().map(|x| x * scale).collect();
    d.sort_by(f64::total_cmp);
    let pct = |p: f64| d[((d.len() as f64 - 1.0) * p).round() as usize];
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let (p50, p99) = (pct(0.5), pct(0.99));
    format!("{p50:.decimals$} / {p99:.decimals$} / {mean:.decimals$}")
}

/// wrend's delay stage by stage: from the last packet received to each log line, less the
/// detection time for the first, then from one stage to the next, and to the kernel's
/// notification.
fn stage_table(out: &mut String, ms: u32, trials: &[Trial]) {
    let detect = f64::from(ms * u32::from(MULTIPLIER)) / 1000.0;
    let _ = write!(
        out,
        "\n### wrend at {ms} ms x {MULTIPLIER}: where its own delay goes\n\n\
         Each stage from the end of the one before, milliseconds (p50 / p99 / mean over the \
         trials with every stage logged); the first from the last packet received plus the \
         detection time.\n\n| stage | ms |\n|---|---|\n"
    );
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len() + 1];
    for t in trials {
        let Some(last) = t.last_rx else { continue };
        let Some(marks) = t.stages.iter().copied().collect::<Option<Vec<f64>>>() else {
            continue;
        };
        let mut at = last + detect;
        for (row, mark) in rows.iter_mut().zip(marks.iter().chain([&t.deleted])) {
            row.push(mark - at);
            at = *mark;
        }
    }
    let names = STAGES
        .iter()
        .map(|(_, what)| *what)
        .chain(["kernel notification seen by `ip monitor`"]);
    for (what, row) in names.zip(&rows) {
        let _ = writeln!(out, "| {what} | {} |", summary(row, 1000.0, 2));
    }
}

/// `n` trials of detector `who` at `ms` x 3.
fn trials(who: &str, ms: u32, n: usize) -> anyhow::Result<Vec<Trial>> {
    let mut bins = Kind::Bird2.binaries();
    bins.extend([frr_zebra(), frr_bgpd(), frr_bfdd()]);
    let lab = Lab::new(&format!("bfdb-{who}-{ms}"), &bins);
    let mut p = PeerOpts::new(Fam::V4);
    p.passive = true;
    p.hold_time = 30;
    p.bfd = Some(PeerBfd {
        interval_ms: ms,
        multiplier: MULTIPLIER,
        multihop: false,
        auth: None,
    });
    let peer = Peer::start(&lab, Kind::Bird2, p);
    let detector = detector(&lab, who, ms)?;
    let capture = Capture::start(&lab.ns_wren)?;
    let (me, them): (Ipv4Addr, Ipv4Addr) = (Fam::V4.wren().parse()?, Fam::V4.peer().parse()?);
    let monitor = lab.spawn(
        "monitor",
        &lab.ns_wren,
        &system_bin("env"),
        &["TZ=UTC", "ip", "-ts", "monitor", "route"],
    );
    let net = [PEER_NET4.to_string()];
    let mut out = Vec::new();
    for i in 0..n {
        harness::bench::check_stop()?;
        let r = wait_until(
            "the peer's route in the kernel",
            Duration::from_secs(60),
            || {
                let routes = cli(
                    Some(&lab.ns_wren),
                    &system_bin("ip"),
                    &["route", "show", PEER_NET4],
                )?;
                match routes.trim().is_empty() {
                    true => Err("not yet".to_string()),
                    false => Ok(()),
                }
            },
        );
        r.map_err(anyhow::Error::msg)
            .with_context(|| format!("{who} trial {i}"))?;
        // BFD Up on both sides: the peer's says the detector is at least Init, and the
        // detector's own is asked where it can be (FRR's bgpd may bring BGP up before it).
        let r = wait_until("BFD Up", Duration::from_secs(60), || {
            peer.bfd_up()?;
            detector.bfd_up()
        });
        r.map_err(anyhow::Error::msg)
            .with_context(|| format!("{who} trial {i}"))?;
        // Then at the fast rate: past the Poll Sequence after Up.
        let settle = Duration::from_millis(2000 + 10 * u64::from(ms));
        harness::bench::sleep(settle)?;
        let seen = deletions(&lab, monitor, &net).len();
        let failed = SystemTime::now();
        peer.stop(&lab);
        let r = wait_until("the route's deletion", Duration::from_secs(10), || {
            deletions(&lab, monitor, &net)
                .get(seen)
                .copied()
                .ok_or_else(|| "not yet".to_string())
        });
        peer.cont(&lab);
        let deleted = r
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{who} trial {i}"))?;
        let failed = seconds_of_day(failed);
        let t = Trial {
            failed,
            last_rx: capture.last_before(them, deleted),
            deleted,
            stages: detector.stages(&lab, failed),
            tx: capture.intervals(me, failed - settle.as_secs_f64() / 2.0, failed),
        };
        lab.log(&format!(
            "{who} {ms} ms: trial {i}: {:.0} ms from the failure, {} from the last packet",
            (deleted - failed) * 1000.0,
            t.last_rx
                .map_or("?".into(), |l| format!("{:.1} ms", (deleted - l) * 1000.0))
        ));
        out.push(t);
    }
    Ok(out)
}

fn deletions(lab: &Lab, monitor: ProcId, net: &[String]) -> Vec<f64> {
    let text = std::fs::read_to_string(lab.log_path(monitor)).unwrap_or_default();
    monitor_deletions(&text, net)
}

/// The detector's processes, and where to ask it about its BFD session.
struct Detector {
    procs: Vec<ProcId>,
    kind: DetectorKind,
}

enum DetectorKind {
    /// wrend and its control socket.
    Wrend(PathBuf),
    /// BIRD 2 and its control socket.
    Bird2(PathBuf),
    /// FRR's bfdd, and the folder of its vty sockets.
    Frr(PathBuf),
}

impl Detector {
    /// Whether the detector's own BFD session to the peer is Up.
    fn bfd_up(&self) -> Result<(), String> {
        let text = match &self.kind {
            DetectorKind::Wrend(ctl) => cli(
                None,
                &wrenc_bin(),
                &["-s", &ctl.display().to_string(), "show", "bfd", "sessions"],
            )?,
            DetectorKind::Bird2(ctl) => cli(
                None,
                &system_bin("birdc"),
                &["-s", &ctl.display().to_string(), "show", "bfd", "sessions"],
            )?,
            DetectorKind::Frr(dir) => cli(
                None,
                &system_bin("vtysh"),
                &[
                    "--vty_socket",
                    &dir.display().to_string(),
                    "-c",
                    "show bfd peers brief",
                ],
            )?,
        };
        let peer = Fam::V4.peer();
        match text
            .lines()
            .any(|l| l.contains(peer) && l.split_whitespace().any(|w| w.eq_ignore_ascii_case("up")))
        {
            true => Ok(()),
            false => Err(format!("the detector's BFD session: {}", text.trim())),
        }
    }

    /// When wrend logged each of [`STAGES`] first after `failed`; nothing for the others.
    fn stages(&self, lab: &Lab, failed: f64) -> Vec<Option<f64>> {
        if !matches!(self.kind, DetectorKind::Wrend(_)) {
            return Vec::new();
        }
        let log = std::fs::read_to_string(lab.log_path(self.procs[0])).unwrap_or_default();
        let lines: Vec<(f64, &str)> = log
            .lines()
            .filter_map(|l| Some((log_time(l)?, l)))
            .filter(|(t, _)| *t >= failed)
            .collect();
        STAGES
            .iter()
            .map(|(needle, _)| {
                (lines.iter())
                    .find(|(_, l)| l.contains(needle))
                    .map(|(t, _)| *t)
            })
            .collect()
    }
}

/// A wrend log line's time ("2026-12-07T01:29:11.726708Z  INFO …") in seconds since
/// midnight UTC.
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (_, time) = stamp.split_once('T')?;
    let mut hms = time.split(':').map(|x| x.parse::<f64>().ok());
    Some(hms.next()?? * 3600.0 + hms.next()?? * 60.0 + hms.next()??)
}

/// Starts the detector in the lab's first namespace, with BFD at `ms` x 3 to the peer.
fn detector(lab: &Lab, who: &str, ms: u32) -> anyhow::Result<Detector> {
    let (me, peer) = (Fam::V4.wren(), Fam::V4.peer());
    Ok(match who {
        "wrend" => {
            let mut w = WrenConf::new(Fam::V4, WREN_ASN);
            w.hold_time = 30;
            // Single-hop BFD, as the peer's `direct` session has.
            w.direct = true;
            w.bfd = Some(format!(
                "{{ min_tx = {ms}, min_rx = {ms}, multiplier = {MULTIPLIER} }}"
            ));
            let w = lab.start_wren(w);
            // The stage lines are at debug level.
            let ctl = w.ctl.display().to_string();
            cli(None, &wrenc_bin(), &["-s", &ctl, "log", "level", "debug"])
                .map_err(anyhow::Error::msg)?;
            Detector {
                procs: vec![w.proc],
                kind: DetectorKind::Wrend(w.ctl),
            }
        }
        "bird2" => {
            let conf = lab.write(
                "detector-bird.conf",
                &format!(
                    "router id {me};\nprotocol device {{ scan time 10; }}\n\
                     protocol kernel {{ ipv4 {{ export all; }}; }}\n\
                     protocol bfd {{ interface \"*\" {{ interval {ms} ms; multiplier {MULTIPLIER}; }}; }}\n\
                     protocol bgp peer {{ local {me} as {WREN_ASN}; neighbor {peer} as {WREN_ASN}; \
                     direct; hold time 30; connect retry time 1; error wait time 1, 2; bfd on; \
                     ipv4 {{ import all; export none; }}; }}\n"
                ),
            );
            let ctl = lab.dir.join("detector-bird.ctl");
            let conf = conf.display().to_string();
            let proc = lab.spawn(
                "detector-bird",
                &lab.ns_wren,
                &system_bin("bird"),
                &["-f", "-c", &conf, "-s", &ctl.display().to_string()],
            );
            Detector {
                procs: vec![proc],
                kind: DetectorKind::Bird2(ctl),
            }
        }
        "frr" => {
            let d = lab.dir.join("frr-detector");
            let zebra_conf = lab.write("frr-detector/zebra.conf", "hostname detector\n");
            let bfdd_conf = lab.write(
                "frr-detector/bfdd.conf",
                &format!(
                    "bfd\n peer {peer} local-address {me}\n  receive-interval {ms}\n  \
                     transmit-interval {ms}\n  detect-multiplier {MULTIPLIER}\n !\n!\n"
                ),
            );
            let bgpd_conf = lab.write(
                "frr-detector/bgpd.conf",
                &format!(
                    "frr defaults traditional\nhostname detector\n!\nrouter bgp {WREN_ASN}\n \
                     bgp router-id {me}\n no bgp default ipv4-unicast\n \
                     neighbor {peer} remote-as {WREN_ASN}\n neighbor {peer} timers 10 30\n \
                     neighbor {peer} timers connect 1\n neighbor {peer} update-source {me}\n \
                     neighbor {peer} bfd\n !\n address-family ipv4 unicast\n  \
                     neighbor {peer} activate\n exit-address-family\n!\n"
                ),
            );
            let zebra = lab.spawn(
                "detector-zebra",
                &lab.ns_wren,
                &frr_zebra(),
                &frr_args("zebra", &zebra_conf, &d),
            );
            let api = d.join("zserv.api");
            let r = wait_until(
                "zebra's zserv socket",
                Duration::from_secs(30),
                || match api.exists() {
                    true => Ok(()),
                    false => Err("missing".to_string()),
                },
            );
            r.map_err(anyhow::Error::msg)?;
            let mut bfdd_args = frr_args("bfdd", &bfdd_conf, &d);
            bfdd_args.extend(["--bfdctl".into(), format!("{}/bfdd.sock", d.display())]);
            let bfdd = lab.spawn("detector-bfdd", &lab.ns_wren, &frr_bfdd(), &bfdd_args);
            let bgpd = lab.spawn(
                "detector-bgpd",
                &lab.ns_wren,
                &frr_bgpd(),
                &frr_args("bgpd", &bgpd_conf, &d),
            );
            Detector {
                procs: vec![zebra, bfdd, bgpd],
                kind: DetectorKind::Frr(d),
            }
        }
        other => bail!("unknown detector {other:?}: wrend, bird2 or frr"),
    })
}

/// The BFD Control packets (UDP [`BFD_PORT`]) the detector receives and sends, as its
/// kernel timed them: an AF_PACKET socket in the detector's namespace, read on a thread of
/// its own, with the kernel's time for each packet (SO_TIMESTAMPNS).
struct Capture {
    /// Each packet's time, seconds since midnight UTC, and source address, in order.
    seen: Arc<Mutex<Vec<(f64, Ipv4Addr)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(ns: &str) -> anyhow::Result<Capture> {
        let fd = in_netns(ns, packet_socket).context("the capture socket")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("bfd-capture".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !st.load(Ordering::Relaxed) {
                    let Some((at, n)) = receive(&fd, &mut buf) else {
                        continue;
                    };
                    if let Some(src) = bfd_source(&buf[..n]) {
                        s.lock().unwrap_or_else(|p| p.into_inner()).push((at, src));
                    }
                }
            })?;
        Ok(Capture {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// When the last packet from `src` before `t` passed.
    fn last_before(&self, src: Ipv4Addr, t: f64) -> Option<f64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (seen.iter().rev())
            .find(|&&(at, from)| from == src && at < t)
            .map(|&(at, _)| at)
    }

    /// The gaps between the packets from `src` sent from `from` to `to`.
    fn intervals(&self, src: Ipv4Addr, from: f64, to: f64) -> Vec<f64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let times: Vec<f64> = (seen.iter())
            .filter(|&&(at, s)| s == src && at >= from && at <= to)
            .map(|&(at, _)| at)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET socket on every interface of the calling thread's namespace, with the
/// kernel's packet times and a read timeout (so that its reader sees the stop flag). For
/// every protocol: the kernel shows a tap the packets sent only at that level.
fn packet_socket() -> std::io::Result<OwnedFd> {
    let proto = i32::from((libc::ETH_P_ALL as u16).to_be());
    // SAFETY: socket(2) with constant arguments; the descriptor is owned from here on.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let on: libc::c_int = 1;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    for (opt, val, len) in [
        (
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast::<libc::c_void>(),
            size_of_val(&on),
        ),
        (
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of_val(&timeout),
        ),
    ] {
        // SAFETY: `val` points at a live value of `len` bytes for the call's duration.
        let r = unsafe { libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, opt, val, len as u32) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// The next packet received or sent on `fd`: the kernel's time for it in seconds since
/// midnight UTC, and its length in `buf` (the IP header on).
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> Option<(f64, usize)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: every pointer in `msg` is to a live buffer of the length given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return None;
    }
    // SAFETY: the control messages the kernel wrote into `control`, walked with the libc
    // macros; the timestamp is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let secs = (ts.tv_sec % 86_400) as f64 + ts.tv_nsec as f64 * 1e-9;
                return Some((secs, n as usize));
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    None
}

/// The source of an IPv4 packet that is UDP to [`BFD_PORT`].
fn bfd_source(p: &[u8]) -> Option<Ipv4Addr> {
    let first = p.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    let bfd = first >> 4 == 4
        && ihl >= 20
        && p.len() >= ihl + 8
        && p[9] == 17
        && p[ihl + 2..ihl + 4] == BFD_PORT.to_be_bytes();
    bfd.then(|| Ipv4Addr::new(p[12], p[13], p[14], p[15]))
}

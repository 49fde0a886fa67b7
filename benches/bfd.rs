//! BFD detection time, failure to kernel route removal, for wrend, BIRD 2 and FRR side by
//! side: `sudo bash tests/cargo.sh bench --bench bfd`.
//!
//! For each interval (default 100 and 300 ms, multiplier 3) and each detector, the lab of
//! the interop tests (two namespaces joined by a veth): the detector in the first
//! (198.51.100.1) with BFD on its iBGP session to BIRD 2 in the second (198.51.100.2), which
//! announces 203.0.113.64/26; the detector installs it in its kernel (wrend `proto bird`,
//! BIRD 2's kernel protocol, FRR's zebra `proto bgp`). Each trial waits for the route and
//! for the peer's BFD session Up, lets BFD settle (2 s and ten intervals), freezes the BIRD 2 peer (SIGSTOP) and times from just before the signal
//! to the route's deletion as the detector's kernel logs it (`ip -ts monitor route`), then
//! thaws the peer. FRR's detector is zebra, bgpd and bfdd (its BFD peer configured in
//! bfdd with the same timers).
//!
//! Options (after `--`): `--trials 20`, `--intervals 100,300`, `--runs wrend,bird2,frr`,
//! `--out FILE`. Needs root; under `cargo test` it does nothing. Work files in
//! /tmp/wren-interop/bfdb-*; the report in target/tmp/bfd/results.md.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::Parser;

use harness::bench::{checkout, machine, wait_quiet, write_report};
use harness::lab::{Fam, Lab, PEER_NET4, WREN_ASN};
use harness::netns::{monitor_deletions, seconds_of_day};
use harness::peers::{Kind, Peer, PeerBfd, PeerOpts, frr_args, frr_bfdd, frr_bgpd, frr_zebra};
use harness::proc::{ProcId, cli, system_bin, wait_until};
use harness::wrend::WrenConf;

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

fn run(a: &Args) -> anyhow::Result<bool> {
    harness::bench::catch_signals();
    let quiet = wait_quiet(Duration::from_secs(30), 0.5, Duration::from_secs(2))?;
    let mut report = format!(
        "## BFD detection time (failure to kernel route removal)\n\n\
         {} ; wren {} ; machine load before the run: {:.2} cores busy (other engineers \
         compile here)\n\n\
         | detector | interval x mult | detection time | trials | p50 ms | p99 ms | max ms |\n\
         |---|---|---|---|---|---|---|\n",
        machine(),
        checkout(),
        quiet.busy_cores
    );
    for &ms in &a.intervals {
        for who in &a.runs {
            let mut d = trials(who, ms, a.trials)?;
            d.sort_by(f64::total_cmp);
            let pct = |p: f64| d[((d.len() as f64 - 1.0) * p).round() as usize];
            let _ = writeln!(
                report,
                "| {who} | {ms} ms x {MULTIPLIER} | {} ms | {} | {:.0} | {:.0} | {:.0} |",
                ms * u32::from(MULTIPLIER),
                d.len(),
                pct(0.5),
                pct(0.99),
                d.last().copied().unwrap_or_default()
            );
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp/bfd");
    std::fs::create_dir_all(&dir)?;
    write_report("bfd", &report, a.out.as_deref(), &dir)?;
    Ok(true)
}

/// `n` detection times, in milliseconds, of detector `who` at `ms` x 3.
fn trials(who: &str, ms: u32, n: usize) -> anyhow::Result<Vec<f64>> {
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
    let _detector = detector(&lab, who, ms)?;
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
        // BFD Up on both sides (the peer Up means the detector is at least Init, Up with
        // the peer's next packet), then at the fast rate: past the Poll Sequence after Up.
        let r = wait_until("BFD Up", Duration::from_secs(60), || peer.bfd_up());
        r.map_err(anyhow::Error::msg)
            .with_context(|| format!("{who} trial {i}"))?;
        harness::bench::sleep(Duration::from_millis(2000 + 10 * u64::from(ms)))?;
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
        let at = r.map_err(anyhow::Error::msg)?;
        let took = (at - seconds_of_day(failed)) * 1000.0;
        lab.log(&format!("{who} {ms} ms: trial {i}: {took:.0} ms"));
        out.push(took);
    }
    Ok(out)
}

fn deletions(lab: &Lab, monitor: ProcId, net: &[String]) -> Vec<f64> {
    let text = std::fs::read_to_string(lab.log_path(monitor)).unwrap_or_default();
    monitor_deletions(&text, net)
}

/// Starts the detector in the lab's first namespace, with BFD at `ms` x 3 to the peer.
fn detector(lab: &Lab, who: &str, ms: u32) -> anyhow::Result<Vec<ProcId>> {
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
            vec![lab.start_wren(w).proc]
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
            let ctl = lab.dir.join("detector-bird.ctl").display().to_string();
            let conf = conf.display().to_string();
            vec![lab.spawn(
                "detector-bird",
                &lab.ns_wren,
                &system_bin("bird"),
                &["-f", "-c", &conf, "-s", &ctl],
            )]
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
            vec![zebra, bfdd, bgpd]
        }
        other => bail!("unknown detector {other:?}: wrend, bird2 or frr"),
    })
}

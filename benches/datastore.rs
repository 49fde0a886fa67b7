//! Calico's datastore at scale (issue 16): `sudo bash tests/cargo.sh bench --bench datastore`.
//!
//! **wren** (`--nodes 5000`, and 1000 beside the BIRD anchor): a real etcd (Debian's
//! etcd-server) holds N Calico Nodes (labels `rack-0`…`rack-9`), N IPAM blocks (a /26 each
//! in 10.0.0.0/8, with their affinities), 50 BGPPeers (40 selecting a rack with
//! `nodeSelector`, 10 global), the `default` BGPConfiguration (mesh on) and an IPPool, written
//! as calicoctl stores them (`tests/harness/resources.rs`). wrend runs in a namespace of its own
//! as the node in the middle of the address range, from a file holding only `[datastore]`:
//! - **start**: from spawning wrend to its control socket answering, and to `show protocols`
//!   listing every session the datastore asks of it (N − 1 mesh peers, 4 rack peers, 10
//!   global ones): the model read, decided and applied, sessions dialling (Calico's passive
//!   rule: the lower half of the mesh is dialled, its addresses behind an `unreachable`
//!   route so every dial fails at once; the upper half waits for the peers to dial). wrend's
//!   CPU time and RSS (VmRSS, VmHWM) then.
//! - then `--live` (10) of the upper nodes come alive: light BGP speakers (wren's own codec,
//!   `tests/harness/feeder.rs`) in a second namespace dial wrend, establish and announce their
//!   block; their sessions are the reset witnesses.
//! - **one node added**: a Node written to etcd (then its block and affinity, as calico-node
//!   and IPAM do), timed from the put until `show protocols NAME` lists its session (polled
//!   back to back), `--repeat` times with a new node each; afterwards every live session
//!   must still be Established with its `since` unchanged (0 resets).
//!
//! **The anchor: confd's path.** For BIRD 1.6.8 and BIRD 2: a Calico-shaped configuration
//! with `--bird-peers` (1000) mesh peers (device, direct and kernel protocols, a BGP template
//! as Calico's), then the file rewritten with one peer more and `birdc configure`, timed by
//! wall clock around birdc (and BIRD's CPU time), `--repeat` times (the peer removed again in
//! between, also timed); BIRD's RSS. What confd adds before that (watch, template render,
//! file write) is not counted: BIRD's share alone.
//!
//! Options (after `--`): `--nodes 5000,1000`, `--bgp-peers 50`, `--live 10`, `--bird-peers
//! 1000`, `--repeat 5`, `--speakers wrend,bird16,bird2`, `--nice`, `--wait-quiet`, `--wrend`,
//! `--bird2`, `--bird16`, `--out FILE`. Work files (etcd's data and log, configs, logs) go to
//! `target/tmp/datastore/`; the report to `target/tmp/datastore/results.md`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use ipnet::Ipv4Net;
use serde_json::json;

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{
    Client, Daemons, Timing, check_stop, checkout, machine, sleep, wait_quiet, write_report,
};
use harness::etcd::Etcd;
use harness::feeder::{Feeder, feed};
use harness::netns::{RecvPeers, in_netns, try_ip};
use harness::proc::{Proc, cpu_secs, status_kib};
use harness::resources::{CalicoNode, Writer, bgp_configuration, bgp_peer, ip_pool, node_entries};

const ASN: u32 = 64512;
/// wrend's (and BIRD's) node address.
const ME: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// Nodes below the middle: `LOW + i`, behind an `unreachable` route.
const LOW: u32 = Ipv4Addr::new(198, 18, 0, 10).to_bits();
/// Pods' blocks: node i has `POOL + 64 i` / 26.
const POOL: u32 = Ipv4Addr::new(10, 0, 0, 0).to_bits();
/// BGPPeers selecting a rack; the rest are global.
const RACK_PEERS: usize = 40;
const RACKS: usize = 10;
/// How long wrend may take to list every session.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long an added node may take to show.
const ADD_LIMIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    harness::bench::main("datastore", true, &[], run)
}

#[derive(Parser, Debug)]
#[command(about = "Calico's datastore at scale: wrend from etcd, and birdc configure")]
struct Args {
    /// Calico nodes in etcd, comma separated (one wrend run each).
    #[arg(long, value_delimiter = ',', default_value = "5000,1000")]
    nodes: Vec<usize>,
    /// BGPPeers in etcd.
    #[arg(long, default_value_t = 50)]
    bgp_peers: usize,
    /// Nodes that dial wrend and hold their sessions (the reset witnesses).
    #[arg(long, default_value_t = 10)]
    live: usize,
    /// Mesh peers in BIRD's configuration.
    #[arg(long, default_value_t = 1000)]
    bird_peers: usize,
    /// Changes timed per run.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// What to run: wrend, bird16, bird2.
    #[arg(long, value_delimiter = ',', default_value = "wrend,bird16,bird2")]
    speakers: Vec<String>,
    #[command(flatten)]
    timing: Timing,
    #[command(flatten)]
    daemons: Daemons,
    /// Report file (default target/tmp/datastore/results.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The cluster's nodes: node `i` of `n`, wrend being node `n / 2`.
struct Layout {
    n: usize,
    me: usize,
}

impl Layout {
    fn addr(&self, i: usize) -> Ipv4Addr {
        if i < self.me {
            Ipv4Addr::from_bits(LOW + i as u32)
        } else {
            Ipv4Addr::from_bits(ME.to_bits() + (i - self.me) as u32)
        }
    }

    fn name(i: usize) -> String {
        format!("node-{i:05}")
    }

    fn block(i: usize) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from_bits(POOL + 64 * i as u32), 26).expect("a /26")
    }

    fn node(&self, i: usize) -> CalicoNode {
        CalicoNode::new(
            &Layout::name(i),
            Ipv4Net::new(self.addr(i), 15).expect("a /15"),
        )
        .label("rack", &format!("rack-{}", i % RACKS))
    }

    /// Sessions the datastore asks of wrend: the mesh, its rack's peers, the global ones.
    fn expected(&self, bgp_peers: usize) -> usize {
        let rack = (0..bgp_peers.min(RACK_PEERS))
            .filter(|p| p % RACKS == self.me % RACKS)
            .count();
        self.n - 1 + rack + bgp_peers.saturating_sub(RACK_PEERS)
    }
}

/// The session name Calico's BIRD (and wren) gives a mesh peer.
fn mesh_name(a: Ipv4Addr) -> String {
    format!("Mesh_{}", a.to_string().replace('.', "_"))
}

fn run(args: &Args) -> anyhow::Result<bool> {
    harness::bench::catch_signals();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/datastore");
    std::fs::create_dir_all(&dir)?;
    let mut report = format!(
        "# datastore: Calico's datastore at scale\n\nwren {}; {}; started {}\n\n",
        checkout(),
        machine(),
        harness::bench::cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    );
    let mut ok = true;
    for &n in &args.nodes {
        if args.speakers.iter().any(|s| s == "wrend") {
            match wren_run(args, n, &dir) {
                Ok(text) => report.push_str(&text),
                Err(e) => {
                    ok = false;
                    let _ = writeln!(report, "wrend, {n} nodes: FAILED: {e:#}\n");
                }
            }
        }
    }
    for speaker in ["bird16", "bird2"] {
        if args.speakers.iter().any(|s| s == speaker) {
            match bird_run(args, speaker, &dir) {
                Ok(text) => report.push_str(&text),
                Err(e) => {
                    ok = false;
                    let _ = writeln!(report, "{speaker}: FAILED: {e:#}\n");
                }
            }
        }
    }
    write_report("datastore", &report, args.out.as_deref(), &dir)?;
    Ok(ok)
}

/// The two namespaces: wrend's (`vr` with [`ME`]/16, the lower nodes unreachable) and the
/// live nodes' (`vp` with their addresses).
fn namespaces(live: &[Ipv4Addr]) -> anyhow::Result<RecvPeers> {
    let ns = RecvPeers::create("wds-", &[], &[])?;
    let (r, p) = (ns.recv.as_str(), ns.peers.as_str());
    try_ip(&["-n", r, "addr", "add", &format!("{ME}/16"), "dev", "vr"])?;
    try_ip(&["-n", r, "link", "set", "vr", "up"])?;
    try_ip(&["-n", r, "route", "add", "unreachable", "198.18.0.0/16"])?;
    try_ip(&["-n", r, "route", "add", "unreachable", "203.0.113.0/24"])?;
    for a in live {
        try_ip(&["-n", p, "addr", "add", &format!("{a}/16"), "dev", "vp"])?;
    }
    try_ip(&["-n", p, "link", "set", "vp", "up"])?;
    Ok(ns)
}

/// Percentiles of durations in ms: min, median, max.
fn spread(v: &[Duration]) -> String {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    match (ms.first(), ms.get(ms.len() / 2), ms.last()) {
        (Some(a), Some(m), Some(z)) => {
            format!("{m:.1} ms (min {a:.1}, max {z:.1}, n={})", ms.len())
        }
        _ => "-".into(),
    }
}

/// BGP rows of `show protocols`: name → (state info, since).
fn rows(cli: &mut Client) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(cli
        .command("show protocols")?
        .iter()
        .filter_map(|l| {
            let t: Vec<&str> = l.text.split_whitespace().collect();
            (t.len() >= 6 && t[1] == "BGP").then(|| (t[0].into(), t[5..].join(" "), t[4].into()))
        })
        .collect())
}

fn wren_run(args: &Args, n: usize, dir: &Path) -> anyhow::Result<String> {
    let lay = Layout { n, me: n / 2 };
    let live: Vec<usize> = (lay.me + 1..n.min(lay.me + 1 + args.live)).collect();
    let live_addrs: Vec<Ipv4Addr> = live.iter().map(|&i| lay.addr(i)).collect();
    let ns = namespaces(&live_addrs)?;
    let run_dir = dir.join(format!("wrend-{n}"));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let etcd = Etcd::start(&ns.recv, IpAddr::V4(Ipv4Addr::LOCALHOST), &run_dir);
    let client = etcd.client();

    let mut kvs = Vec::new();
    for i in 0..n {
        kvs.extend(node_entries(&lay.node(i), &[Layout::block(i)]));
    }
    let key = harness::resources::resource_key;
    for p in 0..args.bgp_peers {
        let name = format!("peer-{p:02}");
        let mut spec = json!({"peerIP": format!("203.0.113.{}", p + 1), "asNumber": 65000 + p});
        if p < RACK_PEERS {
            spec["nodeSelector"] = json!(format!("rack == 'rack-{}'", p % RACKS));
        }
        kvs.push((
            key("bgppeers", &name),
            bgp_peer(&name, spec).to_string().into_bytes(),
        ));
    }
    kvs.push((
        key("bgpconfigurations", "default"),
        bgp_configuration(true, ASN).to_string().into_bytes(),
    ));
    let pool = ip_pool("default-ipv4-ippool", "10.0.0.0/8".parse()?);
    kvs.push((
        key("ippools", "default-ipv4-ippool"),
        pool.to_string().into_bytes(),
    ));
    let t = Instant::now();
    let rev = client.put_all(&kvs).map_err(|e| anyhow!(e))?;
    let loaded = t.elapsed();
    let keys = kvs.len();

    let conf = run_dir.join("wren.toml");
    std::fs::write(
        &conf,
        format!(
            "[datastore]\nkind = \"etcdv3\"\nendpoints = [\"{}\"]\nnode = \"{}\"\nstate_dir = \"{}\"\n",
            etcd.endpoint(),
            Layout::name(lay.me),
            run_dir.join("state").display()
        ),
    )?;
    let ctl = run_dir.join("wren.ctl");
    let quiet = wait_quiet(
        Duration::from_secs(args.timing.wait_quiet),
        0.1,
        Duration::from_secs(2),
    )?;
    let argv = [
        args.daemons.wrend.display().to_string(),
        "-c".into(),
        conf.display().to_string(),
        "-s".into(),
        ctl.display().to_string(),
    ];
    let log = run_dir.join("wrend.log");
    let t0 = Instant::now();
    let mut wrend = Proc::spawn(&ns.recv, &argv, &log, false, args.timing.nice)?;
    let mut cli = loop {
        check_stop()?;
        wrend.check_alive(&log)?;
        if let Ok(c) = Client::connect(&ctl) {
            break c;
        }
        if t0.elapsed() > START_LIMIT {
            bail!("wrend's control socket did not answer");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let t_ctl = t0.elapsed();
    let want = lay.expected(args.bgp_peers);
    let mut seen = 0;
    while seen != want {
        check_stop()?;
        wrend.check_alive(&log)?;
        if t0.elapsed() > START_LIMIT {
            bail!("wrend lists {seen} sessions, expected {want}");
        }
        seen = rows(&mut cli)?.len();
    }
    let t_rows = t0.elapsed();
    let cpu_start = cpu_secs(wrend.pid())?;
    let rss_start = status_kib(wrend.pid(), "VmRSS:")?;

    // The live nodes dial in.
    let t = Instant::now();
    let target = SocketAddr::new(IpAddr::V4(ME), 179);
    let feeders: Vec<Feeder> = std::thread::scope(|s| {
        let handles: Vec<_> = live
            .iter()
            .map(|&i| {
                let (from, peers) = (lay.addr(i), ns.peers.as_str());
                s.spawn(move || in_netns(peers, || feed(from, target, ASN, &[Layout::block(i)])))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a feeder panicked"))?
                    .context("a live node's session")
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let t_live = t.elapsed();
    let names: Vec<String> = live_addrs.iter().map(|&a| mesh_name(a)).collect();
    let witnesses = |cli: &mut Client| -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(rows(cli)?
            .into_iter()
            .filter(|(name, _, _)| names.contains(name))
            .collect())
    };
    let mut before: Vec<(String, String, String)> = Vec::new();
    while before.len() != names.len()
        || before
            .iter()
            .any(|(_, info, _)| !info.starts_with("Established"))
    {
        check_stop()?;
        if t.elapsed() > START_LIMIT {
            bail!("live sessions not Established: {before:?}");
        }
        before = witnesses(&mut cli)?;
    }
    sleep(Duration::from_secs(2))?;

    // One node at a time added.
    let mut adds = Vec::new();
    let etcd_w = Writer(&client);
    for r in 0..args.repeat {
        let i = n + r;
        let a = lay.addr(i);
        let cmd = format!("show protocols {}", mesh_name(a));
        let t = Instant::now();
        etcd_w
            .node(&lay.node(i), &[Layout::block(i)])
            .map_err(|e| anyhow!(e))?;
        loop {
            check_stop()?;
            if cli.command(&cmd)?.iter().any(|l| l.text.contains(" BGP ")) {
                break;
            }
            if t.elapsed() > ADD_LIMIT {
                bail!("node {i} ({a}) not applied within {ADD_LIMIT:?}");
            }
        }
        adds.push(t.elapsed());
        sleep(Duration::from_millis(500))?;
    }
    sleep(Duration::from_secs(1))?;
    let after = witnesses(&mut cli)?;
    let resets = before
        .iter()
        .filter(|b| !after.iter().any(|a| a == *b))
        .count();
    let rss_end = status_kib(wrend.pid(), "VmRSS:")?;
    let hwm = status_kib(wrend.pid(), "VmHWM:")?;
    drop(feeders);
    wrend.stop(Duration::from_secs(3));
    drop(etcd);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## wrend from etcd: {n} nodes, {n} blocks, {} BGPPeers ({keys} keys, revision {rev})\n",
        args.bgp_peers
    );
    let _ = writeln!(
        out,
        "Machine before the start: {:.2} cores busy (waited {:.0} s{}).\n",
        quiet.busy_cores,
        quiet.waited,
        if quiet.quiet { "" } else { ", NOT quiet" }
    );
    let _ = writeln!(out, "| measure | value |\n|---|---|");
    let rows_md = [
        (
            "etcd loaded (txns of 1000 puts)",
            format!("{:.2} s", loaded.as_secs_f64()),
        ),
        (
            "start → control socket answers",
            format!("{:.0} ms", t_ctl.as_secs_f64() * 1e3),
        ),
        (
            "start → every session listed (model computed, dialling)",
            format!(
                "{:.0} ms ({want} sessions; target ≤ 1 s)",
                t_rows.as_secs_f64() * 1e3
            ),
        ),
        ("wrend CPU until then", format!("{cpu_start:.2} s")),
        ("RSS then", format!("{:.1} MiB", rss_start as f64 / 1024.0)),
        (
            "live nodes dial in, Established",
            format!("{} in {:.0} ms", live.len(), t_live.as_secs_f64() * 1e3),
        ),
        (
            "one node added → its session listed",
            format!("{} (target ≤ 50 ms)", spread(&adds)),
        ),
        (
            "resets of the live sessions",
            format!("{resets} of {}", before.len()),
        ),
        (
            "RSS at the end (peak)",
            format!(
                "{:.1} MiB ({:.1} MiB)",
                rss_end as f64 / 1024.0,
                hwm as f64 / 1024.0
            ),
        ),
    ];
    for (k, v) in rows_md {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out.push('\n');
    if resets != 0 {
        bail!("{resets} live sessions reset while nodes were added:\n{out}");
    }
    Ok(out)
}

/// A Calico-shaped BIRD configuration with `peers` mesh peers (the lower nodes' addresses).
fn bird_config(speaker: &str, peers: usize) -> String {
    let mut c = format!("router id {ME};\nprotocol device {{ scan time 2; }}\n");
    if speaker == "bird16" {
        c.push_str(
            "protocol direct { interface -\"cali*\", \"*\"; }\n\
             protocol kernel { learn; persist; scan time 2; import all; export none; \
             graceful restart; }\n\
             template bgp bgp_template {\n  local as 64512;\n  multihop;\n  gateway recursive;\n\
             \x20 import all;\n  export none;\n  add paths on;\n  graceful restart;\n\
             \x20 connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n}\n",
        );
    } else {
        c.push_str(
            "protocol direct { ipv4; interface -\"cali*\", \"*\"; }\n\
             protocol kernel { ipv4 { import all; export none; }; learn; persist; \
             scan time 2; graceful restart; }\n\
             template bgp bgp_template {\n  local as 64512;\n  multihop;\n\
             \x20 ipv4 { import all; export none; gateway recursive; add paths on; };\n\
             \x20 graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n\
             \x20 error wait time 5,30;\n}\n",
        );
    }
    for i in 0..peers {
        let a = Ipv4Addr::from_bits(LOW + i as u32);
        let _ = writeln!(
            c,
            "protocol bgp {} from bgp_template {{\n  neighbor {a} as 64512;\n  source address {ME};\n}}",
            mesh_name(a)
        );
    }
    c
}

/// Runs `birdc -s CTL configure` and times it.
fn configure(birdc: &Path, ctl: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new(birdc)
        .args(["-s", &ctl.display().to_string(), "configure"])
        .output()?;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("Reconfigur") {
        bail!("birdc configure: {text}");
    }
    Ok(took)
}

/// Checks that BIRD runs `want` BGP protocols (the configuration really holds the peers).
fn bgp_protocols(birdc: &Path, ctl: &Path, want: usize) -> anyhow::Result<()> {
    let out = Command::new(birdc)
        .args(["-s", &ctl.display().to_string(), "show", "protocols"])
        .output()?;
    let have = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("BGP"))
        .count();
    if have != want {
        bail!("BIRD runs {have} BGP protocols, expected {want}");
    }
    Ok(())
}

fn bird_run(args: &Args, speaker: &str, dir: &Path) -> anyhow::Result<String> {
    let bird = if speaker == "bird16" {
        &args.daemons.bird16
    } else {
        &args.daemons.bird2
    };
    let birdc = bird.with_file_name("birdc");
    let ns = namespaces(&[])?;
    let run_dir = dir.join(speaker);
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let conf = run_dir.join("bird.conf");
    let ctl = run_dir.join("bird.ctl");
    let base = bird_config(speaker, args.bird_peers);
    let more = bird_config(speaker, args.bird_peers + 1);
    std::fs::write(&conf, &base)?;
    let argv = [
        bird.display().to_string(),
        "-f".into(),
        "-c".into(),
        conf.display().to_string(),
        "-s".into(),
        ctl.display().to_string(),
    ];
    let log = run_dir.join("bird.log");
    let mut p = Proc::spawn(&ns.recv, &argv, &log, false, args.timing.nice)?;
    let t = Instant::now();
    while Command::new(&birdc)
        .args(["-s", &ctl.display().to_string(), "show", "status"])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).contains("Daemon is up"))
        .unwrap_or(true)
    {
        check_stop()?;
        p.check_alive(&log)?;
        if t.elapsed() > START_LIMIT {
            bail!("{speaker} did not answer");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sleep(Duration::from_secs(2))?;
    let quiet = wait_quiet(
        Duration::from_secs(args.timing.wait_quiet),
        0.1,
        Duration::from_secs(2),
    )?;
    let (mut adds, mut removes, mut cpu) = (Vec::new(), Vec::new(), 0.0);
    bgp_protocols(&birdc, &ctl, args.bird_peers)?;
    for r in 0..args.repeat {
        std::fs::write(&conf, &more)?;
        let c0 = cpu_secs(p.pid())?;
        adds.push(configure(&birdc, &ctl)?);
        cpu += cpu_secs(p.pid())? - c0;
        if r == 0 {
            bgp_protocols(&birdc, &ctl, args.bird_peers + 1)?;
        }
        sleep(Duration::from_millis(500))?;
        std::fs::write(&conf, &base)?;
        removes.push(configure(&birdc, &ctl)?);
        sleep(Duration::from_millis(500))?;
    }
    let rss = status_kib(p.pid(), "VmRSS:")?;
    p.stop(Duration::from_secs(3));
    let version = harness::bench::cmd_out(&bird.display().to_string(), &["--version"]);
    let mut out = format!(
        "## {speaker} ({version}): `birdc configure`, {} mesh peers + 1\n\n\
         Machine before: {:.2} cores busy (waited {:.0} s{}).\n\n| measure | value |\n|---|---|\n",
        args.bird_peers,
        quiet.busy_cores,
        quiet.waited,
        if quiet.quiet { "" } else { ", NOT quiet" }
    );
    let _ = writeln!(out, "| configure, one peer added | {} |", spread(&adds));
    let _ = writeln!(
        out,
        "| configure, that peer removed | {} |",
        spread(&removes)
    );
    let _ = writeln!(
        out,
        "| BIRD CPU per added peer | {:.0} ms |",
        cpu * 1e3 / adds.len().max(1) as f64
    );
    let _ = writeln!(out, "| RSS | {:.1} MiB |\n", rss as f64 / 1024.0);
    Ok(out)
}

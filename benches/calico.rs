//! Calico's drop-in against BIRD 1.6.8 (issue 15): `sudo bash tests/cargo.sh bench --bench
//! calico`. Two parts, each daemon side by side in the same run:
//!
//! * `parse`: `bird -p -c FILE` (confd's check before it installs a file), wren answering to
//!   `bird`/`bird6` (a link of that name to wrend) and BIRD 1.6.8's `bird`, on the largest
//!   main file of the corpus (tests/bird/) and on a generated `bird.cfg` with `--peers` (1000)
//!   mesh peers (`python3 tests/bird/gen.py scale N DIR`, 3.32+ shape). Both get the same
//!   copies, without `krt_tunnel` (stock BIRD lacks it). `--runs` (30) runs each; the median
//!   and the fastest wall time, from the spawn to the exit.
//! * `reload`: the node of that generated `bird.cfg` (198.18.0.1, its own namespace, started
//!   as calico-node starts BIRD: `bird -R -s SOCK -d -c FILE`) with `--peers` simulated nodes
//!   (tests/harness/feeder.rs, this binary re-run in a second namespace joined by a veth,
//!   198.18.0.2 onwards, one /26 each), all Established. Then, as confd does, bird.cfg is
//!   rewritten with one peer's settings changed (`hold time 90;` added) and the daemon gets
//!   SIGHUP: the time from the signal to that peer's session closing (the change applied),
//!   and how many of the other sessions closed within `--settle` (3 s) after it (target:
//!   none). A second change (another peer) is applied with `configure` on the control socket
//!   instead: the reply's time, and again the time to the reset and the other resets.
//!
//! Options (after `--`): `--parts parse,reload`, `--daemons wren,bird16`, `--peers 1000`,
//! `--runs 30`, `--settle 3`, `--nice -10`, `--wait-quiet 30`, `--wrend PATH`, `--bird16
//! PATH`, `--out FILE`. Needs root and python3. Work files go to `target/tmp/calico/`, the
//! report to `target/tmp/calico/results.md`. Under `cargo test` it does nothing.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{Client, Daemons, Timing, checkout, established, machine, wait_quiet};
use harness::feeder::{self, Feeder};
use harness::netns::{RecvPeers, ip_batch};
use harness::peers::copy_for_stock_bird;
use harness::proc::{Proc, clock};

const PEERS_CMD: &str = "__calico_peers";
/// The node; peer k (from 0) is the next address up.
const NODE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const NODE_MAC: &str = "02:00:5e:00:01:01";
const PEERS_MAC: &str = "02:00:5e:00:01:02";
const ASN: u32 = 64512;
/// How long the simulated peers may take to be all Established.
const UP: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    harness::bench::main("calico", true, &[(PEERS_CMD, peers_main)], run)
}

#[derive(Parser, Debug)]
#[command(about = "bird -p and a SIGHUP reload, wren as bird beside BIRD 1.6.8")]
struct Args {
    /// Parts: parse, reload.
    #[arg(long, value_delimiter = ',', default_value = "parse,reload")]
    parts: Vec<String>,
    /// Daemons: wren (as `bird`), bird16.
    #[arg(long, value_delimiter = ',', default_value = "wren,bird16")]
    daemons: Vec<String>,
    /// Peers of the generated node.
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Runs of each `bird -p`.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Changes applied per trigger (SIGHUP, configure), each to another peer.
    #[arg(long, default_value_t = 5)]
    reloads: usize,
    /// Seconds to watch the other sessions after a change applied.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    #[command(flatten)]
    timing: Timing,
    #[command(flatten)]
    paths: Daemons,
    /// Report file (default: target/tmp/calico/results.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn peer_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(NODE.to_bits() + 1 + k as u32)
}

/// The program a daemon runs as `bird` (or `bird6`): BIRD 1.6.8's, or a link of that name
/// to wrend in `dir`.
fn program(args: &Args, daemon: &str, v6: bool, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = if v6 { "bird6" } else { "bird" };
    match daemon {
        "bird16" => Ok(args.paths.bird16.with_file_name(name)),
        "wren" => {
            let link = dir.join("bin").join(name);
            if !link.exists() {
                std::fs::create_dir_all(dir.join("bin"))?;
                std::os::unix::fs::symlink(&args.paths.wrend, &link)?;
            }
            Ok(link)
        }
        other => bail!("unknown daemon {other} (wren, bird16)"),
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp/calico");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let scale = generate(args.peers, &dir)?;
    let mut report = format!(
        "# calico: `bird -p` and a SIGHUP reload, wren as `bird` beside BIRD 1.6.8\n\n\
         {}; checkout {}; load average {} at the start.\n\n",
        machine(),
        checkout(),
        loadavg()
    );
    let mut ok = true;
    if args.parts.iter().any(|p| p == "parse") {
        let corpus = largest_corpus_file(&dir)?;
        report += "| file | daemon | median | fastest | verdict |\n|---|---|--:|--:|---|\n";
        for file in [&corpus, &scale.join("bird.cfg")] {
            for d in &args.daemons {
                let row = parse_times(args, d, file, &dir)?;
                ok &= row.ok;
                let _ = writeln!(
                    report,
                    "| {} ({} KiB) | {d} | {:.1} ms | {:.1} ms | {} |",
                    short(file),
                    std::fs::metadata(file)?.len() / 1024,
                    row.median * 1e3,
                    row.fastest * 1e3,
                    row.verdict
                );
                eprintln!("{}", report.lines().last().unwrap_or_default());
            }
        }
        report.push('\n');
    }
    if args.parts.iter().any(|p| p == "reload") {
        let _ = writeln!(
            report,
            "{} peers Established; one peer's `hold time` changed per reload.\n\n\
             | daemon | trigger | changes | reply, median (max) | to applied (the peer's reset), \
             median (max) | other sessions reset | load before |\n|---|---|--:|--:|--:|--:|---|",
            args.peers
        );
        for d in &args.daemons {
            for r in reload(args, d, &scale, &dir)? {
                let applied: Vec<f64> = r.applied.iter().flatten().copied().collect();
                let missed = r.applied.len() - applied.len();
                ok &= r.others == 0 && missed == 0;
                let _ = writeln!(
                    report,
                    "| {d} | {} | {} | {} | {}{} | {} | {} |",
                    r.trigger,
                    r.applied.len(),
                    median_max(&r.reply),
                    median_max(&applied),
                    if missed > 0 {
                        format!(", {missed} not applied")
                    } else {
                        String::new()
                    },
                    r.others,
                    r.load
                );
                eprintln!("{}", report.lines().last().unwrap_or_default());
            }
        }
    }
    harness::bench::write_report("calico", &report, args.out.as_deref(), &dir)?;
    Ok(ok)
}

/// `gen.py scale N` into `dir/scale-src`, then its copy for stock BIRD in `dir/scale`.
fn generate(n: usize, dir: &Path) -> anyhow::Result<PathBuf> {
    let gen_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bird/gen.py");
    let src = dir.join("scale-src");
    let st = Command::new("python3")
        .arg(&gen_py)
        .args(["scale", &n.to_string()])
        .arg(&src)
        .status()
        .context("python3 (needed to generate the N-peer bird.cfg)")?;
    if !st.success() {
        bail!("{} scale {n}: {st}", gen_py.display());
    }
    let out = dir.join("scale");
    copy_for_stock_bird(&src, &out);
    Ok(out)
}

/// The corpus's largest main file (bird.cfg or bird6.cfg), copied for stock BIRD.
fn largest_corpus_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bird");
    let mut best: Option<(u64, PathBuf)> = None;
    for shape in ["v3.31", "v3.32"] {
        for scenario in std::fs::read_dir(corpus.join(shape))?.flatten() {
            for main in ["bird.cfg", "bird6.cfg"] {
                let p = scenario.path().join(main);
                let Ok(m) = std::fs::metadata(&p) else {
                    continue;
                };
                if best.as_ref().is_none_or(|(len, _)| m.len() > *len) {
                    best = Some((m.len(), p));
                }
            }
        }
    }
    let (_, p) = best.context("no corpus files under tests/bird")?;
    let scenario = p.parent().context("corpus file without a folder")?;
    let name = scenario.file_name().context("corpus folder name")?;
    let to = dir.join("corpus").join(name);
    copy_for_stock_bird(scenario, &to);
    Ok(to.join(p.file_name().context("corpus file name")?))
}

/// The last two components of a path.
fn short(p: &Path) -> String {
    let parts: Vec<_> = p.iter().map(|c| c.to_string_lossy()).collect();
    parts[parts.len().saturating_sub(2)..].join("/")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct ParseRow {
    median: f64,
    fastest: f64,
    ok: bool,
    verdict: String,
}

/// Times `bird -p -c FILE` for daemon `d`, `--runs` times.
fn parse_times(args: &Args, d: &str, file: &Path, dir: &Path) -> anyhow::Result<ParseRow> {
    let v6 = file
        .file_name()
        .is_some_and(|f| f.to_string_lossy().starts_with("bird6"));
    let prog = program(args, d, v6, dir)?;
    let q = wait_quiet(
        Duration::from_secs(args.timing.wait_quiet),
        0.1,
        Duration::from_secs(2),
    )?;
    let mut times = Vec::with_capacity(args.runs);
    let mut verdict = String::new();
    for _ in 0..args.runs.max(1) {
        let mut cmd = Command::new(&prog);
        cmd.args(["-p", "-c"]).arg(file).current_dir("/");
        let t = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("running {}", prog.display()))?;
        times.push(t.elapsed().as_secs_f64());
        if !out.status.success() {
            verdict = format!(
                "refused: {}",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('|', "\\|")
            );
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    let ok = verdict.is_empty();
    if ok {
        verdict = format!("accepted (load {:.2} cores before)", q.busy_cores);
    }
    Ok(ParseRow {
        median: times[times.len() / 2],
        fastest: times[0],
        ok,
        verdict,
    })
}

struct ReloadRow {
    trigger: &'static str,
    /// Seconds from each trigger to `configure`'s reply (socket only).
    reply: Vec<f64>,
    /// Seconds from each trigger to the changed peer's session closing (None: it did not).
    applied: Vec<Option<f64>>,
    /// Other sessions that closed, over all the changes.
    others: usize,
    load: String,
}

/// "median (max)" in milliseconds.
fn median_max(v: &[f64]) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.get(v.len() / 2), v.last()) {
        (Some(m), Some(x)) => format!("{:.1} ({:.1}) ms", m * 1e3, x * 1e3),
        _ => "–".into(),
    }
}

/// The node and its peers' namespaces, joined by a veth, the peers on the node's subnet
/// with permanent neighbour entries (no ARP for a thousand addresses).
fn namespaces(n: usize, dir: &Path) -> anyhow::Result<RecvPeers> {
    let g = RecvPeers::create("wcal-", &["address", NODE_MAC], &["address", PEERS_MAC])?;
    let mut node = format!("link set vr up\naddr add {NODE}/15 dev vr\n");
    let mut peers =
        format!("link set vp up\nneigh replace {NODE} lladdr {NODE_MAC} dev vp nud permanent\n");
    for k in 0..n {
        let _ = writeln!(
            node,
            "neigh replace {} lladdr {PEERS_MAC} dev vr nud permanent",
            peer_addr(k)
        );
        let _ = writeln!(peers, "addr add {}/32 dev vp", peer_addr(k));
    }
    peers += &format!("route add {NODE}/32 dev vp\n");
    ip_batch(&g.recv, &node, &dir.join("node.batch"))?;
    ip_batch(&g.peers, &peers, &dir.join("peers.batch"))?;
    Ok(g)
}

/// Writes `path` as confd does: a staged file beside it, renamed over it.
fn confd_write(path: &Path, text: &str) -> anyhow::Result<()> {
    let staged = path.with_extension(format!("cfg{}", std::process::id()));
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, path)?;
    Ok(())
}

/// bird.cfg with `hold time 90;` added to peer `k`'s protocol.
fn change_peer(cfg: &Path, k: usize) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(cfg)?;
    let head = format!(
        "protocol bgp Mesh_{} from bgp_template {{\n",
        peer_addr(k).to_string().replace('.', "_")
    );
    if !text.contains(&head) {
        bail!("no `{head}` in {}", cfg.display());
    }
    confd_write(
        cfg,
        &text.replacen(&head, &format!("{head}  hold time 90;\n"), 1),
    )
}

/// The reload part for daemon `d`: the node on a copy of `scale`, its peers up, then one
/// change by SIGHUP and one by `configure`.
fn reload(args: &Args, d: &str, scale: &Path, dir: &Path) -> anyhow::Result<Vec<ReloadRow>> {
    let work = dir.join(format!("reload-{d}"));
    copy_for_stock_bird(scale, &work);
    let g = namespaces(args.peers, &work)?;
    let cfg = work.join("bird.cfg");
    let ctl = work.join("bird.ctl");
    let prog = program(args, d, false, dir)?;
    let argv: Vec<String> = [
        prog.as_path(),
        Path::new("-R"),
        Path::new("-s"),
        &ctl,
        Path::new("-d"),
        Path::new("-c"),
        &cfg,
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    let mut daemon = Proc::spawn(
        &g.recv,
        &argv,
        &work.join("daemon.log"),
        false,
        args.timing.nice,
    )?;
    let mut cli = connect(&ctl, &mut daemon, &work)?;
    let me = std::env::current_exe()?.display().to_string();
    let peers_argv = vec![me, PEERS_CMD.into(), args.peers.to_string()];
    let mut peers = Proc::spawn(
        &g.peers,
        &peers_argv,
        &work.join("peers.log"),
        true,
        args.timing.nice,
    )?;
    let lines = peers.lines()?;
    let end = Instant::now() + UP;
    loop {
        harness::bench::check_stop()?;
        if Instant::now() > end {
            bail!("{d}: the {} peers not all up within {UP:?}", args.peers);
        }
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l == "up" => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                peers.check_alive(&work.join("peers.log"))?;
                bail!("{d}: the peers' process ended");
            }
        }
    }
    while established(&mut cli)? < args.peers {
        harness::bench::sleep(Duration::from_millis(200))?;
        if Instant::now() > end {
            bail!(
                "{d}: the node does not show {} sessions Established",
                args.peers
            );
        }
    }
    eprintln!("calico: {d}: {} sessions Established", args.peers);
    let mut rows = Vec::new();
    let mut k = args.peers / 2;
    for trigger in ["SIGHUP", "configure"] {
        let mut row = ReloadRow {
            trigger,
            reply: Vec::new(),
            applied: Vec::new(),
            others: 0,
            load: loadavg(),
        };
        for _ in 0..args.reloads {
            k += 1;
            change_peer(&cfg, k)?;
            let t0 = clock(libc::CLOCK_MONOTONIC);
            if trigger == "SIGHUP" {
                // SAFETY: signalling our own child by its pid.
                unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
            } else {
                let r = cli.command("configure")?;
                row.reply
                    .push((clock(libc::CLOCK_MONOTONIC) - t0).as_secs_f64());
                let text = wren::control::client::render(&r);
                eprintln!(
                    "calico: {d}: configure: {}",
                    text.trim().replace('\n', " / ")
                );
            }
            let settle = Duration::from_secs(args.settle);
            let (applied, others) = resets(&lines, k, t0, settle, &mut daemon, &work)?;
            row.applied.push(applied);
            row.others += others;
        }
        rows.push(row);
    }
    daemon.stop(Duration::from_secs(5));
    peers.stop(Duration::from_secs(5));
    Ok(rows)
}

/// Connects to the daemon's control socket, waiting for it to appear.
fn connect(ctl: &Path, daemon: &mut Proc, work: &Path) -> anyhow::Result<Client> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        daemon.check_alive(&work.join("daemon.log"))?;
        match Client::connect(ctl) {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < end => harness::bench::sleep(Duration::from_millis(100))?,
            Err(e) => return Err(e).with_context(|| format!("connecting to {}", ctl.display())),
        }
    }
}

/// Reads the peers' `closed K NANOS` lines after a change to peer `k` made at `t0`: the time
/// until `k` closed (at most 10 s), and how many others closed until `settle` after that.
fn resets(
    lines: &mpsc::Receiver<String>,
    k: usize,
    t0: Duration,
    settle: Duration,
    daemon: &mut Proc,
    work: &Path,
) -> anyhow::Result<(Option<f64>, usize)> {
    let mut applied = None;
    let mut others = 0;
    let mut end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        harness::bench::check_stop()?;
        daemon.check_alive(&work.join("daemon.log"))?;
        let Ok(l) = lines.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let w: Vec<&str> = l.split_whitespace().collect();
        let (Some(&"closed"), Some(peer), Some(ns)) = (w.first(), w.get(1), w.get(2)) else {
            continue;
        };
        let (peer, ns): (usize, u64) = (peer.parse()?, ns.parse()?);
        if peer == k && applied.is_none() {
            applied = Some((Duration::from_nanos(ns).saturating_sub(t0)).as_secs_f64());
            end = Instant::now() + settle;
        } else if peer != k {
            others += 1;
        }
    }
    Ok((applied, others))
}

/// The simulated peers (run in their namespace): `N` sessions to the node, one /26 each;
/// prints `up` once all are Established, then `closed K NANOS` for each session the node
/// closes (CLOCK_MONOTONIC), until stdin closes.
fn peers_main(argv: &[String]) -> anyhow::Result<()> {
    let n: usize = argv.first().context("number of peers")?.parse()?;
    let to = (NODE, 179).into();
    let mut feeders: Vec<Feeder> = Vec::with_capacity(n);
    for k in 0..n {
        let f = feeder::feed(peer_addr(k), to, ASN, &[feeder::block(k + 1, 26)])
            .with_context(|| format!("peer {k} ({})", peer_addr(k)))?;
        feeders.push(f);
    }
    println!("up");
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        let _ = tx.send(());
    });
    let mut told = vec![false; n];
    loop {
        for (k, f) in feeders.iter().enumerate() {
            if let (false, Some(at)) = (told[k], f.closed_at()) {
                println!("closed {k} {}", at.as_nanos());
                told[k] = true;
            }
        }
        if !matches!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return Ok(());
        }
    }
}

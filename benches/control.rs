//! `show route` of a large table over the control socket, wrend and BIRD 2 side by side:
//! `sudo -E cargo bench --bench control`.
//!
//! Each daemon in turn runs on loopback (wrend at 127.0.0.110, BIRD 2 at 127.0.0.112, port
//! 1179, no kernel protocol: the table only) with one iBGP peer, a feeder (this binary, from
//! 127.0.0.111 or .113; tests/harness/feeder.rs) announcing `--routes` (1M) blocks of
//! 100.64.0.0/10 (/30s; /28s up to 262,144), 800 to an UPDATE. Once `show route count` says
//! every route is in and 3 s have passed, the daemon's VmRSS is the baseline and its peak
//! (VmHWM) is reset. Then:
//!
//! * `--clients` (20) clients connect, send `show route` and never read; 3 s later the RSS
//!   growth over the baseline is read.
//! * `show status` is asked `--samples` (20) times, 100 ms apart, on one connection while
//!   those clients wait: the time from writing the command to reading the reply's last line.
//! * One client reads a whole `show route`: the time from writing the command to the reply's
//!   last line, and the routes in it (lines whose first word is a prefix). Meanwhile another
//!   connection asks `show status` every 20 ms: its latencies show how long the daemon's loop
//!   is held by the reply's work.
//! * The RSS and the peak RSS (VmHWM) over the baseline, with the silent clients still
//!   connected.
//!
//! Options (after `--`): `--routes N`, `--clients N`, `--samples N`, `--daemons wrend,bird2`,
//! `--wrend PATH`, `--bird PATH`, `--out FILE`. Work files go to `target/tmp/control/`, the
//! report to `target/tmp/control/results.md`. Under `cargo test` it does nothing.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{CargoArgs, checkout, count_label, machine};
use harness::feeder;
use harness::proc::{reset_peak_rss, status_kib};

const ASN: u32 = 64512;
const PORT: u16 = 1179;
const DEADLINE: Duration = Duration::from_secs(900);

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    routes: usize,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    #[arg(long, default_value_t = 20)]
    samples: usize,
    #[arg(long, value_delimiter = ',', default_value = "wrend,bird2")]
    daemons: Vec<String>,
    #[arg(long, default_value = env!("CARGO_BIN_EXE_wrend"))]
    wrend: PathBuf,
    #[arg(long, default_value = "/usr/sbin/bird")]
    bird: PathBuf,
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cargo: CargoArgs,
}

fn main() -> ExitCode {
    harness::bench::main("control", true, |a: &Args| &a.cargo, run)
}

/// One daemon's figures.
#[derive(Debug, Default)]
struct Row {
    daemon: String,
    load_secs: f64,
    base_kib: u64,
    silent_growth_kib: i64,
    status_ms: Vec<f64>,
    /// While one client reads a whole `show route`.
    status_reading_ms: Vec<f64>,
    full_secs: f64,
    full_routes: usize,
    full_bytes: usize,
    after_growth_kib: i64,
    peak_growth_kib: i64,
}

/// A daemon under test; killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:")
    }
}

fn start(args: &Args, name: &str, me: Ipv4Addr, peer: Ipv4Addr) -> anyhow::Result<Daemon> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/tmp/control/{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("ctl");
    let log = std::fs::File::create(dir.join("stderr.log"))?;
    let mut cmd = if name == "wrend" {
        let conf = dir.join("wrend.toml");
        std::fs::write(
            &conf,
            format!(
                "router_id = \"{me}\"\nasn = {ASN}\n[kernel]\nenabled = false\n\
                 [listen]\naddresses = [\"{me}\"]\nport = {PORT}\n\
                 [[peer]]\nname = \"Feeder\"\naddress = \"{peer}\"\nasn = {ASN}\nport = {PORT}\n\
                 passive = true\nhold_time = 90\n"
            ),
        )?;
        let mut c = Command::new(&args.wrend);
        c.arg("-c").arg(conf).arg("-s").arg(&socket);
        c
    } else {
        let conf = dir.join("bird.conf");
        std::fs::write(
            &conf,
            format!(
                "log \"{}\" {{ info, remote, warning, error, auth, fatal, bug }};\n\
                 router id {me};\nprotocol device {{ }}\n# No kernel protocol: the table only.\n\
                 protocol bgp Feeder {{\n  local {me} port {PORT} as {ASN};\n  \
                 neighbor {peer} port {PORT} as {ASN};\n  passive on;\n  hold time 90;\n  \
                 ipv4 {{ import all; export none; }};\n}}\n",
                dir.join("bird.log").display()
            ),
        )?;
        let mut c = Command::new(&args.bird);
        c.arg("-f").arg("-c").arg(conf).arg("-s").arg(&socket);
        c
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let d = Daemon { child, socket };
    let end = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&d.socket).is_err() {
        if Instant::now() > end {
            bail!("{name}: no control socket in 10 s; see {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(d)
}

/// A control connection that reads replies line by line.
struct Cli {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Cli {
    fn connect(socket: &Path) -> anyhow::Result<Cli> {
        let w = UnixStream::connect(socket)?;
        w.set_read_timeout(Some(Duration::from_secs(600)))?;
        let mut c = Cli {
            r: BufReader::new(w.try_clone()?),
            w,
        };
        c.reply(|_| {})?;
        Ok(c)
    }

    /// Reads one reply, handing each line's text to `each`: its byte count.
    fn reply(&mut self, mut each: impl FnMut(&str)) -> anyhow::Result<usize> {
        let (mut line, mut bytes) = (String::new(), 0);
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                bail!("connection closed in a reply");
            }
            bytes += line.len();
            let b = line.as_bytes();
            // `DDDD ` ends a reply; `DDDD-` and ` ` go on (BIRD's framing).
            let code = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
            each(if code {
                &line[5..]
            } else {
                line.get(1..).unwrap_or("")
            });
            if code && b[4] == b' ' {
                return Ok(bytes);
            }
        }
    }

    fn ask(&mut self, cmd: &str, each: impl FnMut(&str)) -> anyhow::Result<usize> {
        self.w.write_all(format!("{cmd}\n").as_bytes())?;
        self.reply(each)
    }
}

fn route_count(cli: &mut Cli) -> anyhow::Result<usize> {
    let mut n = 0;
    cli.ask("show route count", |t| {
        if let Some(v) = t.split_whitespace().next().and_then(|w| w.parse().ok())
            && t.contains(" routes for ")
        {
            // BIRD 2 counts per table, then in all.
            n = n.max(v);
        }
    })?;
    Ok(n)
}

fn measure(args: &Args, name: &str, me: Ipv4Addr, peer: Ipv4Addr) -> anyhow::Result<Row> {
    let len = if args.routes <= 1 << 18 { 28 } else { 30 };
    let nets: Vec<_> = (0..args.routes).map(|k| feeder::block(k, len)).collect();
    let d = start(args, name, me, peer)?;
    let loading = Instant::now();
    let feed = feeder::feed(peer, (me, PORT).into(), ASN, &nets)?;
    drop(nets);
    let mut cli = Cli::connect(&d.socket)?;
    while route_count(&mut cli)? < args.routes {
        if loading.elapsed() > DEADLINE {
            bail!("{name}: routes not in after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut row = Row {
        daemon: name.into(),
        load_secs: loading.elapsed().as_secs_f64(),
        ..Row::default()
    };
    std::thread::sleep(Duration::from_secs(3));
    row.base_kib = d.rss()?;
    reset_peak_rss(d.pid())?;
    let growth = |d: &Daemon| -> anyhow::Result<i64> { Ok(d.rss()? as i64 - row.base_kib as i64) };

    let silent = (0..args.clients)
        .map(|_| -> anyhow::Result<UnixStream> {
            let mut s = UnixStream::connect(&d.socket)?;
            s.write_all(b"show route\n")?;
            Ok(s)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_secs(3));
    row.silent_growth_kib = growth(&d)?;

    for _ in 0..args.samples {
        let asked = Instant::now();
        cli.ask("show status", |_| {})?;
        row.status_ms.push(asked.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(100));
    }

    // `show status` every 20 ms on another connection while one client reads a whole reply.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut prober = Cli::connect(&d.socket)?;
    let halt = std::sync::Arc::clone(&stop);
    let probe = std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::new();
        while !halt.load(std::sync::atomic::Ordering::Relaxed) {
            let asked = Instant::now();
            prober.ask("show status", |_| {})?;
            ms.push(asked.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(ms)
    });
    let mut reader = Cli::connect(&d.socket)?;
    let asked = Instant::now();
    let mut routes = 0;
    row.full_bytes = reader.ask("show route", |t| {
        let first = t.split_whitespace().next().unwrap_or("");
        routes += usize::from(first.parse::<ipnet::Ipv4Net>().is_ok());
    })?;
    row.full_secs = asked.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    row.status_reading_ms = probe
        .join()
        .map_err(|_| anyhow::anyhow!("the show status prober panicked"))??;
    row.full_routes = routes;
    row.after_growth_kib = growth(&d)?;
    row.peak_growth_kib = status_kib(d.pid(), "VmHWM:")? as i64 - row.base_kib as i64;
    drop((silent, feed));
    Ok(row)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let load_before = loadavg();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (k, name) in args.daemons.iter().enumerate() {
        let me = Ipv4Addr::new(127, 0, 0, 110 + 2 * k as u8);
        let peer = Ipv4Addr::new(127, 0, 0, 111 + 2 * k as u8);
        let label = if name == "bird2" { "BIRD 2" } else { "wrend" };
        eprintln!("control: {label}, {} routes", args.routes);
        let row = measure(args, name, me, peer).with_context(|| label.to_string())?;
        eprintln!("control: {row:?}");
        rows.push(Row {
            daemon: label.into(),
            ..row
        });
    }
    let mib = |kib: i64| kib as f64 / 1024.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "`show route` of {} routes with {} clients that never read — {}; checkout {}; \
         load average before {load_before}, after {}; {:.0} s in all.\n",
        count_label(args.routes),
        args.clients,
        machine(),
        checkout(),
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| daemon | table loaded | RSS | RSS growth, silent clients | `show status` median / max | `show status` during the reader's `show route` (samples) | one reader's `show route` | routes in it | RSS growth after | peak RSS growth |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    let spread = |v: &[f64]| {
        let mut ms = v.to_vec();
        ms.sort_by(f64::total_cmp);
        let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
        let max = ms.last().copied().unwrap_or(0.0);
        format!("{median:.1} / {max:.1} ms")
    };
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {:.0} MiB | {:.1} MiB | {} | {} ({}) | {:.2} s ({:.0} MiB) | {} | {:.1} MiB | {:.1} MiB |",
            r.daemon,
            r.load_secs,
            mib(r.base_kib as i64),
            mib(r.silent_growth_kib),
            spread(&r.status_ms),
            spread(&r.status_reading_ms),
            r.status_reading_ms.len(),
            r.full_secs,
            r.full_bytes as f64 / 1048576.0,
            r.full_routes,
            mib(r.after_growth_kib),
            mib(r.peak_growth_kib),
        );
    }
    print!("{out}");
    let path = args.out.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/control/results.md")
    });
    std::fs::write(&path, &out).with_context(|| path.display().to_string())?;
    Ok(rows.iter().all(|r| r.full_routes == args.routes))
}

//! What the bench binaries share beyond processes and namespaces: their start under `cargo
//! bench` (root, filters, helper processes) and common options, signals that end every wait, waiting for a quiet machine,
//! control-socket counts, and the report's header lines.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args as _, FromArgMatches as _};

pub use wren::control::client::Client;

use super::proc::{is_root, machine_busy_secs};

// --- signals

/// Set by SIGINT / SIGTERM / SIGHUP: every wait gives up, and the guards clean up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The command line of wrend or BIRD 2 (the same options): its configuration and control
/// socket, and with `bird_pid` BIRD's foreground run and pid file.
pub fn speaker_argv(bin: &Path, conf: &Path, ctl: &Path, bird_pid: Option<&Path>) -> Vec<String> {
    let mut argv = vec![
        bin.display().to_string(),
        "-c".into(),
        conf.display().to_string(),
        "-s".into(),
        ctl.display().to_string(),
    ];
    if let Some(pid) = bird_pid {
        argv.extend(["-f".into(), "-P".into(), pid.display().to_string()]);
    }
    argv
}

/// Turns SIGINT, SIGTERM and SIGHUP into [`stopped`].
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = on_signal as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// A signal asked the bench to stop.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// An error once a signal asked the bench to stop.
pub fn check_stop() -> anyhow::Result<()> {
    if stopped() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps in short steps so that a signal ends the wait.
pub fn sleep(d: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

// The arguments `cargo bench` passes to every bench binary; `main` adds them to each one's.
// (Not a doc comment: clap would make it the bench's `about`.)
#[derive(clap::Args, Debug)]
pub struct CargoArgs {
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// Bench name filters passed by `cargo bench FILTER`.
    #[arg(hide = true)]
    pub filters: Vec<String>,
}

/// The options of the benches that time processes (flattened into their arguments).
#[derive(clap::Args, Debug)]
pub struct Timing {
    /// Nice value of the processes measured and of the bench's own helpers (receiver, sender,
    /// client, inner runs), so that other work on the machine disturbs the timings less.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    pub nice: i32,
    /// Before each run, wait up to this many seconds for the machine to be quiet (fib: under
    /// a quarter of the cores busy over 1 s; the others: under a tenth of a core over 2 s).
    #[arg(long, default_value_t = 30)]
    pub wait_quiet: u64,
}

/// The BGP daemons a bench sets side by side (flattened into its arguments).
#[derive(clap::Args, Debug)]
pub struct Daemons {
    /// wrend to measure (default: the one `cargo bench` builds with this bench).
    #[arg(long, default_value = env!("CARGO_BIN_EXE_wrend"))]
    pub wrend: PathBuf,
    /// BIRD 2 (Debian's bird2).
    #[arg(long, default_value = "/usr/sbin/bird")]
    pub bird2: PathBuf,
    /// BIRD 1.6.8 (`sudo bash tests/peers/install.sh` unpacks it there).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/peers/bird16/usr/sbin/bird"))]
    pub bird16: PathBuf,
}

/// A bench's helper process: the bench binary run again with this hidden first argument
/// (a BGP sender, a client, a run inside a namespace), given the arguments after it.
pub type Inner = (&'static str, fn(&[String]) -> anyhow::Result<()>);

/// A bench binary's start. Run as one of its `inner` helpers, that helper, whose error is
/// reported. `cargo test --all-targets` runs bench binaries too, without `--bench`: then it
/// says so and does nothing. Nothing either when `cargo bench FILTER` names another bench
/// (the filter is passed to every bench binary); exit 2 without root when `needs_root` (the
/// `rib` bench's root parts are optional). Then `run` with the arguments (`name` is the
/// command's), whose error is reported; `Ok(false)` is a failed run.
pub fn main<A: clap::Parser>(
    name: &'static str,
    needs_root: bool,
    inner: &[Inner],
    run: impl FnOnce(&A) -> anyhow::Result<bool>,
) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if let Some((cmd, helper)) = inner
        .iter()
        .find(|(cmd, _)| argv.get(1).map(String::as_str) == Some(*cmd))
    {
        return match helper(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name} {cmd}: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if !argv.iter().any(|a| a == "--bench") {
        eprintln!("{name}: not run as a test; `sudo bash tests/cargo.sh bench --bench {name}`");
        return ExitCode::SUCCESS;
    }
    let matches = CargoArgs::augment_args(A::command().name(name)).get_matches();
    let parsed = A::from_arg_matches(&matches)
        .and_then(|args| Ok((args, CargoArgs::from_arg_matches(&matches)?)));
    let (args, cargo) = parsed.unwrap_or_else(|e| e.exit());
    if !cargo.filters.is_empty() && !cargo.filters.iter().any(|f| name.contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    if needs_root && !is_root() {
        eprintln!(
            "{name}: needs root (network namespaces, veth pairs); \
             run `sudo bash tests/cargo.sh bench --bench {name}`"
        );
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a helper's BGP sessions on a single-threaded runtime.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(f)
}

/// A helper's commands: its standard input's lines, trimmed, read by a plain thread.
pub fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_string()).is_err() {
                break;
            }
        }
    });
    rx
}

// --- the control socket (BIRD's CLI protocol, through wren's own client)

/// Routes in "N of M routes for K networks", summed over the tables shown.
pub fn route_count(cli: &mut Client) -> anyhow::Result<usize> {
    let lines = cli.command("show route count")?;
    let mut total = None;
    for l in lines.iter().filter(|l| l.text.contains(" routes for ")) {
        if let Some(v) = l
            .text
            .split_whitespace()
            .next()
            .and_then(|w| w.parse::<usize>().ok())
        {
            *total.get_or_insert(0) += v;
        }
    }
    total.ok_or_else(|| anyhow!("unexpected `show route count` reply: {lines:?}"))
}

/// Sessions `show protocols` lists as Established.
pub fn established(cli: &mut Client) -> anyhow::Result<usize> {
    Ok(cli
        .command("show protocols")?
        .iter()
        .filter(|l| l.text.contains("Established"))
        .count())
}

/// How long [`wait_quiet`] waited, the cores busy over its last window, and whether that
/// was under the threshold.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet {
    pub waited: f64,
    pub busy_cores: f64,
    pub quiet: bool,
}

/// Waits until the machine is under `max_cores` busy over `window`, at most `limit`.
pub fn wait_quiet(limit: Duration, max_cores: f64, window: Duration) -> anyhow::Result<Quiet> {
    let start = Instant::now();
    loop {
        let a = machine_busy_secs()?;
        sleep(window)?;
        let busy_cores = (machine_busy_secs()? - a) / window.as_secs_f64();
        let quiet = busy_cores < max_cores;
        if quiet || start.elapsed() >= limit {
            return Ok(Quiet {
                waited: start.elapsed().as_secs_f64(),
                busy_cores,
                quiet,
            });
        }
    }
}

// --- the report

/// Prints the report and writes it to `out`, by default `dir/results.md`.
pub fn write_report(
    name: &str,
    report: &str,
    out: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<()> {
    println!("{report}");
    let out = out.map_or_else(|| dir.join("results.md"), Path::to_path_buf);
    std::fs::write(&out, report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("{name}: report written to {}", out.display());
    Ok(())
}

/// A command's stdout and stderr, trimmed (or why it could not run).
pub fn cmd_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).to_string();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t.trim().to_string()
        })
        .unwrap_or_else(|e| format!("({cmd}: {e})"))
}

/// "N cores (CPU model), M GiB, Linux R".
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    // SAFETY: sysconf has no preconditions.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {}",
        cmd_out("uname", &["-r"])
    )
}

/// The checkout's short commit, marked when src/ has local changes.
pub fn checkout() -> String {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let rev = cmd_out("git", &["-C", manifest, "rev-parse", "--short", "HEAD"]);
    let dirty = !cmd_out(
        "git",
        &["-C", manifest, "status", "--porcelain", "--", "src"],
    )
    .is_empty();
    format!("{rev}{}", if dirty { " (src/ modified)" } else { "" })
}

/// 10000 → "10k", 1000000 → "1M".
pub fn count_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

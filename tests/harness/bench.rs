//! What the bench binaries share beyond processes and namespaces: their start under `cargo
//! bench` (root, filters), signals that end every wait, waiting for a quiet machine,
//! control-socket counts, and the report's header lines.

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

pub use wren::control::client::Client;

use super::proc::{is_root, machine_busy_secs};

// --- signals

/// Set by SIGINT / SIGTERM / SIGHUP: every wait gives up, and the guards clean up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
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

/// The arguments `cargo bench` passes to every bench binary (flattened into each one's).
#[derive(clap::Args, Debug)]
pub struct CargoArgs {
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// Bench name filters passed by `cargo bench FILTER`.
    #[arg(hide = true)]
    pub filters: Vec<String>,
}

/// A bench binary's start. `cargo test --all-targets` runs bench binaries too, without
/// `--bench`: then it says so and does nothing. Nothing either when `cargo bench FILTER` names
/// another bench (the filter is passed to every bench binary); exit 2 without root when
/// `needs_root` (the `rib` bench's root parts are optional). Then `run` with the parsed
/// arguments, whose error is reported; `Ok(false)` is a failed run.
pub fn main<A: clap::Parser>(
    name: &str,
    needs_root: bool,
    cargo: impl Fn(&A) -> &CargoArgs,
    run: impl FnOnce(&A) -> anyhow::Result<bool>,
) -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("{name}: not run as a test; `sudo bash tests/cargo.sh bench --bench {name}`");
        return ExitCode::SUCCESS;
    }
    let args = A::parse();
    let filters = &cargo(&args).filters;
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
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

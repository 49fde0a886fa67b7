//! Shared by the bench binaries that run daemons and kernel work in network namespaces
//! (`fib`, `mesh_scale`, `convergence`; `rib` can switch over): signals, namespaces, a child
//! process in a namespace, `/proc` readers, control-socket queries and the kernel's floor.
//! Each binary includes it with `mod common;` and uses a part of it.

pub mod kernel;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

pub use wren::control::client::Client;

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

/// Sleeps in short steps so that a signal ends the wait.
pub fn sleep(d: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + d;
    loop {
        if stopped() {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

/// Whether the bench runs as root (namespaces, veth pairs, port 179).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `cargo bench` started this binary (`--bench` among its arguments). `cargo test
/// --all-targets` runs bench binaries too; then it says so, and the binary does nothing.
pub fn started_by_cargo_bench(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    eprintln!("{name}: not run as a test; `sudo bash tests/cargo.sh bench --bench {name}`");
    false
}

/// The rest of a bench binary's start: nothing when `cargo bench FILTER` names another bench
/// (the filter is passed to every bench binary), exit 2 without root, then `run`, whose error
/// is reported; `Ok(false)` is a failed run.
pub fn run_bench(
    name: &str,
    filters: &[String],
    run: impl FnOnce() -> anyhow::Result<bool>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    if !is_root() {
        eprintln!(
            "{name}: needs root (network namespaces, veth pairs); \
             run `sudo bash tests/cargo.sh bench --bench {name}`"
        );
        return ExitCode::from(2);
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// --- namespaces

/// Runs `ip ARGS`; its stderr becomes the error.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes a namespace if it exists.
pub fn netns_delete(name: &str) {
    if Path::new("/run/netns").join(name).exists() {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Namespaces named `PREFIX…` left by a run that was killed: the first all-digit
/// `-`-separated field after the prefix is the run's pid, and that pid is gone.
pub fn remove_stale_namespaces(prefix: &str, bench: &str) {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').find_map(|f| f.parse::<u32>().ok()))
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("{bench}: removing stale namespace {name}");
            netns_delete(&name);
        }
    }
}

/// Namespaces deleted on drop.
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    /// Creates each namespace (deleting a leftover of the same name first), with `lo` up.
    pub fn create(names: &[String]) -> anyhow::Result<Namespaces> {
        let g = Namespaces(names.to_vec());
        for n in names {
            netns_delete(n);
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(g)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            netns_delete(n);
        }
    }
}

// --- processes

/// A child process run with `ip netns exec` (which execs, so the pid is the program's), at
/// nice `nice`. Killed when the bench exits (PR_SET_PDEATHSIG) and stopped on drop.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    name: String,
}

impl Proc {
    /// stderr goes to `log`; stdout too unless `piped`, which pipes stdin and stdout.
    pub fn spawn(
        ns: &str,
        argv: &[String],
        log: &Path,
        piped: bool,
        nice: i32,
    ) -> anyhow::Result<Proc> {
        let f = File::create(log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stderr(f.try_clone()?)
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(if piped {
                Stdio::piped()
            } else {
                Stdio::from(f)
            });
        // SAFETY: prctl and setpriority are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                Ok(())
            });
        }
        let name = argv.first().cloned().unwrap_or_default();
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stdin = child.stdin.take();
        Ok(Proc { child, stdin, name })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The child's stdout lines, through a channel.
    pub fn lines(&mut self) -> anyhow::Result<mpsc::Receiver<String>> {
        let out = self
            .child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Writes one line to the child's stdin.
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let w = self.stdin.as_mut().ok_or_else(|| anyhow!("no stdin"))?;
        writeln!(w, "{line}")?;
        w.flush()?;
        Ok(())
    }

    /// An error with the last lines of `log` if the child has exited.
    pub fn check_alive(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(st) = self.child.try_wait()? {
            bail!(
                "{} exited ({st}); last lines of {}:\n{}",
                self.name,
                log.display(),
                tail(log, 15)
            );
        }
        Ok(())
    }

    /// Waits for the child's exit and its `RESULT {json}` line on stdout (piped), at most
    /// until `deadline`.
    pub fn result<T: serde::de::DeserializeOwned>(
        &mut self,
        log: &Path,
        deadline: Instant,
    ) -> anyhow::Result<T> {
        let lines = self.lines()?;
        let mut found = None;
        loop {
            match lines.recv_timeout(Duration::from_millis(20)) {
                Ok(l) => {
                    if let Some(json) = l.strip_prefix(RESULT) {
                        found = Some(serde_json::from_str(json)?);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if stopped() {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("{}: no result by the deadline", self.name);
            }
        }
        let st = self.child.wait()?;
        match found {
            Some(r) if st.success() => Ok(r),
            _ => bail!(
                "{} failed ({st}); last lines of {}:\n{}",
                self.name,
                log.display(),
                tail(log, 15)
            ),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// What an inner run prints before its JSON outcome.
pub const RESULT: &str = "RESULT ";

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

// --- /proc

/// utime + stime of all threads, dead ones included (10 ms resolution).
pub fn cpu_secs(pid: i32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = s
        .rfind(')')
        .and_then(|i| s.get(i + 2..))
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(f.get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: i32, key: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("{key} not in /proc/{pid}/status"))
}

/// Resets VmHWM to the current RSS (`/proc/PID/clear_refs`, value 5).
pub fn reset_peak_rss(pid: i32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

/// Non-idle CPU time of the whole machine, from /proc/stat.
pub fn machine_busy_secs() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let cpu = s
        .lines()
        .next()
        .ok_or_else(|| anyhow!("empty /proc/stat"))?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let all: u64 = v.iter().take(8).sum();
    let idle = v.get(3).unwrap_or(&0) + v.get(4).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(all.saturating_sub(idle) as f64 / hz)
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

/// `/proc/PID/net/netstat` of the namespace PID is in, as "TcpExt.Name" → value.
pub fn netstat(pid: i32) -> anyhow::Result<BTreeMap<String, u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/net/netstat"))?;
    let mut m = BTreeMap::new();
    let lines: Vec<&str> = s.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut n = names.split_whitespace();
        let mut v = values.split_whitespace();
        let Some(group) = n.next().map(|g| g.trim_end_matches(':').to_string()) else {
            continue;
        };
        v.next();
        for (name, value) in n.zip(v) {
            if let Ok(value) = value.parse() {
                m.insert(format!("{group}.{name}"), value);
            }
        }
    }
    Ok(m)
}

/// A socket listening on `port` in PID's namespace (IPv4 or IPv6, which covers both).
pub fn listening(pid: i32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|t| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).is_ok_and(|s| {
            s.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
            })
        })
    })
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

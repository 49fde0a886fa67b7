//! Processes: finding programs, running CLIs with a deadline, polling, the table of daemons a
//! test started (stopped by process group, only those, when the test ends, even on panic), a
//! bench's child process ([`Proc`]), and `/proc` readers (CPU time, RSS, sockets).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use super::bench::stopped;
use super::netns::netns_pids;

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(300);
/// A CLI command that takes longer than this is treated as failed (a stopped daemon).
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this process runs as root (its effective uid, from /proc/self/status).
pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// Fails the test unless it runs as root; `why` says what needs it and how to run it.
pub fn require_root(why: &str) {
    assert!(is_root(), "{why}");
}

/// Fails the test when a program the test needs is not installed.
pub fn require_binaries(paths: &[PathBuf]) {
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "missing peer binaries {missing:?}: install them with `sudo bash tests/peers/install.sh`"
    );
}

/// A binary looked up in the usual system directories (tests may run with a short PATH).
pub fn system_bin(name: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/frr"] {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("/usr/sbin").join(name)
}

/// Index of a process in its [`Procs`] table.
pub type ProcId = usize;

struct Tracked {
    name: String,
    child: Child,
    log: PathBuf,
    /// Reaped (exited or killed and waited for).
    done: bool,
}

/// The daemons one test started (each as `ip netns exec NS PROGRAM ...` in a process group
/// of its own, so signals reach all of its processes and nothing else), its work directory
/// and its progress log.
pub struct Procs {
    pub id: String,
    pub dir: PathBuf,
    procs: RefCell<Vec<Tracked>>,
    started: Instant,
}

impl Procs {
    pub fn new(id: &str, dir: PathBuf) -> Procs {
        Procs {
            id: id.to_string(),
            dir,
            procs: RefCell::new(Vec::new()),
            started: Instant::now(),
        }
    }

    /// Prints a timestamped progress line (shown by `cargo test -- --nocapture` and on failure).
    pub fn log(&self, msg: &str) {
        eprintln!(
            "[{} +{:.1}s] {msg}",
            self.id,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Writes a file in the work directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        }
        fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// Starts `program args` in namespace `ns`, its stdout and stderr appended to
    /// `<dir>/<name>.log`, in a new process group.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        &self,
        name: &str,
        ns: &str,
        program: &Path,
        args: &[S],
    ) -> ProcId {
        self.spawn_at(name, Some(ns), program, args)
    }

    /// [`Procs::spawn`] in namespace `ns`, or in the test's own with `None`.
    pub fn spawn_at<S: AsRef<std::ffi::OsStr>>(
        &self,
        name: &str,
        ns: Option<&str>,
        program: &Path,
        args: &[S],
    ) -> ProcId {
        let log = self.dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log file");
        // `ip netns exec` enters the namespace and execs the program: the pid is the daemon's.
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new(system_bin("ip"));
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        self.log(&format!(
            "started {name} (pid {}) in {}: {} {}",
            child.id(),
            ns.unwrap_or("the test's namespace"),
            program.display(),
            shown.join(" ")
        ));
        let mut procs = self.procs.borrow_mut();
        procs.push(Tracked {
            name: name.to_string(),
            child,
            log,
            done: false,
        });
        procs.len() - 1
    }

    /// Whether the process is still running (reaps it when it has exited).
    pub fn alive(&self, p: ProcId) -> bool {
        let mut procs = self.procs.borrow_mut();
        let pr = &mut procs[p];
        if pr.done {
            return false;
        }
        match pr.child.try_wait() {
            Ok(Some(_)) | Err(_) => {
                pr.done = true;
                false
            }
            Ok(None) => true,
        }
    }

    /// Sends `sig` (a name: STOP, CONT, TERM, KILL) to the process's whole group.
    pub fn signal(&self, p: ProcId, sig: &str) {
        let (pid, name) = {
            let procs = self.procs.borrow();
            (procs[p].child.id(), procs[p].name.clone())
        };
        if !self.alive(p) {
            self.log(&format!("not sending SIG{sig} to {name}: it has exited"));
            return;
        }
        self.log(&format!("SIG{sig} to {name} (process group {pid})"));
        signal_group(pid, sig);
    }

    /// SIGKILLs the process group and reaps the process.
    pub fn kill(&self, p: ProcId) {
        self.signal(p, "KILL");
        let mut procs = self.procs.borrow_mut();
        let _ = procs[p].child.wait();
        procs[p].done = true;
    }

    /// The file a process's stdout and stderr go to.
    pub fn log_path(&self, p: ProcId) -> PathBuf {
        self.procs.borrow()[p].log.clone()
    }

    /// Whether a process's log contains `needle`.
    pub fn log_contains(&self, p: ProcId, needle: &str) -> bool {
        let path = self.procs.borrow()[p].log.clone();
        fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
    }

    /// Fails the test with `msg` and what every process logged lately.
    pub fn fail(&self, msg: &str) -> ! {
        let mut report = format!("[{}] FAILED: {msg}\n", self.id);
        let procs: Vec<(String, PathBuf)> = self
            .procs
            .borrow()
            .iter()
            .map(|p| (p.name.clone(), p.log.clone()))
            .collect();
        let mut seen = Vec::new();
        for (name, log) in procs {
            if seen.contains(&log) {
                continue;
            }
            let _ = write!(
                report,
                "\n--- last lines of {} ({name}) ---\n{}",
                log.display(),
                tail_file(&log, 25)
            );
            seen.push(log);
        }
        let _ = write!(
            report,
            "\n(configs and full logs in {})",
            self.dir.display()
        );
        panic!("{report}");
    }

    /// The value, or a test failure with diagnostics.
    pub fn must<T>(&self, r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| self.fail(&e))
    }

    /// Stops every process still running: SIGTERM (after SIGCONT, for stopped ones), up to
    /// 3 s to exit, then SIGKILL to the group; then SIGKILL to anything left in `namespaces`
    /// (helpers that left the process group: they descend from what this test started).
    pub fn stop_all(&mut self, namespaces: &[String]) {
        let procs = self.procs.get_mut();
        for p in procs.iter_mut().filter(|p| !p.done) {
            if let Ok(None) = p.child.try_wait() {
                signal_group(p.child.id(), "CONT");
                signal_group(p.child.id(), "TERM");
            } else {
                p.done = true;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && procs
                .iter_mut()
                .any(|p| !p.done && matches!(p.child.try_wait(), Ok(None)))
        {
            sleep(Duration::from_millis(50));
        }
        for p in procs.iter_mut().filter(|p| !p.done) {
            if let Ok(None) = p.child.try_wait() {
                eprintln!(
                    "[{}] {} (pid {}) ignored SIGTERM: SIGKILL",
                    self.id,
                    p.name,
                    p.child.id()
                );
            }
            signal_group(p.child.id(), "KILL");
            let _ = p.child.wait();
            p.done = true;
        }
        for ns in namespaces {
            for pid in netns_pids(ns) {
                eprintln!(
                    "[{}] pid {pid} still in {ns} after its daemon stopped: SIGKILL",
                    self.id
                );
                let _ = Command::new(system_bin("kill"))
                    .args(["-s", "KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Test `id`'s work directory `<base>/<id>.<pid>`, new and empty, after removing those of runs
/// of `id` that are gone. Both are world-readable: daemons that drop privileges (FRR) must
/// reach their files.
pub fn work_dir(base: &Path, id: &str) -> PathBuf {
    clear_stale_dirs(base, id);
    let dir = base.join(format!("{id}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    for d in [base, &dir] {
        let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
    }
    dir
}

/// Removes the work directories `<base>/<id>.<pid>` of runs whose process has exited.
pub fn clear_stale_dirs(base: &Path, id: &str) {
    if let Ok(entries) = fs::read_dir(base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(id).and_then(|r| r.strip_prefix('.'))
                && pid_gone(pid)
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Whether `pid` is a number and no such process runs.
pub fn pid_gone(pid: &str) -> bool {
    pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists()
}

/// Sends `sig` (a name: STOP, CONT, TERM, KILL) to process group `pgid`.
pub fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new(system_bin("kill"))
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Runs a setup command that must succeed.
pub fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn tail_file(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read: {e})\n"));
    let lines: Vec<&str> = text.lines().collect();
    let mut s = lines[lines.len().saturating_sub(n)..].join("\n");
    s.push('\n');
    s
}

/// Runs a CLI command (in namespace `ns` when given) and returns its stdout; an error holds
/// the exit status and stderr. Killed after [`CLI_TIMEOUT`] (e.g. talking to a stopped daemon).
pub fn cli<S: AsRef<std::ffi::OsStr>>(
    ns: Option<&str>,
    program: &Path,
    args: &[S],
) -> Result<String, String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new(system_bin("ip"));
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let shown = format!("{} {}", program.display(), shown.join(" "));
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown}: no answer within {CLI_TIMEOUT:?}"));
            }
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{shown}: {status}: {}{}", err.trim(), out.trim()))
    }
}

/// Polls `probe` until it returns `Ok`, for at most `timeout`. The error names `what` and
/// the last thing the probe saw.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!(
                    "{what}: not within {} s; last seen: {last}",
                    timeout.as_secs()
                ));
            }
            Err(_) => sleep(POLL),
        }
    }
}

/// Polls `probe` for `duration` and fails at the first `Err`: the condition must hold the
/// whole time.
pub fn holds_for(
    what: &str,
    duration: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < duration {
        probe().map_err(|e| {
            format!(
                "{what}: broken after {:.1} s: {e}",
                start.elapsed().as_secs_f64()
            )
        })?;
        sleep(POLL);
    }
    Ok(())
}

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

    /// The program's name (its first argument).
    pub fn name(&self) -> &str {
        &self.name
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
                tail_file(log, 15)
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
                tail_file(log, 15)
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

/// The time of a `clock_gettime` clock (CLOCK_MONOTONIC, this process's or this thread's CPU
/// time).
pub fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

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

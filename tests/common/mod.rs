//! What the namespace-based test crates (tests/interop.rs, tests/topology.rs) share: finding
//! programs, running CLIs with a deadline, polling, and a table of the daemons a test started
//! that stops exactly those (by process group) when the test ends, even on panic.
//!
//! Each crate uses a part of it, so unused items are expected per crate.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(300);
/// A CLI command that takes longer than this is treated as failed (a stopped daemon).
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails the test unless it runs as root; `why` says what needs it and how to run it.
pub fn require_root(why: &str) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(euid, "0", "{why}");
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

/// Where `tests/peers/install.sh` unpacks BIRD 1.6 (`WREN_BIRD16_DIR` overrides).
pub fn bird16_dir() -> PathBuf {
    std::env::var_os("WREN_BIRD16_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/bird16/usr/sbin")
        })
}

pub fn frr_zebra() -> PathBuf {
    PathBuf::from("/usr/lib/frr/zebra")
}

pub fn frr_bgpd() -> PathBuf {
    PathBuf::from("/usr/lib/frr/bgpd")
}

/// Arguments for an FRR daemon (zebra or bgpd) with its own zserv socket, vty folder and pid
/// file under `dir` (owned by user frr: FRR refuses to run as root), logging to
/// `dir/<daemon>.out`, and no vty TCP port.
pub fn frr_args(daemon: &str, conf: &Path, dir: &Path) -> Vec<String> {
    chown_frr(dir);
    let d = dir.display();
    [
        "-u".to_string(),
        "frr".into(),
        "-g".into(),
        "frr".into(),
        "-f".into(),
        conf.display().to_string(),
        "-z".into(),
        format!("{d}/zserv.api"),
        "--vty_socket".into(),
        d.to_string(),
        "-i".into(),
        format!("{d}/{daemon}.pid"),
        "-P".into(),
        "0".into(),
        "--log".into(),
        format!("file:{d}/{daemon}.out"),
    ]
    .into()
}

fn chown_frr(dir: &Path) {
    let _ = Command::new(system_bin("chown"))
        .args(["-R", "frr:frr"])
        .arg(dir)
        .status();
}

/// Index of a process in its [`Procs`] table.
pub type ProcId = usize;

struct Proc {
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
    procs: RefCell<Vec<Proc>>,
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
        let log = self.dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log file");
        // `ip netns exec` enters the namespace and execs the program: the pid is the daemon's.
        let child = Command::new(system_bin("ip"))
            .args(["netns", "exec", ns])
            .arg(program)
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
            "started {name} (pid {}) in {ns}: {} {}",
            child.id(),
            program.display(),
            shown.join(" ")
        ));
        let mut procs = self.procs.borrow_mut();
        procs.push(Proc {
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

/// Deletes namespace `ns` when nothing runs in it (a leftover of a killed run).
pub fn del_netns_if_empty(ns: &str) {
    if netns_pids(ns).is_empty() {
        del_netns(ns);
    }
}

pub fn del_netns(ns: &str) {
    let _ = Command::new(system_bin("ip"))
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Every network namespace name under /run/netns.
pub fn netns_names() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A namespace of this very run that exists already: removed when empty; fails when in use.
pub fn clear_stale_namespace(ns: &str) {
    if !Path::new("/run/netns").join(ns).exists() {
        return;
    }
    let pids = netns_pids(ns);
    assert!(
        pids.is_empty(),
        "network namespace {ns} exists with processes {pids:?} in it: is another run of this \
         test going on? (if not, stop them and run `ip netns del {ns}`)"
    );
    ip(&["netns", "del", ns]);
}

pub fn netns_pids(ns: &str) -> Vec<u32> {
    Command::new(system_bin("ip"))
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new(system_bin("kill"))
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Runs `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    run_ok(Command::new(system_bin("ip")).args(args));
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

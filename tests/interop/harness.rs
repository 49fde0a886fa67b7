//! The test bench: two network namespaces joined by a veth, daemons started in them and
//! tracked by pid, polling with deadlines, and a guard that cleans up even when a test panics.
//!
//! Each test gets a [`Lab`]: namespaces `wi-<pid>-<id>-a` (wrend, 198.51.100.1/24 and
//! 2001:db8::1/64 on `wr0`) and `wi-<pid>-<id>-b` (the peer, .2 and ::2 on `pe0`), and a work
//! directory `/tmp/wren-interop/<id>.<pid>/` with every config and log (kept after the test,
//! removed by the next run once the process `<pid>` is gone). `<pid>` is the test process's,
//! so concurrent `cargo test` runs (two checkouts) do not collide. Every daemon runs as `ip netns exec NS PROGRAM ...` in a process group
//! of its own, so signals (SIGSTOP, SIGKILL) reach all of its processes and nothing else.
//! Dropping the lab stops exactly those processes and deletes the namespaces.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const WREN_V4: &str = "198.51.100.1";
pub const PEER_V4: &str = "198.51.100.2";
pub const WREN_V6: &str = "2001:db8::1";
pub const PEER_V6: &str = "2001:db8::2";
/// wrend's AS; the iBGP peers (BIRD, FRR) use it too.
pub const WREN_ASN: u32 = 64512;
/// What wrend originates (a Calico node's blocks) and what every peer originates.
pub const WREN_NET4: &str = "203.0.113.0/26";
pub const WREN_NET6: &str = "2001:db8:1::/122";
pub const PEER_NET4: &str = "203.0.113.64/26";
pub const PEER_NET6: &str = "2001:db8:1::40/122";

/// How long a session may take to come up (connect delays, retries, a daemon starting).
pub const ESTABLISH: Duration = Duration::from_secs(30);
/// How long routes may take to show up once the session is up.
pub const CONVERGE: Duration = Duration::from_secs(20);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(300);
/// A CLI command that takes longer than this is treated as failed (a stopped daemon).
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// The transport (and only address family) of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    pub fn wren(self) -> &'static str {
        match self {
            Fam::V4 => WREN_V4,
            Fam::V6 => WREN_V6,
        }
    }
    pub fn peer(self) -> &'static str {
        match self {
            Fam::V4 => PEER_V4,
            Fam::V6 => PEER_V6,
        }
    }
    pub fn wren_net(self) -> &'static str {
        match self {
            Fam::V4 => WREN_NET4,
            Fam::V6 => WREN_NET6,
        }
    }
    pub fn peer_net(self) -> &'static str {
        match self {
            Fam::V4 => PEER_NET4,
            Fam::V6 => PEER_NET6,
        }
    }
    /// The address family as the peers' CLIs name it.
    pub fn afi(self) -> &'static str {
        match self {
            Fam::V4 => "ipv4",
            Fam::V6 => "ipv6",
        }
    }
}

/// Fails the test unless it runs as root (namespaces, veths, TCP MD5, daemons on port 179).
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the interop tests need root (network namespaces, veth, TCP MD5, BGP on port 179): \
         run `sudo cargo test --test interop`, after `sudo bash tests/peers/install.sh`"
    );
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

/// Index of a process in its lab.
pub type ProcId = usize;

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Reaped (exited or killed and waited for).
    done: bool,
}

/// One test's namespaces, directory and processes.
pub struct Lab {
    pub id: String,
    /// wrend's namespace ("a") and the peer's ("b").
    pub ns_wren: String,
    pub ns_peer: String,
    pub dir: PathBuf,
    procs: RefCell<Vec<Proc>>,
    started: Instant,
}

impl Lab {
    /// Creates the namespaces and the veth between them. `id` must be unique per test.
    pub fn new(id: &str, binaries: &[PathBuf]) -> Lab {
        require_root();
        let mut need = vec![system_bin("ip"), system_bin("kill")];
        need.extend_from_slice(binaries);
        require_binaries(&need);
        let base = std::env::var_os("WREN_INTEROP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/wren-interop"));
        // The test process's pid keeps concurrent runs (two checkouts, two users) apart.
        let run = std::process::id();
        clear_stale_runs(&base, id);
        let dir = base.join(format!("{id}.{run}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // Daemons that drop privileges (FRR) must reach their files.
        for d in [&base, &dir] {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
        }
        let lab = Lab {
            id: id.to_string(),
            ns_wren: format!("wi-{run}-{id}-a"),
            ns_peer: format!("wi-{run}-{id}-b"),
            dir,
            procs: RefCell::new(Vec::new()),
            started: Instant::now(),
        };
        lab.log(&format!("work directory {}", lab.dir.display()));
        for ns in [&lab.ns_wren, &lab.ns_peer] {
            clear_stale_namespace(ns);
            ip(&["netns", "add", ns]);
            let sysctl = [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.forwarding=0",
            ];
            for s in sysctl {
                run_ok(
                    Command::new(system_bin("ip"))
                        .args(["netns", "exec", ns])
                        .args(["sysctl", "-qw", s]),
                );
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b) = (&lab.ns_wren, &lab.ns_peer);
        for cmd in [
            format!("link add wr0 netns {a} type veth peer name pe0 netns {b}"),
            format!("-n {a} addr add 198.51.100.1/24 dev wr0"),
            format!("-n {b} addr add 198.51.100.2/24 dev pe0"),
            format!("-n {a} addr add 2001:db8::1/64 dev wr0 nodad"),
            format!("-n {b} addr add 2001:db8::2/64 dev pe0 nodad"),
            format!("-n {a} link set wr0 up"),
            format!("-n {b} link set pe0 up"),
        ] {
            ip(&cmd.split_whitespace().collect::<Vec<_>>());
        }
        lab
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
    pub fn spawn(&self, name: &str, ns: &str, program: &Path, args: &[&str]) -> ProcId {
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
        self.log(&format!(
            "started {name} (pid {}) in {ns}: {} {}",
            child.id(),
            program.display(),
            args.join(" ")
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
}

impl Drop for Lab {
    fn drop(&mut self) {
        let procs = self.procs.get_mut();
        // Ask politely (a stopped process must be continued to act on SIGTERM).
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
            // The group too: helpers it forked that outlived it.
            signal_group(p.child.id(), "KILL");
            let _ = p.child.wait();
            p.done = true;
        }
        // Whatever is still inside our own namespaces descends from what this lab started
        // (e.g. a daemon's helper that left the process group).
        for ns in [&self.ns_wren, &self.ns_peer] {
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
        for ns in [&self.ns_wren, &self.ns_peer] {
            let _ = Command::new(system_bin("ip"))
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes what runs of test `id` that are gone (their process has exited) left behind:
/// work directories `<base>/<id>.<pid>` and empty namespaces `wi-<pid>-<id>-a|b`.
fn clear_stale_runs(base: &Path, id: &str) {
    let gone = |pid: &str| pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists();
    if let Ok(entries) = fs::read_dir(base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(id).and_then(|r| r.strip_prefix('.'))
                && gone(pid)
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("wi-") else {
                continue;
            };
            let Some((pid, test)) = rest.split_once('-') else {
                continue;
            };
            let ours = test
                .strip_suffix("-a")
                .or_else(|| test.strip_suffix("-b"))
                .is_some_and(|t| t == id);
            if ours && gone(pid) && netns_pids(&name).is_empty() {
                let _ = Command::new(system_bin("ip"))
                    .args(["netns", "del", &name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A namespace of this very run that exists already: removed when empty; fails when in use.
fn clear_stale_namespace(ns: &str) {
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

fn netns_pids(ns: &str) -> Vec<u32> {
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

fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new(system_bin("kill"))
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn ip(args: &[&str]) {
    run_ok(Command::new(system_bin("ip")).args(args));
}

/// Runs a setup command that must succeed.
fn run_ok(cmd: &mut Command) {
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

fn tail_file(path: &Path, n: usize) -> String {
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
pub fn cli(ns: Option<&str>, program: &Path, args: &[&str]) -> Result<String, String> {
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
    let shown = format!("{} {}", program.display(), args.join(" "));
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

// ------------------------------------------------------------------ wrend

/// How wrend is configured toward its one peer.
#[derive(Clone, Debug)]
pub struct WrenConf {
    pub fam: Fam,
    pub peer_asn: u32,
    pub passive: bool,
    pub password: Option<String>,
    pub hold_time: u16,
    pub graceful_restart: bool,
}

impl WrenConf {
    pub fn new(fam: Fam, peer_asn: u32) -> WrenConf {
        WrenConf {
            fam,
            peer_asn,
            passive: false,
            password: None,
            hold_time: 9,
            graceful_restart: true,
        }
    }

    /// The protocol name wrend shows for the peer (Calico's mesh naming).
    pub fn peer_name(&self) -> String {
        let flat: String = self
            .fam
            .peer()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("Mesh_{flat}")
    }

    pub fn toml(&self) -> String {
        let mut peer = format!(
            "[[peer]]\nname = \"{}\"\naddress = \"{}\"\nasn = {}\nsource_address = \"{}\"\n\
             passive = {}\ngraceful_restart = {}\n",
            self.peer_name(),
            self.fam.peer(),
            self.peer_asn,
            self.fam.wren(),
            self.passive,
            self.graceful_restart,
        );
        if let Some(pw) = &self.password {
            let _ = writeln!(peer, "password = \"{pw}\"");
        }
        format!(
            "router_id = \"{WREN_V4}\"\nasn = {WREN_ASN}\n\
             originate = [\"{WREN_NET4}\", \"{WREN_NET6}\"]\n\n\
             [listen]\naddresses = [\"::\"]\nport = 179\n\n\
             [defaults]\nhold_time = {}\nconnect_delay = 1\nconnect_retry = 3\n\
             error_wait = [1, 5]\nrestart_time = 120\n\n{peer}",
            self.hold_time
        )
    }
}

/// A running (or killed) wrend.
pub struct Wren {
    pub conf: WrenConf,
    pub config: PathBuf,
    pub ctl: PathBuf,
    pub proc: ProcId,
    pub name: String,
}

/// One row of wrend's `show protocols`.
#[derive(Debug, Clone)]
pub struct ProtoRow {
    /// `up` or `start`.
    pub state: String,
    /// The BGP state word (`Established`, `Active`, ...) and any error after it.
    pub info: String,
    pub raw: String,
}

impl ProtoRow {
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// One route row of wrend's `show route`.
#[derive(Debug, Clone)]
pub struct WrenRoute {
    pub via: String,
    pub proto: String,
    pub stale: bool,
    pub raw: String,
}

pub fn wren_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrend"))
}

/// BIRD 2's client, which speaks to wrend's control socket too.
pub fn birdc_bin() -> PathBuf {
    system_bin("birdc")
}

impl Lab {
    /// Writes wrend's config and starts it; returns once its control socket answers.
    pub fn start_wren(&self, conf: WrenConf) -> Wren {
        let config = self.write("wren.toml", &conf.toml());
        let mut w = Wren {
            name: conf.peer_name(),
            conf,
            config,
            ctl: self.dir.join("wren.ctl"),
            proc: 0,
        };
        self.run_wren(&mut w, false);
        w
    }

    /// Starts wrend again (after it was killed), with `-R` when `restarting`.
    pub fn restart_wren(&self, w: &mut Wren, restarting: bool) {
        assert!(!self.alive(w.proc), "wrend is still running");
        self.run_wren(w, restarting);
    }

    fn run_wren(&self, w: &mut Wren, restarting: bool) {
        let config = w.config.display().to_string();
        let ctl = w.ctl.display().to_string();
        let mut args = vec!["-c", config.as_str(), "-s", ctl.as_str()];
        if restarting {
            args.push("-R");
        }
        w.proc = self.spawn("wrend", &self.ns_wren, &wren_bin(), &args);
        let p = w.proc;
        let r = wait_until("wrend's control socket answers", ESTABLISH, || {
            if !self.alive(p) {
                return Ok(Err("wrend exited".to_string()));
            }
            self.wren_cmd(w, "show status").map(Ok)
        });
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => self.fail(&format!("starting wrend: {e}")),
        }
    }

    /// Runs a command on wrend's control socket with `birdc`.
    pub fn wren_cmd(&self, w: &Wren, cmd: &str) -> Result<String, String> {
        let ctl = w.ctl.display().to_string();
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        let out = cli(None, &birdc_bin(), &args)?;
        if out.contains("Unable to connect") {
            return Err(out.trim().to_string());
        }
        Ok(out)
    }

    /// wrend's `show protocols` row for its peer.
    pub fn wren_row(&self, w: &Wren) -> Result<ProtoRow, String> {
        let out = self.wren_cmd(w, "show protocols")?;
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(w.name.as_str()))
            .ok_or_else(|| format!("no row for {} in `show protocols`: {out:?}", w.name))?;
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 6 || t[1] != "BGP" {
            return Err(format!("malformed `show protocols` row {line:?}"));
        }
        Ok(ProtoRow {
            state: t[3].to_string(),
            info: t[5..].join(" "),
            raw: line.to_string(),
        })
    }

    /// Ok when wrend shows the session Established (state `up`).
    pub fn wren_established(&self, w: &Wren) -> Result<(), String> {
        let row = self.wren_row(w)?;
        if row.established() {
            Ok(())
        } else {
            Err(format!("wrend: {:?}", row.raw))
        }
    }

    /// The row of wrend's `show route` for `prefix`, if any.
    pub fn wren_route(&self, w: &Wren, prefix: &str) -> Result<Option<WrenRoute>, String> {
        let out = self.wren_cmd(w, "show route")?;
        for line in out.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.first() != Some(&prefix) || t.get(1) != Some(&"via") {
                continue;
            }
            let via = t.get(2).unwrap_or(&"").to_string();
            let proto = t.get(3).unwrap_or(&"").trim_start_matches('[').to_string();
            let stale = t.iter().any(|x| x.starts_with('(') && x.contains("s/"));
            return Ok(Some(WrenRoute {
                via,
                proto,
                stale,
                raw: line.to_string(),
            }));
        }
        Ok(None)
    }

    /// Ok when wrend has the peer's prefix from the peer, via the peer's address, fresh
    /// (`Some(false)`), stale (`Some(true)`) or either (`None`).
    pub fn wren_has_peer_route(
        &self,
        w: &Wren,
        prefix: &str,
        stale: Option<bool>,
    ) -> Result<WrenRoute, String> {
        let r = self
            .wren_route(w, prefix)?
            .ok_or_else(|| format!("{prefix} not in wrend's `show route`"))?;
        let want_via = w.conf.fam.peer();
        if r.via != want_via || r.proto != w.name {
            return Err(format!(
                "wrend's row for {prefix} is {:?}, expected via {want_via} from {}",
                r.raw, w.name
            ));
        }
        match stale {
            Some(s) if s != r.stale => Err(format!(
                "wrend's row for {prefix} is {:?}: expected {}",
                r.raw,
                if s { "stale (100s/0)" } else { "not stale" }
            )),
            _ => Ok(r),
        }
    }

    /// Ok when wrend's `show route` has no route for `prefix`.
    pub fn wren_lacks_route(&self, w: &Wren, prefix: &str) -> Result<(), String> {
        match self.wren_route(w, prefix)? {
            None => Ok(()),
            Some(r) => Err(format!("wrend still has {:?}", r.raw)),
        }
    }
}

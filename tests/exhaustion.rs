//! Resource exhaustion and operator safety against real wrend processes on loopback: a
//! daemon out of file descriptors neither spins nor floods its log, still answers on its
//! control socket and takes its peer back once the attack ends; connections from a peer's
//! address cannot pile up; a second daemon never takes a live daemon's control socket.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use wren::demo::Node;

mod harness;
use harness::proc::wait_until;

const PORT: u16 = 1179;
/// How often each node retries a session (`connect_retry`), in seconds.
const CONNECT_RETRY: u64 = 2;

/// A test's work directory, removed when the test passes.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("wren-exhaustion-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A node at 127.0.0.`me` with one iBGP peer at 127.0.0.`peer`.
fn config(me: u8, peer: u8, extra: &str) -> String {
    format!(
        "router_id = \"127.0.0.{me}\"\nasn = 64512\n{extra}\n\
         [kernel]\nenabled = false\n[listen]\naddresses = [\"127.0.0.{me}\"]\nport = {PORT}\n\
         [defaults]\nhold_time = 9\nconnect_delay = 1\nconnect_retry = {CONNECT_RETRY}\n\
         source_address = \"127.0.0.{me}\"\n\
         [[peer]]\nname = \"Mesh_127_0_0_{peer}\"\naddress = \"127.0.0.{peer}\"\nasn = 64512\n\
         port = {PORT}\n"
    )
}

/// Node `a` at 127.0.0.`me` as [`config`] makes it, with its metrics endpoint on port 9325.
fn with_metrics(dir: &Dir, me: u8, peer: u8) -> (Node, SocketAddr) {
    let metrics = SocketAddr::new([127, 0, 0, me].into(), 9325);
    let conf = config(me, peer, &format!("metrics = \"{metrics}\""));
    let a = Node::spawn(wrend(), &dir.0, "a", &conf).expect("start a");
    (a, metrics)
}

fn wrend() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wrend"))
}

fn established(node: &Node) -> Result<(), String> {
    let s = node.ask("show protocols").ok_or("no answer")?;
    if s.contains("Established") {
        Ok(())
    } else {
        Err(s)
    }
}

/// Waits up to `secs` for `probe`, failing the test with what it last saw.
fn until(what: &str, secs: u64, probe: impl FnMut() -> Result<(), String>) {
    wait_until(what, Duration::from_secs(secs), probe).unwrap_or_else(|e| panic!("{e}"));
}

fn answers(node: &Node) -> Result<(), String> {
    node.ask("show status")
        .map(|_| ())
        .ok_or_else(|| format!("{} does not answer", node.name))
}

/// A TCP connection to `to` from address `from`; `None` when it does not complete in time.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> Option<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::new(from.into(), 0).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_millis(500))
        .ok()?;
    Some(s.into())
}

/// Whether the other side closed `s` (EOF or reset) within `wait`; bytes it sent are read
/// and skipped (an OPEN on a connection the peer task kept).
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    let end = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// User plus system CPU time of a process, in clock ticks (USER_HZ, 100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn log_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Out of file descriptors under idle connections to the metrics port and to the BGP port
/// (from the peer's address and from an unknown one), wrend waits instead of spinning: its
/// CPU time and log stay small, `show status` answers, and a session reset during the attack
/// comes back within the connect-retry time once the attacker lets go.
#[test]
fn out_of_descriptors_no_spin_and_recovery() {
    let dir = Dir::new("fds");
    let (a, metrics) = with_metrics(&dir, 160, 161);
    let b = Node::spawn(wrend(), &dir.0, "b", &config(161, 160, "")).expect("start b");
    until("session up", 20, || established(&a));

    // What it holds now, and a few more: the attack takes the rest.
    let pid = a.pid();
    let limit = open_fds(pid) + 6;
    let ok = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "prlimit failed");
    let log = dir.0.join("a.log");
    let (lines_before, cpu_before) = (log_lines(&log), cpu_ticks(pid));

    let bgp: SocketAddr = SocketAddr::new([127, 0, 0, 160].into(), PORT);
    let mut held: Vec<TcpStream> = Vec::new();
    held.extend((0..64).filter_map(|_| connect_from([127, 0, 0, 170].into(), metrics)));
    held.extend((0..200).filter_map(|_| connect_from([127, 0, 0, 161].into(), bgp)));
    held.extend((0..50).filter_map(|_| connect_from([127, 0, 0, 169].into(), bgp)));
    assert!(held.len() > 250, "only {} connections made", held.len());
    until("EMFILE", 5, || {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        if s.contains("Too many open files") {
            Ok(())
        } else {
            Err("no accept error logged".to_string())
        }
    });

    // The peer resets its session while this node cannot take a connection.
    assert!(
        b.ask("restart Mesh_127_0_0_160")
            .is_some_and(|r| r.contains("restarted"))
    );
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    assert!(
        cpu < wall / 5.0,
        "wrend used {cpu:.2} s of CPU in {wall:.1} s out of descriptors"
    );
    let status = a.ask("show status");
    assert!(
        status
            .as_deref()
            .is_some_and(|s| s.contains("Daemon is up and running")),
        "show status while out of descriptors: {status:?}"
    );
    let grown = log_lines(&log) - lines_before;
    assert!(grown <= 20, "{grown} log lines during the attack");

    drop(held);
    let start = Instant::now();
    // One retry interval, plus the accept loop's longest wait (1 s), the connect delay (1 s)
    // and the OPEN exchange.
    until("session back", CONNECT_RETRY + 3, || established(&a));
    eprintln!(
        "session back {:.1} s after the attack ended",
        start.elapsed().as_secs_f64()
    );
}

/// Of 50 connections from an established peer's address, one waits for its OPEN (it may
/// be the peer's, colliding) and the rest are closed at once, as BIRD does; connections from
/// an unknown address are all closed.
#[test]
fn one_pending_connection_per_peer() {
    let dir = Dir::new("pending");
    let a = Node::spawn(wrend(), &dir.0, "a", &config(162, 163, "")).expect("start a");
    let _b = Node::spawn(wrend(), &dir.0, "b", &config(163, 162, "")).expect("start b");
    until("session up", 20, || established(&a));
    let to = SocketAddr::new([127, 0, 0, 162].into(), PORT);

    let conns: Vec<TcpStream> = (0..50)
        .filter_map(|_| connect_from([127, 0, 0, 163].into(), to))
        .collect();
    assert_eq!(conns.len(), 50);
    let start = Instant::now();
    let open = conns
        .iter()
        .filter(|c| !closed_within(c, Duration::from_millis(1000)))
        .count();
    assert_eq!(open, 1, "connections left open from the peer's address");
    assert!(start.elapsed() < Duration::from_secs(5));
    established(&a).unwrap_or_else(|e| panic!("session lost: {e}"));

    let unknown: Vec<TcpStream> = (0..10)
        .filter_map(|_| connect_from([127, 0, 0, 168].into(), to))
        .collect();
    assert_eq!(unknown.len(), 10);
    assert!(
        unknown
            .iter()
            .all(|c| closed_within(c, Duration::from_millis(1000)))
    );
}

/// A second wrend on a live daemon's control socket refuses to start and leaves the socket
/// alone; a stale socket file is replaced; a daemon that exits removes only its own socket.
#[test]
fn control_socket_not_stolen() {
    let dir = Dir::new("socket");
    let mut a = Node::spawn(wrend(), &dir.0, "a", &config(164, 165, "")).expect("start a");
    until("a answers", 10, || answers(&a));

    // Same socket, another address: only the socket is shared.
    let conf = dir.0.join("second.toml");
    std::fs::write(&conf, config(166, 167, "")).expect("write config");
    let out = Command::new(wrend())
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&a.socket)
        .stdin(Stdio::null())
        .output()
        .expect("run a second wrend");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second wrend started: {err}");
    let want = format!("another instance is running on {}", a.socket.display());
    assert!(err.contains(&want), "{err}");
    assert!(a.ask("show status").is_some(), "a lost its socket");

    // A daemon killed outright leaves its socket file: the next one replaces it.
    a.kill();
    assert!(a.socket.exists());
    let b = Node::spawn(wrend(), &dir.0, "a", &config(164, 165, "")).expect("start b");
    until("b answers on the stale path", 10, || answers(&b));

    // b's socket file is removed by hand and c binds the path anew; b's exit leaves c's.
    std::fs::remove_file(&b.socket).expect("remove b's socket file");
    let c = Node::spawn(wrend(), &dir.0, "a", &config(166, 167, "")).expect("start c");
    until("c answers", 10, || answers(&c));
    let mut b = b;
    b.stop();
    assert!(
        c.ask("show status").is_some(),
        "b's exit removed c's socket"
    );
    drop(c);
}

/// At most 64 control clients at once: the 65th gets an error line and is closed; once the
/// others leave, clients are served again.
#[test]
fn control_clients_capped() {
    let dir = Dir::new("clients");
    let a = Node::spawn(wrend(), &dir.0, "a", &config(168, 169, "")).expect("start a");
    until("a answers", 10, || answers(&a));
    let first_line = |s: &mut UnixStream| -> String {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut out = Vec::new();
        let mut byte = [0u8];
        while let Ok(1) = s.read(&mut byte) {
            if byte[0] == b'\n' {
                break;
            }
            out.push(byte[0]);
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut idle: Vec<UnixStream> = Vec::new();
    for _ in 0..64 {
        let mut s = UnixStream::connect(&a.socket).expect("connect");
        assert!(first_line(&mut s).starts_with("0001 BIRD"));
        idle.push(s);
    }
    let mut extra = UnixStream::connect(&a.socket).expect("connect");
    assert_eq!(first_line(&mut extra), "8014 Too many clients");
    assert_eq!(first_line(&mut extra), "", "not closed");
    drop(idle);
    until("served again", 5, || answers(&a));
}

/// The metrics endpoint serves at most 16 connections: more are closed at once, and one that
/// sends no request is closed after the header-read timeout (5 s); scrapes work throughout.
#[test]
fn metrics_connections_bounded() {
    let dir = Dir::new("metrics");
    let (a, metrics) = with_metrics(&dir, 172, 173);
    until("a answers", 10, || answers(&a));
    let from: Ipv4Addr = [127, 0, 0, 1].into();
    let idle: Vec<TcpStream> = (0..16)
        .filter_map(|_| connect_from(from, metrics))
        .collect();
    assert_eq!(idle.len(), 16);
    // Let the endpoint take all sixteen before the seventeenth comes.
    std::thread::sleep(Duration::from_millis(300));
    let extra = connect_from(from, metrics).expect("connect");
    assert!(closed_within(&extra, Duration::from_secs(1)), "17th kept");
    let start = Instant::now();
    assert!(
        idle.iter()
            .all(|c| closed_within(c, Duration::from_secs(8))),
        "idle connections kept past the header timeout"
    );
    assert!(start.elapsed() > Duration::from_secs(3), "closed too soon");
    let mut s = connect_from(from, metrics).expect("connect");
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut reply = String::new();
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("\nwren_peers 1\n"), "{reply}");
}

//! Kernel route install and withdraw throughput: `sudo -E cargo bench --bench fib`.
//!
//! For each N (default 10k, 100k, 1M) and each method, a fresh network namespace
//! (`wfib-PID-K`) gets a veth pair, `wf0` (198.51.100.1/24, up) and `wf1` (up, no address),
//! so that `via 198.51.100.2` resolves through the connected subnet. This binary, re-executed
//! in it with `ip netns exec` (an "inner" run), installs N distinct IPv4 routes
//! `PREFIX via 198.51.100.2 proto 12` in the main table and then withdraws them all, and
//! reports wall time and its own CPU time (user and system; the kernel does the route work
//! in the sending process's `sendmsg`) for each phase. The routes are the first N blocks of
//! 100.64.0.0/10 of one length: the shortest of /26 or longer that holds N (10k: /26,
//! 100k: /27, 1M: /30), or `--len`. Every method writes the same routes:
//!
//! * `floor` — the kernel's floor: pre-built RTM_NEWROUTE messages (RTA_DST, RTA_TABLE,
//!   RTA_GATEWAY; `NLM_F_REQUEST|NLM_F_ACK|NLM_F_CREATE|NLM_F_REPLACE`, as wren sends them)
//!   packed into 64 KiB batches, one `send` per batch on one NETLINK_ROUTE socket (8 MiB
//!   SO_RCVBUF, as wren asks), then `recv` until every ACK of the batch is counted; the
//!   withdraw is the same with RTM_DELROUTE (RTA_DST, RTA_TABLE; `NLM_F_REQUEST|NLM_F_ACK`).
//! * `floor-last-ack` — the same loop with `NLM_F_ACK` only on each batch's last message:
//!   the kernel still answers every failed request (an NLMSG_ERROR with its sequence number),
//!   and handles a batch's messages in order within the `send`, so the last ACK closes the
//!   batch. Not a floor for wren as written, but what dropping per-route ACKs would buy.
//! * `wren-fib` — wren's FIB path: `Fib::open` (untimed), then `Fib::apply` with N
//!   `(net, Some(KernelRoute { target: Via([198.51.100.2]) }))`, timed until it returns (it
//!   reads every ACK), then `Fib::apply` with N `(net, None)`. Building the change lists is
//!   not timed; cloning routes into requests and the bookkeeping inside `apply` is.
//! * `wren-batch` — the layer below: `Netlink::batch` with N pre-built `Request::Replace`,
//!   then N `Request::Delete`.
//! * `sketch` — not wren: a sketch in this file of the `Fib::apply` the findings suggest
//!   (one map, no clone per request, FxHash, messages encoded straight from the route,
//!   `NLM_F_ACK` only on each batch's last message), fed the same change lists as `wren-fib`.
//! * `ip` — `ip -batch FILE` (written before timing) with N `route add PREFIX via
//!   198.51.100.2 proto 12` lines (`NLM_F_CREATE|NLM_F_EXCL`, one request and its ACK at a
//!   time), then N `route del PREFIX proto 12`; CPU time is the `ip` process's.
//!
//! After each timed phase (untimed) the route count is read from `/proc/net/fib_triestat`
//! (main table prefixes, less those before the install) and must be N, then 0; requests the
//! kernel refused are counted. Methods are interleaved within each repetition and the table
//! shows the median of `--reps` runs; before each run the bench waits (up to `--wait-quiet`
//! seconds) for the machine to be under a quarter busy, and inner runs go at nice -10.
//!
//! Besides wall time the report gives each method's CPU seconds (user / system), context
//! switches, minor page faults and the inner process's peak RSS (which includes the bench's
//! own input lists).
//!
//! Options (after `--`): `--routes 10000,100000,1000000`, `--methods floor,floor-last-ack,
//! wren-fib,wren-batch,sketch,ip`, `--reps 3`, `--len L`, `--nice -10`, `--wait-quiet 30`, `--deadline 600`
//! (seconds for one inner run), `--out FILE` (also write the markdown report there). Needs
//! root. Under `cargo test` (no `--bench` argument) it does nothing.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The routes are blocks of this space, in order.
const SPACE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
const SPACE_LEN: u8 = 10;
/// The shortest prefix length used (the issue's /26 blocks).
const MIN_LEN: u8 = 26;
const LOCAL: &str = "198.51.100.1/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The main table, `proto bird` (12), as wren writes by default.
const TABLE_ID: u8 = 254;
const PROTOCOL: u8 = 12;
/// Namespace names: `wfib-PID-K`.
const NS_PREFIX: &str = "wfib-";
const INNER_CMD: &str = "__fib_inner";
/// What the inner run prints before its JSON outcome.
const RESULT: &str = "RESULT ";

/// Set by SIGINT / SIGTERM / SIGHUP: the current inner run is stopped and the guards clean up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(INNER_CMD) {
        return match inner::main(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fib (inner): {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`: not a test.
    if !argv.iter().any(|a| a == "--bench") {
        eprintln!("fib: not run as a test; `sudo -E cargo bench --bench fib`");
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    // `cargo bench FILTER` passes the filter to every bench binary.
    if !args.filters.is_empty() && !args.filters.iter().any(|f| "fib".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("fib: needs root (network namespaces); run `sudo -E cargo bench --bench fib`");
        return ExitCode::from(2);
    }
    match controller::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fib: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Parser, Debug)]
#[command(name = "fib", about = "Kernel route install/withdraw throughput")]
struct Args {
    /// Numbers of routes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    routes: Vec<usize>,
    /// Methods, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "floor,floor-last-ack,wren-fib,wren-batch,sketch,ip"
    )]
    methods: Vec<Method>,
    /// Runs of each method for each N; the table shows the median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Prefix length for every N (default: the shortest of /26 or longer that holds N).
    #[arg(long)]
    len: Option<u8>,
    /// Nice value of the inner runs.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    nice: i32,
    /// Before each run, wait up to this many seconds for the machine to be under a quarter
    /// busy (over 1 s).
    #[arg(long, default_value_t = 30)]
    wait_quiet: u64,
    /// Give up on one inner run after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
    /// Also write the markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// Bench name filters passed by `cargo bench FILTER`.
    #[arg(hide = true)]
    filters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Method {
    Floor,
    FloorLastAck,
    WrenFib,
    WrenBatch,
    Sketch,
    Ip,
}

impl Method {
    fn arg(self) -> &'static str {
        match self {
            Method::Floor => "floor",
            Method::FloorLastAck => "floor-last-ack",
            Method::WrenFib => "wren-fib",
            Method::WrenBatch => "wren-batch",
            Method::Sketch => "sketch",
            Method::Ip => "ip",
        }
    }

    fn from_arg(s: &str) -> Option<Method> {
        [
            Method::Floor,
            Method::FloorLastAck,
            Method::WrenFib,
            Method::WrenBatch,
            Method::Sketch,
            Method::Ip,
        ]
        .into_iter()
        .find(|m| m.arg() == s)
    }

    fn label(self) -> &'static str {
        match self {
            Method::Floor => "floor (raw netlink loop)",
            Method::FloorLastAck => "raw loop, ACK only each batch's last",
            Method::WrenFib => "wren `Fib::apply`",
            Method::WrenBatch => "wren `Netlink::batch`",
            Method::Sketch => "sketch of a leaner `Fib::apply`",
            Method::Ip => "`ip -batch`",
        }
    }
}

/// One timed phase of an inner run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Phase {
    wall: f64,
    user: f64,
    sys: f64,
    /// `user + sys`.
    cpu: f64,
    /// Voluntary and involuntary context switches, minor page faults.
    vcsw: i64,
    ivcsw: i64,
    minflt: i64,
    /// Peak resident set so far, KiB.
    maxrss: i64,
    /// Requests the kernel refused (or whose ACK never came).
    errors: u64,
    /// Routes in the table after the phase (counted untimed).
    routes: i64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Outcome {
    install: Phase,
    withdraw: Phase,
}

/// Route k of N: block k of 100.64.0.0/10 at length `len`.
fn route(k: usize, len: u8) -> Ipv4Net {
    let base = SPACE.to_bits() + ((k as u32) << (32 - u32::from(len)));
    Ipv4Net::new(Ipv4Addr::from_bits(base), len).expect("prefix length")
}

/// How many blocks of length `len` 100.64.0.0/10 holds.
fn capacity(len: u8) -> usize {
    1usize << (len - SPACE_LEN)
}

/// The shortest prefix length, /26 or longer, at which N blocks fit.
fn auto_len(n: usize) -> Option<u8> {
    (MIN_LEN..=32).find(|&l| capacity(l) >= n)
}

/// Resource use of this process (or of its waited-for children) so far.
#[derive(Debug, Clone, Copy)]
struct Usage {
    user: f64,
    sys: f64,
    /// Voluntary and involuntary context switches, minor page faults.
    vcsw: i64,
    ivcsw: i64,
    minflt: i64,
    /// Peak resident set, KiB (of the largest child, for children).
    maxrss: i64,
}

impl Usage {
    fn now(who: libc::c_int) -> Usage {
        // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid rusage to fill.
        unsafe { libc::getrusage(who, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Usage {
            user: secs(ru.ru_utime),
            sys: secs(ru.ru_stime),
            vcsw: ru.ru_nvcsw,
            ivcsw: ru.ru_nivcsw,
            minflt: ru.ru_minflt,
            maxrss: ru.ru_maxrss,
        }
    }

    /// The phase from `self` to `end`, taking `wall` seconds.
    fn phase(self, end: Usage, wall: f64, errors: u64, routes: i64) -> Phase {
        Phase {
            wall,
            user: end.user - self.user,
            sys: end.sys - self.sys,
            cpu: end.user - self.user + end.sys - self.sys,
            vcsw: end.vcsw - self.vcsw,
            ivcsw: end.ivcsw - self.ivcsw,
            minflt: end.minflt - self.minflt,
            maxrss: end.maxrss,
            errors,
            routes,
        }
    }
}

mod inner {
    //! Runs inside the namespace: one method, install then withdraw.

    use super::*;

    use wren::fib::kernel::Fib;
    use wren::fib::netlink::{Hop, KernelRoute, Netlink, Request, Table, Target};

    const TABLE: Table = Table {
        id: TABLE_ID as u32,
        protocol: PROTOCOL,
    };

    /// Args: METHOD N LEN DIR NICE.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let [method, n, len, dir, nice] = args else {
            bail!("usage: {INNER_CMD} METHOD N LEN DIR NICE");
        };
        let method = Method::from_arg(method).ok_or_else(|| anyhow!("no method {method}"))?;
        let n: usize = n.parse()?;
        let len: u8 = len.parse()?;
        let nice: i32 = nice.parse()?;
        // SAFETY: setpriority on this process; failure only leaves the priority as it was.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        let routes: Vec<Ipv4Net> = (0..n).map(|k| route(k, len)).collect();
        let base = prefixes()?;
        let outcome = match method {
            Method::Floor => floor(&routes, base, true)?,
            Method::FloorLastAck => floor(&routes, base, false)?,
            Method::WrenFib => wren_fib(&routes, base)?,
            Method::WrenBatch => wren_batch(&routes, base)?,
            Method::Sketch => sketch(&routes, base)?,
            Method::Ip => ip_batch(&routes, base, Path::new(dir))?,
        };
        println!("{RESULT}{}", serde_json::to_string(&outcome)?);
        Ok(())
    }

    /// Prefixes in the main table now (`Main:` in /proc/net/fib_triestat).
    fn prefixes() -> anyhow::Result<i64> {
        let text = std::fs::read_to_string("/proc/net/fib_triestat")?;
        let main = text
            .split_once("Main:")
            .ok_or_else(|| anyhow!("no Main: in fib_triestat"))?
            .1;
        let line = main
            .lines()
            .find_map(|l| l.trim().strip_prefix("Prefixes:"))
            .ok_or_else(|| anyhow!("no Prefixes: in fib_triestat"))?;
        Ok(line.trim().parse()?)
    }

    /// Times `f`: wall and this process's CPU, then counts the routes (untimed).
    fn timed(base: i64, f: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<Phase> {
        let u0 = Usage::now(libc::RUSAGE_SELF);
        let t0 = Instant::now();
        let errors = f()?;
        let wall = t0.elapsed().as_secs_f64();
        let u1 = Usage::now(libc::RUSAGE_SELF);
        Ok(u0.phase(u1, wall, errors, prefixes()? - base))
    }

    fn kernel_route(net: Ipv4Net) -> KernelRoute {
        KernelRoute {
            net: net.into(),
            metric: None,
            target: Target::Via(vec![Hop {
                gateway: GATEWAY.into(),
                oif: None,
                onlink: false,
            }]),
        }
    }

    fn wren_fib(routes: &[Ipv4Net], base: i64) -> anyhow::Result<Outcome> {
        let mut fib = Fib::open(TABLE)?;
        let adds: Vec<_> = routes
            .iter()
            .map(|&n| (n.into(), Some(kernel_route(n))))
            .collect();
        let install = timed(base, || {
            fib.apply(adds);
            Ok(fib.stats.errors)
        })?;
        let dels: Vec<_> = routes.iter().map(|&n| (n.into(), None)).collect();
        let errors_before = fib.stats.errors;
        let withdraw = timed(base, || {
            fib.apply(dels);
            Ok(fib.stats.errors - errors_before)
        })?;
        Ok(Outcome { install, withdraw })
    }

    fn wren_batch(routes: &[Ipv4Net], base: i64) -> anyhow::Result<Outcome> {
        let mut nl = Netlink::open()?;
        let adds: Vec<Request> = routes
            .iter()
            .map(|&n| Request::Replace(kernel_route(n)))
            .collect();
        let failed = |r: Vec<std::io::Result<()>>| r.iter().filter(|r| r.is_err()).count() as u64;
        let install = timed(base, || Ok(failed(nl.batch(TABLE, &adds))))?;
        let dels: Vec<Request> = routes
            .iter()
            .map(|&n| Request::Delete(kernel_route(n)))
            .collect();
        let withdraw = timed(base, || Ok(failed(nl.batch(TABLE, &dels))))?;
        Ok(Outcome { install, withdraw })
    }

    fn ip_batch(routes: &[Ipv4Net], base: i64, dir: &Path) -> anyhow::Result<Outcome> {
        let (add, del) = (dir.join("add.batch"), dir.join("del.batch"));
        let mut text = String::with_capacity(routes.len() * 48);
        for r in routes {
            let _ = writeln!(text, "route add {r} via {GATEWAY} proto {PROTOCOL}");
        }
        std::fs::write(&add, &text)?;
        text.clear();
        for r in routes {
            let _ = writeln!(text, "route del {r} proto {PROTOCOL}");
        }
        std::fs::write(&del, &text)?;
        drop(text);
        let run = |file: &Path| -> anyhow::Result<Phase> {
            let u0 = Usage::now(libc::RUSAGE_CHILDREN);
            let t0 = Instant::now();
            let out = Command::new("ip")
                .arg("-batch")
                .arg(file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .context("running ip -batch")?;
            let wall = t0.elapsed().as_secs_f64();
            let u1 = Usage::now(libc::RUSAGE_CHILDREN);
            // `ip -batch` stops at the first failed command.
            let errors = u64::from(!out.status.success());
            if errors > 0 {
                eprintln!(
                    "ip -batch {}: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(u0.phase(u1, wall, errors, prefixes()? - base))
        };
        let install = run(&add)?;
        let withdraw = run(&del)?;
        Ok(Outcome { install, withdraw })
    }

    fn floor(routes: &[Ipv4Net], base: i64, ack_all: bool) -> anyhow::Result<Outcome> {
        let sock = raw::Sock::open()?;
        let adds = raw::batches(routes, false, ack_all);
        let install = timed(base, || Ok(sock.run(&adds)?))?;
        drop(adds);
        let dels = raw::batches(routes, true, ack_all);
        let withdraw = timed(base, || Ok(sock.run(&dels)?))?;
        Ok(Outcome { install, withdraw })
    }

    mod raw {
        //! The floor: hand-encoded rtnetlink messages, one socket, no library.

        use std::io;

        use ipnet::Ipv4Net;

        use super::super::{GATEWAY, PROTOCOL, TABLE_ID};

        const BATCH_BYTES: usize = 64 * 1024;
        const RCVBUF: libc::c_int = 8 * 1024 * 1024;
        const NLMSG_HDRLEN: usize = 16;

        /// Messages packed into at most `BATCH_BYTES`, how many there are, and the sequence
        /// number of the last.
        pub struct Batch {
            bytes: Vec<u8>,
            count: usize,
            last: u32,
            ack_all: bool,
        }

        fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
            out.extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(data);
        }

        fn message(out: &mut Vec<u8>, net: Ipv4Net, delete: bool, seq: u32, ack: bool) {
            let len: u32 = if delete { 44 } else { 52 };
            let (kind, mut flags) = if delete {
                (libc::RTM_DELROUTE, libc::NLM_F_REQUEST)
            } else {
                (
                    libc::RTM_NEWROUTE,
                    libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE,
                )
            };
            if ack {
                flags |= libc::NLM_F_ACK;
            }
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(&(flags as u16).to_ne_bytes());
            out.extend_from_slice(&seq.to_ne_bytes());
            out.extend_from_slice(&0u32.to_ne_bytes());
            // struct rtmsg
            out.extend_from_slice(&[
                libc::AF_INET as u8,
                net.prefix_len(),
                0,
                0,
                TABLE_ID,
                PROTOCOL,
                libc::RT_SCOPE_UNIVERSE,
                libc::RTN_UNICAST,
            ]);
            out.extend_from_slice(&0u32.to_ne_bytes());
            attr(out, libc::RTA_DST, &net.network().octets());
            attr(out, libc::RTA_TABLE, &u32::from(TABLE_ID).to_ne_bytes());
            if !delete {
                attr(out, libc::RTA_GATEWAY, &GATEWAY.octets());
            }
        }

        /// `ack_all`: every message asks for an ACK; otherwise only each batch's last does
        /// (the kernel answers a failed request whatever its flags).
        pub fn batches(routes: &[Ipv4Net], delete: bool, ack_all: bool) -> Vec<Batch> {
            let size = if delete { 44 } else { 52 };
            let per = BATCH_BYTES / size;
            routes
                .chunks(per)
                .enumerate()
                .map(|(c, chunk)| {
                    let mut bytes = Vec::with_capacity(BATCH_BYTES);
                    let last = chunk.len() - 1;
                    for (i, &net) in chunk.iter().enumerate() {
                        let seq = (c * per + i + 1) as u32;
                        message(&mut bytes, net, delete, seq, ack_all || i == last);
                    }
                    Batch {
                        bytes,
                        count: chunk.len(),
                        last: (c * per + last + 1) as u32,
                        ack_all,
                    }
                })
                .collect()
        }

        pub struct Sock(libc::c_int);

        impl Drop for Sock {
            fn drop(&mut self) {
                // SAFETY: our descriptor, closed once.
                unsafe { libc::close(self.0) };
            }
        }

        fn check(r: libc::c_int) -> io::Result<libc::c_int> {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r)
            }
        }

        impl Sock {
            pub fn open() -> io::Result<Sock> {
                // SAFETY: plain socket(2).
                let fd = check(unsafe {
                    libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        libc::NETLINK_ROUTE,
                    )
                })?;
                let sock = Sock(fd);
                // SAFETY: a c_int option of the right size.
                check(unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUF,
                        (&RCVBUF as *const libc::c_int).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    )
                })?;
                // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel picks one).
                let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
                addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
                // SAFETY: a sockaddr_nl of the size given.
                check(unsafe {
                    libc::bind(
                        fd,
                        (&addr as *const libc::sockaddr_nl).cast(),
                        size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                    )
                })?;
                Ok(sock)
            }

            /// Sends one batch and reads NLMSG_ERRORs (ACKs when the code is 0), each given
            /// to `answer` with its sequence number and code, until `answer` says the batch
            /// is closed.
            pub fn exchange(
                &self,
                bytes: &[u8],
                buf: &mut [u8],
                mut answer: impl FnMut(u32, i32) -> bool,
            ) -> io::Result<()> {
                // SAFETY: sending from a live buffer of the length given.
                let sent = unsafe { libc::send(self.0, bytes.as_ptr().cast(), bytes.len(), 0) };
                if sent < 0 {
                    return Err(io::Error::last_os_error());
                }
                loop {
                    // SAFETY: receiving into a live buffer of the length given.
                    let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let n = n as usize;
                    let mut at = 0;
                    while at + NLMSG_HDRLEN <= n {
                        let word = |o: usize| buf[at + o..at + o + 4].try_into().unwrap();
                        let len = u32::from_ne_bytes(word(0)) as usize;
                        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                        if kind == libc::NLMSG_ERROR as u16
                            && at + 20 <= n
                            && answer(u32::from_ne_bytes(word(8)), i32::from_ne_bytes(word(16)))
                        {
                            return Ok(());
                        }
                        if len == 0 {
                            break;
                        }
                        at += (len + 3) & !3;
                    }
                }
            }

            /// Sends each batch and reads its ACKs (or its errors and its last ACK); how many
            /// were errors.
            pub fn run(&self, batches: &[Batch]) -> io::Result<u64> {
                let mut buf = vec![0u8; 64 * 1024];
                let mut errors = 0;
                for b in batches {
                    let mut acks = 0;
                    self.exchange(&b.bytes, &mut buf, |seq, code| {
                        acks += 1;
                        errors += u64::from(code != 0);
                        if b.ack_all {
                            acks == b.count
                        } else {
                            seq == b.last
                        }
                    })?;
                }
                Ok(errors)
            }
        }
    }

    fn sketch(routes: &[Ipv4Net], base: i64) -> anyhow::Result<Outcome> {
        let mut fib = sketch::Fib::open()?;
        let adds: Vec<_> = routes
            .iter()
            .map(|&n| (n.into(), Some(kernel_route(n))))
            .collect();
        let install = timed(base, || {
            fib.apply(adds)?;
            Ok(fib.errors)
        })?;
        let dels: Vec<_> = routes.iter().map(|&n| (n.into(), None)).collect();
        let errors_before = fib.errors;
        let withdraw = timed(base, || {
            fib.apply(dels)?;
            Ok(fib.errors - errors_before)
        })?;
        Ok(Outcome { install, withdraw })
    }

    mod sketch {
        //! What the findings suggest for `src/fib`, only as far as this bench needs it: one
        //! map from prefix to the wanted route and whether the kernel has it (no second copy,
        //! no clone per request), a cheap hasher, each message encoded from the route straight
        //! into the batch while its map entry is at hand, the map updated up front and only
        //! failures undone, and `NLM_F_ACK` only on each batch's last message (the kernel
        //! answers a failed request anyway, with its sequence number). It handles what
        //! `Fib::apply` does for prefixes wanted and withdrawn; not start-up sync.

        use std::collections::HashMap;
        use std::collections::hash_map::Entry;
        use std::hash::{BuildHasherDefault, Hasher};
        use std::io;

        use ipnet::IpNet;
        use wren::fib::netlink::{KernelRoute, Target};

        use super::super::{PROTOCOL, TABLE_ID};
        use super::raw::Sock;

        const BATCH_BYTES: usize = 64 * 1024;
        /// `RTNH_F_ONLINK` (linux/rtnetlink.h), in `rtm_flags` and `rtnh_flags`.
        const ONLINK: u8 = 4;

        /// FxHash (rustc's): a multiply and a rotate per word.
        #[derive(Default)]
        struct Fx(u64);

        impl Fx {
            fn add(&mut self, w: u64) {
                self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
            }
        }

        impl Hasher for Fx {
            fn write(&mut self, bytes: &[u8]) {
                for c in bytes.chunks(8) {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    self.add(u64::from_le_bytes(w));
                }
            }
            fn write_u8(&mut self, i: u8) {
                self.add(u64::from(i));
            }
            fn write_u32(&mut self, i: u32) {
                self.add(u64::from(i));
            }
            fn write_u64(&mut self, i: u64) {
                self.add(i);
            }
            fn write_usize(&mut self, i: usize) {
                self.add(i as u64);
            }
            fn finish(&self) -> u64 {
                self.0.rotate_left(26)
            }
        }

        struct Slot {
            want: KernelRoute,
            /// The kernel has `want` (or a request for it is in flight).
            installed: bool,
        }

        pub struct Fib {
            sock: Sock,
            map: HashMap<IpNet, Slot, BuildHasherDefault<Fx>>,
            /// The batch being filled; where its last message starts.
            out: Vec<u8>,
            last: usize,
            /// The batch's requests in order (sequence `first + i`), with the slot a delete
            /// took out of the map, to put back if the kernel refuses.
            inflight: Vec<(IpNet, Option<Slot>)>,
            first: u32,
            buf: Vec<u8>,
            pub errors: u64,
        }

        fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
            out.extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(data);
        }

        fn addr(a: std::net::IpAddr) -> Vec<u8> {
            match a {
                std::net::IpAddr::V4(a) => a.octets().to_vec(),
                std::net::IpAddr::V6(a) => a.octets().to_vec(),
            }
        }

        /// RTM_NEWROUTE (replace) for `r`, or RTM_DELROUTE for `net` when `new` is false.
        fn encode(out: &mut Vec<u8>, seq: u32, net: IpNet, r: &KernelRoute, new: bool) {
            let at = out.len();
            let (kind, flags) = if new {
                (
                    libc::RTM_NEWROUTE,
                    libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE,
                )
            } else {
                (libc::RTM_DELROUTE, libc::NLM_F_REQUEST)
            };
            out.extend_from_slice(&0u32.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(&(flags as u16).to_ne_bytes());
            out.extend_from_slice(&seq.to_ne_bytes());
            out.extend_from_slice(&0u32.to_ne_bytes());
            let (family, dst) = match net {
                IpNet::V4(n) => (libc::AF_INET, n.network().octets().to_vec()),
                IpNet::V6(n) => (libc::AF_INET6, n.network().octets().to_vec()),
            };
            let (rtype, onlink) = match &r.target {
                Target::Blackhole => (libc::RTN_BLACKHOLE, false),
                Target::Via(h) => (libc::RTN_UNICAST, new && h.len() == 1 && h[0].onlink),
            };
            out.extend_from_slice(&[
                family as u8,
                net.prefix_len(),
                0,
                0,
                TABLE_ID,
                PROTOCOL,
                libc::RT_SCOPE_UNIVERSE,
                rtype,
            ]);
            let rtm_flags: u32 = if onlink { ONLINK.into() } else { 0 };
            out.extend_from_slice(&rtm_flags.to_ne_bytes());
            attr(out, libc::RTA_DST, &dst);
            attr(out, libc::RTA_TABLE, &u32::from(TABLE_ID).to_ne_bytes());
            if new {
                if let Some(m) = r.metric {
                    attr(out, libc::RTA_PRIORITY, &m.to_ne_bytes());
                }
                match &r.target {
                    Target::Blackhole => {}
                    Target::Via(hops) if hops.len() == 1 => {
                        attr(out, libc::RTA_GATEWAY, &addr(hops[0].gateway));
                        if let Some(oif) = hops[0].oif {
                            attr(out, libc::RTA_OIF, &oif.to_ne_bytes());
                        }
                    }
                    Target::Via(hops) => {
                        let mp = out.len();
                        attr(out, libc::RTA_MULTIPATH, &[]);
                        for h in hops {
                            let gw = addr(h.gateway);
                            let len = 8 + 4 + gw.len() as u16;
                            out.extend_from_slice(&len.to_ne_bytes());
                            out.push(if h.onlink { ONLINK } else { 0 });
                            out.push(0);
                            out.extend_from_slice(&h.oif.unwrap_or(0).to_ne_bytes());
                            attr(out, libc::RTA_GATEWAY, &gw);
                        }
                        let len = (out.len() - mp) as u16;
                        out[mp..mp + 2].copy_from_slice(&len.to_ne_bytes());
                    }
                }
            }
            let len = (out.len() - at) as u32;
            out[at..at + 4].copy_from_slice(&len.to_ne_bytes());
        }

        impl Fib {
            pub fn open() -> io::Result<Fib> {
                Ok(Fib {
                    sock: Sock::open()?,
                    map: HashMap::default(),
                    out: Vec::with_capacity(BATCH_BYTES + 4096),
                    last: 0,
                    inflight: Vec::new(),
                    first: 1,
                    buf: vec![0; 64 * 1024],
                    errors: 0,
                })
            }

            fn seq(&self) -> u32 {
                self.first.wrapping_add(self.inflight.len() as u32)
            }

            pub fn apply(&mut self, changes: Vec<(IpNet, Option<KernelRoute>)>) -> io::Result<()> {
                let adds = changes.iter().filter(|c| c.1.is_some()).count();
                self.map.reserve(adds);
                for (net, want) in changes {
                    let seq = self.seq();
                    self.last = self.out.len();
                    match want {
                        Some(r) => {
                            let slot = match self.map.entry(net) {
                                Entry::Occupied(o) => {
                                    let s = o.into_mut();
                                    if s.installed && s.want == r {
                                        continue;
                                    }
                                    s.want = r;
                                    s.installed = true;
                                    s
                                }
                                Entry::Vacant(v) => v.insert(Slot {
                                    want: r,
                                    installed: true,
                                }),
                            };
                            encode(&mut self.out, seq, net, &slot.want, true);
                            self.inflight.push((net, None));
                        }
                        None => match self.map.remove(&net) {
                            Some(s) if s.installed => {
                                encode(&mut self.out, seq, net, &s.want, false);
                                self.inflight.push((net, Some(s)));
                            }
                            _ => continue,
                        },
                    }
                    if self.out.len() >= BATCH_BYTES {
                        self.flush()?;
                    }
                }
                self.flush()
            }

            /// Sends the batch, the last message asking for an ACK, and undoes what failed.
            fn flush(&mut self) -> io::Result<()> {
                if self.inflight.is_empty() {
                    return Ok(());
                }
                let ack = libc::NLM_F_ACK as u16;
                let f = self.last + 6;
                let flags = u16::from_ne_bytes([self.out[f], self.out[f + 1]]) | ack;
                self.out[f..f + 2].copy_from_slice(&flags.to_ne_bytes());
                let last = self.seq().wrapping_sub(1);
                let mut failed = Vec::new();
                self.sock.exchange(&self.out, &mut self.buf, |seq, code| {
                    if code != 0 {
                        failed.push((seq, code));
                    }
                    seq == last
                })?;
                for (seq, code) in failed {
                    let Some((net, taken)) =
                        self.inflight.get_mut(seq.wrapping_sub(self.first) as usize)
                    else {
                        continue;
                    };
                    match taken.take() {
                        // Already gone: the goal is met.
                        Some(_) if code == -libc::ESRCH => {}
                        Some(slot) => {
                            self.errors += 1;
                            self.map.insert(*net, slot);
                        }
                        None => {
                            self.errors += 1;
                            if let Some(s) = self.map.get_mut(net) {
                                s.installed = false;
                            }
                        }
                    }
                }
                self.first = last.wrapping_add(1);
                self.inflight.clear();
                self.out.clear();
                Ok(())
            }
        }
    }
}

mod controller {
    use super::*;

    pub fn run(args: &Args) -> anyhow::Result<()> {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only stores to an atomic.
            unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        }
        remove_stale_namespaces();
        if args.reps == 0 || args.methods.is_empty() {
            bail!("nothing to run");
        }
        let exe = std::env::current_exe()?;
        let dir = std::env::temp_dir().join(format!("wren-fib-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let _dir = RemoveDir(dir.clone());
        let started = Instant::now();
        let mut rows: Vec<Row> = Vec::new();
        let mut seq = 0;
        for &n in &args.routes {
            let len = match args.len {
                Some(l) if (SPACE_LEN..=32).contains(&l) && capacity(l) >= n => l,
                Some(l) => bail!("{n} /{l} blocks do not fit in {SPACE}/{SPACE_LEN}"),
                None => auto_len(n)
                    .ok_or_else(|| anyhow!("{n} routes do not fit in {SPACE}/{SPACE_LEN}"))?,
            };
            let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); args.methods.len()];
            for rep in 0..args.reps {
                for (i, &m) in args.methods.iter().enumerate() {
                    let busy = wait_quiet(Duration::from_secs(args.wait_quiet))?;
                    seq += 1;
                    let ns = Netns::create(seq)?;
                    let o = run_inner(args, &exe, &ns.0, m, n, len, &dir)?;
                    drop(ns);
                    let show = |p: &Phase| {
                        format!(
                            "{:.3} s (user {:.2} sys {:.2}, switches {}/{}, faults {})",
                            p.wall, p.user, p.sys, p.vcsw, p.ivcsw, p.minflt
                        )
                    };
                    eprintln!(
                        "fib: N={n} /{len} {} rep {}: install {}, withdraw {}; machine {:.0}% \
                         busy before",
                        m.arg(),
                        rep + 1,
                        show(&o.install),
                        show(&o.withdraw),
                        busy * 100.0,
                    );
                    if o.install.errors + o.withdraw.errors > 0
                        || o.install.routes != n as i64
                        || o.withdraw.routes != 0
                    {
                        bail!(
                            "{} N={n}: {} install errors, {} withdraw errors, {} routes after \
                             install, {} after withdraw",
                            m.arg(),
                            o.install.errors,
                            o.withdraw.errors,
                            o.install.routes,
                            o.withdraw.routes
                        );
                    }
                    runs[i].push(o);
                }
            }
            for (i, &m) in args.methods.iter().enumerate() {
                rows.push(Row {
                    n,
                    len,
                    method: m,
                    install: median(&runs[i], |o| o.install),
                    withdraw: median(&runs[i], |o| o.withdraw),
                });
            }
        }
        let report = report(args, &rows, started.elapsed());
        print!("{report}");
        if let Some(out) = &args.out {
            std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
        }
        Ok(())
    }

    struct Row {
        n: usize,
        len: u8,
        method: Method,
        install: Phase,
        withdraw: Phase,
    }

    /// The median of each field over the runs (each field on its own).
    fn median(runs: &[Outcome], phase: impl Fn(&Outcome) -> Phase) -> Phase {
        let mid = |f: &dyn Fn(&Phase) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(|o| f(&phase(o))).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Phase {
            wall: mid(&|p| p.wall),
            user: mid(&|p| p.user),
            sys: mid(&|p| p.sys),
            cpu: mid(&|p| p.cpu),
            vcsw: mid(&|p| p.vcsw as f64) as i64,
            ivcsw: mid(&|p| p.ivcsw as f64) as i64,
            minflt: mid(&|p| p.minflt as f64) as i64,
            maxrss: mid(&|p| p.maxrss as f64) as i64,
            errors: 0,
            routes: 0,
        }
    }

    fn count(n: usize) -> String {
        match n {
            n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
            n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
            n => n.to_string(),
        }
    }

    fn report(args: &Args, rows: &[Row], took: Duration) -> String {
        let mut s = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let _ = writeln!(
            s,
            "Kernel {}, {} cores ({cpu}); median of {} runs; whole run {:.0} s.\n",
            kernel.trim(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.reps,
            took.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "| N | prefix | method | install s | routes/s | withdraw s | routes/s | \
             install ÷ floor | withdraw ÷ floor |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in rows {
            let floor = rows
                .iter()
                .find(|f| f.n == r.n && f.method == Method::Floor);
            let ratio =
                |mine: f64, f: Option<f64>| f.map_or("–".into(), |f| format!("{:.2}", mine / f));
            let _ = writeln!(
                s,
                "| {} | /{} | {} | {:.3} | {:.0} | {:.3} | {:.0} | {} | {} |",
                count(r.n),
                r.len,
                r.method.label(),
                r.install.wall,
                r.n as f64 / r.install.wall,
                r.withdraw.wall,
                r.n as f64 / r.withdraw.wall,
                ratio(r.install.wall, floor.map(|f| f.install.wall)),
                ratio(r.withdraw.wall, floor.map(|f| f.withdraw.wall)),
            );
        }
        let _ = writeln!(
            s,
            "\nCPU seconds of the process doing the work (user + system; the kernel's route work \
             runs in the sender's `sendmsg`), medians; the ratio is to the floor's CPU seconds, \
             which other load on the machine disturbs less than wall time:\n"
        );
        let _ = writeln!(
            s,
            "| N | method | install CPU s (user / sys) | ÷ floor | withdraw CPU s (user / sys) | \
             ÷ floor | context switches, vol./invol. (install; withdraw) | page faults (install; \
             withdraw) | peak RSS MiB |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in rows {
            let floor = rows
                .iter()
                .find(|f| f.n == r.n && f.method == Method::Floor);
            let ratio =
                |mine: f64, f: Option<f64>| f.map_or("–".into(), |f| format!("{:.2}", mine / f));
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} ({:.3} / {:.3}) | {} | {:.3} ({:.3} / {:.3}) | {} | {}/{}; {}/{} \
                 | {}; {} | {:.0} |",
                count(r.n),
                r.method.label(),
                r.install.cpu,
                r.install.user,
                r.install.sys,
                ratio(r.install.cpu, floor.map(|f| f.install.cpu)),
                r.withdraw.cpu,
                r.withdraw.user,
                r.withdraw.sys,
                ratio(r.withdraw.cpu, floor.map(|f| f.withdraw.cpu)),
                r.install.vcsw,
                r.install.ivcsw,
                r.withdraw.vcsw,
                r.withdraw.ivcsw,
                r.install.minflt,
                r.withdraw.minflt,
                r.withdraw.maxrss as f64 / 1024.0,
            );
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn run_inner(
        args: &Args,
        exe: &Path,
        ns: &str,
        m: Method,
        n: usize,
        len: u8,
        dir: &Path,
    ) -> anyhow::Result<Outcome> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(exe)
            .args([
                INNER_CMD.to_string(),
                m.arg().to_string(),
                n.to_string(),
                len.to_string(),
            ])
            .arg(dir)
            .arg(args.nice.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = Kill(cmd.spawn().context("ip netns exec")?);
        let deadline = Instant::now() + Duration::from_secs(args.deadline);
        let status = loop {
            if let Some(st) = child.0.try_wait()? {
                break st;
            }
            if STOP.load(Ordering::SeqCst) {
                bail!("stopped");
            }
            if Instant::now() > deadline {
                bail!("{} N={n}: no result in {} s", m.arg(), args.deadline);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        if let Some(mut o) = child.0.stdout.take() {
            o.read_to_string(&mut out)?;
        }
        if !status.success() {
            bail!("{} N={n}: inner run failed ({status})", m.arg());
        }
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(RESULT))
            .ok_or_else(|| anyhow!("{} N={n}: no result", m.arg()))?;
        Ok(serde_json::from_str(line)?)
    }

    /// A child killed and reaped on drop.
    struct Kill(Child);

    impl Drop for Kill {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    struct RemoveDir(PathBuf);

    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A namespace with the veth pair; deleted on drop.
    struct Netns(String);

    impl Netns {
        fn create(k: usize) -> anyhow::Result<Netns> {
            let name = format!("{NS_PREFIX}{}-{k}", std::process::id());
            let ns = Netns(name.clone());
            ns.delete();
            ip(&["netns", "add", &name])?;
            let n = name.as_str();
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", n, "link", "add", "wf0", "type", "veth", "peer", "name", "wf1",
            ])?;
            ip(&["-n", n, "addr", "add", LOCAL, "dev", "wf0"])?;
            ip(&["-n", n, "link", "set", "wf0", "up"])?;
            ip(&["-n", n, "link", "set", "wf1", "up"])?;
            Ok(ns)
        }

        fn delete(&self) {
            if Path::new("/run/netns").join(&self.0).exists() {
                let _ = Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            self.delete();
        }
    }

    /// Namespaces left by a run of this bench that was killed (its pid is gone).
    fn remove_stale_namespaces() {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("fib: removing stale namespace {name}");
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }

    fn ip(args: &[&str]) -> anyhow::Result<()> {
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

    /// Busy and total jiffies of all CPUs.
    fn jiffies() -> anyhow::Result<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat
            .lines()
            .next()
            .ok_or_else(|| anyhow!("empty /proc/stat"))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        Ok((total - idle, total))
    }

    /// Waits until the machine is under a quarter busy over one second (or `limit` passes);
    /// the last busy fraction seen.
    fn wait_quiet(limit: Duration) -> anyhow::Result<f64> {
        let until = Instant::now() + limit;
        loop {
            let (b0, t0) = jiffies()?;
            std::thread::sleep(Duration::from_secs(1));
            let (b1, t1) = jiffies()?;
            let busy = (b1 - b0) as f64 / (t1 - t0).max(1) as f64;
            if STOP.load(Ordering::SeqCst) {
                bail!("stopped");
            }
            if busy < 0.25 || Instant::now() >= until {
                return Ok(busy);
            }
        }
    }
}

//! Kernel route install and withdraw throughput: `sudo bash tests/cargo.sh bench --bench fib`.
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
//! * `ip` — `ip -batch FILE` (written before timing) with N `route add PREFIX via
//!   198.51.100.2 proto 12` lines (`NLM_F_CREATE|NLM_F_EXCL`, one request and its ACK at a
//!   time), then N `route del PREFIX proto 12`; CPU time is the `ip` process's.
//!
//! After each timed phase (untimed) the route count is read from `/proc/net/fib_triestat`
//! (main table prefixes, less those before the install) and must be N, then 0; requests the
//! kernel refused are counted. Methods are interleaved within each repetition and the table
//! shows the median of `--reps` runs; before each run the bench waits (up to `--wait-quiet`
//! seconds) for the machine to be under a quarter busy over 1 s, and inner runs go at nice -10.
//!
//! Besides wall time the report gives each method's CPU seconds (user / system), context
//! switches, minor page faults and the inner process's peak RSS (which includes the bench's
//! own input lists).
//!
//! Options (after `--`): `--routes 10000,100000,1000000`, `--methods floor,floor-last-ack,
//! wren-fib,wren-batch,ip`, `--reps 3`, `--len L`, `--nice -10`, `--wait-quiet 30`, `--deadline 600`
//! (seconds for one inner run), `--out FILE` (also write the markdown report there). Needs
//! root. Under `cargo test` (no `--bench` argument) it does nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use ipnet::Ipv4Net;

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::bench::{count_label, wait_quiet};
use harness::kernel::{
    GATEWAY, LOCAL, Outcome, PROTOCOL, Phase, TABLE_ID, floor, ip_batch, prefix_len, prefixes,
    route, timed,
};
use harness::netns::{Namespaces, try_ip};
use harness::proc::{Proc, RESULT};

/// Namespace names: `wfib-PID-K`.
const NS_PREFIX: &str = "wfib-";
const INNER_CMD: &str = "__fib_inner";

fn main() -> ExitCode {
    harness::bench::main::<Args>("fib", true, &[(INNER_CMD, inner::main)], |a| {
        controller::run(a).map(|()| true)
    })
}

#[derive(Parser, Debug)]
#[command(about = "Kernel route install/withdraw throughput")]
struct Args {
    /// Numbers of routes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    routes: Vec<usize>,
    /// Methods, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "floor,floor-last-ack,wren-fib,wren-batch,ip"
    )]
    methods: Vec<Method>,
    /// Runs of each method for each N; the table shows the median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Prefix length for every N (default: the shortest of /26 or longer that holds N).
    #[arg(long)]
    len: Option<u8>,
    #[command(flatten)]
    timing: harness::bench::Timing,
    /// Give up on one inner run after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
    /// Also write the markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Method {
    Floor,
    FloorLastAck,
    WrenFib,
    WrenBatch,
    Ip,
}

impl Method {
    fn arg(self) -> &'static str {
        match self {
            Method::Floor => "floor",
            Method::FloorLastAck => "floor-last-ack",
            Method::WrenFib => "wren-fib",
            Method::WrenBatch => "wren-batch",
            Method::Ip => "ip",
        }
    }

    fn from_arg(s: &str) -> Option<Method> {
        [
            Method::Floor,
            Method::FloorLastAck,
            Method::WrenFib,
            Method::WrenBatch,
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
            Method::Ip => "`ip -batch`",
        }
    }
}

mod inner {
    //! Runs inside the namespace: one method, install then withdraw.

    use super::*;

    use wren::fib::kernel::Fib;
    use wren::fib::netlink::{Netlink, Request, Table};
    use wren::route::{Hop, KernelRoute, Target};

    const TABLE: Table = Table {
        id: TABLE_ID as u32,
        protocol: PROTOCOL,
        family: None,
    };

    /// Args: METHOD N LEN DIR NICE.
    pub fn main(args: &[String]) -> anyhow::Result<()> {
        let [method, n, len, dir] = args else {
            bail!("usage: {INNER_CMD} METHOD N LEN DIR");
        };
        let method = Method::from_arg(method).ok_or_else(|| anyhow!("no method {method}"))?;
        let n: usize = n.parse()?;
        let len: u8 = len.parse()?;
        let routes: Vec<Ipv4Net> = (0..n).map(|k| route(k, len)).collect();
        let base = prefixes()?;
        let outcome = match method {
            Method::Floor => floor(&routes, base, true)?,
            Method::FloorLastAck => floor(&routes, base, false)?,
            Method::WrenFib => wren_fib(&routes, base)?,
            Method::WrenBatch => wren_batch(&routes, base)?,
            Method::Ip => ip_batch(&routes, base, Path::new(dir))?,
        };
        println!("{RESULT}{}", serde_json::to_string(&outcome)?);
        Ok(())
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
        let dels: Vec<Request> = routes.iter().map(|&n| Request::Delete(n.into())).collect();
        let withdraw = timed(base, || Ok(failed(nl.batch(TABLE, &dels))))?;
        Ok(Outcome { install, withdraw })
    }
}

mod controller {
    use super::*;

    pub fn run(args: &Args) -> anyhow::Result<()> {
        harness::bench::catch_signals();
        harness::netns::remove_stale_namespaces(NS_PREFIX, "fib");
        if args.reps == 0 || args.methods.is_empty() {
            bail!("nothing to run");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dir = std::env::temp_dir().join(format!("wren-fib-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let _dir = RemoveDir(dir.clone());
        let started = Instant::now();
        let mut rows: Vec<Row> = Vec::new();
        let mut seq = 0;
        for &n in &args.routes {
            let len = prefix_len(n, args.len)?;
            let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); args.methods.len()];
            for rep in 0..args.reps {
                for (i, &m) in args.methods.iter().enumerate() {
                    // Under a quarter of the machine busy over 1 s.
                    let busy = wait_quiet(
                        Duration::from_secs(args.timing.wait_quiet),
                        cores as f64 / 4.0,
                        Duration::from_secs(1),
                    )?
                    .busy_cores
                        / cores as f64;
                    seq += 1;
                    let ns = netns(seq)?;
                    let o = run_inner(args, &ns.0[0], m, n, len, &dir)?;
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

    impl Row {
        /// `of` this row ÷ `of` the floor's row of the same N, to two places ("–" without
        /// one).
        fn vs_floor(&self, rows: &[Row], of: impl Fn(&Row) -> f64) -> String {
            rows.iter()
                .find(|f| f.n == self.n && f.method == Method::Floor)
                .map_or("–".into(), |f| format!("{:.2}", of(self) / of(f)))
        }
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
            let _ = writeln!(
                s,
                "| {} | /{} | {} | {:.3} | {:.0} | {:.3} | {:.0} | {} | {} |",
                count_label(r.n),
                r.len,
                r.method.label(),
                r.install.wall,
                r.n as f64 / r.install.wall,
                r.withdraw.wall,
                r.n as f64 / r.withdraw.wall,
                r.vs_floor(rows, |x| x.install.wall),
                r.vs_floor(rows, |x| x.withdraw.wall),
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
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} ({:.3} / {:.3}) | {} | {:.3} ({:.3} / {:.3}) | {} | {}/{}; {}/{} \
                 | {}; {} | {:.0} |",
                count_label(r.n),
                r.method.label(),
                r.install.cpu,
                r.install.user,
                r.install.sys,
                r.vs_floor(rows, |x| x.install.cpu),
                r.withdraw.cpu,
                r.withdraw.user,
                r.withdraw.sys,
                r.vs_floor(rows, |x| x.withdraw.cpu),
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

    fn run_inner(
        args: &Args,
        ns: &str,
        m: Method,
        n: usize,
        len: u8,
        dir: &Path,
    ) -> anyhow::Result<Outcome> {
        let argv = [
            std::env::current_exe()?.display().to_string(),
            INNER_CMD.to_string(),
            m.arg().to_string(),
            n.to_string(),
            len.to_string(),
            dir.display().to_string(),
        ];
        let log = dir.join("inner.log");
        let mut p = Proc::spawn(ns, &argv, &log, true, args.timing.nice)?;
        let deadline = Instant::now() + Duration::from_secs(args.deadline);
        p.result(&log, deadline)
            .with_context(|| format!("{} N={n}", m.arg()))
    }

    struct RemoveDir(PathBuf);

    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A namespace `wfib-PID-K` with the veth pair `wf0` (198.51.100.1/24) and `wf1`, both
    /// up; deleted on drop.
    fn netns(k: usize) -> anyhow::Result<Namespaces> {
        let name = format!("{NS_PREFIX}{}-{k}", std::process::id());
        let ns = Namespaces::create(std::slice::from_ref(&name))?;
        let n = name.as_str();
        try_ip(&[
            "-n", n, "link", "add", "wf0", "type", "veth", "peer", "name", "wf1",
        ])?;
        try_ip(&["-n", n, "addr", "add", LOCAL, "dev", "wf0"])?;
        try_ip(&["-n", n, "link", "set", "wf0", "up"])?;
        try_ip(&["-n", n, "link", "set", "wf1", "up"])?;
        Ok(ns)
    }
}

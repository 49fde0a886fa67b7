//! The kernel side shared by the benches: the routes every method writes (blocks of
//! 100.64.0.0/10 via 198.51.100.2, `proto bird`, main table), the kernel's floor (a batched
//! raw netlink loop), `ip -batch`, and how a phase's time and resource use are measured.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The routes are blocks of this space, in order.
pub const SPACE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
pub const SPACE_LEN: u8 = 10;
/// The shortest prefix length used (Calico's /26 blocks).
pub const MIN_LEN: u8 = 26;
/// The namespace's own address on the link, and the routes' gateway on it.
pub const LOCAL: &str = "198.51.100.1/24";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The main table, `proto bird` (12), as wren writes by default.
pub const TABLE_ID: u8 = 254;
pub const PROTOCOL: u8 = 12;

/// One timed phase of an inner run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Phase {
    pub wall: f64,
    pub user: f64,
    pub sys: f64,
    /// `user + sys`.
    pub cpu: f64,
    /// Voluntary and involuntary context switches, minor page faults.
    pub vcsw: i64,
    pub ivcsw: i64,
    pub minflt: i64,
    /// Peak resident set so far, KiB.
    pub maxrss: i64,
    /// Requests the kernel refused (or whose ACK never came).
    pub errors: u64,
    /// Routes in the table after the phase (counted untimed).
    pub routes: i64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub install: Phase,
    pub withdraw: Phase,
}

/// Route k of N: block k of 100.64.0.0/10 at length `len`.
pub fn route(k: usize, len: u8) -> Ipv4Net {
    let base = SPACE.to_bits() + ((k as u32) << (32 - u32::from(len)));
    Ipv4Net::new(Ipv4Addr::from_bits(base), len).expect("prefix length")
}

/// How many blocks of length `len` 100.64.0.0/10 holds.
pub fn capacity(len: u8) -> usize {
    1usize << (len - SPACE_LEN)
}

/// The prefix length of N blocks: `len` when they fit at it, else (no `len`) the shortest,
/// /26 or longer, at which they fit.
pub fn prefix_len(n: usize, len: Option<u8>) -> anyhow::Result<u8> {
    match len {
        Some(l) if (SPACE_LEN..=32).contains(&l) && capacity(l) >= n => Ok(l),
        Some(l) => bail!("{n} /{l} blocks do not fit in {SPACE}/{SPACE_LEN}"),
        None => (MIN_LEN..=32)
            .find(|&l| capacity(l) >= n)
            .ok_or_else(|| anyhow!("{n} routes do not fit in {SPACE}/{SPACE_LEN}")),
    }
}

/// Resource use of this process (or of its waited-for children) so far.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub user: f64,
    pub sys: f64,
    /// Voluntary and involuntary context switches, minor page faults.
    vcsw: i64,
    ivcsw: i64,
    minflt: i64,
    /// Peak resident set, KiB (of the largest child, for children).
    maxrss: i64,
}

impl Usage {
    pub fn now(who: libc::c_int) -> Usage {
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
    pub fn phase(self, end: Usage, wall: f64, errors: u64, routes: i64) -> Phase {
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

/// Prefixes in this namespace's main table now (`Main:` in /proc/net/fib_triestat).
pub fn prefixes() -> anyhow::Result<i64> {
    prefixes_in("/proc/net/fib_triestat")
}

/// The same for another namespace: `/proc/PID/net/fib_triestat` of a process in it.
pub fn prefixes_in(triestat: &str) -> anyhow::Result<i64> {
    let text = std::fs::read_to_string(triestat)?;
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
pub fn timed(base: i64, f: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<Phase> {
    let u0 = Usage::now(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let errors = f()?;
    let wall = t0.elapsed().as_secs_f64();
    let u1 = Usage::now(libc::RUSAGE_SELF);
    Ok(u0.phase(u1, wall, errors, prefixes()? - base))
}

pub fn ip_batch(routes: &[Ipv4Net], base: i64, dir: &Path) -> anyhow::Result<Outcome> {
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

pub fn floor(routes: &[Ipv4Net], base: i64, ack_all: bool) -> anyhow::Result<Outcome> {
    let sock = raw::Sock::open()?;
    let adds = raw::batches(routes, false, ack_all);
    let install = timed(base, || Ok(sock.run(&adds)?))?;
    drop(adds);
    let dels = raw::batches(routes, true, ack_all);
    let withdraw = timed(base, || Ok(sock.run(&dels)?))?;
    Ok(Outcome { install, withdraw })
}

pub mod raw {
    //! The floor: hand-encoded rtnetlink messages, one socket, no library.

    use std::io;

    use ipnet::Ipv4Net;

    use super::{GATEWAY, PROTOCOL, TABLE_ID};

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

    pub fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
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

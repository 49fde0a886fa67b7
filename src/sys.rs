//! Every call into the C library, behind safe functions: the one place in the crate where
//! `unsafe` is allowed (`#![deny(unsafe_code)]` holds everywhere else). Each wrapper states
//! why its call is sound; callers see plain Rust types and `io::Result`s.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::SockAddr;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An I/O error as BIRD shows it: the system's message without Rust's "(os error N)".
pub fn os_message(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends SIGTERM to process `pid` (a child the caller has not reaped yet, so the pid is
/// still its own).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers and touches no memory of ours.
    check(unsafe { libc::kill(pid, libc::SIGTERM) })
}

/// Moves the calling thread into the network namespace `ns` (a file such as
/// `/run/netns/NAME`); other threads stay where they are.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: a valid open fd; setns touches no memory of ours.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
}

/// The time on the monotonic clock (CLOCK_MONOTONIC), as systemd's `MONOTONIC_USEC` wants it.
pub fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// The local calendar time of `secs` since the epoch (localtime_r), or `None` when the C
/// library cannot represent it.
pub fn local_time(secs: i64) -> Option<libc::tm> {
    let secs = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain old data, for which all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant
    // and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&secs, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// Sets an integer socket option.
pub fn setsockopt_int(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// Sets a socket option whose value is `T`. Private: only for types without pointers
/// (the kernel reads `size_of::<T>()` bytes and follows nothing), or whose pointers the
/// caller keeps alive for the call, as [`attach_filter`] does.
fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid fd, and a pointer to `len` initialised bytes that outlive the call.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    })
}

/// Attaches a classic BPF program to socket `fd` (SO_ATTACH_FILTER; the kernel copies it).
pub fn attach_filter(fd: &impl AsRawFd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        // The kernel only reads through this pointer; the cast to `*mut` is what the C
        // struct's type asks for.
        filter: prog.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// TCP_MD5SIG_MAXKEYLEN.
pub const MD5_MAX_KEY: usize = 80;

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MD5_MAX_KEY],
}

/// Sets the TCP MD5 key (RFC 2385) used with `peer` on socket `fd`; an empty key clears it.
pub fn set_tcp_md5sig(fd: &impl AsRawFd, peer: &SockAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: TcpMd5Sig is plain old data; all-zero is a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let len = (peer.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `peer` holds at least `len` bytes, `sig.addr` is a sockaddr_storage, and `len`
    // is at most its size; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            peer.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// The name of interface `index` (if_indextoname).
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let name = CStr::from_bytes_until_nul(&buf).ok()?;
    Some(name.to_string_lossy().into_owned())
}

/// The index of interface `name`, if it exists (if_nametoindex).
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// One interface address, as getifaddrs lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    /// `IFF_*` flags of the interface.
    pub flags: u32,
    pub addr: Option<IpAddr>,
    pub netmask: Option<IpAddr>,
}

/// Every address of every interface (getifaddrs).
pub fn if_addrs() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and then free.
    check(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        // SAFETY: getifaddrs gives every entry a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        out.push(IfAddr {
            name: name.to_string_lossy().into_owned(),
            flags: ifa.ifa_flags,
            addr: sockaddr_ip(ifa.ifa_addr),
            netmask: sockaddr_ip(ifa.ifa_netmask),
        });
        cur = ifa.ifa_next;
    }
    // SAFETY: freeing the list getifaddrs allocated, once; nothing borrowed from it remains.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The address in a sockaddr from getifaddrs (null or of the family it says).
fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from getifaddrs, whose family says which struct it is.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let s = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let s = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::from(s.sin6_addr.s6_addr))
            }
            _ => None,
        }
    }
}

/// Bytes the allocator has handed out and not had back (glibc's mallinfo2: the heap in use
/// plus mmapped blocks); `None` with another C library.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_in_use() -> Option<usize> {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    Some(m.uordblks + m.hblkhd)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use() -> Option<usize> {
    None
}

/// Fixes glibc's mmap threshold at `bytes` (M_MMAP_THRESHOLD), so that blocks at least that
/// large are mapped and go back to the kernel when freed. Call it before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn set_mmap_threshold(bytes: i32) {
    // SAFETY: mallopt only sets an allocator parameter; no other thread is allocating yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
    }
}

/// Other C libraries have no such knob: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn set_mmap_threshold(_bytes: i32) {}

/// Gives the heap's free memory back to the kernel (glibc's `malloc_trim`): free chunks
/// between live ones stay mapped otherwise, so a process that held a large table keeps its
/// size after the table goes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_heap() {
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries have no such call: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() {}

/// A one-shot timer on the monotonic clock (timerfd, non-blocking, closed on exec),
/// registered with the current tokio runtime's reactor: for a deadline finer than tokio's
/// millisecond timer wheel.
pub fn timerfd() -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: timerfd_create takes plain integers and touches no memory of ours.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same descriptor until
    // the AsyncFd drops it.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

/// Arms timerfd `fd` to expire once, `after` from now (at least 1 ns: zero disarms it);
/// expirations not yet taken are forgotten.
pub fn timerfd_arm(fd: &impl AsRawFd, after: Duration) -> io::Result<()> {
    let after = after.max(Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(after.subsec_nanos()),
        },
    };
    // SAFETY: a valid fd and a pointer to an itimerspec we own; the old value is not asked
    // for (null).
    check(unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })
}

/// Takes timerfd `fd`'s expirations since it was armed (`WouldBlock` while there are none).
pub fn timerfd_take(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut n = [0u8; 8];
    // SAFETY: a valid fd, and a buffer of the 8 bytes the read may write.
    let r = unsafe { libc::read(fd.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from_ne_bytes(n))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_name_and_index() {
        let lo = if_index("lo").expect("lo exists");
        assert_eq!(if_name(lo).as_deref(), Some("lo"));
        assert_eq!(if_index("no-such-if0"), None);
        let addrs = if_addrs().expect("getifaddrs");
        assert!(
            addrs
                .iter()
                .any(|a| a.name == "lo" && a.addr == Some(IpAddr::from([127, 0, 0, 1]))),
            "{addrs:?}"
        );
    }

    #[test]
    fn epoch_in_local_time_and_a_moving_clock() {
        let tm = local_time(0).expect("epoch");
        assert!(matches!(tm.tm_year, 69 | 70), "{}", tm.tm_year);
        let a = monotonic();
        assert!(monotonic() >= a);
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn heap_in_use_counts_a_live_block() {
        // Process-wide counters, which other tests' threads move too: only a lower bound
        // holds whatever they do.
        let block = vec![1u8; 64 << 20];
        let during = heap_in_use().expect("glibc");
        assert!(during >= block.len(), "{during}");
        drop(block);
    }
}

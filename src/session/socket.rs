//! Socket options a BGP session needs: TCP MD5 signatures (RFC 2385), TTL and GTSM
//! (RFC 5082), source address binding, and the listening socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::sys;

/// Per-connection options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub ttl: Option<u8>,
    /// GTSM: the peer is at most this many hops away (RFC 5082 §3).
    pub ttl_security: Option<u8>,
}

/// Sets (or with `None` clears) the MD5 key used with `peer` on socket `fd` (RFC 2385;
/// Linux `TCP_MD5SIG`). On a listening socket it applies to connections from `peer`. An IPv6
/// socket (`v6_socket`) names an IPv4 peer by its mapped address.
pub fn set_md5(
    fd: &impl AsRawFd,
    v6_socket: bool,
    peer: IpAddr,
    key: Option<&str>,
) -> io::Result<()> {
    let peer = match peer {
        IpAddr::V4(a) if v6_socket => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    };
    let addr = SockAddr::from(SocketAddr::new(peer, 0));
    sys::set_tcp_md5sig(fd, &addr, key.unwrap_or("").as_bytes())
}

/// Applies TTL and GTSM to a socket of family `v6`. GTSM sends with TTL 255 and drops
/// packets arriving with less than 255 - hops (IP_MINTTL / IPV6_MINHOPCOUNT).
pub fn apply(fd: &impl AsRawFd, v6: bool, o: &Options) -> io::Result<()> {
    let (level, ttl_opt, min_opt) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            libc::IPV6_MINHOPCOUNT,
        )
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL, libc::IP_MINTTL)
    };
    if let Some(hops) = o.ttl_security {
        sys::setsockopt_int(fd, level, ttl_opt, 255)?;
        sys::setsockopt_int(fd, level, min_opt, 255 - i32::from(hops.min(254)))?;
    } else if let Some(ttl) = o.ttl {
        sys::setsockopt_int(fd, level, ttl_opt, i32::from(ttl))?;
    }
    Ok(())
}

/// Dials `peer` from `source` (if given) with the MD5 key and options.
pub async fn connect(
    peer: SocketAddr,
    source: Option<IpAddr>,
    password: Option<&str>,
    o: &Options,
) -> io::Result<TcpStream> {
    let sock = if peer.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(src) = source {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    if password.is_some() {
        set_md5(&sock, peer.is_ipv6(), peer.ip(), password)?;
    }
    apply(&sock, peer.is_ipv6(), o)?;
    let stream = sock.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a listening socket. IPv6 wildcard sockets also take IPv4 (dual stack) unless
/// `v6_only`. The backlog is large: a thousand peers may dial at once (BIRD's 8 drops their
/// SYNs).
pub fn listen(addr: SocketAddr, v6_only: bool) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(v6_only)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn md5_on_loopback_matches_and_mismatches() {
        let l = listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let port = l.local_addr().unwrap().port();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        set_md5(&l, false, lo, Some("secret")).unwrap();
        let dst = SocketAddr::new(lo, port);
        let opts = Options::default();
        // Same key: connects.
        let ok = connect(dst, None, Some("secret"), &opts);
        let (ok, acc) = tokio::join!(ok, l.accept());
        assert!(ok.is_ok() && acc.is_ok());
        // Wrong key: the SYN is dropped, so the connect does not complete.
        let bad = connect(dst, None, Some("wrong"), &opts);
        let r = tokio::time::timeout(std::time::Duration::from_millis(500), bad).await;
        assert!(
            r.is_err() || r.is_ok_and(|c| c.is_err()),
            "a wrong key must not connect"
        );
    }
}

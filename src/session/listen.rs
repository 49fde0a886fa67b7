//! Accepts BGP connections and hands each to the peer configured at its source address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::ToPeer;
use super::socket;
use crate::accept::{Backoff, RateLimited};

/// Peers by address, shared with the listener tasks (replaced whole on reload).
pub type Directory = Arc<RwLock<HashMap<IpAddr, mpsc::Sender<ToPeer>>>>;

/// Opens a listening socket and installs the MD5 keys of the peers that have one.
pub fn open(
    addr: SocketAddr,
    v6_only: bool,
    keys: &[(IpAddr, String)],
) -> std::io::Result<TcpListener> {
    let l = socket::listen(addr, v6_only)?;
    for (peer, key) in keys {
        if addr.is_ipv6() || peer.is_ipv4() {
            socket::set_md5(&l, addr.is_ipv6(), *peer, Some(key))?;
        }
    }
    Ok(l)
}

/// Accepts connections forever. Ones from unknown addresses are closed at once, as are ones
/// a peer task has no room for; the peer task keeps at most one waiting for its OPEN.
pub async fn run(listener: Arc<TcpListener>, peers: Directory) {
    let mut backoff = Backoff::new("BGP listener");
    let mut unknown = RateLimited::new("BGP listener");
    loop {
        let (stream, from) = backoff.accept(|| listener.accept()).await;
        let ip = from.ip().to_canonical();
        let peer = peers.read().ok().and_then(|p| p.get(&ip).cloned());
        match peer {
            // Never wait on a busy peer task: the listener serves every peer.
            Some(tx) => drop(tx.try_send(ToPeer::Incoming(Box::new(stream)))),
            None => unknown.warn(format_args!("connection from unknown address {ip} refused")),
        }
    }
}

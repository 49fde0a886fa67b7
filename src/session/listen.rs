//! Accepts BGP connections and hands each to the peer configured at its source address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::ToPeer;
use super::socket;

/// Peers by address, shared with the listener tasks (replaced whole on reload).
pub type Directory = Arc<RwLock<HashMap<IpAddr, mpsc::Sender<ToPeer>>>>;

/// Opens a listening socket and installs the MD5 keys of the peers that have one.
pub fn open(addr: SocketAddr, keys: &[(IpAddr, String)]) -> std::io::Result<TcpListener> {
    let l = socket::listen(addr)?;
    for (peer, key) in keys {
        if addr.is_ipv6() || peer.is_ipv4() {
            socket::set_md5(&l, addr.is_ipv6(), *peer, Some(key))?;
        }
    }
    Ok(l)
}

/// Accepts connections forever; ones from unknown addresses are closed at once.
pub async fn run(listener: Arc<TcpListener>, peers: Directory) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept: {e}");
                continue;
            }
        };
        let ip = from.ip().to_canonical();
        let peer = peers.read().ok().and_then(|p| p.get(&ip).cloned());
        match peer {
            Some(tx) => {
                let _ = tx.send(ToPeer::Incoming(Box::new(stream))).await;
            }
            None => info!("connection from unknown address {ip} refused"),
        }
    }
}

//! BGP sessions: the RFC 4271 state machine (pure, in `fsm`), one tokio task per peer
//! (`peer`), the listener (`listen`) and socket options (`socket`).

pub mod caps;
pub mod fsm;
pub mod listen;
pub mod peer;
pub mod peer_map;
pub mod socket;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::bfd;
use crate::model::Peer as PeerConfig;
use crate::wire::{Notification, Open, RouteRefresh, Update};

pub use caps::Session;
pub use fsm::State;
pub use peer_map::PeerMap;

/// A peer's number, given by the daemon's peer registry (`daemon::peers`) and never reused.
pub type PeerId = usize;

/// Commands to a peer task.
#[derive(Debug)]
pub enum ToPeer {
    Start,
    /// Stop with this NOTIFICATION (a Cease) and stay down until started again.
    Stop(Notification),
    /// This speaker shuts down to restart: the Cease leaves peers that negotiated the N bit
    /// keeping our routes (RFC 8538).
    Shutdown(Notification),
    /// Encoded messages to write while Established (UPDATEs from the RIB), encoded for the
    /// session of this number (`ToRib::Up`): a later session of the peer drops them, since
    /// they may announce what the RIB withdrew while the peer was down, in the old
    /// session's encoding.
    Send(u64, Bytes),
    /// Ask the peer to resend its routes (RFC 2918) for every negotiated family.
    RequestRefresh,
    /// Our restart is over: later OPENs no longer carry the Restart State bit (RFC 4724 §3).
    RestartComplete,
    /// A connection the listener accepted from this peer's address (boxed, as the next
    /// variant: every peer's command queue is sized by the largest variant).
    Incoming(Box<TcpStream>),
    /// A colliding connection and the OPEN it sent, with any bytes read after it.
    IncomingOpen(Box<(TcpStream, Open, BytesMut)>),
    /// The peer's BFD session to follow from now on, or none (a reload turned BFD on or off).
    Bfd(Option<watch::Receiver<bfd::Notice>>),
}

/// What peer tasks tell the RIB.
#[derive(Debug)]
pub enum ToRib {
    /// Established; `local` is the connection's local address (our next hop), `number`
    /// counts the peer's sessions (what the RIB sends for this one carries it).
    Up {
        peer: PeerId,
        session: Box<Session>,
        local: std::net::SocketAddr,
        number: u64,
    },
    /// The session ended; `graceful` when the connection was lost without a NOTIFICATION.
    Down {
        peer: PeerId,
        graceful: bool,
    },
    Update {
        peer: PeerId,
        update: Box<Update>,
        withdraw_all: bool,
    },
    Refresh {
        peer: PeerId,
        request: RouteRefresh,
    },
}

/// A session's state as the control socket shows it.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    pub state: State,
    pub since: SystemTime,
    /// Text with BIRD's error class first (`Socket:`, `Received:`, `BGP Error:`, `Error:`).
    pub last_error: Option<String>,
    /// False after a manual stop (`disable`): shown as `down`.
    pub enabled: bool,
    pub session: Option<Session>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_in: u64,
    pub updates_out: u64,
    /// Prefixes announced to us (every NLRI of every UPDATE, repeats counted).
    pub prefixes_in: u64,
}

/// The daemon's handle on a running peer task.
#[derive(Clone)]
pub struct Handle {
    pub commands: mpsc::Sender<ToPeer>,
    pub status: Arc<Mutex<Status>>,
}

/// Starts a peer task (not yet started: send [`ToPeer::Start`]).
pub fn spawn(
    id: PeerId,
    cfg: PeerConfig,
    local_asn: u32,
    router_id: std::net::Ipv4Addr,
    restarting: bool,
    rib: mpsc::Sender<ToRib>,
) -> Handle {
    let s = &cfg.settings;
    // BIRD's `local as N` (Calico's `localASNumber`): the session opens as N (OPEN My AS and
    // the 4-octet AS capability, RFC 6793) and is iBGP or eBGP against N.
    let local_asn = s.local_asn.unwrap_or(local_asn);
    let params = fsm::Params {
        local_open: caps::local_open(local_asn, router_id, s, restarting),
        local_asn,
        local_id: router_id,
        peer_asn: cfg.asn,
        keepalive: s.keepalive,
        passive: s.passive,
        connect_delay: s.connect_delay,
        connect_retry: s.connect_retry,
        error_wait: s.error_wait,
    };
    let status = Arc::new(Mutex::new(Status {
        name: cfg.name.clone(),
        address: cfg.address,
        asn: cfg.asn,
        state: State::Idle,
        since: SystemTime::now(),
        last_error: None,
        enabled: false,
        session: None,
        messages_in: 0,
        messages_out: 0,
        updates_in: 0,
        updates_out: 0,
        prefixes_in: 0,
    }));
    let (tx, rx) = mpsc::channel(64);
    let peer = peer::Peer::new(
        id,
        cfg,
        fsm::Fsm::new(params),
        status.clone(),
        rx,
        tx.clone(),
        rib,
    );
    tokio::spawn(peer.run());
    Handle {
        commands: tx,
        status,
    }
}

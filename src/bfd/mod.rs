//! Bidirectional Forwarding Detection (RFC 5880) in asynchronous mode, single-hop over UDP
//! 3784 (RFC 5881) and multihop over UDP 4784 (RFC 5883), for BGP as its client (RFC 5882).
//!
//! `packet` is the codec, `auth` the authentication (§6.7), `fsm` one session's machine, all
//! pure; `task` runs every session on a thread of its own ("wren-bfd", its own runtime and
//! timers, detection timers to the microsecond on `clock`), so neither a FIB burst, a
//! reload nor a slow control client delays a packet. Clients ask for a session through a
//! [`Bfd`] handle and watch its state; a session asked for by two clients is one session.

pub mod auth;
mod clock;
pub mod fsm;
pub mod packet;
mod task;

use std::io;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

pub use fsm::Timers;
pub use packet::{Diag, State};

/// A session as a client asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub peer: IpAddr,
    /// Source address; the kernel picks one when unset.
    pub local: Option<IpAddr>,
    /// RFC 5883 over UDP 4784; otherwise single-hop, TTL 255 sent and required (RFC 5881).
    pub multihop: bool,
    pub timers: Timers,
    pub key: Option<auth::Key>,
}

impl Request {
    /// Sessions are told apart by the peer's address and the hop mode.
    fn key(&self) -> (IpAddr, bool) {
        (self.peer, self.multihop)
    }
}

/// What a client sees of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub state: State,
    pub diag: Diag,
    /// The peer said it is AdminDown: its session going Down is no failure (RFC 5882 §3.2).
    pub remote_admin_down: bool,
}

/// A session as `show bfd sessions` and the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub peer: IpAddr,
    pub multihop: bool,
    /// The interface toward a single-hop peer, if one has an address on its subnet.
    pub interface: Option<String>,
    pub state: State,
    pub remote_state: State,
    pub diag: Diag,
    pub since: SystemTime,
    /// Transmit interval (before jitter) and detection time now.
    pub interval: Duration,
    pub timeout: Duration,
    pub local_disc: u32,
    pub remote_disc: u32,
    /// Times the session left Up.
    pub flaps: u64,
}

enum Command {
    Add(Request, oneshot::Sender<watch::Receiver<Notice>>),
    Update(Request),
    Remove(IpAddr, bool),
    Show(oneshot::Sender<Vec<Info>>),
}

/// The handle on the BFD thread; the thread stops when every handle is gone.
#[derive(Clone)]
pub struct Bfd {
    commands: mpsc::Sender<Command>,
}

impl Bfd {
    /// Opens the listening sockets and starts the thread.
    pub fn start() -> io::Result<Bfd> {
        let (tx, rx) = mpsc::channel(256);
        task::spawn(rx)?;
        Ok(Bfd { commands: tx })
    }

    /// A session for `r` (a new one, or one another client asked for), to watch.
    pub async fn add(&self, r: Request) -> Option<watch::Receiver<Notice>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Add(r, tx)).await.ok()?;
        rx.await.ok()
    }

    /// New timers or key for a session, without taking it down (a Poll Sequence follows).
    pub async fn update(&self, r: Request) {
        let _ = self.commands.send(Command::Update(r)).await;
    }

    /// A client is done with its session; the last one takes it AdminDown and away.
    pub async fn remove(&self, peer: IpAddr, multihop: bool) {
        let _ = self.commands.send(Command::Remove(peer, multihop)).await;
    }

    pub async fn sessions(&self) -> Vec<Info> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Show(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

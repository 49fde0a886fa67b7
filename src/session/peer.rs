//! One peer's task: owns its TCP connection and timers, feeds the state machine, and carries
//! out its actions. Reading stops while the RIB is behind (bounded channel), but timers and
//! keepalives keep running, so a slow RIB never expires a hold timer.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::bfd;
use crate::model::Peer as PeerConfig;
use crate::wire::{self, Message, Negotiated, Open};

use super::fsm::{Action, Event, Fsm, Keep, State, Timer, collision};
use super::socket::{self, Options};
use super::{PeerId, Status, ToPeer, ToRib};

/// Writes queued to one connection before the peer stops taking more from the RIB.
const WRITE_QUEUE: usize = 256;
/// Most octets, and messages, gathered from the write queue into one write.
const WRITE_BATCH: usize = 64 * 1024;
const WRITE_BATCH_MESSAGES: usize = 256;
/// How long an incoming connection that collides with ours has to send its OPEN.
const COLLISION_OPEN_WAIT: Duration = Duration::from_secs(30);

struct Conn {
    read: OwnedReadHalf,
    write: mpsc::Sender<Bytes>,
    /// We dialled it (RFC 4271 §6.8 keeps the one dialled by the higher identifier).
    outgoing: bool,
    local: SocketAddr,
}

/// The peer task's state.
pub struct Peer {
    id: PeerId,
    cfg: PeerConfig,
    fsm: Fsm,
    status: Arc<Mutex<Status>>,
    commands: mpsc::Receiver<ToPeer>,
    /// For collision OPEN readers to hand connections back.
    self_tx: mpsc::Sender<ToPeer>,
    rib: mpsc::Sender<ToRib>,
    conn: Option<Conn>,
    dialling: Option<JoinHandle<io::Result<TcpStream>>>,
    /// The one incoming connection waiting for its OPEN to settle a collision.
    colliding: Option<JoinHandle<()>>,
    timers: HashMap<Timer, Instant>,
    rbuf: BytesMut,
    /// Messages for the RIB that wait for channel space, in order; reading pauses
    /// meanwhile, so only what no read brings (a session's end) can join the first.
    pending: VecDeque<ToRib>,
    /// Sessions that reached Established so far: the number of the current one.
    sessions: u64,
    rx: Negotiated,
    tx: Negotiated,
    /// The peer's BFD session, if it has one (RFC 5882).
    bfd: Option<watch::Receiver<bfd::Notice>>,
    /// Whether BFD lets the session run: after Up (or the peer's AdminDown, which is no
    /// failure, RFC 5882 §3.2), until Down.
    path_up: bool,
    /// The operator wants the session (Start, not Stop).
    wanted: bool,
}

impl Peer {
    pub fn new(
        id: PeerId,
        cfg: PeerConfig,
        fsm: Fsm,
        status: Arc<Mutex<Status>>,
        commands: mpsc::Receiver<ToPeer>,
        self_tx: mpsc::Sender<ToPeer>,
        rib: mpsc::Sender<ToRib>,
    ) -> Peer {
        Peer {
            id,
            cfg,
            fsm,
            status,
            commands,
            self_tx,
            rib,
            conn: None,
            dialling: None,
            colliding: None,
            timers: HashMap::new(),
            // Allocated on the first read: a configured peer that never connects costs nothing.
            rbuf: BytesMut::new(),
            pending: VecDeque::new(),
            sessions: 0,
            rx: opening(),
            tx: opening(),
            path_up: true,
            bfd: None,
            wanted: false,
        }
    }

    /// Runs until the command channel closes.
    pub async fn run(mut self) {
        loop {
            let next = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let reading = self.conn.is_some() && self.pending.is_empty();
            let rib = self.rib.clone();
            let wake = tokio::select! {
                biased;
                cmd = self.commands.recv() => Wake::Command(cmd),
                () = sleep_until(next.map(|(_, at)| at)), if next.is_some() => Wake::Timer(next.map(|(t, _)| t)),
                permit = rib.reserve_owned(), if !self.pending.is_empty() => Wake::Rib(permit.ok()),
                r = dial_result(&mut self.dialling), if self.dialling.is_some() => Wake::Dialled(r),
                r = read_some(&mut self.conn, &mut self.rbuf), if reading => Wake::Read(r),
                n = bfd_change(&mut self.bfd), if self.bfd.is_some() => Wake::Bfd(n),
            };
            // What a wake-up does runs in its own allocation: the task itself, idle most of
            // the time, stays small (a thousand peers hold a thousand of them).
            if !Box::pin(self.on_wake(wake)).await {
                return;
            }
        }
    }

    /// Acts on what woke the task; `false` when the task must end.
    async fn on_wake(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::Command(Some(c)) => self.command(c).await,
            Wake::Command(None) => {
                let n = super::fsm::cease(
                    wire::notification::cease::PEER_DECONFIGURED,
                    "peer de-configured",
                );
                self.event(Event::Stop(n)).await;
                self.flush_and_close();
                return false;
            }
            Wake::Timer(Some(t)) => {
                self.timers.remove(&t);
                // A paused reader is not the peer's silence: wait for the RIB instead.
                if t == Timer::Hold && !self.pending.is_empty() {
                    self.timers
                        .insert(t, Instant::now() + Duration::from_secs(1));
                } else {
                    self.event(Event::Expired(t)).await;
                }
            }
            Wake::Timer(None) => {}
            Wake::Rib(permit) => {
                match (permit, self.pending.pop_front()) {
                    (Some(p), Some(m)) => {
                        p.send(m);
                    }
                    _ => return false,
                }
                // What waited behind it goes as far as there is room.
                while let Some(m) = self.pending.pop_front() {
                    if let Err(m) = self.try_tell_rib(m) {
                        self.pending.push_front(m);
                        break;
                    }
                }
                self.drain_frames().await;
            }
            Wake::Dialled(r) => {
                self.dialling = None;
                match r {
                    Ok(stream) => {
                        self.attach(stream, true);
                        self.event(Event::Connected).await;
                    }
                    Err(e) => {
                        debug!(peer = %self.cfg.name, "connect failed: {e}");
                        self.set_error(format!("Socket: {}", crate::sys::os_message(&e)));
                        self.event(Event::Closed).await;
                    }
                }
            }
            Wake::Read(Ok(0) | Err(_)) => {
                self.conn = None;
                self.event(Event::Closed).await;
            }
            Wake::Read(Ok(_)) => self.drain_frames().await,
            Wake::Bfd(n) => self.bfd(n).await,
        }
        true
    }

    /// RFC 5882 §4.3: BFD Down ends the session at once and keeps it down until BFD is Up
    /// again; the peer's AdminDown is no failure (§3.2). Without its BFD session (the
    /// client removed it, or the thread ended) the session runs on its own.
    async fn bfd(&mut self, n: Option<bfd::Notice>) {
        let up = match n {
            None => {
                self.bfd = None;
                true
            }
            Some(n) if n.state == bfd::State::Up || n.remote_admin_down => true,
            Some(n) if n.state == bfd::State::Down => {
                if self.path_up && self.fsm.state() != State::Idle {
                    warn!(peer = %self.cfg.name, "BFD session down ({}): closing", n.diag.text());
                }
                false
            }
            Some(_) => return,
        };
        if up == self.path_up {
            return;
        }
        self.path_up = up;
        if !up {
            self.event(Event::PathDown).await;
        } else if self.wanted {
            self.event(Event::Start).await;
        }
    }

    async fn command(&mut self, c: ToPeer) {
        match c {
            ToPeer::Start => {
                self.count(|s| s.enabled = true);
                self.wanted = true;
                if self.path_up {
                    self.event(Event::Start).await
                }
            }
            ToPeer::Stop(n) => {
                self.count(|s| s.enabled = false);
                self.wanted = false;
                self.event(Event::Stop(n)).await
            }
            ToPeer::Shutdown(n) => {
                self.count(|s| s.enabled = false);
                self.wanted = false;
                self.event(Event::Shutdown(n)).await
            }
            ToPeer::Bfd(rx) => {
                // A session already up stays: only a later Down or restart waits for BFD.
                self.path_up = rx
                    .as_ref()
                    .is_none_or(|r| r.borrow().state == bfd::State::Up)
                    || self.fsm.state() != State::Idle;
                self.bfd = rx;
                if !self.path_up {
                    self.event(Event::PathDown).await
                } else if self.wanted {
                    self.event(Event::Start).await
                }
            }
            ToPeer::RestartComplete => self.event(Event::RestartComplete).await,
            ToPeer::RequestRefresh => self.event(Event::RequestRefresh).await,
            ToPeer::Send(n, bytes) if n == self.sessions => self.event(Event::Updates(bytes)).await,
            ToPeer::Send(n, _) => {
                debug!(peer = %self.cfg.name, session = n, "UPDATEs of an earlier session dropped");
            }
            ToPeer::Incoming(stream) => self.incoming(*stream).await,
            ToPeer::IncomingOpen(c) => {
                self.colliding = None;
                let (stream, open, rest) = *c;
                self.collision(stream, open, rest).await
            }
        }
    }

    /// Whether a connection beside the session's is waiting for its OPEN to settle a collision.
    fn collision_pending(&self) -> bool {
        self.colliding.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// A connection from the peer's address arrived at the listener. Beside the session's own
    /// connection at most one more waits for its OPEN, as in BIRD (`bgp_incoming_connection`
    /// keeps one incoming connection): more are closed at once, so connections from the
    /// peer's address cannot pile up.
    async fn incoming(&mut self, stream: TcpStream) {
        if self.collision_pending() {
            debug!(peer = %self.cfg.name, "refused a connection: one is already waiting for its OPEN");
            return;
        }
        match self.fsm.state() {
            State::Connect | State::Active => {
                if let Err(e) =
                    socket::apply(&stream, self.cfg.address.is_ipv6(), &self.socket_options())
                {
                    warn!(peer = %self.cfg.name, "socket options: {e}");
                }
                if let Some(d) = self.dialling.take() {
                    d.abort();
                }
                self.conn = None;
                self.attach(stream, false);
                self.event(Event::Connected).await;
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                // RFC 4271 §6.8: decide once the new connection's OPEN names its identifier.
                let back = self.self_tx.clone();
                self.colliding = Some(tokio::spawn(async move {
                    if let Ok(Ok(Some((s, open, rest)))) =
                        tokio::time::timeout(COLLISION_OPEN_WAIT, read_open(stream)).await
                    {
                        let _ = back
                            .send(ToPeer::IncomingOpen(Box::new((s, open, rest))))
                            .await;
                    }
                }));
            }
            State::Idle => debug!(peer = %self.cfg.name, "refused a connection while idle"),
        }
    }

    /// A connection from the peer while another is in use: the machine decides which stays
    /// (RFC 4271 §6.8, RFC 4724 §4.2); the one that goes gets a Cease.
    async fn collision(&mut self, stream: TcpStream, open: Open, rest: BytesMut) {
        let state = self.fsm.state();
        let existing_outgoing = self.conn.as_ref().is_some_and(|c| c.outgoing);
        if self.fsm.collision(existing_outgoing, open.bgp_id) == Keep::Existing {
            info!(peer = %self.cfg.name, "connection collision: keeping ours");
            close_with(stream, collision()).await;
            return;
        }
        info!(peer = %self.cfg.name, ?state, "connection collision: taking the peer's");
        // A dial still under way (the state went back to Connect meanwhile) would otherwise
        // complete later and replace the connection taken here.
        if let Some(d) = self.dialling.take() {
            d.abort();
        }
        if let Some(old) = self.conn.take() {
            let _ = old.write.try_send(
                Message::Notification(collision())
                    .to_bytes(&self.tx)
                    .unwrap_or_default()
                    .into(),
            );
        }
        self.attach(stream, false);
        self.rbuf = rest;
        if matches!(state, State::Connect | State::Active | State::Idle) {
            self.event(Event::Connected).await;
        } else {
            self.event(Event::Replaced).await;
        }
        self.event(Event::Message(Message::Open(open))).await;
        self.drain_frames().await;
    }

    fn attach(&mut self, stream: TcpStream, outgoing: bool) {
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer(write, rx));
        self.conn = Some(Conn {
            read,
            write: tx,
            outgoing,
            local,
        });
        self.rbuf.clear();
        self.rx = opening();
        self.tx = opening();
    }

    /// Frames and handles whatever whole messages the buffer holds.
    async fn drain_frames(&mut self) {
        while self.pending.is_empty() && self.conn.is_some() {
            let len = match wire::frame(&self.rbuf, &self.rx) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) => {
                    self.event(Event::Malformed(e)).await;
                    return;
                }
            };
            let msg = self.rbuf.split_to(len);
            self.count(|s| s.messages_in += 1);
            let ev = match wire::decode(&msg, &self.rx) {
                Ok(m) => Event::Message(m),
                Err(e) => Event::Malformed(e),
            };
            self.event(ev).await;
        }
        // Paused for the RIB: keep only the bytes not yet decoded, not a whole read buffer
        // (a storm of sessions all waiting for the RIB would hold 4 KiB each).
        if !self.pending.is_empty() && self.rbuf.capacity() >= 4 * self.rbuf.len() {
            self.rbuf = BytesMut::from(&self.rbuf[..]);
        }
    }

    async fn event(&mut self, e: Event) {
        let actions = self.fsm.handle(e);
        for a in actions {
            self.act(a).await;
        }
        let state = self.fsm.state();
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if st.state != state {
            st.state = state;
            st.since = SystemTime::now();
        }
    }

    async fn act(&mut self, a: Action) {
        match a {
            Action::Connect => {
                let dst = SocketAddr::new(self.cfg.address, self.cfg.port);
                let s = &self.cfg.settings;
                let (src, pw) = (s.source_address, s.password.clone());
                let opts = self.socket_options();
                self.dialling = Some(tokio::spawn(async move {
                    socket::connect(dst, src, pw.as_deref(), &opts).await
                }));
            }
            Action::Disconnect => {
                if let Some(d) = self.dialling.take() {
                    d.abort();
                }
                self.flush_and_close();
            }
            Action::Send(m) => {
                if let Message::Notification(n) = &m {
                    warn!(peer = %self.cfg.name, "sending NOTIFICATION: {n}");
                }
                match m.to_bytes(&self.tx) {
                    Ok(b) => self.write(b.into()),
                    Err(e) => warn!(peer = %self.cfg.name, "cannot encode {m:?}: {e}"),
                }
            }
            Action::Write(b) => self.write(b),
            Action::Start(t, secs) => self.set_timer(t, secs),
            Action::Stop(t) => {
                self.timers.remove(&t);
            }
            Action::Up(session) => {
                info!(peer = %self.cfg.name, hold = session.hold_time, "session established");
                self.rx = session.rx;
                self.tx = session.tx;
                let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
                st.session = Some(session.as_ref().clone());
                st.last_error = None;
                drop(st);
                let Some(local) = self.conn.as_ref().map(|c| c.local) else {
                    return;
                };
                self.sessions += 1;
                self.tell_rib(ToRib::Up {
                    peer: self.id,
                    session,
                    local,
                    number: self.sessions,
                });
            }
            Action::Down { reason, graceful } => {
                info!(peer = %self.cfg.name, "session down: {reason}");
                self.status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .session = None;
                self.tell_rib(ToRib::Down {
                    peer: self.id,
                    graceful,
                });
            }
            Action::Deliver {
                update,
                withdraw_all,
            } => {
                let prefixes = update.announced().count() as u64;
                self.count(|s| {
                    s.updates_in += 1;
                    s.prefixes_in += prefixes;
                });
                self.tell_rib(ToRib::Update {
                    peer: self.id,
                    update,
                    withdraw_all,
                });
            }
            Action::Refresh(r) => self.tell_rib(ToRib::Refresh {
                peer: self.id,
                request: r,
            }),
            Action::Error(e) => {
                warn!(peer = %self.cfg.name, "{e}");
                self.set_error(e);
            }
        }
    }

    /// Sends to the RIB now if there is room and nothing waits before it, else holds it
    /// (after what waits) and pauses reading.
    fn tell_rib(&mut self, m: ToRib) {
        if !self.pending.is_empty() {
            self.pending.push_back(m);
        } else if let Err(m) = self.try_tell_rib(m) {
            self.pending.push_back(m);
        }
    }

    /// Sends to the RIB if there is room; the message back if not (a closed RIB takes it).
    fn try_tell_rib(&self, m: ToRib) -> Result<(), ToRib> {
        match self.rib.try_send(m) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m)) => Err(m),
        }
    }

    fn write(&mut self, b: Bytes) {
        if let Some(c) = &self.conn {
            let (messages, updates) = count_messages(&b);
            if c.write.try_send(b).is_err() {
                warn!(peer = %self.cfg.name, "write queue full; closing");
                self.conn = None;
            } else {
                self.count(|s| {
                    s.messages_out += messages;
                    s.updates_out += updates;
                });
            }
        }
    }

    /// Drops the connection; its writer sends what was queued, then closes.
    fn flush_and_close(&mut self) {
        self.conn = None;
        self.rbuf.clear();
    }

    /// TTL as configured; eBGP peers default to 1, directly connected (as BIRD does).
    fn socket_options(&self) -> Options {
        let s = &self.cfg.settings;
        let ebgp = self.cfg.asn != self.fsm.params.local_asn;
        Options {
            ttl: s.ttl.or(ebgp.then_some(1)),
            ttl_security: s.ttl_security,
        }
    }

    fn set_timer(&mut self, t: Timer, secs: u16) {
        self.timers
            .insert(t, Instant::now() + Duration::from_secs(u64::from(secs)));
    }

    fn set_error(&self, e: String) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(e);
    }

    fn count(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// What woke the peer task.
enum Wake {
    Command(Option<ToPeer>),
    Timer(Option<Timer>),
    Rib(Option<mpsc::OwnedPermit<ToRib>>),
    Dialled(io::Result<TcpStream>),
    Read(io::Result<usize>),
    /// The BFD session changed, or is gone.
    Bfd(Option<bfd::Notice>),
}

/// The BFD session's next change; `None` once it is gone.
async fn bfd_change(rx: &mut Option<watch::Receiver<bfd::Notice>>) -> Option<bfd::Notice> {
    let r = rx.as_mut()?;
    r.changed().await.ok()?;
    Some(*r.borrow_and_update())
}

/// Before the OPENs are exchanged nothing is negotiated.
fn opening() -> Negotiated {
    Negotiated {
        four_octet_as: false,
        ..Negotiated::default()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn dial_result(d: &mut Option<JoinHandle<io::Result<TcpStream>>>) -> io::Result<TcpStream> {
    match d {
        Some(h) => h.await.unwrap_or_else(|e| Err(io::Error::other(e))),
        None => std::future::pending().await,
    }
}

/// Reads what the peer sent. An idle session holds no buffer: with every frame taken, the
/// allocation goes back before waiting for the socket, and a new one is made once there is
/// something to read (a thousand quiet sessions would otherwise hold 4 KiB each).
async fn read_some(conn: &mut Option<Conn>, buf: &mut BytesMut) -> io::Result<usize> {
    let Some(c) = conn else {
        return std::future::pending().await;
    };
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    loop {
        c.read.readable().await?;
        buf.reserve(4096);
        match c.read.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Writes queued messages in order; ends (closing the socket) when the queue is dropped.
/// What has queued up behind a message goes with it in one vectored write of up to
/// [`WRITE_BATCH`] octets: a reflector's clients are each sent every other client's UPDATE,
/// and one system call (and TCP segment) per message was most of its time.
async fn writer(mut w: OwnedWriteHalf, mut q: mpsc::Receiver<Bytes>) {
    while let Some(b) = q.recv().await {
        let Ok(next) = q.try_recv() else {
            if w.write_all(&b).await.is_err() {
                return;
            }
            continue;
        };
        let mut size = b.len() + next.len();
        let mut batch = vec![b, next];
        while size < WRITE_BATCH && batch.len() < WRITE_BATCH_MESSAGES {
            match q.try_recv() {
                Ok(more) => {
                    size += more.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        if write_all_vectored(&mut w, &mut batch).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Writes every buffer, in order, in as few system calls as the socket takes.
async fn write_all_vectored(w: &mut OwnedWriteHalf, bufs: &mut [Bytes]) -> io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        let slices: Vec<io::IoSlice<'_>> =
            bufs[first..].iter().map(|b| io::IoSlice::new(b)).collect();
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(b) = bufs.get_mut(first) {
            if n < b.len() {
                bytes::Buf::advance(b, n);
                break;
            }
            n -= b.len();
            first += 1;
        }
    }
    Ok(())
}

/// Reads the first message of a new connection; `Some` when it is an OPEN.
async fn read_open(mut s: TcpStream) -> io::Result<Option<(TcpStream, Open, BytesMut)>> {
    let mut buf = BytesMut::with_capacity(4096);
    let neg = opening();
    loop {
        match wire::frame(&buf, &neg) {
            Ok(Some(n)) => {
                let msg = buf.split_to(n);
                return Ok(match wire::decode(&msg, &neg) {
                    Ok(Message::Open(o)) => Some((s, o, buf)),
                    _ => None,
                });
            }
            Ok(None) => {
                if s.read_buf(&mut buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
    }
}

/// Sends a NOTIFICATION on a connection we are not keeping, then closes it.
async fn close_with(mut s: TcpStream, n: wire::Notification) {
    if let Ok(b) = Message::Notification(n).to_bytes(&opening()) {
        let _ = s.write_all(&b).await;
    }
    let _ = s.shutdown().await;
}

/// Messages, and UPDATEs among them, in a buffer of whole encoded messages (a group's
/// batch holds several): each header gives its length (octets 16–17) and type (octet 18).
fn count_messages(mut b: &[u8]) -> (u64, u64) {
    let (mut messages, mut updates) = (0, 0);
    while let (Some(len), Some(kind)) = (b.get(16..18), b.get(18)) {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        messages += 1;
        updates += u64::from(*kind == 2);
        match b.get(len.max(19)..) {
            Some(rest) => b = rest,
            None => break,
        }
    }
    (messages, updates)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::{WRITE_QUEUE, count_messages, writer};

    /// A full queue of messages of many sizes, some larger than a batch, arrives whole and in
    /// order however the writer gathers them, and the socket closes when the queue goes.
    #[tokio::test]
    async fn writer_sends_everything_queued_in_order() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (c, a) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        let (_, w) = c.unwrap().into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let mut want = Vec::new();
        for i in 0..WRITE_QUEUE {
            let len = [19, 4096, 70_000, 23][i % 4] + i;
            let b: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            want.extend_from_slice(&b);
            tx.try_send(Bytes::from(b)).unwrap();
        }
        drop(tx);
        let task = tokio::spawn(writer(w, rx));
        let mut got = Vec::new();
        a.unwrap().0.read_to_end(&mut got).await.unwrap();
        task.await.unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
    }

    #[test]
    fn counts_messages_in_a_batch() {
        let msg = |kind: u8, len: u16| {
            let mut m = vec![0xff; 16];
            m.extend(len.to_be_bytes());
            m.push(kind);
            m.resize(usize::from(len), 0);
            m
        };
        let mut batch = msg(2, 23);
        batch.extend(msg(4, 19));
        batch.extend(msg(2, 40));
        assert_eq!(count_messages(&batch), (3, 2));
        assert_eq!(count_messages(&[]), (0, 0));
        assert_eq!(count_messages(&batch[..20]), (1, 1));
    }
}

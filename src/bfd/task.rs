//! The BFD thread: every session's sockets and timers, on a runtime of its own. Received
//! packets are demultiplexed by our discriminator, then by the peer's address (RFC 5880
//! §6.8.6); each session sends from its own socket, a source port in 49152–65535 and TTL
//! 255 (RFC 5881 §4, RFC 5883 §5); single-hop packets arriving with a TTL below 255 are
//! dropped by the kernel (IP_MINTTL / IPV6_MINHOPCOUNT, RFC 5881 §5).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdSocket};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use socket2::{Domain, Socket, Type};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::auth::{self, RxSeq};
use super::clock::{self, Clock, Wake};
use super::fsm::{Action, Event, Session, jittered};
use super::packet::{PORT_MULTIHOP, PORT_SINGLE_HOP, Packet, State};
use super::{Command, Info, Notice, Request};
use crate::sys;

/// RFC 5881 §4: the source port range.
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// Opens the listening sockets and starts the thread.
pub(super) fn spawn(commands: mpsc::Receiver<Command>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listeners = {
        let _in_rt = rt.enter();
        listeners()
    };
    std::thread::Builder::new()
        .name("wren-bfd".into())
        .spawn(move || rt.block_on(run(commands, listeners)))?;
    Ok(())
}

/// UDP 3784 (TTL 255 required) and 4784, IPv4 and IPv6; one that cannot be opened is
/// reported and left out.
fn listeners() -> Vec<(UdpSocket, bool)> {
    let mut out = Vec::new();
    for (port, multihop) in [(PORT_SINGLE_HOP, false), (PORT_MULTIHOP, true)] {
        for any in [IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])] {
            let at = SocketAddr::new(any, port);
            match listener(at, multihop) {
                Ok(s) => out.push((s, multihop)),
                Err(e) => warn!("BFD: cannot listen on {at}: {e}"),
            }
        }
    }
    out
}

fn listener(at: SocketAddr, multihop: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(at), Type::DGRAM, None)?;
    if at.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if !multihop {
        let (level, _, min) = ttl_options(at.is_ipv6());
        sys::setsockopt_int(&s, level, min, 255)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&at.into())?;
    UdpSocket::from_std(s.into())
}

/// A session's socket: bound to its source address and a free port of the range, TTL 255;
/// connected to the peer when the source address is set (`true`), so that a send neither
/// looks up the route nor takes an IPv4 ID from the kernel's shared generator each time
/// (an ICMP error from the peer then fails the one send after it). Without a source
/// address, connecting would fix the one the kernel picks now for good.
fn sender(r: &Request, dst: SocketAddr, rng: &mut Rng) -> io::Result<(StdSocket, bool)> {
    let v6 = r.peer.is_ipv6();
    let local = r.local.unwrap_or(match v6 {
        true => IpAddr::from([0u16; 8]),
        false => IpAddr::from([0u8; 4]),
    });
    let s = Socket::new(
        Domain::for_address(SocketAddr::new(local, 0)),
        Type::DGRAM,
        None,
    )?;
    let (level, ttl, _) = ttl_options(v6);
    sys::setsockopt_int(&s, level, ttl, 255)?;
    s.set_nonblocking(true)?;
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let first = rng.next() % span;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for i in 0..span {
        let port = *SOURCE_PORTS.start() + ((first + i) % span) as u16;
        match s.bind(&SocketAddr::new(local, port).into()) {
            // No route to the peer yet: unconnected, every send finds the route.
            Ok(()) => {
                let connected = r.local.is_some() && s.connect(&dst.into()).is_ok();
                return Ok((s.into(), connected));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The level, the TTL option and the minimum-TTL option of a family.
fn ttl_options(v6: bool) -> (libc::c_int, libc::c_int, libc::c_int) {
    match v6 {
        true => (
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            libc::IPV6_MINHOPCOUNT,
        ),
        false => (libc::IPPROTO_IP, libc::IP_TTL, libc::IP_MINTTL),
    }
}

/// One session and what runs it.
struct Entry {
    req: Request,
    fsm: Session,
    sock: StdSocket,
    dst: SocketAddr,
    /// `sock` is connected to `dst`.
    connected: bool,
    /// bfd.XmitAuthSeq (§6.8.1).
    tx_seq: u32,
    rx_seq: RxSeq,
    last_rx: Option<Instant>,
    interval: Option<Duration>,
    tx: Deadline,
    detect: Deadline,
    notify: watch::Sender<Notice>,
    clients: usize,
    flaps: u64,
    since: SystemTime,
    interface: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Transmit,
    Detect,
}

struct Task {
    /// By our discriminator.
    sessions: HashMap<u32, Entry>,
    by_addr: HashMap<(IpAddr, bool), u32>,
    /// Deadlines; one no longer the session's own is skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, u32, Timer)>>,
    rng: Rng,
}

async fn run(mut commands: mpsc::Receiver<Command>, listeners: Vec<(UdpSocket, bool)>) {
    let mut t = Task {
        sessions: HashMap::new(),
        by_addr: HashMap::new(),
        timers: BinaryHeap::new(),
        rng: Rng::seeded(),
    };
    let mut buf = [0u8; 256];
    let mut turn = 0usize;
    let mut clock = Clock::new();
    loop {
        tokio::select! {
            biased;
            () = clock.sleep_until(t.next_wake()) => t.fire(Instant::now()),
            (r, multihop) = recv_any(&listeners, &mut buf, &mut turn) => {
                if let Ok((n, from)) = r {
                    t.receive(&buf[..n], from, multihop, Instant::now());
                }
            }
            c = commands.recv() => match c {
                Some(c) => t.command(c, Instant::now()),
                None => return,
            },
        }
    }
}

/// The next datagram from any listener, taking them in turn so that one cannot starve
/// the others.
async fn recv_any(
    socks: &[(UdpSocket, bool)],
    buf: &mut [u8],
    turn: &mut usize,
) -> (io::Result<(usize, SocketAddr)>, bool) {
    if socks.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for i in 0..socks.len() {
            let (s, multihop) = &socks[(*turn + i) % socks.len()];
            let mut rb = ReadBuf::new(buf);
            if let Poll::Ready(r) = s.poll_recv_from(cx, &mut rb) {
                *turn = (*turn + i + 1) % socks.len();
                return Poll::Ready((r.map(|from| (rb.filled().len(), from)), *multihop));
            }
        }
        Poll::Pending
    })
    .await
}

impl Task {
    fn command(&mut self, c: Command, now: Instant) {
        match c {
            Command::Add(r, reply) => {
                if let Some(e) = (self.by_addr.get(&r.key())).and_then(|d| self.sessions.get_mut(d))
                {
                    e.clients += 1;
                    let _ = reply.send(e.notify.subscribe());
                    return;
                }
                match self.create(r, now) {
                    Ok(rx) => {
                        let _ = reply.send(rx);
                    }
                    Err(e) => warn!("BFD: cannot open a session: {e}"),
                }
            }
            Command::Update(r) => {
                let Some(&disc) = self.by_addr.get(&r.key()) else {
                    return;
                };
                if let Some(e) = self.sessions.get_mut(&disc) {
                    e.req.key = r.key.clone();
                    let a = e.fsm.handle(Event::Configure(r.timers));
                    self.perform(disc, a, now);
                }
            }
            Command::Remove(peer, multihop) => {
                let Some(&disc) = self.by_addr.get(&(peer, multihop)) else {
                    return;
                };
                let Some(e) = self.sessions.get_mut(&disc) else {
                    return;
                };
                e.clients -= 1;
                if e.clients == 0 {
                    // §6.8.16: tell the peer the session is going away on purpose.
                    let a = e.fsm.handle(Event::AdminDown);
                    self.perform(disc, a, now);
                    self.sessions.remove(&disc);
                    self.by_addr.remove(&(peer, multihop));
                }
            }
            Command::Show(reply) => {
                let mut v: Vec<Info> = self.sessions.values().map(Entry::info).collect();
                v.sort_by_key(|i| (i.peer, i.multihop));
                let _ = reply.send(v);
            }
        }
    }

    fn create(&mut self, r: Request, now: Instant) -> io::Result<watch::Receiver<Notice>> {
        let port = if r.multihop {
            PORT_MULTIHOP
        } else {
            PORT_SINGLE_HOP
        };
        let dst = SocketAddr::new(r.peer, port);
        let (sock, connected) = sender(&r, dst, &mut self.rng)?;
        let disc = loop {
            let d = self.rng.next();
            if d != 0 && !self.sessions.contains_key(&d) {
                break d;
            }
        };
        let (notify, rx) = watch::channel(Notice {
            state: State::Down,
            diag: super::Diag::NONE,
            remote_admin_down: false,
        });
        let mut fsm = Session::new(disc, r.timers);
        let start = fsm.start();
        info!(peer = %r.peer, multihop = r.multihop, "BFD session created, discriminator {disc}");
        self.by_addr.insert(r.key(), disc);
        self.sessions.insert(
            disc,
            Entry {
                dst,
                connected,
                interface: (!r.multihop).then(|| interface_toward(r.peer)).flatten(),
                req: r,
                fsm,
                sock,
                tx_seq: self.rng.next(),
                rx_seq: RxSeq::default(),
                last_rx: None,
                interval: None,
                tx: Deadline::default(),
                detect: Deadline::default(),
                notify,
                clients: 1,
                flaps: 0,
                since: SystemTime::now(),
            },
        );
        self.perform(disc, start, now);
        Ok(rx)
    }

    /// A datagram on a listener: RFC 5880 §6.8.6's checks, then the session's machine.
    fn receive(&mut self, b: &[u8], from: SocketAddr, multihop: bool, now: Instant) {
        let p = match Packet::decode(b) {
            Ok(p) => p,
            Err(e) => {
                debug!(%from, "BFD: discarded: {e}");
                return;
            }
        };
        let disc = match p.your_disc {
            0 if matches!(p.state, State::Down | State::AdminDown) => {
                match self.by_addr.get(&(from.ip(), multihop)) {
                    Some(d) => *d,
                    None => return,
                }
            }
            0 => return,
            d => d,
        };
        let Some(e) = self.sessions.get_mut(&disc) else {
            return;
        };
        if (e.req.peer, e.req.multihop) != (from.ip(), multihop) {
            debug!(%from, "BFD: discarded: discriminator {disc} is another peer's");
            return;
        }
        // §6.8.1: the sequence is forgotten after twice the Detection Time of silence.
        if e.last_rx
            .is_some_and(|t| now - t > 2 * e.fsm.detection_time())
        {
            e.rx_seq.known = false;
        }
        if let Err(err) = auth::verify(e.req.key.as_ref(), b, &p, &mut e.rx_seq) {
            debug!(%from, "BFD: discarded: {err}");
            return;
        }
        e.last_rx = Some(now);
        let a = e.fsm.handle(Event::Received(p));
        self.perform(disc, a, now);
    }

    /// The first deadline in the heap: precise when it is a session's detection timer due
    /// then, not one a later packet pushed back (which only queues itself again).
    fn next_wake(&self) -> Option<Wake> {
        let &Reverse((at, disc, timer)) = self.timers.peek()?;
        let precise = timer == Timer::Detect
            && (self.sessions.get(&disc)).is_some_and(|e| e.detect.due_at(at));
        Some(Wake { at, precise })
    }

    /// Runs the timers that are due.
    fn fire(&mut self, now: Instant) {
        while let Some(&Reverse((at, disc, timer))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(e) = self.sessions.get_mut(&disc) else {
                continue;
            };
            match (e.deadline(timer).fire(at), timer) {
                (Fired::Stale, _) => {}
                (Fired::Again(t), _) => self.timers.push(Reverse((t, disc, timer))),
                (Fired::Due, Timer::Transmit) => {
                    let p = e.fsm.packet();
                    e.send(p);
                    self.schedule_tx(disc, now);
                }
                (Fired::Due, Timer::Detect) => {
                    let a = e.fsm.handle(Event::DetectExpired);
                    self.perform(disc, a, now);
                }
            }
        }
    }

    /// Sets one of a session's deadlines, adding a heap entry only when it needs one.
    fn arm(&mut self, disc: u32, timer: Timer, at: Option<Instant>) {
        let Some(e) = self.sessions.get_mut(&disc) else {
            return;
        };
        if let Some(t) = e.deadline(timer).set(at) {
            self.timers.push(Reverse((t, disc, timer)));
        }
    }

    fn schedule_tx(&mut self, disc: u32, now: Instant) {
        let r = self.rng.next();
        let Some(e) = self.sessions.get(&disc) else {
            return;
        };
        let mult = e.fsm.timers().multiplier;
        let at = (e.interval).map(|i| now + jittered(i, mult, r, clock::WHEEL_LATE));
        self.arm(disc, Timer::Transmit, at);
    }

    fn perform(&mut self, disc: u32, actions: Vec<Action>, now: Instant) {
        for a in actions {
            let Some(e) = self.sessions.get_mut(&disc) else {
                return;
            };
            match a {
                Action::Send(p) => e.send(p),
                Action::Transmit(i) => {
                    e.interval = i;
                    self.schedule_tx(disc, now);
                }
                Action::Detect(d) => self.arm(disc, Timer::Detect, d.map(|d| now + d)),
                Action::Changed { from, to, diag } => {
                    // The peer said it went down: its state and diagnostic say why.
                    let remote = match diag {
                        super::Diag::NEIGHBOR_DOWN => format!(
                            "; the peer is {}: {}",
                            e.fsm.remote_state().name(),
                            e.fsm.remote_diag().text()
                        ),
                        _ => String::new(),
                    };
                    info!(
                        peer = %e.req.peer,
                        "BFD session {} -> {} ({}{remote})",
                        from.name(),
                        to.name(),
                        diag.text()
                    );
                    if from == State::Up {
                        e.flaps += 1;
                    }
                    e.since = SystemTime::now();
                    e.notify.send_replace(Notice {
                        state: to,
                        diag,
                        remote_admin_down: e.fsm.remote_state() == State::AdminDown,
                    });
                }
            }
        }
    }
}

/// A session's deadline and its one entry in the timer heap: a later deadline waits for
/// that entry (queued again when it comes up) and only an earlier one adds another, so a
/// peer's packets, however many, cannot grow the heap.
#[derive(Debug, Default)]
struct Deadline {
    at: Option<Instant>,
    queued: Option<Instant>,
}

/// What a heap entry coming up means for its deadline.
#[derive(Debug, PartialEq, Eq)]
enum Fired {
    /// Not the deadline's entry any more.
    Stale,
    /// The deadline moved later: queue it again at this time.
    Again(Instant),
    Due,
}

impl Deadline {
    /// Sets (or with `None` clears) the deadline; `Some(t)` when an entry for `t` must go
    /// into the heap.
    fn set(&mut self, at: Option<Instant>) -> Option<Instant> {
        self.at = at;
        match (at, self.queued) {
            (None, _) => None,
            (Some(at), Some(q)) if q <= at => None,
            (Some(at), _) => {
                self.queued = Some(at);
                Some(at)
            }
        }
    }

    /// Whether the heap entry for `t` is the deadline itself (it will be [`Fired::Due`]).
    fn due_at(&self, t: Instant) -> bool {
        self.queued == Some(t) && self.at == Some(t)
    }

    /// The heap entry for `t` came up.
    fn fire(&mut self, t: Instant) -> Fired {
        if self.queued != Some(t) {
            return Fired::Stale;
        }
        self.queued = None;
        match self.at {
            None => Fired::Stale,
            Some(at) if at <= t => {
                self.at = None;
                Fired::Due
            }
            Some(at) => {
                self.queued = Some(at);
                Fired::Again(at)
            }
        }
    }
}

impl Entry {
    fn deadline(&mut self, t: Timer) -> &mut Deadline {
        match t {
            Timer::Transmit => &mut self.tx,
            Timer::Detect => &mut self.detect,
        }
    }
    /// Sends a packet, signed when the session has a key (every packet takes the next
    /// sequence number: §6.7.3 requires it for the meticulous types and allows it for the
    /// others).
    fn send(&mut self, p: Packet) {
        let b = match &self.req.key {
            Some(k) => {
                self.tx_seq = self.tx_seq.wrapping_add(1);
                auth::sign(p, k, self.tx_seq)
            }
            None => p.encode(),
        };
        let sent = match self.connected {
            true => self.sock.send(&b),
            false => self.sock.send_to(&b, self.dst),
        };
        if let Err(e) = sent {
            debug!(peer = %self.req.peer, "BFD: send: {e}");
        }
    }

    fn info(&self) -> Info {
        Info {
            peer: self.req.peer,
            multihop: self.req.multihop,
            interface: self.interface.clone(),
            state: self.fsm.state(),
            remote_state: self.fsm.remote_state(),
            diag: self.fsm.diag(),
            since: self.since,
            interval: self.interval.unwrap_or_default(),
            timeout: self.fsm.detection_time(),
            local_disc: self.fsm.local_disc(),
            remote_disc: self.fsm.remote_disc(),
            flaps: self.flaps,
        }
    }
}

/// The interface with an address on `peer`'s subnet.
fn interface_toward(peer: IpAddr) -> Option<String> {
    let addrs = sys::if_addrs().ok()?;
    addrs
        .into_iter()
        .find(|a| match (a.addr, a.netmask) {
            (Some(addr), Some(mask)) => {
                IpNet::with_netmask(addr, mask).is_ok_and(|n| n.contains(&peer))
            }
            _ => false,
        })
        .map(|a| a.name)
}

/// xorshift64*: discriminators, sequence numbers and jitter need to be unpredictable to a
/// casual observer, not cryptographic (authentication carries the security).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: IpAddr, local: Option<IpAddr>) -> Request {
        Request {
            peer,
            local,
            multihop: false,
            timers: super::super::Timers {
                min_tx: 100_000,
                min_rx: 100_000,
                multiplier: 3,
            },
            key: None,
        }
    }

    #[test]
    fn a_sender_with_a_source_address_is_connected_to_its_peer() {
        let peer = StdSocket::bind("127.0.0.1:0").unwrap();
        let dst = peer.local_addr().unwrap();
        let local = Some(IpAddr::from([127, 0, 0, 1]));
        let (s, connected) = sender(&request(dst.ip(), local), dst, &mut Rng::seeded()).unwrap();
        assert!(connected);
        assert_eq!(s.peer_addr().unwrap(), dst);
        let from = s.local_addr().unwrap();
        assert!(SOURCE_PORTS.contains(&from.port()), "{from}");
        s.send(b"x").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(peer.recv_from(&mut buf).unwrap(), (1, from));
        // Without one the kernel picks the source per packet: not connected.
        let (s, connected) = sender(&request(dst.ip(), None), dst, &mut Rng::seeded()).unwrap();
        assert!(!connected && s.peer_addr().is_err());
    }

    #[test]
    fn a_deadline_keeps_one_heap_entry() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Deadline::default();
        assert_eq!(d.set(Some(ms(300))), Some(ms(300)));
        assert!(d.due_at(ms(300)));
        // Every packet pushes detection later: no new entry, and the one queued is not due.
        for n in 301..400 {
            assert_eq!(d.set(Some(ms(n))), None);
        }
        assert!(!d.due_at(ms(300)));
        assert_eq!(d.fire(ms(300)), Fired::Again(ms(399)));
        assert!(d.due_at(ms(399)));
        assert_eq!(d.fire(ms(399)), Fired::Due);
        // Earlier than the entry: a new one, and the old one comes up stale.
        d.set(Some(ms(500)));
        assert_eq!(d.set(Some(ms(450))), Some(ms(450)));
        assert_eq!(d.fire(ms(450)), Fired::Due);
        assert_eq!(d.fire(ms(500)), Fired::Stale);
        // Cleared: the entry comes up stale.
        d.set(Some(ms(600)));
        d.set(None);
        assert_eq!(d.fire(ms(600)), Fired::Stale);
    }
}

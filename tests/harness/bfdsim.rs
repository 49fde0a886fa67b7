//! Many simulated BFD peers in one thread, for the scale bench: RFC 5880 asynchronous mode
//! over RFC 5881 single-hop IPv4, each session on wren's own state machine
//! ([`wren::bfd::fsm::Session`]: Down → Init → Up, a Final for every Poll, jittered
//! transmission per §6.8.7), and the device under test (DUT) watched from the wire.
//!
//! Session k owns address `base + k` (which must be on an interface of the namespace the
//! sockets are made in) and sends from its own socket on `(base + k, 49152 + k)` with TTL 255
//! (RFC 5881 §4); everything the DUT sends arrives on one socket bound to UDP 3784, which
//! requires TTL 255 (IP_MINTTL, §5) and tells which session it is for by its destination
//! address (IP_PKTINFO), checked against Your Discriminator when that is set. The thread
//! wakes once a millisecond, reads what arrived in batches (recvmmsg), sends what is due and
//! runs the detection timers.
//!
//! From the wire it counts, per session, the DUT's state changes: Up, and Down (or
//! AdminDown) after Up — a false Down, unless our side had gone Down first ([`Totals`]).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use wren::bfd::Diag;
use wren::bfd::fsm::{Action, Event, Session, Timers, jittered};
use wren::bfd::packet::{PORT_SINGLE_HOP as PORT, Packet, State};

use super::netns::in_netns;
use super::proc::clock;

/// RFC 5881 §4: the first source port.
const FIRST_SOURCE_PORT: u16 = 49152;
/// The thread's tick, and how often it publishes its counts.
const TICK: Duration = Duration::from_millis(1);
const PUBLISH: Duration = Duration::from_millis(100);
/// Datagrams read per recvmmsg call, and room for each (a Control packet is 24–52 octets).
const BATCH: usize = 64;
const DATAGRAM: usize = 128;

/// What the simulator has seen so far, summed over its sessions.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Sessions Up on both sides: ours, and the DUT's last packet.
    pub both_up: usize,
    /// The DUT's packets going to Up (from Down or Init).
    pub dut_ups: u64,
    /// The DUT's packets going from Up to Down or AdminDown while our side was Up: the
    /// DUT gave up on a live session (its diagnostic says why).
    pub false_downs: u64,
    /// The same after our side went Down first (the DUT only followed us).
    pub followed_downs: u64,
    /// Our sessions going Up, and leaving Up (detection expired: the DUT was silent for the
    /// detection time; or the DUT said Down).
    pub sim_ups: u64,
    pub sim_downs: u64,
    pub sim_expired: u64,
    /// Packets received for a session and sent; datagrams discarded (undecodable, for no
    /// session, or from a source port outside 49152–65535).
    pub rx: u64,
    pub tx: u64,
    pub discarded: u64,
    /// Send errors (the socket buffer full, the route gone).
    pub tx_errors: u64,
    /// The diagnostics of the DUT's Down packets after Up, by code.
    pub down_diags: [u64; 32],
    /// The latest a periodic packet left after its time (the simulator's own lag: a DUT's
    /// detection expiring is our fault when this nears a third of its detection time).
    pub max_tx_late: Duration,
    /// The simulator thread's CPU time.
    pub cpu: Duration,
}

/// The simulator thread and what it publishes.
pub struct Sim {
    stop: Arc<AtomicBool>,
    totals: Arc<Mutex<Totals>>,
    thread: Option<JoinHandle<()>>,
}

/// One simulated peer.
struct Peer {
    sock: UdpSocket,
    fsm: Session,
    interval: Option<Duration>,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    /// The state in the DUT's last packet.
    dut: State,
}

impl Sim {
    /// Opens `n` sessions' sockets in namespace `ns` (addresses `base`, `base + 1`, …
    /// already there) toward the DUT at `dut`, and starts the thread at nice `nice`.
    pub fn start(
        ns: &str,
        base: Ipv4Addr,
        n: usize,
        dut: Ipv4Addr,
        timers: Timers,
        nice: i32,
    ) -> io::Result<Sim> {
        let span = usize::from(u16::MAX - FIRST_SOURCE_PORT) + 1;
        if n > span {
            return Err(io::Error::other(format!("at most {span} sessions")));
        }
        let (rx, socks) = in_netns(ns, || {
            let rx = receiver()?;
            let socks = (0..n)
                .map(|k| {
                    sender(SocketAddrV4::new(
                        addr(base, k),
                        FIRST_SOURCE_PORT + k as u16,
                    ))
                })
                .collect::<io::Result<Vec<_>>>()?;
            Ok((rx, socks))
        })?;
        let peers = (socks.into_iter().enumerate())
            .map(|(k, sock)| Peer {
                sock,
                fsm: Session::new(k as u32 + 1, timers),
                interval: None,
                next_tx: None,
                detect_at: None,
                dut: State::Down,
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let totals = Arc::new(Mutex::new(Totals::default()));
        let mut run = Run {
            rx,
            peers,
            base,
            dut: SocketAddr::from((dut, PORT)),
            t: Totals::default(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()),
        };
        let (s, out) = (stop.clone(), totals.clone());
        let thread = std::thread::Builder::new()
            .name("bfd-sim".into())
            .spawn(move || {
                // SAFETY: setpriority on this thread (its tid) only.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice)
                };
                run.run(&s, &out)
            })?;
        Ok(Sim {
            stop,
            totals,
            thread: Some(thread),
        })
    }

    /// The counts as of the thread's last publication (at most 100 ms old).
    pub fn totals(&self) -> Totals {
        self.totals.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Ends the thread; every session's sockets close with it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn addr(base: Ipv4Addr, k: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(base.to_bits() + k as u32)
}

/// UDP 3784 on every address: TTL 255 required, the destination address reported.
fn receiver() -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    wren::sys::setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_MINTTL, 255)?;
    wren::sys::setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    s.set_recv_buffer_size(4 << 20)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)).into())?;
    Ok(s.into())
}

/// A session's own socket: its address and source port, TTL 255.
fn sender(at: SocketAddrV4) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    wren::sys::setsockopt_int(&s, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(at).into())?;
    Ok(s.into())
}

/// The thread's state.
struct Run {
    rx: UdpSocket,
    peers: Vec<Peer>,
    base: Ipv4Addr,
    dut: SocketAddr,
    t: Totals,
    rng: u64,
}

impl Run {
    fn run(&mut self, stop: &AtomicBool, out: &Mutex<Totals>) {
        let now = Instant::now();
        for k in 0..self.peers.len() {
            let a = self.peers[k].fsm.start();
            self.perform(k, a, now);
        }
        let mut bufs = vec![[0u8; DATAGRAM]; BATCH];
        let mut got = Vec::with_capacity(BATCH);
        let mut published = now;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            loop {
                got.clear();
                match recv_batch(&self.rx, &mut bufs, &mut got) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let now = Instant::now();
                for &(i, len, from, to) in &got {
                    self.receive(&bufs[i][..len], from, to, now);
                }
            }
            let now = Instant::now();
            self.timers(now);
            if now - published >= PUBLISH {
                published = now;
                self.t.cpu = clock(libc::CLOCK_THREAD_CPUTIME_ID);
                self.t.both_up = (self.peers.iter())
                    .filter(|p| p.fsm.state() == State::Up && p.dut == State::Up)
                    .count();
                if let Ok(mut o) = out.lock() {
                    *o = self.t.clone();
                }
            }
        }
    }

    /// A datagram from the DUT to `to`: the session whose address that is.
    fn receive(&mut self, b: &[u8], from: SocketAddrV4, to: Ipv4Addr, now: Instant) {
        let k = to.to_bits().wrapping_sub(self.base.to_bits()) as usize;
        let p = match Packet::decode(b) {
            Ok(p) if k < self.peers.len() && from.port() >= FIRST_SOURCE_PORT => p,
            _ => {
                self.t.discarded += 1;
                return;
            }
        };
        // RFC 5880 §6.8.6: a nonzero Your Discriminator must be ours.
        if p.your_disc != 0 && p.your_disc != k as u32 + 1 {
            self.t.discarded += 1;
            return;
        }
        self.t.rx += 1;
        let peer = &mut self.peers[k];
        match (peer.dut, p.state) {
            (State::Up, State::Down | State::AdminDown) => {
                match peer.fsm.state() {
                    State::Up => self.t.false_downs += 1,
                    _ => self.t.followed_downs += 1,
                }
                self.t.down_diags[usize::from(p.diag.0 & 0x1f)] += 1;
            }
            (State::Down | State::Init | State::AdminDown, State::Up) => self.t.dut_ups += 1,
            _ => {}
        }
        peer.dut = p.state;
        let a = peer.fsm.handle(Event::Received(p));
        self.perform(k, a, now);
    }

    /// Sends what is due and runs out the detection timers that expired.
    fn timers(&mut self, now: Instant) {
        for k in 0..self.peers.len() {
            let p = &mut self.peers[k];
            if p.detect_at.is_some_and(|t| t <= now) {
                p.detect_at = None;
                let a = p.fsm.handle(Event::DetectExpired);
                self.perform(k, a, now);
            }
            let p = &self.peers[k];
            if let Some(due) = p.next_tx.filter(|t| *t <= now) {
                self.t.max_tx_late = self.t.max_tx_late.max(now - due);
                let packet = p.fsm.packet();
                self.send(k, &packet);
                self.schedule(k, now);
            }
        }
    }

    fn perform(&mut self, k: usize, actions: Vec<Action>, now: Instant) {
        for a in actions {
            match a {
                Action::Send(p) => self.send(k, &p),
                Action::Transmit(i) => {
                    self.peers[k].interval = i;
                    self.schedule(k, now);
                }
                Action::Detect(d) => self.peers[k].detect_at = d.map(|d| now + d),
                Action::Changed { from, to, diag } => {
                    if to == State::Up {
                        self.t.sim_ups += 1;
                    }
                    if from == State::Up {
                        self.t.sim_downs += 1;
                        self.t.sim_expired += u64::from(diag == Diag::DETECTION_EXPIRED);
                    }
                }
            }
        }
    }

    /// The next periodic packet, jittered (§6.8.7).
    fn schedule(&mut self, k: usize, now: Instant) {
        // splitmix64: the jitter needs spread, not secrecy.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let r = (z ^ (z >> 31)) as u32;
        let p = &mut self.peers[k];
        p.next_tx = (p.interval).map(|i| now + jittered(i, p.fsm.timers().multiplier, r, TICK));
    }

    fn send(&mut self, k: usize, p: &Packet) {
        match self.peers[k].sock.send_to(&p.encode(), self.dut) {
            Ok(_) => self.t.tx += 1,
            Err(_) => self.t.tx_errors += 1,
        }
    }
}

/// Reads up to [`BATCH`] datagrams without waiting: for each, (buffer, length, source,
/// destination address) into `got`; the number read.
fn recv_batch(
    sock: &UdpSocket,
    bufs: &mut [[u8; DATAGRAM]],
    got: &mut Vec<(usize, usize, SocketAddrV4, Ipv4Addr)>,
) -> io::Result<usize> {
    let n = bufs.len().min(BATCH);
    // SAFETY: plain C structures, all-zero is a valid value of each.
    let mut names: [libc::sockaddr_in; BATCH] = unsafe { zeroed() };
    let mut ctrl = [[0u64; 8]; BATCH];
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for i in 0..n {
        iov[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: DATAGRAM,
        };
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = (&raw mut names[i]).cast();
        h.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        h.msg_iov = &raw mut iov[i];
        h.msg_iovlen = 1;
        h.msg_control = ctrl[i].as_mut_ptr().cast();
        h.msg_controllen = size_of::<[u64; 8]>();
    }
    // SAFETY: every header points at buffers that live until the call returns.
    let r = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let r = r as usize;
    for i in 0..r {
        let h = &msgs[i].msg_hdr;
        let from = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(names[i].sin_addr.s_addr)),
            u16::from_be(names[i].sin_port),
        );
        // SAFETY: the kernel filled the control buffer; the CMSG macros stay inside it.
        let to = unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            let mut to = None;
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                    let info = libc::CMSG_DATA(c)
                        .cast::<libc::in_pktinfo>()
                        .read_unaligned();
                    to = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
            to
        };
        if let Some(to) = to {
            got.push((i, msgs[i].msg_len as usize, from, to));
        }
    }
    Ok(r)
}

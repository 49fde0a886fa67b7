//! The peer task in tokio's paused time over real loopback connections: the hold timer
//! counts the peer's silence, not a RIB that is behind; a sent UPDATE restarts the
//! KeepaliveTimer (RFC 4271 §8.2.2 Established); a connection collision keeps the
//! connection the machine chooses (RFC 4271 §6.8) and sends the other a Cease; BFD gates
//! the session (RFC 5882); UPDATEs encoded for one session never go out on the next, and
//! what waits for the RIB reaches it in order. Time advances only when every task waits, so
//! the tests take no real time.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use wren::config::{Peer as PeerConfig, PeerDefaults};
use wren::session::caps::local_open;
use wren::session::{Handle, State, ToPeer, ToRib, spawn};
use wren::wire::notification::{Code, cease};
use wren::wire::{self, Message, Negotiated, Notification, Prefix, Update};

const ASN: u32 = 64512;
const HOLD: u16 = 9;
const ME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// The remote speaker's reading side: bytes from the other end of the peer task's
/// connection.
struct Remote {
    read: OwnedReadHalf,
    buf: BytesMut,
}

fn neg() -> Negotiated {
    Negotiated::default()
}

impl Remote {
    /// The next message; a closed connection reads as `None`.
    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Ok(Some(n)) = wire::frame(&self.buf, &neg()) {
                let m = self.buf.split_to(n);
                return Some(wire::decode(&m, &neg()).expect("wren sent a malformed message"));
            }
            if self.read.read_buf(&mut self.buf).await.expect("read") == 0 {
                return None;
            }
        }
    }
}

async fn send(w: &mut OwnedWriteHalf, m: Message) {
    let b = m.to_bytes(&neg()).expect("encode");
    w.write_all(&b).await.expect("write");
}

/// Paused time jumps to the next timer whenever every task waits, even when a socket has
/// just become readable; a 10 ms tick keeps every jump, and so every reading's lateness,
/// that short.
fn fine_clock() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        loop {
            sleep(Duration::from_millis(10)).await;
        }
    })
}

fn peer(passive: bool, port: u16) -> (PeerConfig, PeerDefaults) {
    let settings = PeerDefaults {
        passive,
        hold_time: HOLD,
        connect_delay: 1,
        ..PeerDefaults::default()
    };
    let cfg = PeerConfig {
        name: "task".into(),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        asn: ASN,
        settings: settings.clone(),
    };
    (cfg, settings)
}

fn remote(s: TcpStream) -> (Remote, OwnedWriteHalf) {
    let (read, w) = s.into_split();
    (
        Remote {
            read,
            buf: BytesMut::new(),
        },
        w,
    )
}

/// A new connection from the peer, its wren end handed to the peer task as the listener
/// would; the peer's end returned.
async fn connect_to(h: &Handle) -> (Remote, OwnedWriteHalf) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let theirs = TcpStream::connect(addr).await.expect("connect");
    let (ours, _) = listener.accept().await.expect("accept");
    h.commands
        .send(ToPeer::Incoming(Box::new(ours)))
        .await
        .expect("hand over");
    remote(theirs)
}

/// Waits (at most `secs`) until the peer task shows `state`.
async fn reach(h: &Handle, state: State, secs: u64) {
    let wait = async {
        while h.status.lock().expect("status").state != state {
            sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(secs), wait)
        .await
        .unwrap_or_else(|_| panic!("{state:?} not reached"));
}

/// The peer's OPEN, with BGP Identifier `id`.
fn open_from(id: Ipv4Addr, settings: &PeerDefaults) -> Message {
    Message::Open(local_open(ASN, id, settings, false))
}

/// A passive peer task with hold time 9 and a RIB channel of `rib` places, handed one end
/// of a loopback connection; the OPEN exchange done from the other end.
async fn established(rib: usize) -> (Handle, mpsc::Receiver<ToRib>, Remote, OwnedWriteHalf) {
    fine_clock();
    let (cfg, settings) = peer(true, 179);
    let (rib_tx, rib_rx) = mpsc::channel(rib);
    let h = spawn(0, cfg, ASN, ME, false, rib_tx);
    h.commands.send(ToPeer::Start).await.expect("start");
    let (mut r, mut w) = connect_to(&h).await;
    assert!(matches!(r.recv().await, Some(Message::Open(_))));
    send(&mut w, open_from(PEER, &settings)).await;
    assert_eq!(r.recv().await, Some(Message::Keepalive));
    send(&mut w, Message::Keepalive).await;
    (h, rib_rx, r, w)
}

/// The messages that arrive in the next `secs` seconds; `None` last if the connection
/// closed.
async fn messages_for(r: &mut Remote, secs: u64) -> Vec<Option<Message>> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    while let Ok(m) = tokio::time::timeout_at(end, r.recv()).await {
        let closed = m.is_none();
        got.push(m);
        if closed {
            break;
        }
    }
    got
}

/// While the RIB is behind, the task stops reading (back-pressure) and the peer's
/// KEEPALIVEs wait in the socket: that is not the peer's silence, and the session stays.
/// Once the RIB catches up the KEEPALIVEs are read; a peer that really falls silent gets
/// Hold Timer Expired after the hold time.
#[tokio::test(start_paused = true)]
async fn a_rib_that_is_behind_never_expires_the_hold_timer() {
    // One place in the RIB channel: Up takes it, the next UPDATE waits.
    let (_h, mut rib, mut r, mut w) = established(1).await;
    send(&mut w, Message::Update(Update::default())).await;
    // The peer keeps talking: a KEEPALIVE every 3 s until told to stop (its socket stays
    // open: a closed one would end the session otherwise).
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let talker = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return w,
                () = sleep(Duration::from_secs(3)) => send(&mut w, Message::Keepalive).await,
            }
        }
    });
    let behind = messages_for(&mut r, 6 * u64::from(HOLD)).await;
    assert!(
        behind.iter().all(|m| *m == Some(Message::Keepalive)),
        "while the RIB is behind: {behind:?}"
    );
    assert!(behind.len() >= 15, "wren's KEEPALIVEs go on: {behind:?}");
    // The RIB catches up: Up, then the UPDATE; reading resumes and the session stays.
    assert!(matches!(rib.recv().await, Some(ToRib::Up { .. })));
    assert!(matches!(rib.recv().await, Some(ToRib::Update { .. })));
    let after = messages_for(&mut r, 3 * u64::from(HOLD)).await;
    assert!(
        after.iter().all(|m| *m == Some(Message::Keepalive)),
        "after the RIB caught up: {after:?}"
    );
    // The peer falls silent: Hold Timer Expired, a hold time after its last KEEPALIVE.
    let _ = stop.send(());
    let _w = talker.await.expect("talker");
    let silent = Instant::now();
    let n = loop {
        match timeout(Duration::from_secs(2 * u64::from(HOLD)), r.recv()).await {
            Ok(Some(Message::Keepalive)) => {}
            Ok(Some(Message::Notification(n))) => break n,
            other => panic!("expected Hold Timer Expired, got {other:?}"),
        }
    };
    assert_eq!((n.code, n.subcode), (4, 0));
    let quiet = silent.elapsed();
    assert!(
        quiet >= Duration::from_secs(u64::from(HOLD) - 3)
            && quiet <= Duration::from_secs(u64::from(HOLD) + 1),
        "Hold Timer Expired {quiet:?} after the peer's last KEEPALIVE was due"
    );
}

/// RFC 4271 §8.2.2 Established: sending an UPDATE restarts the KeepaliveTimer, so the next
/// KEEPALIVE comes a keepalive interval (hold / 3) after the UPDATE, not on the old beat.
#[tokio::test(start_paused = true)]
async fn a_sent_update_restarts_the_keepalive_timer() {
    let (h, mut rib, mut r, _w) = established(16).await;
    let Some(ToRib::Up { number, .. }) = rib.recv().await else {
        panic!("no Up")
    };
    // The KeepaliveTimer started with our KEEPALIVE; 2 s later, an UPDATE goes out.
    sleep(Duration::from_secs(2)).await;
    let update = Message::Update(Update::default())
        .to_bytes(&neg())
        .expect("encode");
    let sent = Instant::now();
    h.commands
        .send(ToPeer::Send(number, update.into()))
        .await
        .expect("send");
    assert_eq!(r.recv().await, Some(Message::Update(Update::default())));
    assert_eq!(r.recv().await, Some(Message::Keepalive));
    let gap = sent.elapsed();
    let interval = Duration::from_secs(u64::from(HOLD / 3));
    assert!(
        gap >= interval && gap < interval + Duration::from_millis(100),
        "KEEPALIVE {gap:?} after the UPDATE"
    );
}

/// An UPDATE withdrawing `net`, encoded.
fn withdrawal(net: &str) -> (Message, bytes::Bytes) {
    let u = Message::Update(Update {
        withdrawn: vec![Prefix::new(net.parse().expect("prefix"))].into(),
        ..Update::default()
    });
    let b = u.to_bytes(&neg()).expect("encode");
    (u, b.into())
}

/// The peer drops the connection and comes back: UPDATEs the RIB encoded for the first
/// session (queued before it saw that session end) never go out on the second, whose
/// initial table the RIB sends once it sees the new Up; those for the second do.
#[tokio::test(start_paused = true)]
async fn updates_encoded_for_an_earlier_session_are_dropped() {
    let (h, mut rib, r, w) = established(16).await;
    let Some(ToRib::Up { number: first, .. }) = rib.recv().await else {
        panic!("no Up")
    };
    drop((r, w));
    assert!(matches!(rib.recv().await, Some(ToRib::Down { .. })));
    reach(&h, State::Active, 120).await;
    let (mut r, mut w) = connect_to(&h).await;
    assert!(matches!(r.recv().await, Some(Message::Open(_))));
    send(&mut w, open_from(PEER, &peer(true, 179).1)).await;
    assert_eq!(r.recv().await, Some(Message::Keepalive));
    send(&mut w, Message::Keepalive).await;
    let Some(ToRib::Up { number: second, .. }) = rib.recv().await else {
        panic!("no second Up")
    };
    assert_ne!(first, second);
    let (_, old) = withdrawal("198.51.100.0/25");
    let (new, new_bytes) = withdrawal("198.51.100.128/25");
    for m in [ToPeer::Send(first, old), ToPeer::Send(second, new_bytes)] {
        h.commands.send(m).await.expect("send");
    }
    assert_eq!(r.recv().await, Some(new));
}

/// A session's end that comes while an UPDATE waits for room in the RIB's queue is not
/// lost behind it: the RIB gets the UPDATE, then the Down, in that order.
#[tokio::test(start_paused = true)]
async fn a_session_end_waits_behind_an_update_for_the_rib() {
    // One place in the RIB channel: Up takes it, the UPDATE waits in the task.
    let (h, mut rib, mut r, mut w) = established(1).await;
    send(&mut w, Message::Update(Update::default())).await;
    // Read: the peer's OPEN, KEEPALIVE and UPDATE.
    let read = async {
        while h.status.lock().expect("status").messages_in < 3 {
            sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(5), read)
        .await
        .expect("the UPDATE is read");
    // The operator stops the session while the UPDATE still waits.
    let stop = Notification::shutdown(0, "");
    h.commands.send(ToPeer::Stop(stop)).await.expect("stop");
    let cease = loop {
        match r.recv().await {
            Some(Message::Keepalive) => {}
            other => break other,
        }
    };
    assert!(
        matches!(&cease, Some(Message::Notification(n)) if n.code == Code::Cease as u8),
        "{cease:?}"
    );
    assert!(matches!(rib.recv().await, Some(ToRib::Up { .. })));
    let got = rib.recv().await;
    assert!(
        matches!(got, Some(ToRib::Update { .. })),
        "the waiting UPDATE was lost: {got:?}"
    );
    let got = rib.recv().await;
    assert!(
        matches!(got, Some(ToRib::Down { .. })),
        "the session's end was lost: {got:?}"
    );
}

/// RFC 4271 §6.8: wren dialled the peer and sent its OPEN (OpenSent) when the peer's own
/// connection arrives. The connection dialled by the higher BGP Identifier stays; the other
/// gets Cease / Connection Collision Resolution (RFC 4486) and is closed.
#[tokio::test(start_paused = true)]
async fn a_collision_keeps_the_connection_of_the_higher_identifier() {
    fine_clock();
    for (peer_id, keeps_ours) in [(PEER, false), (Ipv4Addr::new(198, 51, 100, 0), true)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (cfg, settings) = peer(false, listener.local_addr().expect("address").port());
        let (rib_tx, _rib) = mpsc::channel(16);
        let h = spawn(0, cfg, ASN, ME, false, rib_tx);
        h.commands.send(ToPeer::Start).await.expect("start");
        // wren dials after its connect delay.
        let (dialled, _) = listener.accept().await.expect("wren dials");
        let (mut ours, ours_w) = remote(dialled);
        assert!(matches!(ours.recv().await, Some(Message::Open(_))));
        // The peer's own connection, and its OPEN on it.
        let (theirs, mut theirs_w) = connect_to(&h).await;
        send(&mut theirs_w, open_from(peer_id, &settings)).await;
        let collision = Some(Message::Notification(Notification::new(
            Code::Cease,
            cease::CONNECTION_COLLISION_RESOLUTION,
            Vec::new(),
        )));
        // The loser's write half stays open: dropping it would close it from our side.
        let ((mut kept, mut kept_w), (mut closed, _closed_w)) = if keeps_ours {
            ((ours, ours_w), (theirs, theirs_w))
        } else {
            ((theirs, theirs_w), (ours, ours_w))
        };
        assert_eq!(
            closed.recv().await,
            collision,
            "{peer_id}: the loser's Cease"
        );
        assert_eq!(closed.recv().await, None, "{peer_id}: the loser closed");
        if keeps_ours {
            send(&mut kept_w, open_from(peer_id, &settings)).await;
        } else {
            // wren sends its OPEN on the connection it took, then answers the OPEN read.
            assert!(matches!(kept.recv().await, Some(Message::Open(_))));
        }
        assert_eq!(kept.recv().await, Some(Message::Keepalive), "{peer_id}");
        send(&mut kept_w, Message::Keepalive).await;
        reach(&h, State::Established, 1).await;
    }
}

/// A dial still under way when the peer's connection wins a collision is given up: it must
/// not complete later and replace the connection the session runs on. Real time (the dial
/// waits on the kernel's SYN retransmission): the listener wren dials has a full accept
/// queue, so its SYNs are dropped until the test makes room.
#[tokio::test]
async fn a_dial_under_way_does_not_replace_the_connection_a_collision_took() {
    // backlog 0 holds one connection; the filler takes it.
    let full =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    full.bind(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    full.listen(0).expect("listen");
    let port = full
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("address")
        .port();
    let _filler = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("filler");
    let (mut cfg, settings) = peer(false, port);
    cfg.settings.connect_delay = 30;
    cfg.settings.connect_retry = 1;
    let (rib_tx, _rib) = mpsc::channel(16);
    let h = spawn(0, cfg, ASN, ME, false, rib_tx);
    h.commands.send(ToPeer::Start).await.expect("start");
    // OpenSent on the peer's first connection; a second one arrives and waits for its OPEN.
    let (mut first, first_w) = connect_to(&h).await;
    assert!(matches!(first.recv().await, Some(Message::Open(_))));
    let (mut second, mut second_w) = connect_to(&h).await;
    // The first goes away: Active, then after connect_retry wren dials (SYN dropped).
    drop((first, first_w));
    reach(&h, State::Connect, 10).await;
    // The second connection's OPEN: the collision takes it (Connect has nothing to keep).
    send(&mut second_w, open_from(PEER, &settings)).await;
    assert!(matches!(second.recv().await, Some(Message::Open(_))));
    assert_eq!(second.recv().await, Some(Message::Keepalive));
    send(&mut second_w, Message::Keepalive).await;
    // Room in the accept queue: a dial still under way would now complete.
    let _accepted = full.accept().expect("accept the filler");
    let quiet = messages_for(&mut second, 5).await;
    assert!(
        quiet.iter().all(|m| *m == Some(Message::Keepalive)),
        "the session's connection: {quiet:?}"
    );
    assert_eq!(h.status.lock().expect("status").state, State::Established);
}

/// BGP as BFD's client (RFC 5882 §4.3): started, the session waits for its BFD session to
/// come Up; once Established, the peer's AdminDown changes nothing (§3.2), but BFD Down
/// ends the session at once (no NOTIFICATION, its routes withdrawn rather than kept for a
/// graceful restart) and it stays down until BFD is Up again.
#[tokio::test(start_paused = true)]
async fn bfd_gates_the_session() {
    use wren::bfd::{Diag, Notice, State as Bfd};
    let notice = |state, diag, remote_admin_down| Notice {
        state,
        diag,
        remote_admin_down,
    };
    fine_clock();
    let (cfg, settings) = peer(true, 179);
    let (rib_tx, mut rib) = mpsc::channel(16);
    let h = spawn(0, cfg, ASN, ME, false, rib_tx);
    let (bfd, rx) = tokio::sync::watch::channel(notice(Bfd::Down, Diag::NONE, false));
    h.commands.send(ToPeer::Bfd(Some(rx))).await.expect("bfd");
    h.commands.send(ToPeer::Start).await.expect("start");
    sleep(Duration::from_secs(10)).await;
    assert_eq!(h.status.lock().expect("status").state, State::Idle);
    bfd.send_replace(notice(Bfd::Init, Diag::NONE, false));
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.status.lock().expect("status").state, State::Idle);
    bfd.send_replace(notice(Bfd::Up, Diag::NONE, false));
    reach(&h, State::Active, 5).await;
    let (mut r, mut w) = connect_to(&h).await;
    assert!(matches!(r.recv().await, Some(Message::Open(_))));
    send(&mut w, open_from(PEER, &settings)).await;
    assert_eq!(r.recv().await, Some(Message::Keepalive));
    send(&mut w, Message::Keepalive).await;
    reach(&h, State::Established, 5).await;
    assert!(matches!(rib.recv().await, Some(ToRib::Up { .. })));

    bfd.send_replace(notice(Bfd::Down, Diag::NEIGHBOR_DOWN, true));
    sleep(Duration::from_secs(2)).await;
    assert_eq!(h.status.lock().expect("status").state, State::Established);

    bfd.send_replace(notice(Bfd::Up, Diag::NONE, false));
    bfd.send_replace(notice(Bfd::Down, Diag::DETECTION_EXPIRED, false));
    reach(&h, State::Idle, 1).await;
    assert!(matches!(
        rib.recv().await,
        Some(ToRib::Down {
            graceful: false,
            ..
        })
    ));
    assert_eq!(r.recv().await, None, "closed without a NOTIFICATION");
    let error = h.status.lock().expect("status").last_error.clone();
    assert_eq!(error.as_deref(), Some("Error: BFD session down"));
    sleep(Duration::from_secs(30)).await;
    assert_eq!(h.status.lock().expect("status").state, State::Idle);
    bfd.send_replace(notice(Bfd::Up, Diag::NONE, false));
    reach(&h, State::Active, 5).await;
}

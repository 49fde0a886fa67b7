//! The peer task's timing rules, in tokio's paused time over a real loopback connection:
//! the hold timer counts the peer's silence, not a RIB that is behind; a sent UPDATE
//! restarts the KeepaliveTimer (RFC 4271 §8.2.2 Established). Time advances only when
//! every task waits, so the test takes no real time.

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
use wren::session::{Handle, ToPeer, ToRib, spawn};
use wren::wire::{self, Message, Negotiated, Update};

const ASN: u32 = 64512;
const HOLD: u16 = 9;

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

/// A passive peer task with hold time 9 and a RIB channel of `rib` places, handed one end
/// of a loopback connection; the OPEN exchange done from the other end.
async fn established(rib: usize) -> (Handle, mpsc::Receiver<ToRib>, Remote, OwnedWriteHalf) {
    fine_clock();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let remote = TcpStream::connect(addr).await.expect("connect");
    let (ours, _) = listener.accept().await.expect("accept");
    let settings = PeerDefaults {
        passive: true,
        hold_time: HOLD,
        ..PeerDefaults::default()
    };
    let cfg = PeerConfig {
        name: "timing".into(),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: addr.port(),
        asn: ASN,
        settings: settings.clone(),
    };
    let (rib_tx, rib_rx) = mpsc::channel(rib);
    let h = spawn(0, cfg, ASN, Ipv4Addr::new(198, 51, 100, 1), false, rib_tx);
    h.commands.send(ToPeer::Start).await.expect("start");
    h.commands
        .send(ToPeer::Incoming(Box::new(ours)))
        .await
        .expect("hand over");
    let (read, mut w) = remote.into_split();
    let mut r = Remote {
        read,
        buf: BytesMut::new(),
    };
    assert!(matches!(r.recv().await, Some(Message::Open(_))));
    let open = local_open(ASN, Ipv4Addr::new(198, 51, 100, 2), &settings, false);
    send(&mut w, Message::Open(open)).await;
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
    assert!(matches!(rib.recv().await, Some(ToRib::Up { .. })));
    // The KeepaliveTimer started with our KEEPALIVE; 2 s later, an UPDATE goes out.
    sleep(Duration::from_secs(2)).await;
    let update = Message::Update(Update::default())
        .to_bytes(&neg())
        .expect("encode");
    let sent = Instant::now();
    h.commands
        .send(ToPeer::Send(update.into()))
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

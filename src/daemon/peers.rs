//! The peer registry: the one owner of peer ids. Adding a peer gives it the next id, starts
//! its task, enters it in the listeners' directory, puts its MD5 key on every listener and
//! its state in the RIB; removing it undoes all of that in the same call. Nothing else adds
//! or removes a peer, so the peer tasks, the directory, the keys and the RIB cannot drift
//! apart. A removed peer's id is never given again: a message its task sent before it
//! stopped finds nothing under that id rather than another peer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::warn;

use crate::bfd::{self, Bfd};
use crate::config::{BfdAuth, Peer as PeerConfig};
use crate::rib::{Outgoing, PeerInfo, Rib};
use crate::session::{self, Handle, PeerId, PeerMap, Status, ToPeer, ToRib, listen, socket};
use crate::wire::Notification;

/// A configured peer: how it is configured and its task.
struct Peer {
    config: PeerConfig,
    handle: Handle,
    /// The number of its session the RIB last saw come up (`ToRib::Up`).
    session: u64,
}

pub(super) struct Peers {
    peers: PeerMap<Peer>,
    /// The listeners' view: the task of each peer address.
    directory: listen::Directory,
    listeners: Vec<Arc<TcpListener>>,
    /// Graceful restart (RFC 4724 §4.2): when to drop a restarting peer's stale routes.
    stale_deadline: HashMap<PeerId, Instant>,
    /// This speaker's AS and BGP identifier (a change needs a restart: `config::diff`).
    asn: u32,
    router_id: Ipv4Addr,
    rib_tx: mpsc::Sender<ToRib>,
    /// The BFD thread, started with the first peer that asks for BFD.
    bfd: Option<Bfd>,
}

impl Peers {
    pub(super) fn new(asn: u32, router_id: Ipv4Addr, rib_tx: mpsc::Sender<ToRib>) -> Peers {
        Peers {
            peers: PeerMap::default(),
            directory: Arc::new(RwLock::new(HashMap::new())),
            listeners: Vec::new(),
            stale_deadline: HashMap::new(),
            asn,
            router_id,
            rib_tx,
            bfd: None,
        }
    }

    /// Listens at `at`, handing each connection to the peer task of its source address;
    /// the MD5 keys of the peers so far go on the new socket.
    pub(super) fn listen(&mut self, at: SocketAddr, v6_only: bool) -> std::io::Result<()> {
        let keys: Vec<(IpAddr, String)> = (self.peers.values())
            .filter_map(|p| Some((p.config.address, p.config.settings.password.clone()?)))
            .collect();
        let l = Arc::new(listen::open(at, v6_only, &keys)?);
        tokio::spawn(listen::run(l.clone(), self.directory.clone()));
        self.listeners.push(l);
        Ok(())
    }

    /// Adds a peer under a new id and starts its session (with the Restart State bit while
    /// `restarting`, RFC 4724 §3).
    pub(super) async fn add(&mut self, rib: &mut Rib, config: PeerConfig, restarting: bool) {
        let id = self.peers.ids();
        let bfd = self.bfd_session(&config).await;
        let handle = session::spawn(
            id,
            config.clone(),
            self.asn,
            self.router_id,
            restarting,
            self.rib_tx.clone(),
        );
        if bfd.is_some() {
            // Ahead of Start: the session waits for BFD to come Up (RFC 5882 §4.3).
            let _ = handle.commands.send(ToPeer::Bfd(bfd)).await;
        }
        if let Some(key) = &config.settings.password {
            self.set_key(&config, Some(key));
        }
        if let Ok(mut dir) = self.directory.write() {
            dir.insert(config.address, handle.commands.clone());
        }
        rib.add_peer(id, config.clone());
        let _ = handle.commands.send(ToPeer::Start).await;
        let given = self.peers.push(Peer {
            config,
            handle,
            session: 0,
        });
        debug_assert_eq!(given, id);
    }

    /// Stops a peer with `cease` and removes it everywhere; the RIB's messages withdrawing
    /// its routes are returned for the other peers.
    pub(super) async fn remove(
        &mut self,
        rib: &mut Rib,
        id: PeerId,
        cease: Notification,
    ) -> Vec<Outgoing> {
        let Some(p) = self.peers.remove(id) else {
            return Vec::new();
        };
        let _ = p.handle.commands.send(ToPeer::Stop(cease)).await;
        if let Ok(mut dir) = self.directory.write() {
            dir.remove(&p.config.address);
        }
        if p.config.settings.password.is_some() {
            self.set_key(&p.config, None);
        }
        if let (Some(r), Some(b)) = (bfd_request(&p.config, self.asn), &self.bfd) {
            b.remove(r.peer, r.multihop).await;
        }
        self.stale_deadline.remove(&id);
        rib.remove_peer(id)
    }

    /// New settings for a peer that keep its session (`config::diff`'s `reset: false`):
    /// new BFD timers or key go to the running BFD session (RFC 5880 §6.8.3 polls the
    /// peer); BFD turned on or off, or moved to another hop mode, gives the peer task its
    /// new session.
    pub(super) async fn set_config(&mut self, rib: &mut Rib, id: PeerId, config: PeerConfig) {
        let Some(old) = self.peers.get(id).map(|p| p.config.clone()) else {
            return;
        };
        match (bfd_request(&old, self.asn), bfd_request(&config, self.asn)) {
            (None, None) => {}
            (Some(o), Some(n)) if o.peer == n.peer && o.multihop == n.multihop => {
                if let (true, Some(b)) = (o != n, &self.bfd) {
                    b.update(n).await;
                }
            }
            (o, _) => {
                if let (Some(o), Some(b)) = (o, &self.bfd) {
                    b.remove(o.peer, o.multihop).await;
                }
                let rx = self.bfd_session(&config).await;
                self.send(id, ToPeer::Bfd(rx)).await;
            }
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.config = config.clone();
            rib.set_peer_config(id, config);
        }
    }

    /// Opens `p`'s BFD session if it asks for one, starting the BFD thread on first use.
    async fn bfd_session(&mut self, p: &PeerConfig) -> Option<watch::Receiver<bfd::Notice>> {
        let r = bfd_request(p, self.asn)?;
        if self.bfd.is_none() {
            match Bfd::start() {
                Ok(b) => self.bfd = Some(b),
                Err(e) => {
                    warn!(peer = %p.name, "BFD cannot start, the session runs without it: {e}");
                    return None;
                }
            }
        }
        self.bfd.as_ref()?.add(r).await
    }

    /// Every BFD session (for `show bfd sessions` and the metrics).
    pub(super) async fn bfd_sessions(&self) -> Vec<bfd::Info> {
        match &self.bfd {
            Some(b) => b.sessions().await,
            None => Vec::new(),
        }
    }

    /// Sets (or clears) the MD5 key for `p`'s address on every listener (RFC 2385).
    fn set_key(&self, p: &PeerConfig, key: Option<&str>) {
        for l in &self.listeners {
            let v6 = l.local_addr().is_ok_and(|a| a.is_ipv6());
            if let Err(e) = socket::set_md5(l.as_ref(), v6, p.address, key)
                && key.is_some()
            {
                warn!(peer = %p.name, "MD5 key on the listener: {e}");
            }
        }
    }

    /// The configured peer at `p`'s address and port (a peer's identity across reloads).
    pub(super) fn find(&self, p: &PeerConfig) -> Option<PeerId> {
        let same = |x: &PeerConfig| (x.address, x.port) == (p.address, p.port);
        self.peers
            .iter()
            .find(|(_, x)| same(&x.config))
            .map(|(id, _)| id)
    }

    /// Queues a command to a peer's task (none once it is removed).
    pub(super) async fn send(&self, id: PeerId, m: ToPeer) {
        if let Some(p) = self.peers.get(id) {
            let _ = p.handle.commands.send(m).await;
        }
    }

    /// Peer `id`'s session `number` came up: what the RIB encodes from now on is for it.
    pub(super) fn session_up(&mut self, id: PeerId, number: u64) {
        if let Some(p) = self.peers.get_mut(id) {
            p.session = number;
        }
    }

    /// Queues UPDATEs the RIB encoded for peer `id`'s current session.
    pub(super) async fn send_updates(&self, id: PeerId, bytes: Bytes) {
        if let Some(p) = self.peers.get(id) {
            let _ = p.handle.commands.send(ToPeer::Send(p.session, bytes)).await;
        }
    }

    /// Every peer task's command queue.
    pub(super) fn commands(&self) -> impl Iterator<Item = &mpsc::Sender<ToPeer>> {
        self.peers.values().map(|p| &p.handle.commands)
    }

    /// Every peer's status now, indexed by peer id (`None` for a removed one).
    pub(super) fn statuses(&self) -> Vec<Option<Status>> {
        (self.peers).map(|p| {
            p.handle
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// Peer `id`'s stale routes go at `at` (none: its timer stops).
    pub(super) fn stale_until(&mut self, id: PeerId, at: Option<Instant>) {
        match at {
            Some(at) if self.peers.get(id).is_some() => {
                self.stale_deadline.insert(id, at);
            }
            _ => {
                self.stale_deadline.remove(&id);
            }
        }
    }

    /// Sets or stops peer `id`'s stale-route timer after its session came up or went down,
    /// from what the RIB kept (RFC 4724 §4.2): the restart timer starts when the session
    /// goes, and stops when it is back, the routes still stale then waiting for End-of-RIB,
    /// bounded by the stale-path time ([`PeerInfo::stale_time`]).
    pub(super) fn stale_timer(&mut self, rib: &Rib, id: PeerId) {
        let time = rib.peer(id).and_then(PeerInfo::stale_time);
        self.stale_until(id, time.map(|t| Instant::now() + t));
    }

    /// Every running stale-route timer: whose, and when.
    pub(super) fn stale_deadlines(&self) -> impl Iterator<Item = (PeerId, Instant)> + '_ {
        self.stale_deadline.iter().map(|(p, at)| (*p, *at))
    }

    /// The first stale-route deadline, and whose.
    pub(super) fn next_stale(&self) -> Option<(PeerId, Instant)> {
        self.stale_deadlines().min_by_key(|(_, at)| *at)
    }
}

/// The BFD session a peer with BFD on asks for (RFC 5882), single-hop or multihop as its
/// BGP session is unless its BFD settings say; intervals in microseconds, as on the wire.
fn bfd_request(p: &PeerConfig, node_asn: u32) -> Option<bfd::Request> {
    let o = p.settings.bfd.0.as_ref()?;
    let kind = |a| match a {
        BfdAuth::Simple => bfd::packet::AuthType::SimplePassword,
        BfdAuth::KeyedMd5 => bfd::packet::AuthType::KeyedMd5,
        BfdAuth::MeticulousKeyedMd5 => bfd::packet::AuthType::MeticulousKeyedMd5,
        BfdAuth::KeyedSha1 => bfd::packet::AuthType::KeyedSha1,
        BfdAuth::MeticulousKeyedSha1 => bfd::packet::AuthType::MeticulousKeyedSha1,
    };
    Some(bfd::Request {
        peer: p.address,
        local: p.settings.source_address,
        multihop: o.multihop.unwrap_or_else(|| p.multihop(node_asn)),
        timers: bfd::Timers {
            min_tx: o.min_tx().saturating_mul(1000),
            min_rx: o.min_rx().saturating_mul(1000),
            multiplier: o.multiplier(),
        },
        key: (o.auth.zip(o.password.as_ref())).map(|(a, pw)| bfd::auth::Key {
            kind: kind(a),
            id: o.key_id.unwrap_or(1),
            secret: pw.as_bytes().to_vec(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::State;

    /// A node with two passive peers (their tasks wait for a connection and dial nobody).
    fn config() -> Config {
        Config::parse(
            r#"
router_id = "198.51.100.1"
asn = 64512
[defaults]
passive = true
[[peer]]
address = "198.51.100.2"
asn = 64512
[[peer]]
address = "198.51.100.3"
asn = 64512
"#,
        )
        .unwrap()
    }

    /// RFC 4724 §4.2 on the daemon's clock: a peer's connection drops and its restart timer
    /// (its 120 s) starts; it is back a second later, End-of-RIB still to come: the restart
    /// timer stops and the stale-path time bounds the wait; End-of-RIB leaves nothing stale
    /// to time; a drop by NOTIFICATION keeps nothing, so no timer.
    #[tokio::test(start_paused = true)]
    async fn restart_timer_stops_when_the_peer_is_back() {
        use std::time::Duration;

        use crate::rib::STALE_PATH_TIME;
        use crate::rib::tests::announce;
        use crate::session::Session;
        use crate::session::caps::local_open;
        use crate::wire::Update;

        let c = config();
        let (rib_tx, _rib_rx) = mpsc::channel(8);
        let mut rib = Rib::new(&c);
        let mut peers = Peers::new(c.asn, c.router_id, rib_tx);
        peers.add(&mut rib, c.peers[0].clone(), false).await;
        let settings = &c.peers[0].settings;
        let up = |rib: &mut Rib| {
            let me = local_open(c.asn, c.router_id, settings, false);
            let them = local_open(c.asn, Ipv4Addr::new(198, 51, 100, 2), settings, true);
            let local = SocketAddr::from(([198, 51, 100, 1], 179));
            rib.up(0, Session::new(me, them, None), local);
        };
        up(&mut rib);
        let route = announce(&["198.18.2.0/26"], [198, 51, 100, 2], &[]);
        let deadline = |peers: &Peers| peers.next_stale().map(|(_, at)| at - Instant::now());
        rib.update(0, &route, false);
        rib.down(0, true);
        peers.stale_timer(&rib, 0);
        assert_eq!(deadline(&peers), Some(Duration::from_secs(120)));
        tokio::time::advance(Duration::from_secs(1)).await;
        up(&mut rib);
        peers.stale_timer(&rib, 0);
        assert_eq!(deadline(&peers), Some(STALE_PATH_TIME));
        rib.update(0, &Update::default(), false);
        peers.stale_timer(&rib, 0);
        assert_eq!(deadline(&peers), None, "End-of-RIB: nothing stale");
        rib.update(0, &route, false);
        rib.down(0, false);
        peers.stale_timer(&rib, 0);
        assert_eq!(deadline(&peers), None, "a NOTIFICATION keeps nothing");
    }

    #[tokio::test]
    async fn one_registry_for_tasks_directory_and_rib() {
        let c = config();
        let (rib_tx, _rib_rx) = mpsc::channel(8);
        let mut rib = Rib::new(&c);
        let mut peers = Peers::new(c.asn, c.router_id, rib_tx);
        for p in &c.peers {
            peers.add(&mut rib, p.clone(), false).await;
        }
        let (a, b) = (&c.peers[0], &c.peers[1]);
        assert_eq!((peers.find(a), peers.find(b)), (Some(0), Some(1)));
        assert_eq!(rib.peers().map(|(id, _)| id).collect::<Vec<_>>(), [0, 1]);
        let dir = |peers: &Peers| {
            let d = peers.directory.read().unwrap();
            (d.contains_key(&a.address), d.contains_key(&b.address))
        };
        assert_eq!(dir(&peers), (true, true));
        let statuses = peers.statuses();
        assert_eq!(statuses.len(), 2);
        assert!(statuses.iter().flatten().all(|s| s.state == State::Idle));

        peers.stale_until(0, Some(Instant::now()));
        let cease = Notification::shutdown(0, "");
        peers.remove(&mut rib, 0, cease.clone()).await;
        assert_eq!((peers.find(a), rib.peer(0).map(|_| ())), (None, None));
        assert_eq!(dir(&peers), (false, true));
        assert_eq!(
            peers.next_stale(),
            None,
            "a removed peer's timer goes with it"
        );
        assert!(peers.remove(&mut rib, 0, cease).await.is_empty());
        // Back with its old address: a new id, not the removed one's.
        peers.add(&mut rib, a.clone(), false).await;
        assert_eq!(peers.find(a), Some(2));
        assert_eq!(rib.peers().map(|(id, _)| id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(dir(&peers), (true, true));
        let statuses = peers.statuses();
        assert_eq!(statuses.len(), 3);
        assert!(statuses[0].is_none() && statuses[2].is_some());
        assert_eq!(peers.commands().count(), 2);
        // A stale timer is kept only for a configured peer.
        peers.stale_until(0, Some(Instant::now()));
        peers.stale_until(1, Some(Instant::now()));
        assert_eq!(peers.next_stale().map(|(id, _)| id), Some(1));
        peers.stale_until(1, None);
        assert_eq!(peers.next_stale(), None);

        let mut limited = b.clone();
        limited.settings.import_limit = Some(10);
        peers.set_config(&mut rib, 1, limited).await;
        assert!(rib.import_limit(1).is_some());
    }

    /// A TOML peer's BFD is single-hop or multihop as BIRD makes a `bfd on` session's: iBGP
    /// multihop unless its TTL is 1 (BIRD's `direct`), eBGP single-hop unless its TTL or TTL
    /// security goes further; `bfd.multihop` overrides.
    #[test]
    fn bfd_hop_mode_follows_the_session() {
        let c = Config::parse(
            r#"
router_id = "198.51.100.1"
asn = 64512
[[peer]]
address = "198.51.100.2"
asn = 64512
bfd = true
[[peer]]
address = "198.51.100.3"
asn = 64512
ttl = 1
bfd = true
[[peer]]
address = "198.51.100.4"
asn = 65001
bfd = true
[[peer]]
address = "198.51.100.5"
asn = 65001
ttl_security = 2
bfd = true
[[peer]]
address = "198.51.100.6"
asn = 64512
bfd = { multihop = false }
[[peer]]
address = "198.51.100.7"
asn = 64512
"#,
        )
        .unwrap();
        let modes: Vec<Option<bool>> = (c.peers.iter())
            .map(|p| bfd_request(p, c.asn).map(|r| r.multihop))
            .collect();
        assert_eq!(
            modes,
            [
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                Some(false),
                None
            ]
        );
    }
}

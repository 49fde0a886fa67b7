//! The routing core: one table of every path (own routes and each peer's Adj-RIB-In), the
//! decision process, and per-group Adj-RIB-Out. Work is incremental: an UPDATE marks the
//! prefixes it touches, and only those are decided and exported again.

pub mod adj_out;
pub mod attrs;
pub mod best;
pub mod table;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use ipnet::IpNet;
use rustc_hash::FxHashMap;

use crate::config::{Config, Peer as PeerConfig};
use crate::policy::calico::Calico;
use crate::policy::reflect::{Source, Speaker, Target};
use crate::session::{PeerId, Session};
use crate::wire::{Family, RouteRefresh, Update};

use adj_out::{Advertised, Changes, Group, GroupKey};
use attrs::{AttrSet, Interner};
use best::Candidate;
use table::{PathSource, Table};

/// A peer as the RIB sees it.
#[derive(Debug)]
pub struct PeerInfo {
    pub config: PeerConfig,
    pub session: Option<Session>,
    pub local: Option<SocketAddr>,
    /// Families whose End-of-RIB arrived since the session came up.
    pub end_of_rib: Vec<Family>,
    group: Option<usize>,
    /// De-configured: its id stays, unused.
    pub removed: bool,
}

impl PeerInfo {
    fn ebgp(&self, local_asn: u32) -> bool {
        self.config.asn != local_asn
    }
}

/// Encoded messages for some peers (one update group's members, or one peer).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub peers: Vec<PeerId>,
    pub bytes: Bytes,
}

#[derive(Debug)]
pub struct Rib {
    pub speaker: Speaker,
    pub calico: Calico,
    pub max_paths: usize,
    pub peers: Vec<PeerInfo>,
    pub table: Table,
    interner: Interner,
    groups: Vec<Option<Group>>,
    /// Prefixes touched since the last flush.
    dirty: BTreeSet<(Family, IpNet)>,
    /// Prefixes whose best or multipath set changed, for the FIB.
    pub fib_dirty: BTreeSet<(Family, IpNet)>,
    /// Rewritten attributes per (group, family, source, attribute set, community ranges),
    /// valid for one flush.
    export_cache: FxHashMap<ExportKey, Option<Arc<AttrSet>>>,
}

type ExportKey = (usize, Family, PathSource, ByAddress, u64);

/// An attribute set compared by identity (interned sets are equal only when identical).
#[derive(Debug, Clone)]
struct ByAddress(Arc<AttrSet>);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByAddress {}

impl std::hash::Hash for ByAddress {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        Arc::as_ptr(&self.0).hash(h);
    }
}

fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

impl Rib {
    pub fn new(config: &Config) -> Rib {
        let mut rib = Rib {
            speaker: Speaker {
                asn: config.asn,
                router_id: config.router_id,
                cluster_id: config.cluster_id,
            },
            calico: Calico::from_config(config),
            max_paths: config.max_paths,
            peers: Vec::new(),
            table: Table::new(),
            interner: Interner::default(),
            groups: Vec::new(),
            dirty: BTreeSet::new(),
            fib_dirty: BTreeSet::new(),
            export_cache: FxHashMap::default(),
        };
        for p in config.peers() {
            rib.add_peer(p);
        }
        rib.originate();
        rib.flush();
        rib
    }

    /// Makes the table's own routes match what the policy originates.
    fn originate(&mut self) {
        let wanted: BTreeSet<IpNet> = self.calico.originated().collect();
        for ((f, net), e) in self.table.iter_mut() {
            if !wanted.contains(net) && e.remove(PathSource::Local, |_| true) {
                self.dirty.insert((*f, *net));
            }
        }
        let own = self.interner.intern(AttrSet::local());
        for net in wanted {
            let key = (family_of(&net), net);
            if self
                .table
                .entry(key)
                .or_default()
                .upsert(PathSource::Local, 0, own.clone())
            {
                self.dirty.insert(key);
            }
        }
    }

    /// A new peer; its id is the next index.
    pub fn add_peer(&mut self, config: PeerConfig) -> PeerId {
        self.peers.push(PeerInfo {
            config,
            session: None,
            local: None,
            end_of_rib: Vec::new(),
            group: None,
            removed: false,
        });
        self.peers.len() - 1
    }

    /// A de-configured peer: its routes go at once.
    pub fn remove_peer(&mut self, id: PeerId) -> Vec<Outgoing> {
        let out = self.down(id, false);
        if let Some(p) = self.peers.get_mut(id) {
            p.removed = true;
        }
        out
    }

    /// New policy (blocks, services, pools, communities, reflection): our own routes follow,
    /// and every prefix is decided and exported again (peers get only what changed).
    pub fn reconfigure(&mut self, config: &Config) -> Vec<Outgoing> {
        self.speaker.cluster_id = config.cluster_id;
        self.calico = Calico::from_config(config);
        self.max_paths = config.max_paths;
        self.originate();
        self.dirty.extend(self.table.keys().copied());
        self.flush()
    }

    /// A session came up: it joins its update group and gets the group's routes and
    /// End-of-RIB. Routes kept from its previous session stay, stale, until its End-of-RIB.
    pub fn up(&mut self, id: PeerId, session: Session, local: SocketAddr) -> Vec<Outgoing> {
        let Some(p) = self.peers.get_mut(id) else {
            return Vec::new();
        };
        p.session = Some(session);
        p.local = Some(local);
        p.end_of_rib.clear();
        let Some(key) = self.group_key(id) else {
            return Vec::new();
        };
        let existing = self
            .groups
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.key == key));
        let gi = match existing {
            Some(i) => i,
            None => {
                let mut g = Group::new(key);
                let mut ignored = Changes::default();
                let nets: Vec<(Family, IpNet)> = self.table.keys().copied().collect();
                let gi = self.groups.len();
                self.export_cache.clear();
                for (f, net) in nets {
                    let now = self.export(gi, &g.key, f, &net);
                    g.update(f, net, now, &mut ignored);
                }
                self.groups.push(Some(g));
                self.groups.len() - 1
            }
        };
        if let Some(p) = self.peers.get_mut(id) {
            p.group = Some(gi);
        }
        let Some(g) = self.groups[gi].as_mut() else {
            return Vec::new();
        };
        g.members.push(id);
        let mut bytes = g.encode(&g.dump(&g.key.families)).to_vec();
        bytes.extend_from_slice(&g.end_of_rib());
        vec![Outgoing {
            peers: vec![id],
            bytes: bytes.into(),
        }]
    }

    /// The session went down. When the connection was lost (`graceful`) and the peer can
    /// restart gracefully, its routes stay, marked stale (RFC 4724 §4.2); otherwise they go.
    pub fn down(&mut self, id: PeerId, graceful: bool) -> Vec<Outgoing> {
        let Some(p) = self.peers.get_mut(id) else {
            return Vec::new();
        };
        let keep = graceful
            && p.session
                .as_ref()
                .and_then(|s| s.peer_graceful_restart.as_ref())
                .is_some_and(|g| !g.families.is_empty());
        p.session = None;
        p.local = None;
        if let Some(gi) = p.group.take()
            && let Some(g) = self.groups[gi].as_mut()
        {
            g.members.retain(|m| *m != id);
            if g.members.is_empty() {
                self.groups[gi] = None;
            }
        }
        let src = PathSource::Peer(id);
        for (key, e) in self.table.iter_mut() {
            if keep {
                let mut touched = false;
                for path in e.paths.iter_mut().filter(|p| p.source == src) {
                    path.stale = true;
                    touched = true;
                }
                if touched {
                    self.dirty.insert(*key);
                }
            } else if e.remove(src, |_| true) {
                self.dirty.insert(*key);
            }
        }
        self.flush()
    }

    /// Drops a peer's paths that are still stale (its restart time ran out, or its
    /// End-of-RIB arrived for `family`).
    pub fn flush_stale(&mut self, id: PeerId, family: Option<Family>) -> Vec<Outgoing> {
        let src = PathSource::Peer(id);
        for ((f, net), e) in self.table.iter_mut() {
            if family.is_none_or(|x| x == *f) && e.remove(src, |p| p.stale) {
                self.dirty.insert((*f, *net));
            }
        }
        self.flush()
    }

    /// Applies a peer's UPDATE. `withdraw_all`: RFC 7606 treat-as-withdraw.
    pub fn update(&mut self, id: PeerId, u: &Update, withdraw_all: bool) -> Vec<Outgoing> {
        let Some(p) = self.peers.get(id) else {
            return Vec::new();
        };
        let Some(rx) = p.session.as_ref().map(|s| s.rx) else {
            return Vec::new();
        };
        if let Some(f) = u.end_of_rib() {
            if let Some(p) = self.peers.get_mut(id)
                && !p.end_of_rib.contains(&f)
            {
                p.end_of_rib.push(f);
            }
            return self.flush_stale(id, Some(f));
        }
        let ebgp = p.ebgp(self.speaker.asn);
        let allow = p.config.settings.allow_local_as;
        let src = PathSource::Peer(id);
        for (f, pfx) in u.withdrawals() {
            self.withdraw(src, f, pfx.net, pfx.path_id.unwrap_or(0));
        }
        let mut by_family: Vec<(Family, Option<Arc<AttrSet>>)> = Vec::new();
        for (f, pfx) in u.announced() {
            let rx_id = pfx.path_id.unwrap_or(0);
            if withdraw_all {
                self.withdraw(src, f, pfx.net, rx_id);
                continue;
            }
            let attrs = match by_family.iter().find(|(x, _)| *x == f) {
                Some((_, a)) => a.clone(),
                None => {
                    let a = AttrSet::from_update(u, f, &rx);
                    let a = self
                        .speaker
                        .accepts(&a, ebgp, allow)
                        .then(|| self.interner.intern(a));
                    by_family.push((f, a.clone()));
                    a
                }
            };
            match attrs {
                Some(a) => {
                    if self
                        .table
                        .entry((f, pfx.net))
                        .or_default()
                        .upsert(src, rx_id, a)
                    {
                        self.dirty.insert((f, pfx.net));
                    }
                }
                // A loop: the route is not usable, and replaces any earlier one.
                None => self.withdraw(src, f, pfx.net, rx_id),
            }
        }
        self.flush()
    }

    fn withdraw(&mut self, src: PathSource, f: Family, net: IpNet, rx_id: u32) {
        if let Some(e) = self.table.get_mut(&(f, net))
            && e.remove(src, |p| p.rx_id == rx_id)
        {
            self.dirty.insert((f, net));
        }
    }

    /// A ROUTE-REFRESH request: the group's routes of that family again, framed by BoRR/EoRR
    /// when enhanced route refresh was negotiated (RFC 7313 §4).
    pub fn refresh(&mut self, id: PeerId, request: RouteRefresh) -> Vec<Outgoing> {
        let f = Family {
            afi: request.afi,
            safi: request.safi,
        };
        let Some(p) = self.peers.get(id) else {
            return Vec::new();
        };
        let (Some(s), Some(g)) = (&p.session, p.group.and_then(|gi| self.groups[gi].as_ref()))
        else {
            return Vec::new();
        };
        if request.subtype != RouteRefresh::REQUEST || !g.key.families.contains(&f) {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if s.enhanced_route_refresh {
            bytes.extend_from_slice(&g.refresh_marker(f, RouteRefresh::BORR));
        }
        bytes.extend_from_slice(&g.encode(&g.dump(&[f])));
        if s.enhanced_route_refresh {
            bytes.extend_from_slice(&g.refresh_marker(f, RouteRefresh::EORR));
        }
        vec![Outgoing {
            peers: vec![id],
            bytes: bytes.into(),
        }]
    }

    /// Decides every touched prefix and sends each group what changed for it.
    fn flush(&mut self) -> Vec<Outgoing> {
        self.export_cache.clear();
        let dirty = std::mem::take(&mut self.dirty);
        for key in &dirty {
            self.decide(key);
        }
        let mut out = Vec::new();
        for gi in 0..self.groups.len() {
            let Some(mut g) = self.groups[gi].take() else {
                continue;
            };
            let mut changes = Changes::default();
            for (f, net) in &dirty {
                let now = self.export(gi, &g.key, *f, net);
                g.update(*f, *net, now, &mut changes);
            }
            if !changes.is_empty() {
                out.push(Outgoing {
                    peers: g.members.clone(),
                    bytes: g.encode(&changes),
                });
            }
            self.groups[gi] = Some(g);
        }
        for key in &dirty {
            if self.table.get(key).is_some_and(|e| e.paths.is_empty()) {
                self.table.remove(key);
            }
        }
        self.export_cache.clear();
        out
    }

    fn candidate<'a>(&self, src: PathSource, attrs: &'a AttrSet) -> Candidate<'a> {
        let peer = match src {
            PathSource::Peer(id) => self.peers.get(id),
            PathSource::Local => None,
        };
        Candidate {
            attrs,
            local: src == PathSource::Local,
            ebgp: peer.is_some_and(|p| p.ebgp(self.speaker.asn)),
            peer_id: peer
                .and_then(|p| p.session.as_ref().map(|s| s.remote.bgp_id))
                .unwrap_or(self.speaker.router_id),
            peer_addr: peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.config.address),
            reachable: true,
        }
    }

    /// Ranks a prefix's paths; notes a change of its best or multipath set for the FIB.
    fn decide(&mut self, key: &(Family, IpNet)) {
        let Some(e) = self.table.get_mut(key) else {
            return;
        };
        if e.paths.len() <= 1 {
            // One path (or none) needs no comparison.
            e.ranked.clear();
            e.ranked.extend(0..e.paths.len() as u32);
            e.ecmp = e.paths.len();
            let digest = e.multipath_digest();
            if digest != e.fib_digest {
                e.fib_digest = digest;
                self.fib_dirty.insert(*key);
            }
            return;
        }
        let Some(e) = self.table.get(key) else { return };
        // A fixed order (peer address, path identifier) makes the result independent of the
        // order updates arrived in.
        let mut order: Vec<usize> = (0..e.paths.len()).collect();
        order.sort_by_key(|i| {
            let p = &e.paths[*i];
            (
                self.candidate(p.source, &p.attrs).peer_addr,
                p.rx_id,
                p.source,
            )
        });
        let cands: Vec<Candidate> = order
            .iter()
            .map(|i| self.candidate(e.paths[*i].source, &e.paths[*i].attrs))
            .collect();
        let ranked: Vec<usize> = best::rank(&cands, cands.len())
            .into_iter()
            .map(|i| order[i])
            .collect();
        let ecmp = match ranked.first() {
            Some(b) => {
                let best = self.candidate(e.paths[*b].source, &e.paths[*b].attrs);
                ranked
                    .iter()
                    .take(self.max_paths)
                    .take_while(|i| {
                        let c = self.candidate(e.paths[**i].source, &e.paths[**i].attrs);
                        **i == *b || best::equal_cost(&best, &c)
                    })
                    .count()
            }
            None => 0,
        };
        if let Some(e) = self.table.get_mut(key) {
            e.ranked = ranked.into_iter().map(|i| i as u32).collect();
            e.ecmp = ecmp;
            let digest = e.multipath_digest();
            if digest != e.fib_digest {
                e.fib_digest = digest;
                self.fib_dirty.insert(*key);
            }
        }
    }

    /// What a group is sent for a prefix: its best path (or up to `send_max` with add-path)
    /// that propagation and Calico's export rules let through, rewritten for the group.
    fn export(&mut self, gi: usize, key: &GroupKey, f: Family, net: &IpNet) -> Advertised {
        if !key.families.contains(&f) || !self.calico.exports(net) {
            return Vec::new();
        }
        let Some(e) = self.table.get(&(f, *net)) else {
            return Vec::new();
        };
        let add_path = match f {
            Family::IPV4_UNICAST => key.tx.add_path_ipv4,
            Family::IPV6_UNICAST => key.tx.add_path_ipv6,
            _ => false,
        };
        let n = if add_path { key.send_max } else { 1 };
        let communities = self.calico.community_mask(net);
        let picked: Vec<(u32, PathSource, Arc<AttrSet>)> = e
            .ranked
            .iter()
            .take(n)
            .map(|i| &e.paths[*i as usize])
            .map(|p| {
                (
                    if add_path { p.tx_id } else { 0 },
                    p.source,
                    p.attrs.clone(),
                )
            })
            .collect();
        let mut out = Vec::new();
        for (id, src, attrs) in picked {
            // Most prefixes of an UPDATE share one attribute set: rewrite it once per flush.
            let cache_key = (gi, f, src, ByAddress(attrs.clone()), communities);
            let rewritten = match self.export_cache.get(&cache_key) {
                Some(r) => r.clone(),
                None => {
                    let from = self.source(src);
                    let r = self
                        .speaker
                        .propagates(&from, &key.target)
                        .then(|| self.speaker.rewrite(&from, &key.target, f, &attrs))
                        .flatten()
                        .map(|mut a| {
                            self.calico.add_communities(net, &mut a);
                            self.interner.intern(a)
                        });
                    self.export_cache.insert(cache_key, r.clone());
                    r
                }
            };
            if let Some(a) = rewritten {
                out.push((id, a));
            }
        }
        out
    }

    fn source(&self, src: PathSource) -> Source {
        match src {
            PathSource::Local => Source {
                local: true,
                ibgp: false,
                rr_client: false,
                bgp_id: self.speaker.router_id,
            },
            PathSource::Peer(id) => {
                let p = self.peers.get(id);
                Source {
                    local: false,
                    ibgp: p.is_some_and(|p| !p.ebgp(self.speaker.asn)),
                    rr_client: p.is_some_and(|p| p.config.settings.rr_client),
                    bgp_id: p
                        .and_then(|p| p.session.as_ref().map(|s| s.remote.bgp_id))
                        .unwrap_or(Ipv4Addr::UNSPECIFIED),
                }
            }
        }
    }

    /// The update group a peer belongs in, from its settings and its session.
    fn group_key(&self, id: PeerId) -> Option<GroupKey> {
        let p = self.peers.get(id)?;
        let s = p.session.as_ref()?;
        let local = p.local?.ip().to_canonical();
        let add_path_send = s.tx.add_path_ipv4 || s.tx.add_path_ipv6;
        Some(GroupKey {
            target: Target {
                ibgp: !p.ebgp(self.speaker.asn),
                rr_client: p.config.settings.rr_client,
                next_hop: p.config.settings.next_hop,
                local_v4: match local {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                },
                local_v6: match local {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => None,
                },
            },
            tx: s.tx,
            families: s.families.clone(),
            send_max: if add_path_send {
                p.config.settings.add_paths_send
            } else {
                1
            },
        })
    }

    /// Whether every configured peer is up and has sent End-of-RIB for each family of its
    /// session: the RIB holds what the network has (RFC 4724 §4.1).
    pub fn initial_sync_done(&self) -> bool {
        self.peers.iter().filter(|p| !p.removed).all(|p| {
            p.session
                .as_ref()
                .is_some_and(|s| s.families.iter().all(|f| p.end_of_rib.contains(f)))
        })
    }

    /// The number of update groups (for `show memory` and tests).
    pub fn group_count(&self) -> usize {
        self.groups.iter().flatten().count()
    }

    /// Paths received from a peer (its Adj-RIB-In size).
    pub fn received(&self, id: PeerId) -> usize {
        self.table
            .values()
            .flat_map(|e| &e.paths)
            .filter(|p| p.source == PathSource::Peer(id))
            .count()
    }

    /// Prefixes a peer's group advertises to it.
    pub fn advertised(&self, id: PeerId) -> usize {
        self.peers
            .get(id)
            .and_then(|p| p.group)
            .and_then(|gi| self.groups[gi].as_ref())
            .map_or(0, |g| g.sent.values().map(Vec::len).sum())
    }
}

#[cfg(test)]
mod tests;

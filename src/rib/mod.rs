//! Routing tables: each peer's Adj-RIB-In, and the UPDATEs that announce this node's own
//! prefixes. Best-path selection across peers, re-advertisement and route reflection are
//! not here yet.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::session::{PeerId, Session};
use crate::wire::attr::{MpReach, Origin, Segment, SegmentKind};
use crate::wire::{Attr, Family, Message, PathAttribute, Prefix, RouteRefresh, Update};

/// Attributes as received, shared by every prefix of the UPDATE that carried them.
pub type Attrs = Arc<Vec<PathAttribute>>;

/// A route in an Adj-RIB-In.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub attrs: Attrs,
    /// Kept from a session that went down under graceful restart (RFC 4724 §4.2).
    pub stale: bool,
}

/// Prefixes announced in one UPDATE's worth of NLRI: /26s take 5 octets, so this stays
/// well under 4096 octets with room for attributes.
const PREFIXES_PER_UPDATE: usize = 500;

/// Per-peer state the RIB keeps.
#[derive(Debug, Default)]
pub struct PeerRib {
    pub session: Option<Session>,
    pub local: Option<SocketAddr>,
    pub adj_in: BTreeMap<(Family, Prefix), Route>,
    /// Families whose End-of-RIB the peer has sent since the session came up.
    pub end_of_rib: Vec<Family>,
}

#[derive(Debug, Default)]
pub struct Rib {
    pub local_asn: u32,
    pub originated: Vec<IpNet>,
    pub peers: Vec<PeerRib>,
}

impl Rib {
    pub fn new(local_asn: u32, originated: Vec<IpNet>, peers: usize) -> Rib {
        Rib {
            local_asn,
            originated,
            peers: (0..peers).map(|_| PeerRib::default()).collect(),
        }
    }

    fn peer(&mut self, id: PeerId) -> Option<&mut PeerRib> {
        self.peers.get_mut(id)
    }

    /// A session came up: what to send it (our prefixes, then End-of-RIB per family).
    pub fn up(&mut self, id: PeerId, session: Session, local: SocketAddr) -> Vec<Message> {
        let Some(p) = self.peer(id) else {
            return Vec::new();
        };
        // RFC 4724 §4.2: routes kept from the previous session are stale until refreshed.
        for r in p.adj_in.values_mut() {
            r.stale = true;
        }
        p.end_of_rib.clear();
        p.session = Some(session);
        p.local = Some(local);
        self.announcements(id, true)
    }

    /// The session went down: with the peer's graceful restart its routes stay, marked
    /// stale (RFC 4724 §4.2); without it they go.
    pub fn down(&mut self, id: PeerId) {
        let Some(p) = self.peer(id) else { return };
        let keep = p.session.as_ref().is_some_and(|s| {
            s.peer_graceful_restart
                .as_ref()
                .is_some_and(|g| !g.families.is_empty())
        });
        p.session = None;
        if keep {
            p.adj_in.values_mut().for_each(|r| r.stale = true);
        } else {
            p.adj_in.clear();
        }
    }

    /// Drops a peer's routes still stale (restart timer over).
    pub fn flush_stale(&mut self, id: PeerId) {
        if let Some(p) = self.peer(id) {
            p.adj_in.retain(|_, r| !r.stale);
        }
    }

    /// Applies an UPDATE to the peer's Adj-RIB-In. On End-of-RIB the family's stale routes
    /// go (RFC 4724 §4.2).
    pub fn update(&mut self, id: PeerId, u: &Update, withdraw_all: bool) {
        let Some(p) = self.peer(id) else { return };
        if let Some(f) = u.end_of_rib() {
            p.adj_in.retain(|(fam, _), r| *fam != f || !r.stale);
            if !p.end_of_rib.contains(&f) {
                p.end_of_rib.push(f);
            }
            return;
        }
        for (f, pfx) in u.withdrawals() {
            p.adj_in.remove(&(f, *pfx));
        }
        if withdraw_all {
            for (f, pfx) in u.announced() {
                p.adj_in.remove(&(f, *pfx));
            }
            return;
        }
        let attrs: Attrs = Arc::new(
            u.attributes
                .iter()
                .filter(|a| !matches!(a.value, Attr::MpReach(_) | Attr::MpUnreach(_)))
                .cloned()
                .chain(u.mp_reach().map(|m| {
                    // Keep the next hop, drop the NLRI: the prefixes are the table's keys.
                    PathAttribute::new(Attr::MpReach(MpReach {
                        nlri: Vec::new(),
                        ..m.clone()
                    }))
                }))
                .collect(),
        );
        for (f, pfx) in u.announced() {
            p.adj_in.insert(
                (f, *pfx),
                Route {
                    attrs: attrs.clone(),
                    stale: false,
                },
            );
        }
    }

    /// A ROUTE-REFRESH request: everything again, framed by BoRR/EoRR when enhanced route
    /// refresh was negotiated (RFC 7313 §4).
    pub fn refresh(&mut self, id: PeerId, request: RouteRefresh) -> Vec<Message> {
        let family = Family {
            afi: request.afi,
            safi: request.safi,
        };
        let Some(s) = self.peers.get(id).and_then(|p| p.session.as_ref()) else {
            return Vec::new();
        };
        if !s.families.contains(&family) || request.subtype != RouteRefresh::REQUEST {
            return Vec::new();
        }
        let enhanced = s.enhanced_route_refresh;
        let marker = |subtype| Message::RouteRefresh(RouteRefresh { subtype, ..request });
        let mut out = Vec::new();
        if enhanced {
            out.push(marker(RouteRefresh::BORR));
        }
        out.extend(self.announcements(id, false).into_iter().filter(
            |m| matches!(m, Message::Update(u) if u.announced().all(|(f, _)| f == family)),
        ));
        if enhanced {
            out.push(marker(RouteRefresh::EORR));
        }
        out
    }

    /// UPDATEs announcing our prefixes to a peer, grouped per family, then End-of-RIB.
    fn announcements(&self, id: PeerId, end_of_rib: bool) -> Vec<Message> {
        let Some(p) = self.peers.get(id) else {
            return Vec::new();
        };
        let (Some(s), Some(local)) = (&p.session, p.local) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for family in &s.families {
            let nets: Vec<Prefix> = self
                .originated
                .iter()
                .filter(|n| {
                    matches!(
                        (n, *family),
                        (IpNet::V4(_), Family::IPV4_UNICAST) | (IpNet::V6(_), Family::IPV6_UNICAST)
                    )
                })
                .map(|n| Prefix {
                    net: *n,
                    // RFC 7911 §3: one path per prefix; any identifier will do.
                    path_id: sends_path_id(s, *family).then_some(1),
                })
                .collect();
            if let Some(attrs) = self.attributes(s, *family, local.ip()) {
                for chunk in nets.chunks(PREFIXES_PER_UPDATE) {
                    out.push(Message::Update(announce(*family, &attrs, chunk)));
                }
            }
            if end_of_rib {
                out.push(Message::Update(Update::end_of_rib_for(*family)));
            }
        }
        out
    }

    /// Attributes of our own routes toward a peer: ORIGIN IGP; AS_PATH empty over iBGP, our
    /// AS over eBGP (RFC 4271 §5.1.2); NEXT_HOP the session's local address (§5.1.3);
    /// LOCAL_PREF only over iBGP (§5.1.5). `None` when the session has no address of the
    /// family to give as next hop.
    fn attributes(&self, s: &Session, family: Family, local: IpAddr) -> Option<Vec<PathAttribute>> {
        let ibgp = s.peer_asn() == self.local_asn;
        let segments = if ibgp {
            Vec::new()
        } else {
            vec![Segment {
                kind: SegmentKind::Sequence,
                asns: vec![self.local_asn],
            }]
        };
        let mut attrs = vec![
            PathAttribute::new(Attr::Origin {
                origin: Origin::Igp,
            }),
            PathAttribute::new(Attr::AsPath { segments }),
        ];
        match (family, local) {
            (Family::IPV4_UNICAST, IpAddr::V4(nh)) => {
                attrs.push(PathAttribute::new(Attr::NextHop { next_hop: nh }))
            }
            (Family::IPV6_UNICAST, IpAddr::V6(nh)) => {
                attrs.push(PathAttribute::new(Attr::MpReach(MpReach {
                    afi: family.afi,
                    safi: family.safi,
                    next_hop: IpAddr::V6(nh),
                    link_local: None,
                    reserved: 0,
                    nlri: Vec::new(),
                })))
            }
            _ => return None,
        }
        if ibgp {
            attrs.push(PathAttribute::new(Attr::LocalPref { local_pref: 100 }));
        }
        Some(attrs)
    }

    /// Every route in every Adj-RIB-In, for `show route`.
    pub fn routes(&self) -> impl Iterator<Item = (PeerId, &Family, &Prefix, &Route)> {
        self.peers
            .iter()
            .enumerate()
            .flat_map(|(id, p)| p.adj_in.iter().map(move |((f, pfx), r)| (id, f, pfx, r)))
    }
}

fn sends_path_id(s: &Session, f: Family) -> bool {
    match f {
        Family::IPV4_UNICAST => s.tx.add_path_ipv4,
        Family::IPV6_UNICAST => s.tx.add_path_ipv6,
        _ => false,
    }
}

/// An UPDATE announcing `prefixes` with `attrs`; IPv6 prefixes go inside MP_REACH_NLRI.
fn announce(family: Family, attrs: &[PathAttribute], prefixes: &[Prefix]) -> Update {
    let mut attributes = attrs.to_vec();
    if family == Family::IPV4_UNICAST {
        return Update {
            withdrawn: Vec::new(),
            attributes,
            nlri: prefixes.to_vec(),
        };
    }
    for a in &mut attributes {
        if let Attr::MpReach(m) = &mut a.value {
            m.nlri = prefixes.to_vec();
        }
    }
    Update {
        withdrawn: Vec::new(),
        attributes,
        nlri: Vec::new(),
    }
}

//! Update groups: peers that would be sent the same thing share one group and each UPDATE,
//! built and encoded once for all of them. There is no Adj-RIB-Out copy (as in BIRD 2): the
//! RIB works out what changed from the paths a prefix had before (see `Rib::flush`) and queues
//! it here. Announcements with the same attribute set travel in one UPDATE, packed up to the
//! size the session allows.
//!
//! A route is never sent back to the peer it came from (BIRD rejects it in its BGP export
//! hook, FRR in `subgroup_announce_check`): a member that is the source of one of a
//! prefix's paths gets that prefix apart from the group's shared UPDATEs, as its own
//! difference with its own paths left out.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use tracing::warn;

use crate::attrs::AttrSet;
use crate::policy::filter::Direction;
use crate::policy::reflect::Target;
use crate::session::PeerId;
use crate::wire::attr::MpUnreach;
use crate::wire::{
    Attr, Family, HEADER_LEN, Message, Negotiated, PathAttribute, Prefix, RouteRefresh, Update,
};

/// What makes two peers' outbound streams identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub target: Target,
    /// How messages are encoded for the members (4-octet AS, add-path, extended messages).
    pub tx: Negotiated,
    pub families: Vec<Family>,
    /// Paths per prefix sent (more than 1 only with add-path send).
    pub send_max: usize,
    /// The members' BGPFilter export rules, run before Calico's export rules.
    pub export: Arc<Direction>,
}

impl GroupKey {
    pub fn add_path(&self, f: Family) -> bool {
        match f {
            Family::IPV4_UNICAST => self.tx.add_path_ipv4,
            Family::IPV6_UNICAST => self.tx.add_path_ipv6,
            _ => false,
        }
    }
}

#[derive(Debug)]
pub struct Group {
    pub key: GroupKey,
    pub members: Vec<PeerId>,
    /// Paths advertised to the members (for `show protocols`), their own paths included.
    pub advertised: usize,
    /// Per member, how many of `advertised` are its own paths and so not sent to it.
    withheld: FxHashMap<PeerId, usize>,
    /// Changes queued for every member since the last flush, but for the prefixes in `own`.
    pending: Changes,
    /// Members that are the source of a path of a changed prefix: those prefixes, and what
    /// the member gets for them instead.
    own: FxHashMap<PeerId, Own>,
}

/// A member's changes for prefixes one of whose paths it sent.
#[derive(Debug, Default)]
struct Own {
    nets: FxHashSet<(Family, IpNet)>,
    changes: Changes,
}

/// Announcements and withdrawals waiting to be encoded.
#[derive(Debug, Default)]
pub struct Changes {
    /// Per attribute set (by identity), the prefixes that carry it, in arrival order.
    announce: Vec<(Family, Arc<AttrSet>, Vec<Prefix>)>,
    index: FxHashMap<(Family, *const AttrSet), usize>,
    withdraw: Vec<(Family, Prefix)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Paths announced.
    pub fn announced(&self) -> usize {
        self.announce.iter().map(|(_, _, ps)| ps.len()).sum()
    }

    pub fn announce(&mut self, f: Family, attrs: &Arc<AttrSet>, p: Prefix) {
        let key = (f, Arc::as_ptr(attrs));
        let i = *self.index.entry(key).or_insert_with(|| {
            self.announce.push((f, attrs.clone(), Vec::new()));
            self.announce.len() - 1
        });
        self.announce[i].2.push(p);
    }

    pub fn withdraw(&mut self, f: Family, p: Prefix) {
        self.withdraw.push((f, p));
    }

    /// Every prefix announced.
    pub fn announced_prefixes(&self) -> impl Iterator<Item = (Family, Prefix)> + '_ {
        (self.announce.iter()).flat_map(|(f, _, ps)| ps.iter().map(move |p| (*f, *p)))
    }

    /// These changes but for the prefixes in `own.nets`, and `own.changes` for them.
    fn with_own(&self, own: &Own) -> Changes {
        let shared = |f: &Family, p: &Prefix| !own.nets.contains(&(*f, p.net));
        let mut out = Changes::default();
        for (f, a, ps) in &self.announce {
            for p in ps.iter().filter(|p| shared(f, p)) {
                out.announce(*f, a, *p);
            }
        }
        for (f, a, ps) in &own.changes.announce {
            for p in ps {
                out.announce(*f, a, *p);
            }
        }
        let withdrawn = self.withdraw.iter().filter(|(f, p)| shared(f, p));
        out.withdraw = withdrawn.chain(&own.changes.withdraw).copied().collect();
        out
    }
}

impl Group {
    pub fn new(key: GroupKey) -> Group {
        Group {
            key,
            members: Vec::new(),
            advertised: 0,
            withheld: FxHashMap::default(),
            pending: Changes::default(),
            own: FxHashMap::default(),
        }
    }

    /// Paths advertised to member `id`.
    pub fn advertised_to(&self, id: PeerId) -> usize {
        let withheld = self.withheld.get(&id).copied().unwrap_or(0);
        self.advertised.saturating_sub(withheld)
    }

    /// Counts `n` more (or fewer) of member `id`'s own paths among those advertised.
    pub fn withhold(&mut self, id: PeerId, n: isize) {
        let w = self.withheld.entry(id).or_default();
        *w = w.saturating_add_signed(n);
    }

    /// A member leaves.
    pub fn leave(&mut self, id: PeerId) {
        self.members.retain(|m| *m != id);
        self.withheld.remove(&id);
        self.own.remove(&id);
    }

    /// Prefix `key` goes to member `id` as queued with `to: Some(id)`, not as for the
    /// others.
    pub fn set_apart(&mut self, id: PeerId, key: (Family, IpNet)) {
        self.own.entry(id).or_default().nets.insert(key);
    }

    fn queue(&mut self, to: Option<PeerId>) -> &mut Changes {
        match to {
            None => &mut self.pending,
            Some(id) => &mut self.own.entry(id).or_default().changes,
        }
    }

    /// How path `id` of `net` is written to the members: with the identifier only under
    /// add-path (RFC 7911 §3).
    pub fn prefix(&self, f: Family, net: IpNet, id: u32) -> Prefix {
        Prefix {
            net,
            path_id: self.key.add_path(f).then_some(id),
        }
    }

    /// Queues an announcement (or a replacement) of path `id` of `net`, for every member
    /// (`to`: `None`) or for one set apart.
    pub fn announce(
        &mut self,
        to: Option<PeerId>,
        f: Family,
        net: IpNet,
        id: u32,
        attrs: &Arc<AttrSet>,
    ) {
        let p = self.prefix(f, net, id);
        self.queue(to).announce(f, attrs, p);
    }

    /// Queues the withdrawal of path `id` of `net`. RFC 7911: an identifier no longer used
    /// is withdrawn; without add-path, the prefix when nothing replaces it.
    pub fn withdraw(&mut self, to: Option<PeerId>, f: Family, net: IpNet, id: u32) {
        let p = self.prefix(f, net, id);
        self.queue(to).withdraw(f, p);
    }

    /// The queued changes, encoded: one message run for the members with nothing set
    /// apart, and one for each member with something.
    pub fn take_encoded(&mut self) -> Vec<(Vec<PeerId>, Bytes)> {
        let changes = std::mem::take(&mut self.pending);
        let own = std::mem::take(&mut self.own);
        let mut out = Vec::new();
        let shared: Vec<PeerId> = self
            .members
            .iter()
            .filter(|m| !own.contains_key(m))
            .copied()
            .collect();
        if !changes.is_empty() && !shared.is_empty() {
            out.push((shared, self.encode(&changes)));
        }
        for (id, o) in own.iter().filter(|(id, _)| self.members.contains(id)) {
            let mine = changes.with_own(o);
            if !mine.is_empty() {
                out.push((vec![*id], self.encode(&mine)));
            }
        }
        out
    }

    /// Encodes changes as UPDATEs (withdrawals first), packed to the session's size limit.
    pub fn encode(&self, c: &Changes) -> Bytes {
        let tx = &self.key.tx;
        let mut buf = BytesMut::new();
        let mut put = |u: Update| {
            if let Err(e) = Message::Update(u).encode(tx, &mut buf) {
                warn!("cannot encode an UPDATE: {e}");
            }
        };
        for family in &self.key.families {
            let withdrawn: Vec<Prefix> = c
                .withdraw
                .iter()
                .filter(|(f, _)| f == family)
                .map(|(_, p)| *p)
                .collect();
            for chunk in pack(&withdrawn, budget(tx, 8)) {
                put(withdrawal(*family, chunk));
            }
        }
        for (family, attrs, prefixes) in &c.announce {
            let base: usize = attrs
                .to_wire(*family, &[], tx)
                .iter()
                .map(|a| {
                    let mut b = BytesMut::new();
                    let _ = a.encode(tx, &mut b);
                    b.len()
                })
                .sum();
            for chunk in pack(prefixes, budget(tx, base + 4)) {
                let attributes = attrs.to_wire(*family, chunk, tx);
                let nlri = if *family == Family::IPV4_UNICAST {
                    chunk.into()
                } else {
                    Default::default()
                };
                put(Update {
                    withdrawn: Default::default(),
                    attributes: attributes.into(),
                    nlri,
                });
            }
        }
        buf.freeze()
    }

    /// End-of-RIB for every family (RFC 4724 §2), after a new member's initial dump.
    pub fn end_of_rib(&self) -> Bytes {
        self.messages(
            self.key
                .families
                .iter()
                .map(|f| Message::Update(Update::end_of_rib_for(*f))),
        )
    }

    /// BoRR or EoRR (RFC 7313 §4) for a family.
    pub fn refresh_marker(&self, f: Family, subtype: u8) -> Bytes {
        self.messages([Message::RouteRefresh(RouteRefresh {
            afi: f.afi,
            subtype,
            safi: f.safi,
        })])
    }

    fn messages(&self, ms: impl IntoIterator<Item = Message>) -> Bytes {
        let mut buf = BytesMut::new();
        for m in ms {
            if let Err(e) = m.encode(&self.key.tx, &mut buf) {
                warn!("cannot encode {m:?}: {e}");
            }
        }
        buf.freeze()
    }
}

/// Octets left for prefixes in one UPDATE after the header, the two length fields and
/// `overhead` octets of attributes (and MP attribute headers).
fn budget(tx: &Negotiated, overhead: usize) -> usize {
    tx.max_len()
        .saturating_sub(HEADER_LEN + 4 + overhead + 8)
        .max(64)
}

/// Splits prefixes into runs whose encodings fit `budget` octets.
fn pack(prefixes: &[Prefix], budget: usize) -> Vec<&[Prefix]> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, p) in prefixes.iter().enumerate() {
        let n = p.wire_len();
        if used + n > budget && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += n;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

/// An UPDATE withdrawing prefixes of one family (MP_UNREACH_NLRI outside IPv4 unicast).
fn withdrawal(f: Family, prefixes: &[Prefix]) -> Update {
    if f == Family::IPV4_UNICAST {
        return Update {
            withdrawn: prefixes.into(),
            ..Update::default()
        };
    }
    Update {
        attributes: vec![PathAttribute::new(Attr::MpUnreach(Box::new(MpUnreach {
            afi: f.afi,
            safi: f.safi,
            withdrawn: prefixes.to_vec(),
        })))]
        .into(),
        ..Update::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NextHopMode;
    use crate::wire::decode;

    fn group(add_path: bool) -> Group {
        Group::new(GroupKey {
            target: Target {
                ibgp: true,
                rr_client: false,
                next_hop: NextHopMode::Auto,
                local_v4: Some("198.51.100.1".parse().unwrap()),
                local_v6: None,
                local_asn: None,
            },
            tx: Negotiated {
                add_path_ipv4: add_path,
                ..Negotiated::default()
            },
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            send_max: 1,
            export: Arc::default(),
        })
    }

    fn decoded(g: &Group, b: &Bytes) -> Vec<Update> {
        let mut rest = &b[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let n = crate::wire::frame(rest, &g.key.tx).unwrap().unwrap();
            match decode(&rest[..n], &g.key.tx).unwrap() {
                Message::Update(u) => out.push(u),
                m => panic!("{m:?}"),
            }
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn many_prefixes_one_attribute_set_pack_into_few_updates() {
        let mut g = group(false);
        let mut attrs = AttrSet::local();
        attrs.next_hop = Some("198.51.100.1".parse().unwrap());
        let a = Arc::new(attrs);
        for i in 0..2000u32 {
            let net: IpNet = format!(
                "198.{}.{}.{}/26",
                18 + i / 1024,
                (i / 4) % 256,
                (i % 4) * 64
            )
            .parse()
            .unwrap();
            g.announce(None, Family::IPV4_UNICAST, net, 0, &a);
        }
        let c = std::mem::take(&mut g.pending);
        let bytes = g.encode(&c);
        let updates = decoded(&g, &bytes);
        assert_eq!(updates.iter().map(|u| u.nlri.len()).sum::<usize>(), 2000);
        assert!(
            updates.len() <= 3,
            "{} UPDATEs for 2000 /26s",
            updates.len()
        );
        // A withdrawal.
        let net: IpNet = "198.18.0.0/26".parse().unwrap();
        g.withdraw(None, Family::IPV4_UNICAST, net, 0);
        let c = std::mem::take(&mut g.pending);
        let updates = decoded(&g, &g.encode(&c));
        assert_eq!(updates[0].withdrawn.len(), 1);
        assert_eq!(updates[0].withdrawn[0].path_id, None);
    }

    #[test]
    fn add_path_identifiers_and_partial_withdrawal() {
        let mut g = group(true);
        let a = Arc::new(AttrSet {
            next_hop: Some("198.51.100.2".parse().unwrap()),
            ..AttrSet::local()
        });
        let b = Arc::new(AttrSet {
            next_hop: Some("198.51.100.3".parse().unwrap()),
            ..AttrSet::local()
        });
        let net: IpNet = "198.18.0.0/26".parse().unwrap();
        g.announce(None, Family::IPV4_UNICAST, net, 1, &a);
        g.announce(None, Family::IPV4_UNICAST, net, 2, &b);
        let c = std::mem::take(&mut g.pending);
        assert_eq!(decoded(&g, &g.encode(&c)).len(), 2);
        g.withdraw(None, Family::IPV4_UNICAST, net, 2);
        let c = std::mem::take(&mut g.pending);
        let u = decoded(&g, &g.encode(&c));
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].withdrawn[0].path_id, Some(2));
    }
}

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

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;
use std::thread::LocalKey;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use tracing::warn;

use crate::attrs::AttrSet;
use crate::policy::filter::Direction;
use crate::policy::reflect::Target;
use crate::session::PeerId;
use crate::wire::attr::MpUnreach;
use crate::wire::{
    Announcement, Attr, Family, HEADER_LEN, Message, Negotiated, PathAttribute, Prefix,
    RouteRefresh, Update,
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
    /// the member gets for them instead; `own_at` says where each is.
    own: Vec<(PeerId, Own)>,
    own_at: FxHashMap<PeerId, usize>,
}

/// Lists longer than this are not kept for reuse (see [`SPARE_PREFIXES`]).
const SPARE_MAX: usize = 16_384;

thread_local! {
    /// One emptied list of announced prefixes, and one of set-apart runs, kept for the next
    /// flush of the thread (the RIB's): wrend fixes glibc's mmap threshold at 128 KiB, so
    /// the list of a burst's batch (14,336 prefixes, 400 KB) would otherwise be mapped afresh
    /// every flush and faulted in a page at a time (about 1,000 page faults in a 100k-route
    /// burst). At most [`SPARE_MAX`] entries each stay.
    static SPARE_PREFIXES: RefCell<Vec<Prefix>> = const { RefCell::new(Vec::new()) };
    static SPARE_RUNS: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
}

/// The kept list of `spare` (empty, with its room), or a new one.
fn reuse<T: 'static>(spare: &'static LocalKey<RefCell<Vec<T>>>) -> Vec<T> {
    spare.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Keeps `v`, emptied, as `spare`'s list if it has more room than the one kept (and at most
/// [`SPARE_MAX`]).
fn keep<T: 'static>(spare: &'static LocalKey<RefCell<Vec<T>>>, mut v: Vec<T>) {
    if v.capacity() > SPARE_MAX {
        return;
    }
    v.clear();
    spare.with(|s| {
        let mut s = s.borrow_mut();
        if v.capacity() > s.capacity() {
            *s = v;
        }
    });
}

/// A member's changes for prefixes one of whose paths it sent.
#[derive(Debug, Default)]
struct Own {
    /// Where those prefixes' changes for the other members lie in `Group::pending`.
    apart: Apart,
    changes: Changes,
    /// How many more (or fewer) of the member's own paths are advertised, since the flush.
    withheld: isize,
}

/// Where a queued change lies in a [`Changes`]: its list (a family's withdrawals, or an
/// attribute set's announcements) and its index there. Changes are only appended until they
/// are encoded, so a slot stays put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    kind: Kind,
    list: u32,
    at: u32,
}

impl Slot {
    /// Appends `p` to `ps`, list `list` of `kind`; where it lies.
    #[inline]
    fn append(kind: Kind, list: usize, ps: &mut Vec<Prefix>, p: Prefix) -> Slot {
        ps.push(p);
        Slot {
            kind,
            list: list as u32,
            at: (ps.len() - 1) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Withdrawn,
    Announced,
}

/// `len` consecutive slots of one list, from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    first: Slot,
    len: u32,
}

impl Run {
    /// The indices the run covers in its list.
    fn span(&self) -> Range<usize> {
        let at = self.first.at as usize;
        at..at + self.len as usize
    }
}

/// The changes set apart from a member, as runs of consecutive slots: the prefixes of a
/// burst from one peer lie side by side, so a flush's many slots make few runs.
#[derive(Debug, Default)]
pub struct Apart(Vec<Run>);

impl Apart {
    /// Adds `s`, extending the last run when `s` follows it in its list.
    #[inline]
    pub fn push(&mut self, s: Slot) {
        if let Some(r) = self.0.last_mut()
            && (r.first.kind, r.first.list) == (s.kind, s.list)
            && r.first.at.checked_add(r.len) == Some(s.at)
        {
            r.len += 1;
            return;
        }
        self.start(s);
    }

    /// A new run at `s`.
    #[cold]
    fn start(&mut self, s: Slot) {
        if self.0.capacity() == 0 {
            self.0 = reuse(&SPARE_RUNS);
        }
        self.0.push(Run { first: s, len: 1 });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The runs of list `(kind, list)`, in order (the runs sorted).
    fn of(&self, kind: Kind, list: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let key = (kind, list as u32);
        let from = (self.0).partition_point(|r| (r.first.kind, r.first.list) < key);
        (self.0[from..].iter())
            .take_while(move |r| (r.first.kind, r.first.list) == key)
            .map(Run::span)
    }
}

/// Announcements and withdrawals waiting to be encoded.
#[derive(Debug, Default)]
pub struct Changes {
    /// Per attribute set (by identity), the prefixes that carry it, in arrival order.
    announce: Vec<(Family, Arc<AttrSet>, Vec<Prefix>)>,
    index: FxHashMap<(Family, *const AttrSet), usize>,
    /// Per family, the prefixes withdrawn, in arrival order.
    withdraw: Vec<(Family, Vec<Prefix>)>,
}

impl Drop for Changes {
    fn drop(&mut self) {
        for (_, _, ps) in self.announce.drain(..) {
            keep(&SPARE_PREFIXES, ps);
        }
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        keep(&SPARE_RUNS, std::mem::take(&mut self.0));
    }
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Paths announced.
    pub fn announced(&self) -> usize {
        self.announce.iter().map(|(_, _, ps)| ps.len()).sum()
    }

    /// Queues an announcement; where it lies.
    #[inline]
    pub fn announce(&mut self, f: Family, attrs: &Arc<AttrSet>, p: Prefix) -> Slot {
        let i = self.list(f, attrs);
        Slot::append(Kind::Announced, i, &mut self.announce[i].2, p)
    }

    /// The index of the list of prefixes announced with `attrs`, made if new. Most prefixes
    /// of a flush share the attribute set of the one before: that one is tried first.
    #[inline]
    fn list(&mut self, f: Family, attrs: &Arc<AttrSet>) -> usize {
        if let Some((i, (lf, la, _))) = self.announce.iter().enumerate().next_back()
            && *lf == f
            && Arc::ptr_eq(la, attrs)
        {
            return i;
        }
        self.list_of(f, attrs)
    }

    /// [`Changes::list`] when it is not the last one.
    #[cold]
    fn list_of(&mut self, f: Family, attrs: &Arc<AttrSet>) -> usize {
        let key = (f, Arc::as_ptr(attrs));
        *self.index.entry(key).or_insert_with(|| {
            self.announce
                .push((f, attrs.clone(), reuse(&SPARE_PREFIXES)));
            self.announce.len() - 1
        })
    }

    /// Queues a withdrawal; where it lies.
    pub fn withdraw(&mut self, f: Family, p: Prefix) -> Slot {
        let i = self.withdrawals(f);
        Slot::append(Kind::Withdrawn, i, &mut self.withdraw[i].1, p)
    }

    /// The index of the list of prefixes of family `f` withdrawn, made if new.
    fn withdrawals(&mut self, f: Family) -> usize {
        (self.withdraw.iter().position(|(lf, _)| *lf == f)).unwrap_or_else(|| {
            self.withdraw.push((f, Vec::new()));
            self.withdraw.len() - 1
        })
    }

    /// The prefixes of family `f` withdrawn.
    fn withdrawn(&self, f: Family) -> &[Prefix] {
        let list = self.withdraw.iter().find(|(lf, _)| *lf == f);
        list.map_or(&[], |(_, ps)| ps)
    }

    /// Every prefix announced.
    pub fn announced_prefixes(&self) -> impl Iterator<Item = (Family, Prefix)> + '_ {
        (self.announce.iter()).flat_map(|(f, _, ps)| ps.iter().map(move |p| (*f, *p)))
    }

    /// The part of [`Group::encode_parts`]'s layout a slot lies in.
    fn part_of(&self, slot: Slot, families: &[Family]) -> Option<usize> {
        match slot.kind {
            Kind::Withdrawn => {
                let (f, _) = self.withdraw.get(slot.list as usize)?;
                families.iter().position(|x| x == f)
            }
            Kind::Announced => Some(families.len() + slot.list as usize),
        }
    }

    /// Part `i` of these changes as [`Group::encode_parts`] lays them out, but for the
    /// changes `apart` (its runs sorted), added to `out`.
    fn part_without(&self, i: usize, families: &[Family], apart: &Apart, out: &mut Changes) {
        match families.get(i) {
            Some(family) => {
                let Some(n) = self.withdraw.iter().position(|(f, _)| f == family) else {
                    return;
                };
                let ps = &self.withdraw[n].1;
                let kept = between(ps.len(), apart.of(Kind::Withdrawn, n));
                if !kept.is_empty() {
                    let l = out.withdrawals(*family);
                    for r in kept {
                        out.withdraw[l].1.extend_from_slice(&ps[r]);
                    }
                }
            }
            None => {
                let n = i - families.len();
                let Some((f, a, ps)) = self.announce.get(n) else {
                    return;
                };
                let kept = between(ps.len(), apart.of(Kind::Announced, n));
                if !kept.is_empty() {
                    let l = out.list(*f, a);
                    for r in kept {
                        out.announce[l].2.extend_from_slice(&ps[r]);
                    }
                }
            }
        }
    }

    /// Adds `other`'s changes to these.
    fn extend(&mut self, other: &Changes) {
        for (f, a, ps) in &other.announce {
            let l = self.list(*f, a);
            self.announce[l].2.extend(ps);
        }
        for (f, ps) in &other.withdraw {
            let l = self.withdrawals(*f);
            self.withdraw[l].1.extend(ps);
        }
    }
}

/// The pieces of a list of `len` changes between the spans `runs` (in order, not
/// overlapping).
fn between(len: usize, runs: impl Iterator<Item = Range<usize>>) -> SmallVec<[Range<usize>; 4]> {
    let mut pieces = SmallVec::new();
    let mut from = 0;
    for r in runs {
        let start = r.start.clamp(from, len);
        if start > from {
            pieces.push(from..start);
        }
        from = r.end.clamp(from, len);
    }
    if from < len {
        pieces.push(from..len);
    }
    pieces
}

impl Group {
    pub fn new(key: GroupKey) -> Group {
        Group {
            key,
            members: Vec::new(),
            advertised: 0,
            withheld: FxHashMap::default(),
            pending: Changes::default(),
            own: Vec::new(),
            own_at: FxHashMap::default(),
        }
    }

    /// Paths advertised to member `id`.
    pub fn advertised_to(&self, id: PeerId) -> usize {
        let withheld = self.withheld.get(&id).copied().unwrap_or(0);
        let own = self.own_at.get(&id).and_then(|i| self.own.get(*i));
        let since = own.map_or(0, |(_, o)| o.withheld);
        self.advertised
            .saturating_sub(withheld.saturating_add_signed(since))
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
        self.own.retain(|(m, _)| *m != id);
        self.own_at = (self.own.iter().enumerate())
            .map(|(i, (m, _))| (*m, i))
            .collect();
    }

    /// The changes at `slots` of those queued for every member (`to: None`) are not for
    /// member `id`: it gets what was queued for it with `to: Some(id)` instead. `withheld`
    /// more (or fewer) of its own paths are among those advertised.
    #[inline]
    pub fn set_apart(&mut self, id: PeerId, slots: &[Slot], withheld: isize) {
        let own = self.own_mut(id);
        for s in slots {
            own.apart.push(*s);
        }
        own.withheld += withheld;
    }

    /// What member `id` gets apart, made if new. The member of the last prefix set apart
    /// is most often that of the one before: it is tried first.
    #[inline]
    fn own_mut(&mut self, id: PeerId) -> &mut Own {
        let i = match self.own.last() {
            Some((m, _)) if *m == id => self.own.len() - 1,
            _ => self.own_index(id),
        };
        &mut self.own[i].1
    }

    /// Where member `id`'s [`Own`] is, made if new.
    #[inline(never)]
    fn own_index(&mut self, id: PeerId) -> usize {
        *self.own_at.entry(id).or_insert_with(|| {
            self.own.push((id, Own::default()));
            self.own.len() - 1
        })
    }

    fn queue(&mut self, to: Option<PeerId>) -> &mut Changes {
        match to {
            None => &mut self.pending,
            Some(id) => &mut self.own_mut(id).changes,
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
    /// (`to`: `None`) or for one set apart; where it lies among those for every member.
    #[inline]
    pub fn announce(
        &mut self,
        to: Option<PeerId>,
        f: Family,
        net: IpNet,
        id: u32,
        attrs: &Arc<AttrSet>,
    ) -> Option<Slot> {
        let p = self.prefix(f, net, id);
        let slot = self.queue(to).announce(f, attrs, p);
        to.is_none().then_some(slot)
    }

    /// Queues the withdrawal of path `id` of `net` (RFC 7911: an identifier no longer used
    /// is withdrawn; without add-path, the prefix when nothing replaces it); where it lies
    /// among those for every member.
    pub fn withdraw(&mut self, to: Option<PeerId>, f: Family, net: IpNet, id: u32) -> Option<Slot> {
        let p = self.prefix(f, net, id);
        let slot = self.queue(to).withdraw(f, p);
        to.is_none().then_some(slot)
    }

    /// The queued changes, encoded once: every member is handed the same bytes, and a member
    /// with prefixes set apart the parts without them (shared slices, RFC 4271 §9.2 leaves
    /// how routes are grouped into UPDATEs to the speaker), then what it gets instead, so a
    /// batch of K sources' routes is encoded once, not once more for each of the K.
    pub fn take_encoded(&mut self) -> Vec<(Vec<PeerId>, Bytes)> {
        let changes = std::mem::take(&mut self.pending);
        let own = std::mem::take(&mut self.own);
        self.own_at.clear();
        for (id, o) in own.iter().filter(|(_, o)| o.withheld != 0) {
            self.withhold(*id, o.withheld);
        }
        if changes.is_empty() && own.is_empty() {
            return Vec::new();
        }
        self.encoded(&self.members, &changes, own)
    }

    /// `changes` (computed from the table for peers `to` joining the group, `Rib::dump`),
    /// encoded once for all of them as [`Group::take_encoded`] does a flush: a peer with
    /// paths of its own among them (at `apart`) gets the rest.
    pub fn encode_for(
        &self,
        to: &[PeerId],
        changes: &Changes,
        apart: Vec<(PeerId, Apart)>,
    ) -> Vec<(Vec<PeerId>, Bytes)> {
        let own = apart.into_iter().map(|(id, apart)| {
            let o = Own {
                apart,
                ..Own::default()
            };
            (id, o)
        });
        self.encoded(to, changes, own.collect())
    }

    /// `changes` encoded once for `to`, and the parts without their prefixes set apart for
    /// those in `own` (which also get what was queued for them alone).
    fn encoded(
        &self,
        to: &[PeerId],
        changes: &Changes,
        own: Vec<(PeerId, Own)>,
    ) -> Vec<(Vec<PeerId>, Bytes)> {
        let mut out = Vec::new();
        let mut sources: Vec<PeerId> = own.iter().map(|(id, _)| *id).collect();
        sources.sort_unstable();
        let shared: Vec<PeerId> = to
            .iter()
            .filter(|m| sources.binary_search(m).is_err())
            .copied()
            .collect();
        let (bytes, parts) = self.encode_parts(changes);
        if !bytes.is_empty() && !shared.is_empty() {
            out.push((shared, bytes.clone()));
        }
        if own.is_empty() {
            return out;
        }
        let families = &self.key.families;
        let mut members = to.to_vec();
        members.sort_unstable();
        let member = |id: &PeerId| members.binary_search(id).is_ok();
        for (id, mut o) in own.into_iter().filter(|(id, _)| member(id)) {
            o.apart.0.sort_unstable();
            let mut apart: SmallVec<[usize; 4]> = (o.apart.0.iter())
                .filter_map(|r| changes.part_of(r.first, families))
                .collect();
            apart.sort_unstable();
            apart.dedup();
            let mut mine = Changes::default();
            for &i in &apart {
                changes.part_without(i, families, &o.apart, &mut mine);
            }
            mine.extend(&o.changes);
            // The other parts, as runs of the shared bytes: the parts lie end to end, so
            // the runs are the gaps between this member's own (a few, whatever the number
            // of parts: a reflector's flush has one or two for each client in it).
            let start_of = |k: usize| parts.get(k).map_or(bytes.len(), |r| r.start);
            let mut from = 0;
            for &i in apart.iter().chain([&parts.len()]) {
                let run = start_of(from)..start_of(i);
                if !run.is_empty() {
                    out.push((vec![id], bytes.slice(run)));
                }
                from = i + 1;
            }
            if !mine.is_empty() {
                out.push((vec![id], self.encode(&mine)));
            }
        }
        out
    }

    /// Encodes changes as UPDATEs (withdrawals first), packed to the session's size limit.
    pub fn encode(&self, c: &Changes) -> Bytes {
        self.encode_parts(c).0
    }

    /// [`Group::encode`], and where each part lies in the bytes: each family's withdrawals
    /// (in the order of the key's families), then each attribute set's announcements.
    fn encode_parts(&self, c: &Changes) -> (Bytes, Vec<Range<usize>>) {
        let tx = &self.key.tx;
        let mut buf = BytesMut::new();
        let mut parts = Vec::with_capacity(self.key.families.len() + c.announce.len());
        for family in &self.key.families {
            let start = buf.len();
            for chunk in pack(c.withdrawn(*family), budget(tx, 8)) {
                let u = Message::Update(withdrawal(*family, chunk));
                if let Err(e) = u.encode(tx, &mut buf) {
                    warn!("cannot encode an UPDATE: {e}");
                }
            }
            parts.push(start..buf.len());
        }
        for (family, attrs, prefixes) in &c.announce {
            let start = buf.len();
            // The attributes are encoded once for every UPDATE of the set.
            match Announcement::new(&attrs.to_wire(*family, &[], tx), tx) {
                Ok(a) => {
                    let mut rest = &prefixes[..];
                    while !rest.is_empty() {
                        match a.encode_fitting(rest, tx, &mut buf) {
                            Ok(n) => rest = &rest[n..],
                            Err(e) => {
                                warn!("cannot encode an UPDATE: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => warn!("cannot encode an UPDATE's attributes: {e}"),
            }
            parts.push(start..buf.len());
        }
        (buf.freeze(), parts)
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

    /// Our own route's attributes with next hop `hop`.
    fn via(hop: &str) -> Arc<AttrSet> {
        Arc::new(AttrSet {
            next_hop: Some(hop.parse().unwrap()),
            ..AttrSet::local()
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

    /// What member `m` is sent in `out`: the prefixes announced and those withdrawn (in
    /// the withdrawn routes field or MP_UNREACH_NLRI), each sorted.
    fn received(g: &Group, out: &[(Vec<PeerId>, Bytes)], m: PeerId) -> (Vec<IpNet>, Vec<IpNet>) {
        let us: Vec<Update> = (out.iter())
            .filter(|(to, _)| to.contains(&m))
            .flat_map(|(_, b)| decoded(g, b))
            .collect();
        let mut ann: Vec<IpNet> = us
            .iter()
            .flat_map(|u| u.nlri.iter().map(|p| p.net))
            .collect();
        let mut wd: Vec<IpNet> = (us.iter())
            .flat_map(|u| u.withdrawn.iter().map(|p| p.net))
            .chain(us.iter().flat_map(|u| {
                u.mp_unreach()
                    .map_or(Vec::new(), |m| m.withdrawn.iter().map(|p| p.net).collect())
            }))
            .collect();
        ann.sort();
        wd.sort();
        (ann, wd)
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
        let (a, b) = (via("198.51.100.2"), via("198.51.100.3"));
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

    /// A reflector's batch: every member is the source of one prefix, set apart from it.
    /// Each member gets every other prefix and not its own, as slices of the one encoding
    /// the others get (no encoding per member), and a withdrawal of its own prefix is kept
    /// from it in the same way.
    #[test]
    fn members_with_a_prefix_apart_share_the_batch_encoding() {
        let mut g = group(false);
        // Member 6 has nothing apart: it gets the whole encoding.
        let members: Vec<PeerId> = (1..=6).collect();
        g.members = members.clone();
        let net = |k: usize| -> IpNet { format!("100.64.{k}.0/26").parse().unwrap() };
        let attrs = |k: usize| via(&format!("198.18.0.{k}"));
        // Prefix k comes from member k (1..=5); prefix 9 from someone else.
        for k in [1, 2, 3, 4, 5, 9] {
            let (f, a) = (Family::IPV4_UNICAST, attrs(k));
            let slot = g.announce(None, f, net(k), 0, &a);
            if k <= 5 {
                g.set_apart(k, slot.as_slice(), 0);
            }
        }
        let out = g.take_encoded();
        let shared = out.iter().find(|(to, _)| to == &[6]).unwrap().1.clone();
        let inside = |b: &Bytes| {
            let (s, e) = (
                shared.as_ptr() as usize,
                shared.as_ptr() as usize + shared.len(),
            );
            b.as_ptr() as usize >= s && b.as_ptr() as usize + b.len() <= e
        };
        for m in &members {
            let mine: Vec<&Bytes> = (out.iter())
                .filter(|(to, _)| to.contains(m))
                .map(|(_, b)| b)
                .collect();
            assert!(
                mine.iter().all(|b| inside(b)),
                "member {m} got bytes of its own"
            );
            let got: Vec<IpNet> = (mine.iter())
                .flat_map(|b| decoded(&g, b))
                .flat_map(|u| u.nlri.iter().map(|p| p.net).collect::<Vec<_>>())
                .collect();
            let want: Vec<IpNet> = [1, 2, 3, 4, 5, 9]
                .into_iter()
                .filter(|k| k != m)
                .map(net)
                .collect();
            assert_eq!(got, want, "member {m}");
        }
        // Withdrawn: member 2's prefix and the other one; member 2 hears only of the other.
        for k in [2, 9] {
            let slot = g.withdraw(None, Family::IPV4_UNICAST, net(k), 0);
            if k == 2 {
                g.set_apart(2, slot.as_slice(), 0);
            }
        }
        let out = g.take_encoded();
        for m in &members {
            let withdrawn: Vec<IpNet> = (out.iter())
                .filter(|(to, _)| to.contains(m))
                .flat_map(|(_, b)| decoded(&g, b))
                .flat_map(|u| u.withdrawn.iter().map(|p| p.net).collect::<Vec<_>>())
                .collect();
            let want = if *m == 2 {
                vec![net(9)]
            } else {
                vec![net(2), net(9)]
            };
            assert_eq!(withdrawn, want, "member {m}");
        }
    }

    /// Set-apart slots are kept as runs: consecutive slots of one list make one run, a run
    /// breaks where a change for everyone comes between (in the middle of a list) and where
    /// another list's slot comes between (a member apart in two lists, blocks interleaved),
    /// and withdrawals of two families make runs of their own lists. Each member gets
    /// exactly what is not apart from it.
    #[test]
    fn set_apart_runs_break_in_a_list_and_across_lists_and_families() {
        let mut g = group(false);
        g.members = vec![1, 2, 3];
        let (a, b) = (via("198.51.100.2"), via("198.51.100.3"));
        let v4 = |k: u32| -> IpNet {
            let addr = std::net::Ipv4Addr::from(0x6440_0000 | k << 5);
            IpNet::V4(ipnet::Ipv4Net::new(addr, 27).unwrap())
        };
        let v6 = |k: u32| -> IpNet { format!("2001:db8:{k:x}::/64").parse().unwrap() };
        // Which member a change is apart from (none: `None`).
        let owner = |k: u32| match k {
            0..100 | 150..300 => Some(1),
            // Blocks of 50 of set `b`, between those of set `a` (k 300..600).
            300..600 if (k / 50) % 2 == 1 => Some(1),
            300..600 => Some(2),
            _ => None,
        };
        let f4 = Family::IPV4_UNICAST;
        for k in 0..700 {
            let attrs = if (300..600).contains(&k) && (k / 50) % 2 == 1 {
                &b
            } else {
                &a
            };
            let slot = g.announce(None, f4, v4(k), 0, attrs);
            if let Some(m) = owner(k) {
                g.set_apart(m, slot.as_slice(), 1);
            }
        }
        // Withdrawals: v4 and v6 in turn; member 1 is apart from every v6 one and from the
        // v4 ones 1000..1010, member 2 from v4 1010..1020.
        for k in 1000..1030 {
            let s4 = g.withdraw(None, f4, v4(k), 0);
            let s6 = g.withdraw(None, Family::IPV6_UNICAST, v6(k), 0);
            match k {
                1000..1010 => g.set_apart(1, s4.as_slice(), 0),
                1010..1020 => g.set_apart(2, s4.as_slice(), 0),
                _ => {}
            }
            g.set_apart(1, s6.as_slice(), -1);
        }
        // Member 1: `a` 0..100 and 150..300 (broken by 100..150, for everyone), and one run
        // of `b` (its blocks lie side by side in `b`'s list; member 2's slots of `a` between
        // them are not member 1's), then v4 and v6 withdrawals in turn (a run each), the
        // last v6 one extended by the v6 ones that follow alone.
        let runs = |m: PeerId| g.own[g.own_at[&m]].1.apart.0.len();
        assert_eq!(runs(1), 2 + 1 + 10 + 10, "{:?}", g.own);
        // Member 2: its three blocks of `a` side by side, and the v4 withdrawals.
        assert_eq!(runs(2), 2, "{:?}", g.own);
        // Withheld counts are the members' own until the flush, and stay after it.
        g.advertised = 1000;
        assert_eq!(g.advertised_to(1), 1000 - (250 + 150 - 30));
        assert_eq!(g.advertised_to(2), 1000 - 150);
        let out = g.take_encoded();
        assert_eq!(g.advertised_to(1), 1000 - (250 + 150 - 30));
        assert_eq!(g.advertised_to(2), 1000 - 150);
        let got = |m: PeerId| received(&g, &out, m);
        for m in [1, 2, 3] {
            let mut ann: Vec<IpNet> = (0..700).filter(|k| owner(*k) != Some(m)).map(v4).collect();
            ann.sort();
            let mut wd: Vec<IpNet> = (1000..1030)
                .filter(|k| !(m == 1 && (1000..1010).contains(k)))
                .filter(|k| !(m == 2 && (1010..1020).contains(k)))
                .map(v4)
                .chain((1000..1030).filter(|_| m != 1).map(v6))
                .collect();
            wd.sort();
            assert_eq!(got(m), (ann, wd), "member {m}");
        }
    }

    /// Changes are kept per attribute set in the order they came, whichever set the one
    /// before had; a member set apart from scattered changes (every third prefix of two
    /// interleaved sets, one withdrawal of two) gets every other one, and the members with
    /// nothing apart the whole.
    #[test]
    fn a_member_apart_from_scattered_changes_gets_the_others() {
        let mut g = group(false);
        g.members = vec![1, 2];
        let (a, b) = (via("198.51.100.2"), via("198.51.100.3"));
        let net = |k: u32| -> IpNet {
            format!("100.64.{}.{}/27", k / 8, (k % 8) * 32)
                .parse()
                .unwrap()
        };
        let f = Family::IPV4_UNICAST;
        let mut others = Vec::new();
        for k in 0..600 {
            let attrs = if k % 2 == 0 { &a } else { &b };
            let slot = g.announce(None, f, net(k), 0, attrs);
            if k % 3 == 0 {
                g.set_apart(1, slot.as_slice(), 0);
            } else {
                others.push(net(k));
            }
        }
        for k in [1000, 1001] {
            let slot = g.withdraw(None, f, net(k), 0);
            if k == 1000 {
                g.set_apart(1, slot.as_slice(), 0);
            }
        }
        assert_eq!(g.pending.announce.len(), 2, "one list per attribute set");
        let out = g.take_encoded();
        let got = |m: PeerId| received(&g, &out, m);
        others.sort();
        assert_eq!(got(1), (others, vec![net(1001)]));
        let mut all: Vec<IpNet> = (0..600).map(net).collect();
        all.sort();
        assert_eq!(got(2), (all, vec![net(1000), net(1001)]));
    }

    /// Prefixes of one attribute set fill each UPDATE to the 4,096-octet limit (RFC 4271
    /// §4.3), IPv4 in the NLRI field and IPv6 inside MP_REACH_NLRI.
    #[test]
    fn updates_are_filled_to_the_message_limit() {
        let mut g = group(false);
        let (a, b) = (via("2001:db8::1"), via("198.51.100.1"));
        for i in 0..3000u32 {
            let v6: IpNet = format!("2001:db8:{:x}:{:x}::/64", i / 256, i % 256)
                .parse()
                .unwrap();
            let v4: IpNet = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
            g.announce(None, Family::IPV6_UNICAST, v6, 0, &a);
            g.announce(None, Family::IPV4_UNICAST, v4, 0, &b);
        }
        let c = std::mem::take(&mut g.pending);
        let bytes = g.encode(&c);
        let mut rest = &bytes[..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let n = crate::wire::frame(rest, &g.key.tx).unwrap().unwrap();
            sizes.push(n);
            rest = &rest[n..];
        }
        let updates = decoded(&g, &bytes);
        let v6: usize = updates
            .iter()
            .map(|u| u.mp_reach().map_or(0, |m| m.nlri.len()))
            .sum();
        let v4: usize = updates.iter().map(|u| u.nlri.len()).sum();
        assert_eq!((v4, v6), (3000, 3000));
        // Every UPDATE but each family's last is within one prefix of the limit.
        let full = sizes.iter().filter(|n| **n > 4096 - 9).count();
        assert!(full >= sizes.len() - 2, "{sizes:?}");
        assert!(sizes.iter().all(|n| *n <= 4096));
    }

    /// A flush's list of announced prefixes is kept, emptied, for the next one on the same
    /// thread (no fresh mapping per flush), but not one longer than `SPARE_MAX`; what the
    /// next flush queues and sends is not affected by what the kept list held.
    #[test]
    fn a_flushed_list_is_kept_for_the_next_flush_up_to_a_bound() {
        let mut g = group(false);
        let a = via("198.51.100.1");
        let nets = |n: u32, third: u32| -> Vec<IpNet> {
            (0..n)
                .map(|i| {
                    let addr = std::net::Ipv4Addr::from(0x0a00_0000 | third << 20 | i << 2);
                    IpNet::V4(ipnet::Ipv4Net::new(addr, 30).unwrap())
                })
                .collect()
        };
        let flush = |g: &mut Group, nets: &[IpNet]| -> usize {
            for net in nets {
                g.announce(None, Family::IPV4_UNICAST, *net, 0, &a);
            }
            g.members = vec![7];
            let out = g.take_encoded();
            let updates: Vec<Update> = out.iter().flat_map(|(_, b)| decoded(g, b)).collect();
            updates.iter().map(|u| u.nlri.len()).sum()
        };
        drop(reuse(&SPARE_PREFIXES));
        assert_eq!(flush(&mut g, &nets(10_000, 1)), 10_000);
        let kept = reuse(&SPARE_PREFIXES);
        assert!(
            kept.is_empty() && kept.capacity() >= 10_000,
            "{}",
            kept.capacity()
        );
        keep(&SPARE_PREFIXES, kept);
        // The next flush starts from the kept list and sends only its own prefixes.
        assert_eq!(flush(&mut g, &nets(3, 2)), 3);
        assert!(SPARE_PREFIXES.with(|s| s.borrow().capacity()) >= 10_000);
        // A list longer than the bound goes.
        drop(reuse(&SPARE_PREFIXES));
        assert_eq!(flush(&mut g, &nets(SPARE_MAX as u32 + 1, 3)), SPARE_MAX + 1);
        assert_eq!(SPARE_PREFIXES.with(|s| s.borrow().capacity()), 0);
    }
}

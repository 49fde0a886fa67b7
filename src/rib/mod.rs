//! The routing core: one table of every path (own routes and each peer's Adj-RIB-In), the
//! decision process, and export to update groups. Work is incremental: an UPDATE marks the
//! prefixes it touches, noting the paths each one had, and only those are decided and
//! exported again. What a group was sent for a prefix is recomputed from that note, so no
//! Adj-RIB-Out copy is kept (as in BIRD 2).

pub mod adj_out;
pub mod best;
mod kernel;
pub mod limit;
mod nexthop;
pub mod table;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use tracing::warn;

use crate::attrs::{AttrSet, Interner, PathSource};
use crate::model::{BgpFilter, Config, FilterRule, Peer as PeerConfig, RuleAction};
use crate::policy;
use crate::policy::calico::Calico;
use crate::policy::filter::{PeerRules, RouteFacts};
use crate::policy::reflect::{Source, Speaker, Target};
use crate::prefix_map;
use crate::route::{Alien, AlienKind, Interfaces, Learning};
use crate::session::{PeerId, PeerMap, Session};
use crate::wire::attr::Origin;
use crate::wire::open::GrFamily;
use crate::wire::{Family, Prefix, RouteRefresh, Update};

use adj_out::{Apart, Changes, Group, GroupKey, Slot};
use best::Candidate;
use nexthop::NextHops;
use table::{Entry, Path, Table};

/// A peer as the RIB sees it.
#[derive(Debug)]
pub struct PeerInfo {
    pub config: PeerConfig,
    pub session: Option<Session>,
    pub local: Option<SocketAddr>,
    /// Families whose End-of-RIB arrived since the session came up.
    pub end_of_rib: Vec<Family>,
    /// Paths received from it (its Adj-RIB-In size).
    pub received: usize,
    /// How many of them are stale (RFC 4724 §4.2).
    stale: usize,
    /// The restart time its last session's graceful restart capability gave, in seconds.
    restart_time: u16,
    /// The BGP identifier of its last session.
    bgp_id: Option<Ipv4Addr>,
    /// Its import limit was exceeded this session (BIRD's `[HIT]`).
    pub limit_hit: bool,
    group: Option<usize>,
    /// Its BGPFilter rules, resolved from the filters it names.
    rules: Arc<PeerRules>,
}

impl PeerInfo {
    /// The AS its session speaks as: its `local_asn`, or the node's.
    fn local_asn(&self, node_asn: u32) -> u32 {
        self.config.settings.local_asn.unwrap_or(node_asn)
    }

    /// eBGP when the peer's AS is not the one the session speaks as (BIRD decides with
    /// `local as` too).
    pub fn ebgp(&self, node_asn: u32) -> bool {
        self.config.asn != self.local_asn(node_asn)
    }

    /// Up, with End-of-RIB received for each family of its session (RFC 4724 §4.1).
    pub fn synced(&self) -> bool {
        (self.session.as_ref())
            .is_some_and(|s| s.families.iter().all(|f| self.end_of_rib.contains(f)))
    }

    /// How long from now its stale paths may stay, if it has any (RFC 4724 §4.2): while it
    /// is away, the restart time its last session advertised; once it is back the restart
    /// timer stops and they wait for its End-of-RIB, for [`STALE_PATH_TIME`] at most.
    pub fn stale_time(&self) -> Option<Duration> {
        match (self.stale, &self.session) {
            (0, _) => None,
            (_, None) => Some(Duration::from_secs(self.restart_time.into())),
            (_, Some(_)) => Some(STALE_PATH_TIME),
        }
    }
}

/// How long a peer back from a graceful restart has to send its End-of-RIB before its routes
/// still stale go: RFC 4724 §4.2's optional upper bound, FRR's `stalepath-time` default.
/// BIRD 2 and 1.6 set none (they wait for End-of-RIB as long as the session lasts); a bound
/// keeps a peer that never sends one from holding stale routes for good, and 6 minutes is
/// far longer than any table takes to send.
pub const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// The families of a session's graceful restart capability and their flags (RFC 4724 §3).
fn restart_families(s: &Session) -> impl Iterator<Item = (Family, u8)> + '_ {
    (s.peer_graceful_restart.iter())
        .flat_map(|g| &g.families)
        .map(|f| {
            let family = Family {
                afi: f.afi,
                safi: f.safi,
            };
            (family, f.flags)
        })
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
    /// The configured peers, at the ids the daemon's registry gave them.
    peers: PeerMap<PeerInfo>,
    pub table: Table,
    interner: Interner,
    groups: Vec<Option<Group>>,
    /// Peers whose session came up since the last flush: they join their update groups,
    /// and are sent the table, at the end of the next one (`Rib::welcome`).
    joining: Vec<PeerId>,
    export: Exporter,
    /// Prefixes touched since the last flush, with what they had before.
    dirty: Dirty,
    /// Prefixes the last batch of received UPDATEs changed, when it was the last flush (how
    /// much room `dirty` keeps for the next one of a burst).
    batch: usize,
    /// Prefixes whose best or multipath set changed, for the FIB (`kernel`).
    fib_dirty: FxHashSet<(Family, IpNet)>,
    /// Whether routes go to the kernel (`[kernel] enabled`): if not, no prefix is marked for
    /// the FIB.
    fib: bool,
    /// Every prefix is to be worked out again for the FIB, from this part of the table on
    /// (`sweep_fib`).
    fib_sweep: Option<usize>,
    /// Peers whose import limit tears their session down, for the daemon to act on.
    exceeded: Vec<limit::Exceeded>,
    /// Stale paths an End-of-RIB dropped since the last [`Rib::flush_changes`]: memory to give
    /// back once their changes are out.
    stale_gone: usize,
    /// Per peer, the prefixes whose best path is its (BIRD's "preferred" routes).
    preferred: Vec<usize>,
    /// How next hops resolve (RFC 4271 §9.1.2.1).
    next_hops: NextHops,
    /// The metric of the routes written to the kernel.
    kernel_metric: Option<u32>,
    /// The named filters peers refer to.
    filters: Vec<BgpFilter>,
}

/// A prefix's leading paths as the last decision ranked them, noted before its first change
/// in a flush: what the kernel and every group were last given for it.
#[derive(Debug, Default)]
struct Before(SmallVec<[Shown; 1]>);

#[derive(Debug)]
struct Shown {
    source: PathSource,
    tx_id: u32,
    multipath: bool,
    attrs: Arc<AttrSet>,
}

impl Before {
    /// The multipath set of `e` and its first `keep` paths (the most any group is sent).
    fn of(e: &Entry, keep: usize) -> Before {
        let mut shown = SmallVec::new();
        for (i, p) in e.paths().iter().enumerate() {
            if i >= keep && !p.multipath() {
                break;
            }
            shown.push(Shown {
                source: p.source(),
                tx_id: p.tx_id(),
                multipath: p.multipath(),
                attrs: p.attrs.clone(),
            });
        }
        Before(shown)
    }

    /// Whether `e`'s multipath set (sources, identifiers, attribute sets) is the one noted:
    /// if not, the kernel route changes.
    fn same_multipath(&self, e: &Entry) -> bool {
        let old = self.0.iter().take_while(|s| s.multipath);
        let old = old.map(|s| (s.source, s.tx_id, Arc::as_ptr(&s.attrs)));
        let new = e.multipath();
        old.eq(new.map(|p| (p.source(), p.tx_id(), Arc::as_ptr(&p.attrs))))
    }

    fn paths(&self) -> impl Iterator<Item = (PathSource, u32, &Arc<AttrSet>)> {
        self.0.iter().map(|s| (s.source, s.tx_id, &s.attrs))
    }
}

/// The prefixes changed since the last flush, and what each had before its first change
/// (the flush works out what to send from it). A prefix new to the table had nothing: such
/// prefixes, most of a burst of new routes, are only listed, without a hash map's insert
/// (the table's own insert has just told that the prefix is new).
#[derive(Debug, Default)]
struct Dirty {
    noted: FxHashMap<(Family, IpNet), Before>,
    /// Prefixes that were not in the table at their first change. A later change in the
    /// same batch may note one in `noted` too (as it is then): it had nothing all the same.
    fresh: Vec<(Family, IpNet)>,
}

impl Dirty {
    /// Notes what `key` had before its first change since the last flush.
    fn note(&mut self, key: (Family, IpNet), e: &Entry, keep: usize) {
        self.noted.entry(key).or_insert_with(|| Before::of(e, keep));
    }

    /// Lists `key`, just put in the table, as changed.
    fn fresh(&mut self, key: (Family, IpNet)) {
        self.fresh.push(key);
    }

    fn is_empty(&self) -> bool {
        self.noted.is_empty() && self.fresh.is_empty()
    }

    fn len(&self) -> usize {
        self.noted.len() + self.fresh.len()
    }

    /// Whether `key` is noted with paths it had: an empty entry of the table that is not
    /// is no change (a fresh prefix's entry that lost its path again was noted then).
    fn noted(&self, key: &(Family, IpNet)) -> bool {
        self.noted.contains_key(key)
    }

    /// Every changed prefix once, with what it had before, leaving the room for the next
    /// batch.
    fn drain(&mut self) -> impl Iterator<Item = ((Family, IpNet), Before)> + '_ {
        if !self.noted.is_empty() {
            for key in &self.fresh {
                self.noted.remove(key);
            }
        }
        let fresh = self.fresh.drain(..).map(|key| (key, Before::default()));
        fresh.chain(self.noted.drain())
    }

    /// What `key` had before, taken out: nothing for a fresh prefix, its paths in `e` for
    /// one not changed (after [`Dirty::settle_fresh`]).
    fn take(&mut self, key: &(Family, IpNet), e: &Entry, keep: usize) -> Before {
        self.noted
            .remove(key)
            .unwrap_or_else(|| Before::of(e, keep))
    }

    /// Notes the fresh prefixes as having had nothing, for [`Dirty::take`].
    fn settle_fresh(&mut self) {
        for key in self.fresh.drain(..) {
            self.noted.insert(key, Before::default());
        }
    }

    fn clear(&mut self) {
        self.noted.clear();
        self.fresh.clear();
    }

    /// Slots kept for a batch's prefixes.
    fn capacity(&self) -> usize {
        self.noted.capacity().max(self.fresh.capacity())
    }

    fn shrink_to(&mut self, room: usize) {
        self.noted.shrink_to(room);
        self.fresh.shrink_to(room);
    }
}

fn current(e: &Entry) -> impl Iterator<Item = (PathSource, u32, &Arc<AttrSet>)> {
    e.paths().iter().map(|p| (p.source(), p.tx_id(), &p.attrs))
}

/// What deciding and exporting read: the speaker, the policy and the peers.
#[derive(Clone, Copy)]
struct View<'a> {
    speaker: &'a Speaker,
    calico: &'a Calico,
    peers: &'a PeerMap<PeerInfo>,
    max_paths: usize,
    /// The policy before a reconfiguration (its rewrites are cached apart).
    old: bool,
}

impl View<'_> {
    fn candidate<'p>(&self, p: &'p Path) -> Candidate<'p> {
        let peer = p.source().peer_id().and_then(|id| self.peers.get(id));
        Candidate {
            attrs: &p.attrs,
            preference: match p.source() {
                PathSource::Local => best::OWN,
                PathSource::Peer(_) => best::BGP,
                PathSource::Kernel => best::KERNEL,
            },
            ebgp: peer.is_some_and(|x| x.ebgp(self.speaker.asn)),
            peer_id: peer
                .and_then(|x| x.session.as_ref().map(|s| s.remote.bgp_id))
                .unwrap_or(self.speaker.router_id),
            peer_addr: peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |x| x.config.address),
            reachable: p.reachable(),
        }
    }

    /// Ranks a prefix's paths best first and flags the multipath set (ECMP).
    fn decide(&self, e: &mut Entry) {
        let paths = e.paths_mut();
        if paths.len() > 1 {
            // A fixed order (peer address, path identifier) makes the result independent of
            // the order updates arrived in.
            paths.sort_by_key(|p| (self.candidate(p).peer_addr, p.rx_id, p.source()));
            best::rank(paths, |p| self.candidate(p));
        }
        let Some((first, rest)) = paths.split_first_mut() else {
            return;
        };
        first.set_multipath(true);
        if rest.is_empty() {
            return;
        }
        let best = self.candidate(first);
        let mut equal = true;
        for (i, p) in rest.iter_mut().enumerate() {
            equal = equal && i + 1 < self.max_paths && best::equal_cost(&best, &self.candidate(p));
            p.set_multipath(equal);
        }
    }

    /// The paths a group is sent for a prefix ranked this way: of the best (or up to
    /// `send_max` with add-path), those the speaker exports to it and its filters let out.
    /// `calico`: whether Calico's prefix rules export `net` (`Calico::exports`, worked out
    /// once per prefix by the caller).
    fn exported<'p>(
        &self,
        g: &GroupKey,
        (f, net): (Family, &IpNet),
        calico: bool,
        paths: impl Iterator<Item = (PathSource, u32, &'p Arc<AttrSet>)>,
    ) -> Sent<'p> {
        let rules = g.export.rules(f);
        if !calico && rules.is_empty() && self.calico.normal_route_priority.is_none() {
            return Sent::new();
        }
        let add_path = g.add_path(f);
        let n = if add_path { g.send_max } else { 1 };
        let mut sent = Sent::new();
        for (src, id, a) in paths.take(n) {
            let calico = calico || self.calico.elevated(net, src, a);
            if self.speaker.exports(&self.source(src), &g.target, f, a)
                && lets_out(rules, (g.target.ibgp, self.lead(&g.target)), calico, net, a)
            {
                sent.push((if add_path { id } else { 0 }, src, a));
            }
        }
        sent
    }

    /// The AS an export filter sees first in every path to `t`: on eBGP, the one its
    /// session speaks as ([`RouteFacts::lead`]).
    fn lead(&self, t: &Target) -> Option<u32> {
        (!t.ibgp).then(|| t.local_asn.unwrap_or(self.speaker.asn))
    }

    fn source(&self, src: PathSource) -> Source {
        match src.peer_id() {
            None => Source {
                local: true,
                ibgp: false,
                rr_client: false,
                bgp_id: self.speaker.router_id,
            },
            Some(id) => {
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
}

/// A peer's import filter (contract §3.5 as confd renders it with BGPFilters): its BGPFilter
/// import rules for the family, the first match deciding. A route a rule rejects is `None`;
/// one a rule accepts has that rule's operations applied; one none decides is accepted as
/// it is.
fn imported(
    rules: &PeerRules,
    (f, net): (Family, &IpNet),
    ibgp: bool,
    a: Arc<AttrSet>,
    interner: &mut Interner,
) -> Option<Arc<AttrSet>> {
    let facts = RouteFacts {
        net,
        attrs: &a,
        ibgp,
        lead: None,
    };
    match rules.import.decide(f, &facts) {
        Some(r) if r.action == RuleAction::Reject => None,
        Some(r) if !r.operations.is_empty() => {
            let mut changed = AttrSet::clone(&a);
            policy::filter::apply(&r.operations, &mut changed);
            Some(interner.intern(changed))
        }
        _ => Some(a),
    }
}

/// Whether a peer's import rules reject a path it sent.
fn refuses(rules: &PeerRules, (f, net): (Family, &IpNet), ibgp: bool, a: &AttrSet) -> bool {
    let facts = RouteFacts {
        net,
        attrs: a,
        ibgp,
        lead: None,
    };
    rules
        .import
        .decide(f, &facts)
        .is_some_and(|r| r.action == RuleAction::Reject)
}

/// A peer's export filter (contract §3.2 as confd renders it with BGPFilters): its BGPFilter
/// rules first, an `accept` exporting even what Calico's rules would not; then, when no
/// rule decides, `calico_export_to_bgp_peers` (the prefix rules in `calico`, the device
/// rules here). The accepting rule's operations are applied by [`Exporter::rewrite`].
fn lets_out(
    rules: &[FilterRule],
    (ibgp, lead): (bool, Option<u32>),
    calico: bool,
    net: &IpNet,
    a: &AttrSet,
) -> bool {
    let facts = RouteFacts {
        net,
        attrs: a,
        ibgp,
        lead,
    };
    match policy::filter::first_match(rules, &facts) {
        Some(r) => r.action == RuleAction::Accept,
        None => calico && policy::calico::exports_device(a.device.as_deref(), ibgp),
    }
}

/// (group, family, source, attribute set's address, community ranges, the export rule that
/// matched, old policy).
type ExportKey = (usize, Family, PathSource, usize, u64, Option<usize>, bool);

/// A path as a group is sent it: (path identifier, source, source attributes).
type Sent<'p> = SmallVec<[(u32, PathSource, &'p Arc<AttrSet>); 1]>;

/// `sent` without the paths of `src`.
fn without<'p>(sent: &[(u32, PathSource, &'p Arc<AttrSet>)], src: PathSource) -> Sent<'p> {
    sent.iter().filter(|x| x.1 != src).copied().collect()
}

/// How many of `sent` are paths of `src`.
fn own(sent: &[(u32, PathSource, &Arc<AttrSet>)], src: PathSource) -> usize {
    sent.iter().filter(|x| x.1 == src).count()
}

/// Rewrites paths for update groups: each attribute set once per group and flush, since most
/// prefixes of an UPDATE share one. Rewritten sets live only until they are encoded, so they
/// are not interned.
#[derive(Debug, Default)]
struct Exporter {
    /// The source set (kept alive so its address is not reused) and its rewrite.
    cache: FxHashMap<ExportKey, (Arc<AttrSet>, Option<Arc<AttrSet>>)>,
}

impl Exporter {
    /// Path `src`'s attributes as group `gi` gets them: the protocol's own changes, then
    /// the operations of the export rule that lets it out, then Calico's communities. BIRD
    /// 1.6 gives a route its BGP attributes (the eBGP prepend of the local AS among them,
    /// `bgp_import_control`) before the export filter runs, so a rule's AS numbers lead the
    /// path, as Calico documents for `prependASPath`. `last`, the rewrite asked for before
    /// (see [`Memo`]), is tried first, and this one is left there: what is returned is
    /// borrowed from it (no reference count taken and dropped per route).
    #[expect(
        clippy::too_many_arguments,
        reason = "the group, the path and the memo"
    )]
    fn rewrite<'m>(
        &mut self,
        view: &View,
        gi: usize,
        g: &GroupKey,
        key: &(Family, IpNet),
        src: PathSource,
        attrs: &Arc<AttrSet>,
        last: &'m mut Option<(ExportKey, Option<Arc<AttrSet>>)>,
    ) -> Option<&'m Arc<AttrSet>> {
        let (f, net) = key;
        let mask = view.calico.community_mask(net);
        let rules = g.export.rules(*f);
        let facts = RouteFacts {
            net,
            attrs,
            ibgp: g.target.ibgp,
            lead: view.lead(&g.target),
        };
        let rule = rules
            .iter()
            .position(|r| policy::filter::matches(r, &facts));
        let k = (
            gi,
            *f,
            src,
            Arc::as_ptr(attrs) as usize,
            mask,
            rule,
            view.old,
        );
        let kept = |last: &'m Option<(ExportKey, Option<Arc<AttrSet>>)>| {
            last.as_ref().and_then(|(_, r)| r.as_ref())
        };
        if last.as_ref().is_some_and(|(lk, _)| *lk == k) {
            return kept(last);
        }
        if let Some((_, r)) = self.cache.get(&k) {
            *last = Some((k, r.clone()));
            return kept(last);
        }
        let from = view.source(src);
        let ops = rule
            .and_then(|i| rules.get(i))
            .map_or(&[][..], |r| &r.operations);
        let r = view
            .speaker
            .rewrite(&from, &g.target, *f, attrs)
            .map(|mut a| {
                // LOCAL_PREF goes to iBGP peers only (RFC 4271 §5.1.5).
                let local_pref = a.local_pref;
                policy::filter::apply(ops, &mut a);
                if !g.target.ibgp {
                    a.local_pref = local_pref;
                }
                view.calico.add_communities(net, &mut a);
                // LOCAL_PREF goes to iBGP peers only (RFC 4271 §5.1.5).
                if g.target.ibgp
                    && let Some(lp) = view.calico.local_pref(src, attrs)
                {
                    a.local_pref = Some(lp);
                }
                Arc::new(a)
            });
        self.cache.insert(k, (attrs.clone(), r.clone()));
        *last = Some((k, r));
        kept(last)
    }
}

/// What consecutive prefixes of a flush most often share, remembered while one [`Settle`]
/// lives (the policy, the cache of rewrites and the next hops stay as they are meanwhile):
/// the last rewrite (its key holds the source set's address, kept alive by the cache) and
/// the last next hop resolved.
#[derive(Default)]
struct Memo {
    rewrite: Option<(ExportKey, Option<Arc<AttrSet>>)>,
    hop: Option<(IpAddr, bool)>,
}

/// Deciding and exporting touched prefixes, one table lookup each.
struct Settle<'a> {
    view: View<'a>,
    /// The policy the groups were last exported under, when it changed.
    old: Option<View<'a>>,
    export: &'a mut Exporter,
    groups: &'a mut [Option<Group>],
    /// `None` without a FIB.
    fib_dirty: Option<&'a mut FxHashSet<(Family, IpNet)>>,
    preferred: &'a mut [usize],
    next_hops: &'a mut NextHops,
    memo: Memo,
}

impl Settle<'_> {
    /// Decides a prefix again and queues for each group the difference between what it was
    /// sent (worked out from `before`) and what it is sent now. Under one policy a path sent
    /// before with the same identifier, source and attribute set is sent the same way, so
    /// only changed paths are rewritten; after a policy change both sides are.
    fn prefix(&mut self, key: (Family, IpNet), e: &mut Entry, before: &Before) {
        // A peer's next hop must resolve (RFC 4271 §9.1.2.1); our own routes and the
        // kernel's need no resolving.
        for p in e.paths_mut() {
            let hop = p.attrs.next_hop.filter(|_| p.source().peer_id().is_some());
            p.set_reachable(hop.is_none_or(|a| self.reachable(a)));
        }
        self.view.decide(e);
        if let Some(fib) = self.fib_dirty.as_deref_mut()
            && !before.same_multipath(e)
        {
            fib.insert(key);
        }
        let was_best = before.0.first().and_then(|s| s.source.peer_id());
        let is_best = e.best().and_then(|p| p.source().peer_id());
        if was_best != is_best {
            if let Some(n) = was_best.and_then(|id| self.preferred.get_mut(id)) {
                *n = n.saturating_sub(1);
            }
            if let Some(n) = is_best.and_then(|id| self.preferred.get_mut(id)) {
                *n += 1;
            }
        }
        let (f, net) = key;
        let old = self.old.unwrap_or(self.view);
        let (mut was_ok, mut is_ok) = (None, None);
        // Out of `self` while `queue` borrows it.
        let groups = std::mem::take(&mut self.groups);
        for (gi, g) in groups.iter_mut().enumerate() {
            let Some(g) = g else { continue };
            if !g.key.families.contains(&f) {
                continue;
            }
            let was = match before.0.is_empty() {
                true => Sent::new(),
                false => {
                    let ok = *was_ok.get_or_insert_with(|| old.calico.exports(&net));
                    old.exported(&g.key, (f, &net), ok, before.paths())
                }
            };
            let is = match e.is_empty() {
                true => Sent::new(),
                false => {
                    let ok = *is_ok.get_or_insert_with(|| self.view.calico.exports(&net));
                    self.view.exported(&g.key, (f, &net), ok, current(e))
                }
            };
            let mut shared = SmallVec::new();
            self.queue(gi, g, &key, &was, &is, None, &mut shared);
            g.advertised = (g.advertised + is.len()).saturating_sub(was.len());
            self.apart(gi, g, key, &was, &is, &shared);
        }
        self.groups = groups;
    }

    /// A member of group `gi` that sent one of the paths `was` or `is` of `key` gets the
    /// prefix apart from the changes for everyone (at `shared`), its own paths left out
    /// (see `adj_out`): each source once, in the order its paths come.
    fn apart(
        &mut self,
        gi: usize,
        g: &mut Group,
        key: (Family, IpNet),
        was: &[(u32, PathSource, &Arc<AttrSet>)],
        is: &[(u32, PathSource, &Arc<AttrSet>)],
        shared: &[Slot],
    ) {
        let member = |m: PeerId| self.view.peers.get(m).is_some_and(|p| p.group == Some(gi));
        // Most often one path, new or gone: it is the member's own.
        if let ([], [(_, src, _)]) | ([(_, src, _)], []) = (was, is) {
            if let Some(m) = src.peer_id().filter(|m| member(*m)) {
                g.set_apart(m, shared, is.len() as isize - was.len() as isize);
            }
            return;
        }
        let paths = || was.iter().chain(is);
        for (k, (_, src, _)) in paths().enumerate() {
            let Some(m) = src.peer_id() else { continue };
            if paths().take(k).any(|(_, s, _)| s == src) || !member(m) {
                continue;
            }
            let (was_own, is_own) = (own(was, *src), own(is, *src));
            if !shared.is_empty() || was_own != is_own {
                g.set_apart(m, shared, is_own as isize - was_own as isize);
            }
            if was_own < was.len() || is_own < is.len() {
                let (was_m, is_m) = (without(was, *src), without(is, *src));
                self.queue(gi, g, &key, &was_m, &is_m, Some(m), &mut SmallVec::new());
            }
        }
    }

    /// Whether next hop `a` resolves (the same as the last prefix's, most often).
    fn reachable(&mut self, a: IpAddr) -> bool {
        match self.memo.hop {
            Some((h, r)) if h == a => r,
            _ => {
                let r = self.next_hops.reachable(a);
                self.memo.hop = Some((a, r));
                r
            }
        }
    }

    /// Queues for group `gi` (every member, or only `to`) the difference between the paths
    /// it was sent for `key` and those it is sent now; where the changes for every member
    /// lie goes to `slots`. The key is borrowed and the slots written in place: copies of
    /// them made just before (or after) the call cost a failed store-to-load forwarding
    /// per route.
    #[expect(
        clippy::too_many_arguments,
        reason = "the group, the prefix, its paths before and now, and where the changes lie"
    )]
    fn queue(
        &mut self,
        gi: usize,
        g: &mut Group,
        key: &(Family, IpNet),
        was: &[(u32, PathSource, &Arc<AttrSet>)],
        is: &[(u32, PathSource, &Arc<AttrSet>)],
        to: Option<PeerId>,
        slots: &mut SmallVec<[Slot; 2]>,
    ) {
        let (f, net) = *key;
        for &(id, src, a) in is {
            let prev = was.iter().find(|(i, ..)| *i == id);
            let same = prev.is_some_and(|(_, s, b)| *s == src && Arc::ptr_eq(a, b));
            if self.old.is_none() && same {
                continue;
            }
            let last = &mut self.memo.rewrite;
            let Some(now) = self
                .export
                .rewrite(&self.view, gi, &g.key, key, src, a, last)
            else {
                continue;
            };
            let kept;
            let now = match (self.old, prev) {
                (Some(old), Some(&(_, s, b))) => {
                    kept = now.clone();
                    let last = &mut self.memo.rewrite;
                    let then = self.export.rewrite(&old, gi, &g.key, key, s, b, last);
                    if then.is_some_and(|t| **t == *kept) {
                        continue;
                    }
                    &kept
                }
                _ => now,
            };
            if let Some(s) = g.announce(to, f, net, id, now) {
                slots.push(s);
            }
        }
        for &(id, ..) in was {
            if !is.iter().any(|(i, ..)| *i == id)
                && let Some(s) = g.withdraw(to, f, net, id)
            {
                slots.push(s);
            }
        }
    }
}

/// Whether a new route from peer `id` is imported under its import limit; a session the
/// limit tears down is noted in `exceeded` (for `Rib::take_exceeded`).
fn admit(
    peers: &mut PeerMap<PeerInfo>,
    exceeded: &mut Vec<limit::Exceeded>,
    id: PeerId,
    family: Family,
) -> bool {
    let Some(p) = peers.get_mut(id) else {
        return false;
    };
    let limit = p.config.settings.import_limit();
    let first = !p.limit_hit;
    let verdict = limit::admit(limit, p.received, &mut p.limit_hit);
    if let Some(l) = limit.filter(|_| first && p.limit_hit) {
        // BIRD's words for it.
        warn!(peer = %p.config.name, "hits route import limit ({}), action: {}", l.max, l.action.name());
    }
    match verdict {
        limit::Verdict::Accept => true,
        limit::Verdict::Drop => false,
        limit::Verdict::Tear => {
            if let Some(limit) = limit {
                exceeded.push(limit::Exceeded {
                    peer: id,
                    family,
                    limit,
                });
            }
            false
        }
    }
}

/// What a group sends, computed from the table for some peers (`Rib::dump`).
#[derive(Debug, Default)]
struct Dump {
    changes: Changes,
    /// Per peer it is for, its own paths among those the group sends.
    own: Vec<(PeerId, OwnPaths)>,
    /// Paths not queued at all: a lone peer's own.
    left_out: usize,
}

/// A peer's own paths in a [`Dump`]: how many, and where those queued lie.
#[derive(Debug, Default)]
struct OwnPaths {
    withheld: usize,
    apart: Apart,
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
            peers: PeerMap::default(),
            table: Table::new(),
            interner: Interner::default(),
            groups: Vec::new(),
            joining: Vec::new(),
            export: Exporter::default(),
            dirty: Dirty::default(),
            batch: 0,
            fib_dirty: FxHashSet::default(),
            fib: config.kernel.enabled,
            fib_sweep: None,
            exceeded: Vec::new(),
            stale_gone: 0,
            preferred: Vec::new(),
            next_hops: NextHops::default(),
            kernel_metric: config.kernel.metric,
            filters: config.filters.clone(),
        };
        rib.originate();
        rib.flush();
        rib
    }

    /// How many leading paths of a prefix any group may be sent.
    fn keep(&self) -> usize {
        let most = self.groups.iter().flatten().map(|g| g.key.send_max).max();
        most.unwrap_or(1)
    }

    /// Makes the table's own routes match what the policy originates: blocks and service
    /// ranges (no next hop: blackholes), and static routes through their gateway.
    fn originate(&mut self) {
        let keep = self.keep();
        let own = self.interner.intern(AttrSet::local());
        let mut wanted: BTreeMap<IpNet, Arc<AttrSet>> = (self.calico.originated())
            .map(|n| (n, own.clone()))
            .collect();
        for r in &self.calico.static_routes {
            let mut a = AttrSet::local();
            a.next_hop = Some(r.via);
            wanted.entry(r.prefix).or_insert(self.interner.intern(a));
        }
        for (key, e) in self.table.iter_mut() {
            if !wanted.contains_key(&key.1) && e.has(PathSource::Local, |_| true) {
                self.dirty.note(key, e, keep);
                e.remove(PathSource::Local, |_| true);
            }
        }
        for (net, attrs) in wanted {
            let key = (Family::unicast_of(&net), net);
            let e = self.table.entry(&key);
            if !e.holds(PathSource::Local, 0, &attrs) {
                self.dirty.note(key, e, keep);
                e.upsert(0, attrs);
            }
        }
        let flipped = self.next_hops.set_statics(&self.calico.static_routes);
        self.resolve_again(&flipped);
    }

    /// A new peer, at the id the daemon's registry gave it (the RIB allocates none).
    pub fn add_peer(&mut self, id: PeerId, config: PeerConfig) {
        let rules = Arc::new(PeerRules::of(&config.settings.filters, &self.filters));
        self.peers.insert(
            id,
            PeerInfo {
                rules,
                config,
                session: None,
                local: None,
                end_of_rib: Vec::new(),
                received: 0,
                stale: 0,
                restart_time: 0,
                bgp_id: None,
                limit_hit: false,
                group: None,
            },
        );
        if self.preferred.len() <= id {
            self.preferred.resize(id + 1, 0);
        }
        self.preferred[id] = 0;
    }

    /// New settings for a peer that keep its session (its import limit).
    pub fn set_peer_config(&mut self, id: PeerId, config: PeerConfig) {
        if let Some(p) = self.peers.get_mut(id) {
            p.config = config;
        }
    }

    /// A de-configured peer: its routes go at once, then its state.
    pub fn remove_peer(&mut self, id: PeerId) -> Vec<Outgoing> {
        let out = self.down(id, false);
        self.peers.remove(id);
        out
    }

    /// A configured peer's state.
    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(id)
    }

    /// Every configured peer, by id.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerInfo)> {
        self.peers.iter()
    }

    /// New policy (blocks, services, pools, communities, reflection): our own routes follow,
    /// and every prefix is decided and exported again; peers get only what changed from what
    /// the old policy exported.
    pub fn reconfigure(&mut self, config: &Config) -> Vec<Outgoing> {
        let old_speaker = self.speaker;
        let old_calico = std::mem::replace(&mut self.calico, Calico::from_config(config));
        self.speaker.cluster_id = config.cluster_id;
        self.max_paths = config.max_paths;
        self.originate();
        let keep = self.keep();
        self.settling(Some((&old_speaker, &old_calico)), |s, table, dirty| {
            let mut empty = Vec::new();
            dirty.settle_fresh();
            for (key, e) in table.iter_mut() {
                let before = dirty.take(&key, e, keep);
                s.prefix(key, e, &before);
                if e.is_empty() {
                    empty.push(key);
                }
            }
            for key in empty {
                table.remove(&key);
            }
            dirty.clear();
        });
        self.settled_out()
    }

    /// Gives back what a large flush (a peer's whole table gone) made the work maps grow
    /// to; the few thousand slots an ordinary UPDATE needs stay, and while UPDATEs come in
    /// large batches (a burst of full ones) the room the last batch took, up to `BURST`, so
    /// that the next one does not grow the map again.
    fn release_work_space(&mut self) {
        const KEEP: usize = 4096;
        const BURST: usize = 16_384;
        let room = (2 * self.batch).clamp(KEEP, BURST);
        if self.dirty.is_empty() && self.dirty.capacity() > room {
            self.dirty.shrink_to(room);
        }
        prefix_map::shrink_sparse(&mut self.export.cache, KEEP);
        if self.fib_dirty.is_empty() && self.fib_dirty.capacity() > KEEP {
            self.fib_dirty.shrink_to(KEEP);
        }
    }

    /// A session came up: at the end of the next flush (that of the batch it came in with)
    /// it joins its update group and is sent the group's routes as they are then, and
    /// End-of-RIB (`Rib::welcome`). Routes kept from its previous session stay, stale, until
    /// its End-of-RIB, unless the peer came back with another BGP identifier: they were
    /// decided and reflected under the old one, so they go at once; so do those of a family
    /// the peer kept no forwarding state for (RFC 4724 §4.2: its graceful restart capability
    /// gone, the family left out of it, or its Forwarding State bit clear) or the new session
    /// does not carry.
    pub fn up(&mut self, id: PeerId, session: Session, local: SocketAddr) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(id) else {
            return out;
        };
        let new_id = session.remote.bgp_id;
        let changed = p.bgp_id.is_some_and(|old| old != new_id);
        // A family the new session does not carry sends no End-of-RIB either (BIRD ends its
        // graceful restart at once too).
        let forwarding: SmallVec<[Family; 2]> = restart_families(&session)
            .filter(|(f, flags)| flags & GrFamily::FORWARDING != 0 && session.families.contains(f))
            .map(|(f, _)| f)
            .collect();
        p.bgp_id = Some(new_id);
        p.session = Some(session);
        p.local = Some(local);
        p.end_of_rib.clear();
        if p.stale > 0 {
            let gone = self.drop_stale(id, |f| changed || !forwarding.contains(&f));
            if gone > 0 {
                out = self.flush();
                self.release(gone);
            }
        }
        self.joining.push(id);
        out
    }

    /// The peers that came up since the last flush join their update groups, after the
    /// flush's changes went to the members before them: each is sent the table as it is
    /// now, then End-of-RIB (RFC 4724 §2), and those joining one group together share one
    /// encoding of it. Sessions coming up in a burst (a reflector's clients) no longer cost
    /// a flush each, nor a table encoded for each.
    fn welcome(&mut self) -> Vec<Outgoing> {
        let mut joining: Vec<(usize, Vec<PeerId>)> = Vec::new();
        for id in std::mem::take(&mut self.joining) {
            let Some(key) = self.group_key(id) else {
                continue;
            };
            let gi = self.group_of(key);
            match joining.iter_mut().find(|(g, _)| *g == gi) {
                Some((_, ids)) => ids.push(id),
                None => joining.push((gi, vec![id])),
            }
        }
        let mut out = Vec::new();
        for (gi, ids) in joining {
            let (dump, apart) = self.join(gi, &ids);
            let Some(g) = self.groups[gi].as_ref() else {
                continue;
            };
            let runs = g.encode_for(&ids, &dump, apart);
            out.extend(
                runs.into_iter()
                    .map(|(peers, bytes)| Outgoing { peers, bytes }),
            );
            out.push(Outgoing {
                peers: ids,
                bytes: g.end_of_rib(),
            });
        }
        out
    }

    /// What UPDATEs received since the last flush changed, sent before a peer is given the
    /// table as it is: a flush works out what to send from what each prefix had before its
    /// first change, which is what every member was sent only if no member was given the
    /// table in between (a route withdrawn and announced again would reach nobody new).
    fn settled(&mut self) -> Vec<Outgoing> {
        if self.dirty.is_empty() {
            return Vec::new();
        }
        self.flush_changes()
    }

    /// The index of the update group of `key`, a new one when no group has it.
    fn group_of(&mut self, key: GroupKey) -> usize {
        let existing = (self.groups.iter()).position(|g| g.as_ref().is_some_and(|g| g.key == key));
        existing.unwrap_or_else(|| {
            self.groups.push(Some(Group::new(key)));
            self.groups.len() - 1
        })
    }

    /// Peers `ids` join group `gi`: everything they are to be sent, computed from the table,
    /// and for each of them that is the source of some of it, where those paths lie.
    fn join(&mut self, gi: usize, ids: &[PeerId]) -> (Changes, Vec<(PeerId, Apart)>) {
        let Some(families) = self.groups[gi].as_ref().map(|g| g.key.families.clone()) else {
            return (Changes::default(), Vec::new());
        };
        let dump = self.dump(gi, &families, ids);
        for &id in ids {
            if let Some(p) = self.peers.get_mut(id) {
                p.group = Some(gi);
            }
        }
        if let Some(g) = self.groups[gi].as_mut() {
            if g.members.is_empty() {
                g.advertised = dump.changes.announced() + dump.left_out;
            }
            g.members.extend_from_slice(ids);
            for (id, own) in &dump.own {
                g.withhold(*id, own.withheld as isize);
            }
        }
        let apart = dump.own.into_iter().map(|(id, own)| (id, own.apart));
        (dump.changes, apart.filter(|(_, a)| !a.is_empty()).collect())
    }

    /// Peer `id` leaves its update group, which goes with its last member.
    fn leave(&mut self, id: PeerId) {
        self.joining.retain(|j| *j != id);
        let Some(gi) = self.peers.get_mut(id).and_then(|p| p.group.take()) else {
            return;
        };
        if let Some(g) = self.groups[gi].as_mut() {
            g.leave(id);
            if g.members.is_empty() {
                self.groups[gi] = None;
            }
        }
    }

    /// Everything group `gi` sends (for `families`), computed from the table, for peers `to`
    /// (new members, or one asking for a route refresh). A path whose source is one of them
    /// is queued for the others and its place noted, to be left out of what its source is
    /// sent; a lone peer's own paths are not queued at all.
    fn dump(&mut self, gi: usize, families: &[Family], to: &[PeerId]) -> Dump {
        let mut out = Dump {
            own: to.iter().map(|id| (*id, OwnPaths::default())).collect(),
            ..Dump::default()
        };
        out.own.sort_unstable_by_key(|(id, _)| *id);
        let Some(g) = self.groups.get(gi).and_then(Option::as_ref) else {
            return out;
        };
        let view = View {
            speaker: &self.speaker,
            calico: &self.calico,
            peers: &self.peers,
            max_paths: self.max_paths,
            old: false,
        };
        for (key, e) in self.table.iter() {
            if !families.contains(&key.0) || e.is_empty() {
                continue;
            }
            let calico = self.calico.exports(&key.1);
            for (id, src, a) in view.exported(&g.key, (key.0, &key.1), calico, current(e)) {
                let mine = (src.peer_id())
                    .and_then(|p| out.own.binary_search_by_key(&p, |(id, _)| *id).ok());
                if let Some(k) = mine {
                    out.own[k].1.withheld += 1;
                    if to.len() == 1 {
                        out.left_out += 1;
                        continue;
                    }
                }
                if let Some(now) = self
                    .export
                    .rewrite(&view, gi, &g.key, &key, src, a, &mut None)
                {
                    let slot = out.changes.announce(key.0, now, g.prefix(key.0, key.1, id));
                    if let Some(k) = mine {
                        out.own[k].1.apart.push(slot);
                    }
                }
            }
        }
        self.export.cache.clear();
        out
    }

    /// The session went down. When the connection was lost (`graceful`) and the peer can
    /// restart gracefully, its routes of the families its graceful restart capability lists
    /// stay, marked stale (RFC 4724 §4.2); the rest go. Routes still stale from a restart
    /// before, not announced again since, go too: "to deal with possible consecutive
    /// restarts, a route (from the peer) previously marked as stale MUST be deleted".
    pub fn down(&mut self, id: PeerId, graceful: bool) -> Vec<Outgoing> {
        let Some(p) = self.peers.get_mut(id) else {
            return Vec::new();
        };
        let kept: SmallVec<[Family; 2]> = match (&p.session, graceful) {
            (Some(s), true) => restart_families(s).map(|(f, _)| f).collect(),
            _ => SmallVec::new(),
        };
        p.restart_time = (p.session.as_ref())
            .and_then(|s| s.peer_graceful_restart.as_ref())
            .map_or(0, |g| g.restart_time);
        p.session = None;
        p.local = None;
        p.limit_hit = false;
        self.leave(id);
        // What came before goes first, worked out from what it noted.
        let mut out = self.settled();
        let src = PathSource::peer(id);
        let keep = self.keep();
        let (mut gone, mut stale) = (0, 0);
        // Each prefix the peer's paths leave is settled as the walk reaches it: a full
        // table's worth of prefixes is not noted first.
        self.settling(None, |s, table, _| {
            let mut empty = Vec::new();
            for (key, e) in table.iter_mut() {
                if !e.has(src, |_| true) {
                    continue;
                }
                let pick: fn(&Path) -> bool = if kept.contains(&key.0) {
                    Path::stale
                } else {
                    |_| true
                };
                let before = e.has(src, pick).then(|| Before::of(e, keep));
                if before.is_some() {
                    gone += e.remove(src, pick);
                }
                // Stale paths are still used and advertised: nothing to decide again.
                for path in e.paths_mut().iter_mut().filter(|p| p.source() == src) {
                    path.set_stale(true);
                    stale += 1;
                }
                if let Some(before) = before {
                    s.prefix(key, e, &before);
                    if e.is_empty() {
                        empty.push(key);
                    }
                }
            }
            for key in empty {
                table.remove(&key);
            }
        });
        if let Some(p) = self.peers.get_mut(id) {
            p.received = p.received.saturating_sub(gone);
            p.stale = stale;
        }
        self.batch = 0;
        out.extend(self.settled_out());
        self.release(gone);
        out
    }

    /// After `gone` paths went at once: the attribute sets only they used go too, and the
    /// heap returns what a large table took.
    fn release(&mut self, gone: usize) {
        /// Fewer than this and there is little to give back.
        const MANY: usize = 10_000;
        self.interner.sweep();
        if gone >= MANY {
            crate::sys::trim_heap();
        }
    }

    /// Drops a peer's paths that are still stale (its restart time ran out, or its
    /// End-of-RIB arrived for `family`). Without stale paths the table is not walked.
    pub fn flush_stale(&mut self, id: PeerId, family: Option<Family>) -> Vec<Outgoing> {
        if self.peers.get(id).is_none_or(|p| p.stale == 0) {
            return Vec::new();
        }
        let gone = self.drop_stale(id, |f| family.is_none_or(|x| x == f));
        let out = self.flush();
        self.release(gone);
        out
    }

    /// Takes a peer's stale paths of the families `family` picks out of the table; how many
    /// went.
    fn drop_stale(&mut self, id: PeerId, family: impl Fn(Family) -> bool) -> usize {
        let src = PathSource::peer(id);
        let keep = self.keep();
        let mut gone = 0;
        for (key, e) in self.table.iter_mut() {
            if family(key.0) && e.has(src, Path::stale) {
                self.dirty.note(key, e, keep);
                gone += e.remove(src, Path::stale);
            }
        }
        if let Some(p) = self.peers.get_mut(id) {
            p.stale = p.stale.saturating_sub(gone);
            p.received = p.received.saturating_sub(gone);
        }
        gone
    }

    /// Applies a peer's UPDATE. `withdraw_all`: RFC 7606 treat-as-withdraw.
    pub fn update(&mut self, id: PeerId, u: &Update, withdraw_all: bool) -> Vec<Outgoing> {
        self.receive(id, u, withdraw_all);
        self.flush_changes()
    }

    /// Applies a peer's UPDATE, and sends nothing yet: the next [`Rib::flush_changes`] (or
    /// any call that returns messages) decides and encodes what changed, once for every
    /// UPDATE received since. An End-of-RIB drops the peer's paths still stale in its family
    /// (RFC 4724 §4.2). How many prefixes it carried.
    pub fn receive(&mut self, id: PeerId, u: &Update, withdraw_all: bool) -> usize {
        let Some(p) = self.peers.get(id) else {
            return 0;
        };
        let Some(rx) = p.session.as_ref().map(|s| s.rx) else {
            return 0;
        };
        if let Some(f) = u.end_of_rib() {
            let stale = p.stale > 0;
            if let Some(p) = self.peers.get_mut(id)
                && !p.end_of_rib.contains(&f)
            {
                p.end_of_rib.push(f);
            }
            if stale {
                self.stale_gone += self.drop_stale(id, |x| x == f);
            }
            return 0;
        }
        let ebgp = p.ebgp(self.speaker.asn);
        let allow = p.config.settings.allow_local_as;
        // The loop check counts the AS the session speaks as (BIRD's `local as`).
        let me = Speaker {
            asn: p.local_asn(self.speaker.asn),
            ..self.speaker
        };
        let rules = p.rules.clone();
        let keep = self.keep();
        let mut n = 0;
        for (f, pfx) in u.withdrawals() {
            self.withdraw(id, (f, pfx.net), pfx.path_id.unwrap_or(0), keep);
            n += 1;
        }
        let mut by_family: SmallVec<[(Family, Option<Arc<AttrSet>>); 2]> = SmallVec::new();
        for (f, pfx) in u.announced() {
            n += 1;
            let key = (f, pfx.net);
            let rx_id = pfx.path_id.unwrap_or(0);
            if withdraw_all {
                self.withdraw(id, key, rx_id, keep);
                continue;
            }
            let attrs = match by_family.iter().find(|(x, _)| *x == f) {
                Some((_, a)) => a.clone(),
                None => {
                    let mut a = AttrSet::from_update(u, f, &rx);
                    a.source = PathSource::peer(id);
                    let a = me.accepts(&a, ebgp, allow).then(|| self.interner.intern(a));
                    by_family.push((f, a.clone()));
                    a
                }
            };
            let attrs =
                attrs.and_then(|a| imported(&rules, (f, &pfx.net), !ebgp, a, &mut self.interner));
            match attrs {
                Some(a) => self.announce(id, key, rx_id, a, keep),
                // A loop, or refused by the peer's import filter: the route is not usable,
                // and replaces any earlier one.
                None => self.withdraw(id, key, rx_id, keep),
            }
        }
        n
    }

    /// What changed since the last messages were returned, decided and encoded.
    pub fn flush_changes(&mut self) -> Vec<Outgoing> {
        let gone = std::mem::take(&mut self.stale_gone);
        // A batch that dropped a restarted peer's stale paths is not part of a burst.
        let batch = if gone > 0 { 0 } else { self.dirty.len() };
        let out = self.flush_batch(batch);
        if gone > 0 {
            self.release(gone);
        }
        out
    }

    fn announce(
        &mut self,
        id: PeerId,
        key: (Family, IpNet),
        rx_id: u32,
        a: Arc<AttrSet>,
        keep: usize,
    ) {
        let src = PathSource::peer(id);
        // One lookup: the entry is made first, and goes again if the route is not admitted.
        let (e, made) = self.table.entry_made(&key);
        if e.holds(src, rx_id, &a) {
            return;
        }
        let fresh = !e.has(src, |x| x.rx_id == rx_id);
        if fresh && !admit(&mut self.peers, &mut self.exceeded, id, key.0) {
            // A prefix noted as changed goes at the flush (its withdrawal is sent then).
            if e.is_empty() && !self.dirty.noted(&key) {
                self.table.remove(&key);
            }
            return;
        }
        match made {
            true => self.dirty.fresh(key),
            false => self.dirty.note(key, e, keep),
        }
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if p.stale > 0 && e.has(src, |x| x.rx_id == rx_id && x.stale()) {
            p.stale -= 1;
        }
        if e.upsert(rx_id, a) {
            p.received += 1;
        }
    }

    /// The named filters peers refer to (a reload's new definitions; `refilter` applies them
    /// to a peer).
    pub fn set_filters(&mut self, filters: &[BgpFilter]) {
        self.filters = filters.to_vec();
    }

    /// Applies peer `id`'s filters again, after its filter list or a filter it names
    /// changed, without touching its session. Export: the peer moves to the update group of
    /// its new rules and is sent the difference (withdrawals for what it no longer gets, the
    /// rest announced again). Import: its routes the new rules refuse go; the result says
    /// whether its import rules changed, for the caller to ask the peer for its routes again
    /// (ROUTE-REFRESH, RFC 2918), since refused routes are not kept.
    pub fn refilter(&mut self, id: PeerId) -> (Vec<Outgoing>, bool) {
        let Some(p) = self.peers.get_mut(id) else {
            return (Vec::new(), false);
        };
        let rules = Arc::new(PeerRules::of(&p.config.settings.filters, &self.filters));
        if rules == p.rules {
            return (Vec::new(), false);
        }
        let import_changed = rules.import != p.rules.import;
        let ibgp = !p.ebgp(self.speaker.asn);
        p.rules = rules.clone();
        let mut out = Vec::new();
        if import_changed {
            let src = PathSource::peer(id);
            let keep = self.keep();
            let (mut gone, mut stale) = (0, 0);
            for (key, e) in self.table.iter_mut() {
                let refused = |p: &Path| refuses(&rules, (key.0, &key.1), ibgp, &p.attrs);
                if e.has(src, refused) {
                    self.dirty.note(key, e, keep);
                    stale += e.remove(src, |p| p.stale() && refused(p));
                    gone += e.remove(src, refused);
                }
            }
            gone += stale;
            if let Some(p) = self.peers.get_mut(id) {
                p.received = p.received.saturating_sub(gone);
                p.stale = p.stale.saturating_sub(stale);
            }
            out = self.flush();
            self.release(gone);
        }
        out.extend(self.regroup(id));
        (out, import_changed)
    }

    /// Moves an up peer whose export rules changed into the update group of its new key,
    /// sending it what differs from what its old group sent it.
    fn regroup(&mut self, id: PeerId) -> Vec<Outgoing> {
        let Some(old_gi) = self.peers.get(id).and_then(|p| p.group) else {
            return Vec::new();
        };
        let Some(key) = self.group_key(id) else {
            return Vec::new();
        };
        if self.groups[old_gi].as_ref().is_some_and(|g| g.key == key) {
            return Vec::new();
        }
        let mut out = self.settled();
        let families = key.families.clone();
        let was = self.dump(old_gi, &families, &[id]).changes;
        self.leave(id);
        let gi = self.group_of(key);
        let (mut dump, _) = self.join(gi, &[id]);
        let is: FxHashSet<(Family, Prefix)> = dump.announced_prefixes().collect();
        let Some(g) = self.groups[gi].as_ref() else {
            return out;
        };
        // Both groups have this session's encoding, so a prefix is written alike in both.
        for (f, p) in was.announced_prefixes().filter(|x| !is.contains(x)) {
            dump.withdraw(f, p);
        }
        if !dump.is_empty() {
            out.push(Outgoing {
                peers: vec![id],
                bytes: g.encode(&dump),
            });
        }
        out
    }

    /// Peers whose import limit was exceeded with `restart` or `disable` since the last call.
    pub fn take_exceeded(&mut self) -> Vec<limit::Exceeded> {
        std::mem::take(&mut self.exceeded)
    }

    /// Peer `id`'s import limit and whether it was hit this session.
    pub fn import_limit(&self, id: PeerId) -> Option<(crate::model::ImportLimit, bool)> {
        let p = self.peers.get(id)?;
        Some((p.config.settings.import_limit()?, p.limit_hit))
    }

    /// Other protocols' routes in the kernel table (BIRD's `learn`, contract §3.6): each is a
    /// path of preference 10, exported by Calico's rules (a Felix workload /32 borrowed from
    /// another node's block goes out; one inside our own block does not), never written back.
    /// A unicast one also resolves next hops inside it (`gateway recursive`).
    pub fn learn(&mut self, l: Learning) -> Vec<Outgoing> {
        let keep = self.keep();
        let mut flipped = FxHashSet::default();
        let set = |rib: &mut Rib, a: &Alien, flipped: &mut FxHashSet<IpAddr>| {
            let mut attrs = AttrSet::local();
            attrs.source = PathSource::Kernel;
            attrs.origin = Origin::Incomplete;
            attrs.next_hop = a.gateway;
            attrs.krt_metric = a.metric;
            attrs.device = a.device.clone();
            let attrs = rib.interner.intern(attrs);
            let key = (Family::unicast_of(&a.net), a.net);
            let e = rib.table.entry(&key);
            if !e.holds(PathSource::Kernel, 0, &attrs) {
                rib.dirty.note(key, e, keep);
                e.upsert(0, attrs);
            }
            let unicast = a.kind == AlienKind::Unicast;
            flipped.extend(rib.next_hops.set_learned(a.net, Some(unicast)));
        };
        let forget = |rib: &mut Rib, net: IpNet, flipped: &mut FxHashSet<IpAddr>| {
            let key = (Family::unicast_of(&net), net);
            if let Some(e) = rib.table.get_mut(&key)
                && e.has(PathSource::Kernel, |_| true)
            {
                rib.dirty.note(key, e, keep);
                e.remove(PathSource::Kernel, |_| true);
            }
            flipped.extend(rib.next_hops.set_learned(net, None));
        };
        match l {
            Learning::All(all) => {
                let now: FxHashSet<IpNet> = all.iter().map(|a| a.net).collect();
                let gone: Vec<IpNet> = self
                    .table
                    .iter()
                    .filter(|(k, e)| !now.contains(&k.1) && e.has(PathSource::Kernel, |_| true))
                    .map(|(k, _)| k.1)
                    .collect();
                for net in gone {
                    forget(self, net, &mut flipped);
                }
                for a in &all {
                    set(self, a, &mut flipped);
                }
            }
            Learning::Learned(a) => set(self, &a, &mut flipped),
            Learning::Forgotten(net) => forget(self, net, &mut flipped),
        }
        self.resolve_again(&flipped);
        self.flush()
    }

    /// The node's interfaces as the FIB thread reports them: next hops resolve against their
    /// connected subnets, and kernel routes are worked out again (a next hop's subnet, a
    /// pool's cross-subnet encapsulation and `tunl0` decide how they are written).
    pub fn set_interfaces(&mut self, ifs: Interfaces) -> Vec<Outgoing> {
        let flipped = self.next_hops.set_interfaces(ifs);
        self.resolve_again(&flipped);
        self.sweep_fib();
        self.flush()
    }

    /// The node's interfaces, when the kernel is followed (for `show route`'s `on IF`).
    pub fn interfaces(&self) -> Option<&Interfaces> {
        self.next_hops.interfaces()
    }

    /// Marks for a new decision exactly the prefixes with a peer's path through one of
    /// `flipped`, next hops that became reachable or unreachable.
    fn resolve_again(&mut self, flipped: &FxHashSet<IpAddr>) {
        if flipped.is_empty() {
            return;
        }
        let keep = self.keep();
        let through = |p: &Path| {
            p.source().peer_id().is_some() && p.attrs.next_hop.is_some_and(|a| flipped.contains(&a))
        };
        for (key, e) in self.table.iter_mut() {
            if e.paths().iter().any(through) {
                self.dirty.note(key, e, keep);
            }
        }
    }

    fn withdraw(&mut self, id: PeerId, key: (Family, IpNet), rx_id: u32, keep: usize) {
        let src = PathSource::peer(id);
        let Some(e) = self.table.get_mut(&key) else {
            return;
        };
        if !e.has(src, |x| x.rx_id == rx_id) {
            return;
        }
        self.dirty.note(key, e, keep);
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        if p.stale > 0 && e.has(src, |x| x.rx_id == rx_id && x.stale()) {
            p.stale -= 1;
        }
        p.received -= e.remove(src, |x| x.rx_id == rx_id).min(p.received);
    }

    /// A ROUTE-REFRESH request: the group's routes of that family again (computed from the
    /// table), framed by BoRR/EoRR when enhanced route refresh was negotiated (RFC 7313 §4).
    pub fn refresh(&mut self, id: PeerId, request: RouteRefresh) -> Vec<Outgoing> {
        let f = Family {
            afi: request.afi,
            safi: request.safi,
        };
        let Some(p) = self.peers.get(id) else {
            return Vec::new();
        };
        let (Some(s), Some(gi)) = (&p.session, p.group) else {
            return Vec::new();
        };
        let enhanced = s.enhanced_route_refresh;
        let wanted = self.groups[gi]
            .as_ref()
            .is_some_and(|g| g.key.families.contains(&f));
        if request.subtype != RouteRefresh::REQUEST || !wanted {
            return Vec::new();
        }
        let mut out = self.settled();
        let dump = self.dump(gi, &[f], &[id]).changes;
        let Some(g) = self.groups[gi].as_ref() else {
            return out;
        };
        let mut bytes = Vec::new();
        if enhanced {
            bytes.extend_from_slice(&g.refresh_marker(f, RouteRefresh::BORR));
        }
        bytes.extend_from_slice(&g.encode(&dump));
        if enhanced {
            bytes.extend_from_slice(&g.refresh_marker(f, RouteRefresh::EORR));
        }
        out.push(Outgoing {
            peers: vec![id],
            bytes: bytes.into(),
        });
        out
    }

    /// Decides every touched prefix and sends each group what changed for it.
    fn flush(&mut self) -> Vec<Outgoing> {
        self.flush_batch(0)
    }

    /// [`Rib::flush`] of a batch of received UPDATEs that changed `batch` prefixes (0: not
    /// such a batch), whose room the work space keeps (`release_work_space`).
    fn flush_batch(&mut self, batch: usize) -> Vec<Outgoing> {
        self.batch = batch;
        self.settling(None, |s, table, dirty| {
            for (key, before) in dirty.drain() {
                let Some(e) = table.get_mut(&key) else {
                    continue;
                };
                s.prefix(key, e, &before);
                if e.is_empty() {
                    table.remove(&key);
                }
            }
        });
        self.settled_out()
    }

    /// Runs `work` with a [`Settle`] under the RIB's policy (and `old`, the speaker and
    /// Calico settings before a reconfiguration) over its groups, and the table and the
    /// changed prefixes to work on.
    fn settling(
        &mut self,
        old: Option<(&Speaker, &Calico)>,
        work: impl FnOnce(&mut Settle, &mut Table, &mut Dirty),
    ) {
        let view = View {
            speaker: &self.speaker,
            calico: &self.calico,
            peers: &self.peers,
            max_paths: self.max_paths,
            old: false,
        };
        let mut s = Settle {
            view,
            old: old.map(|(speaker, calico)| View {
                speaker,
                calico,
                old: true,
                ..view
            }),
            export: &mut self.export,
            groups: &mut self.groups,
            fib_dirty: self.fib.then_some(&mut self.fib_dirty),
            preferred: &mut self.preferred,
            next_hops: &mut self.next_hops,
            memo: Memo::default(),
        };
        work(&mut s, &mut self.table, &mut self.dirty)
    }

    /// After prefixes were settled: the work space given back, and what the groups send.
    fn settled_out(&mut self) -> Vec<Outgoing> {
        self.export.cache.clear();
        self.release_work_space();
        // Next hops no attribute set has any more are forgotten once they outnumber the sets.
        if self.next_hops.remembered() > 2 * self.interner.len() + 64 {
            let in_use = self.interner.next_hops();
            self.next_hops.retain(|a| in_use.contains(a));
        }
        self.outgoing()
    }

    /// Each group's queued changes, encoded once for all its members, and the table for the
    /// peers that came up since the last flush.
    fn outgoing(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for g in self.groups.iter_mut().flatten() {
            let runs = g.take_encoded().into_iter();
            out.extend(runs.map(|(peers, bytes)| Outgoing { peers, bytes }));
        }
        out.extend(self.welcome());
        out
    }

    /// The update group a peer belongs in, from its settings and its session.
    fn group_key(&self, id: PeerId) -> Option<GroupKey> {
        let p = self.peers.get(id)?;
        let s = p.session.as_ref()?;
        let local = p.local?.ip().to_canonical();
        let add_path_send = s.tx.add_path_ipv4 || s.tx.add_path_ipv6;
        Some(GroupKey {
            target: Target {
                local_asn: p.config.settings.local_asn,
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
            export: Arc::new(p.rules.export.clone()),
        })
    }

    /// Whether every configured peer is up and has sent End-of-RIB for each family of its
    /// session: the RIB holds what the network has (RFC 4724 §4.1).
    pub fn initial_sync_done(&self) -> bool {
        self.peers.values().all(PeerInfo::synced)
    }

    /// The number of update groups (for `show memory` and tests).
    pub fn group_count(&self) -> usize {
        self.groups.iter().flatten().count()
    }

    /// Bytes held by the table and by the interned attribute sets (for `show memory`).
    pub fn memory(&self) -> (usize, usize) {
        (self.table.bytes(), self.interner.bytes())
    }

    /// Whether the node originates routes of its own (BIRD's static protocol has routes).
    pub fn originates(&self) -> bool {
        self.calico.originated().next().is_some()
    }

    /// Paths received from a peer (its Adj-RIB-In size).
    pub fn received(&self, id: PeerId) -> usize {
        self.peers.get(id).map_or(0, |p| p.received)
    }

    /// Prefixes whose best path is the peer's (BIRD's "preferred").
    pub fn preferred(&self, id: PeerId) -> usize {
        self.preferred.get(id).copied().unwrap_or(0)
    }

    /// Paths a peer's group advertises to it.
    pub fn advertised(&self, id: PeerId) -> usize {
        self.peers
            .get(id)
            .and_then(|p| p.group)
            .and_then(|gi| self.groups[gi].as_ref())
            .map_or(0, |g| g.advertised_to(id))
    }
}

#[cfg(test)]
pub(crate) mod tests;

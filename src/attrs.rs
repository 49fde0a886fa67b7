//! Path attributes as the RIB keeps them and policy reads and rewrites them: decoded once,
//! normalised (4-octet AS path), and interned so that the thousands of routes that share a
//! set share one copy. Below both `rib` and `policy`, so neither imports the other's.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::session::PeerId;
use crate::wire::attr::{
    Community, ExtCommunity, LargeCommunity, MpReach, Origin, Segment, SegmentKind, flags,
};
use crate::wire::open::AS_TRANS;
use crate::wire::{Attr, Family, Negotiated, PathAttribute, Prefix, Update};

/// Who a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSource {
    /// Originated by this node.
    Local,
    /// A peer, by its index (`PeerId`).
    Peer(u32),
    /// Another protocol's route in the kernel table (BIRD's `learn`).
    Kernel,
}

impl PathSource {
    pub fn peer(id: PeerId) -> PathSource {
        PathSource::Peer(u32::try_from(id).unwrap_or(u32::MAX))
    }

    pub fn peer_id(self) -> Option<PeerId> {
        match self {
            PathSource::Peer(id) => Some(id as PeerId),
            PathSource::Local | PathSource::Kernel => None,
        }
    }
}

/// One route's attributes, and where it came from: as BIRD's cached `rta` holds its
/// `rte_src`, the source is part of the shared set, so a path is only a pointer to it, its
/// add-path identifier and flags (16 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrSet {
    pub source: PathSource,
    pub origin: Origin,
    /// With 4-octet AS numbers, AS4_PATH already merged in (RFC 6793 §4.2.3).
    pub as_path: Vec<Segment>,
    pub next_hop: Option<IpAddr>,
    pub link_local: Option<Ipv6Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<Community>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Attributes wren does not interpret, with their flags.
    pub other: Vec<PathAttribute>,
    /// A route learned from the kernel: its output interface (`dev IF`), never sent.
    pub device: Option<String>,
    /// A route learned from the kernel: its metric (BIRD's `krt_metric`), never sent.
    /// BIRD keeps it apart from BGP's MED, which such a route does not have.
    pub krt_metric: Option<u32>,
}

impl AttrSet {
    /// Bytes its lists hold on the heap.
    fn heap_bytes(&self) -> usize {
        self.as_path.capacity() * size_of::<Segment>()
            + self
                .as_path
                .iter()
                .map(|s| s.asns.capacity() * 4)
                .sum::<usize>()
            + self.communities.capacity() * size_of::<Community>()
            + self.ext_communities.capacity() * size_of::<ExtCommunity>()
            + self.large_communities.capacity() * size_of::<LargeCommunity>()
            + self.cluster_list.capacity() * 4
            + self.other.capacity() * size_of::<PathAttribute>()
            + self.device.as_ref().map_or(0, String::capacity)
    }

    /// Attributes of a route this node originates.
    pub fn local() -> AttrSet {
        AttrSet {
            source: PathSource::Local,
            origin: Origin::Igp,
            as_path: Vec::new(),
            next_hop: None,
            link_local: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            ext_communities: Vec::new(),
            large_communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
            device: None,
            krt_metric: None,
        }
    }

    /// Reads the attributes of an UPDATE for the routes of `family` in it. `rx` says how the
    /// peer encoded them (for AS4_PATH reconstruction).
    pub fn from_update(u: &Update, family: Family, rx: &Negotiated) -> AttrSet {
        let mut a = AttrSet::local();
        let mut as4_path = None;
        let mut as4_aggregator = None;
        for pa in &u.attributes {
            match &pa.value {
                Attr::Origin { origin } => a.origin = *origin,
                Attr::AsPath { segments } => a.as_path = segments.clone(),
                Attr::NextHop { next_hop } if family == Family::IPV4_UNICAST => {
                    a.next_hop = Some(IpAddr::V4(*next_hop))
                }
                Attr::MpReach(m)
                    if Family {
                        afi: m.afi,
                        safi: m.safi,
                    } == family =>
                {
                    a.next_hop = Some(m.next_hop);
                    a.link_local = m.link_local;
                }
                Attr::MultiExitDisc { med } => a.med = Some(*med),
                Attr::LocalPref { local_pref } => a.local_pref = Some(*local_pref),
                Attr::AtomicAggregate => a.atomic_aggregate = true,
                Attr::Aggregator { asn, address } => a.aggregator = Some((*asn, *address)),
                Attr::Communities { communities } => a.communities = communities.clone(),
                Attr::ExtendedCommunities { communities } => {
                    a.ext_communities = communities.clone()
                }
                Attr::LargeCommunities { communities } => a.large_communities = communities.clone(),
                Attr::OriginatorId { originator_id } => a.originator_id = Some(*originator_id),
                Attr::ClusterList { cluster_list } => a.cluster_list = cluster_list.clone(),
                Attr::As4Path { segments } => as4_path = Some(segments.clone()),
                Attr::As4Aggregator { asn, address } => as4_aggregator = Some((*asn, *address)),
                Attr::Other { .. } => a.other.push(pa.clone()),
                Attr::NextHop { .. } | Attr::MpReach(_) | Attr::MpUnreach(_) => {}
            }
        }
        if !rx.four_octet_as {
            // RFC 6793 §4.2.3: an AGGREGATOR that is not AS_TRANS means the AS4 attributes
            // are stale; otherwise they hold the real 4-octet values.
            let stale = a
                .aggregator
                .is_some_and(|(asn, _)| asn != u32::from(AS_TRANS));
            if !stale {
                if let (Some(_), Some(agg4)) = (a.aggregator, as4_aggregator) {
                    a.aggregator = Some(agg4);
                }
                if let Some(p4) = as4_path {
                    a.as_path = merge_as4_path(&a.as_path, &p4);
                }
            }
        }
        a
    }

    /// AS_PATH length for the decision process (RFC 4271 §9.1.2.2 a): a set counts 1,
    /// confederation segments 0 (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of the path (for MED comparison, RFC 4271 §9.1.2.2 c).
    pub fn neighbor_as(&self) -> Option<u32> {
        self.as_path
            .iter()
            .find(|s| matches!(s.kind, SegmentKind::Sequence | SegmentKind::Set))
            .and_then(|s| s.asns.first().copied())
    }

    /// How many times `asn` appears in the path.
    pub fn count_as(&self, asn: u32) -> usize {
        self.as_path
            .iter()
            .flat_map(|s| &s.asns)
            .filter(|a| **a == asn)
            .count()
    }

    /// Prepends `asn` to the path (RFC 4271 §5.1.2 b).
    pub fn prepend(&mut self, asn: u32) {
        match self.as_path.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => self.as_path.insert(
                0,
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }

    /// The UPDATE attributes for announcing `prefixes` of `family` with these attributes,
    /// encoded for a peer that negotiated `tx`; in type-code order.
    pub fn to_wire(
        &self,
        family: Family,
        prefixes: &[Prefix],
        tx: &Negotiated,
    ) -> Vec<PathAttribute> {
        let mut out = vec![
            PathAttribute::new(Attr::Origin {
                origin: self.origin,
            }),
            PathAttribute::new(Attr::AsPath {
                segments: self.as_path.clone(),
            }),
        ];
        if family == Family::IPV4_UNICAST
            && let Some(IpAddr::V4(nh)) = self.next_hop
        {
            out.push(PathAttribute::new(Attr::NextHop { next_hop: nh }));
        }
        if let Some(med) = self.med {
            out.push(PathAttribute::new(Attr::MultiExitDisc { med }));
        }
        if let Some(local_pref) = self.local_pref {
            out.push(PathAttribute::new(Attr::LocalPref { local_pref }));
        }
        if self.atomic_aggregate {
            out.push(PathAttribute::new(Attr::AtomicAggregate));
        }
        if let Some((asn, address)) = self.aggregator {
            out.push(PathAttribute::new(Attr::Aggregator { asn, address }));
        }
        if !self.communities.is_empty() {
            out.push(PathAttribute::new(Attr::Communities {
                communities: self.communities.clone(),
            }));
        }
        if let Some(originator_id) = self.originator_id {
            out.push(PathAttribute::new(Attr::OriginatorId { originator_id }));
        }
        if !self.cluster_list.is_empty() {
            out.push(PathAttribute::new(Attr::ClusterList {
                cluster_list: self.cluster_list.clone(),
            }));
        }
        if family != Family::IPV4_UNICAST
            && let Some(nh) = self.next_hop
        {
            out.push(PathAttribute::new(Attr::MpReach(Box::new(MpReach {
                afi: family.afi,
                safi: family.safi,
                next_hop: nh,
                link_local: self.link_local,
                reserved: 0,
                nlri: prefixes.into(),
            }))));
        }
        if !self.ext_communities.is_empty() {
            out.push(PathAttribute::new(Attr::ExtendedCommunities {
                communities: self.ext_communities.clone(),
            }));
        }
        // RFC 6793 §4.2.2: a 2-octet peer gets AS4_PATH when the path needs 4 octets.
        if !tx.four_octet_as
            && self
                .as_path
                .iter()
                .flat_map(|s| &s.asns)
                .any(|a| *a > 0xffff)
        {
            out.push(PathAttribute::new(Attr::As4Path {
                segments: self.as_path.clone(),
            }));
            if let Some((asn, address)) = self.aggregator.filter(|(a, _)| *a > 0xffff) {
                out.push(PathAttribute::new(Attr::As4Aggregator { asn, address }));
            }
        }
        if !self.large_communities.is_empty() {
            out.push(PathAttribute::new(Attr::LargeCommunities {
                communities: self.large_communities.clone(),
            }));
        }
        // RFC 4271 §5: unrecognised transitive attributes pass on with Partial set;
        // non-transitive ones were already dropped on export.
        out.extend(self.other.iter().map(|a| PathAttribute {
            flags: (a.flags | flags::PARTIAL) & !flags::EXTENDED_LENGTH,
            value: a.value.clone(),
        }));
        out
    }
}

/// RFC 6793 §4.2.3: take the leading AS numbers of AS_PATH that AS4_PATH does not cover,
/// then AS4_PATH. An AS4_PATH longer than AS_PATH is ignored.
fn merge_as4_path(as_path: &[Segment], as4: &[Segment]) -> Vec<Segment> {
    let count = |p: &[Segment]| p.iter().map(|s| s.asns.len()).sum::<usize>();
    let (n, n4) = (count(as_path), count(as4));
    if n4 > n {
        return as_path.to_vec();
    }
    let mut keep = n - n4;
    let mut out = Vec::new();
    for s in as_path {
        if keep == 0 {
            break;
        }
        let take = s.asns.len().min(keep);
        out.push(Segment {
            kind: s.kind,
            asns: s.asns[..take].to_vec(),
        });
        keep -= take;
    }
    out.extend(as4.iter().cloned());
    out
}

/// Hash-consing of attribute sets: equal sets are one allocation. Sets are filed under their
/// hash, computed once, so that growing the table never hashes a set again.
#[derive(Debug, Default)]
pub struct Interner {
    sets: FxHashMap<u64, SmallVec<[Arc<AttrSet>; 1]>>,
    len: usize,
    /// Size at which unused sets are swept next.
    sweep_at: usize,
}

impl Interner {
    pub fn intern(&mut self, a: AttrSet) -> Arc<AttrSet> {
        let hash = FxBuildHasher.hash_one(&a);
        if let Some(existing) = self
            .sets
            .get(&hash)
            .and_then(|b| b.iter().find(|s| ***s == a))
        {
            return existing.clone();
        }
        if self.len >= self.sweep_at {
            self.sweep();
        }
        let arc = Arc::new(a);
        self.sets.entry(hash).or_default().push(arc.clone());
        self.len += 1;
        arc
    }

    /// Drops the sets no route uses any more (only the interner holds them), and gives back
    /// the slots they took when most are gone.
    pub fn sweep(&mut self) {
        self.sets.retain(|_, bucket| {
            bucket.retain(|s| Arc::strong_count(s) > 1);
            !bucket.is_empty()
        });
        self.len = self.sets.values().map(|b| b.len()).sum();
        self.sweep_at = (self.len * 2).max(1024);
        crate::prefix_map::shrink_sparse(&mut self.sets, 64);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The next hops of the sets held.
    pub fn next_hops(&self) -> FxHashSet<IpAddr> {
        self.sets
            .values()
            .flatten()
            .filter_map(|a| a.next_hop)
            .collect()
    }

    /// Bytes the interned sets hold (for `show memory`).
    pub fn bytes(&self) -> usize {
        let slot = size_of::<u64>() + size_of::<SmallVec<[Arc<AttrSet>; 1]>>() + 1;
        self.sets.capacity() * slot
            + self
                .sets
                .values()
                .flatten()
                .map(|a| size_of::<AttrSet>() + 16 + a.heap_bytes())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> Segment {
        Segment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn as4_path_merge() {
        // 2-octet path 65001 23456 23456, AS4_PATH 4200000001 4200000002.
        let merged = merge_as4_path(
            &[seq(&[65001, 23456, 23456])],
            &[seq(&[4_200_000_001, 4_200_000_002])],
        );
        assert_eq!(
            merged,
            vec![seq(&[65001]), seq(&[4_200_000_001, 4_200_000_002])]
        );
        // Longer AS4_PATH: ignored.
        assert_eq!(
            merge_as4_path(&[seq(&[1])], &[seq(&[2, 3])]),
            vec![seq(&[1])]
        );
    }

    #[test]
    fn path_length_counts_sets_once_and_confederations_not() {
        let mut a = AttrSet::local();
        a.as_path = vec![
            seq(&[1, 2]),
            Segment {
                kind: SegmentKind::Set,
                asns: vec![3, 4, 5],
            },
            Segment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![6, 7],
            },
        ];
        assert_eq!(a.path_len(), 3);
        a.prepend(9);
        assert_eq!(a.as_path[0], seq(&[9, 1, 2]));
        assert_eq!(a.neighbor_as(), Some(9));
    }

    #[test]
    fn interning_shares_and_sweeps() {
        let mut i = Interner::default();
        let a = i.intern(AttrSet::local());
        let b = i.intern(AttrSet::local());
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        for n in 0..3000u32 {
            let mut s = AttrSet::local();
            s.med = Some(n);
            drop(i.intern(s));
        }
        assert!(i.len() < 3000, "unused sets are swept: {}", i.len());
    }

    #[test]
    fn wire_round_trip_ipv6() {
        let mut a = AttrSet::local();
        a.next_hop = Some("2001:db8::1".parse().unwrap());
        a.local_pref = Some(100);
        let p = [Prefix::new("2001:db8:1::/122".parse().unwrap())];
        let neg = Negotiated::default();
        let u = Update {
            attributes: a.to_wire(Family::IPV6_UNICAST, &p, &neg).into(),
            ..Update::default()
        };
        assert_eq!(AttrSet::from_update(&u, Family::IPV6_UNICAST, &neg), a);
        assert_eq!(u.announced().count(), 1);
    }
}

//! The table: for each prefix, every path to it (each peer's Adj-RIB-In and our own routes
//! in one place), kept best first as the last decision ranked them, in a `PrefixMap`.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::attrs::{AttrSet, PathSource};
use crate::prefix_map::PrefixMap;
use crate::wire::{Afi, Family, Safi};

/// `Path::bits`: the transmit identifier in the low bits, three flags in the high ones.
const STALE: u32 = 1 << 31;
const MULTIPATH: u32 = 1 << 30;
const UNREACHABLE: u32 = 1 << 29;
const TX_ID: u32 = UNREACHABLE - 1;

/// One path: 16 bytes. Its source is in its attribute set (`AttrSet::source`).
#[derive(Debug, Clone)]
pub struct Path {
    pub attrs: Arc<AttrSet>,
    /// The peer's add-path identifier (RFC 7911), 0 without add-path.
    pub rx_id: u32,
    bits: u32,
}

impl Path {
    /// Who it came from.
    pub fn source(&self) -> PathSource {
        self.attrs.source
    }

    /// Our identifier for it when we send several paths (RFC 7911); stable while it lives.
    pub fn tx_id(&self) -> u32 {
        self.bits & TX_ID
    }

    /// Kept from a session that went down under graceful restart (RFC 4724 §4.2).
    pub fn stale(&self) -> bool {
        self.bits & STALE != 0
    }

    pub fn set_stale(&mut self, stale: bool) {
        self.set(STALE, stale);
    }

    /// The best path or one equal in cost to it, as the last decision found.
    pub fn multipath(&self) -> bool {
        self.bits & MULTIPATH != 0
    }

    pub(super) fn set_multipath(&mut self, on: bool) {
        self.set(MULTIPATH, on);
    }

    /// Whether its next hop resolved when it was last decided (RFC 4271 §9.1.2.1).
    pub fn reachable(&self) -> bool {
        self.bits & UNREACHABLE == 0
    }

    pub(super) fn set_reachable(&mut self, on: bool) {
        self.set(UNREACHABLE, !on);
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.bits |= flag;
        } else {
            self.bits &= !flag;
        }
    }
}

/// The paths of one prefix, 16 bytes. Most prefixes have one: it is stored inline; a list
/// is boxed twice so that the whole stays two words (`None`: no path).
#[derive(Debug, Clone)]
#[expect(
    clippy::box_collection,
    reason = "a boxed Vec is one word; a Vec or a boxed slice would make every entry bigger"
)]
enum Paths {
    One(Path),
    Many(Option<Box<Vec<Path>>>),
}

impl Default for Paths {
    fn default() -> Paths {
        Paths::Many(None)
    }
}

/// All paths to one prefix, best first after a decision.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    paths: Paths,
}

impl Entry {
    pub fn paths(&self) -> &[Path] {
        match &self.paths {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(Some(ps)) => ps,
            Paths::Many(None) => &[],
        }
    }

    pub fn paths_mut(&mut self) -> &mut [Path] {
        match &mut self.paths {
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(Some(ps)) => ps,
            Paths::Many(None) => &mut [],
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.paths, Paths::Many(None))
    }

    /// Whether the paths are a list on the heap (for `Table::bytes`).
    fn listed(&self) -> bool {
        matches!(self.paths, Paths::Many(Some(_)))
    }

    fn set_paths(&mut self, mut v: Vec<Path>) {
        self.paths = match v.len() {
            0 => Paths::Many(None),
            1 => v.pop().map_or(Paths::Many(None), Paths::One),
            _ => Paths::Many(Some(Box::new(v))),
        };
    }

    fn take_paths(&mut self) -> Vec<Path> {
        match std::mem::take(&mut self.paths) {
            Paths::One(p) => vec![p],
            Paths::Many(Some(ps)) => *ps,
            Paths::Many(None) => Vec::new(),
        }
    }

    /// Whether `source` already has this exact path, not stale: announcing it again changes
    /// nothing.
    pub fn holds(&self, source: PathSource, rx_id: u32, attrs: &Arc<AttrSet>) -> bool {
        self.paths().iter().any(|p| {
            p.source() == source && p.rx_id == rx_id && Arc::ptr_eq(&p.attrs, attrs) && !p.stale()
        })
    }

    /// Adds or replaces the path of `attrs.source` with identifier `rx_id`; whether it is a
    /// new one (not a replacement).
    pub fn upsert(&mut self, rx_id: u32, attrs: Arc<AttrSet>) -> bool {
        let source = attrs.source;
        if let Some(p) = self
            .paths_mut()
            .iter_mut()
            .find(|p| p.source() == source && p.rx_id == rx_id)
        {
            p.attrs = attrs;
            p.set_stale(false);
            return false;
        }
        let mut tx_id = 1;
        while self.paths().iter().any(|p| p.tx_id() == tx_id) {
            tx_id += 1;
        }
        let path = Path {
            attrs,
            rx_id,
            bits: tx_id & TX_ID,
        };
        self.paths = match std::mem::take(&mut self.paths) {
            Paths::Many(None) => Paths::One(path),
            Paths::One(p) => Paths::Many(Some(Box::new(vec![p, path]))),
            Paths::Many(Some(mut ps)) => {
                ps.push(path);
                Paths::Many(Some(ps))
            }
        };
        true
    }

    /// Whether `source` has paths that `pick` selects.
    pub fn has(&self, source: PathSource, pick: impl Fn(&Path) -> bool) -> bool {
        self.paths().iter().any(|p| p.source() == source && pick(p))
    }

    /// Removes the paths of `source` that `pick` selects; how many went.
    pub fn remove(&mut self, source: PathSource, pick: impl Fn(&Path) -> bool) -> usize {
        let gone = |p: &Path| p.source() == source && pick(p);
        match &self.paths {
            Paths::Many(None) => 0,
            Paths::One(p) => {
                if gone(p) {
                    self.paths = Paths::Many(None);
                    1
                } else {
                    0
                }
            }
            Paths::Many(Some(_)) => {
                let mut v = self.take_paths();
                let before = v.len();
                v.retain(|p| !gone(p));
                let n = before - v.len();
                self.set_paths(v);
                n
            }
        }
    }

    /// The best path (after a decision).
    pub fn best(&self) -> Option<&Path> {
        self.paths().first()
    }

    /// The best path and those equal in cost to it.
    pub fn multipath(&self) -> impl Iterator<Item = &Path> {
        self.paths().iter().take_while(|p| p.multipath())
    }
}

/// Every prefix of every family.
#[derive(Debug, Default)]
pub struct Table {
    map: PrefixMap<Entry>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes the table holds (for `show memory`): its slots, and the path lists of prefixes
    /// with more than one path.
    pub fn bytes(&self) -> usize {
        let lists: usize = self
            .map
            .values()
            .filter(|e| e.listed())
            .map(|e| size_of::<Vec<Path>>() + size_of_val(e.paths()))
            .sum();
        self.map.bytes() + lists
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &(Family, IpNet)) -> Option<&Entry> {
        self.map.get(key)
    }

    pub fn get_mut(&mut self, key: &(Family, IpNet)) -> Option<&mut Entry> {
        self.map.get_mut(key)
    }

    pub fn contains_key(&self, key: &(Family, IpNet)) -> bool {
        self.map.contains_key(key)
    }

    /// The entry for a prefix, created empty if missing.
    pub fn entry(&mut self, key: &(Family, IpNet)) -> &mut Entry {
        self.map.entry_or_default(key)
    }

    /// [`Table::entry`], and whether it was made now.
    pub fn entry_made(&mut self, key: &(Family, IpNet)) -> (&mut Entry, bool) {
        self.map.entry(key)
    }

    pub fn remove(&mut self, key: &(Family, IpNet)) {
        self.map.remove(key);
    }

    /// Every prefix and its entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ((Family, IpNet), &Entry)> {
        self.map.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = ((Family, IpNet), &mut Entry)> {
        self.map.iter_mut()
    }

    pub fn keys(&self) -> impl Iterator<Item = (Family, IpNet)> {
        self.map.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.map.values()
    }

    /// The prefixes of part `i` of `prefix_map::PARTS`.
    pub fn part_keys(&self, i: usize) -> Vec<(Family, IpNet)> {
        self.map.part_keys(i)
    }

    /// The `n` first prefixes after `after` in order (family, then address and length), for
    /// showing the table a chunk at a time.
    pub fn first_after(&self, after: Option<&(Family, IpNet)>, n: usize) -> Vec<(Family, IpNet)> {
        self.map.first_after(after, n)
    }

    /// The longest prefix of a unicast or multicast family that holds `addr` (one lookup per
    /// prefix length).
    pub fn longest_match(&self, addr: IpAddr) -> Option<(Family, IpNet)> {
        let afi = match addr {
            IpAddr::V4(_) => Afi::IPV4,
            IpAddr::V6(_) => Afi::IPV6,
        };
        let max = if afi == Afi::IPV4 { 32 } else { 128 };
        (0..=max).rev().find_map(|len| {
            let net = IpNet::new(addr, len).ok()?.trunc();
            [Safi::UNICAST, Safi::MULTICAST]
                .into_iter()
                .map(|safi| (Family { afi, safi }, net))
                .find(|key| self.contains_key(key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_and_remove_keep_ids_stable() {
        let from = |n| {
            Arc::new(AttrSet {
                source: PathSource::Peer(n),
                ..AttrSet::local()
            })
        };
        let (a, b, c) = (from(0), from(1), from(2));
        let mut e = Entry::default();
        assert!(e.upsert(0, a.clone()));
        assert!(
            e.holds(PathSource::Peer(0), 0, &a),
            "same attributes: no change"
        );
        assert!(e.upsert(0, b.clone()));
        assert!(e.upsert(7, b.clone()));
        let ids: Vec<u32> = e.paths().iter().map(|p| p.tx_id()).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(e.remove(PathSource::Peer(1), |p| p.rx_id == 0), 1);
        assert!(e.upsert(0, c));
        let ids: Vec<u32> = e.paths().iter().map(|p| p.tx_id()).collect();
        assert_eq!(ids, vec![1, 3, 2], "freed id reused, others untouched");
        e.paths_mut()[0].set_stale(true);
        assert!(
            !e.holds(PathSource::Peer(0), 0, &a),
            "refreshing a stale path is a change"
        );
        assert!(!e.upsert(0, a), "a replacement");
        assert!(!e.paths()[0].stale());
        assert_eq!(e.remove(PathSource::Peer(2), |_| true), 1);
        assert_eq!(e.remove(PathSource::Peer(1), |_| true), 1);
        assert_eq!(e.paths().len(), 1);
        assert_eq!(e.remove(PathSource::Peer(0), |_| true), 1);
        assert!(e.is_empty());
    }

    #[test]
    fn layout_is_compact() {
        assert_eq!(size_of::<Path>(), 16);
        assert_eq!(size_of::<Entry>(), 16);
    }

    #[test]
    fn keys_round_trip_and_lookups() {
        let mut t = Table::new();
        let keys = crate::prefix_map::sample_keys();
        let a = Arc::new(AttrSet::local());
        for k in &keys {
            t.entry(k).upsert(0, a.clone());
        }
        assert_eq!(t.len(), keys.len());
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(t.first_after(None, keys.len()), sorted);
        assert_eq!(
            t.longest_match("198.18.1.5".parse().unwrap()),
            Some(keys[1]),
            "unicast wins over multicast at one length"
        );
        assert_eq!(
            t.longest_match("198.19.0.1".parse().unwrap()),
            Some(keys[0])
        );
        assert_eq!(t.longest_match("192.0.2.1".parse().unwrap()), Some(keys[2]));
        assert_eq!(
            t.longest_match("2001:db8:1::41".parse().unwrap()),
            Some(keys[5])
        );
        assert_eq!(t.longest_match("2001:db9::1".parse().unwrap()), None);
        t.remove(&keys[1]);
        assert!(!t.contains_key(&keys[1]));
        assert!(t.contains_key(&keys[3]));
        assert_eq!(t.len(), keys.len() - 1);
    }
}
